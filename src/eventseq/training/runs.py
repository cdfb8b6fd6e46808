"""Training runs: data → splits → loaders → LightningModule → Trainer → best model saved.

`train` (supervised) and `pretrain` (self-supervised), each also as `encoder=auto` (candidates
compared on the validation part) and with data.streaming (shards read lazily, split by an entity-id
hash). A run directory holds checkpoints/, logs/ (CSV, TensorBoard if installed), model/ (the best
model, safetensors), metrics.json, splits.parquet (or splits.json), config.yaml and curves.png.
Below cv.below train + valid entities, `train` (and `train encoder=auto`) is cross-validated: one
plain run per fold under folds/ (auto/<candidate>/), whose networks, averaged, are the run's model.
"""

from __future__ import annotations

import copy
import logging
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import polars as pl
import torch
from lightning.pytorch.callbacks import Callback

from eventseq._io import check_output, write_json, write_parquet
from eventseq.config import check_options
from eventseq.data.dataset import SequenceDataset
from eventseq.data.store import PreparedData, load_prepared
from eventseq.data.sampler import LengthBucketSampler
from eventseq.data.shards import (
    CollateFactory, ShardedDataset, ShardIndex, StreamLoader, read_shard_schema, stream_loader,
)
from eventseq.data.splits import PART_COLUMN, entity_folds, given_splits, split_by_entity
from eventseq.combined import scores
from eventseq.errors import ConfigError
from eventseq.nn.encoder import EncoderConfig
from eventseq.nn.sequence_encoder import AUTO_TYPE as AUTO
from eventseq.objectives.methods import method_named
from eventseq.objectives.selfsupervised import SelfSupervisedModule
from eventseq.objectives.supervised import MONITOR, HeadConfig, SupervisedModule, resolve_head
from eventseq.training.config import DataSection, PretrainConfig, TrainConfig, TrainResult
from eventseq.training.trainer import (
    check_trainer,
    evaluation_trainer,
    finish_run,
    fit_module,
    make_loader,
    write_config,
)

logger = logging.getLogger(__name__)


def _check_run(config: TrainConfig | PretrainConfig) -> None:
    """What is checked before any data is read: every option, and that the run directory can be written into."""
    check_options(config)
    if config.data.valid_fraction + config.data.test_fraction >= 1:
        raise ConfigError(f"data.valid_fraction={config.data.valid_fraction} + data.test_fraction="
                          f"{config.data.test_fraction} leave no training entities: their sum must be < 1")
    check_trainer(config.trainer)
    combine = getattr(config, "combine", None)
    if config.data.splits and config.data.streaming:
        raise ConfigError("data.splits with data.streaming: the streaming split is a rule on the entity-id hash "
                          "(valid_fraction, split_seed); drop one of them")
    if combine is not None and combine.mode == "aggregates" and config.data.streaming:
        raise ConfigError("combine.mode=aggregates needs the whole table in memory to aggregate; with data.streaming "
                          "use combine.mode=none (or auto, which trains the network alone there)")
    check_output(config.output, "directory")


def _load_prepared(data: DataSection, seed: int) -> PreparedData:
    if not data.path:
        raise ConfigError("data.path is required: the directory written by `eventseq prepare`")
    L.seed_everything(seed, workers=True, verbose=False)
    return load_prepared(data.path)


def _shard_index(data: DataSection, seed: int, test_fraction: float) -> ShardIndex:
    """data.streaming: the shard index of data.path (footers and ids only), split by entity-id hash."""
    if not data.path:
        raise ConfigError("data.path is required: the directory written by `eventseq prepare`")
    L.seed_everything(seed, workers=True, verbose=False)
    return ShardIndex(data.path, read_shard_schema(data.path), data.valid_fraction, test_fraction, data.split_seed)


def _stream(
    index: ShardIndex,
    data: DataSection,
    part: str,
    collate: CollateFactory | None = None,
    target: list[str] | None = None,
    train: bool = False,
    seed: int = 0,
    epoch_of: Callable[[], int] | None = None,
    drop_last: bool = False,
    single_process: bool = False,
) -> StreamLoader:
    """A loader of `part` batches read shard by shard; `single_process` reads every shard here (rank 0's
    evaluation after a multi-process fit), otherwise the ranks of the run share the shards."""
    dataset = ShardedDataset(
        index, part, data.batch_size, collate, target, data.max_len, shuffle=train, bucket=data.bucket_by_length,
        drop_last=drop_last, seed=seed, num_workers=data.num_workers,
        rank=0 if single_process else None, world_size=1 if single_process else None,
    )
    return stream_loader(dataset, epoch_of)


def _write_hash_splits(index: ShardIndex, run_dir: Path) -> dict[str, np.ndarray]:
    """data.streaming: the split is a rule, not a list: write it (and the counts) to splits.json."""
    counts = {part: index.count(part) for part in ("train", "valid", "test")}
    write_json(run_dir / "splits.json", {
        "rule": "eventseq.data.hashing.hash_split(ids, valid_fraction, test_fraction, split_seed)",
        "valid_fraction": index.valid_fraction, "test_fraction": index.test_fraction,
        "split_seed": index.split_seed, "entities": counts,
    })
    return {}


