from __future__ import annotations

import numpy as np
import pytest
import torch

from eventseq.data import SequenceDataset, load_prepared
from eventseq.data.augment import ViewCollate, ViewConfig
from eventseq.errors import ConfigError
from eventseq.nn import EncoderConfig, SequenceEncoderConfig
from eventseq.objectives.coles import ColesConfig
from eventseq.objectives.selfsupervised import SelfSupervisedModule
from eventseq.optim import OptimizerConfig


@pytest.mark.parametrize("loss", ["margin", "infonce"])
def test_coles_loss_decreases_and_recall_rises(prepared_dir, loss):
    torch.manual_seed(0)
    prepared = load_prepared(prepared_dir)
    dataset = SequenceDataset.from_table(prepared.table, prepared.schema)
    views = ViewConfig(split_count=3, min_len=3, max_len=10)
    module = SelfSupervisedModule(
        prepared.schema,
        "coles",
        EncoderConfig(sequence_encoder=SequenceEncoderConfig(hidden_size=16)),
        ColesConfig(loss=loss, views=views),
        OptimizerConfig(lr=1e-2),
    )
    batch = ViewCollate(dataset, views, fixed_seed=0)(np.arange(32))
    assert batch.batch_size == 96 and batch.index.unique().numel() == 32  # all views in one pass
    from eventseq.objectives.losses import recall_at_k

    optimizer = module.configure_optimizers()
    first = module.objective.losses(module.encoder, batch)["loss"].item()
    recall_before = recall_at_k(module.embed(batch), batch.index, 2).item()
    for _ in range(40):
        optimizer.zero_grad()
        loss_value = module.objective.losses(module.encoder, batch)["loss"]
        loss_value.backward()
        optimizer.step()
    assert loss_value.item() < 0.7 * first
    assert recall_at_k(module.embed(batch), batch.index, 2).item() > 1.5 * recall_before


def test_bad_loss_name(prepared_dir):
    with pytest.raises(ConfigError, match="coles.loss"):
        SelfSupervisedModule(load_prepared(prepared_dir).schema, "coles", objective_config=ColesConfig(loss="triplet"))
