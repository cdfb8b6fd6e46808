"""Bad input through the CLI, as a new user meets it: a clear error naming the key, column or file, exit 2.

Each case here was once a silent wrong result, lost data or a raw traceback (issue 15). The API side of
each case is tested beside the module it concerns; this file checks the command a user runs.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from eventseq.cli import main

NOW = 1_700_000_000


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    """Exit code and stderr of `eventseq argv`; a traceback in stderr fails the test."""
    code = main(argv)
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    return code, err


def _events_file(path: Path, times: list[int]) -> Path:
    pl.DataFrame({"id": [i % 3 for i in range(len(times))], "t": times,
                  "x": [float(i) for i in range(len(times))]}).write_parquet(path)
    return path


def test_prepare_refuses_millisecond_times_and_takes_time_unit(tmp_path, capsys):
    events = _events_file(tmp_path / "events.parquet", [(NOW + i) * 1000 for i in range(6)])
    common = ["prepare", f"input={events}", "id_column=id", "time_column=t", "numeric=[x]"]

    code, err = run_cli([*common, f"output={tmp_path / 'a'}"], capsys)
    assert code == 2
    assert "eventseq prepare: error: time column 't'" in err and "time_unit=ms" in err
    assert not (tmp_path / "a").exists()

    code, _ = run_cli([*common, f"output={tmp_path / 'b'}", "time_unit=ms"], capsys)
    assert code == 0
    times = pl.read_parquet(tmp_path / "b" / "data.parquet")["event_time"].explode()
    assert times.min() == NOW and times.max() == NOW + 5


# ----------------------------------------------------------------------------- outputs are never destroyed


@pytest.mark.parametrize("command", ["predict", "embed"])
def test_output_that_is_a_directory_is_refused_before_any_work_and_kept(command, trained, prepared_dir, tmp_path,
                                                                        capsys):
    keep = tmp_path / "results"
    keep.mkdir()
    (keep / "thesis.tex").write_text("the user's")

    code, err = run_cli([command, f"model={trained.model_dir}", f"data={prepared_dir}", f"output={keep}",
                         "progress=false"], capsys)

    assert code == 2
    assert f"output={keep} is an existing directory" in err and "give a file path" in err
    assert (keep / "thesis.tex").read_text() == "the user's"


def test_output_below_a_file_is_refused_by_prepare_and_train(prepared_dir, tmp_path, capsys):
    (tmp_path / "file.txt").write_text("x")

    code, err = run_cli(["train", f"data.path={prepared_dir}", f"output={tmp_path / 'file.txt' / 'run'}"], capsys)
    assert code == 2 and "file.txt is a file, not a folder" in err
    code, err = run_cli(["prepare", f"input={prepared_dir}/data.parquet", f"output={tmp_path / 'file.txt'}"], capsys)
    assert code == 2 and "is an existing file, and output is a directory" in err


def test_prepare_never_replaces_a_directory_of_the_users(tmp_path, capsys):
    events = _events_file(tmp_path / "events.parquet", [NOW + i for i in range(6)])
    home = tmp_path / "home"
    home.mkdir()
    (home / "notes.md").write_text("the user's")

    code, err = run_cli(["prepare", f"input={events}", "id_column=id", "time_column=t", "numeric=[x]",
                         f"output={home}"], capsys)

    assert code == 2 and "holding ['notes.md'], which this output does not write" in err
    assert [p.name for p in home.iterdir()] == ["notes.md"]


def test_a_failed_re_prepare_leaves_the_old_directory_whole(tmp_path, monkeypatch):
    import importlib

    prepare_module = importlib.import_module("eventseq.data.prepare")  # the module, not the function

    events = pl.read_parquet(_events_file(tmp_path / "events.parquet", [NOW + i for i in range(6)]))
    config = prepare_module.PrepareConfig(id_column="id", time_column="t", categorical=["x"])
    output = tmp_path / "prepared"
    prepare_module.prepare(events, config, output=output)
    before = {p.name: p.read_bytes() for p in output.iterdir()}

    def killed(*args, **kwargs):  # dies after data.parquet of the new run is written
        raise KeyboardInterrupt

    monkeypatch.setattr(prepare_module, "write_json", killed)
    with pytest.raises(KeyboardInterrupt):
        prepare_module.prepare(events.with_columns(pl.col("x") + 100), config, output=output)

    assert {p.name: p.read_bytes() for p in output.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary left


def test_train_refuses_data_from_another_prepare_run_beside_the_schema(tmp_path, prepared_dir, capsys):
    import shutil

    from eventseq.data.prepare import PrepareConfig, prepare

    mixed = tmp_path / "mixed"
    shutil.copytree(prepared_dir, mixed)
    other = pl.read_parquet(_events_file(tmp_path / "events.parquet", [NOW + i for i in range(6)]))
    prepare(other, PrepareConfig(id_column="id", time_column="t", numeric=["x"]), output=tmp_path / "other")
    shutil.copyfile(tmp_path / "other" / "data.parquet", mixed / "data.parquet")

    code, err = run_cli(["train", f"data.path={mixed}", f"output={tmp_path / 'run'}"], capsys)

    assert code == 2
    assert "data.parquet was encoded with another schema than" in err and "schema.json" in err
