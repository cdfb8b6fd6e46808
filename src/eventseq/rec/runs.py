"""Recommender runs: pretrain, fine-tune, evaluate and score, on the shared Lightning set-up.

Each run reads a `rec prepare` directory, trains through `eventseq.training.trainer`'s Trainer wiring
(checkpoints, early stopping, CSV/TensorBoard logs, resume, curves.png) and saves a safetensors
model directory that `load_model` rebuilds.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import lightning as L
import numpy as np
import polars as pl
import torch

from eventseq._io import check_output, write_parquet
from eventseq.config import REC_GROUPS, ConfigGroup, check_options, option
from eventseq.data.dataset import SequenceDataset
from eventseq.data.sampler import LengthBucketSampler
from eventseq.errors import ColumnError, ConfigError
from eventseq.inference import run_batches
from eventseq.optim import OptimizerConfig
from eventseq.rec.batches import GroupCollate, history_windows
from eventseq.rec.data import RecData, load_rec_data
from eventseq.rec.finetune import INIT_MODES, RankerConfig, RankerModule
from eventseq.rec.metrics import expected_random_metrics, ranking_metrics
from eventseq.rec.model import RecModelConfig
from eventseq.rec.pretrain import NextPositiveConfig, NextPositiveModule
from eventseq.training.config import TrainerSection
from eventseq.training.trainer import check_trainer, evaluation_trainer, finish_run, fit_module


@dataclass
class RecPretrainConfig:
    """A pretraining run (next-positive + feedback prediction).

    Attributes:
        data: directory written by `eventseq rec prepare`.
        batch_size: user windows per step.
        output: run directory.
        seed: global seed.
        resume: continue from output/checkpoints/last.ckpt.
    """

    data: str = ""
    model: RecModelConfig = field(default_factory=RecModelConfig)
    objective: NextPositiveConfig = field(default_factory=NextPositiveConfig)
    optimizer: OptimizerConfig = field(default_factory=lambda: OptimizerConfig(lr=3e-3))
    trainer: TrainerSection = field(default_factory=lambda: TrainerSection(max_epochs=20, patience=3))
    batch_size: int = option(32, ge=1)
    output: str = "runs/rec_pretrain"
    seed: int = option(0, ge=0, le=2**32 - 1)
    resume: bool = False

    config_groups: ClassVar[tuple[ConfigGroup, ...]] = REC_GROUPS  # `trainer=quick` etc. (eventseq/configs/)


@dataclass
class RecFinetuneConfig:
    """A fine-tuning run (ranking inside request groups).

    Attributes:
        data: directory written by `eventseq rec prepare`.
        init_from: a pretrained model directory (runs/rec_pretrain/model); needed unless init=scratch.
        init: scratch, backbone or full.
        batch_size: request groups per step.
        output: run directory.
        seed: global seed (also of the random delays).
        resume: continue from output/checkpoints/last.ckpt.
    """

    data: str = ""
    init_from: str | None = None
    init: str = "full"
    model: RecModelConfig = field(default_factory=RecModelConfig)
    ranker: RankerConfig = field(default_factory=RankerConfig)
    optimizer: OptimizerConfig = field(default_factory=lambda: OptimizerConfig(lr=1e-3))
    trainer: TrainerSection = field(default_factory=lambda: TrainerSection(max_epochs=10, patience=3))
    batch_size: int = option(128, ge=1)
    output: str = "runs/rec_finetune"
    seed: int = option(0, ge=0, le=2**32 - 1)
    resume: bool = False

    config_groups: ClassVar[tuple[ConfigGroup, ...]] = REC_GROUPS


@dataclass
class RecRunResult:
    module: L.LightningModule
    metrics: dict[str, float]
    run_dir: Path
    model_dir: Path
    seconds: float


def _load(path: str) -> tuple[RecData, SequenceDataset]:
    if not path:
        raise ConfigError("data is required: the directory written by `eventseq rec prepare`")
    data = load_rec_data(path)
    return data, SequenceDataset.from_table(data.history.table, data.schema)


def _window_loader(history: SequenceDataset, windows: tuple[np.ndarray, np.ndarray, np.ndarray], batch_size: int,
                   shuffle: bool, seed: int) -> torch.utils.data.DataLoader:
    users, starts, lengths = windows

    def collate(positions: list[int]):
        positions = np.asarray(positions)
        return history.collate_views(users[positions], starts[positions], lengths[positions])

    return torch.utils.data.DataLoader(range(len(users)), collate_fn=collate,
                                       batch_sampler=LengthBucketSampler(lengths, batch_size, shuffle=shuffle, seed=seed))


def _train_and_save(module: L.LightningModule, train_loader: torch.utils.data.DataLoader,
                    valid_loader: torch.utils.data.DataLoader, config: RecPretrainConfig | RecFinetuneConfig,
                    started: float) -> RecRunResult:
    """Fit with the shared Trainer set-up, score the best weights on validation, save the model."""
    run_dir = Path(config.output)
    run_dir.mkdir(parents=True, exist_ok=True)
    monitor, mode = module.monitor
    trainer = fit_module(module, train_loader, valid_loader, config, run_dir, monitor, mode)
    metrics = {k: float(v) for k, v in evaluation_trainer(config.trainer).validate(module, valid_loader, verbose=False)[0].items()}
    metrics["epochs"] = int(trainer.current_epoch)
    metrics["train_seconds"] = time.perf_counter() - started  # shown by `rec evaluate`
    model_dir = finish_run(module, run_dir, metrics, config)
    return RecRunResult(module.eval(), metrics, run_dir, model_dir, metrics["train_seconds"])


def item_counts(data: RecData, history: SequenceDataset) -> np.ndarray:
    """Positives per item id before the training cut-off (the popularity baseline and sampler)."""
    item_field = data.schema.categorical[0]
    before = history.columns["event_time"] < data.split.train_end
    return np.bincount(history.columns[item_field.name][before].astype(np.int64),
                       minlength=item_field.num_embeddings).astype(np.float64)


def pretrain_rec(config: RecPretrainConfig) -> RecRunResult:
    """Pretrain on users' positives before the gap; validate on positives in the validation window."""
    check_options(config)
    config.optimizer.refuse_encoder_options("rec pretrain", "drop it")
    check_trainer(config.trainer)
    started = time.perf_counter()
    L.seed_everything(config.seed, workers=True, verbose=False)
    data, history = _load(config.data)
    max_len = config.model.max_len
    users = np.arange(len(history))
    train_windows = history_windows(history, users, data.split.train_end, max_len)
    valid_users = np.unique(data.part("valid").get_column("user_row").to_numpy())
    valid_windows = history_windows(history, valid_users[valid_users >= 0], None, max_len)
    if len(train_windows[0]) == 0:
        raise ConfigError("no user has two positives before the training cut-off: nothing to pretrain on")
    module = NextPositiveModule(data.schema, config.model, config.objective, config.optimizer,
                                valid_start=data.split.valid_start, item_counts=item_counts(data, history).tolist())
    train_loader = _window_loader(history, train_windows, config.batch_size, True, config.seed)
    valid_loader = _window_loader(history, valid_windows, config.batch_size, False, config.seed)
    return _train_and_save(module, train_loader, valid_loader, config, started)


