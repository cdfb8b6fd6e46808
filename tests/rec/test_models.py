from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import torch

from eventseq.errors import ConfigError, EventseqError
from eventseq.rec.batches import history_windows
from eventseq.rec.data import prepare_rec
from eventseq.rec.finetune import RankerModule
from eventseq.rec.model import RecModelConfig
from eventseq.rec.pretrain import NextPositiveConfig, NextPositiveModule, accidental_hits, sampled_softmax_loss
from eventseq.rec.runs import (RecFinetuneConfig, RecPretrainConfig, evaluate_rec, finetune_rec, pretrain_rec,
                               score_rec)
from eventseq.datasets.interactions import make_interactions
from eventseq.data.batch import Batch
from eventseq.data.dataset import SequenceDataset
from eventseq.data.schema import FIRST_VALUE_ID
from eventseq.saved import load_model

TINY = RecModelConfig(dim=16, num_layers=1, num_heads=2, dropout=0.0, max_len=32)


@pytest.fixture(scope="module")
def synthetic():
    return make_interactions(n_users=150, n_items=60, n_days=90, requests_per_user=8, positives_per_user=25,
                             items_per_request=(10, 14), seed=1)


@pytest.fixture(scope="module")
def rec_dir(synthetic, tmp_path_factory):
    path = tmp_path_factory.mktemp("rec") / "prepared"
    prepare_rec(synthetic.log, output=path, valid_days=20)
    return path


@pytest.fixture(scope="module")
def data_and_history(rec_dir):
    from eventseq.rec.data import load_rec_data

    data = load_rec_data(rec_dir)
    return data, SequenceDataset.from_table(data.history.table, data.schema)


def _first_batch(data, history):
    users, starts, lengths = history_windows(history, np.arange(len(history)), data.split.train_end, 32)
    return history.collate_views(users[:16], starts[:16], lengths[:16])


@pytest.mark.parametrize("block_rows", [1, 7, 256])
def test_blockwise_full_softmax_equals_cross_entropy_and_its_gradients(block_rows):
    from eventseq.rec.pretrain import full_softmax_loss

    torch.manual_seed(0)
    query, catalog = torch.randn(20, 8, requires_grad=True), torch.randn(50, 8, requires_grad=True)
    targets = torch.randint(0, 50, (20,))
    expected = torch.nn.functional.cross_entropy(query @ catalog.T * 3.0, targets)
    expected_grads = torch.autograd.grad(expected * 2.0, [query, catalog])
    loss = full_softmax_loss(query * 3.0, catalog, targets, block_rows=block_rows)
    grads = torch.autograd.grad(loss * 2.0, [query, catalog])  # an upstream gradient other than 1
    torch.testing.assert_close(loss, expected)
    for got, want in zip(grads, expected_grads):
        torch.testing.assert_close(got, want)
    with torch.no_grad():  # no gradient wanted: the loss alone
        torch.testing.assert_close(full_softmax_loss(query, catalog, targets, block_rows),
                                   torch.nn.functional.cross_entropy(query @ catalog.T, targets))


def test_sampled_softmax_equals_full_softmax_when_every_item_is_sampled(data_and_history):
    data, history = data_and_history
    torch.manual_seed(0)
    full = NextPositiveModule(data.schema, TINY, NextPositiveConfig(softmax="full", feedback_weight=0.0))
    sampled = NextPositiveModule(data.schema, TINY, NextPositiveConfig(softmax="sampled", num_negatives=10**6,
                                                                       sampler="uniform", feedback_weight=0.0))
    sampled.load_state_dict(full.state_dict())
    batch = _first_batch(data, history)
    full.train(), sampled.train()
    assert sampled.losses(batch)["npp"].item() == pytest.approx(full.losses(batch)["npp"].item(), rel=1e-5)
    few = NextPositiveModule(data.schema, TINY, NextPositiveConfig(softmax="sampled", num_negatives=8,
                                                                   sampler="popularity", feedback_weight=0.0),
                             item_counts=[float(i) for i in range(data.schema.categorical[0].num_embeddings)])
    items, log_q = few.sample_negatives(8, torch.device("cpu"))
    assert len(items) == 8 and (items >= 2).all()  # padding and unknown are never sampled
    assert torch.isfinite(few.train().losses(batch)["loss"])


