"""The parts of the self-supervised methods on hand-made cases: masking rates, pair labels, VICReg and
Barlow Twins terms, CPC targets, skip-gram pairs, replaced-event labels, field masking."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from eventseq.data import SequenceDataset, load_prepared
from eventseq.data.augment import PairCollate
from eventseq.data.batch import Batch
from eventseq.objectives.cpc import future_pairs
from eventseq.objectives.heads import numeric_targets, select_events
from eventseq.objectives.losses import barlow_twins_loss, vicreg_terms
from eventseq.objectives.mlm import corrupt
from eventseq.objectives.rtd import replace_events
from eventseq.objectives.word2vec import skipgram_pairs


def test_select_events_rate_and_padding():
    torch.manual_seed(0)
    mask = torch.zeros(200, 100, dtype=torch.bool)
    mask[:, :50] = True
    selected = select_events(mask, 0.15)
    assert not bool(selected[:, 50:].any())  # never padding
    assert selected[:, :50].float().mean().item() == pytest.approx(0.15, abs=0.01)
    one = torch.tensor([[True, False]])
    assert select_events(one, 1e-9).sum().item() == 1  # at least one target per batch


def test_bert_corruption_shares():
    torch.manual_seed(0)
    events = torch.randn(100, 200, 4)
    mask = torch.ones(100, 200, dtype=torch.bool)
    selected = select_events(mask, 0.5)
    mask_vector = torch.full((4,), 7.0)
    corrupted = corrupt(events, mask, selected, mask_vector, random_share=0.1, keep_share=0.1)
    unchanged = (corrupted == events).all(dim=-1)
    masked = (corrupted == mask_vector).all(dim=-1)
    assert bool(unchanged[~selected].all())  # only chosen events change
    chosen = selected.sum().item()
    assert masked.sum().item() / chosen == pytest.approx(0.8, abs=0.02)
    assert (unchanged & selected).sum().item() / chosen == pytest.approx(0.1, abs=0.02)
    assert (~unchanged & ~masked).sum().item() / chosen == pytest.approx(0.1, abs=0.02)  # random events


def _sequence_dataset(lengths: list[int]) -> SequenceDataset:
    from eventseq.data.schema import CategoricalFeature, Schema

    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    total = int(offsets[-1])
    values = np.arange(total, dtype=np.int64) + 2  # event k has value k + 2: parts can be traced back
    schema = Schema("id", "ts", "int", [CategoricalFeature("code", [str(v) for v in range(total)])])
    return SequenceDataset({"event_time": np.arange(total, dtype=np.int64), "code": values}, offsets,
                           np.arange(len(lengths)), schema)


def _parts(batch: Batch) -> list[list[int]]:
    return [batch.features["code"][row, : batch.lengths[row]].tolist() for row in range(batch.batch_size)]


def test_sop_pairs_are_both_halves_in_or_out_of_order():
    dataset = _sequence_dataset([6, 4, 5, 8, 1])
    batch = PairCollate(dataset, "sop", fixed_seed=3)(np.arange(5))
    parts, n = _parts(batch), 5
    labels, valid = batch.extra["pair_label"].tolist(), batch.extra["pair_valid"].tolist()
    assert valid == [True, True, True, True, False]  # one event cannot be cut
    starts = dataset.offsets[:-1] + 2
    for entity in range(4):
        whole = list(range(starts[entity], starts[entity] + int(np.diff(dataset.offsets)[entity])))
        left, right = parts[entity], parts[entity + n]
        assert left and right
        assert (left + right == whole) if labels[entity] == 1 else (right + left == whole)
    assert 0 < sum(labels[:4]) < 4  # seed 3 gives both labels


def test_nsp_negatives_take_the_next_entitys_second_part():
    dataset = _sequence_dataset([6, 4, 5, 8])
    batch = PairCollate(dataset, "nsp", fixed_seed=1)(np.arange(4))
    parts, labels = _parts(batch), batch.extra["pair_label"].tolist()
    starts, lengths = dataset.offsets[:-1] + 2, np.diff(dataset.offsets)
    owner = {value: e for e in range(4) for value in range(starts[e], starts[e] + lengths[e])}
    for entity in range(4):
        left, right = parts[entity], parts[entity + 4]
        assert {owner[v] for v in left} == {entity} and left[0] == starts[entity]  # the entity's first part
        if labels[entity] == 1:
            assert left + right == list(range(starts[entity], starts[entity] + lengths[entity]))
        else:
            assert {owner[v] for v in right} == {(entity + 1) % 4}
            assert right[-1] == starts[(entity + 1) % 4] + lengths[(entity + 1) % 4] - 1  # a second part
    assert 0 < sum(labels) < 4


def test_vicreg_terms_by_hand():
    first = torch.tensor([[0.0, 0.0], [2.0, 2.0]])
    second = torch.tensor([[0.0, 1.0], [2.0, 1.0]])
    terms = vicreg_terms(first, second, eps=0.0)
    assert terms["invariance"].item() == pytest.approx((0 + 1 + 0 + 1) / 4)
    # first: both dims have std sqrt(2) >= 1 → 0; second: dim 0 std sqrt(2), dim 1 std 0 → hinge 1 / 2 dims
    assert terms["variance"].item() == pytest.approx(0.5)
    # first: cov = [[2, 2], [2, 2]] → off-diagonal 2² + 2² = 8, / 2 dims = 4; second: cov off-diagonal 0
    assert terms["covariance"].item() == pytest.approx(4.0)


def test_barlow_twins_is_zero_for_identical_decorrelated_views_and_positive_otherwise():
    views = torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]])
    assert barlow_twins_loss(views, views, eps=0.0).item() == pytest.approx(0.0, abs=1e-6)
    swapped = views[:, [1, 0]]  # each dimension now matches the other one: C = [[0, 1], [1, 0]]
    expected = 2 * (1 - 0) ** 2 + 5e-3 * 2 * 1**2
    assert barlow_twins_loss(views, swapped, eps=0.0).item() == pytest.approx(expected, rel=1e-5)


def test_cpc_future_pairs():
    rows, context = future_pairs(torch.tensor([4, 2, 1]), width=4, step=2)
    # entity 0 (4 events): t = 0, 1 see t + 2 = 2, 3; entity 1 (2 events) and 2 (1 event): none
    assert rows.tolist() == [0, 0] and context.tolist() == [0, 1]
    rows, context = future_pairs(torch.tensor([4, 2, 1]), width=4, step=1)
    assert rows.tolist() == [0, 0, 0, 1] and context.tolist() == [0, 1, 2, 0]


def test_skipgram_pairs_within_the_window_and_real_events():
    ids = torch.tensor([[2, 3, 4, 0], [5, 1, 6, 0]])  # 0 padding, 1 unknown
    centers, contexts = skipgram_pairs(ids, torch.tensor([3, 3]), window=1)
    pairs = sorted(zip(centers.tolist(), contexts.tolist()))
    assert pairs == [(2, 3), (3, 2), (3, 4), (4, 3)]  # entity 1's pairs all touch the unknown value


def test_replaced_events_are_labelled_when_they_differ():
    torch.manual_seed(0)
    batch = Batch(features={"code": torch.tensor([[2, 3, 3, 0], [4, 5, 2, 2]]),
                            "amount": torch.tensor([[1.0, 2.0, 2.0, 0.0], [3.0, 4.0, 1.0, 1.0]])},
                  event_time=torch.zeros(2, 4, dtype=torch.int64), lengths=torch.tensor([3, 4]),
                  index=torch.arange(2))
    selected = torch.tensor([[False, True, True, False], [True, False, False, True]])
    altered, changed = replace_events(batch, selected)
    assert not bool(changed[~selected].any())
    for name in batch.features:
        assert torch.equal(altered.features[name][~selected], batch.features[name][~selected])
    differs = torch.zeros_like(selected)
    for name in batch.features:
        differs |= altered.features[name] != batch.features[name]
    assert torch.equal(changed, differs)
    assert altered.features["code"][1, 3].item() != 0  # replacements come from real events


def test_numeric_targets_standardise_the_signed_log():
    values = torch.tensor([[0.0], [np.e - 1], [-(np.e - 1)]])
    targets = numeric_targets(values)
    assert targets.squeeze(1).tolist() == pytest.approx([0.0, 1.0, -1.0])  # log1p → 0, 1, -1; std 1


def test_field_mask_changes_only_the_masked_events(prepared_dir):
    from eventseq.nn.event_encoder import EventEncoder, EventEncoderConfig

    prepared = load_prepared(prepared_dir)
    dataset = SequenceDataset.from_table(prepared.table, prepared.schema, max_len=10)
    encoder = EventEncoder(prepared.schema, EventEncoderConfig(combine="field_transformer", default_embedding_dim=8))
    batch = dataset.collate(np.arange(3))
    field_mask = torch.zeros(*batch.mask.shape, encoder.field_count, dtype=torch.bool)
    field_mask[0, 1, 0] = True
    plain, masked = encoder(batch), encoder(batch, field_mask=field_mask)
    changed = (plain != masked).any(dim=-1)
    assert changed.nonzero().tolist() == [[0, 1]]
    assert encoder.field_names[: len(prepared.schema.categorical)] == [f.name for f in prepared.schema.categorical]
