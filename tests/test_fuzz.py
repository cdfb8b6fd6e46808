"""Property-based fuzzing of the data path (hypothesis): prepare, collate, predict and rec prepare.

Every generated input either gives a clear EventseqError or a result that keeps the invariants
below; anything else (a raw Polars/Arrow/torch exception, NaN in an output, lost rows) fails. The
examples are few and small so that the file runs in well under a minute.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventseq.data.dataset import SequenceDataset
from eventseq.data import PrepareConfig, encode_events, prepare
from eventseq.data.schema import TIME_COLUMN, UNKNOWN_ID
from eventseq.errors import EventseqError

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
NOW = 1_700_000_000

DEFECTS = ["null id", "null time", "time in ms", "time beyond int32 years", "nan amount", "inf amount",
           "huge amount", "null category", "nan category", "no rows"]


@st.composite
def event_tables(draw: st.DrawFn) -> pl.DataFrame:
    """A mostly valid event log, with (one time in three) one defect a user's data may have."""
    rows = draw(st.integers(min_value=1, max_value=25))
    frame = pl.DataFrame(
        {
            "id": draw(st.lists(st.integers(0, 5), min_size=rows, max_size=rows)),
            "t": draw(st.lists(st.integers(NOW - 10**7, NOW + 10**7), min_size=rows, max_size=rows)),
            "mcc": draw(st.lists(st.sampled_from(["food", "travel", "cash", "", "NaN"]), min_size=rows, max_size=rows)),
            "amount": draw(st.lists(st.floats(-1e6, 1e6), min_size=rows, max_size=rows)),
        },
        schema={"id": pl.Int64, "t": pl.Int64, "mcc": pl.String, "amount": pl.Float64},
    )
    defect = draw(st.sampled_from([None, None, *DEFECTS]))
    row = draw(st.integers(0, rows - 1))
    at_row = pl.int_range(pl.len()) == row
    column, value = {
        "null id": ("id", None), "null time": ("t", None), "time in ms": ("t", NOW * 1000),
        "time beyond int32 years": ("t", 2**62), "nan amount": ("amount", float("nan")),
        "inf amount": ("amount", float("inf")), "huge amount": ("amount", 1e300), "null category": ("mcc", None),
        "nan category": ("mcc", "NaN"),
    }.get(defect, (None, None))
    if column is not None:
        frame = frame.with_columns(pl.when(at_row).then(pl.lit(value, dtype=frame.schema[column]))
                                   .otherwise(pl.col(column)).alias(column))
    return frame.head(0) if defect == "no rows" else frame


policies = st.fixed_dictionaries({
    "invalid_numeric": st.sampled_from(["error", "fill", "drop"]),
    "null_time": st.sampled_from(["drop", "error"]),
    "default_numeric_transform": st.sampled_from(["identity", "log", "standardize", "log_standardize"]),
    "min_frequency": st.integers(1, 3),
})


def _check_sequence_table(prepared, rows_in: int) -> None:
    table, schema, report = prepared.table, prepared.schema, prepared.report
    assert table.height == table.get_column("id").n_unique() == report.entities_out
    lengths = table.get_column(TIME_COLUMN).list.len()
    for column in ("mcc", "amount"):
        assert table.get_column(column).list.len().equals(lengths)
    for times_of_entity in table.get_column(TIME_COLUMN).to_list():
        assert times_of_entity == sorted(times_of_entity)
    ids = table.get_column("mcc").explode()
    assert ids.min() >= UNKNOWN_ID and ids.max() <= UNKNOWN_ID + len(schema.categorical[0].vocabulary)
    values = table.get_column("amount").explode()
    assert values.is_finite().all()  # prepare never writes a non-finite value
    dropped = sum(count for reason, count in report.rows_dropped.items() if "(kept)" not in reason)
    assert report.rows_in == rows_in and report.events_out + dropped == rows_in  # no row lost unreported


@FUZZ
@given(events=event_tables(), policy=policies)
def test_prepare_gives_a_clear_error_or_a_valid_table(events, policy):
    config = PrepareConfig(id_column="id", time_column="t", categorical=["mcc"], numeric=["amount"], **policy)
    try:
        prepared = prepare(events, config)
    except EventseqError:
        return
    _check_sequence_table(prepared, events.height)


@FUZZ
@given(events=event_tables(), max_len=st.one_of(st.none(), st.integers(1, 6)), data=st.data())
def test_collate_pads_exactly_the_events_it_keeps(events, max_len, data):
    config = PrepareConfig(id_column="id", time_column="t", categorical=["mcc"], numeric=["amount"],
                           invalid_numeric="drop", null_time="drop")
    try:
        prepared = prepare(events, config)
    except EventseqError:
        return
    dataset = SequenceDataset.from_table(prepared.table, prepared.schema, max_len=max_len)
    positions = data.draw(st.lists(st.integers(0, len(dataset) - 1), min_size=1, max_size=len(dataset)))
    batch = dataset.collate(positions)

    full = prepared.table.get_column(TIME_COLUMN).list.len().to_numpy()[positions]
    expected = full if max_len is None else np.minimum(full, max_len)
    assert batch.lengths.tolist() == expected.tolist()
    assert batch.mask.sum(dim=1).tolist() == expected.tolist()
    assert (batch.features["mcc"][~batch.mask] == 0).all() and (batch.features["amount"][~batch.mask] == 0).all()
    for row, position in enumerate(positions):  # the most recent events, in time order
        times_of_entity = prepared.table.get_column(TIME_COLUMN)[position].to_list()
        assert batch.event_time[row, : expected[row]].tolist() == times_of_entity[len(times_of_entity) - expected[row]:]


