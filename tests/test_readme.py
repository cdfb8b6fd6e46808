"""The README's Python example must run as written."""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_block(heading: str) -> str:
    text = README.read_text()
    section = text.split(heading, 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_python_api_example_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = _python_block("## Python API in ten lines")
    code = code.replace("config.data.path", "config.trainer.progress_bar = False\nconfig.data.path")
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert 0.0 <= namespace["result"].metrics["test_auroc"] <= 1.0
    assert namespace["scores"].height == 1000
    assert pl.read_parquet(tmp_path / "embeddings.parquet").height == 1000

    # the CoLES example continues from the files the first one wrote
    coles_code = _python_block("## Self-supervised pretraining: CoLES")
    coles_code = coles_code.replace("config.data.path", "config.trainer.progress_bar = False\nconfig.data.path")
    exec(compile(coles_code, "README.md", "exec"), namespace)
    assert (tmp_path / "runs" / "coles" / "model" / "model.safetensors").exists()
    assert 0.0 <= namespace["coles"].metrics["val_recall_at_4"] <= 1.0

    # and so does the example of the other self-supervised methods
    exec(compile(_python_block("### Every other self-supervised method").replace(
        '"trainer.max_epochs=1"', '"trainer.max_epochs=1", "trainer.progress_bar=false"'), "README.md", "exec"),
        namespace)
    assert namespace["vicreg"].module.kind == "vicreg"


def test_recommender_example_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = _python_block("## Sequential recommender / ranker")
    code = code.replace("pretrained = pretrain_rec", "pretrain.trainer.progress_bar = False\npretrained = pretrain_rec")
    code = code.replace("ranker = finetune_rec", "finetune.trainer.progress_bar = False\nranker = finetune_rec")
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    table = namespace["table"]
    assert table["method"].to_list() == ["random order", "popularity", "full", "oracle"]
    assert (tmp_path / "runs" / "rec_pretrain" / "model" / "model.safetensors").exists()


def test_event_encoding_examples_run(capsys):
    namespace: dict = {}
    exec(compile(_python_block("### Quantized numerics, combined tokens and event BPE"), "README.md", "exec"), namespace)
    assert namespace["tokens"].report.tokens_out < namespace["tokens"].report.events_out
    assert "x shorter" in capsys.readouterr().out
    exec(compile(_python_block("### Several sources per entity"), "README.md", "exec"), namespace)
    assert namespace["both"].schema.sources == {"app": ["screen"], "card": ["mcc", "amount"]}


def test_quality_suite_example_runs():
    code = _python_block("## Model quality: the quality suite")
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert namespace["prepared"].table.height == 500
    assert 0.25 < namespace["data"].optimum() <= 1.0
