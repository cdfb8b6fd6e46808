"""The combined default model: the network stacked with LightGBM over per-entity aggregates."""

from __future__ import annotations

import json
import shutil

import numpy as np
import polars as pl
import pytest

from eventseq.combined import COMBINED_FILE, CombinedModel, Stack, network_scale, scores
from eventseq.data import PrepareConfig, load_prepared, prepare
from eventseq.datasets.quality import make_quality_set
from eventseq.errors import ConfigError, FileFormatError
from eventseq.inference import predict
from eventseq.saved import load_model
from eventseq.training import train

pytest.importorskip("lightgbm")


# ----------------------------------------------------------------------------- the stack


def _two_parts(task: str, seed: int = 0, n: int = 400, outputs: int = 1):
    """An informative part (the truth's own scores) and a noise part, with targets drawn from the first."""
    rng = np.random.default_rng(seed)
    signal = rng.normal(size=(n, outputs)) * 2
    noise = rng.normal(size=(n, outputs)) * 2
    if task == "regression":
        y = 2 * signal + 1 + rng.normal(size=(n, outputs)) * 0.1
    elif task == "multiclass":
        p = np.exp(signal) / np.exp(signal).sum(axis=1, keepdims=True)
        y = np.array([rng.choice(outputs, p=row) for row in p])
        signal = np.log(p)
        noise = noise - np.log(np.exp(noise).sum(axis=1, keepdims=True))
    else:
        y = (rng.random(size=(n, outputs)) < 1 / (1 + np.exp(-signal))).astype(np.int64)
        y = y[:, 0] if task == "binary" else y
    return signal, noise, y


@pytest.mark.parametrize("task, outputs", [("binary", 1), ("multiclass", 3), ("multilabel", 2), ("regression", 2)])
def test_the_stack_weights_the_informative_part_whichever_it_is(task, outputs):
    signal, noise, y = _two_parts(task, outputs=outputs)
    network_first = Stack.fit(task, signal, noise, y)
    aggregates_first = Stack.fit(task, noise, signal, y)
    assert network_first.weights[0] > 0.7 and network_first.weights[1] < 0.15
    assert aggregates_first.weights[1] > 0.7 and aggregates_first.weights[0] < 0.15
    assert min(network_first.weights + aggregates_first.weights) >= 0  # never a negative weight
    if task == "regression":
        assert network_first.weights[0] == pytest.approx(2, abs=0.05)
        assert network_first.bias == pytest.approx([1, 1], abs=0.05)
    outputs_ = network_first.outputs(signal, noise)
    if task in ("binary", "multilabel"):
        assert ((outputs_ > 0) & (outputs_ < 1)).all()
    elif task == "multiclass":
        assert np.allclose(outputs_.sum(axis=1), 1)


def test_scores_are_named_as_training_logs_them():
    y = np.array([0, 1, 0, 1])
    assert scores("binary", y, np.array([[0.1], [0.9], [0.2], [0.8]])) == {"auroc": 1.0, "accuracy": 1.0, "f1": 1.0}
    assert set(scores("multiclass", np.array([0, 1, 2]), np.eye(3))) == {"accuracy", "f1", "auroc"}
    assert scores("regression", np.array([1.0, 3.0]), np.array([[2.0], [2.0]])) == {"rmse": 1.0, "mae": 1.0}
    # a probability of exactly 0 or 1 is a finite logit
    assert np.isfinite(network_scale("binary", np.array([0.0, 1.0]))).all()


# ----------------------------------------------------------------------------- train → save → predict


def _values(frame: pl.DataFrame) -> np.ndarray:
    return frame.select(pl.col(pl.Float32, pl.Float64)).to_numpy()


def _tiny(config, **changes):
    config.trainer.max_epochs = 1
    for key, value in changes.items():
        section, name = key.split("__")
        setattr(getattr(config, section), name, value)
    return config


@pytest.fixture(scope="module")
def quality_dirs(tmp_path_factory):
    """Tiny prepared sets of the other three tasks: multiclass, multilabel, regression."""
    directories = {}
    for name in ("markov", "taste", "trend"):
        data = make_quality_set(name, 120, 0)
        directory = tmp_path_factory.mktemp(name)
        prepare(data.events, PrepareConfig(**data.columns), labels=data.labels, output=directory)
        directories[name] = directory
    return directories


def test_train_delivers_the_combined_model_and_reports_each_part(trained, prepared_dir):
    metrics = trained.metrics
    assert metrics["model"] == "combined"
    assert set(metrics["parts"]) == {"network", "aggregates", "combined"}
    for part in metrics["parts"].values():
        assert 0 <= part["val_auroc"] <= 1 and 0 <= part["test_auroc"] <= 1
    assert metrics["test_auroc"] == metrics["parts"]["combined"]["test_auroc"]  # the model delivered
    assert set(metrics["combined_weights"]) == {"network", "aggregates"}
    assert json.loads((trained.run_dir / "metrics.json").read_text())["model"] == "combined"
    assert (trained.model_dir / COMBINED_FILE).is_file() and (trained.model_dir / "lightgbm-0.txt").is_file()


