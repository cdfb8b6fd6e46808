"""Tests for eventseq.data.schema: feature descriptions, JSON round trip, fingerprint."""

from __future__ import annotations

import json

import pytest

from eventseq.data.schema import (
    FIRST_VALUE_ID,
    PADDING_ID,
    UNKNOWN_ID,
    CategoricalFeature,
    NumericFeature,
    Schema,
    Target,
)
from eventseq.errors import ConfigError, FileFormatError


@pytest.fixture
def schema() -> Schema:
    return Schema(
        id_column="client_id",
        time_column="ts",
        time_kind="int",
        features=[
            CategoricalFeature(name="mcc", vocabulary=["food", "travel"]),
            NumericFeature(name="amount", transform="standardize", mean=2.5, std=0.5),
        ],
        targets=[Target(name="segment", task="multiclass", classes=["a", "b", "c"])],
    )


def test_reserved_ids():
    assert (PADDING_ID, UNKNOWN_ID, FIRST_VALUE_ID) == (0, 1, 2)


def test_num_embeddings_counts_padding_and_unknown():
    assert CategoricalFeature(name="mcc", vocabulary=["a", "b", "c"]).num_embeddings == 5
    assert CategoricalFeature(name="empty").num_embeddings == 2


def test_feature_views(schema):
    assert [f.name for f in schema.categorical] == ["mcc"]
    assert [f.name for f in schema.numeric] == ["amount"]
    assert schema.feature_names == ["mcc", "amount"]


def test_json_round_trip(schema):
    restored = Schema.from_json(schema.to_json())

    assert restored == schema
    assert isinstance(restored.features[0], CategoricalFeature)
    assert isinstance(restored.features[1], NumericFeature)


def test_dict_round_trip_keeps_kinds(schema):
    payload = schema.to_dict()

    assert [f["kind"] for f in payload["features"]] == ["categorical", "numeric"]
    assert Schema.from_dict(payload) == schema


def test_target_lookup(schema):
    assert schema.target("segment").classes == ["a", "b", "c"]


def test_unknown_target_suggests_close_name(schema):
    with pytest.raises(ConfigError, match="'segmant' is not in the schema.*did you mean 'segment'"):
        schema.target("segmant")


def test_fingerprint_ignores_targets(schema):
    without_targets = Schema.from_dict({**schema.to_dict(), "targets": []})

    assert without_targets.fingerprint() == schema.fingerprint()
    assert len(schema.fingerprint()) == 16


def test_fingerprint_changes_with_encoding_state(schema):
    other = Schema.from_json(schema.to_json())
    other.features[0].vocabulary.append("cash")

    assert other.fingerprint() != schema.fingerprint()


def test_fingerprint_ignores_the_last_bits_of_fitted_floats(schema):
    # Polars and Spark fit amount's mean as 2.6480532610737324 and 2.6480532610737337
    numeric = next(index for index, f in enumerate(schema.features) if f.kind == "numeric")
    close, far = Schema.from_json(schema.to_json()), Schema.from_json(schema.to_json())
    close.features[numeric].mean = schema.features[numeric].mean * (1 + 5e-16) + 1e-15
    far.features[numeric].mean = schema.features[numeric].mean + 1e-6

    assert close.fingerprint() == schema.fingerprint()
    assert far.fingerprint() != schema.fingerprint()


def test_unknown_feature_kind(schema):
    payload = schema.to_dict()
    payload["features"][0]["kind"] = "image"

    with pytest.raises(FileFormatError, match="'mcc' has unknown kind 'image'"):
        Schema.from_dict(payload)


def test_missing_key_is_not_a_schema(schema):
    payload = schema.to_dict()
    del payload["id_column"]

    with pytest.raises(FileFormatError, match="not an eventseq schema"):
        Schema.from_dict(payload)


def test_unexpected_key_is_not_a_schema(schema):
    payload = {**schema.to_dict(), "colour": "red"}

    with pytest.raises(FileFormatError, match="not an eventseq schema"):
        Schema.from_dict(payload)


def test_invalid_json():
    with pytest.raises(FileFormatError, match="not valid JSON"):
        Schema.from_json("{not json")


def test_to_json_is_plain_json(schema):
    payload = json.loads(schema.to_json())

    assert payload["version"] == 1
    assert payload["features"][1]["mean"] == 2.5