def _group_loader(history: SequenceDataset, groups: pl.DataFrame, config: RecFinetuneConfig, train: bool,
                  max_len: int) -> torch.utils.data.DataLoader:
    collate = GroupCollate(history, groups, max_len, delay=train, min_delay_days=config.ranker.min_delay_days,
                           max_delay_days=config.ranker.max_delay_days, seed=config.seed)
    sampler = LengthBucketSampler(collate.group_sizes(), config.batch_size, shuffle=train, seed=config.seed)
    return torch.utils.data.DataLoader(range(len(collate)), batch_sampler=sampler, collate_fn=collate)


def finetune_rec(config: RecFinetuneConfig) -> RecRunResult:
    """Fine-tune a ranker on training groups (delayed states); select it by validation NDCG@k."""
    check_options(config)
    config.optimizer.refuse_encoder_options(
        "rec finetune", "drop it (init= chooses which weights start from the pretrained model; all are trained)")
    check_trainer(config.trainer)
    started = time.perf_counter()
    L.seed_everything(config.seed, workers=True, verbose=False)
    if config.init not in INIT_MODES:
        raise ConfigError(f"init={config.init!r}: expected one of {list(INIT_MODES)}")
    data, history = _load(config.data)
    model_config, pretrained = config.model, None
    if config.init != "scratch":
        if not config.init_from:
            raise ConfigError(f"init={config.init} needs init_from=<pretrained model directory>")
        from eventseq.saved import load_model, require_family

        pretrained = load_model(config.init_from)
        require_family(pretrained, ("rec_pretrain",), f"eventseq rec finetune init={config.init}",
                       f"init_from={config.init_from}")
        model_config = pretrained.model_config  # the architecture comes with the weights
    module = RankerModule(data.schema, model_config, config.ranker, config.optimizer)
    if pretrained is not None:
        module.initialise_from(pretrained, config.init)
    train_loader = _group_loader(history, data.part("train"), config, True, model_config.max_len)
    valid_loader = _group_loader(history, data.part("valid"), config, False, model_config.max_len)
    return _train_and_save(module, train_loader, valid_loader, config, started)


