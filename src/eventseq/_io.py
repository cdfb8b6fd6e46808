"""Atomic file output and guarded Parquet input.

Every file eventseq writes goes to a temporary name in the same directory and is renamed into
place, so a crash never leaves a half-written file under the final name. `check_output` is the one
rule for where a command may write: it is called before any work, and again by `atomic_path` and
`atomic_directory` before the rename; a directory that is not eventseq's output is never replaced.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from eventseq.errors import FileFormatError, OutputError

PART_FILE = "part-{index:05d}.parquet"  # name of the i-th part of a sharded table (Spark's convention)
PART_CONTENTS = ("part-*.parquet", "_*", ".*")  # what a directory of part files holds (Spark's markers too)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def replaceable(path: Path, contents: Sequence[str]) -> bool:
    """Whether eventseq may replace the existing directory `path` as an output whose entries match `contents`.

    Only an empty directory, or one holding nothing but names matching the glob patterns `contents`
    (what this kind of output writes), is eventseq's to replace: a directory with anything else in
    it is the user's and is never deleted.
    """
    return not _foreign_entries(path, contents)


def _foreign_entries(path: Path, contents: Sequence[str]) -> list[str]:
    """The names in directory `path` that match none of the glob patterns `contents`, sorted."""
    return sorted(entry.name for entry in path.iterdir()
                  if not any(fnmatch.fnmatch(entry.name, pattern) for pattern in contents))


def check_output(
    path: str | os.PathLike, kind: str = "file", option: str = "output", contents: Sequence[str] | None = None
) -> Path:
    """Refuse, before any work is done, an output path that cannot be written or is not eventseq's to replace.

    The one rule for every command's outputs (files are then written by `atomic_path`, whole
    directories by `atomic_directory`): never write over a directory the user did not create as
    this output, never leave a half-written output.

    Args:
        path: the output path.
        kind: "file" (written whole), "directory" (written into, or replaced whole when `contents`
            is given).
        option: the option's name, for the message.
        contents: for a directory replaced whole: the glob patterns of what it holds (see `replaceable`).

    Returns:
        `path` as a Path.

    Raises:
        OutputError: the path, or a folder above it, is a file where a directory is needed; the path
            is a directory where a file is needed, or a directory of the user's that would be replaced;
            or the nearest existing folder is not writable.
    """
    path = Path(path)
    for parent in reversed(path.parents):
        if parent.exists() and not parent.is_dir():
            raise OutputError(f"{option}={path}: {parent} is a file, not a folder; choose another {option}")
    if path.exists() or path.is_symlink():
        if kind == "file" and path.is_dir():
            raise OutputError(
                f"{option}={path} is an existing directory, and {option} is a file: give a file path "
                f"(e.g. {option}={path / _default_file_name(path)}); eventseq never replaces a directory with a file"
            )
        if kind == "directory" and not path.is_dir():
            raise OutputError(f"{option}={path} is an existing file, and {option} is a directory: choose another path")
        if kind == "directory" and contents is not None and not replaceable(path, contents):
            raise OutputError(_not_ours(path, option, contents))
    # where files will be created: inside a directory written into, else beside the output (temp + rename)
    written_into = kind == "directory" and contents is None and path.is_dir()
    folder = path if written_into else next(p for p in path.parents if p.exists())
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"{option}={path}: {folder} is not writable; choose another {option}")
    return path


def _default_file_name(path: Path) -> str:
    return "output.parquet" if path.suffix != ".parquet" else "part-00000.parquet"


def _not_ours(path: Path, option: str, contents: Sequence[str]) -> str:
    others = _foreign_entries(path, contents)
    return (f"{option}={path} is an existing directory holding {others[:5]}, which this output does not write "
            f"(it writes {list(contents)}): eventseq replaces only its own outputs; choose a new or empty "
            f"directory, or remove this one yourself")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `path`; rename it onto `path` only if the block succeeds.

    An existing file is replaced (in one rename); an existing directory is refused (OutputError),
    never deleted. The file gets the permissions of a newly created one (0666 less the umask).
    """
    final = Path(path)
    check_output(final, "file")
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    os.chmod(tmp, 0o666 & ~_umask())
    try:
        yield tmp
        check_output(final, "file")  # nothing became a directory meanwhile
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike, contents: Sequence[str] = ()) -> Iterator[Path]:
    """Yield a temporary directory; on success it takes the place of `path`, whole.

    An existing directory at `path` is replaced only if `replaceable(path, contents)`: empty, or
    holding only names matching `contents` (what this output writes); otherwise OutputError, and it
    is left as it was. An existing file at `path` is refused. The directory gets the permissions of
    a newly created one (0777 less the umask).
    """
    final = Path(path)
    check_output(final, "directory", contents=contents)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        yield tmp
        check_output(final, "directory", contents=contents)
        _swap_directory(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def _swap_directory(tmp: Path, final: Path) -> None:
    """Rename directory `tmp` onto `final`; an old `final` (checked replaceable) is renamed aside first,
    so `final` is never half-written: it is the old version, briefly absent, then the new one."""
    if not final.exists():
        os.replace(tmp, final)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".old", dir=final.parent))
    os.rmdir(old)
    os.replace(final, old)
    os.replace(tmp, final)
    if old.is_symlink():  # `final` was a link to a directory: the link goes, never what it pointed to
        old.unlink()
    else:
        shutil.rmtree(old)


