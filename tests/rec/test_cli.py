from __future__ import annotations

import json

import polars as pl
import pytest

from eventseq.cli import main
from eventseq.rec.cli import COMMANDS

TINY_MODEL = ["model.dim=16", "model.num_layers=1", "model.max_len=32", "trainer.max_epochs=1",
              "trainer.progress_bar=false"]


@pytest.mark.parametrize("command", list(COMMANDS))
def test_help_lists_the_options(command, capsys):
    with pytest.raises(SystemExit):
        main(["rec", command, "--help"])
    text = capsys.readouterr().out
    assert "key=value" in text and "output" in text


def test_rec_without_a_command_prints_its_commands(capsys):
    assert main(["rec"]) == 1
    assert "finetune" in capsys.readouterr().out


def test_generate_prepare_pretrain_finetune_evaluate_score(tmp_path, capsys):
    data, prepared = tmp_path / "synthetic", tmp_path / "prepared"
    assert main(["rec", "generate", f"output={data}", "n_users=150", "n_items=60", "n_days=90"]) == 0
    assert main(["rec", "prepare", f"input={data / 'log.parquet'}", f"output={prepared}", "valid_days=20"]) == 0
    assert "groups" in capsys.readouterr().out
    assert main(["rec", "pretrain", f"data={prepared}", f"output={tmp_path / 'pre'}", "trainer=quick",
                 *TINY_MODEL]) == 0
    saved = json.loads((tmp_path / "pre" / "model" / "config.json").read_text())["extra"]
    assert saved["config_groups"] == {"trainer": "quick"} and saved["train_config"]["data"] == str(prepared)
    assert "# config groups: trainer=quick" in (tmp_path / "pre" / "config.yaml").read_text()
    assert main(["rec", "finetune", f"data={prepared}", f"output={tmp_path / 'ft'}", "init=full",
                 f"init_from={tmp_path / 'pre' / 'model'}", "trainer.max_epochs=1", "trainer.progress_bar=false"]) == 0
    report = tmp_path / "evaluation.md"
    assert main(["rec", "evaluate", f"data={prepared}", f"models.full={tmp_path / 'ft' / 'model'}",
                 f"oracle={data / 'oracle.parquet'}", f"output={report}"]) == 0
    text = report.read_text()
    assert "| random order |" in text and "| full |" in text and "| oracle |" in text
    scores = tmp_path / "scores.parquet"
    assert main(["rec", "score", f"model={tmp_path / 'ft' / 'model'}", f"data={prepared}", f"output={scores}"]) == 0
    assert pl.read_parquet(scores).columns == ["request_id", "item_id", "score", "rank"]


def test_errors_exit_2_with_the_command_named(tmp_path, capsys):
    assert main(["rec", "prepare", f"input={tmp_path / 'missing.parquet'}"]) == 2
    assert "eventseq rec prepare: error: event file not found" in capsys.readouterr().err
    assert main(["rec", "finetune", "data=x", "init=warm"]) == 2
    assert "init='warm'" in capsys.readouterr().err
    assert main(["rec", "evaluate", "dat=x"]) == 2
    assert "did you mean 'data'" in capsys.readouterr().err
