"""Per-event embeddings: `embed(..., level="event")` and `eventseq embed level=event`."""

from __future__ import annotations

import re

import lightning as L
import numpy as np
import polars as pl
import pytest
import torch
from polars.testing import assert_frame_equal

from eventseq import inference
from eventseq.cli import main
from eventseq.data import load_prepared
from eventseq.data.schema import Schema
from eventseq.errors import ConfigError
from eventseq.inference import embed
from eventseq.nn.encoder import Encoder, EncoderConfig
from eventseq.objectives.supervised import HeadConfig, SupervisedModule, resolve_head

EMB = [f"emb_{i}" for i in range(8)]


@pytest.fixture
def trained(causal_trained):
    """Here the shared tiny GRU run is the one without the recency inputs (level=event needs a causal model)."""
    return causal_trained


def _module(schema: Schema, **sequence_encoder) -> SupervisedModule:
    """An untrained supervised model (seeded weights, hidden size 8) with these sequence-encoder options."""
    config = EncoderConfig()
    config.event_encoder.recency = False
    config.sequence_encoder.hidden_size = 8
    for key, value in sequence_encoder.items():
        setattr(config.sequence_encoder, key, value)
    torch.manual_seed(0)
    return SupervisedModule(schema, config, resolve_head(schema, HeadConfig()))


class EncoderOnly(L.LightningModule):
    """The least a model needs for level=event: a schema and an `encoder` (as every objective has)."""

    def __init__(self, schema: Schema, encoder: Encoder) -> None:
        super().__init__()
        self.schema = schema
        self.encoder = encoder


def _lengths(events: pl.DataFrame) -> pl.DataFrame:
    return events.group_by("entity_id").agg(pl.len().cast(pl.Int64).alias("length")).sort("entity_id")


# ------------------------------------------------------------------ rows and values


def test_one_row_per_event_with_its_id_index_and_time(tiny_prepared, tiny_events):
    result = embed(_module(tiny_prepared.schema), tiny_events, level="event", progress=False)
    assert result.columns == ["client_id", "event_index", "event_time", *EMB]
    # time ties keep their input order, as in prepare
    assert result["client_id"].to_list() == [1, 1, 1, 2, 2, 2, 3, 3]
    assert result["event_index"].to_list() == [0, 1, 2, 0, 1, 2, 0, 1]
    assert result["event_time"].to_list() == [10, 20, 20, 10, 30, 30, 5, 15]
    assert result["event_index"].dtype == result["event_time"].dtype == pl.Int64
    assert np.isfinite(result.select(EMB).to_numpy()).all()


def test_rows_follow_the_prepared_sequences(trained, prepared_dir):
    prepared = load_prepared(prepared_dir)
    expected = (
        prepared.table.select("entity_id", "event_time").explode("event_time")
        .with_columns(pl.int_range(pl.len(), dtype=pl.Int64).over("entity_id").alias("event_index"))
        .select("entity_id", "event_index", "event_time")
    )
    result = embed(trained.model_dir, prepared_dir, level="event", progress=False)
    assert result.height == expected.height > 240
    assert_frame_equal(result.select(expected.columns), expected)


def test_last_mean_and_max_of_event_vectors_make_the_default_entity_embedding(trained, synthetic):
    # the default pooling, last+mean+max: [state at the last event, mean and max of the states at every event]
    assert trained.module.encoder_config.sequence_encoder.pooling == "last+mean+max"
    width = trained.module.encoder.output_dim
    for max_len in (None, 5):  # None: whole sequences in both modes (all shorter than the training max_len)
        entities = embed(trained.model_dir, synthetic.events, max_len=max_len, progress=False)
        assert len([c for c in entities.columns if c.startswith("emb_")]) == 3 * width
        events = embed(trained.model_dir, synthetic.events, max_len=max_len, level="event", progress=False)
        by_entity = events.drop("event_index", "event_time").group_by("entity_id", maintain_order=True)
        last, mean, largest = by_entity.last(), by_entity.mean(), by_entity.max()
        expected = (last.join(mean, on="entity_id", suffix="_mean", maintain_order="left")
                    .join(largest, on="entity_id", suffix="_max", maintain_order="left"))
        np.testing.assert_allclose(entities.drop("entity_id").to_numpy(), expected.drop("entity_id").to_numpy(),
                                   rtol=1e-4, atol=1e-5)


