from __future__ import annotations

import json
import re
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import safetensors.torch
import torch
from lightning.pytorch.callbacks import Callback

from eventseq.cli import main
from eventseq.errors import ConfigError, FileFormatError
from eventseq.saved import load_checkpoint_state
from eventseq.training import train


def test_run_directory_holds_everything(trained):
    run = trained.run_dir
    for name in ["model/config.json", "model/model.safetensors", "checkpoints/last.ckpt", "checkpoints/best.ckpt",
                 "logs/csv/metrics.csv", "metrics.json", "config.yaml", "splits.parquet", "curves.png"]:
        assert (run / name).exists(), name
    assert (run / "curves.png").read_bytes()[:4] == b"\x89PNG"
    log = pl.read_csv(run / "logs" / "csv" / "metrics.csv")
    assert {"train_loss", "val_loss", "val_auroc", "val_accuracy", "val_f1"} <= set(log.columns)
    assert {"test_auroc", "test_accuracy"} <= set(trained.metrics)
    assert not list(run.rglob("*.tmp"))


def test_splits_are_disjoint_and_stratified(trained):
    splits = pl.read_parquet(trained.run_dir / "splits.parquet")
    assert splits["entity_id"].n_unique() == splits.height == 240
    assert set(splits["part"].unique()) == {"train", "valid", "test"}


def test_same_seed_same_result(prepared_dir, tmp_path, make_train_config):
    first = train(make_train_config(prepared_dir, tmp_path / "a"))
    second = train(make_train_config(prepared_dir, tmp_path / "b"))
    assert _flat(first.metrics) == pytest.approx(_flat(second.metrics), abs=1e-6)  # every part and the stack


def _flat(metrics: dict, prefix: str = "") -> dict:
    """Nested metrics (parts, weights) as one level of numbers: {"parts.network.val_auroc": ...}."""
    flat = {}
    for key, value in metrics.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        elif not isinstance(value, str):
            flat[f"{prefix}{key}"] = value
    return flat


def test_missing_data_path_is_a_config_error(tmp_path, make_train_config):
    with pytest.raises(ConfigError, match="data.path"):
        train(make_train_config("", tmp_path))


WORKER = Path(__file__).parent / "signal_worker.py"
TINY_RUN = ["trainer.max_epochs=3", "trainer.patience=10", "trainer.progress_bar=false",
            "model.sequence_encoder.hidden_size=8", "data.batch_size=32"]


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return safetensors.torch.load_file(str(run / "model" / "model.safetensors"))


def _assert_same_model(first: Path, second: Path) -> None:
    """Bit-identical weights and the same metrics."""
    left, right = _weights(first), _weights(second)
    assert left.keys() == right.keys()
    assert all(torch.equal(left[name], right[name]) for name in left)
    assert json.loads((first / "metrics.json").read_text()) == json.loads((second / "metrics.json").read_text())


def test_a_run_killed_with_sigkill_and_resumed_is_bit_identical_to_an_uninterrupted_one(prepared_dir, tmp_path):
    def run(signal_name: str, output: Path, *extra: str) -> subprocess.CompletedProcess:
        command = [sys.executable, str(WORKER), signal_name, "0", "train", f"data.path={prepared_dir}",
                   f"output={output}", *TINY_RUN, "head.hidden_size=8", "cv.below=0", *extra]  # a head with dropout
        return subprocess.run(command, capture_output=True, text=True, timeout=300,
                              env={**os.environ, "OMP_NUM_THREADS": "1"})

    whole = run("NONE", tmp_path / "whole")
    assert whole.returncode == 0, whole.stderr
    killed = run("KILL", tmp_path / "run")
    assert killed.returncode == -9  # a real SIGKILL when epoch 1 starts, after epoch 0's checkpoint
    state = load_checkpoint_state(tmp_path / "run" / "checkpoints" / "last.ckpt")
    assert state["epoch"] == 0 and state["global_step"] > 0
    assert not (tmp_path / "run" / "model").exists()

    resumed = run("NONE", tmp_path / "run", "resume=true")
    assert resumed.returncode == 0, resumed.stderr
    _assert_same_model(tmp_path / "whole", tmp_path / "run")
    # the curves keep the epoch trained before the kill and the epochs after it
    run_dir = tmp_path / "run"
    logged = pl.concat([pl.read_csv(p) for p in sorted((run_dir / "logs").glob("csv*/metrics.csv"))],
                       how="diagonal_relaxed")
    assert sorted(logged.drop_nulls("val_loss")["epoch"].unique().to_list()) == [0, 1, 2]


