"""Tests for eventseq._io: atomic writes and guarded Parquet/JSON reads."""

from __future__ import annotations

import os
import stat

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from eventseq._io import (
    atomic_directory,
    atomic_path,
    check_output,
    open_parquet,
    parquet_part_files,
    read_json,
    read_parquet,
    read_parquet_parts,
    write_json,
    write_parquet,
    write_parquet_parts,
)
from eventseq.errors import FileFormatError, OutputError


@pytest.fixture
def small_table() -> pa.Table:
    return pa.table({"id": [1, 2, 3], "value": [0.5, 1.5, 2.5]})


@pytest.fixture
def parquet_file(tmp_path, small_table):
    path = tmp_path / "small.parquet"
    pq.write_table(small_table, path)
    return path


# ----------------------------------------------------------------------------- atomic writes


def test_atomic_path_writes_final_file_and_leaves_no_temp(tmp_path):
    final = tmp_path / "out.txt"

    with atomic_path(final) as tmp:
        assert tmp != final
        assert tmp.parent == final.parent
        tmp.write_text("new")
        assert not final.exists()  # nothing under the final name until the block succeeds

    assert final.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_atomic_path_on_exception_keeps_final_untouched_and_no_temp(tmp_path):
    final = tmp_path / "out.txt"
    final.write_text("old")

    with pytest.raises(RuntimeError, match="boom"):
        with atomic_path(final) as tmp:
            tmp.write_text("half-writ")
            raise RuntimeError("boom")

    assert final.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_atomic_path_on_exception_creates_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "never.txt") as tmp:
            tmp.write_text("partial")
            raise RuntimeError("boom")

    assert list(tmp_path.iterdir()) == []


def test_atomic_path_creates_parent_directories(tmp_path):
    final = tmp_path / "a" / "b" / "out.txt"

    with atomic_path(final) as tmp:
        tmp.write_text("x")

    assert final.read_text() == "x"


def test_atomic_directory_replaces_an_old_output_of_its_kind(tmp_path):
    final = tmp_path / "model"
    final.mkdir()
    (final / "stale.bin").write_text("stale")

    with atomic_directory(final, ["*.bin"]) as tmp:
        (tmp / "weights.bin").write_bytes(b"\x00\x01")

    assert [p.name for p in final.iterdir()] == ["weights.bin"]
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_atomic_directory_never_replaces_a_directory_with_other_files(tmp_path):
    final = tmp_path / "model"
    final.mkdir()
    (final / "weights.bin").write_text("old")
    (final / "thesis.tex").write_text("the user's")

    with pytest.raises(OutputError, match=r"holding \['thesis.tex'\], which this output does not write"):
        with atomic_directory(final, ["*.bin"]) as tmp:
            (tmp / "weights.bin").write_bytes(b"\x00")

    assert sorted(p.name for p in final.iterdir()) == ["thesis.tex", "weights.bin"]
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no temporary directory left


def test_atomic_path_never_replaces_a_directory(tmp_path):
    (tmp_path / "out.parquet").mkdir()
    (tmp_path / "out.parquet" / "kept.txt").write_text("kept")

    with pytest.raises(OutputError, match=r"out.parquet is an existing directory, and output is a file"):
        with atomic_path(tmp_path / "out.parquet") as tmp:
            tmp.write_text("x")

    assert (tmp_path / "out.parquet" / "kept.txt").read_text() == "kept"


def test_check_output_names_a_file_above_the_path_and_a_file_in_place_of_a_directory(tmp_path):
    (tmp_path / "file.txt").write_text("x")

    with pytest.raises(OutputError, match=r"file.txt is a file, not a folder"):
        check_output(tmp_path / "file.txt" / "out.parquet", "file")
    with pytest.raises(OutputError, match=r"run=.*file.txt is an existing file, and run is a directory"):
        check_output(tmp_path / "file.txt", "directory", option="run")
    assert check_output(tmp_path / "new" / "deeper", "directory") == tmp_path / "new" / "deeper"


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_check_output_names_an_unwritable_folder(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)

    with pytest.raises(OutputError, match="locked is not writable"):
        check_output(locked / "out.parquet", "file")


def test_outputs_get_the_permissions_the_umask_gives(tmp_path):
    old = os.umask(0o022)
    try:
        write_json(tmp_path / "a.json", {})
        with atomic_directory(tmp_path / "d") as tmp:
            (tmp / "x").write_text("")
    finally:
        os.umask(old)

    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o755