def test_pretraining_loss_decreases(data_and_history):
    data, history = data_and_history
    torch.manual_seed(0)
    module = NextPositiveModule(data.schema, TINY).train()
    batch = _first_batch(data, history)
    optimizer = torch.optim.AdamW(module.parameters(), lr=1e-2)
    first = module.losses(batch)["loss"].item()
    for _ in range(15):
        loss = module.losses(batch)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert module.losses(batch)["loss"].item() < 0.8 * first


def test_untrained_network_scores_an_item_near_the_top_after_a_history_of_that_item(data_and_history):
    # residual heads + identity input map: pretraining starts in the tied-embedding regime (model docstring);
    # with plain MLP heads the item's own rank was ~30 of 60, i.e. random
    data, _ = data_and_history
    for seed in range(3):
        torch.manual_seed(seed)
        network = NextPositiveModule(data.schema, TINY).eval().network
        items = torch.arange(FIRST_VALUE_ID, network.num_items)
        count = len(items)
        constant = torch.full((count, 1), FIRST_VALUE_ID)
        batch = Batch(features={network.item_field: items[:, None], network.source_field: constant,
                                network.action_field: constant},
                      event_time=torch.zeros(count, 1, dtype=torch.long), lengths=torch.ones(count, dtype=torch.long),
                      index=torch.arange(count))
        with torch.no_grad():
            query = network.query(network.hidden(batch)[:, 0], constant[:, 0])
            scores = query @ network.item_vectors(items).T  # [items, items]
        own_rank = (scores > scores.diag()[:, None]).sum(dim=1).float()
        assert own_rank.mean() < count / 6


def test_validation_scores_only_events_in_the_validation_window(data_and_history):
    data, history = data_and_history
    module = NextPositiveModule(data.schema, TINY).eval()
    users, starts, lengths = history_windows(history, np.arange(len(history)), None, 32)
    batch = history.collate_views(users, starts, lengths)
    with torch.no_grad():
        counted = module.losses(batch, score_from=data.split.valid_start)["count"].item()
    in_window = ((batch.event_time >= data.split.valid_start) & batch.mask).sum().item()
    assert 0 < counted <= in_window < batch.mask.sum().item()


def test_initialisation_modes_copy_the_right_weights(data_and_history):
    data, _ = data_and_history
    pretrained = NextPositiveModule(data.schema, TINY)
    for mode, copied, kept in [("backbone", "sequence_encoder", "projector"), ("full", "projector", None)]:
        torch.manual_seed(5)
        ranker = RankerModule(data.schema, TINY)
        ranker.initialise_from(pretrained, mode)
        theirs, mine = pretrained.network.state_dict(), ranker.network.state_dict()
        assert all(torch.equal(mine[k], v) for k, v in theirs.items() if k.startswith(copied))
        if kept:
            assert not all(torch.equal(mine[k], v) for k, v in theirs.items() if k.startswith(kept))
    with pytest.raises(ConfigError, match="init='warm'"):
        RankerModule(data.schema, TINY).initialise_from(pretrained, "warm")


def test_end_to_end_runs_save_load_evaluate_and_score(rec_dir, synthetic, tmp_path):
    pretrain = RecPretrainConfig(data=str(rec_dir), model=TINY, output=str(tmp_path / "pre"), batch_size=32)
    pretrain.trainer.max_epochs, pretrain.trainer.progress_bar = 2, False
    pretrained = pretrain_rec(pretrain)
    assert np.isfinite(pretrained.metrics["val_loss"]) and (pretrained.run_dir / "curves.png").exists()
    reloaded = load_model(pretrained.model_dir)
    assert isinstance(reloaded, NextPositiveModule)
    assert all(torch.equal(reloaded.state_dict()[k], v) for k, v in pretrained.module.state_dict().items())

    finetune = RecFinetuneConfig(data=str(rec_dir), init_from=str(pretrained.model_dir), init="full",
                                 output=str(tmp_path / "ft"), batch_size=64)
    finetune.trainer.max_epochs, finetune.trainer.progress_bar = 2, False
    ranker = finetune_rec(finetune)
    assert 0.0 < ranker.metrics["val_ndcg_at_10"] <= 1.0
    model = load_model(ranker.model_dir)
    table = evaluate_rec(rec_dir, {"full": ranker.model_dir}, oracle=synthetic.oracle)
    assert table["method"].to_list() == ["random order", "popularity", "full", "oracle"]
    ndcg = dict(zip(table["method"], table["ndcg@10"]))
    assert ndcg["full"] == pytest.approx(ranker.metrics["val_ndcg_at_10"], abs=0.02)  # same groups, same metric
    assert ndcg["oracle"] > ndcg["random order"] + 0.1

    scores = pl.read_parquet(score_rec(model, rec_dir, tmp_path / "scores.parquet", items_output=tmp_path / "items.parquet"))
    assert scores.columns == ["request_id", "item_id", "score", "rank"]
    first = scores.filter(pl.col("request_id") == scores["request_id"][0])
    assert first["rank"].to_list() == list(range(1, first.height + 1))
    assert first["score"].is_sorted(descending=True)
    items = pl.read_parquet(tmp_path / "items.parquet")
    assert items.height == len(model.schema.categorical[0].vocabulary) and items.width == 1 + TINY.dim