class _SignalAtEpoch(Callback):
    """Send this process `signal_number` when epoch 1 starts (epoch 0's checkpoints are written)."""

    def __init__(self, signal_number: int) -> None:
        self.signal_number = signal_number

    def on_train_epoch_start(self, trainer, module) -> None:
        if trainer.current_epoch == 1:
            os.kill(os.getpid(), self.signal_number)


def _with_signal(monkeypatch, signal_number: int) -> None:
    from eventseq.training import trainer as training  # where fit_module builds its Trainer

    build = training.build_trainer

    def build_with_signal(*args, **kwargs):
        trainer = build(*args, **kwargs)
        trainer.callbacks.append(_SignalAtEpoch(signal_number))
        return trainer

    monkeypatch.setattr(training, "build_trainer", build_with_signal)


def test_sigterm_saves_a_resumable_run_and_the_resumed_coles_model_is_bit_identical(prepared_dir, tmp_path,
                                                                                    monkeypatch, capsys):
    """CoLES draws random views in its collate: their generator is restored too."""
    arguments = ["pretrain", f"data.path={prepared_dir}", *TINY_RUN, "coles.views.min_len=3",
                 "coles.views.max_len=10", "coles.views.split_count=3"]
    assert main([*arguments, f"output={tmp_path / 'whole'}"]) == 0

    with monkeypatch.context() as patch:
        _with_signal(patch, signal.SIGTERM)
        assert main([*arguments, f"output={tmp_path / 'run'}"]) == 143
    err = capsys.readouterr().err
    assert "eventseq pretrain: error: stopped by SIGTERM during epoch 1; epochs up to 0 are saved in" in err
    assert "run the same command with resume=true" in err
    assert not (tmp_path / "run" / "model").exists()

    assert main([*arguments, f"output={tmp_path / 'run'}", "resume=true"]) == 0
    _assert_same_model(tmp_path / "whole", tmp_path / "run")


def test_ctrl_c_exits_130_saying_how_to_resume(prepared_dir, tmp_path, monkeypatch, capsys):
    _with_signal(monkeypatch, signal.SIGINT)

    assert main(["train", f"data.path={prepared_dir}", f"output={tmp_path / 'run'}", *TINY_RUN]) == 130
    assert "stopped by SIGINT (Ctrl+C) during epoch 1; epochs up to 0 are saved in" in capsys.readouterr().err


def test_pretrain_saves_a_coles_model_that_embeds(pretrained, prepared_dir):
    from eventseq.inference import embed
    from eventseq.saved import load_model

    assert "val_recall_at_2" in pretrained.metrics
    assert (pretrained.run_dir / "curves.png").exists()
    loaded = load_model(pretrained.model_dir)
    assert loaded.kind == "coles"
    vectors = embed(loaded, prepared_dir, progress=False)
    width = 3 * loaded.encoder.output_dim  # pooling=last+mean+max (the default)
    assert vectors.height == 240 and len([c for c in vectors.columns if c.startswith("emb_")]) == width == 24


@pytest.mark.parametrize("freeze", [True, False])
def test_fine_tuning_starts_from_the_pretrained_encoder(pretrained, prepared_dir, tmp_path, make_train_config, freeze):
    config = make_train_config(prepared_dir, tmp_path / "tuned", init_from=str(pretrained.model_dir))
    config.model.sequence_encoder.hidden_size = 32  # ignored: the architecture comes with the weights
    config.optimizer.freeze_encoder = freeze
    tuned = train(config)
    before = pretrained.module.encoder.state_dict()
    after = tuned.module.encoder.state_dict()
    assert tuned.module.encoder.output_dim == 8
    same = all(torch.equal(before[name], after[name]) for name in before)
    assert same == freeze  # frozen: untouched (batch-norm statistics included); else trained


