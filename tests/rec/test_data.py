from __future__ import annotations

import dataclasses

import polars as pl
import pytest

from eventseq.errors import ColumnError, ConfigError, DataError
from eventseq.rec.data import DAY, RecPrepareConfig, load_rec_data, prepare_rec

CONFIG = RecPrepareConfig(min_group_size=3, exclude_sources=["catalog"], valid_days=30, gap_days=2)


def _request(request_id, user, day, source, shown, carted):
    rows = [(user, item, "view", source, day * DAY + i, request_id) for i, item in enumerate(shown)]
    rows += [(user, item, "cart", source, day * DAY + 100 + i, request_id) for i, item in enumerate(carted)]
    return rows


def hand_made_log() -> pl.DataFrame:
    """Ends on day 100: validation from day 70, gap from day 68."""
    rows = [(1, 3, "click", None, 5 * DAY, None), (2, 1, "purchase", "search", 100 * DAY, None)]
    rows += _request(10, 1, 10, "search", [1, 2, 3, 4], [2])
    rows += _request(11, 1, 20, "catalog", [1, 2, 3], [1])  # excluded source
    rows += _request(12, 2, 30, "search", [1, 2], [2])  # too small
    rows += _request(13, 2, 40, "search", [1, 2, 3], [])  # no positive
    rows += _request(16, 1, 50, "search", [1, 2, 3], [1, 2, 3])  # no negative
    rows += _request(14, 2, 69, "search", [1, 2, 3], [3])  # in the gap
    rows += _request(15, 2, 80, "main", [1, 2, 3, 5], [1])  # validation; item 5 never seen before
    return pl.DataFrame(rows, schema={"user_id": pl.Int64, "item_id": pl.Int64, "action_type": pl.String,
                                      "source_type": pl.String, "timestamp": pl.Int64, "request_id": pl.Int64},
                        orient="row")


def _decode(data, column="items"):
    vocabulary = data.schema.categorical[0].vocabulary
    return [[None if i == 1 else int(vocabulary[i - 2]) for i in items] for items in data.groups[column]]


def test_groups_are_exactly_the_kept_requests():
    data = prepare_rec(hand_made_log(), CONFIG)
    groups = data.groups
    assert groups["request_id"].to_list() == [10, 15]
    assert groups["user_id"].to_list() == [1, 2]
    assert groups["part"].to_list() == ["train", "valid"]
    assert groups["request_time"].to_list() == [10 * DAY, 80 * DAY]
    assert _decode(data) == [[1, 2, 3, 4], [1, 2, 3, None]]  # item 5 first appears in validation
    assert groups["labels"].to_list() == [[0, 1, 0, 0], [1, 0, 0, 0]]
    assert data.report["groups_dropped"] == {
        "excluded source": 1, "fewer than 3 items": 1, "no positive": 1, "no negative": 1,
        "in the gap before validation": 1,
    }
    assert data.report["candidate_items_unknown"] == 1
    sources = data.schema.categorical[1].vocabulary
    assert [sources[i - 2] if i > 1 else None for i in groups["source"]] == ["search", None]  # "main": validation only


def test_split_boundaries_and_gap():
    data = prepare_rec(hand_made_log(), CONFIG)
    assert data.split.end == 100 * DAY
    assert data.split.valid_start == 70 * DAY
    assert data.split.train_end == 68 * DAY
    # a group exactly at valid_start is validation; one just before is in the gap
    log = pl.concat([hand_made_log(), pl.DataFrame(
        _request(20, 1, 70, "search", [1, 2, 3], [1]) + _request(21, 1, 68, "search", [1, 2, 3], [1]),
        schema=hand_made_log().schema, orient="row")])
    data = prepare_rec(log, CONFIG)
    assert data.groups.filter(pl.col("request_id") == 20)["part"].to_list() == ["valid"]
    assert 21 not in data.groups["request_id"].to_list()


def test_history_holds_only_positives_in_time_order():
    data = prepare_rec(hand_made_log(), CONFIG)
    table = data.history.table.sort("user_id")
    actions = data.schema.categorical[2].vocabulary
    assert actions == ["click", "cart", "purchase"]
    user_1 = table.row(0, named=True)
    assert user_1["event_time"] == sorted(user_1["event_time"])
    decoded = [actions[i - 2] for i in user_1["action_type"]]
    assert decoded == ["click", "cart", "cart", "cart", "cart", "cart"]  # views never enter
    assert data.groups["user_row"].to_list() == [0, 1]


def test_out_of_order_rows_are_sorted_and_counted():
    log = hand_made_log()
    shuffled = log.sample(fraction=1.0, shuffle=True, seed=3)
    data, reference = prepare_rec(shuffled, CONFIG), prepare_rec(log, CONFIG)
    assert data.report["rows_out_of_time_order"] > 0
    assert data.groups.equals(reference.groups)


def test_save_and_load_round_trip(tmp_path):
    data = prepare_rec(hand_made_log(), CONFIG, output=tmp_path / "rec")
    loaded = load_rec_data(tmp_path / "rec")
    assert loaded.groups.equals(data.groups)
    assert loaded.split == data.split
    assert loaded.schema.fingerprint() == data.schema.fingerprint()


def test_datetimes_give_the_same_groups():
    log = hand_made_log()
    as_datetime = log.with_columns((pl.col("timestamp") * 1_000_000).cast(pl.Datetime("us")))
    assert prepare_rec(as_datetime, CONFIG).groups.equals(prepare_rec(log, CONFIG).groups)


def test_unknown_actions_are_listed():
    log = hand_made_log().with_columns(
        pl.when(pl.col("action_type") == "purchase").then(pl.lit("buy")).otherwise(pl.col("action_type"))
        .alias("action_type"))
    with pytest.raises(DataError, match=r"unknown actions \['buy'\].*known actions"):
        prepare_rec(log, CONFIG)


