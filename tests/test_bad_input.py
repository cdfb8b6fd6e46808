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