def test_fine_tuning_rejects_a_model_from_other_data(pretrained, tmp_path, make_train_config, synthetic):
    from eventseq.data import PrepareConfig, prepare
    from eventseq.datasets.synthetic import SYNTHETIC_COLUMNS

    other = prepare(synthetic.events.head(500), PrepareConfig(**{**SYNTHETIC_COLUMNS, "min_frequency": 50}),
                    labels=synthetic.labels, output=tmp_path / "other", entities_without_events="drop")
    config = make_train_config(tmp_path / "other", tmp_path / "run", init_from=str(pretrained.model_dir))
    with pytest.raises(ConfigError, match="different schema"):
        train(config)
    assert other.table.height > 0


def test_max_minutes_becomes_the_trainers_time_limit(tmp_path):
    from lightning.pytorch.callbacks import Timer

    from eventseq.training import TrainerSection
    from eventseq.training.trainer import build_trainer

    trainer = build_trainer(TrainerSection(max_minutes=0.5, progress_bar=False), tmp_path, "val_loss", "min")
    timers = [callback for callback in trainer.callbacks if isinstance(callback, Timer)]
    assert len(timers) == 1 and timers[0]._duration == 30
    assert not any(isinstance(c, Timer) for c in build_trainer(TrainerSection(progress_bar=False), tmp_path,
                                                                 "val_loss", "min").callbacks)
    with pytest.raises(ConfigError, match="trainer.max_minutes=0"):
        build_trainer(TrainerSection(max_minutes=0), tmp_path, "val_loss", "min")


@pytest.mark.parametrize("method, changes", [
    ("vicreg", {"vicreg.views.min_len": 3, "vicreg.views.max_len": 10}),
    ("mlm", {"model.sequence_encoder.type": "transformer", "model.sequence_encoder.num_heads": 2,
             "model.sequence_encoder.pooling": "mean"}),
    ("sop", {}),
])
def test_pretrain_runs_every_kind_of_batch(prepared_dir, tmp_path, method, changes):
    """Views (vicreg), whole sequences (mlm) and pairs (sop) through the Trainer, saved and reloaded."""
    from eventseq.config import load_config
    from eventseq.saved import load_model
    from eventseq.training import PretrainConfig, pretrain

    overrides = [f"method={method}", f"data.path={prepared_dir}", f"output={tmp_path / method}",
                 "model.sequence_encoder.hidden_size=8", "trainer.max_epochs=1", "trainer.progress_bar=false",
                 "data.batch_size=32", *(f"{key}={value}" for key, value in changes.items())]
    result = pretrain(load_config(PretrainConfig, overrides=overrides))
    assert np.isfinite(result.metrics["val_loss"])
    assert load_model(result.model_dir).kind == method


def _marker_set(tmp_path):
    """Class 1 entities start with a marker category that appears nowhere else: visible to a
    mean-pooled encoder, invisible to a causal one that pools its last state over a 2-event window."""
    from eventseq.data import PrepareConfig, prepare

    rng = np.random.default_rng(0)
    entities, length = 200, 20
    label = np.arange(entities) % 2
    category = rng.integers(1, 6, size=(entities, length))
    category[:, 0] = np.where(label == 1, 0, category[:, 0])
    events = pl.DataFrame({"entity_id": np.repeat(np.arange(entities), length),
                           "event_time": np.tile(np.arange(length) * 3600, entities), "mcc": category.ravel()})
    labels = pl.DataFrame({"entity_id": np.arange(entities), "label": label})
    prepare(events, PrepareConfig(categorical=["mcc"], targets={"label": "binary"}), labels=labels,
            output=tmp_path / "prepared")
    options = tmp_path / "configs" / "encoder"
    options.mkdir(parents=True)
    (options / "seeing.yaml").write_text("sequence_encoder: {type: cnn, hidden_size: 16, num_layers: 1, pooling: mean}\n")
    (options / "blind.yaml").write_text(
        "sequence_encoder: {type: cnn, hidden_size: 16, num_layers: 1, kernel_size: 2, causal: true, pooling: last}\n")
    return tmp_path / "prepared"


