"""Atomic file output and guarded Parquet input.

Every file eventseq writes goes to a temporary name in the same directory and is renamed into
place, so a crash never leaves a half-written file under the final name.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from eventseq.errors import FileFormatError

PART_FILE = "part-{index:05d}.parquet"  # name of the i-th part of a sharded table (Spark's convention)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `path`; rename it onto `path` only if the block succeeds."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        _swap_into_place(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary directory; on success it replaces `path` (an old one is removed)."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    try:
        yield tmp
        _swap_into_place(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def _swap_into_place(tmp: Path, final: Path) -> None:
    """Rename `tmp` onto `final`; an old `final` of either kind (file or directory) is replaced.

    A file over a file is one atomic rename. Otherwise the old one is first renamed aside, so
    `final` is never half-written: it is the old version, briefly absent, then the new one.
    """
    if not final.exists() or (final.is_file() and tmp.is_file()):
        os.replace(tmp, final)
        return
    old = final.with_name(f".{final.name}.old")
    if old.exists() or old.is_symlink():
        _remove(old)
    os.replace(final, old)
    os.replace(tmp, final)
    _remove(old)


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


def read_labels(path: str | os.PathLike) -> Any:
    """A labels table (Polars) from Parquet or CSV, with file problems as FileFormatError naming the file."""
    import polars as pl

    path = Path(path)
    if not path.is_file():
        raise FileFormatError(f"labels file not found: {path}")
    if path.suffix.lower() != ".csv":
        return pl.from_arrow(read_parquet(path))
    try:
        return pl.read_csv(path)
    except (pl.exceptions.PolarsError, OSError) as error:
        raise FileFormatError(f"cannot read labels {path}: {error}") from None


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
    with atomic_directory(final) as tmp:
        for index, table in enumerate(tables):
            pq.write_table(table, tmp / PART_FILE.format(index=index))
    return [final / PART_FILE.format(index=index) for index in range(len(tables))]