def _other_rank_result(module: L.LightningModule, trainer: L.Trainer, run_dir: Path, splits: dict[str, np.ndarray],
                       dataset: Any) -> TrainResult:
    """What a rank other than 0 returns after a multi-process fit (rank 0 evaluates and saves)."""
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    return TrainResult(module.eval(), metrics, run_dir, run_dir / "model", splits, dataset)


def _entity_splits(data: DataSection, dataset: SequenceDataset, stratify: np.ndarray | None,
                   test_fraction: float) -> dict[str, np.ndarray]:
    """The run's entity split: data.splits (the user's), else by valid_fraction / test_fraction / split_seed."""
    if data.splits:
        from eventseq._io import read_labels

        return given_splits(read_labels(data.splits, "split"), dataset.entity_ids(), dataset.schema.id_column,
                            f"data.splits={data.splits}")
    return split_by_entity(len(dataset), data.valid_fraction, test_fraction, stratify, data.split_seed)


def _supervised_data(config: TrainConfig) -> tuple[PreparedData, HeadConfig, SequenceDataset, dict[str, np.ndarray],
                                                   np.ndarray | None]:
    """In memory: the prepared data, the resolved head, the dataset with its targets, the entity split and the
    class labels it is stratified by (None for multilabel and regression)."""
    prepared = _load_prepared(config.data, config.seed)
    head = resolve_head(prepared.schema, config.head)
    dataset = SequenceDataset.from_table(prepared.table, prepared.schema, target=head.targets,
                                         max_len=config.data.max_len, texts=prepared.texts)
    stratify = dataset.target_values() if head.task in ("binary", "multiclass") else None
    return prepared, head, dataset, _entity_splits(config.data, dataset, stratify, config.data.test_fraction), stratify


def _write_splits(dataset: SequenceDataset, splits: dict[str, np.ndarray], path: Path) -> Path:
    """The entities' parts (id, part) to `path`: what data.splits reads back."""
    write_parquet(
        pl.DataFrame(
            {
                dataset.schema.id_column: np.concatenate([dataset.entity_ids(splits[p]) for p in splits]),
                PART_COLUMN: np.concatenate([np.full(len(splits[p]), p) for p in splits]),
            }
        ).to_arrow(),
        path,
    )
    return path


@dataclass
class Folds:
    """The cross-validation folds of a run's train + valid entities (cv.below)."""

    known: np.ndarray  # the train + valid entities (dataset positions), in fold order
    cuts: list[tuple[np.ndarray, np.ndarray]]  # per fold: positions into `known` trained on, left out
    files: list[Path]  # per fold: its split file (data.splits), the test part the run's own
    out_of_fold: np.ndarray | None = None  # [len(known), K]: each entity by the fold network that left it out


def _cross_validates(config: TrainConfig, splits: dict[str, np.ndarray]) -> bool:
    """Whether this in-memory run trains one network per fold of train + valid (cv.below; every fold leaves out
    two entities at least)."""
    known = len(splits["train"]) + len(splits["valid"])
    return (2 * config.cv.folds <= known < config.cv.below and config.trainer.devices == 1
            and config.trainer.num_nodes == 1)


def _folds(config: TrainConfig, dataset: SequenceDataset, splits: dict[str, np.ndarray], stratify: np.ndarray | None,
           directory: Path) -> Folds:
    """cv.folds folds of the train + valid entities (stratified by class when every class allows), each written
    as a split file under `directory`; the test entities stay the run's test part in every one."""
    directory.mkdir(parents=True, exist_ok=True)
    known = np.concatenate([splits["train"], splits["valid"]])
    cuts = entity_folds(len(known), config.cv.folds, config.data.split_seed,
                        None if stratify is None else stratify[known])
    files = [_write_splits(dataset, {"train": known[inside], "valid": known[outside], "test": splits["test"]},
                           directory / f"fold-{number}.parquet") for number, (inside, outside) in enumerate(cuts)]
    return Folds(known, cuts, files)


def _fold_networks(config: TrainConfig, folds: Folds, directory: Path, minutes: float | None,
                   earlier: tuple[list[TrainResult], int] | None = None,
                   callbacks: Sequence[Callback] = ()) -> list[TrainResult]:
    """The network of `config` trained once per fold (a plain run with the fold's split file, in
    directory/fold-k), each early-stopped on the entities its fold leaves out, within `minutes` in all.

    With resume=true a fold that finished (its model and metrics.json written) is read back, not trained
    again; the others resume their own last checkpoint or start. `earlier`: these fold networks from a
    round of auto's successive halving and that round's epoch limit: a fold that stopped before the
    limit (early stopping, its time share) is kept as it is, the others resume their own last checkpoint
    up to trainer.max_epochs.
    """
    from eventseq._io import read_json
    from eventseq.saved import load_model

    results = []
    for number, path in enumerate(folds.files):
        fold = copy.deepcopy(config)
        fold.cv.below, fold.combine.mode, fold.data.splits = 0, "none", str(path)
        fold.trainer.curves = False  # the run's curves.png draws every fold
        fold.output = str(directory / f"fold-{number}")
        fold.trainer.max_minutes = None if minutes is None else minutes / len(folds.files)
        fold_dir = Path(fold.output)
        if earlier is not None:
            before, limit = earlier
            if _stopped(before[number], limit):
                results.append(before[number])
                continue
        elif config.resume and (fold_dir / "metrics.json").is_file() and (fold_dir / "model" / "config.json").is_file():
            logger.info("cv: fold %d finished before, read back from %s", number, fold_dir / "model")
            results.append(TrainResult(load_model(fold_dir / "model"), read_json(fold_dir / "metrics.json"),
                                       fold_dir, fold_dir / "model", {}, None))
            continue
        results.append(train(fold, callbacks))
    return results


