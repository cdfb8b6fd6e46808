from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from eventseq.errors import ConfigError
from eventseq.optim import OptimizerConfig


def _lrs(config: OptimizerConfig, planned_steps: float, steps: int) -> list[float]:
    parameter = torch.nn.Parameter(torch.zeros(2))
    setup = config.configure([parameter], SimpleNamespace(estimated_stepping_batches=planned_steps))
    optimizer, schedule = setup["optimizer"], setup["lr_scheduler"]["scheduler"]
    seen = []
    for _ in range(steps):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    return seen


def test_cosine_warms_up_then_decays_to_its_floor():
    config = OptimizerConfig(lr=1e-2, scheduler="cosine", warmup_fraction=0.1, min_lr_fraction=0.05)
    lrs = _lrs(config, planned_steps=100, steps=101)
    assert lrs[0] == pytest.approx(1e-3)  # step 1 of 10 warm-up steps
    assert lrs[9] == pytest.approx(1e-2)  # the peak at the end of warm-up
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:]))  # then only down
    assert lrs[55] == pytest.approx(1e-2 * (0.05 + 0.95 * 0.5), rel=1e-6)  # half way: the mid-point of the cosine
    assert lrs[100] == pytest.approx(5e-4)  # the floor at the planned end


def test_cosine_without_a_planned_end_stays_flat_after_warm_up():
    lrs = _lrs(OptimizerConfig(lr=1e-2, scheduler="cosine"), planned_steps=float("inf"), steps=20)
    assert lrs == [1e-2] * 20


def test_plateau_watches_the_monitor_and_none_returns_the_optimizer():
    parameter = torch.nn.Parameter(torch.zeros(2))
    setup = OptimizerConfig(scheduler="plateau").configure([parameter], None, ("val_auroc", "max"))
    assert setup["lr_scheduler"]["monitor"] == "val_auroc"
    assert setup["lr_scheduler"]["scheduler"].mode == "max"
    assert isinstance(OptimizerConfig().configure([parameter]), torch.optim.AdamW)


@pytest.mark.parametrize("changes, match", [
    ({"scheduler": "cosin"}, "optimizer.scheduler"), ({"lr": -1.0}, "lr"), ({"weight_decay": -0.1}, "weight_decay"),
    ({"warmup_fraction": 1.0}, "warmup_fraction"),
])
def test_bad_options_are_config_errors(changes, match):
    with pytest.raises(ConfigError, match=match):
        OptimizerConfig(**changes).build([torch.nn.Parameter(torch.zeros(1))])


@pytest.mark.parametrize("argv, message", [
    (["pretrain", "optimizer.freeze_encoder=true"], "optimizer.freeze_encoder=True does not apply to pretraining"),
    (["pretrain", "optimizer.encoder_lr=0.001"], "optimizer.encoder_lr=0.001 does not apply to pretraining"),
    (["rec", "pretrain", "optimizer.encoder_lr=0.001"], "does not apply to rec pretrain"),
    (["rec", "finetune", "optimizer.freeze_encoder=true"], "does not apply to rec finetune"),
])
def test_encoder_options_are_refused_where_they_would_be_ignored(argv, message, capsys, tmp_path):
    from eventseq.cli import main

    assert main([*argv, "data=x" if argv[0] == "rec" else "data.path=x", f"output={tmp_path / 'run'}"]) == 2
    assert message in capsys.readouterr().err