def test_auto_keeps_the_encoder_that_is_better_on_validation(tmp_path, monkeypatch):
    import json

    from eventseq.config import load_config
    from eventseq.saved import load_model
    from eventseq.training import TrainConfig

    prepared = _marker_set(tmp_path)
    monkeypatch.chdir(tmp_path)  # ./configs/encoder/{seeing,blind}.yaml are options
    config = load_config(TrainConfig, overrides=[
        "encoder=auto", "auto.candidates=[blind,seeing]", f"data.path={prepared}", f"output={tmp_path / 'run'}",
        "trainer.max_epochs=8", "trainer.progress_bar=false", "data.batch_size=32", "cv.below=0"])
    result = train(config)
    tried = result.metrics["auto_candidates"]
    assert result.metrics["auto_choice"] == "seeing"
    assert tried["seeing"]["val_auroc"] > tried["blind"]["val_auroc"] + 0.2
    written = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert written["auto_choice"] == "seeing" and "blind" in written["auto_reason"]
    reloaded = load_model(tmp_path / "run" / "model")
    assert reloaded.encoder_config.sequence_encoder.pooling == "mean"
    assert (tmp_path / "run" / "splits.parquet").exists() and (tmp_path / "run" / "curves.png").exists()


def test_auto_refuses_what_it_cannot_do(prepared_dir, tmp_path, make_train_config):
    from eventseq.training import PretrainConfig, pretrain

    config = make_train_config(prepared_dir, tmp_path / "run")
    config.model.sequence_encoder.type = "auto"
    config.auto.candidates = []
    with pytest.raises(ConfigError, match="auto.candidates"):
        train(config)
    pretrain_config = PretrainConfig(output=str(tmp_path / "pre"))
    pretrain_config.data.path = str(prepared_dir)
    pretrain_config.model.sequence_encoder.type = "auto"
    pretrain_config.auto.labels = str(tmp_path / "labels.csv")
    with pytest.raises(ConfigError, match="auto.labels is given without auto.target"):
        pretrain(pretrain_config)
    pretrain_config.auto.labels, pretrain_config.auto.target = None, "no_such_label"
    with pytest.raises(ConfigError, match="auto.target: the prepared data .* has no column 'no_such_label'"):
        pretrain(pretrain_config)
    assert not (tmp_path / "pre" / "auto").exists()  # refused before any candidate ran


def _pretrain_auto(tmp_path, *choose_by):
    from eventseq.config import load_config
    from eventseq.training import PretrainConfig, pretrain

    prepared = _marker_set(tmp_path)
    config = load_config(PretrainConfig, overrides=[
        "encoder=auto", "auto.candidates=[blind,seeing]", f"data.path={prepared}", f"output={tmp_path / 'pre'}",
        "trainer.max_epochs=1", "trainer.progress_bar=false", "data.batch_size=32", *choose_by])
    return pretrain(config)


def test_pretrain_auto_with_a_label_keeps_the_encoder_its_probe_prefers(tmp_path, monkeypatch):
    from eventseq.saved import load_model

    monkeypatch.chdir(tmp_path)  # ./configs/encoder/{seeing,blind}.yaml are options
    result = _pretrain_auto(tmp_path, "auto.target=label")
    tried = result.metrics["auto_candidates"]
    # the mean-pooled encoder carries the first event's marker into every embedding; the blind one never sees it
    assert result.metrics["auto_choice"] == "seeing"
    assert tried["seeing"]["probe_auroc"] > tried["blind"]["probe_auroc"] + 0.2
    assert "logistic-regression probe of 'label'" in result.metrics["auto_reason"]
    assert load_model(tmp_path / "pre" / "model").encoder_config.sequence_encoder.pooling == "mean"


