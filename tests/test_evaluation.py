"""Tests for eventseq.evaluation: `eventseq evaluate` as a Python function."""

from __future__ import annotations

import pytest

import eventseq
from eventseq.errors import ConfigError
from eventseq.evaluation import EvaluateConfig, evaluate


def test_the_api_returns_the_table_the_command_prints_and_writes_the_report(prepared_dir, tmp_path, capsys):
    output = tmp_path / "report.csv"
    table = eventseq.evaluate(data=str(prepared_dir), models=["logreg"], folds=2, output=str(output))
    assert set(table["features"]) == {"aggregates"} and table["model"].unique().to_list() == ["logreg"]
    assert ((table["mean"] >= 0) & (table["mean"] <= 1)).all()
    assert "aggregates" in capsys.readouterr().out and output.read_text().startswith("features,")


def test_options_are_checked_before_any_data_is_read(tmp_path):
    with pytest.raises(ConfigError, match="unknown evaluate option 'fold'.*folds"):
        evaluate(fold=3)
    with pytest.raises(ConfigError, match="folds=1: expected a whole number >= 2"):
        evaluate(EvaluateConfig(data=str(tmp_path / "missing"), folds=1))
    with pytest.raises(ConfigError, match="evaluate needs embeddings"):
        evaluate(output=None)