# ----------------------------------------------------------------------------- evaluation and scoring


def group_scores(module: RankerModule, data: RecData, part: str = "valid", batch_size: int = 256,
                 history: SequenceDataset | None = None) -> list[np.ndarray]:
    """The model's score of every candidate of every group of `part`, as one array per group."""
    history = history or SequenceDataset.from_table(data.history.table, data.schema)
    groups = data.part(part)
    collate = GroupCollate(history, groups, module.model_config.max_len, delay=False)
    module = module.eval()

    def scores_of(batch: Any) -> list[np.ndarray]:
        values, sizes = module.scores(batch).numpy(), batch.mask.sum(dim=1).numpy()
        return [row[:size] for row, size in zip(values, sizes)]

    return [row for _, rows in run_batches(scores_of, collate, np.arange(len(collate)), batch_size) for row in rows]


def _padded(groups: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(g) for g in groups)
    values = np.zeros((len(groups), width), dtype=np.float32)
    mask = np.zeros((len(groups), width), dtype=bool)
    sizes = np.array([len(g) for g in groups])
    mask[np.arange(width)[None, :] < sizes[:, None]] = True
    values[mask] = np.concatenate(groups)
    return torch.from_numpy(values), torch.from_numpy(mask)


def _metrics_row(name: str, scores: list[np.ndarray], labels: torch.Tensor, mask: torch.Tensor, k: int,
                 seconds: float) -> dict[str, Any]:
    values, _ = _padded(scores)
    result = ranking_metrics(values, labels, mask, k)
    return {"method": name, f"ndcg@{k}": float(result["ndcg"]), f"hr@{k}": float(result["hr"]),
            "mrr": float(result["mrr"]), "seconds": seconds}


