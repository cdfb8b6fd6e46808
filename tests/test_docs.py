"""The documentation: every Python example of docs/ and the README runs in a test, the site's navigation
lists every page and notebook, and the API reference names objects that exist."""

from __future__ import annotations

import importlib
import importlib.util
import re
from pathlib import Path

import polars as pl
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def test_python_api_example_runs(tmp_path, monkeypatch, python_block):
    monkeypatch.chdir(tmp_path)
    code = python_block("getting-started.md", "## Python API in ten lines")
    code = code.replace("config.data.path", "config.trainer.progress_bar = False\nconfig.data.path")
    namespace: dict = {}
    exec(compile(code, "docs", "exec"), namespace)
    assert 0.0 <= namespace["result"].metrics["test_auroc"] <= 1.0
    assert namespace["scores"].height == 1000
    assert pl.read_parquet(tmp_path / "embeddings.parquet").height == 1000

    # the combined model's example continues from the run the first one trained
    exec(compile(python_block("models.md", "### The default model: the network stacked with the aggregates"), "docs",
                 "exec"), namespace)
    assert namespace["network_weight"] >= 0 and namespace["aggregates_weight"] >= 0
    exec(compile(python_block("models.md", "### Small data: cross-validated training"), "docs", "exec"), namespace)
    assert len(namespace["small_run"].metrics["cv"]["folds"]) == 5 and len(namespace["small_run"].module.members) == 4
    # encoder=auto on the same small data: cross-validated candidates, pruned by their mean (2 epochs: round 1, then
    # the better two to the end)
    code = python_block("models.md", "### Letting the library choose the encoder: `encoder=auto`")
    code = code.replace("trainer.max_epochs=8", "trainer.max_epochs=2\", \"auto.rung_epochs=1\", \"auto.candidates=[gru,cnn]\", \"cv.folds=2")
    exec(compile(code, "docs", "exec"), namespace)
    tried = namespace["small_auto"].metrics["auto_candidates"]
    assert sum(bool(one.get("pruned")) for one in tried.values()) == 1 and len(tried["gru"]["folds"]) == 2

    # the CoLES example continues from the files the first one wrote
    coles_code = python_block("pretraining.md", "# Self-supervised pretraining: CoLES")
    coles_code = coles_code.replace("config.data.path", "config.trainer.progress_bar = False\nconfig.data.path")
    exec(compile(coles_code, "docs", "exec"), namespace)
    assert (tmp_path / "runs" / "coles" / "model" / "model.safetensors").exists()
    assert 0.0 <= namespace["coles"].metrics["val_recall_at_4"] <= 1.0

    # and so does the example of the other self-supervised methods
    exec(compile(python_block("pretraining.md", "## Every other self-supervised method").replace(
        '"trainer.max_epochs=1"', '"trainer.max_epochs=1", "trainer.progress_bar=false"'), "docs", "exec"),
        namespace)
    assert namespace["vicreg"].module.kind == "vicreg"


def test_recommender_example_runs(tmp_path, monkeypatch, python_block):
    monkeypatch.chdir(tmp_path)
    code = python_block("recommender.md", "# Sequential recommender / ranker (`eventseq.rec`)")
    code = code.replace("pretrained = pretrain_rec", "pretrain.trainer.progress_bar = False\npretrained = pretrain_rec")
    code = code.replace("ranker = finetune_rec", "finetune.trainer.progress_bar = False\nranker = finetune_rec")
    namespace: dict = {}
    exec(compile(code, "docs", "exec"), namespace)
    table = namespace["table"]
    assert table["method"].to_list() == ["random order", "popularity", "full", "oracle"]
    assert (tmp_path / "runs" / "rec_pretrain" / "model" / "model.safetensors").exists()


def test_event_encoding_examples_run(capsys, python_block):
    namespace: dict = {}
    exec(compile(python_block("data.md", "## Quantized numerics, combined tokens and event BPE"), "docs", "exec"), namespace)
    assert namespace["tokens"].report.tokens_out < namespace["tokens"].report.events_out
    assert "x shorter" in capsys.readouterr().out
    exec(compile(python_block("data.md", "## Several sources per entity"), "docs", "exec"), namespace)
    assert namespace["both"].schema.sources == {"app": ["screen"], "card": ["mcc", "amount"]}