def _stopped(result: TrainResult, limit: int) -> bool:
    """Whether a run ended before `limit` epochs (early stopping or its time share): training it further
    would add nothing. A cross-validated one (metrics["cv"]): every fold network."""
    epochs = result.metrics["cv"]["epochs"] if "cv" in result.metrics else [result.metrics["epochs"]]
    return all(value < limit for value in epochs)


def _drop_checkpoints(results: list[TrainResult]) -> None:
    """The fold models stay for inspection; their checkpoints were only for resuming the cross-validated run."""
    for result in results:
        shutil.rmtree(result.run_dir / "checkpoints", ignore_errors=True)


def _finish_folds(config: TrainConfig, table: pl.DataFrame, dataset: SequenceDataset, splits: dict[str, np.ndarray],
                  folds: Folds, results: list[TrainResult], extra: dict[str, Any] | None = None,
                  written: TrainConfig | None = None) -> TrainResult:
    """The run's model from its fold networks: their average (fold 0's network with the others as members),
    scored out of fold on train + valid (val_*) and on the test part, then stacked with the aggregates
    (combine) on every train + valid entity; saved as the run's model. `extra` joins the metrics (auto's
    record); `written` is the config config.yaml records (default: `config`)."""
    from eventseq.inference import entity_outputs

    run_dir = Path(config.output)
    modules = [result.module for result in results]
    task, outputs = modules[0].head_config.task, modules[0].head_config.num_outputs
    device = str(next(modules[0].parameters()).device)
    out_of_fold = np.zeros((len(folds.known), outputs))
    for module, (_, outside) in zip(modules, folds.cuts):
        rows = folds.known[outside]
        out_of_fold[outside] = entity_outputs(module.eval(), dataset.subset(rows), "predict", config.data.batch_size,
                                              device).reshape(len(rows), -1)
    folds.out_of_fold = out_of_fold
    ensemble = modules[0]
    ensemble.add_members(modules[1:])
    monitor = MONITOR[task][0]
    y = dataset.target_values()
    # val_*: the cross-validated scores, each fold network's on the entities it left out, averaged
    metrics: dict[str, Any] = {name: float(np.mean([result.metrics[name] for result in results
                                                     if name in result.metrics]))
                               for name in results[0].metrics if name.startswith("val_")}
    if len(splits["test"]):
        test = entity_outputs(ensemble.eval(), dataset.subset(splits["test"]), "predict", config.data.batch_size,
                              device)
        metrics.update({f"test_{name}": value for name, value in scores(task, y[splits["test"]], test).items()})
    fold_scores = [float(result.metrics[monitor]) for result in results]
    metrics["epochs"] = float(np.mean([result.metrics["epochs"] for result in results]))
    metrics["cv"] = {monitor: float(np.mean(fold_scores)), f"{monitor}_std": float(np.std(fold_scores)),
                     "folds": fold_scores, "epochs": [float(result.metrics["epochs"]) for result in results],
                     "entities": int(len(folds.known)),
                     "out_of_fold": scores(task, y[folds.known], out_of_fold)}  # pooled: what the stack sees
    metrics.update(extra or {})
    logger.info("cv: %d fold networks, %s %.4f ± %.4f on the fold each left out", len(modules), monitor,
                np.mean(fold_scores), np.std(fold_scores))
    metrics = _combine(ensemble, config, table, dataset, splits, metrics, folds)
    _drop_checkpoints(results)
    # the run's logs/ are fold 0's, where a one-split run has its own; every fold's are in its directory,
    # and curves.png draws them all
    shutil.rmtree(run_dir / "logs", ignore_errors=True)
    shutil.copytree(results[0].run_dir / "logs", run_dir / "logs")
    write_config(written or config, run_dir / "config.yaml")
    model_dir = finish_run(ensemble, run_dir, metrics, written or config,
                           logs_dir={f"fold {number + 1}": result.run_dir / "logs"
                                     for number, result in enumerate(results)})
    return TrainResult(ensemble.eval(), metrics, run_dir, model_dir, splits, dataset)