@pytest.mark.parametrize("name", ["binary", "markov", "taste", "trend"])
def test_the_combined_model_saves_reloads_and_predicts_the_same_numbers(name, prepared_dir, quality_dirs, tmp_path,
                                                                         make_train_config, synthetic):
    data_dir = prepared_dir if name == "binary" else quality_dirs[name]
    result = train(_tiny(make_train_config(data_dir, tmp_path / "run")))
    assert result.metrics["model"] == "combined"
    in_memory = predict(result.module, data_dir, progress=False)
    reloaded_model = load_model(result.model_dir)
    assert isinstance(reloaded_model.combined, CombinedModel)
    reloaded = predict(reloaded_model, data_dir, progress=False)
    assert in_memory.columns == reloaded.columns
    assert np.array_equal(_values(in_memory), _values(reloaded))
    # predict gives the stack of the network's outputs and the aggregates', not the network alone
    network_only = load_model(result.model_dir)
    network_only.combined = None
    alone = predict(network_only, data_dir, progress=False)
    table = load_prepared(data_dir).table
    stacked = reloaded_model.combined.predict(table, reloaded_model.schema, _values(alone)[:, :result.module.head_config
                                                                                         .num_outputs])
    assert np.allclose(_values(reloaded)[:, :stacked.shape[1]], stacked, atol=1e-6)
    if name == "binary":  # raw events are encoded, then aggregated, as the prepared table was
        from_raw = predict(result.model_dir, synthetic.events, progress=False)
        assert np.allclose(_values(from_raw), _values(reloaded), atol=1e-6)


def test_small_data_trains_one_network_per_fold_averages_them_and_stacks_out_of_fold(prepared_dir, tmp_path,
                                                                                      make_train_config):
    from eventseq.inference import entity_outputs

    result = train(_tiny(make_train_config(prepared_dir, tmp_path / "run"), cv__below=10_000, cv__folds=3))
    run = tmp_path / "run"
    known = np.concatenate([result.splits["train"], result.splits["valid"]])
    cv = result.metrics["cv"]
    assert len(cv["folds"]) == 3 and cv["entities"] == len(known) and result.metrics["model"] == "combined"
    # each fold leaves out a third of train + valid, together all of it; the test part is the run's in every fold
    folds = [load_model(run / "folds" / f"fold-{k}" / "model") for k in range(3)]
    dataset = result.dataset
    ids = dataset.entity_ids()
    out_of_fold = np.zeros((len(dataset), 1))
    left_out = []
    for k, fold in enumerate(folds):
        split = pl.read_parquet(run / "folds" / f"fold-{k}.parquet")
        assert sorted(split.filter(pl.col("part") == "test")["entity_id"]) == sorted(ids[result.splits["test"]])
        rows = np.flatnonzero(np.isin(ids, split.filter(pl.col("part") == "valid")["entity_id"].to_numpy()))
        left_out += rows.tolist()
        out_of_fold[rows] = entity_outputs(fold, dataset.subset(rows), "predict")
        assert not (run / "folds" / f"fold-{k}" / "checkpoints").exists()
        assert not (run / "folds" / f"fold-{k}" / "curves.png").exists()  # the run's curves.png draws every fold
    assert sorted(left_out) == sorted(known.tolist())
    # the network part is scored out of fold on every train + valid entity: what the stack is fitted on
    expected = scores("binary", dataset.target_values()[known], out_of_fold[known])
    assert result.metrics["parts"]["network"]["val_auroc"] == pytest.approx(expected["auroc"])
    # the delivered network averages the fold networks' logits; saved and reloaded, it predicts the same
    assert len(result.module.members) == 2
    logits = np.mean([network_scale("binary", entity_outputs(fold, dataset, "predict")) for fold in folds], axis=0)
    reloaded = load_model(result.model_dir)
    assert len(reloaded.members) == 2
    reloaded_combined, reloaded.combined = reloaded.combined, None
    assert np.allclose(network_scale("binary", entity_outputs(reloaded, dataset, "predict")), logits, atol=1e-4)
    reloaded.combined = reloaded_combined
    assert np.array_equal(_values(predict(reloaded, prepared_dir, progress=False)),
                          _values(predict(result.module, prepared_dir, progress=False)))
    assert all((run / name).exists() for name in ("config.yaml", "splits.parquet", "curves.png", "metrics.json"))
    # without the stack: the average of the fold networks alone
    alone = train(_tiny(make_train_config(prepared_dir, tmp_path / "alone"), cv__below=10_000, cv__folds=3,
                        combine__mode="none"))
    assert len(alone.module.members) == 2 and "model" not in alone.metrics
    assert not (alone.model_dir / COMBINED_FILE).exists() and 0 <= alone.metrics["test_auroc"] <= 1