@pytest.fixture(scope="module")
def fuzz_model():
    """An untrained tiny supervised model over a fixed schema: predict must never crash on raw events."""
    from eventseq.nn.encoder import EncoderConfig
    from eventseq.objectives.supervised import HeadConfig, SupervisedModule, resolve_head

    base = pl.DataFrame({"id": [1, 1, 2, 2], "t": [NOW, NOW + 1, NOW, NOW + 5], "mcc": ["food", "cash", "food", None],
                         "amount": [1.0, 2.0, 3.0, 4.0], "y": [0, 0, 1, 1]})
    schema = prepare(base, PrepareConfig(id_column="id", time_column="t", categorical=["mcc"], numeric=["amount"],
                                         targets={"y": "binary"})).schema
    config = EncoderConfig()
    config.sequence_encoder.hidden_size = 4
    return SupervisedModule(schema, config, resolve_head(schema, HeadConfig()))


@FUZZ
@given(events=event_tables())
def test_predict_gives_a_clear_error_or_one_finite_probability_per_entity(fuzz_model, events):
    from eventseq.inference import predict

    try:
        expected = encode_events(events, fuzz_model.schema).table.get_column("id").to_list()
        predictions = predict(fuzz_model, events, progress=False)
    except EventseqError:
        return
    assert predictions.get_column("id").to_list() == expected
    probabilities = predictions.get_column("y_proba").to_list()
    assert all(0.0 <= value <= 1.0 and math.isfinite(value) for value in probabilities)


@st.composite
def interaction_logs(draw: st.DrawFn) -> pl.DataFrame:
    """Requests (views of distinct items, some carted) and positives outside them, over 60 days, with at
    times one defect: a null item, an unknown action, a request shared by two users."""
    day, rows = 86_400, []
    for request in range(draw(st.integers(4, 12))):
        user, start = draw(st.integers(0, 4)), NOW + request * 6 * day + draw(st.integers(0, 3 * day))
        source = draw(st.sampled_from(["search", "catalog", None]))
        shown = draw(st.lists(st.integers(0, 9), min_size=2, max_size=5, unique=True))
        carted = shown[: draw(st.integers(0, len(shown)))] if request % 3 == 0 else shown[:1]
        rows += [(user, item, "view", source, start + i, request) for i, item in enumerate(shown)]
        rows += [(user, item, "cart", source, start + 100 + i, request) for i, item in enumerate(carted)]
    for _ in range(draw(st.integers(3, 10))):
        rows.append((draw(st.integers(0, 4)), draw(st.integers(0, 9)), draw(st.sampled_from(["click", "purchase"])),
                     None, NOW + draw(st.integers(0, 60 * day)), None))
    defect = draw(st.sampled_from([None] * 5 + ["null item", "unknown action", "shared request"]))
    if rows and defect == "null item":
        rows[0] = (rows[0][0], None, *rows[0][2:])
    elif rows and defect == "unknown action":
        rows[0] = (*rows[0][:2], "wishlist", *rows[0][3:])
    elif rows and defect == "shared request" and rows[0][5] is not None:
        rows.append((rows[0][0] + 1, rows[0][1], "view", rows[0][3], rows[0][4], rows[0][5]))
    return pl.DataFrame(rows, schema={"user_id": pl.Int64, "item_id": pl.Int64, "action_type": pl.String,
                                      "source_type": pl.String, "timestamp": pl.Int64, "request_id": pl.Int64},
                        orient="row")


@FUZZ
@given(log=interaction_logs(), min_group_size=st.integers(2, 3), valid_days=st.floats(5.0, 30.0))
def test_rec_prepare_gives_a_clear_error_or_valid_groups(log, min_group_size, valid_days):
    from eventseq.rec.data import prepare_rec

    try:
        data = prepare_rec(log, min_group_size=min_group_size, valid_days=valid_days, gap_days=0.0)
    except EventseqError:
        return
    groups = data.groups
    assert set(groups.get_column("part").unique().to_list()) <= {"train", "valid"}
    for items, labels in zip(groups.get_column("items").to_list(), groups.get_column("labels").to_list()):
        assert len(items) == len(labels) >= min_group_size
        assert set(labels) == {0, 1}  # a group needs a positive and a negative
    assert groups.get_column("request_id").n_unique() == groups.height