def train(config: TrainConfig, callbacks: Sequence[Callback] = ()) -> TrainResult:
    """Train a supervised model as configured; save the best one under `output/model`.

    Args:
        config: the run's config.
        callbacks: Lightning callbacks of the caller's own, given to every network the run trains (each
            fold's, each candidate's with encoder=auto), beside the run's own (checkpoints, early
            stopping, progress).

    Returns:
        TrainResult with the best module, test (or validation) metrics and paths.

    Raises:
        ConfigError, DataError, FileFormatError: bad config or data, with the key/column/file named.
    """
    _check_run(config)
    if config.model.sequence_encoder.type == AUTO:
        return _train_auto(config, callbacks)
    run_dir = Path(config.output)
    streaming = config.data.streaming
    if streaming:
        index = _shard_index(config.data, config.seed, config.data.test_fraction)
        schema = index.schema
        head = resolve_head(schema, config.head)
        run_dir.mkdir(parents=True, exist_ok=True)
        dataset, splits = None, _write_hash_splits(index, run_dir)
        # shuffled for the Trainer's epoch (also after resuming); `module` is bound below, before any pass
        train_loader = _stream(index, config.data, "train", target=head.targets, train=True, seed=config.seed,
                               epoch_of=lambda: module.current_epoch)
        valid_loader = _stream(index, config.data, "valid", target=head.targets)
    else:
        prepared, head, dataset, splits, stratify = _supervised_data(config)
        schema = prepared.schema
        run_dir.mkdir(parents=True, exist_ok=True)
        _write_splits(dataset, splits, run_dir / "splits.parquet")
        if _cross_validates(config, splits):
            folds = _folds(config, dataset, splits, stratify, run_dir / "folds")
            results = _fold_networks(config, folds, run_dir / "folds", config.trainer.max_minutes,
                                     callbacks=callbacks)
            return _finish_folds(config, prepared.table, dataset, splits, folds, results)
        loader_args = dict(bucket=config.data.bucket_by_length, num_workers=config.data.num_workers)
        train_loader = make_loader(dataset.subset(splits["train"]), config.data.batch_size, True, seed=config.seed,
                                   **loader_args)
        valid_loader = make_loader(dataset.subset(splits["valid"]), config.data.batch_size, False, **loader_args)

    encoder_config = config.model
    pretrained = None
    if config.init_from:
        from eventseq.saved import load_model, require_family

        pretrained = load_model(config.init_from)
        require_family(pretrained, ("supervised", "self-supervised"), "train init_from=", config.init_from)
        if pretrained.schema.fingerprint() != schema.fingerprint():
            raise ConfigError(
                f"init_from={config.init_from} was trained on data prepared with a different schema "
                f"(vocabularies/transforms): prepare the data with that model's schema"
            )
        encoder_config = pretrained.encoder_config  # the architecture comes with the weights
    module = SupervisedModule(schema, encoder_config, head, config.optimizer)
    if pretrained is not None:
        module.encoder.load_state_dict(pretrained.encoder.state_dict())
    monitor, mode = MONITOR[head.task]
    trainer = fit_module(module, train_loader, valid_loader, config, run_dir, monitor, mode, callbacks)
    if not trainer.is_global_zero:
        return _other_rank_result(module, trainer, run_dir, splits, dataset)

    evaluator = evaluation_trainer(config.trainer)
    if streaming:  # rank 0 evaluates every shard
        valid_loader = _stream(index, config.data, "valid", target=head.targets, single_process=True)
    metrics = {k: float(v) for k, v in evaluator.validate(module, valid_loader, verbose=False)[0].items()}
    if streaming and index.count("test"):
        test_loader = _stream(index, config.data, "test", target=head.targets, single_process=True)
        metrics.update({k: float(v) for k, v in evaluator.test(module, test_loader, verbose=False)[0].items()})
    elif not streaming and len(splits["test"]):
        test_loader = make_loader(dataset.subset(splits["test"]), config.data.batch_size, False, **loader_args)
        metrics.update({k: float(v) for k, v in evaluator.test(module, test_loader, verbose=False)[0].items()})
    metrics["epochs"] = int(trainer.current_epoch)
    if not streaming:
        metrics = _combine(module, config, prepared.table, dataset, splits, metrics)
    model_dir = finish_run(module, run_dir, metrics, config)
    return TrainResult(module.eval(), metrics, run_dir, model_dir, splits, dataset)


def _combine(module: SupervisedModule, config: TrainConfig, table: pl.DataFrame, dataset: SequenceDataset,
             splits: dict[str, np.ndarray], metrics: dict[str, Any], folds: Folds | None = None) -> dict[str, Any]:
    """combine.mode: stack the trained network with LightGBM over the aggregates (eventseq.combined).

    With `folds` (a cross-validated run) the stack is fitted on every train + valid entity, with the
    network's out-of-fold outputs and the aggregates' over the same folds; else on the validation part.

    Returns the metrics of the model delivered: the stack's scores under the names training logs
    (val_auroc, test_auroc, ...), `model` ("combined" or "network"), the stack's weights and, under
    `parts`, the scores of the network, of the aggregates part and of the stack.
    """
    mode = config.combine.mode
    if mode == "none":
        return metrics
    from eventseq.combined import fit_combined, why_not_combined
    from eventseq.inference import entity_outputs

    task, outputs = module.head_config.task, module.head_config.num_outputs
    y = dataset.target_values()
    stack_rows = splits["valid"] if folds is None else folds.known
    reason = why_not_combined(task, y[stack_rows], outputs)
    if reason is not None:
        if mode == "aggregates":
            raise ConfigError(f"combine.mode=aggregates: {reason}, too few to fit the stack on; raise "
                              f"data.valid_fraction or use combine.mode=none")
        logger.info("combine: the network alone (%s)", reason)
        return {**metrics, "model": "network", "combine_note": f"the network alone: {reason}"}
    if not np.array_equal(dataset.entity_ids(), table[dataset.schema.id_column].to_numpy()):
        raise RuntimeError("internal: the dataset's entities are not the prepared table's rows")  # pragma: no cover
    scored = np.concatenate([stack_rows, splits["test"]]) if folds is None else splits["test"]
    network = np.zeros((len(dataset), outputs))
    device = str(next(module.parameters()).device)
    network[scored] = entity_outputs(module.eval(), dataset.subset(scored), "predict", config.data.batch_size,
                                     device).reshape(len(scored), -1)
    if folds is not None:
        network[folds.known] = folds.out_of_fold
    cuts = folds.cuts if folds is not None else config.cv.folds
    combined = fit_combined(table, dataset.schema, task, y, network, splits, cuts, config.combine.max_categories,
                            config.seed, stack_rows=stack_rows)
    module.combined = combined
    parts = combined.parts
    lightning = {name: value for name, value in metrics.items() if name.startswith(("val_", "test_"))}
    parts["network"] = {**lightning, **parts.get("network", {})}
    monitor = MONITOR[task][0]
    a, b = combined.stack.weights
    logger.info("combine: %s network %.4f, aggregates %.4f, combined %.4f (weights: network %.3f, aggregates %.3f)",
                monitor, *(parts[part].get(monitor, float("nan")) for part in ("network", "aggregates", "combined")),
                a, b)
    kept = {name: value for name, value in metrics.items() if name.startswith("auto_") or name in ("epochs", "cv")}
    return {**parts["combined"], **kept, "model": "combined",
            "combined_weights": {"network": a, "aggregates": b}, "parts": parts}


