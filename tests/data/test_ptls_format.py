from __future__ import annotations

import polars as pl
import pytest

from eventseq.data import PrepareConfig
from eventseq.data.ptls_format import read_ptls_parquet, write_ptls_parquet
from eventseq.errors import ColumnError


@pytest.fixture
def ptls_file(tmp_path):
    table = pl.DataFrame({
        "client_id": [7, 3],
        "event_time": [[5, 1, 9], [2]],
        "mcc_code": [[11, 12, 11], [13]],
        "amount": [[1.0, 2.0, 3.0], [4.0]],
        "target": [1, 0],
    })
    path = tmp_path / "ptls.parquet"
    table.write_parquet(path)
    return path


def _config() -> PrepareConfig:
    return PrepareConfig(id_column="client_id", time_column="event_time", categorical=["mcc_code"],
                         numeric=["amount"], targets={"target": "binary"})


def test_read_ptls_gives_a_sorted_sequence_table(ptls_file):
    prepared = read_ptls_parquet(ptls_file, _config())
    table = prepared.table.sort("client_id")
    assert table["client_id"].to_list() == [3, 7]
    assert table["event_time"].to_list() == [[2], [1, 5, 9]]  # sorted by time
    assert table["amount"].to_list() == [[4.0], [2.0, 1.0, 3.0]]
    assert prepared.schema.categorical[0].vocabulary[0] == "11"  # most frequent value first
    assert table["target"].to_list() == [0, 1]


def test_round_trip_through_ptls_layout(ptls_file, tmp_path):
    prepared = read_ptls_parquet(ptls_file, _config())
    out = write_ptls_parquet(prepared, tmp_path / "out.parquet")
    written = pl.read_parquet(out)
    assert written.columns == ["client_id", "event_time", "mcc_code", "amount", "target"]
    assert written.equals(prepared.table)


def test_missing_or_scalar_columns_are_named(ptls_file):
    with pytest.raises(ColumnError, match="did you mean 'mcc_code'"):
        read_ptls_parquet(ptls_file, PrepareConfig(id_column="client_id", time_column="event_time",
                                                   categorical=["mcc_cod"]))
    with pytest.raises(ColumnError, match="expected a list column"):
        read_ptls_parquet(ptls_file, PrepareConfig(id_column="client_id", time_column="event_time",
                                                   categorical=["target"]))


def test_cli_prepares_a_ptls_file(ptls_file, tmp_path):
    from eventseq.cli import main
    from eventseq.data import load_prepared

    code = main(["prepare", f"input={ptls_file}", "input_format=ptls", f"output={tmp_path / 'prepared'}",
                 "id_column=client_id", "time_column=event_time", "categorical=[mcc_code]", "numeric=[amount]",
                 "targets={target: binary}"])
    assert code == 0
    assert load_prepared(tmp_path / "prepared").table.height == 2
    assert main(["prepare", f"input={ptls_file}", "input_format=xml", "id_column=client_id"]) == 2
