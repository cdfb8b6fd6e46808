"""The UEA archive's sets read from the sktime wheel's files (never importing sktime)."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import sys
from types import SimpleNamespace

import numpy as np
import polars as pl
import pytest

from eventseq.data import PrepareConfig, prepare
from eventseq.datasets import load_uea, uea_columns
from eventseq.datasets.uea import uea_path
from eventseq.errors import FileFormatError

needs_sktime = pytest.mark.skipif(importlib.util.find_spec("sktime") is None,
                                  reason="the files ship in sktime: pip install --no-deps sktime==1.2.0")


@needs_sktime
def test_japanese_vowels_are_640_utterances_of_9_speakers_as_event_sequences(tmp_path):
    events, labels = load_uea("JapaneseVowels")
    assert "sktime" not in sys.modules  # read as files: the package and its pins are never imported
    assert labels.columns == ["entity_id", "label", "part"] and labels.height == 640
    assert labels["label"].n_unique() == 9
    assert labels["part"].value_counts().sort("part").rows() == [("test", 370), ("train", 270)]
    assert events.columns == ["entity_id", "event_time", *(f"dim_{number}" for number in range(12))]
    lengths = events.group_by("entity_id").len()["len"]
    assert lengths.min() == 7 and lengths.max() == 29 and lengths.sum() == events.height
    first = events.filter(pl.col("entity_id") == 0)
    assert first["event_time"].to_list() == list(range(first.height))
    assert first["dim_0"][0] == pytest.approx(1.860936) and first["dim_1"][0] == pytest.approx(-0.207383)
    prepared = prepare(events, PrepareConfig(**uea_columns(12)), labels=labels.drop("part"),
                       output=tmp_path / "prepared")
    assert prepared.report.events_out == events.height and prepared.table.height == 640


def test_a_ts_file_is_read_or_refused_with_its_line(tmp_path, monkeypatch):
    root = tmp_path / "sktime" / "datasets" / "data"
    (root / "Toy").mkdir(parents=True)
    header = "# a comment\n@problemName Toy\n@timeStamps false\n@dimensions 2\n@data\n"
    (root / "Toy" / "Toy_TRAIN.ts").write_text(header + "1,2,3:4,5,6:a\n7,8:9,10:b\n")
    (root / "Toy" / "Toy_TEST.ts").write_text(header + "0.5:1.5:a\n")
    monkeypatch.setattr(importlib.metadata, "distribution",
                        lambda name: SimpleNamespace(locate_file=lambda file: tmp_path / file))
    events, labels = load_uea("Toy")
    assert labels.rows() == [(0, "a", "train"), (1, "b", "train"), (2, "a", "test")]
    assert events["entity_id"].to_list() == [0, 0, 0, 1, 1, 2]
    assert np.allclose(events["dim_1"].to_numpy(), [4, 5, 6, 9, 10, 1.5])

    (root / "Toy" / "Toy_TEST.ts").write_text(header + "1,2:3:a\n")  # dimensions of different lengths
    with pytest.raises(FileFormatError, match=r"Toy_TEST.ts, line 6: every dimension of a series needs the same"):
        load_uea("Toy")
    (root / "Toy" / "Toy_TEST.ts").write_text(header + "1,x:3,4:a\n")
    with pytest.raises(FileFormatError, match=r"Toy_TEST.ts, line 6: expected comma-separated numbers"):
        load_uea("Toy")
    (root / "Toy" / "Toy_TEST.ts").write_text(header.replace("false", "true") + "(0,1):a\n")
    with pytest.raises(FileFormatError, match=r"@timeStamps true"):
        load_uea("Toy")
    with pytest.raises(FileFormatError, match=r"no UEA set 'Nope' .* ships \['Toy'\]"):
        uea_path("Nope")


def test_missing_sktime_gives_an_install_hint(monkeypatch):
    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", not_installed)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: None)
    with pytest.raises(FileFormatError, match=r"pip install --no-deps sktime==1.2.0"):
        load_uea()


@needs_sktime
def test_the_docs_example_trains_on_japanese_vowels(tmp_path, monkeypatch, python_block):
    monkeypatch.chdir(tmp_path)
    code = python_block("datasets.md", "## JapaneseVowels in a few lines")
    # at test size: one network (not one per fold) and no stack (nine classes' LightGBM is most of the time)
    code = code.replace("config.trainer.max_epochs = 20", "config.trainer.max_epochs = 2\nconfig.trainer.progress_bar = "
                        "False\nconfig.cv.below = 0\nconfig.combine.mode = 'none'")
    code = code.replace('vowels.metrics["parts"]', 'vowels.metrics["test_accuracy"]')
    namespace: dict = {}
    exec(compile(code, "docs", "exec"), namespace)
    assert 0.0 <= namespace["vowels"].metrics["test_accuracy"] <= 1.0 and namespace["vowels"].metrics["epochs"] == 2