def test_max_len_keeps_the_most_recent_events_and_says_how_many_are_left_out(trained, synthetic, capsys):
    result = embed(trained.model_dir, synthetic.events, max_len=5, level="event", progress=False)
    lengths = _lengths(synthetic.events)
    kept = result.group_by("entity_id").agg(pl.len().alias("rows"), pl.col("event_index").min().alias("first"),
                                            pl.col("event_index").max().alias("last")).sort("entity_id")
    assert kept["rows"].to_list() == lengths["length"].clip(upper_bound=5).to_list()
    assert kept["first"].to_list() == (lengths["length"] - 5).clip(lower_bound=0).to_list()
    assert kept["last"].to_list() == (lengths["length"] - 1).to_list()  # indices in the full sequence
    left_out = int((lengths["length"] - 5).clip(lower_bound=0).sum())
    cut = int((lengths["length"] > 5).sum())
    err = capsys.readouterr().err
    assert f"most recent 5 events per entity (max_len=5); {left_out:,} earlier events of {cut:,} entities" in err


def test_learned_positions_embed_at_most_max_positions_events_with_a_note(prepared_dir, synthetic, capsys):
    schema = load_prepared(prepared_dir).schema
    module = _module(schema, type="transformer", causal=True, positional="learned", max_positions=8)
    result = embed(module, synthetic.events, level="event", progress=False)
    lengths = _lengths(synthetic.events)
    assert result.height == int(lengths["length"].clip(upper_bound=8).sum())
    last = result.group_by("entity_id").agg(pl.col("event_index").max()).sort("entity_id")
    assert last["event_index"].to_list() == (lengths["length"] - 1).to_list()
    left_out = int((lengths["length"] - 8).clip(lower_bound=0).sum())
    assert left_out > 0
    err = capsys.readouterr().err
    assert "learned positions for max_positions=8" in err and f"{left_out:,} earlier events" in err


# ------------------------------------------------------------------ causality


