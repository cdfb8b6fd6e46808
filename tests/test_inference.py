from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from polars.testing import assert_frame_equal

from eventseq.data import PrepareConfig, PreparedData, SequenceDataset, load_prepared, prepare
from eventseq.datasets.synthetic import SYNTHETIC_COLUMNS, make_transactions
from eventseq.errors import ColumnError, DataError, EventseqError, FileFormatError
from eventseq.inference import embed, predict
from eventseq.saved import load_model
from eventseq.nn.encoder import EncoderConfig
from eventseq.objectives.supervised import HeadConfig, SupervisedModule, resolve_head

RUN = {"predict": predict, "embed": embed}




def _assert_same_result(left: pl.DataFrame, right: pl.DataFrame) -> None:
    """Same columns and entity order; values equal up to float round-off of different batchings."""
    assert left.columns == right.columns
    assert_frame_equal(left, right, check_exact=False, rtol=1e-5, atol=1e-6)


def test_predict_gives_one_row_per_entity(trained, synthetic):
    result = predict(trained.model_dir, synthetic.events, progress=False)
    assert result.columns == ["entity_id", "label_proba", "label_pred"]
    assert result["entity_id"].to_list() == list(range(240))  # every entity once, in id order
    proba = result["label_proba"].to_numpy()
    assert ((proba >= 0) & (proba <= 1)).all()
    assert result["label_pred"].to_list() == (proba >= 0.5).astype(int).tolist()


def _network_alone(trained):
    """The trained model without its aggregates part: the network's own outputs."""
    module = load_model(trained.model_dir)
    module.combined = None
    return module


def test_predict_matches_a_direct_forward_pass(trained, prepared_dir):
    prepared = load_prepared(prepared_dir)
    dataset = SequenceDataset.from_table(prepared.table, prepared.schema)
    with torch.no_grad():
        network = trained.module.predict_outputs(dataset.collate(np.arange(len(dataset)))).numpy()
    alone = predict(_network_alone(trained), prepared_dir, batch_size=16, progress=False)
    assert alone["entity_id"].to_list() == dataset.entity_ids().tolist()
    np.testing.assert_allclose(alone["label_proba"].to_numpy(), network, rtol=1e-5, atol=1e-6)
    # the saved (combined) model: the stack of the network's outputs and the aggregates part's
    combined = predict(trained.model_dir, prepared_dir, batch_size=16, progress=False)
    expected = trained.module.combined.predict(prepared.table, prepared.schema, network.reshape(-1, 1))[:, 0]
    np.testing.assert_allclose(combined["label_proba"].to_numpy(), expected, rtol=1e-5, atol=1e-6)


def test_embed_gives_one_column_per_embedding_unit(trained, synthetic):
    result = embed(trained.model_dir, synthetic.events, progress=False)
    hidden_size = trained.module.encoder_config.sequence_encoder.hidden_size
    assert hidden_size == trained.module.encoder.output_dim == 8
    width = 3 * hidden_size  # pooling=last+mean+max (the default): the last state, the mean and the max
    assert trained.module.encoder.embedding_dim == width
    assert result.columns == ["entity_id"] + [f"emb_{i:02d}" for i in range(width)]  # zero-padded: sorts right
    assert result.height == 240
    assert np.isfinite(result.drop("entity_id").to_numpy()).all()


@pytest.mark.parametrize("mode", ["predict", "embed"])
@pytest.mark.parametrize("source", ["raw", "prepared"])
def test_chunking_does_not_change_results_or_order(trained, synthetic, prepared_dir, mode, source):
    data = synthetic.events if source == "raw" else prepared_dir
    small = RUN[mode](trained.model_dir, data, chunk_rows=7, batch_size=3, progress=False)
    whole = RUN[mode](trained.model_dir, data, chunk_rows=100_000, progress=False)
    assert small["entity_id"].to_list() == whole["entity_id"].to_list()
    _assert_same_result(small, whole)


