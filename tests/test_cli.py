from __future__ import annotations

import json
import re
from dataclasses import asdict
from pathlib import Path

import polars as pl
import pytest

from eventseq.cli import GenerateJob, PrepareJob, PredictJob, _commands, main
from eventseq.config import _all_keys, load_config
from eventseq.errors import ConfigError
from eventseq.training import TrainConfig

COMMANDS = ["prepare", "train", "pretrain", "predict", "embed", "evaluate", "generate", "demo"]




def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# ------------------------------------------------------------------ --help


@pytest.mark.parametrize("command", COMMANDS)
def test_help_lists_every_config_key(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    keys = _all_keys(_commands()[command][0])
    assert keys
    for key in keys:
        # a key is listed as `key (default): explanation`, a section as `[key] title`
        assert re.search(rf"(^|\s){re.escape(key)} \(|\[{re.escape(key)}\]", text), key
    # every option (not only sections) comes with an explanation
    for line in text.splitlines():
        if re.match(r"^  [a-z_.]+ \(", line):
            assert re.search(r"\): \S", line), line


def test_no_command_prints_the_commands(capsys):
    assert main([]) == 1
    out = capsys.readouterr().out
    assert all(command in out for command in COMMANDS)


# ------------------------------------------------------------------ config errors → exit code 2


@pytest.mark.parametrize(
    "command, override, suggestion",
    [
        ("train", "trainer.max_epoch=1", "trainer.max_epochs"),
        ("train", "model.sequence_encoder.hiden_size=8", "model.sequence_encoder.hidden_size"),
        ("predict", "batchsize=3", "batch_size"),
        ("prepare", "categorial=[a]", "categorical"),
    ],
)
def test_unknown_key_exits_2_with_a_suggestion(command, override, suggestion, capsys):
    assert main([command, override]) == 2
    err = capsys.readouterr().err
    assert override.split("=")[0] in err
    assert f"did you mean '{suggestion}'" in err


@pytest.mark.parametrize(
    "override, key, message",
    [
        ("trainer.max_epochs=abc", "trainer.max_epochs", "bad value"),
        ("trainer.progress_bar=maybe", "trainer.progress_bar", "bad value"),
        # (trainer=5 chooses an option of the trainer group: tests/test_config.py)
        ("head=5", "head", "is a section of options, not a value"),
    ],
)
def test_bad_value_type_exits_2_naming_the_key(override, key, message, capsys):
    assert main(["train", override]) == 2
    err = capsys.readouterr().err
    assert f"'{key}'" in err and message in err


def test_missing_config_file_exits_2(tmp_path, capsys):
    assert main(["generate", "--config", str(tmp_path / "nope.yaml")]) == 2
    assert "config file not found" in capsys.readouterr().err


def test_missing_required_option_exits_2(capsys):
    assert main(["predict", "data=events.parquet"]) == 2
    assert "'model' is required" in capsys.readouterr().err


def test_yaml_file_with_override_on_the_command_line(tmp_path):
    output = tmp_path / "data"
    config = _write(tmp_path / "generate.yaml", f"output: {output}\nn_entities: 30\nseed: 4\n")
    assert main(["generate", "--config", str(config), "n_entities=12"]) == 0
    labels = pl.read_parquet(output / "labels.parquet")
    assert labels.height == 12  # the override wins over the file
    assert sorted(p.name for p in output.iterdir()) == ["events.parquet", "labels.parquet"]


# ------------------------------------------------------------------ the whole chain


def test_generate_prepare_train_predict_embed(tmp_path, capsys):
    data, prepared, run = tmp_path / "data", tmp_path / "prepared", tmp_path / "run"
    assert main(["generate", f"output={data}", "n_entities=150"]) == 0
    assert main([
        "prepare", f"input={data / 'events.parquet'}", f"labels={data / 'labels.parquet'}", f"output={prepared}",
        "id_column=entity_id", "time_column=event_time", "categorical=[mcc,channel]", "numeric=[amount]",
        "targets={label:binary}",
    ]) == 0
    assert {"data.parquet", "schema.json", "report.json"} <= {p.name for p in prepared.iterdir()}
    assert main([
        "train", f"data.path={prepared}", f"output={run}", "trainer.max_epochs=1", "trainer.progress_bar=false",
        "model.sequence_encoder.hidden_size=8",
    ]) == 0
    # the default model: the network stacked with LightGBM over aggregates (eventseq.combined)
    assert sorted(p.name for p in (run / "model").iterdir()) == ["combined.json", "config.json", "lightgbm-0.txt",
                                                                 "model.safetensors"]
    assert main(["predict", f"model={run / 'model'}", f"data={data / 'events.parquet'}",
                 f"output={tmp_path / 'predictions.parquet'}", "progress=false"]) == 0
    assert main(["embed", f"model={run / 'model'}", f"data={prepared}", f"output={tmp_path / 'embeddings.parquet'}",
                 "progress=false", "chunk_rows=40"]) == 0
    out = capsys.readouterr().out
    assert "events out: " in out and "written: " in out

    predictions = pl.read_parquet(tmp_path / "predictions.parquet")
    embeddings = pl.read_parquet(tmp_path / "embeddings.parquet")
    assert predictions.columns == ["entity_id", "label_proba", "label_pred"]
    assert embeddings.columns == ["entity_id"] + [f"emb_{i:02d}" for i in range(24)]  # last+mean+max: 3 x hidden 8
    assert predictions["entity_id"].to_list() == embeddings["entity_id"].to_list() == list(range(150))
    assert not list(tmp_path.rglob("*.tmp"))


def test_demo_writes_results_and_curves(tmp_path, capsys):
    output = tmp_path / "demo"
    assert main(["demo", f"output={output}", "n_entities=200", "max_epochs=1", "hidden_size=8",
                 "progress=false", "coles_epochs=1"]) == 0
    results = json.loads((output / "results.json").read_text())
    metrics = results["metrics"]
    assert 0.5 < metrics["Bayes-optimal accuracy (same entities)"] <= 1
    assert metrics["test accuracy (reloaded model, raw events)"] == pytest.approx(metrics["test accuracy (default: GRU + aggregates)"])
    assert (output / "run" / "curves.png").read_bytes()[:4] == b"\x89PNG"
    assert (output / "predictions.parquet").exists()
    printed = capsys.readouterr().out
    assert "trained a GRU for 1 epochs and stacked it with LightGBM over aggregates" in printed
    # the pretrained-use comparison: every method scored on the same held-out entities
    for method in ["aggregates + LightGBM", "CoLES embeddings + LightGBM", "CoLES + aggregates + LightGBM",
                   "default: GRU + aggregates", "CoLES → fine-tuned GRU + aggregates"]:
        assert method in printed
        assert 0 <= metrics[f"{method} AUROC"] <= 1
    assert (output / "embedding_map.png").read_bytes()[:4] == b"\x89PNG"
    assert (output / "finetuned" / "model" / "model.safetensors").exists()


def test_pretrain_and_embed_with_a_map(prepared_dir, synthetic, tmp_path):
    run = tmp_path / "coles"
    assert main(["pretrain", f"data.path={prepared_dir}", f"output={run}", "trainer.max_epochs=1",
                 "trainer.progress_bar=false", "model.sequence_encoder.hidden_size=8", "coles.views.min_len=3",
                 "coles.views.max_len=10", "coles.loss=infonce"]) == 0
    labels = tmp_path / "labels.parquet"
    synthetic.labels.write_parquet(labels)
    assert main(["embed", f"model={run / 'model'}", f"data={prepared_dir}", f"output={tmp_path / 'e.parquet'}",
                 "progress=false", f"plot={tmp_path / 'map.png'}", f"labels={labels}", "target=label"]) == 0
    assert (tmp_path / "map.png").read_bytes()[:4] == b"\x89PNG"
    assert pl.read_parquet(tmp_path / "e.parquet").height == 240


def test_pretrain_unknown_method(prepared_dir, tmp_path, capsys):
    assert main(["pretrain", f"data.path={prepared_dir}", f"output={tmp_path}", "method=simclr"]) == 2
    assert "available method options: barlow_twins, coles" in capsys.readouterr().err


# ------------------------------------------------------------------ load_config


def test_load_config_defaults():
    assert asdict(load_config(TrainConfig)) == asdict(TrainConfig())
    assert load_config(PredictJob) == PredictJob()


def test_load_config_precedence_defaults_file_overrides(tmp_path):
    path = _write(tmp_path / "train.yaml", "trainer:\n  max_epochs: 5\n  patience: 7\nseed: 3\n")
    from_file = load_config(TrainConfig, path)
    assert (from_file.trainer.max_epochs, from_file.trainer.patience, from_file.seed) == (5, 7, 3)
    assert from_file.trainer.accelerator == TrainConfig().trainer.accelerator  # untouched keys keep defaults
    overridden = load_config(TrainConfig, path, ["trainer.max_epochs=9", "data.path=/data/a=b"])
    assert (overridden.trainer.max_epochs, overridden.trainer.patience) == (9, 7)
    assert overridden.data.path == "/data/a=b"  # only the first '=' splits


def test_load_config_parses_lists_mappings_and_null():
    job = load_config(PrepareJob, None, ["categorical=[mcc,channel]", "targets={label:binary,segment: multiclass}",
                                         "max_vocab_size=null", "labels=null"])
    assert job.categorical == ["mcc", "channel"]
    assert job.targets == {"label": "binary", "segment": "multiclass"}
    assert job.max_vocab_size is None and job.labels is None
    train = load_config(TrainConfig, None, ["model.event_encoder.embedding_dims.mcc=4", "head.class_weights=[1,2]"])
    assert train.model.event_encoder.embedding_dims == {"mcc": 4}
    assert train.head.class_weights == [1.0, 2.0]


@pytest.mark.parametrize(
    "yaml_text, override, message",
    [
        (None, "trainr.max_epochs=3", "did you mean 'trainer.max_epochs'"),
        (None, "model.sequence_encoder.hiden_size=3", "did you mean 'model.sequence_encoder.hidden_size'"),
        ("model:\n  sequence_encoder:\n    hiden_size: 3\n", None, "did you mean 'model.sequence_encoder.hidden_size'"),
        ("trainer:\n  max_epochs: abc\n", None, "'trainer.max_epochs'"),
        ("trainer: [1, 2\n", None, "cannot parse config file"),
        (None, "trainer.max_epochs", "must look like key=value"),
    ],
)
def test_load_config_errors(tmp_path, yaml_text, override, message):
    path = _write(tmp_path / "config.yaml", yaml_text) if yaml_text is not None else None
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(TrainConfig, path, [override] if override else [])


def test_load_config_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(GenerateJob, tmp_path / "missing.yaml")


