"""Tests for eventseq.data.sources: several event sources per entity, merged into one stream."""

from __future__ import annotations

import dataclasses

import numpy as np
import polars as pl
import pytest
import torch

from eventseq.data import SequenceDataset
from eventseq.data import PrepareConfig, encode_events, load_prepared, prepare
from eventseq.data.schema import FIRST_VALUE_ID, TIME_COLUMN, UNKNOWN_ID
from eventseq.errors import ColumnError, DataError
from eventseq.nn import EventEncoder, EventEncoderConfig


def _sources(entities: int = 2, seed: int = 0) -> dict[str, pl.DataFrame]:
    rng = np.random.default_rng(seed)
    card = pl.DataFrame({
        "client": np.repeat(np.arange(entities), 3),
        "ts": np.tile([10, 30, 50], entities),
        "mcc": rng.choice(["food", "fuel"], 3 * entities),
        "amount": rng.lognormal(3, 1, 3 * entities),
    })
    app = pl.DataFrame({
        "client": np.repeat(np.arange(entities), 2),
        "ts": np.tile([20, 30], entities),  # ts=30 ties with a card event: card (listed first) goes first
        "screen": rng.choice(["home", "pay", "help"], 2 * entities),
    })
    return {"card": card, "app": app}


def _config(**changes) -> PrepareConfig:
    return PrepareConfig(id_column="client", time_column="ts", categorical=["mcc", "screen"], numeric=["amount"],
                         **changes)


def test_sources_merge_into_one_time_ordered_stream(tmp_path):
    prepared = prepare(_sources(), _config(), output=tmp_path / "prep")
    schema = prepared.schema
    assert schema.source_column == "source"
    assert schema.sources == {"app": ["screen"], "card": ["mcc", "amount"]}
    row = prepared.table.filter(pl.col("client") == 0).to_dicts()[0]
    source_names = [schema.categorical[-1].vocabulary[i - FIRST_VALUE_ID] for i in row["source"]]
    assert row[TIME_COLUMN] == [10, 20, 30, 30, 50]
    assert source_names == ["card", "app", "card", "app", "card"]
    is_app = np.array(source_names) == "app"
    # a field a source lacks is "not there" for its events: unknown id, numeric 0 (no invalid-value error)
    assert (np.array(row["mcc"])[is_app] == UNKNOWN_ID).all() and (np.array(row["screen"])[~is_app] == UNKNOWN_ID).all()
    assert (np.array(row["amount"])[is_app] == 0.0).all() and (np.array(row["amount"])[~is_app] > 0).all()
    # inference encodes a dict of sources with the saved schema the same way
    again = encode_events(_sources(), load_prepared(tmp_path / "prep").schema)
    assert again.table.equals(prepared.table)
    # unknown values are counted among the events of sources that have the field only
    assert prepared.report.unknown_values == {"mcc": 0, "screen": 0, "source": 0}


def test_a_real_invalid_value_is_still_an_error():
    sources = _sources()
    sources["card"] = sources["card"].with_columns(pl.when(pl.int_range(pl.len()) == 1).then(float("nan"))
                                                   .otherwise(pl.col("amount")).alias("amount"))
    with pytest.raises(DataError, match="'amount'"):
        prepare(sources, _config())


def test_bad_sources_are_named():
    sources = _sources()
    with pytest.raises(ColumnError, match=r"source 'app' has no column 'ts'"):
        prepare({**sources, "app": sources["app"].drop("ts")}, _config())
    with pytest.raises(ColumnError, match=r"'mcc'.*'card'.*'app'"):
        prepare({**sources, "app": sources["app"].with_columns(pl.lit(1.5).alias("mcc"))}, _config())
    with pytest.raises(ColumnError, match="already has a column 'source'"):
        prepare({**sources, "app": sources["app"].with_columns(pl.lit("x").alias("source"))}, _config())