def test_pretrain_auto_without_labels_keeps_the_best_held_out_pretext_score(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = _pretrain_auto(tmp_path)
    tried = result.metrics["auto_candidates"]
    monitor, mode = result.module.monitor  # CoLES's own validation metric: recall@k of same-entity views
    assert (monitor, mode) == ("val_recall_at_4", "max")
    recall = {name: scores[monitor] for name, scores in tried.items()}
    assert result.metrics["auto_choice"] == max(recall, key=recall.get)
    assert "label-free: coles's own validation metric on the held-out entities" in result.metrics["auto_reason"]


# ----------------------------------------------------------------------------- non-finite losses and values


def test_a_nan_loss_stops_the_run_naming_where_and_keeps_the_last_good_epoch(prepared_dir, tmp_path, monkeypatch,
                                                                               make_train_config):
    from eventseq.objectives.supervised import SupervisedModule
    from eventseq.training import TrainingDiverged

    original = SupervisedModule.training_step

    def poisoned(self, batch, batch_index):
        loss = original(self, batch, batch_index)
        return loss * float("nan") if self.current_epoch == 1 else loss

    monkeypatch.setattr(SupervisedModule, "training_step", poisoned)
    config = make_train_config(prepared_dir, tmp_path / "run")
    config.trainer.max_epochs = 3

    with pytest.raises(TrainingDiverged, match=r"the training loss became nan at epoch 1, step \d+\. Likely causes: "
                                               r"a learning rate too high.*last good epoch is kept in .*last.ckpt"):
        train(config)
    assert load_checkpoint_state(tmp_path / "run" / "checkpoints" / "last.ckpt")["epoch"] == 0
    assert not (tmp_path / "run" / "model").exists()  # no NaN model saved as the result


def test_nan_in_a_prepared_table_is_refused_naming_the_column(prepared_dir, tmp_path, make_train_config):
    import shutil

    edited = tmp_path / "edited"
    shutil.copytree(prepared_dir, edited)
    table = pl.read_parquet(edited / "data.parquet")
    first = table["amount"][0].to_list()
    table = table.with_columns(pl.Series("amount", [[float("nan"), *first[1:]], *table["amount"].to_list()[1:]]))
    table.write_parquet(edited / "data.parquet")

    with pytest.raises(Exception, match=r"numeric list column 'amount' holds NaN/inf \(first in the entity at row 0\)"):
        train(make_train_config(edited, tmp_path / "run"))


def test_vicreg_with_one_entity_per_batch_is_refused(prepared_dir, tmp_path):
    from eventseq.training import PretrainConfig, pretrain

    config = PretrainConfig(output=str(tmp_path / "run"), method="vicreg")
    config.data.path, config.data.batch_size = str(prepared_dir), 1

    with pytest.raises(ConfigError, match=r"method=vicreg standardizes each batch.*data.batch_size=1 must be >= 2"):
        pretrain(config)


def test_without_a_terminal_a_run_prints_one_line_per_epoch_and_no_lightning_notices(prepared_dir, tmp_path,
                                                                                    make_train_config, capsys):
    config = make_train_config(prepared_dir, tmp_path / "run")
    config.trainer.progress_bar = True  # pytest's stderr is not a terminal: lines, not bars

    train(config)

    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("epoch ")]
    assert len(lines) == 2 and all(re.search(r"val_loss \d\.\d{4}.* s  \(at most \d+\.\d min left\)", line)
                                   for line in lines)
    assert lines[0].startswith("epoch 1/2") and "\r" not in err
    assert "GPU available" not in err and "litlogger" not in err


def test_loggers_are_chosen_by_name_and_the_config_reaches_them(prepared_dir, tmp_path, monkeypatch):
    import importlib.util

    from eventseq.errors import ConfigError
    from eventseq.training import TrainConfig
    from eventseq.training.trainer import check_loggers

    config = TrainConfig(output=str(tmp_path / "csv_only"))
    config.data.path = str(prepared_dir)
    config.trainer.max_epochs, config.trainer.progress_bar, config.trainer.loggers = 1, False, ["csv"]
    config.model.sequence_encoder.hidden_size = 8
    train(config)
    logs = tmp_path / "csv_only" / "logs"
    assert sorted(path.name for path in logs.iterdir()) == ["csv"]  # no tensorboard directory
    hparams = (logs / "csv" / "hparams.yaml").read_text()
    assert "max_epochs: 1" in hparams and "hidden_size: 8" in hparams  # the run's config, beside its metrics

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real_find_spec(name, *a))
    with pytest.raises(ConfigError, match="trainer.loggers names mlflow, which is not installed: pip install mlflow"):
        check_loggers(["csv", "mlflow"])
    config.trainer.loggers = ["csv", "neptune"]
    with pytest.raises(ConfigError, match=r"trainer.loggers='neptune': expected one of \['csv', 'tensorboard'"):
        train(config)


