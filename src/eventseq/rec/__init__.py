"""The sequential recommender / ranker.

- `eventseq.rec.data`: interaction log → histories of positives + request groups, time split (`prepare_rec`).
- `eventseq.rec.synthetic`: a log with planted user/item factors and the oracle score of every shown item.
- `eventseq.rec.batches`: delayed user-state lookup and request-group batches.
- `eventseq.rec.model`: the network (the library's EventEncoder + causal TransformerEncoder + heads).
- `eventseq.rec.pretrain` / `eventseq.rec.finetune`: the two objectives; `eventseq.rec.metrics`: losses, NDCG.
- `eventseq.rec.runs`: `pretrain_rec`, `finetune_rec`, `evaluate_rec`, `score_rec`; `eventseq.rec.cli`: `eventseq rec …`.

Submodules are imported explicitly (this package is imported by `eventseq.saved`, which the runs need).
"""