@pytest.mark.parametrize(
    "sequence_encoder",
    [
        {"type": "gru"},
        {"type": "lstm"},
        {"type": "cnn", "causal": True, "num_layers": 2},
        {"type": "transformer", "causal": True},
        {"type": "transformer", "causal": True, "positional": "learned", "max_positions": 64},
    ],
    ids=["gru", "lstm", "causal-cnn", "causal-transformer", "causal-transformer-learned"],
)
def test_later_events_do_not_change_earlier_vectors(prepared_dir, synthetic, sequence_encoder):
    module = _module(load_prepared(prepared_dir).schema, **sequence_encoder)
    events = synthetic.events.sort("entity_id", "event_time", maintain_order=True).with_columns(
        pl.int_range(pl.len()).over("entity_id").alias("position"), pl.len().over("entity_id").alias("length")
    )
    later = pl.col("position") >= pl.col("length") // 2
    # even entities lose their later events; odd ones get other amounts, times and channels for them
    changed = events.filter(~later | (pl.col("entity_id") % 2 == 1)).with_columns(
        pl.when(later).then(pl.col("amount") * 7 + 100).otherwise(pl.col("amount")).alias("amount"),
        pl.when(later).then(pl.col("event_time") + 50_000).otherwise(pl.col("event_time")).alias("event_time"),
        pl.when(later).then(None).otherwise(pl.col("channel")).alias("channel"),
    )
    columns = ["entity_id", "event_index", "event_time", *EMB]
    before = embed(module, events.drop("position", "length"), level="event", progress=False).select(columns)
    after = embed(module, changed.drop("position", "length"), level="event", progress=False).select(columns)
    half = _lengths(synthetic.events).with_columns((pl.col("length") // 2).alias("half"))

    def earlier(frame: pl.DataFrame) -> pl.DataFrame:
        return frame.join(half, on="entity_id").filter(pl.col("event_index") < pl.col("half")).select(columns)

    assert earlier(before).height == int(half["half"].sum()) > 0
    assert_frame_equal(earlier(after), earlier(before), check_exact=False, rtol=1e-5, atol=1e-5)
    # the change did reach the later events: the comparison above could have failed
    odd_later = pl.col("entity_id") % 2 == 1
    changed_rows = after.join(half, on="entity_id").filter(odd_later & (pl.col("event_index") >= pl.col("half")))
    same_rows = before.join(changed_rows.select("entity_id", "event_index"), on=["entity_id", "event_index"])
    assert not np.allclose(changed_rows.select(EMB).to_numpy(), same_rows.select(EMB).to_numpy(), atol=1e-3)


@pytest.mark.parametrize("encoder_type", ["transformer", "cnn"])
def test_a_non_causal_encoder_is_refused(prepared_dir, synthetic, encoder_type):
    module = _module(load_prepared(prepared_dir).schema, type=encoder_type, causal=False)
    message = rf"level=event needs a causal encoder.*GRU/LSTM.*causal=true.*type={encoder_type} with causal=false"
    with pytest.raises(ConfigError, match=message):
        embed(module, synthetic.events, level="event", progress=False)
    assert embed(module, synthetic.events, progress=False).height == 240  # level=entity is fine


def test_a_gru_trained_with_recency_inputs_is_refused(prepared_dir, synthetic):
    config = EncoderConfig()  # a GRU, causal by itself; recency gives each event the time to the history's end
    config.event_encoder.recency = True
    config.sequence_encoder.hidden_size = 8
    schema = load_prepared(prepared_dir).schema
    module = SupervisedModule(schema, config, resolve_head(schema, HeadConfig()))
    with pytest.raises(ConfigError, match="trained with event_encoder.recency=true.*model.event_encoder.recency=false"):
        embed(module, synthetic.events, level="event", progress=False)


# ------------------------------------------------------------------ any model with an encoder, options


def test_any_module_with_an_encoder_works(trained, synthetic):
    stand_in = EncoderOnly(trained.module.schema, trained.module.encoder)
    assert_frame_equal(
        embed(stand_in, synthetic.events, level="event", progress=False),
        embed(trained.module, synthetic.events, level="event", progress=False),
    )


def test_a_module_without_an_encoder_is_refused(trained, synthetic):
    class NoEncoder(L.LightningModule):
        schema = trained.module.schema

    with pytest.raises(ConfigError, match="needs a model whose `encoder` is an eventseq Encoder.*NoEncoder has none"):
        embed(NoEncoder(), synthetic.events, level="event", progress=False)


def test_chunks_windows_and_batches_do_not_change_the_result(trained, prepared_dir, monkeypatch):
    whole = embed(trained.model_dir, prepared_dir, level="event", progress=False)
    monkeypatch.setattr(inference, "EVENTS_PER_WRITE", 20)  # several windows per chunk
    small = embed(trained.model_dir, prepared_dir, level="event", chunk_rows=7, batch_size=3, progress=False)
    assert_frame_equal(small, whole, check_exact=False, rtol=1e-5, atol=1e-6)


def test_output_file_is_written_atomically_and_reads_back(trained, synthetic, tmp_path, monkeypatch):
    monkeypatch.setattr(inference, "EVENTS_PER_WRITE", 100)
    target = tmp_path / "out" / "events.parquet"
    written = embed(trained.model_dir, synthetic.events, output=target, chunk_rows=50, level="event", progress=False)
    assert written == target
    assert [p.name for p in target.parent.iterdir()] == [target.name]  # no temp file left
    in_memory = embed(trained.model_dir, synthetic.events, chunk_rows=50, level="event", progress=False)
    assert_frame_equal(pl.read_parquet(target), in_memory)


def test_quantized_event_embeddings_stay_close_to_float(trained, prepared_dir):
    exact = embed(trained.module, prepared_dir, level="event", progress=False)
    quantized = embed(trained.module, prepared_dir, level="event", progress=False, quantize=True)
    assert_frame_equal(quantized.drop(EMB), exact.drop(EMB))
    left, right = exact.select(EMB).to_numpy(), quantized.select(EMB).to_numpy()
    assert not np.array_equal(left, right)  # int8 really ran
    np.testing.assert_allclose(right, left, atol=0.05)


@pytest.mark.parametrize("level, max_len, message", [
    ("events", None, "level='events': expected entity (one vector per entity) or event (one vector per event)"),
    ("event", 0, "max_len=0: expected a whole number >= 1"),
])
def test_bad_level_or_max_len_is_a_config_error(trained, synthetic, level, max_len, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        embed(trained.model_dir, synthetic.events, level=level, max_len=max_len, progress=False)


# ------------------------------------------------------------------ command line and docs


def test_cli_embed_level_event(trained, prepared_dir, synthetic, tmp_path, capsys):
    output = tmp_path / "events.parquet"
    assert main(["embed", f"model={trained.model_dir}", f"data={prepared_dir}", f"output={output}",
                 "progress=false", "level=event", "chunk_rows=40"]) == 0
    assert f"written: {output}" in capsys.readouterr().out
    written = pl.read_parquet(output)
    assert written.columns == ["entity_id", "event_index", "event_time", *EMB]
    assert written.height == synthetic.events.height
    assert_frame_equal(written, embed(trained.model_dir, prepared_dir, level="event", progress=False))


def test_cli_embed_level_event_of_a_coles_model(prepared_dir, tmp_path):
    run = tmp_path / "coles"
    assert main(["pretrain", f"data.path={prepared_dir}", f"output={run}", "trainer.max_epochs=1",
                 "trainer.progress_bar=false", "model.sequence_encoder.hidden_size=8", "coles.views.min_len=3",
                 "coles.views.max_len=10", "model.sequence_encoder.pooling=last", "model.event_encoder.recency=false"]) == 0
    for level in ("entity", "event"):
        assert main(["embed", f"model={run / 'model'}", f"data={prepared_dir}", f"output={tmp_path / level}.parquet",
                     "progress=false", f"level={level}"]) == 0
    entities, events = pl.read_parquet(tmp_path / "entity.parquet"), pl.read_parquet(tmp_path / "event.parquet")
    assert events.height == load_prepared(prepared_dir).table["event_time"].list.len().sum()
    last = events.group_by("entity_id", maintain_order=True).last().drop("event_index", "event_time")
    assert_frame_equal(last, entities, check_exact=False, rtol=1e-5, atol=1e-6)  # GRU, pooling=last


@pytest.mark.parametrize("overrides, message", [
    (["level=event", "plot=map.png"], "plot= maps one point per entity: it needs level=entity"),
    (["level=entities"], "level='entities': expected one of ['entity', 'event']"),
])
def test_cli_bad_level_options_exit_2(trained, prepared_dir, tmp_path, capsys, overrides, message):
    output = tmp_path / "events.parquet"
    assert main(["embed", f"model={trained.model_dir}", f"data={prepared_dir}", f"output={output}",
                 "progress=false", *overrides]) == 2
    assert message in capsys.readouterr().err
    assert not output.exists()


def test_docs_per_event_example_runs(prepared_dir, tmp_path, monkeypatch, python_block):
    code = python_block("inference.md", "## Per-event embeddings")
    assert "config.trainer.max_epochs = 3" in code
    code = code.replace("config.trainer.max_epochs = 3", "config.trainer.max_epochs = 1\nconfig.trainer.progress_bar = False")
    (tmp_path / "prepared").symlink_to(prepared_dir)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code, "docs", "exec"), namespace)
    assert namespace["events"].height == load_prepared(prepared_dir).table["event_time"].list.len().sum()
    assert namespace["as_of_third_event"]["event_index"].unique().to_list() == [2]


def test_a_forward_pass_holds_a_bounded_number_of_padded_events(monkeypatch):
    monkeypatch.setattr(inference, "EVENTS_PER_BATCH", 100)
    lengths = np.array([1000, 60, 50, 40, 5, 5, 5])  # one very long history, then short ones

    batches = [batch.tolist() for batch in inference._batches(np.arange(7), lengths, batch_size=4)]

    assert batches == [[0], [1], [2, 3], [4, 5, 6]]  # the long one alone; 2 x 50 <= 100; 3 x 5 (batch_size 4)