def test_atomic_directory_on_exception_keeps_old_directory(tmp_path):
    final = tmp_path / "model"
    final.mkdir()
    (final / "old.txt").write_text("old")

    with pytest.raises(RuntimeError):
        with atomic_directory(final, ["*.txt"]) as tmp:
            (tmp / "partial.bin").write_bytes(b"\x00")
            raise RuntimeError("boom")

    assert [p.name for p in final.iterdir()] == ["old.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


# ----------------------------------------------------------------------------- JSON


def test_json_round_trip(tmp_path):
    write_json(tmp_path / "x.json", {"a": [1, 2], "b": None})

    assert read_json(tmp_path / "x.json") == {"a": [1, 2], "b": None}


def test_read_json_missing_names_path(tmp_path):
    with pytest.raises(FileFormatError, match="schema not found: .*missing.json"):
        read_json(tmp_path / "missing.json", "schema")


def test_read_json_invalid_names_path(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text("{oops")

    with pytest.raises(FileFormatError, match="broken.json is not valid JSON"):
        read_json(path)


# ----------------------------------------------------------------------------- Parquet


def test_parquet_round_trip(tmp_path, small_table):
    write_parquet(small_table, tmp_path / "t.parquet")

    assert read_parquet(tmp_path / "t.parquet").equals(small_table)
    assert read_parquet(tmp_path / "t.parquet", columns=["value"]).column_names == ["value"]
    assert [p.name for p in tmp_path.iterdir()] == ["t.parquet"]


def test_read_parquet_missing_names_path(tmp_path):
    with pytest.raises(FileFormatError, match="Parquet file not found: .*absent.parquet"):
        read_parquet(tmp_path / "absent.parquet")


def test_read_parquet_corrupt_names_path(tmp_path):
    path = tmp_path / "corrupt.parquet"
    path.write_bytes(bytes(range(256)) * 8)

    with pytest.raises(FileFormatError, match="cannot read .*corrupt.parquet: the file is corrupt"):
        read_parquet(path)


def test_read_parquet_truncated_names_path(tmp_path, parquet_file):
    data = parquet_file.read_bytes()
    truncated = tmp_path / "cut.parquet"
    truncated.write_bytes(data[: len(data) // 2])

    with pytest.raises(FileFormatError, match="cut.parquet"):
        read_parquet(truncated)


def test_open_parquet(tmp_path, parquet_file):
    assert open_parquet(parquet_file).metadata.num_rows == 3
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 but not really")
    with pytest.raises(FileFormatError, match="bad.parquet"):
        open_parquet(tmp_path / "bad.parquet")
    with pytest.raises(FileFormatError, match="none.parquet"):
        open_parquet(tmp_path / "none.parquet")


# ----------------------------------------------------------------------------- sharded tables


def test_write_parquet_parts_then_read_them_in_order(tmp_path, small_table):
    paths = write_parquet_parts([small_table.slice(0, 2), small_table.slice(2)], tmp_path / "data.parquet")

    assert [p.name for p in paths] == ["part-00000.parquet", "part-00001.parquet"]
    assert sorted(p.name for p in (tmp_path / "data.parquet").iterdir()) == [p.name for p in paths]
    assert read_parquet_parts(tmp_path / "data.parquet").equals(small_table)


def test_part_files_ignore_spark_markers_as_pyarrow_does(tmp_path, small_table):
    directory = tmp_path / "data.parquet"
    write_parquet_parts([small_table.slice(0, 1), small_table.slice(1)], directory)
    (directory / "_SUCCESS").write_text("")  # what Spark's own writer leaves next to the parts
    (directory / ".part-00000.parquet.crc").write_bytes(b"not parquet")

    assert [p.name for p in parquet_part_files(directory)] == ["part-00000.parquet", "part-00001.parquet"]
    assert read_parquet_parts(directory).num_rows == 3
    assert ds.dataset(directory).to_table().num_rows == 3  # pyarrow skips names starting with _ or .


def test_parts_replace_parts_but_never_a_file_and_a_file_never_replaces_parts(tmp_path, small_table):
    path = tmp_path / "data.parquet"
    write_parquet_parts([small_table, small_table], path)
    write_parquet_parts([small_table], path)
    assert read_parquet_parts(path).equals(small_table)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.parquet"]  # no temporary or old copies

    with pytest.raises(OutputError, match="existing directory"):
        write_parquet(small_table.slice(1), path)
    write_parquet(small_table, tmp_path / "one.parquet")
    with pytest.raises(OutputError, match="existing file"):
        write_parquet_parts([small_table], tmp_path / "one.parquet")
    assert read_parquet_parts(path).equals(small_table) and read_parquet(tmp_path / "one.parquet").num_rows == 3


def test_part_directory_without_parts_or_with_a_corrupt_part(tmp_path, small_table):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileFormatError, match="empty.*without part-"):
        parquet_part_files(tmp_path / "empty")
    write_parquet_parts([small_table, small_table], tmp_path / "parts")
    (tmp_path / "parts" / "part-00001.parquet").write_bytes(b"garbage")
    with pytest.raises(FileFormatError, match="part-00001.parquet"):
        read_parquet_parts(tmp_path / "parts")


def test_a_link_to_a_directory_is_replaced_but_what_it_points_to_is_kept(tmp_path):
    target = tmp_path / "elsewhere"
    target.mkdir()
    (target / "weights.bin").write_text("old")
    (tmp_path / "model").symlink_to(target)

    with atomic_directory(tmp_path / "model", ["*.bin"]) as tmp:
        (tmp / "weights.bin").write_text("new")

    assert not (tmp_path / "model").is_symlink() and (tmp_path / "model" / "weights.bin").read_text() == "new"
    assert (target / "weights.bin").read_text() == "old"
