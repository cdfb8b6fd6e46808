"""Sequence-to-target training: binary, multiclass, multilabel, regression.

A LightningModule holding the Encoder, a head and the loss; the Trainer holds everything else.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
import torchmetrics
from torch import nn

from eventseq.config import option
from eventseq.data.batch import Batch
from eventseq.data.schema import Schema
from eventseq.errors import ConfigError
from eventseq.nn.encoder import Encoder, EncoderConfig
from eventseq.optim import OptimizerConfig, attached_trainer

# metric used for early stopping and the best checkpoint, and whether higher is better
MONITOR = {
    "binary": ("val_auroc", "max"),
    "multiclass": ("val_accuracy", "max"),
    "multilabel": ("val_auroc", "max"),
    "regression": ("val_rmse", "min"),
}


@dataclass
class HeadConfig:
    """The supervised head and loss.

    Attributes:
        task: auto (from the schema's target), binary, multiclass, multilabel or regression.
        targets: target column(s); several only for multilabel/regression.
        num_outputs: logits / values the head produces (filled in from the schema).
        hidden_size: hidden layer of an MLP head; None = a linear head.
        dropout: dropout before the head.
        class_weights: loss weight per class (binary: [w0, w1]); None = unweighted.
    """

    task: str = "auto"
    targets: list[str] | None = None
    num_outputs: int = option(1, ge=1)
    hidden_size: int | None = option(None, ge=1)
    dropout: float = option(0.1, ge=0, lt=1)
    class_weights: list[float] | None = option(None, ge=0)


def resolve_head(schema: Schema, head: HeadConfig) -> HeadConfig:
    """Fill task, targets and output count of `head` from the schema; check they are consistent."""
    if not schema.targets:
        raise ConfigError("the prepared data has no target columns: declare targets in prepare")
    names = list(head.targets or [schema.targets[0].name])
    if not head.targets and schema.targets[0].task == "multilabel":
        # the labels of a multilabel task are one column each: by default all of them together
        names = [target.name for target in schema.targets if target.task == "multilabel"]
    specs = [schema.target(name) for name in names]
    tasks = {spec.task for spec in specs}
    if len(tasks) > 1:
        raise ConfigError(f"targets {names} mix tasks {sorted(tasks)}: train one task at a time")
    task = tasks.pop()
    if head.task not in ("auto", task):
        raise ConfigError(f"head.task={head.task!r} but target(s) {names} were prepared as {task}")
    if len(names) > 1 and task not in ("multilabel", "regression"):
        raise ConfigError(f"{len(names)} targets given for a {task} task: only multilabel/regression take several")
    if task == "multiclass":
        num_outputs = len(specs[0].classes or [])
    elif task == "binary":
        num_outputs = 1
    else:
        num_outputs = len(names)
    return replace(head, task=task, targets=names, num_outputs=num_outputs)


def _metrics(task: str, num_outputs: int) -> torchmetrics.MetricCollection:
    if task == "binary":
        metrics = {
            "auroc": torchmetrics.AUROC(task="binary"),
            "accuracy": torchmetrics.Accuracy(task="binary"),
            "f1": torchmetrics.F1Score(task="binary"),
        }
    elif task == "multiclass":
        metrics = {
            "accuracy": torchmetrics.Accuracy(task="multiclass", num_classes=num_outputs),
            "f1": torchmetrics.F1Score(task="multiclass", num_classes=num_outputs, average="macro"),
            "auroc": torchmetrics.AUROC(task="multiclass", num_classes=num_outputs),
        }
    elif task == "multilabel":
        metrics = {
            "auroc": torchmetrics.AUROC(task="multilabel", num_labels=num_outputs),
            "accuracy": torchmetrics.Accuracy(task="multilabel", num_labels=num_outputs),
            "f1": torchmetrics.F1Score(task="multilabel", num_labels=num_outputs, average="macro"),
        }
    else:
        metrics = {
            "rmse": torchmetrics.MeanSquaredError(squared=False),
            "mae": torchmetrics.MeanAbsoluteError(),
        }
    return torchmetrics.MetricCollection(metrics)


class SupervisedModule(L.LightningModule):
    """Encoder + head + loss for one per-entity prediction task."""

    kind = "supervised"
    # the aggregates part and the stack (eventseq.combined.CombinedModel) of a model trained combined, set by
    # train and load_model; predict then returns the combined outputs. None: the network alone.
    combined: Any = None

    def __init__(
        self,
        schema: Schema,
        encoder_config: EncoderConfig | None = None,
        head_config: HeadConfig | None = None,
        optimizer_config: OptimizerConfig | None = None,
        members: int = 0,
    ) -> None:
        super().__init__()
        self.schema = schema
        self.encoder_config = (encoder_config or EncoderConfig()).resolved(causal=False)
        self.head_config = head_config or HeadConfig()
        self.optimizer_config = optimizer_config or OptimizerConfig()
        task, outputs = self.head_config.task, self.head_config.num_outputs
        if task not in MONITOR:
            raise ConfigError(f"head.task={task!r}: expected one of {list(MONITOR)}")
        self.encoder = Encoder(schema, self.encoder_config)
        self.head = self._new_head()
        # further networks of the same architecture whose outputs forward averages with this one's: the
        # fold networks of a cross-validated run (train's cv.below). Empty: one network.
        self.members = nn.ModuleList(
            nn.ModuleDict({"encoder": Encoder(schema, self.encoder_config), "head": self._new_head()})
            for _ in range(members)
        )
        weights = self.head_config.class_weights
        if weights is not None:
            expected = 2 if task == "binary" else outputs
            if len(weights) != expected:
                raise ConfigError(f"class_weights has {len(weights)} values, the {task} task needs {expected}")
        self.register_buffer("class_weights", torch.tensor(weights, dtype=torch.float32) if weights else None)
        if self.optimizer_config.freeze_encoder:
            self.encoder.requires_grad_(False)
        self.val_metrics = _metrics(task, outputs).clone(prefix="val_")
        self.test_metrics = _metrics(task, outputs).clone(prefix="test_")

    def _new_head(self) -> nn.Sequential:
        hidden, outputs = self.head_config.hidden_size, self.head_config.num_outputs
        layers: list[nn.Module] = [nn.Dropout(self.head_config.dropout)]
        if hidden:
            layers += [nn.Linear(self.encoder.embedding_dim, hidden), nn.ReLU(), nn.Linear(hidden, outputs)]
        else:
            layers.append(nn.Linear(self.encoder.embedding_dim, outputs))
        return nn.Sequential(*layers)

    def add_members(self, others: list[SupervisedModule]) -> None:
        """Average these networks (same schema and architecture) into this one's outputs from now on.

        The mean is taken over logits (classification: a geometric mean of the odds, or of the class
        probabilities) or values (regression); `embed` stays this network's own.
        """
        for other in others:
            if other.to_config() != {**self.to_config(), "members": 0}:
                raise ConfigError("add_members: the networks differ in architecture, head or optimizer settings")
            self.members.append(nn.ModuleDict({"encoder": other.encoder, "head": other.head}))

    # ------------------------------------------------------------------ model
    def forward(self, batch: Batch) -> torch.Tensor:
        """Logits (classification) or values (regression): [B] for binary, [B, K] otherwise; with members,
        the mean over this network and them."""
        output = self.head(self.encoder.embed(batch))  # [B, K]
        if len(self.members):
            output = torch.stack([output, *(member["head"](member["encoder"].embed(batch))
                                            for member in self.members)]).mean(0)
        return output.squeeze(-1) if self.head_config.task == "binary" else output

    def embed(self, batch: Batch) -> torch.Tensor:
        return self.encoder.embed(batch)

    def predict_outputs(self, batch: Batch) -> torch.Tensor:
        """Probabilities (classification) or values (regression)."""
        output = self(batch)
        task = self.head_config.task
        if task in ("binary", "multilabel"):
            return torch.sigmoid(output)
        if task == "multiclass":
            return torch.softmax(output, dim=-1)
        return output

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        task = self.head_config.task
        if task == "binary":
            target = target.float()
            weight = None
            if self.class_weights is not None:
                weight = self.class_weights[target.long()]
            return F.binary_cross_entropy_with_logits(output, target, weight=weight)
        if task == "multiclass":
            return F.cross_entropy(output, target.long(), weight=self.class_weights)
        if task == "multilabel":
            return F.binary_cross_entropy_with_logits(output, target.float(), pos_weight=self.class_weights)
        return F.mse_loss(output, target.float().view_as(output))

    # ------------------------------------------------------------------ steps
    def on_train_epoch_start(self) -> None:
        if self.optimizer_config.freeze_encoder:
            self.encoder.eval()  # a frozen encoder also keeps its batch-norm statistics and no dropout

    def training_step(self, batch: Batch, batch_index: int) -> torch.Tensor:
        loss = self.loss(self(batch), batch.target)
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=batch.batch_size,
                 sync_dist=True)  # under DDP: the mean over ranks (torchmetrics sync the other metrics)
        return loss

    def _evaluate(self, batch: Batch, metrics: torchmetrics.MetricCollection, prefix: str) -> None:
        output = self(batch)
        self.log(f"{prefix}_loss", self.loss(output, batch.target), on_epoch=True, prog_bar=True,
                 batch_size=batch.batch_size, sync_dist=True)
        task = self.head_config.task
        target = batch.target
        if task in ("binary", "multilabel"):
            metrics.update(torch.sigmoid(output), target.long())
        elif task == "multiclass":
            metrics.update(torch.softmax(output, dim=-1), target.long())
        else:
            metrics.update(output, target.float().view_as(output))

    def validation_step(self, batch: Batch, batch_index: int) -> None:
        self._evaluate(batch, self.val_metrics, "val")

    def on_validation_epoch_end(self) -> None:
        self.log_dict(self.val_metrics.compute(), prog_bar=True, sync_dist=True)  # equal on every rank already
        self.val_metrics.reset()

    def test_step(self, batch: Batch, batch_index: int) -> None:
        self._evaluate(batch, self.test_metrics, "test")

    def on_test_epoch_end(self) -> None:
        self.log_dict(self.test_metrics.compute(), sync_dist=True)
        self.test_metrics.reset()

    @property
    def monitor(self) -> tuple[str, str]:
        """The validation metric that selects the best epoch, and "min" or "max" (MONITOR, by task)."""
        return MONITOR[self.head_config.task]

    def configure_optimizers(self) -> Any:
        config = self.optimizer_config
        encoder_lr = config.encoder_lr if config.encoder_lr is not None else config.lr
        groups = [
            {"params": [p for p in self.encoder.parameters() if p.requires_grad], "lr": encoder_lr},
            {"params": list(self.head.parameters()), "lr": config.lr},
        ]
        return config.configure([g for g in groups if g["params"]], attached_trainer(self),
                                self.monitor)

    # ------------------------------------------------------------------ saving
    def to_config(self) -> dict[str, Any]:
        return {
            "encoder": asdict(self.encoder_config),
            "head": asdict(self.head_config),
            "optimizer": asdict(self.optimizer_config),
            "members": len(self.members),
        }

    @classmethod
    def from_config(cls, schema: Schema, config: dict[str, Any]) -> SupervisedModule:
        return cls(
            schema,
            EncoderConfig.from_saved(config["encoder"]),
            HeadConfig(**config["head"]),
            OptimizerConfig(**config.get("optimizer", {})),
            members=int(config.get("members", 0)),
        )