def test_each_source_has_its_own_event_encoder():
    prepared = prepare(_sources(entities=6), _config())
    dataset = SequenceDataset.from_table(prepared.table, prepared.schema)
    batch = dataset.collate(np.arange(len(dataset)))
    encoder = EventEncoder(prepared.schema, EventEncoderConfig(output_dim=6))
    assert set(encoder.source_encoders) == {"app", "card"}
    assert "screen" not in encoder.source_encoders["card"].embeddings
    vectors = encoder(batch)
    assert vectors.shape == (6, 5, 6) and torch.all(vectors[~batch.mask] == 0)
    # the card encoder's numeric statistics see card events only
    norm = encoder.source_encoders["card"].numeric_norm.norm
    card = batch.features["source"] == prepared.schema.categorical[-1].vocabulary.index("card") + FIRST_VALUE_ID
    assert norm.running_mean[0].item() == pytest.approx(0.1 * batch.features["amount"][card].mean().item(), rel=1e-4)
    # changing an app event's screen changes that event only
    encoder.eval()
    screens = batch.features["screen"].clone()
    screens[0, 1] = 2 if screens[0, 1] != 2 else 3
    changed = encoder(dataclasses.replace(batch, features={**batch.features, "screen": screens}))
    assert ((encoder(batch) != changed).any(dim=-1)).nonzero().tolist() == [[0, 1]]


@pytest.mark.parametrize("command", ["train", "pretrain"])
def test_supervised_and_coles_train_on_several_sources(tmp_path, command):
    from eventseq.training import PretrainConfig, TrainConfig, pretrain, train

    labels = pl.DataFrame({"client": np.arange(40), "label": np.arange(40) % 2})
    prepare(_sources(entities=40), _config(targets={"label": "binary"}), labels=labels, output=tmp_path / "prep")
    config = TrainConfig(output=str(tmp_path / "run")) if command == "train" else PretrainConfig(
        output=str(tmp_path / "run"))
    config.data.path = str(tmp_path / "prep")
    config.model.sequence_encoder.hidden_size = 8
    config.trainer.max_epochs = 1
    config.trainer.progress_bar = False
    if command == "pretrain":
        config.coles.views.min_len, config.coles.views.max_len, config.coles.views.split_count = 2, 4, 2
    result = (train if command == "train" else pretrain)(config)
    assert all(np.isfinite(value) for value in result.metrics.values() if isinstance(value, (int, float)))
    assert result.module.encoder.event_encoder.source_encoders is not None


def test_cli_prepares_sources_with_quantized_bpe_tokens(tmp_path):
    from eventseq.cli import main

    for name, frame in _sources(entities=5).items():
        frame.write_parquet(tmp_path / f"{name}.parquet")
    output = tmp_path / "prep"
    code = main(["prepare", f"sources={{card:{tmp_path / 'card.parquet'},app:{tmp_path / 'app.parquet'}}}",
                 "id_column=client", "time_column=ts", "categorical=[mcc,screen]", "numeric=[amount]",
                 "quantize={amount:2}", "bpe_fields=[source,mcc]", "bpe_merges=3", f"output={output}"])
    assert code == 0
    prepared = load_prepared(output)
    assert prepared.schema.sources == {"app": ["screen"], "card": ["mcc", "amount"]}
    assert prepared.schema.bpe.fields == ["source", "mcc"] and len(prepared.schema.bpe.merges) == 3
    assert next(f for f in prepared.schema.bpe.features if f.name == "amount").edges  # quantized
    assert main(["prepare", "input=x.parquet", f"sources={{card:{tmp_path / 'card.parquet'}}}"]) == 2


def test_aggregates_leave_out_fields_a_source_lacks():
    from eventseq.downstream import aggregate_features

    card = pl.DataFrame({"client": [1, 1, 2], "ts": [10, 30, 15], "mcc": ["food", "fuel", "food"],
                         "amount": [12.5, 40.0, 7.0]})
    app = pl.DataFrame({"client": [1, 2, 2], "ts": [20, 5, 16], "screen": ["home", "pay", "home"]})
    prepared = prepare({"card": card, "app": app}, _config(default_numeric_transform="log_standardize"))
    features = aggregate_features(prepared.table, prepared.schema, max_categories=None).sort("client")
    assert features["amount_sum"].to_list() == pytest.approx([52.5, 7.0])
    assert features["amount_mean"].to_list() == pytest.approx([26.25, 7.0])
    assert features["amount_min"].to_list() == pytest.approx([12.5, 7.0])
    assert f"mcc_count_{UNKNOWN_ID}" not in features.columns  # app events are not "unknown merchants"
    assert features["n_events"].to_list() == [3, 3]