def _candidate_encoder(name: str) -> EncoderConfig:
    """The model section of the encoder option `name` (configs/encoder/<name>.yaml)."""
    from eventseq.config import load_config

    return load_config(TrainConfig, overrides=[f"encoder={name}"]).model


def _candidate(config: Any, name: str, output: Path, minutes: float | None) -> Any:
    """`config` with the encoder option `name`'s sequence encoder (the run's event encoder kept), its own output
    directory and time budget."""
    candidate = copy.deepcopy(config)
    candidate.model = EncoderConfig(event_encoder=copy.deepcopy(config.model.event_encoder),
                                    sequence_encoder=_candidate_encoder(name).sequence_encoder)
    candidate.output = str(output)
    candidate.trainer.max_minutes = minutes
    candidate.trainer.curves = False  # the run's curves.png draws every candidate
    return candidate


def _train_auto(config: TrainConfig, callbacks: Sequence[Callback] = ()) -> TrainResult:
    """`encoder=auto`: train each of auto.candidates on the same split, keep the best on validation."""
    if config.init_from:
        raise ConfigError("encoder=auto with init_from: the architecture comes with the pretrained weights; "
                          "drop encoder=auto")

    def score(result: TrainResult) -> tuple[str, str, float]:
        monitor, mode = MONITOR[result.module.head_config.task]
        return monitor, mode, float(result.metrics[monitor])

    def combine(best: TrainResult, metrics: dict[str, Any]) -> dict[str, Any]:
        if config.data.streaming:
            return metrics
        return _combine(best.module, config, load_prepared(config.data.path).table, best.dataset, best.splits,
                        metrics)

    candidates = copy.deepcopy(config)
    candidates.combine.mode = "none"  # each candidate is a network; the chosen one is combined
    candidates.cv.below = 0  # ... trained on the run's split (the cross-validated way runs its folds itself)
    if not config.data.streaming and config.cv.below:
        _check_candidates(config)
        prepared, _, dataset, splits, stratify = _supervised_data(config)
        if _cross_validates(config, splits):
            Path(config.output).mkdir(parents=True, exist_ok=True)
            _write_splits(dataset, splits, Path(config.output) / "splits.parquet")
            return _cross_validated_auto(config, candidates, prepared.table, dataset, splits, stratify, score,
                                         callbacks)
    return _auto(candidates, partial(train, callbacks=callbacks), score, "on the validation entities", combine, config)


