from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import torch

from eventseq.data import PrepareConfig, SequenceDataset, prepare
from eventseq.errors import ConfigError
from eventseq.nn import EncoderConfig, SequenceEncoderConfig
from eventseq.objectives.supervised import HeadConfig, SupervisedModule, resolve_head
from eventseq.optim import OptimizerConfig


@pytest.fixture(scope="module")
def task_data():
    """40 entities; targets of every task that depend on the events."""
    rng = np.random.default_rng(1)
    lengths = rng.integers(3, 15, size=40)
    entity = np.repeat(np.arange(40), lengths)
    shop = rng.integers(0, 4, size=len(entity))
    events = pl.DataFrame({"client": entity, "time": np.arange(len(entity)), "shop": shop,
                           "amount": rng.normal(size=len(entity))})
    share = np.bincount(entity, weights=shop == 0, minlength=40) / lengths
    labels = pl.DataFrame({
        "client": np.arange(40),
        "binary": (share > np.median(share)).astype(int),
        "multi": np.digitize(share, np.quantile(share, [0.33, 0.66])),
        "tag_a": (share > 0.2).astype(int),
        "tag_b": (lengths > 8).astype(int),
        "value": share * 10,
    })
    config = PrepareConfig(id_column="client", time_column="time", categorical=["shop"], numeric=["amount"],
                           targets={"binary": "binary", "multi": "multiclass", "tag_a": "multilabel",
                                    "tag_b": "multilabel", "value": "regression"})
    return prepare(events, config, labels=labels)


@pytest.mark.parametrize(
    "targets, task, outputs",
    [(["binary"], "binary", 1), (["multi"], "multiclass", 3), (["tag_a", "tag_b"], "multilabel", 2),
     (["value"], "regression", 1)],
)
def test_each_task_learns(task_data, targets, task, outputs):
    torch.manual_seed(0)
    head = resolve_head(task_data.schema, HeadConfig(targets=targets, dropout=0.0))
    assert (head.task, head.num_outputs) == (task, outputs)
    module = SupervisedModule(
        task_data.schema, EncoderConfig(sequence_encoder=SequenceEncoderConfig(hidden_size=16)), head,
        OptimizerConfig(lr=1e-2),
    )
    dataset = SequenceDataset.from_table(task_data.table, task_data.schema, target=targets)
    batch = dataset.collate(np.arange(len(dataset)))
    optimizer = module.configure_optimizers()
    first = module.loss(module(batch), batch.target).item()
    for _ in range(60):
        optimizer.zero_grad()
        loss = module.loss(module(batch), batch.target)
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.7 * first
    outputs_ = module.predict_outputs(batch)
    if task == "multiclass":
        torch.testing.assert_close(outputs_.sum(dim=1), torch.ones(40))
    elif task in ("binary", "multilabel"):
        assert ((outputs_ >= 0) & (outputs_ <= 1)).all()


def test_class_weights_change_the_binary_loss(task_data):
    head = resolve_head(task_data.schema, HeadConfig(targets=["binary"]))
    plain = SupervisedModule(task_data.schema, head_config=head)
    weighted = SupervisedModule(task_data.schema, head_config=HeadConfig(**{**head.__dict__, "class_weights": [1.0, 5.0]}))
    logits = torch.zeros(4)
    target = torch.tensor([0, 1, 1, 0])
    assert plain.loss(logits, target).item() == pytest.approx(np.log(2), rel=1e-5)
    assert weighted.loss(logits, target).item() == pytest.approx(3 * np.log(2), rel=1e-5)


def test_encoder_learning_rate_is_separate(task_data):
    head = resolve_head(task_data.schema, HeadConfig(targets=["binary"]))
    module = SupervisedModule(task_data.schema, head_config=head,
                              optimizer_config=OptimizerConfig(lr=1e-2, encoder_lr=1e-4))
    rates = sorted(group["lr"] for group in module.configure_optimizers().param_groups)
    assert rates == [1e-4, 1e-2]


@pytest.mark.parametrize(
    "head, message",
    [(HeadConfig(targets=["binary", "value"]), "mix tasks"),
     (HeadConfig(targets=["binary"], task="regression"), "prepared as binary"),
     (HeadConfig(targets=["labl"]), "did you mean 'label'|not in the schema"),
     (HeadConfig(targets=["binary"], class_weights=[1.0, 2.0, 3.0]), "class_weights")],
)
def test_inconsistent_heads_are_rejected(task_data, head, message):
    with pytest.raises(ConfigError, match=message):
        SupervisedModule(task_data.schema, head_config=resolve_head(task_data.schema, head))


def test_multilabel_targets_default_to_every_multilabel_column():
    events = pl.DataFrame({"client": [0, 0, 1, 1], "time": [1, 2, 1, 2], "shop": [1, 2, 2, 1]})
    labels = pl.DataFrame({"client": [0, 1], "tag_a": [0, 1], "tag_b": [1, 0]})
    config = PrepareConfig(id_column="client", time_column="time", categorical=["shop"],
                           targets={"tag_a": "multilabel", "tag_b": "multilabel"})
    head = resolve_head(prepare(events, config, labels=labels).schema, HeadConfig())
    assert (head.task, head.targets, head.num_outputs) == ("multilabel", ["tag_a", "tag_b"], 2)