def test_raw_events_and_prepared_directory_give_the_same_predictions(trained, synthetic, raw_dir, prepared_dir):
    from_prepared = predict(trained.model_dir, prepared_dir, progress=False)
    for data in [synthetic.events, synthetic.events.to_pandas(), synthetic.events.lazy(),
                 raw_dir / "events.parquet", str(raw_dir / "events.parquet"), prepared_dir / "data.parquet"]:
        _assert_same_result(predict(trained.model_dir, data, progress=False), from_prepared)


def test_sharded_prepared_directory_gives_the_same_predictions(trained, prepared_dir, tmp_path):
    load_prepared(prepared_dir).save(tmp_path / "sharded", shards=3)  # data.parquet/part-0000{0,1,2}.parquet
    assert len(list((tmp_path / "sharded" / "data.parquet").glob("part-*.parquet"))) == 3
    from_one_file = predict(trained.model_dir, prepared_dir, progress=False)
    for data in [tmp_path / "sharded", tmp_path / "sharded" / "data.parquet"]:
        from_parts = predict(trained.model_dir, data, chunk_rows=50, progress=False)
        assert from_parts["entity_id"].to_list() == from_one_file["entity_id"].to_list()
        _assert_same_result(from_parts, from_one_file)


def test_unseen_and_null_categories_are_encoded_as_unknown(trained, synthetic):
    events = synthetic.events
    changed = pl.col("entity_id") < 5

    def with_mcc(value: int) -> pl.DataFrame:
        return events.with_columns(
            pl.when(changed).then(value).otherwise(pl.col("mcc")).alias("mcc"),
            pl.when(changed).then(None).otherwise(pl.col("channel")).alias("channel"),
        )

    first = predict(trained.model_dir, with_mcc(999), progress=False)
    second = predict(trained.model_dir, with_mcc(-7), progress=False)
    assert first.height == 240
    # two different unseen values are the same input to the model: the unknown id
    assert_frame_equal(first, second)
    unchanged = predict(trained.model_dir, events, progress=False)
    assert_frame_equal(first.filter(~changed), unchanged.filter(~changed))


def test_max_len_keeps_the_most_recent_events(trained, synthetic):
    ordered = synthetic.events.sort(["entity_id", "event_time"], maintain_order=True)
    recent = ordered.group_by("entity_id", maintain_order=True).tail(3)
    network = _network_alone(trained)  # max_len bounds what the network reads; aggregates see every event
    truncated = predict(network, synthetic.events, max_len=3, progress=False)
    _assert_same_result(truncated, predict(network, recent, progress=False))


def test_missing_raw_column_is_a_column_error_naming_it(trained, synthetic):
    with pytest.raises(ColumnError, match="'channel'"):
        predict(trained.model_dir, synthetic.events.drop("channel"), progress=False)


