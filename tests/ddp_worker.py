"""One rank of the 2-process CPU DDP tests (tests/test_ddp.py starts two of these).

Usage: python ddp_worker.py MODE SHARDED_DIR OUTPUT_DIR   (rank from LOCAL_RANK / RANK, port from MASTER_PORT)

- MODE=fit: a Lightning DDP fit of a tiny CoLES model on a ShardedDataset, recording the entities
  each rank sees per epoch; then the CoLES loss and gradient with views gathered across the two
  ranks, and (after leaving the process group) the same on one process over both ranks' views.
- MODE=pretrain: `eventseq.training.pretrain` with data.streaming and trainer.strategy=ddp.
Each rank writes OUTPUT_DIR/rank<r>.json.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import replace
from pathlib import Path

import lightning as L
import numpy as np
import torch

torch.set_num_threads(1)

from eventseq.data import SequenceDataset  # noqa: E402
from eventseq.data.augment import ViewCollate, ViewConfig  # noqa: E402
from eventseq.data.batch import Batch  # noqa: E402
from eventseq.data.shards import ShardedDataset, ShardIndex, read_shard_schema, stream_loader  # noqa: E402
from eventseq.nn import EncoderConfig, EventEncoderConfig, SequenceEncoderConfig  # noqa: E402
from eventseq.objectives.coles import ColesConfig  # noqa: E402
from eventseq.objectives.selfsupervised import SelfSupervisedModule  # noqa: E402

VIEWS = ViewConfig(split_count=3, min_len=3, max_len=10)


class Recorder(L.Callback):
    """Entity ids (the id_copy target) of every training batch, per epoch."""

    def __init__(self) -> None:
        self.ids: dict[int, list[int]] = {}
        self.batches: dict[int, int] = {}

    def on_train_batch_start(self, trainer: L.Trainer, module: L.LightningModule, batch: Batch, index: int) -> None:
        epoch = trainer.current_epoch
        self.ids.setdefault(epoch, []).extend(np.unique(batch.target.numpy()).tolist())
        self.batches[epoch] = self.batches.get(epoch, 0) + 1


def _module(schema, loss: str = "margin") -> SelfSupervisedModule:
    torch.manual_seed(0)
    # calendar off: the comparison of gathered and local losses below was sized on this encoder's inputs
    encoder = EncoderConfig(event_encoder=EventEncoderConfig(calendar=False),
                            sequence_encoder=SequenceEncoderConfig(hidden_size=8))
    return SelfSupervisedModule(schema, "coles", encoder, ColesConfig(loss=loss, views=VIEWS))


def _concat(first: Batch, second: Batch) -> Batch:
    """One batch holding the rows of both (padded to the longer width)."""
    width = max(first.max_length, second.max_length)

    def pad(tensor: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.pad(tensor, (0, width - tensor.shape[1]))

    return Batch(
        features={name: torch.cat([pad(first.features[name]), pad(second.features[name])]) for name in first.features},
        event_time=torch.cat([pad(first.event_time), pad(second.event_time)]),
        lengths=torch.cat([first.lengths, second.lengths]),
        index=torch.cat([first.index, second.index]),
    )


def fit(sharded: Path, output: Path, rank: int) -> dict:
    schema = read_shard_schema(sharded)
    index = ShardIndex(sharded, schema, valid_fraction=0.1)
    module = _module(schema)

    def loader(part: str, train: bool):
        stream = ShardedDataset(index, part, batch_size=64, target="id_copy", shuffle=train, seed=0,
                                collate=lambda dataset: module.collate(dataset, train, 0))
        return stream_loader(stream, epoch_of=lambda: module.current_epoch)

    train_loader = loader("train", True)
    recorder = Recorder()
    trainer = L.Trainer(accelerator="cpu", devices=2, strategy="ddp", max_epochs=2, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        use_distributed_sampler=False, callbacks=[recorder])
    trainer.fit(module, train_loader, loader("valid", False))
    result = {"rank": trainer.global_rank, "world": trainer.world_size, "ids": recorder.ids,
              "batches": recorder.batches, "length": len(train_loader)}

    # --- the CoLES loss with views gathered across ranks vs one process holding both ranks' views
    for loss in ("margin", "infonce"):
        module = _module(schema, loss).eval()  # eval: batch norm uses running statistics, the same on every rank
        table = index.read(index.units(1)[0], [schema.id_column, "event_time", *schema.feature_names])
        dataset = SequenceDataset.from_table(table, schema)
        batches = [ViewCollate(dataset, VIEWS, fixed_seed=7)(np.arange(12) + 12 * r) for r in range(2)]
        gathered = module.objective.losses(module.encoder, batches[rank])["loss"]
        gathered.backward()
        gradients = []
        for parameter in module.parameters():  # what DDP does: the mean over ranks
            if parameter.grad is not None:
                torch.distributed.all_reduce(parameter.grad)
                gradients.append(parameter.grad / 2)
        values = [torch.zeros(1) for _ in range(2)]
        torch.distributed.all_gather(values, gathered.detach().reshape(1))
        result[f"{loss}_gathered"] = [float(v) for v in values]
        result[f"{loss}_grads"] = [g.clone() for g in gradients]
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()  # from here on, one process: no gathering

    for loss in ("margin", "infonce"):
        module = _module(schema, loss).eval()
        both = _concat(*batches)
        single = module.objective.losses(module.encoder, both)["loss"]
        single.backward()
        reference = [p.grad for p in module.parameters() if p.grad is not None]
        result[f"{loss}_single"] = float(single)
        result[f"{loss}_local_only"] = float(module.objective.losses(module.encoder, batches[rank])["loss"])
        result[f"{loss}_grad_max_diff"] = max(float((a - b).abs().max()) for a, b in
                                              zip(result.pop(f"{loss}_grads"), reference))
        result[f"{loss}_grad_max"] = max(float(g.abs().max()) for g in reference)
    return result


def pretrain_run(sharded: Path, output: Path, rank: int) -> dict:
    from eventseq.training import PretrainConfig, pretrain

    config = PretrainConfig(output=str(output / "run"))
    config.data = replace(config.data, path=str(sharded), streaming=True, batch_size=32)
    config.model.sequence_encoder.hidden_size = 8
    config.coles.views = VIEWS
    config.trainer = replace(config.trainer, devices=2, strategy="ddp", max_epochs=2, progress_bar=False)
    result = pretrain(config)
    return {"rank": rank, "metrics": result.metrics, "model_dir": str(result.model_dir)}


if __name__ == "__main__":
    mode, sharded, output = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    rank = int(os.environ["LOCAL_RANK"])
    result = fit(sharded, output, rank) if mode == "fit" else pretrain_run(sharded, output, rank)
    (output / f"rank{rank}.json").write_text(json.dumps(result))
