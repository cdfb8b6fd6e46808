"""Tests for eventseq.data.bpe: event byte-pair encoding, its inverse, and prepare with BPE."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from eventseq.data.bpe import TOKEN_COLUMN, TOKEN_EVENTS_COLUMN, expand_tokens, learn_merges, tokenize
from eventseq.data import PrepareConfig, encode_events, load_prepared, prepare
from eventseq.data.schema import FIRST_VALUE_ID, TIME_COLUMN, Schema
from eventseq.errors import ConfigError

A, B, C = 0, 1, 2


def _flat(*sequences: list[int]) -> tuple[np.ndarray, np.ndarray]:
    tokens = np.array([t for sequence in sequences for t in sequence], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum([len(s) for s in sequences])])
    return tokens, offsets


def test_merges_on_a_crafted_sequence_and_the_inverse():
    tokens, offsets = _flat([A, B, A, B, C], [A, B, C])
    merges = learn_merges(tokens, offsets, base_size=3, merges=10)
    # (a, b) occurs 3 times -> token 3; then (ab, c) twice -> token 4; then nothing occurs twice
    assert merges == [[A, B], [3, C]]
    merged, first, new_offsets = tokenize(tokens, offsets, merges, base_size=3)
    assert merged.tolist() == [3, 4, 4]
    assert first.tolist() == [0, 2, 5]  # index of each token's first event
    assert new_offsets.tolist() == [0, 2, 3]
    assert expand_tokens(merged, merges, base_size=3).tolist() == tokens.tolist()


def test_runs_merge_left_to_right_without_overlap():
    tokens, offsets = _flat([A, A, A, A, A])
    merged, first, _ = tokenize(tokens, offsets, [[A, A]], base_size=3)
    assert merged.tolist() == [3, 3, A]
    assert first.tolist() == [0, 2, 4]
    assert expand_tokens(merged, [[A, A]], base_size=3).tolist() == tokens.tolist()


def test_pairs_never_cross_entities():
    tokens, offsets = _flat([C, A], [B, C], [A], [B])  # (a, b) only across entity boundaries
    # ties go to the smaller pair: (b, c) before (c, a)
    assert learn_merges(tokens, offsets, base_size=3, merges=5, min_count=1) == [[B, C], [C, A]]
    merged, _, new_offsets = tokenize(tokens, offsets, [[A, B]], base_size=3)
    assert merged.tolist() == tokens.tolist()
    assert new_offsets.tolist() == offsets.tolist()


def _events() -> pl.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for entity in range(40):
        for step in range(int(rng.integers(3, 30))):
            pattern = ["coffee", "metro"][step % 2] if entity % 2 else rng.choice(["food", "fuel", "coffee"])
            rows.append((entity, step * 60, pattern, float(rng.lognormal(3, 1))))
    return pl.DataFrame(rows, schema=["client", "ts", "shop", "amount"], orient="row")


def _bpe_config(**overrides) -> PrepareConfig:
    values = dict(id_column="client", time_column="ts", categorical=["shop"], numeric=["amount"],
                  quantize={"amount": 2}, bpe_fields=["shop"], bpe_merges=20)
    values.update(overrides)
    return PrepareConfig(**values)


def test_prepare_with_bpe_shortens_sequences_and_keeps_every_event(tmp_path):
    events = _events()
    prepared = prepare(events, _bpe_config(), output=tmp_path / "prep")
    table, schema = prepared.table, prepared.schema
    assert table.columns == ["client", TIME_COLUMN, TOKEN_COLUMN, "amount", TOKEN_EVENTS_COLUMN]
    assert schema.bpe is not None and len(schema.bpe.merges) > 0
    counts = np.expm1(table[TOKEN_EVENTS_COLUMN].explode().to_numpy()).round()
    assert counts.sum() == events.height  # every event is inside exactly one token
    assert prepared.report.tokens_out == table[TIME_COLUMN].list.len().sum() < events.height
    assert "tokens" in prepared.report.summary()
    # the alternating entities (coffee, metro, coffee, ...) compress the most
    alternating = table.filter(pl.col("client") == 1)[TOKEN_COLUMN].item().to_list()
    assert len(alternating) < len(events.filter(pl.col("client") == 1)) / 2
    # token times are the first event of each token: still sorted
    assert all(t == sorted(t) for t in table[TIME_COLUMN].to_list())
    # inference: raw events encoded with the saved schema give the same table
    reloaded = load_prepared(tmp_path / "prep")
    again = encode_events(events, reloaded.schema)
    assert again.table.equals(table)
    assert Schema.from_json(json.dumps(schema.to_dict())) == schema


def test_bpe_token_names_read_back_to_events():
    prepared = prepare(_events(), _bpe_config())
    vocabulary = prepared.schema.features[0].vocabulary
    merged = [name for name in vocabulary if " " in name]
    assert merged and all(part.startswith("shop=") for name in merged for part in name.split(" "))
    ids = prepared.table.filter(pl.col("client") == 1)[TOKEN_COLUMN].item().to_list()
    first = vocabulary[ids[0] - FIRST_VALUE_ID].split(" ")
    assert first[0] == "shop=coffee"


def test_bpe_over_a_categorical_and_an_amount_bucket():
    prepared = prepare(_events(), _bpe_config(bpe_fields=["shop", "amount"]))
    assert prepared.schema.bpe.fields == ["shop", "amount"]
    assert prepared.table.columns == ["client", TIME_COLUMN, TOKEN_COLUMN, TOKEN_EVENTS_COLUMN]
    assert any("amount=q" in name for name in prepared.schema.features[0].vocabulary)


def test_bpe_config_errors():
    with pytest.raises(ConfigError, match=r"'amount'.*quantize"):
        prepare(_events(), _bpe_config(quantize={}, bpe_fields=["amount"]))
    with pytest.raises(ConfigError, match="shpo"):
        prepare(_events(), _bpe_config(bpe_fields=["shpo"]))
    with pytest.raises(ConfigError, match="quantize.amount"):
        prepare(_events(), _bpe_config(quantize={"amount": 1}))


def test_fit_learns_the_merges_without_encoding_the_labels():
    from eventseq.data import SequencePreparer

    events = _events()
    # a labels table naming an entity with no events: fit (schema + merges) does not care, as before BPE
    labels = pl.DataFrame({"client": [0, 1, 999], "label": [0, 1, 1]})
    preparer = SequencePreparer(_bpe_config(targets={"label": "binary"})).fit(events, labels)
    assert preparer.schema_.bpe is not None and preparer.schema_.target("label").classes == [0, 1]
    assert encode_events(events, preparer.schema_).table.equals(prepare(events, _bpe_config()).table)