def test_a_cross_validated_run_resumes_with_its_finished_folds_read_back(prepared_dir, tmp_path, make_train_config):
    def config(**changes):
        return _tiny(make_train_config(prepared_dir, tmp_path / "run"), cv__below=10_000, cv__folds=3, **changes)

    first = train(config())
    folds = tmp_path / "run" / "folds"
    written = {k: (folds / f"fold-{k}" / "model" / "model.safetensors").stat().st_mtime_ns for k in range(3)}
    shutil.rmtree(folds / "fold-2" / "model")  # as if killed while fold 2 trained
    (folds / "fold-2" / "metrics.json").unlink()
    resumed = config()
    resumed.resume = True
    again = train(resumed)
    assert [(folds / f"fold-{k}" / "model" / "model.safetensors").stat().st_mtime_ns for k in range(2)] == \
        [written[0], written[1]]  # read back, not trained again
    assert again.metrics["cv"]["folds"] == first.metrics["cv"]["folds"]
    assert again.metrics["test_auroc"] == pytest.approx(first.metrics["test_auroc"])


def test_networks_of_another_architecture_are_not_averaged_in(trained, prepared_dir):
    from eventseq.nn import EncoderConfig
    from eventseq.objectives.supervised import SupervisedModule

    module = trained.module
    other_encoder = EncoderConfig()
    other_encoder.sequence_encoder.hidden_size = 5
    other = SupervisedModule(module.schema, other_encoder, module.head_config, module.optimizer_config)
    fresh = SupervisedModule.from_config(module.schema, module.to_config())
    with pytest.raises(ConfigError, match="differ in architecture"):
        fresh.add_members([other])
    assert len(fresh.members) == 0


def test_combine_none_trains_the_network_alone(prepared_dir, tmp_path, make_train_config):
    result = train(_tiny(make_train_config(prepared_dir, tmp_path / "run"), combine__mode="none"))
    assert "model" not in result.metrics and "val_loss" in result.metrics  # the network's own metrics, as before
    assert not (result.model_dir / COMBINED_FILE).exists()
    assert load_model(result.model_dir).combined is None


def test_too_few_validation_entities_leave_the_network_alone_or_are_refused(prepared_dir, tmp_path,
                                                                           make_train_config):
    result = train(_tiny(make_train_config(prepared_dir, tmp_path / "auto"), data__valid_fraction=0.02))
    assert result.metrics["model"] == "network"
    assert "fewer than 10" in result.metrics["combine_note"]
    with pytest.raises(ConfigError, match="combine.mode=aggregates: .* validation entities"):
        train(_tiny(make_train_config(prepared_dir, tmp_path / "refused"), data__valid_fraction=0.02,
                    combine__mode="aggregates"))


def test_combine_aggregates_with_streaming_is_refused_before_the_data_is_read(tmp_path, make_train_config):
    config = _tiny(make_train_config(tmp_path / "no-such-data", tmp_path / "run"), combine__mode="aggregates",
                   data__streaming=True)
    with pytest.raises(ConfigError, match="combine.mode=aggregates needs the whole table"):
        train(config)
    config.combine.mode = "together"
    with pytest.raises(ConfigError, match="combine.mode"):
        train(config)


def test_auto_combines_the_chosen_candidate_only(prepared_dir, tmp_path, make_train_config):
    config = _tiny(make_train_config(prepared_dir, tmp_path / "run"))
    config.model.sequence_encoder.type = "auto"
    config.auto.candidates = ["gru", "cnn"]
    config.cv.below = 0  # one split: the cheaper way (cross-validation: test_training.py)
    result = train(config)
    assert result.metrics["model"] == "combined" and result.metrics["auto_choice"] in ("gru", "cnn")
    for name in ("gru", "cnn"):  # the candidates are networks
        assert not (tmp_path / "run" / "auto" / name / "model" / COMBINED_FILE).exists()
    assert (result.model_dir / COMBINED_FILE).exists()


@pytest.mark.parametrize("damage, message", [
    (lambda model: (model / "lightgbm-0.txt").unlink(), "lightgbm-0.txt not found"),
    (lambda model: (model / "lightgbm-0.txt").write_text("not a booster"), "corrupt LightGBM model"),
    (lambda model: (model / COMBINED_FILE).unlink(), "combined.json not found"),
    (lambda model: (model / COMBINED_FILE).write_text("{"), "does not describe a combined model"),
    (lambda model: (model / COMBINED_FILE).write_text(json.dumps(
        {**json.loads((model / COMBINED_FILE).read_text()), "stack": {"weights": [1.0], "bias": [0.0]}})),
     "do not fit the task"),
])
def test_a_damaged_combined_model_is_refused_naming_the_file(trained, tmp_path, damage, message):
    import shutil

    model = tmp_path / "model"
    shutil.copytree(trained.model_dir, model)
    damage(model)
    with pytest.raises(FileFormatError, match=message):
        load_model(model)