def test_auto_prunes_the_worse_half_by_successive_halving_and_keeps_the_same_model(tmp_path, monkeypatch):
    from eventseq.config import load_config
    from eventseq.training import TrainConfig

    prepared = _marker_set(tmp_path)
    monkeypatch.chdir(tmp_path)  # ./configs/encoder/{seeing,blind}.yaml are options

    def run(output: str, *extra: str):
        config = load_config(TrainConfig, overrides=[
            "encoder=auto", "auto.candidates=[blind,seeing]", f"data.path={prepared}", f"output={tmp_path / output}",
            "trainer.max_epochs=6", "trainer.patience=10", "trainer.progress_bar=false", "data.batch_size=32",
            "auto.rung_epochs=2", "cv.below=0", *extra])
        return train(config).metrics

    pruned = run("pruned")
    tried = pruned["auto_candidates"]
    assert pruned["auto_choice"] == "seeing"
    assert tried["blind"]["pruned"] and tried["blind"]["epochs"] == 2  # dropped after the first round, with its score
    assert "blind" in pruned["auto_reason"] and "(pruned after 2 epochs)" in pruned["auto_reason"]
    assert "pruned" not in tried["seeing"] and tried["seeing"]["epochs"] == 6  # trained in rounds, resuming itself
    assert not (tmp_path / "pruned" / "auto" / "blind" / "checkpoints").exists()
    # one curves.png, the run's, draws both candidates
    assert (tmp_path / "pruned" / "curves.png").exists()
    assert not any((tmp_path / "pruned" / "auto" / name / "curves.png").exists() for name in ("blind", "seeing"))

    whole = run("whole", "auto.prune=false")  # every candidate to the end, without stopping
    assert whole["auto_choice"] == "seeing" and "pruned" not in whole["auto_candidates"]["blind"]
    assert whole["auto_candidates"]["blind"]["epochs"] == 6
    # resuming gives the weights an uninterrupted run has: the kept model scores exactly the same
    assert whole["auto_candidates"]["seeing"]["val_auroc"] == tried["seeing"]["val_auroc"]
    assert whole["test_auroc"] == pruned["test_auroc"]


def test_auto_below_cv_below_compares_the_candidates_by_cross_validation(tmp_path, monkeypatch):
    from eventseq.config import load_config
    from eventseq.training import TrainConfig

    prepared = _marker_set(tmp_path)
    monkeypatch.chdir(tmp_path)  # ./configs/encoder/{seeing,blind}.yaml are options

    class Fits(Callback):  # the caller's own callback reaches every fold network of every round
        def __init__(self):
            self.fits = []

        def on_fit_start(self, trainer, module):
            self.fits.append(Path(trainer.default_root_dir).relative_to(tmp_path / "run").as_posix())

    fits = Fits()

    def run(output: str, *extra: str):
        return train(load_config(TrainConfig, overrides=[
            "encoder=auto", "auto.candidates=[blind,seeing]", f"data.path={prepared}", f"output={tmp_path / output}",
            "trainer.max_epochs=6", "trainer.patience=10", "trainer.progress_bar=false", "data.batch_size=32",
            "cv.folds=3", "combine.mode=none", *extra]), callbacks=[fits] if output == "run" else ())

    result = run("run")
    folds = [f"auto/{name}/fold-{number}" for name in ("blind", "seeing") for number in range(3)]
    assert fits.fits == folds + folds[3:]  # round 1: every candidate's folds; round 2: the kept one's
    tried = result.metrics["auto_candidates"]
    assert result.metrics["auto_choice"] == "seeing"
    for name in ("blind", "seeing"):
        assert len(tried[name]["folds"]) == 3 and tried[name]["val_auroc"] == pytest.approx(np.mean(tried[name]["folds"]))
        assert tried[name]["val_auroc_std"] == pytest.approx(np.std(tried[name]["folds"]))
    assert tried["seeing"]["val_auroc"] > tried["blind"]["val_auroc"] + 0.2
    assert "3-fold cross-validation over the 170 train + valid entities" in result.metrics["auto_reason"]
    # pruned by its mean over the folds after the first round (auto.rung_epochs=3), with the score it had then;
    # the kept one's fold networks went on, each resuming its own checkpoint
    assert tried["blind"]["pruned"] and tried["blind"]["epochs"] == 3
    assert "blind 0." in result.metrics["auto_reason"] and "(pruned after 3 epochs)" in result.metrics["auto_reason"]
    assert "pruned" not in tried["seeing"] and tried["seeing"]["epochs"] == 6
    assert result.metrics["cv"]["epochs"] == [6, 6, 6]
    # the folds cover train + valid; the test entities are in no fold's train or valid part
    run_split = pl.read_parquet(tmp_path / "run" / "splits.parquet")
    test_ids = set(run_split.filter(pl.col("part") == "test")["entity_id"].to_list())
    held_out = []
    for number in range(3):
        fold = pl.read_parquet(tmp_path / "run" / "auto" / "folds" / f"fold-{number}.parquet")
        assert set(fold.filter(pl.col("part") == "test")["entity_id"].to_list()) == test_ids
        held_out += fold.filter(pl.col("part") == "valid")["entity_id"].to_list()
    assert sorted(held_out) == sorted(run_split.filter(pl.col("part") != "test")["entity_id"].to_list())
    # the chosen encoder's fold networks are the run's model: their average, scored out of fold
    assert result.metrics["val_auroc"] == pytest.approx(tried["seeing"]["val_auroc"])
    assert result.metrics["cv"]["folds"] == tried["seeing"]["folds"]
    assert len(result.module.members) == 2 and (tmp_path / "run" / "model" / "model.safetensors").exists()
    assert not any((tmp_path / "run" / "auto").glob("*/fold-*/checkpoints"))
    # every candidate to the end, without stopping: the same choice, and the very same fold networks
    whole = run("whole", "auto.prune=false").metrics
    assert whole["auto_choice"] == "seeing" and whole["auto_candidates"]["blind"]["epochs"] == 6
    assert whole["auto_candidates"]["seeing"]["folds"] == tried["seeing"]["folds"]
    assert whole["test_auroc"] == result.metrics["test_auroc"]


