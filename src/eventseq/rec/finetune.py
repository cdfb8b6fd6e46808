"""Recommender fine-tuning: rank the items of each request group from a delayed user state.

For each group the user state is the latest h_k at least Δ ~ U(2, 32) days before the request
(training; a production model serves states computed offline some days earlier) or the latest state
before the request (validation). Candidate score = cos(query(state, context), item vector) /
exp(s) + b with learnable s, b; loss = calibrated pairwise logistic loss over every (positive,
negative) pair of a group. Validation: NDCG@10, HR@10 and MRR per group.

Initialisation from a pretrained model (`init`): scratch, backbone (event encoder + transformer) or
full (backbone + fusion + projector).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import lightning as L
import torch

from eventseq.config import check_options, option
from eventseq.data.schema import Schema
from eventseq.errors import ConfigError
from eventseq.optim import OptimizerConfig, attached_trainer
from eventseq.rec.batches import GroupBatch
from eventseq.rec.metrics import calibrated_pairwise_loss, ranking_metrics
from eventseq.rec.model import RecModelConfig, RecNetwork

INIT_MODES = ("scratch", "backbone", "full")


@dataclass
class RankerConfig:
    """The fine-tuning objective.

    Attributes:
        min_delay_days: shortest random delay of the user state in training.
        max_delay_days: longest random delay of the user state in training.
        k: cut-off of NDCG@k and HR@k.
        initial_scale: exp(s) at the start (cosine / exp(s)).
    """

    min_delay_days: float = option(2.0, ge=0)
    max_delay_days: float = option(32.0, ge=0)
    k: int = option(10, ge=1)
    initial_scale: float = option(0.2, gt=0)

    def validate(self) -> None:
        check_options(self, "ranker.")
        if not self.min_delay_days <= self.max_delay_days:
            raise ConfigError(f"delays: need 0 <= min_delay_days ({self.min_delay_days}) <= max_delay_days "
                              f"({self.max_delay_days})")


class RankerModule(L.LightningModule):
    """Scores candidates inside request groups; trained with the calibrated pairwise loss."""

    kind = "rec_ranker"

    def __init__(
        self,
        schema: Schema,
        model_config: RecModelConfig | None = None,
        ranker: RankerConfig | None = None,
        optimizer_config: OptimizerConfig | None = None,
    ) -> None:
        super().__init__()
        self.schema = schema
        self.model_config = model_config or RecModelConfig()
        self.ranker = ranker or RankerConfig()
        self.ranker.validate()
        self.optimizer_config = optimizer_config or OptimizerConfig(lr=1e-3)
        self.network = RecNetwork(schema, self.model_config)
        self.log_scale = torch.nn.Parameter(torch.tensor(math.log(self.ranker.initial_scale)))
        self.bias = torch.nn.Parameter(torch.zeros(()))

    def initialise_from(self, pretrained: L.LightningModule, mode: str) -> None:
        """Copy pretrained weights: scratch (nothing), backbone, or full (backbone + fusion + projector)."""
        if mode not in INIT_MODES:
            raise ConfigError(f"init={mode!r}: expected one of {list(INIT_MODES)}")
        if mode == "scratch":
            return
        if pretrained.schema.fingerprint() != self.schema.fingerprint():
            raise ConfigError("the pretrained model was trained on data with other vocabularies: "
                              "fine-tune on the same `rec prepare` output")
        network: RecNetwork = pretrained.network
        state = network.backbone_state_dict() if mode == "backbone" else network.head_state_dict()
        missing = self.network.load_state_dict(state, strict=False)
        if missing.unexpected_keys:
            raise ConfigError(f"pretrained weights do not fit: unexpected {missing.unexpected_keys[:5]}")

    def scores(self, batch: GroupBatch) -> torch.Tensor:
        """[G, M] calibrated logits of the candidates (padding included; mask them)."""
        network = self.network
        hidden = network.hidden(batch.history)  # [W, T, d]
        states = network.states_at(hidden, batch.state_row, batch.state_position)  # [G, d]
        query = network.query(states, batch.source)  # [G, d]
        items = network.item_vectors(batch.items)  # [G, M, d]
        cosine = torch.einsum("gd,gmd->gm", query, items)
        return cosine / self.log_scale.exp() + self.bias

    def training_step(self, batch: GroupBatch, batch_index: int) -> torch.Tensor:
        loss = calibrated_pairwise_loss(self.scores(batch), batch.labels, batch.mask)
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(batch))
        return loss

    def validation_step(self, batch: GroupBatch, batch_index: int) -> None:
        scores = self.scores(batch)
        self.log("val_loss", calibrated_pairwise_loss(scores, batch.labels, batch.mask), on_epoch=True,
                 batch_size=len(batch))
        metrics = ranking_metrics(scores, batch.labels, batch.mask, self.ranker.k)
        size = max(int(metrics["groups"]), 1)
        k = self.ranker.k
        self.log(f"val_ndcg_at_{k}", metrics["ndcg"], on_epoch=True, prog_bar=True, batch_size=size)
        self.log(f"val_hr_at_{k}", metrics["hr"], on_epoch=True, batch_size=size)
        self.log("val_mrr", metrics["mrr"], on_epoch=True, batch_size=size)

    @property
    def monitor(self) -> tuple[str, str]:
        return f"val_ndcg_at_{self.ranker.k}", "max"

    def configure_optimizers(self) -> Any:
        return self.optimizer_config.configure(self.parameters(), attached_trainer(self), self.monitor)

    def to_config(self) -> dict[str, Any]:
        return {"network": asdict(self.model_config), "ranker": asdict(self.ranker),
                "optimizer": asdict(self.optimizer_config)}

    @classmethod
    def from_config(cls, schema: Schema, config: dict[str, Any]) -> RankerModule:
        return cls(schema, RecModelConfig(**config["network"]), RankerConfig(**config["ranker"]),
                   OptimizerConfig(**config.get("optimizer", {})))