def test_quality_suite_example_runs(python_block):
    code = python_block("quality.md", "# Model quality: the quality suite")
    namespace: dict = {}
    exec(compile(code, "docs", "exec"), namespace)
    assert namespace["prepared"].table.height == 500
    assert 0.25 < namespace["data"].optimum() <= 1.0


def test_the_models_example_builds_an_encoder(prepared_dir, python_block):
    from eventseq.data import load_prepared

    namespace = {"schema": load_prepared(prepared_dir).schema}  # the page's example continues from a prepared schema
    exec(compile(python_block("models.md", "## Models"), "docs", "exec"), namespace)
    assert namespace["encoder"].embedding_dim > 0


def test_the_readme_and_getting_started_show_the_same_first_example(python_block):
    heading = "## Python API in ten lines"
    assert python_block("README.md", heading) == python_block("getting-started.md", heading)


# Examples run by a test elsewhere (next to what they use), by the page and heading they are under.
RUN_ELSEWHERE = {
    ("baselines.md", "# Classical next-event baselines"): "tests/test_baselines.py",
    ("data.md", "## `prepare` with Spark: `engine=spark`"): "tests/data/test_spark.py",
    ("data.md", "## Text fields (merchant names, product titles)"): "tests/test_text_pipeline.py",
    ("datasets.md", "## JapaneseVowels in a few lines"): "tests/datasets/test_uea.py",
    ("downstream.md", "# Downstream evaluation"): "tests/test_downstream.py",
    ("inference.md", "## Per-event embeddings"): "tests/test_inference_events.py",
}


def test_every_python_example_of_the_docs_runs_in_a_test(python_blocks):
    runners = {path: (ROOT / path).read_text() for path in {*RUN_ELSEWHERE.values(), "tests/test_docs.py"}}
    pages = ["README.md", *sorted(path.name for path in DOCS.glob("*.md"))]
    not_run = []
    for page in pages:
        for heading, _ in python_blocks(page):
            runner = RUN_ELSEWHERE.get((page, heading), "tests/test_docs.py")
            call = f"python_block({page!r}, {heading!r})".replace("'", '"')
            if page == "README.md" and heading == "## Python API in ten lines":
                continue  # the same code as getting-started.md's (checked above), which runs
            if call not in runners[runner]:
                not_run.append(f"{page} / {heading} (expected in {runner})")
    assert not_run == []


def _nav_files(entries) -> list[str]:
    files = []
    for entry in entries:
        value = next(iter(entry.values())) if isinstance(entry, dict) else entry
        files.extend(_nav_files(value) if isinstance(value, list) else [value])
    return files


def test_the_site_lists_every_page_and_notebook():
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    listed = _nav_files(config["nav"])
    pages = sorted(path.name for path in DOCS.glob("*.md"))
    notebooks = sorted(f"notebooks/{path.name}" for path in (ROOT / "tutorials").glob("*.ipynb"))
    assert sorted(item for item in listed if item.endswith(".md")) == pages
    assert sorted(item for item in listed if item.endswith(".ipynb")) == notebooks
    assert (DOCS / "notebooks").resolve() == (ROOT / "tutorials").resolve()  # the notebooks are the tutorials


def test_the_api_reference_names_objects_that_exist():
    names = re.findall(r"^::: ([\w.]+)$", (DOCS / "api.md").read_text(), re.M)
    assert len(names) > 20
    for name in names:
        module_name, _, attribute = name.rpartition(".")
        try:
            importlib.import_module(name)
        except ModuleNotFoundError:
            assert hasattr(importlib.import_module(module_name), attribute), name


@pytest.mark.skipif(importlib.util.find_spec("mkdocs") is None, reason="the docs extra is not installed (make docs)")
def test_the_site_builds_without_warnings(tmp_path):
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "api" / "index.html").exists()