def test_a_cross_validated_candidate_trains_on_only_the_folds_its_last_round_did_not_stop(tmp_path, monkeypatch):
    """Successive halving over folds: a fold network that stopped before its round's epoch limit (early
    stopping, its time share) is kept as it is; the others resume their own checkpoint."""
    from eventseq.training import TrainConfig, TrainResult, runs

    calls = []

    def fake_train(config, callbacks=()):
        name = Path(config.output).name
        calls.append((name, config.resume, config.trainer.max_epochs))
        epochs = 2 if name == "fold-1" else config.trainer.max_epochs  # fold 1 stops early, at epoch 2
        return TrainResult(None, {"val_auroc": 0.5, "epochs": epochs}, Path(config.output), tmp_path, {}, None)

    monkeypatch.setattr(runs, "train", fake_train)
    folds = runs.Folds(np.arange(6), [(np.arange(4), np.arange(4, 6))] * 3, [tmp_path / f"{n}.parquet" for n in range(3)])
    config = TrainConfig()
    config.trainer.max_epochs = 3
    first = runs._fold_networks(config, folds, tmp_path, None)
    config.trainer.max_epochs, config.resume = 6, True
    second = runs._fold_networks(config, folds, tmp_path, None, (first, 3))
    assert calls == [("fold-0", False, 3), ("fold-1", False, 3), ("fold-2", False, 3),
                     ("fold-0", True, 6), ("fold-2", True, 6)]
    assert second[1] is first[1]
    summary = TrainResult(None, {"epochs": 4.7, "cv": {"epochs": [e.metrics["epochs"] for e in second]}}, tmp_path,
                          tmp_path, {}, None)
    assert not runs._stopped(summary, 6)  # folds 0 and 2 reached the limit: a longer round would train them on
    assert runs._stopped(summary, 7)


def test_data_splits_gives_the_entity_split_and_reproduces_a_run(prepared_dir, tmp_path, make_train_config):
    first = train(make_train_config(prepared_dir, tmp_path / "first"))
    given = make_train_config(prepared_dir, tmp_path / "second")
    given.data.splits = str(tmp_path / "first" / "splits.parquet")
    given.data.split_seed = 7  # not used: the file decides
    second = train(given)
    for part in ("train", "valid", "test"):
        assert np.array_equal(first.splits[part], second.splits[part])
    assert second.metrics["test_auroc"] == first.metrics["test_auroc"]
    given.data.splits = str(tmp_path / "missing.parquet")
    with pytest.raises(FileFormatError, match="split file not found"):
        train(given)
    given.data.splits, given.data.streaming = str(tmp_path / "first" / "splits.parquet"), True
    with pytest.raises(ConfigError, match="data.splits with data.streaming"):
        train(given)