def evaluate_rec(
    data: RecData | str | os.PathLike,
    models: dict[str, str | os.PathLike | L.LightningModule] | None = None,
    oracle: pl.DataFrame | None = None,
    seconds: dict[str, float] | None = None,
    k: int = 10,
) -> pl.DataFrame:
    """NDCG@k, HR@k and MRR on the validation groups: random order, popularity, each model, the oracle.

    Args:
        data: prepared recommender data (or its directory).
        models: name → ranker model (directory or module).
        oracle: optional request_id, item_id, oracle_score table (the synthetic generator's truth).
        seconds: optional wall-clock time per model name (default: the training time saved with it).
        k: cut-off.

    Returns:
        One row per method.
    """
    from eventseq.saved import load_model, require_family

    data = load_rec_data(data) if not isinstance(data, RecData) else data
    groups = data.part("valid")
    label_groups = [np.asarray(v, dtype=np.float32) for v in groups.get_column("labels").to_list()]
    labels, mask = _padded(label_groups)
    random = expected_random_metrics(labels, mask, k)
    rows = [{"method": "random order", f"ndcg@{k}": random["ndcg"], f"hr@{k}": random["hr"], "mrr": random["mrr"],
             "seconds": 0.0}]
    history = SequenceDataset.from_table(data.history.table, data.schema)
    counts = item_counts(data, history)
    popularity = [counts[np.asarray(items)] for items in groups.get_column("items").to_list()]
    rows.append(_metrics_row("popularity", popularity, labels, mask, k, 0.0))
    for name, model in (models or {}).items():
        module = load_model(model) if isinstance(model, (str, os.PathLike)) else model
        require_family(module, ("rec_ranker",), "eventseq rec evaluate", f"model '{name}'")
        trained_for = (getattr(module, "saved_info", None) or {}).get("metrics", {}).get("train_seconds", 0.0)
        rows.append(_metrics_row(name, group_scores(module, data, history=history), labels, mask, k,
                                 (seconds or {}).get(name, trained_for)))
    if oracle is not None:
        request, item = data.config.request_column, data.config.item_column
        missing = [column for column in (request, item, "oracle_score") if column not in oracle.columns]
        if missing:
            raise ColumnError(f"the oracle table lacks column(s) {missing} (columns: {oracle.columns[:10]}): it needs "
                              f"{request}, {item} and oracle_score, as `eventseq rec generate` writes them")
        flat = groups.select(request, pl.col("item_values").alias(item)).explode(item).with_row_index("_position")
        joined = flat.join(oracle.select(request, item, "oracle_score"), on=[request, item], how="left")
        joined = joined.sort("_position")
        if joined.get_column("oracle_score").null_count():
            raise ConfigError("the oracle table lacks scores for some validation candidates")
        sizes = np.cumsum([len(g) for g in label_groups])[:-1]
        rows.append(_metrics_row("oracle", np.split(joined.get_column("oracle_score").to_numpy(), sizes),
                                 labels, mask, k, 0.0))
    return pl.DataFrame(rows)


def score_rec(
    model: str | os.PathLike | RankerModule, data: RecData | str | os.PathLike, output: str | os.PathLike,
    part: str = "valid", items_output: str | os.PathLike | None = None,
) -> Path:
    """Rank the candidates of each request group; write request_id, item, score, rank to Parquet.

    Candidates unseen in training get the unknown item's vector (they are scored, and counted
    in the printed summary). `items_output` also writes one vector per catalog item (for a
    retrieval index): item value + vec_* columns.
    """
    from eventseq.saved import load_model, require_family

    module = load_model(model) if isinstance(model, (str, os.PathLike)) else model
    require_family(module, ("rec_ranker",), "eventseq rec score", model if isinstance(model, (str, os.PathLike)) else None)
    check_output(output, "file")
    if items_output is not None:
        check_output(items_output, "file", "items_output")
    data = load_rec_data(data) if not isinstance(data, RecData) else data
    scores = group_scores(module, data, part)
    request, item = data.config.request_column, data.config.item_column
    groups = data.part(part)
    frame = (groups.select(request, pl.col("item_values").alias(item), pl.col("items").alias("_id"))
             .explode(item, "_id")
             .with_columns(pl.Series("score", np.concatenate(scores) if scores else np.zeros(0, np.float32)))
             .with_columns(pl.col("score").rank("ordinal", descending=True).over(request).alias("rank"))
             .sort([request, "rank"]))
    unknown = int((frame.get_column("_id") == 1).sum())
    write_parquet(frame.drop("_id").to_arrow(), output)
    print(f"scored {groups.height:,} groups, {frame.height:,} candidates ({unknown:,} unseen in training) → {output}")
    if items_output is not None:
        vocabulary = data.schema.categorical[0].vocabulary
        with torch.no_grad():
            ids = torch.arange(2, 2 + len(vocabulary))
            vectors = module.network.item_vectors(ids).numpy()
        columns: dict[str, Any] = {item: vocabulary}
        columns.update({f"vec_{i:02d}": vectors[:, i] for i in range(vectors.shape[1])})
        write_parquet(pl.DataFrame(columns).to_arrow(), items_output)
    return Path(output)