def test_bad_run_configs_are_clear_errors(rec_dir, tmp_path):
    with pytest.raises(ConfigError, match="needs init_from"):
        finetune_rec(RecFinetuneConfig(data=str(rec_dir), init="full", output=str(tmp_path / "x")))
    with pytest.raises(ConfigError, match="data is required"):
        pretrain_rec(RecPretrainConfig())
    with pytest.raises(ConfigError, match="softmax='huge'"):
        NextPositiveConfig(softmax="huge").validate()
    with pytest.raises(EventseqError, match="needs a rec_ranker model; model .wrong. is a rec_pretrain model"):
        evaluate_rec(rec_dir, {"wrong": NextPositiveModule(load_model_schema(rec_dir), TINY)})
    with pytest.raises(EventseqError, match=r"the oracle table lacks column\(s\) \['oracle_score'\]"):
        evaluate_rec(rec_dir, oracle=pl.DataFrame({"request_id": [1], "item_id": [2], "score": [0.5]}))


def load_model_schema(rec_dir):
    from eventseq.rec.data import load_rec_data

    return load_rec_data(rec_dir).schema


def test_accidental_hits_are_exactly_the_negatives_equal_to_each_target():
    targets = torch.tensor([5, 7, 5, 9, 2])
    negatives = torch.tensor([7, 5, 3, 5, 8, 7])
    rows, columns = accidental_hits(targets, negatives)
    expected = targets[:, None] == negatives[None, :]
    got = torch.zeros_like(expected)
    got[rows, columns] = True
    assert torch.equal(got, expected)
    assert len(rows) == int(expected.sum())  # each hit once
    empty_rows, empty_columns = accidental_hits(torch.tensor([1, 4]), negatives)
    assert len(empty_rows) == 0 and len(empty_columns) == 0


def test_sampled_softmax_masks_accidental_hits_like_a_dense_mask():
    generator = torch.Generator().manual_seed(0)
    query = torch.nn.functional.normalize(torch.randn(6, 4, generator=generator), dim=-1).requires_grad_()
    table = torch.nn.functional.normalize(torch.randn(10, 4, generator=generator), dim=-1)
    targets = torch.tensor([1, 3, 3, 5, 7, 9])
    negatives = torch.tensor([3, 0, 7, 3, 2])  # target 3 twice, 7 once; rows with 1, 5, 9 have no hit
    log_q = torch.log(torch.full((10,), 0.5))
    temperature = torch.tensor(5.0)
    loss = sampled_softmax_loss(query, table[targets], table[negatives], temperature, log_q[targets],
                                log_q[negatives], accidental_hits(targets, negatives))
    dense = temperature * query @ table[negatives].T - log_q[negatives]
    dense = dense.masked_fill(targets[:, None] == negatives[None, :], float("-inf"))
    positive = temperature * (query * table[targets]).sum(-1) - log_q[targets]
    logits = torch.cat([positive[:, None], dense], 1)
    expected = torch.nn.functional.cross_entropy(logits, torch.zeros(6, dtype=torch.long))
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    (grad,) = torch.autograd.grad(loss, query)
    (expected_grad,) = torch.autograd.grad(expected, query)
    assert torch.allclose(grad, expected_grad, atol=1e-6)