def test_table_prepared_with_another_schema_is_a_data_error(trained, tmp_path):
    other = make_transactions(40, min_length=5, max_length=30, seed=99)
    prepare(other.events, PrepareConfig(**SYNTHETIC_COLUMNS), labels=other.labels, output=tmp_path / "other")
    with pytest.raises(DataError, match="different schema"):
        predict(trained.model_dir, tmp_path / "other", progress=False)
    # the same events as raw data are encoded with the model's schema instead
    assert predict(trained.model_dir, other.events, progress=False).height == 40


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
@pytest.mark.parametrize("source", ["raw", "prepared"])
def test_corrupt_parquet_input_is_a_file_format_error(trained, raw_dir, prepared_dir, tmp_path, damage, source):
    if source == "raw":
        path = tmp_path / "events.parquet"
        shutil.copy(raw_dir / "events.parquet", path)
        data: Path = path
    else:
        shutil.copytree(prepared_dir, tmp_path / "prepared")
        path = tmp_path / "prepared" / "data.parquet"
        data = tmp_path / "prepared"
    content = path.read_bytes()
    path.write_bytes(content[: len(content) // 2] if damage == "truncate" else b"PAR1" + b"\x07" * 500)
    with pytest.raises(FileFormatError, match=re.escape(str(path))):
        predict(trained.model_dir, data, progress=False)


@pytest.mark.parametrize("mode", ["predict", "embed"])
def test_output_file_is_written_atomically_and_reads_back(trained, synthetic, tmp_path, mode):
    target = tmp_path / "out" / f"{mode}.parquet"
    written = RUN[mode](trained.model_dir, synthetic.events, output=target, chunk_rows=50, progress=False)
    assert written == target
    assert [p.name for p in target.parent.iterdir()] == [target.name]  # no temp file left
    in_memory = RUN[mode](trained.model_dir, synthetic.events, chunk_rows=50, progress=False)
    assert_frame_equal(pl.read_parquet(target), in_memory)


def test_empty_input_is_a_clear_error_and_writes_nothing(trained, synthetic, tmp_path):
    with pytest.raises(DataError, match="empty"):
        predict(trained.model_dir, synthetic.events.head(0), progress=False)
    with pytest.raises(DataError, match="empty"):
        embed(trained.model_dir, synthetic.events.head(0), output=tmp_path / "out.parquet", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_empty_prepared_table_is_a_clear_error(trained, prepared_dir, tmp_path):
    prepared = load_prepared(prepared_dir)
    PreparedData(prepared.table.head(0), prepared.schema, prepared.report).save(tmp_path / "empty")
    with pytest.raises(EventseqError, match="empty|no entities"):
        predict(trained.model_dir, tmp_path / "empty", progress=False)
    with pytest.raises(EventseqError, match="empty|no entities"):
        predict(trained.model_dir, tmp_path / "empty", output=tmp_path / "out.parquet", progress=False)
    assert not (tmp_path / "out.parquet").exists()


def test_multiclass_probabilities_sum_to_one(tmp_path):
    data = make_transactions(30, n_classes=3, min_length=3, max_length=12, seed=5)
    # string ids and string classes: the output keeps the original values
    events = data.events.with_columns(pl.format("c{}", "entity_id").alias("entity_id"))
    labels = data.labels.with_columns(
        pl.format("c{}", "entity_id").alias("entity_id"), pl.format("k{}", "label").alias("label")
    )
    columns = dict(SYNTHETIC_COLUMNS, targets={"label": "multiclass"})
    prepared = prepare(events, PrepareConfig(**columns), labels=labels)
    encoder = EncoderConfig()
    encoder.sequence_encoder.hidden_size = 8
    torch.manual_seed(0)
    module = SupervisedModule(prepared.schema, encoder, resolve_head(prepared.schema, HeadConfig()))

    result = predict(module, events, progress=False)
    proba_columns = ["label_proba_k0", "label_proba_k1", "label_proba_k2"]
    assert result.columns == ["entity_id", *proba_columns, "label_pred"]
    assert result["entity_id"].to_list() == sorted(events["entity_id"].unique().to_list())
    proba = result.select(proba_columns).to_numpy()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    assert result["label_pred"].to_list() == [f"k{i}" for i in proba.argmax(axis=1)]


@pytest.mark.parametrize("mode", ["predict", "embed"])
def test_quantized_inference_stays_close_to_float(trained, prepared_dir, mode):
    module = _network_alone(trained) if mode == "predict" else trained.module  # the network's own outputs
    exact = RUN[mode](module, prepared_dir, progress=False)
    quantized = RUN[mode](module, prepared_dir, progress=False, quantize=True)
    assert quantized.columns == exact.columns
    assert quantized["entity_id"].to_list() == exact["entity_id"].to_list()
    left = exact.select(pl.col(pl.Float32, pl.Float64)).to_numpy()
    right = quantized.select(pl.col(pl.Float32, pl.Float64)).to_numpy()
    assert not np.array_equal(left, right)  # int8 really ran
    np.testing.assert_allclose(right, left, atol=0.05)
    # the caller's module is untouched: still float layers
    assert isinstance(trained.module.encoder.sequence_encoder.rnn, torch.nn.GRU)
    assert trained.module.encoder.sequence_encoder.rnn.weight_hh_l0.dtype == torch.float32


def test_quantize_on_a_gpu_device_is_a_config_error(trained, prepared_dir):
    with pytest.raises(EventseqError, match="quantize=true runs on the CPU only"):
        embed(trained.module, prepared_dir, progress=False, quantize=True, device="cuda")


# ----------------------------------------------------------------- sharded input, one output shard per rank


def test_sharded_input_gives_what_the_single_file_gives(trained, prepared_dir, sharded_dir):
    whole = embed(trained.model_dir, prepared_dir, progress=False)
    sharded = embed(trained.model_dir, sharded_dir, chunk_rows=25, progress=False)
    _assert_same_result(sharded, whole)  # parts in order, entities in order within each part


@pytest.mark.parametrize("level", ["entity", "event"])
def test_each_torchrun_rank_writes_its_own_shard(trained, causal_trained, prepared_dir, sharded_dir, tmp_path,
                                                monkeypatch, level):
    if level == "event":
        trained = causal_trained  # level=event needs a model without the recency inputs
    whole = embed(trained.model_dir, prepared_dir, progress=False, level=level)
    output = tmp_path / "embeddings"
    for rank in range(3):  # as torchrun sets them; 4 part files over 3 ranks
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", "3")
        written = embed(trained.model_dir, sharded_dir, output=output, progress=False, level=level)
        assert written == output / f"part-{rank:05d}.parquet"
    parts = [pl.read_parquet(output / f"part-{rank:05d}.parquet") for rank in range(3)]
    ids = [set(part["entity_id"].to_list()) for part in parts]
    assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])
    together = pl.concat(parts).sort("entity_id", maintain_order=True)
    _assert_same_result(together, whole)
    assert not list(output.glob(".*tmp"))


def test_a_rank_without_input_writes_nothing(trained, prepared_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    # one data.parquet file read in one chunk: rank 0 gets it, rank 1 nothing
    assert embed(trained.model_dir, prepared_dir, output=tmp_path / "out", progress=False) is None
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())
    assert "rank 1 had no shard" in capsys.readouterr().err


@pytest.mark.parametrize("source", ["prepared", "raw"])
def test_the_progress_bar_knows_its_total(trained, prepared_dir, synthetic, source, monkeypatch):
    from eventseq import inference

    totals = []
    original = inference._set_total
    monkeypatch.setattr(inference, "_set_total", lambda bar, total: (totals.append(total), original(bar, total)))
    data = prepared_dir if source == "prepared" else synthetic.events

    frame = embed(trained.module, data, progress=True)

    assert totals == [frame.height]


@pytest.mark.parametrize("argument, value", [("batch_size", 2.5), ("chunk_rows", "10"), ("max_len", True)])
def test_predict_arguments_must_be_whole_numbers(trained, prepared_dir, argument, value):
    with pytest.raises(EventseqError, match=rf"{argument}={value!r}: expected a whole number >= 1"):
        predict(trained.module, prepared_dir, progress=False, **{argument: value})


def test_the_one_inference_loop_cuts_by_entities_and_padded_events_without_gradients(monkeypatch):
    import numpy as np
    import torch

    from eventseq import inference

    monkeypatch.setattr(inference, "EVENTS_PER_BATCH", 100)
    weight = torch.ones(1, requires_grad=True)
    order = np.array([3, 0, 1, 2])
    lengths = np.array([10, 10, 10, 80])  # entity 3 is long: 80 padded events per entity fill the budget alone

    def compute(batch: torch.Tensor) -> bool:
        return (batch * weight).requires_grad

    results = inference.run_batches(compute, lambda positions: torch.tensor(positions, dtype=torch.float32), order,
                                    batch_size=2, lengths=lengths)
    assert [positions.tolist() for positions, _ in results] == [[3], [0, 1], [2]]
    assert not any(grad for _, grad in results)  # no autograd graph is built
    plain = inference.run_batches(len, lambda positions: positions, np.arange(5), batch_size=2)
    assert [size for _, size in plain] == [2, 2, 1]