def _cross_validated_auto(config: TrainConfig, candidates: TrainConfig, table: pl.DataFrame,
                          dataset: SequenceDataset, splits: dict[str, np.ndarray], stratify: np.ndarray | None,
                          score: Callable[[TrainResult], tuple[str, str, float]],
                          callbacks: Sequence[Callback] = ()) -> TrainResult:
    """auto below cv.below entities: each candidate is trained once per fold of the train + valid entities
    (the run's cross-validation, _fold_networks), early-stopped on the fold left out, and scored by the mean
    of those scores; the candidates are compared (and, with auto.prune, dropped round by round) as
    `_select` does on one split. The chosen candidate's fold networks become the run's model
    (_finish_folds). The test entities are in no fold."""
    run_dir = Path(config.output)
    folds = _folds(config, dataset, splits, stratify, run_dir / "auto" / "folds")
    names = _check_candidates(candidates)
    share = None if config.trainer.max_minutes is None else config.trainer.max_minutes / len(names)
    configs = {name: _candidate(candidates, name, run_dir / "auto" / name, share) for name in names}
    trained: dict[str, tuple[list[TrainResult], int]] = {}  # per candidate directory: its folds, their limit

    def run_folds(candidate: TrainConfig) -> TrainResult:
        results = _fold_networks(candidate, folds, Path(candidate.output), candidate.trainer.max_minutes,
                                 trained.get(candidate.output), callbacks)
        trained[candidate.output] = (results, candidate.trainer.max_epochs)
        name_of_score = score(results[0])[0]
        values = [score(result)[2] for result in results]
        epochs = [float(result.metrics["epochs"]) for result in results]
        metrics = {name_of_score: float(np.mean(values)), "epochs": float(np.mean(epochs)),
                   "cv": {f"{name_of_score}_std": float(np.std(values)), "folds": values, "epochs": epochs}}
        logger.info("auto: %s %s %.4f ± %.4f over %d folds", Path(candidate.output).name, name_of_score,
                    np.mean(values), np.std(values), len(values))
        return TrainResult(results[0].module, metrics, Path(candidate.output), results[0].model_dir, splits, dataset)

    criterion = (f"mean of a {len(folds.files)}-fold cross-validation over the {len(folds.known)} train + valid "
                 f"entities (fewer than cv.below={config.cv.below})")
    selection = _select(candidates, configs, run_folds, score, criterion)
    for name in names:
        if name != selection.chosen:  # the chosen one's go when its fold networks are delivered
            _drop_checkpoints(trained[configs[name].output][0])
    delivered = copy.deepcopy(config)
    chosen_folds = trained[configs[selection.chosen].output][0]
    delivered.model = chosen_folds[0].module.encoder_config
    return _finish_folds(delivered, table, dataset, splits, folds, chosen_folds,
                         {"auto_choice": selection.chosen, "auto_reason": selection.reason,
                          "auto_candidates": selection.tried}, written=config)


def _pretrain_auto(config: PretrainConfig, callbacks: Sequence[Callback] = ()) -> TrainResult:
    """`pretrain encoder=auto`: pretrain each of auto.candidates, keep the one a probe (or the loss) prefers."""
    from eventseq import downstream
    from eventseq.inference import embed

    auto = config.auto
    if auto.labels and not auto.target:
        raise ConfigError("auto.labels is given without auto.target: name the label column to choose by")
    if not auto.target:
        def pretext(result: TrainResult) -> tuple[str, str, float]:
            monitor, mode = result.module.monitor
            return monitor, mode, float(result.metrics[monitor])

        return _auto(config, partial(pretrain, callbacks=callbacks), pretext, f"label-free: {config.method}'s own validation metric on the held-out "
                                             f"entities")

    prepared = _load_prepared(config.data, config.seed)  # before any candidate runs: a bad target fails fast
    id_column = prepared.schema.id_column
    if auto.labels:
        from eventseq._io import read_labels

        labels = read_labels(auto.labels)
        where = f"auto.labels={auto.labels}"
    else:
        labels, where = prepared.table, f"the prepared data {config.data.path}"
    missing = [column for column in (id_column, auto.target) if column not in labels.columns]
    if missing:
        raise ConfigError(f"auto.target: {where} has no column '{missing[0]}' (columns: {labels.columns[:20]})")
    labels = labels.select(id_column, auto.target)
    task = "auto"
    if not auto.labels and auto.target in {target.name for target in prepared.schema.targets}:
        task = downstream.prepared_task(prepared.schema, auto.target)

    def probe(result: TrainResult) -> tuple[str, str, float]:
        embeddings = embed(result.module, config.data.path, progress=False)
        table = downstream.evaluate(embeddings, labels, id_column, auto.target, models=["logreg"],
                                    folds=auto.folds, seed=config.seed, task=task)
        metric = str(table["metric"][0])
        return f"probe_{metric}", "min" if metric == "rmse" else "max", float(table["mean"][0])

    return _auto(config, partial(pretrain, callbacks=callbacks), probe,
                 f"a {auto.folds}-fold logistic-regression probe of '{auto.target}' on the embeddings")


def _check_candidates(config: TrainConfig | PretrainConfig) -> list[str]:
    """auto.candidates, checked: encoder options, each once, and no resume."""
    candidates = list(config.auto.candidates)
    if not candidates or AUTO in candidates:
        raise ConfigError(f"auto.candidates={candidates}: list encoder options to try, e.g. [gru, cnn, transformer]")
    if len(set(candidates)) != len(candidates):
        raise ConfigError(f"auto.candidates={candidates}: each encoder option once")
    if config.resume:
        raise ConfigError("encoder=auto cannot resume (each candidate is a run of its own): resume=false")
    return candidates


def _auto(config: TrainConfig | PretrainConfig, run: Callable[[Any], TrainResult],
          score: Callable[[TrainResult], tuple[str, str, float]], criterion: str,
          finish: Callable[[TrainResult, dict[str, Any]], dict[str, Any]] | None = None,
          written: TrainConfig | PretrainConfig | None = None) -> TrainResult:
    """Train each auto.candidates encoder on `config` (each in output/auto/<name>/ with an equal share of
    trainer.max_minutes), keep the best by `score` (`_select`). The chosen one's model, metrics and
    curves become the run's own. `finish(best, metrics)` turns the chosen one into the delivered model
    (train: the combined one); `written` is the config the run's config.yaml records (default: `config`).
    """
    candidates = _check_candidates(config)
    run_dir = Path(config.output)
    run_dir.mkdir(parents=True, exist_ok=True)
    share = None if config.trainer.max_minutes is None else config.trainer.max_minutes / len(candidates)
    configs = {name: _candidate(config, name, run_dir / "auto" / name, share) for name in candidates}
    selection = _select(config, configs, run, score, criterion)
    for name in candidates:  # the models stay; the checkpoints were only for resuming
        shutil.rmtree(Path(configs[name].output) / "checkpoints", ignore_errors=True)
    chosen, tried = selection.chosen, selection.tried
    logs = {name + (" (chosen)" if name == chosen else " (pruned)" if tried[name].get("pruned") else ""):
            Path(configs[name].output) / "logs" for name in candidates}
    return _deliver(config if written is None else written, selection.results[chosen], chosen, selection.reason,
                    tried, finish, logs)


