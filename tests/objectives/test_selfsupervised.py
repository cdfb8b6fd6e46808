"""Every self-supervised method: its loss decreases on tiny data, it saves and embeds like CoLES,
and bad settings are refused with a message naming the setting."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from eventseq.data import SequenceDataset, load_prepared
from eventseq.errors import ConfigError
from eventseq.nn import EncoderConfig, SequenceEncoderConfig
from eventseq.nn.event_encoder import EventEncoderConfig
from eventseq.objectives.methods import METHODS
from eventseq.objectives.selfsupervised import SelfSupervisedModule
from eventseq.optim import OptimizerConfig
from eventseq.saved import load_model, save_model

GRU = EncoderConfig(sequence_encoder=SequenceEncoderConfig(type="gru", hidden_size=16))
TRANSFORMER = EncoderConfig(sequence_encoder=SequenceEncoderConfig(
    type="transformer", hidden_size=16, num_heads=2, num_layers=1, pooling="mean"))
FIELDS = EncoderConfig(
    event_encoder=EventEncoderConfig(combine="field_transformer", default_embedding_dim=8),
    sequence_encoder=SequenceEncoderConfig(type="transformer", hidden_size=16, num_heads=2, num_layers=1,
                                           pooling="mean"))
ENCODERS = {"mlm": TRANSFORMER, "tabformer": FIELDS}


@pytest.fixture(scope="module")
def dataset(prepared_dir) -> SequenceDataset:
    prepared = load_prepared(prepared_dir)
    return SequenceDataset.from_table(prepared.table, prepared.schema, max_len=40)


def _module(dataset: SequenceDataset, method: str) -> SelfSupervisedModule:
    torch.manual_seed(0)
    return SelfSupervisedModule(dataset.schema, method, ENCODERS.get(method, GRU), None, OptimizerConfig(lr=1e-2))


@pytest.mark.parametrize("method", list(METHODS))
def test_loss_decreases_on_a_fixed_batch(dataset, method):
    module = _module(dataset, method)
    collate = module.collate(dataset, train=False, seed=0)  # the same random parts on every call
    batch = collate(np.arange(48))
    optimizer = module.configure_optimizers()
    module.train()

    def loss() -> torch.Tensor:
        torch.manual_seed(1)  # the same masks / negatives every step: the change is the training's
        return module.objective.losses(module.encoder, batch)["loss"]

    first = loss().item()
    for _ in range(25):
        optimizer.zero_grad()
        value = loss()
        value.backward()
        optimizer.step()
    assert np.isfinite(first)
    assert loss().item() < 0.95 * first, f"{method}: {first:.4f} -> {loss().item():.4f}"


@pytest.mark.parametrize("method", list(METHODS))
def test_saved_model_embeds_the_same(dataset, method, tmp_path):
    module = _module(dataset, method).eval()
    batch = dataset.collate(np.arange(5))
    directory = save_model(module, tmp_path / method)
    loaded = load_model(directory)
    assert loaded.kind == method
    expected = module.embed(batch)
    assert expected.shape == (5, module.embedding_dim)
    torch.testing.assert_close(loaded.embed(batch), expected)


@pytest.mark.parametrize("method", ["cpc", "gpt"])
def test_causal_methods_train_a_causal_transformer_too(dataset, method):
    causal = EncoderConfig(sequence_encoder=SequenceEncoderConfig(type="transformer", hidden_size=16, num_heads=2,
                                                                  num_layers=1, causal=True))
    torch.manual_seed(0)
    module = SelfSupervisedModule(dataset.schema, method, causal, None, OptimizerConfig(lr=1e-2))
    batch = dataset.collate(np.arange(48))
    optimizer = module.configure_optimizers()
    torch.manual_seed(1)
    first = module.objective.losses(module.encoder, batch)["loss"]
    for _ in range(20):
        optimizer.zero_grad()
        torch.manual_seed(1)
        module.objective.losses(module.encoder, batch)["loss"].backward()
        optimizer.step()
    torch.manual_seed(1)
    assert module.objective.losses(module.encoder, batch)["loss"].item() < 0.95 * first.item()


def test_unknown_method_lists_the_methods(dataset):
    with pytest.raises(ConfigError, match="available methods: coles, vicreg"):
        SelfSupervisedModule(dataset.schema, "simclr")


@pytest.mark.parametrize("method, encoder, message", [
    ("cpc", TRANSFORMER, "needs a causal sequence encoder"),
    ("gpt", TRANSFORMER, "needs a causal sequence encoder"),
    ("mlm", GRU, "needs a bidirectional sequence encoder"),
    ("tabformer", TRANSFORMER, "combine=field_transformer"),
])
def test_encoder_requirements_are_explained(dataset, method, encoder, message):
    with pytest.raises(ConfigError, match=message):
        SelfSupervisedModule(dataset.schema, method, encoder)


@pytest.mark.parametrize("method", ["gpt", "cpc"])
def test_causal_methods_refuse_recency_inputs(dataset, method):
    encoder = EncoderConfig(EventEncoderConfig(recency=True), GRU.sequence_encoder)
    with pytest.raises(ConfigError, match="recency=true gives every event the time until the history's end"):
        SelfSupervisedModule(dataset.schema, method, encoder)


def test_vicreg_and_barlow_twins_need_exactly_two_views(dataset):
    from eventseq.data.augment import ViewConfig
    from eventseq.objectives.barlow_twins import BarlowTwinsConfig
    from eventseq.objectives.vicreg import VicregConfig

    with pytest.raises(ConfigError, match="vicreg.views.split_count=3"):
        SelfSupervisedModule(dataset.schema, "vicreg", GRU, VicregConfig(views=ViewConfig(split_count=3)))
    with pytest.raises(ConfigError, match="barlow_twins.views.split_count=4"):
        SelfSupervisedModule(dataset.schema, "barlow_twins", GRU, BarlowTwinsConfig(views=ViewConfig(split_count=4)))


def test_gpt_next_event_predictions_line_up_with_the_baseline_targets(dataset, tmp_path):
    from eventseq.baselines import next_event_metrics, next_event_targets
    from eventseq.inference import next_event_predictions

    module = _module(dataset, "gpt")
    subset = dataset.subset(np.arange(20))
    topk, gaps = next_event_predictions(module, subset, k=3)
    targets = next_event_targets(subset)
    assert gaps.shape == (len(targets),) and (gaps >= 0).all()
    metrics = next_event_metrics(topk, targets, gaps, ks=(1, 3))
    for feature in dataset.schema.categorical:
        assert topk[feature.name].shape == (len(targets), 3)
        assert 0 <= metrics[f"{feature.name}_acc@1"] <= metrics[f"{feature.name}_acc@3"] <= 1
    saved_topk, saved_gaps = next_event_predictions(save_model(module, tmp_path / "gpt"), subset, k=3)  # a directory
    np.testing.assert_allclose(saved_gaps, gaps, rtol=1e-5)
    with pytest.raises(ConfigError, match="method=gpt"):
        next_event_predictions(_module(dataset, "coles"), subset)


def test_gpt_time_head_starts_at_the_median_gap(dataset):
    from eventseq.objectives.gpt import log_gaps

    module = _module(dataset, "gpt").train()
    batch = dataset.collate(np.arange(16))
    module.objective.losses(module.encoder, batch)
    gaps = log_gaps(batch.event_time)[batch.mask[:, 1:]]
    assert module.objective.time_head.bias.item() == pytest.approx(gaps.median().item())
    module.objective.losses(module.encoder, dataset.collate(np.arange(16, 32)))  # only the first batch sets it
    assert module.objective.time_head.bias.item() == pytest.approx(gaps.median().item())


def test_batches_with_nothing_to_score_stay_out_of_the_epoch_means(dataset, monkeypatch):
    """Single-event entities give no SOP pair: such a batch reports count 0 and logs nothing (a 0
    accuracy logged for it would drag the epoch's mean, and the checkpoint choice, down)."""
    module = _module(dataset, "sop")
    single = dataset.subset(np.arange(4))
    single.max_len = 1  # every entity now has one event: no cut, no pair
    batch = module.collate(single, train=False, seed=0)(np.arange(4))
    losses = module.objective.losses(module.encoder, batch)
    assert int(losses["count"]) == 0 and losses["loss"].item() == 0.0
    logged = []
    monkeypatch.setattr(module, "log", lambda name, value, **kwargs: logged.append((name, kwargs["batch_size"])))
    module.validation_step(batch, 0)
    assert logged == []
    module.validation_step(module.collate(dataset, train=False, seed=0)(np.arange(8)), 0)
    assert ("val_accuracy", 8) in logged  # weighted by the number of scored pairs