def write_json(path: str | os.PathLike, payload: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, default=str))


def read_json(path: str | os.PathLike, what: str = "JSON file") -> Any:
    path = Path(path)
    if not path.is_file():
        raise FileFormatError(f"{what} not found: {path}")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise FileFormatError(f"{what} {path} is not valid JSON: {error}") from None


def write_parquet(table: pa.Table, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def read_parquet(path: str | os.PathLike, columns: list[str] | None = None) -> pa.Table:
    """Read a Parquet file, turning Arrow's low-level failures into a message naming the file."""
    path = Path(path)
    if not path.exists():
        raise FileFormatError(f"Parquet file not found: {path}")
    try:
        return pq.read_table(path, columns=columns)
    except (pa.ArrowInvalid, pa.ArrowIOError, OSError) as error:
        raise FileFormatError(
            f"cannot read {path}: the file is corrupt, truncated or not Parquet ({error})"
        ) from None


def read_labels(path: str | os.PathLike, what: str = "labels") -> Any:
    """A per-entity table (Polars: labels, a split) from Parquet or CSV, with file problems as
    FileFormatError naming the file and `what` it should hold."""
    import polars as pl

    path = Path(path)
    if not path.is_file():
        raise FileFormatError(f"{what} file not found: {path}")
    if path.suffix.lower() != ".csv":
        return pl.from_arrow(read_parquet(path))
    try:
        return pl.read_csv(path)
    except (pl.exceptions.PolarsError, OSError) as error:
        raise FileFormatError(f"cannot read {what} {path}: {error}") from None


def open_parquet(path: str | os.PathLike) -> pq.ParquetFile:
    path = Path(path)
    if not path.exists():
        raise FileFormatError(f"Parquet file not found: {path}")
    try:
        return pq.ParquetFile(path)
    except (pa.ArrowInvalid, pa.ArrowIOError, OSError) as error:
        raise FileFormatError(
            f"cannot read {path}: the file is corrupt, truncated or not Parquet ({error})"
        ) from None


def parquet_part_files(path: str | os.PathLike) -> list[Path]:
    """The Parquet files of a table stored as one file or as a directory of part files.

    A directory holds `part-*.parquet` files (Spark's layout); names starting with `_` or `.`
    (Spark's `_SUCCESS`, checksums, temporary files) are ignored, as pyarrow ignores them.

    Args:
        path: a Parquet file, or a directory of part files.

    Returns:
        The file itself, or the part files sorted by name (the order their rows belong in).

    Raises:
        FileFormatError: the path does not exist, or the directory holds no part files.
    """
    path = Path(path)
    if not path.exists():
        raise FileFormatError(f"Parquet file not found: {path}")
    if path.is_file():
        return [path]
    parts = sorted(p for p in path.glob("part-*.parquet") if p.is_file())
    if not parts:
        raise FileFormatError(f"{path} is a directory without part-*.parquet files: not a sharded Parquet table")
    return parts


def read_parquet_parts(path: str | os.PathLike, columns: list[str] | None = None) -> pa.Table:
    """Read a Parquet file or a directory of part files (in name order) into one table.

    Raises:
        FileFormatError: missing path, no part files, a corrupt part (named), or parts whose
            columns disagree.
    """
    tables = [read_parquet(part, columns=columns) for part in parquet_part_files(path)]
    if len(tables) == 1:
        return tables[0]
    try:
        return pa.concat_tables(tables)
    except pa.ArrowInvalid as error:
        raise FileFormatError(f"the part files of {path} do not share one set of columns ({error})") from None


def write_parquet_parts(tables: list[pa.Table], path: str | os.PathLike) -> list[Path]:
    """Write `tables` as the part files `part-00000.parquet`, ... of directory `path`, atomically.

    The directory appears complete or not at all (an older file or directory at `path` is replaced).

    Returns:
        The paths of the part files written, in order.
    """
    final = Path(path)
    with atomic_directory(final, PART_CONTENTS) as tmp:
        for index, table in enumerate(tables):
            pq.write_table(table, tmp / PART_FILE.format(index=index))
    return [final / PART_FILE.format(index=index) for index in range(len(tables))]