@dataclass
class _Selection:
    """What `_select` decided: the kept candidate, why, and every candidate's record and last result."""

    chosen: str
    reason: str
    tried: dict[str, dict[str, Any]]  # per candidate: score (± std and per fold when cross-validated), epochs,
    # seconds, and "pruned" when dropped
    results: dict[str, TrainResult]


def _select(config: TrainConfig | PretrainConfig, configs: dict[str, Any], run: Callable[[Any], TrainResult],
            score: Callable[[TrainResult], tuple[str, str, float]], criterion: str) -> _Selection:
    """Train the candidates `configs` (name: its run config) with `run`, keep the best by `score` (name, mode,
    value), `criterion` saying what that score is.

    With auto.prune, by successive halving: each round trains the candidates still in (resuming their own
    last checkpoint, so a candidate ends as if it had trained without stopping) up to the round's epoch,
    then drops the worse half; the last one trains to the end (trainer.max_epochs or early stopping). A
    candidate that stopped before its round's end (early stopping, time) is not trained again. `run` may
    train one network (its metrics: the score, "epochs") or one per fold (metrics["cv"]: "epochs" and
    "folds" per fold and the score's std; the score is the folds' mean): a cross-validated candidate is
    pruned by its mean.
    """
    candidates = list(configs)
    results: dict[str, TrainResult] = {}
    tried: dict[str, dict[str, Any]] = {}
    name_of_score = mode = ""
    alive, finished = list(candidates), set()
    rung_end = config.auto.rung_epochs
    while True:
        last_round = not config.auto.prune or len(alive) == 1 or rung_end >= config.trainer.max_epochs
        for name in [name for name in alive if name not in finished]:
            candidate = configs[name]
            candidate.resume = name in results  # its own last.ckpt: the same weights as one uninterrupted run
            candidate.trainer.max_epochs = config.trainer.max_epochs if last_round else rung_end
            started = time.perf_counter()
            result = run(candidate)
            name_of_score, mode, value = score(result)
            seconds = tried.get(name, {}).get("seconds", 0.0) + time.perf_counter() - started
            tried[name] = {name_of_score: value, "epochs": float(result.metrics["epochs"]), "seconds": round(seconds, 1)}
            if "cv" in result.metrics:
                tried[name].update({f"{name_of_score}_std": result.metrics["cv"][f"{name_of_score}_std"],
                                    "folds": result.metrics["cv"]["folds"]})
            results[name] = result
            if _stopped(result, candidate.trainer.max_epochs):
                finished.add(name)
            logger.info("auto: %s reached %s=%.4f after %s epochs", name, name_of_score, value,
                        result.metrics["epochs"])
        if last_round:
            break
        ranked = sorted(alive, key=lambda name: tried[name][name_of_score], reverse=mode == "max")
        for name in ranked[-(len(alive) // 2):] if len(alive) > 1 else []:
            tried[name]["pruned"] = True  # its score and epochs are those it was dropped with
            logger.info("auto: pruned %s at %s=%.4f after %s epochs", name, name_of_score, tried[name][name_of_score],
                        tried[name]["epochs"])
        alive = [name for name in ranked if not tried[name].get("pruned")]
        rung_end *= 2
    pick = max if mode == "max" else min
    chosen = pick(candidates, key=lambda name: tried[name][name_of_score])
    std = f"{name_of_score}_std"
    reason = (f"best {name_of_score} ({'highest' if mode == 'max' else 'lowest'}; {criterion}): "
              + ", ".join(f"{name} {tried[name][name_of_score]:.4f}"
                          + (f" ± {tried[name][std]:.4f}" if std in tried[name] else "")
                          + (f" (pruned after {tried[name]['epochs']:g} epochs)" if tried[name].get("pruned") else "")
                          for name in candidates))
    logger.info("auto: chose %s (%s)", chosen, reason)
    return _Selection(chosen, reason, tried, results)


def _deliver(written: TrainConfig | PretrainConfig, best: TrainResult, chosen: str, reason: str,
             tried: dict[str, dict[str, Any]],
             finish: Callable[[TrainResult, dict[str, Any]], dict[str, Any]] | None,
             logs: dict[str, Path]) -> TrainResult:
    """The chosen candidate's model and metrics (with what was tried) become the run's own; its curves.png
    draws every candidate's `logs`."""
    run_dir = Path(written.output)
    metrics: dict[str, Any] = dict(best.metrics)
    metrics["auto_choice"] = chosen
    metrics["auto_reason"] = reason
    metrics["auto_candidates"] = tried
    if finish is not None:
        metrics = finish(best, metrics)
    chosen_config = copy.deepcopy(written)
    chosen_config.model = best.module.encoder_config
    for split_file in ("splits.parquet", "splits.json"):  # in memory / data.streaming
        if (best.run_dir / split_file).exists():
            shutil.copyfile(best.run_dir / split_file, run_dir / split_file)
    write_config(written, run_dir / "config.yaml")
    model_dir = finish_run(best.module, run_dir, metrics, chosen_config, logs_dir=logs)
    return TrainResult(best.module, metrics, run_dir, model_dir, best.splits, best.dataset)


def pretrain(config: PretrainConfig, callbacks: Sequence[Callback] = ()) -> TrainResult:
    """Self-supervised pretraining with `config.method`; saves the model under `output/model`.

    The model embeds entities with `eventseq embed`; its encoder initialises supervised models
    through `TrainConfig.init_from`.
    """
    spec = method_named(config.method)  # an unknown method fails before the data is read
    _check_run(config)
    config.optimizer.refuse_encoder_options("pretraining (which trains the encoder itself)",
                                            "use it with `eventseq train init_from=<this model>`")
    if spec.batch_statistics and config.data.batch_size < 2:
        raise ConfigError(f"method={config.method} standardizes each batch (its loss needs a variance over "
                          f"entities): data.batch_size={config.data.batch_size} must be >= 2")
    if config.model.sequence_encoder.type == AUTO:
        return _pretrain_auto(config, callbacks)
    run_dir = Path(config.output)
    if config.data.streaming:
        return _pretrain_streaming(config, run_dir, callbacks)
    prepared = _load_prepared(config.data, config.seed)
    schema = prepared.schema
    dataset = SequenceDataset.from_table(prepared.table, schema, max_len=config.data.max_len, texts=prepared.texts)
    run_dir.mkdir(parents=True, exist_ok=True)
    splits = _entity_splits(config.data, dataset, None, 0.0)
    _write_splits(dataset, splits, run_dir / "splits.parquet")
    module = SelfSupervisedModule(schema, config.method, config.model, getattr(config, config.method), config.optimizer)
    train_set, valid_set = dataset.subset(splits["train"]), dataset.subset(splits["valid"])
    train_loader = torch.utils.data.DataLoader(
        train_set,
        # whole batches only: batch statistics (VICReg, Barlow Twins, batch norm) need several entities
        batch_sampler=LengthBucketSampler(train_set.lengths, config.data.batch_size, shuffle=True, seed=config.seed,
                                          drop_last=len(train_set) > config.data.batch_size),
        collate_fn=module.collate(train_set, train=True, seed=config.seed),
        num_workers=config.data.num_workers,
    )
    valid_loader = torch.utils.data.DataLoader(
        valid_set,
        batch_sampler=LengthBucketSampler(valid_set.lengths, config.data.batch_size, shuffle=False),
        collate_fn=module.collate(valid_set, train=False, seed=config.seed),
        num_workers=config.data.num_workers,
    )
    monitor, mode = module.monitor
    trainer = fit_module(module, train_loader, valid_loader, config, run_dir, monitor, mode, callbacks)
    if not trainer.is_global_zero:
        return _other_rank_result(module, trainer, run_dir, splits, dataset)
    metrics = {k: float(v) for k, v in evaluation_trainer(config.trainer).validate(module, valid_loader, verbose=False)[0].items()}
    metrics["epochs"] = int(trainer.current_epoch)
    model_dir = finish_run(module, run_dir, metrics, config)
    return TrainResult(module.eval(), metrics, run_dir, model_dir, splits, dataset)


def _pretrain_streaming(config: PretrainConfig, run_dir: Path, callbacks: Sequence[Callback] = ()) -> TrainResult:
    """`pretrain` with data.streaming: the method's own batches (views, pairs, sequences), shard by shard."""
    index = _shard_index(config.data, config.seed, 0.0)
    run_dir.mkdir(parents=True, exist_ok=True)
    splits = _write_hash_splits(index, run_dir)
    module = SelfSupervisedModule(index.schema, config.method, config.model, getattr(config, config.method),
                                  config.optimizer)
    train_collate = partial(module.collate, train=True, seed=config.seed)
    valid_collate = partial(module.collate, train=False, seed=config.seed)
    # whole batches only (batch statistics), as in memory
    train_loader = _stream(index, config.data, "train", train_collate, train=True, seed=config.seed,
                           epoch_of=lambda: module.current_epoch, drop_last=True)
    valid_loader = _stream(index, config.data, "valid", valid_collate)
    monitor, mode = module.monitor
    trainer = fit_module(module, train_loader, valid_loader, config, run_dir, monitor, mode, callbacks)
    if not trainer.is_global_zero:
        return _other_rank_result(module, trainer, run_dir, splits, None)
    valid_loader = _stream(index, config.data, "valid", valid_collate, single_process=True)  # every shard
    metrics = {k: float(v) for k, v in evaluation_trainer(config.trainer).validate(module, valid_loader, verbose=False)[0].items()}
    metrics["epochs"] = int(trainer.current_epoch)
    model_dir = finish_run(module, run_dir, metrics, config)
    return TrainResult(module.eval(), metrics, run_dir, model_dir, splits, None)
