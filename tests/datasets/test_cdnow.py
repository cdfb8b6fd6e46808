from __future__ import annotations

import datetime as dt
import importlib.metadata
import importlib.util
from types import SimpleNamespace

import polars as pl
import pytest

from eventseq.data import PrepareConfig, prepare
from eventseq.datasets import CDNOW_COLUMNS, load_cdnow
from eventseq.datasets.cdnow import cdnow_path
from eventseq.errors import FileFormatError

CUTOFF = dt.date(1997, 9, 30)


@pytest.fixture(scope="module")
def cdnow() -> tuple[pl.DataFrame, pl.DataFrame]:
    return load_cdnow()


def test_events_stop_at_the_cutoff(cdnow):
    events, _ = cdnow
    assert events.schema == pl.Schema(
        {"customer_id": pl.String, "date": pl.Date, "number_of_cds": pl.Int64, "dollar_value": pl.Float64}
    )
    assert events["date"].min() == dt.date(1997, 1, 1)
    assert events["date"].max() <= CUTOFF
    assert events.null_count().sum_horizontal().item() == 0
    assert (events["number_of_cds"] >= 1).all() and (events["dollar_value"] >= 0).all()


def test_labels_cover_the_23570_customers_with_a_70_percent_churn(cdnow):
    events, labels = cdnow
    assert labels.columns == ["customer_id", "churn"]
    assert labels.height == labels["customer_id"].n_unique() == 23_570
    assert set(labels["customer_id"]) == set(events["customer_id"])
    assert set(labels["churn"].unique()) == {0, 1}
    assert labels["churn"].mean() == pytest.approx(0.70, abs=0.01)


def test_an_earlier_cutoff_keeps_less_history():
    events, labels = load_cdnow(cutoff=dt.date(1997, 3, 31))
    assert events["date"].max() <= dt.date(1997, 3, 31)
    assert labels.height == 23_570  # every customer's first purchase is in the first quarter of 1997
    assert labels["churn"].mean() < 0.70  # a longer future: more customers come back


def test_prepare_turns_dates_into_integer_seconds(cdnow):
    events, labels = cdnow
    prepared = prepare(events, PrepareConfig(**CDNOW_COLUMNS), labels=labels)
    table = prepared.table
    assert table.height == 23_570
    assert prepared.schema.time_kind == "datetime"
    assert table.schema["event_time"] == pl.List(pl.Int64)
    first = table.filter(pl.col("customer_id") == "00001")
    assert first["event_time"].item().to_list() == [852_076_800]  # 1997-01-01 00:00 UTC in seconds
    assert prepared.report.events_out == events.height
    assert table["churn"].mean() == pytest.approx(labels["churn"].mean())


def test_missing_lifetimes_gives_an_install_hint(monkeypatch):
    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", not_installed)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: None)
    with pytest.raises(FileFormatError, match=r"pip install .*lifetimes"):
        cdnow_path()
    with pytest.raises(FileFormatError, match=r"pip install .*lifetimes"):
        load_cdnow()


def test_lifetimes_found_without_metadata(monkeypatch):
    installed = cdnow_path()
    package_dir = installed.parent.parent

    def no_metadata(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", no_metadata)
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: SimpleNamespace(submodule_search_locations=[str(package_dir)]))
    assert cdnow_path() == installed


def test_lifetimes_without_the_data_file(monkeypatch, tmp_path):
    monkeypatch.setattr(importlib.metadata, "distribution",
                        lambda name: SimpleNamespace(locate_file=lambda file: tmp_path / file))
    with pytest.raises(FileFormatError, match="missing"):
        cdnow_path()