def test_request_spanning_users_is_an_error():
    log = hand_made_log().with_columns(
        pl.when((pl.col("request_id") == 10) & (pl.col("item_id") == 4)).then(7).otherwise(pl.col("user_id"))
        .alias("user_id"))
    with pytest.raises(DataError, match=r"span several users, e.g. \[10\]"):
        prepare_rec(log, CONFIG)


def test_empty_validation_window_names_the_dates():
    log = hand_made_log().filter(pl.col("request_id").is_null() | (pl.col("request_id") != 15))
    with pytest.raises(DataError, match=r"no valid request groups \(training before 1970-03-10.*validation until"):
        prepare_rec(log, CONFIG)


def test_missing_column_suggests_the_close_name():
    log = hand_made_log().rename({"request_id": "requestid"})
    with pytest.raises(ColumnError, match="'request_id' not found.*did you mean 'requestid'"):
        prepare_rec(log, CONFIG)


def test_log_shorter_than_the_validation_window_names_the_dates():
    log = hand_made_log().filter(pl.col("timestamp") >= 69 * DAY)
    with pytest.raises(DataError, match=r"no interactions before the training cut-off \(training before 1970-03-10"):
        prepare_rec(log, CONFIG)


def test_group_items_keep_display_order_and_merge_repeated_events():
    # shown 4, 1, 3 (not id order), item 1 viewed twice, item 4 carted, item 7 carted without a view
    rows = _request(20, 1, 10, "search", [4, 1, 3, 1], [4, 7])
    rows += [(1, 9, "click", None, 1 * DAY, None), (1, 9, "click", None, 99 * DAY, None)]
    rows += _request(21, 1, 80, "search", [1, 3, 4], [1])  # a validation group, so the split is not empty
    log = pl.DataFrame(rows, schema={"user_id": pl.Int64, "item_id": pl.Int64, "action_type": pl.String,
                                     "source_type": pl.String, "timestamp": pl.Int64, "request_id": pl.Int64},
                       orient="row")
    data = prepare_rec(log, CONFIG)
    first = data.groups.filter(pl.col("request_id") == 20)
    assert first["item_values"].to_list() == [[4, 1, 3, 7]]
    assert first["labels"].to_list() == [[1, 0, 0, 1]]


def _synthetic_log() -> pl.DataFrame:
    from eventseq.datasets.interactions import make_interactions

    return make_interactions(n_users=60, n_items=40, n_days=90, requests_per_user=4, positives_per_user=10,
                             seed=1).log


def test_chunks_of_users_give_the_same_histories_groups_and_report():
    log = _synthetic_log()
    whole = prepare_rec(log)
    assert whole.report["groups"]["train"] > 0 and whole.report["groups"]["valid"] > 0
    for chunk_rows in (log.height // 3, 50):  # 3 chunks, and chunks so small that some are empty
        chunked = prepare_rec(log, chunk_rows=chunk_rows)
        assert chunked.groups.equals(whole.groups)
        assert chunked.history.table.equals(whole.history.table)
        assert chunked.report == whole.report
        assert chunked.history.report == whole.history.report


def test_out_of_order_rows_are_sorted_within_each_chunk_of_users():
    log = _synthetic_log()
    shuffled = log.sample(fraction=1.0, shuffle=True, seed=5)
    chunked, whole = prepare_rec(shuffled, chunk_rows=100), prepare_rec(shuffled)
    assert chunked.report["rows_out_of_time_order"] > 0
    assert chunked.report == whole.report
    assert chunked.groups.equals(prepare_rec(log).groups)
    # events within one second keep their input order, as a stable sort of the whole log keeps them
    assert chunked.history.table.equals(whole.history.table)


def test_request_spanning_users_in_different_chunks_is_an_error():
    log = hand_made_log().with_columns(
        pl.when((pl.col("request_id") == 10) & (pl.col("item_id") == 4)).then(7).otherwise(pl.col("user_id"))
        .alias("user_id"))
    users = pl.Series([1, 7]).hash(seed=0)
    chunks = next(n for n in range(2, 50) if len(set((users % n).to_list())) == 2)  # users 1 and 7 apart
    rows = -(-log.height // chunks)
    assert -(-log.height // rows) == chunks
    with pytest.raises(DataError, match=r"span several users, e.g. \[10\]"):
        prepare_rec(log, CONFIG, chunk_rows=rows)


def test_extra_columns_are_ignored_and_chunk_rows_is_checked():
    log = hand_made_log().with_columns(pl.lit("note").alias("comment"))
    assert prepare_rec(log, CONFIG).groups.equals(prepare_rec(hand_made_log(), CONFIG).groups)
    with pytest.raises(ConfigError, match=r"chunk_rows=0: expected a whole number >= 1"):
        prepare_rec(log, CONFIG, chunk_rows=0)


def test_millisecond_times_are_refused_or_read_with_time_unit():
    log = hand_made_log()
    millis = log.with_columns(pl.col("timestamp") * 1000 + 1_600_000_000_000)
    seconds = log.with_columns(pl.col("timestamp") + 1_600_000_000)

    with pytest.raises(DataError, match=r"time column 'timestamp'.*set time_unit=ms"):
        prepare_rec(millis, CONFIG)
    assert prepare_rec(millis, dataclasses.replace(CONFIG, time_unit="ms")).groups.equals(
        prepare_rec(seconds, CONFIG).groups)


def test_progress_is_a_bar_over_the_log_rows(capsys):
    log = _synthetic_log()
    prepare_rec(log, progress=True)
    bar = capsys.readouterr().err
    assert "rec prepare: 100%" in bar and "rows" in bar
    prepare_rec(log)
    assert capsys.readouterr().err == ""
