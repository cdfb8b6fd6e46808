"""benchmarks/quality.py --quick: the suite's script runs end to end and reports what it measured."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "quality.py"


def _load():
    spec = importlib.util.spec_from_file_location("quality_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_quick_run_writes_the_table_the_ranks_and_the_chart(tmp_path):
    quality = _load()
    output = tmp_path / "quality.md"
    result = quality.main(["--quick", "--sets", "sparse,trend", "--rows",
                           "aggregates,default,coles,coles ⊕ aggregates,coles auto", "--output", str(output)])
    report = output.read_text()
    for row in ("**optimum**", "aggregates", "default", "coles ⊕ aggregates", "## Ranks across the sets"):
        assert row in report
    assert output.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
    for key, scores in result.scores.items():
        if key[1] == "coles auto":  # the note names the choice and the candidate best on the test entities
            assert re.fullmatch(r"(gru|cnn|transformer) \(best: (gru|cnn|transformer)\)", scores[0].note), key
        else:
            assert len(scores) == 1 and not scores[0].note.startswith("failed"), key  # no row failed
    assert -1.0 < result.scores[("trend", "aggregates")][0].value <= 1.0  # an R²
    assert 0.0 <= result.scores[("sparse", "default")][0].value <= 1.0  # an AUROC
    assert result.optimum["sparse"][0] > 0.5


def test_bad_arguments_are_refused():
    quality = _load()
    with pytest.raises(SystemExit):
        quality.parse(["--sets", "nope"])
    with pytest.raises(SystemExit):
        quality.parse(["--rows", "aggregates,nonsense"])
    with pytest.raises(SystemExit):
        quality.parse(["--rows", "coles sideways"])  # a method with a row kind that does not exist


def test_a_killed_run_resumes_without_recomputing_finished_cells(tmp_path, monkeypatch):
    quality = _load()
    output = tmp_path / "quality.md"
    arguments = ["--quick", "--sets", "sparse", "--entities", "80,100", "--output", str(output)]
    quality.main([*arguments, "--rows", "aggregates"])
    cells = output.with_suffix(".cells.jsonl")
    assert [json.loads(line)["set"] for line in cells.read_text().splitlines()] == ["sparse@80", "sparse@100"]

    with cells.open("a") as file:  # the cell a killed run was writing when it died
        file.write('{"set": "sparse@80", "seed": 0, "row": "def')
    computed = []

    def refuse_to_redo(case, features):
        raise AssertionError(f"aggregates of {case.name} were computed again")

    def supervised(case, row, args, workdir, init_from=None, floor=None):
        computed.append((case.name, row))
        return quality.Score(0.5, 1.0, 1.0)

    monkeypatch.setattr(quality, "lightgbm_score", refuse_to_redo)
    monkeypatch.setattr(quality, "supervised_row", supervised)
    result = quality.main([*arguments, "--rows", "aggregates,default"])

    assert computed == [("sparse@80", "default"), ("sparse@100", "default")]  # only the new row
    assert set(result.scores) == {(label, row) for label in ("sparse@80", "sparse@100")
                                  for row in ("aggregates", "default")}
    report = output.read_text()
    assert "sparse@80" in report and "sparse@100" in report and "4 cells" in report

    computed.clear()  # a third run finds everything done and only renders
    quality.main([*arguments, "--rows", "aggregates,default"])
    assert computed == []
    # other settings are other cells: a longer budget runs every row again
    quality.main([*arguments, "--rows", "default", "--override", "trainer.patience=1"])
    assert computed == [("sparse@80", "default"), ("sparse@100", "default")]


def test_auto_choices_count_the_picks_of_the_test_best_candidate_and_the_time_against_the_default():
    quality = _load()
    result = quality.Result()
    result.signals["markov"] = "order"
    # two seeds: the CNN is the test-best in both; one split keeps the GRU once, cross-validation never
    for row, values, seconds, notes in [
        ("gru", [0.6, 0.5], [1, 1], ["", ""]), ("cnn", [0.7, 0.8], [1, 1], ["", ""]),
        ("transformer", [0.3, 0.4], [1, 1], ["", ""]), ("default", [0.7, 0.8], [2, 2], ["", ""]),
        ("auto split", [0.6, 0.8], [4, 4], ["gru", "cnn weights: network 1.00, aggregates 0.00"]),
        ("auto cv", [0.7, 0.8], [10, 14], ["cnn", "cnn"]),
    ]:
        for value, second, note in zip(values, seconds, notes):
            result.add("markov", row, quality.Score(value, second, 1.0, note))
    lines = quality.auto_choices(result, ["gru", "cnn", "transformer", "default", "auto split", "auto cv"])
    assert lines[2] == "| markov | 1/2 | 2/2 | 2.0x | 6.0x |"
    assert lines[3] == "| all | 1/2 | 2/2 |  |  |"
    assert quality.auto_choices(result, ["gru", "default"]) == []  # no auto row: no section
    # against auto unpruned (every candidate to the end), without the encoder rows: agreement and time
    for value, second, note in zip([0.7, 0.6], [8, 8], ["cnn", "gru"]):
        result.add("markov", "auto unpruned", quality.Score(value, second, 1.0, note))
    lines = quality.auto_choices(result, ["default", "auto cv", "auto unpruned"])
    assert lines[0] == "| set | auto cv: same choice as auto unpruned | auto cv time / default | auto unpruned time / default |"
    assert lines[2] == "| markov | 1/2 | 6.0x | 4.0x |"
    assert lines[3] == "| all | 1/2 |  |  |"


def test_one_network_is_timed_to_the_aggregates_score_and_the_clock_changes_nothing(tmp_path):
    """FloorClock: a row that trains one network on one split reports the training seconds until its test score
    first reached the aggregates' (inf: never), and the network it trains is the one it trains without it."""
    quality = _load()
    arguments = ["--quick", "--sets", "sparse", "--override", "cv.below=0", "--override", "trainer.max_epochs=3",
                 "--output", str(tmp_path / "quality.md")]
    result = quality.main([*arguments, "--rows", "aggregates,gru"])
    timed = result.scores[("sparse", "gru")][0]
    assert not np.isnan(timed.to_floor) and timed.to_floor > 0  # measured: seconds, or inf when never reached
    assert np.isnan(result.scores[("sparse", "aggregates")][0].to_floor)
    report = (tmp_path / "quality.md").read_text()
    assert "seconds to the aggregates' score" in report
    gru_line = next(line for line in report.splitlines() if "| gru |" in line)
    cells = [cell.strip() for cell in gru_line.strip("|").split("|")]
    assert cells[3] == "gru" and cells[8] == ("never" if np.isinf(timed.to_floor) else f"{timed.to_floor:.1f}")

    args = quality.parse([*arguments, "--rows", "gru"])
    case = quality.make_case("sparse", args.entities[0], 0, tmp_path / "work")
    untimed = quality.supervised_row(case, "gru", args, tmp_path / "work")  # no floor given: no clock
    assert np.isnan(untimed.to_floor)
    assert untimed.value == timed.value and untimed.epochs == timed.epochs
    # the report's column for several seeds: the mean over those that reached it, and how many did
    scores = [quality.Score(0.5, 1.0, to_floor=seconds) for seconds in (2.0, 4.0, float("inf"))]
    assert quality._to_floor(scores) == "3.0 (2/3)"
    assert quality._to_floor(scores[2:]) == "never" and quality._to_floor([quality.Score(0.5, 1.0)]) == "-"
