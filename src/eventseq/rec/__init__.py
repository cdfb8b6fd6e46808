"""The sequential recommender / ranker.

- `eventseq.rec.data`: interaction log → histories of positives + request groups, time split (`prepare_rec`).
- `eventseq.rec.batches`: delayed user-state lookup and request-group batches.
- `eventseq.rec.model`: the network (the library's EventEncoder + causal TransformerEncoder + heads).
- `eventseq.rec.pretrain` / `eventseq.rec.finetune`: the two objectives; `eventseq.rec.metrics`: losses, NDCG.

The synthetic interaction log with planted user/item factors is `eventseq.datasets.interactions`.
- `eventseq.rec.runs`: `pretrain_rec`, `finetune_rec`, `evaluate_rec`, `score_rec`; `eventseq.rec.cli`: `eventseq rec …`.

Submodules are imported explicitly, so that importing one loads only what it needs.
"""
