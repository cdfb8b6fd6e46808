"""Config groups (eventseq/config.py): what an option sets, the order of composition, the search path,
defaults lists, errors, --help, and the resolved config a run saves."""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from pathlib import Path

import polars as pl
import pytest

from eventseq.cli import main
from eventseq.config import PACKAGE_CONFIG_DIR, group_choices, load_config
from eventseq.errors import ConfigError
from eventseq.nn.sequence_encoder import SequenceEncoderConfig
from eventseq.objectives.methods import METHODS
from eventseq.rec.runs import RecFinetuneConfig
from eventseq.training import PretrainConfig, TrainConfig


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _choices(config) -> dict[str, str]:
    return {choice.group: choice.option for choice in group_choices(config)}


# ------------------------------------------------------------------ what the options set


def test_group_options_set_their_values_and_leave_the_rest():
    config = load_config(PretrainConfig, overrides=["method=mlm", "trainer=quick"])
    encoder = config.model.sequence_encoder
    assert config.method == "mlm"
    assert (encoder.type, encoder.causal, encoder.pooling, encoder.num_layers) == ("transformer", False, "mean", 1)
    assert (config.trainer.max_epochs, config.trainer.progress_bar) == (1, False)
    assert config.trainer.patience == PretrainConfig().trainer.patience  # not in trainer/quick.yaml
    assert config.data == PretrainConfig().data
    assert _choices(config) == {"method": "mlm", "trainer": "quick"}

    train = load_config(TrainConfig, overrides=["encoder=lstm"])
    assert train.model.sequence_encoder.type == "lstm" and _choices(train) == {"encoder": "lstm"}
    rec = load_config(RecFinetuneConfig, overrides=["trainer=long"])
    assert (rec.trainer.max_epochs, rec.trainer.patience) == (100, 10)


def test_without_choices_a_config_is_its_dataclass_defaults():
    assert asdict(load_config(PretrainConfig)) == asdict(PretrainConfig())  # the default coles preset names the method
    assert _choices(load_config(PretrainConfig)) == {"method": "coles"}
    assert asdict(load_config(TrainConfig)) == asdict(TrainConfig()) and _choices(load_config(TrainConfig)) == {}


def test_every_method_has_a_preset_setting_it_and_every_shipped_option_loads():
    assert sorted(path.stem for path in (PACKAGE_CONFIG_DIR / "method").glob("*.yaml")) == sorted(METHODS)
    for method in METHODS:
        config = load_config(PretrainConfig, overrides=[f"method={method}"])
        assert config.method == method
        config.model.sequence_encoder.validate()
    for group in ("encoder", "data", "trainer"):
        options = sorted(path.stem for path in (PACKAGE_CONFIG_DIR / group).glob("*.yaml"))
        assert options
        for option in options:
            config = load_config(TrainConfig, overrides=[f"{group}={option}"])
            assert _choices(config) == {group: option}
            assert isinstance(config.model.sequence_encoder, SequenceEncoderConfig)
            config.model.sequence_encoder.validate()


# ------------------------------------------------------------------ order of composition


def test_precedence_defaults_then_groups_then_file_then_overrides(tmp_path):
    path = _write(tmp_path / "run.yaml", "defaults:\n  - trainer: long\ntrainer:\n  patience: 5\n"
                                         "  precision: bf16-mixed\n")
    config = load_config(PretrainConfig, path, ["trainer.precision=16-mixed"])
    assert config.trainer.accelerator == "cpu"  # dataclass default, touched by nothing
    assert config.trainer.max_epochs == 100  # trainer/long.yaml over the default 20
    assert config.trainer.patience == 5  # the file over trainer/long.yaml (10)
    assert config.trainer.precision == "16-mixed"  # the override over the file
    assert _choices(config) == {"method": "coles", "trainer": "long"}

    replaced = load_config(PretrainConfig, path, ["trainer=quick"])  # the command line replaces the file's choice
    assert (replaced.trainer.max_epochs, replaced.trainer.patience) == (1, 5)
    self_first = _write(tmp_path / "self_first.yaml",
                        "defaults:\n  - _self_\n  - trainer: long\ntrainer:\n  patience: 5\n")
    assert load_config(PretrainConfig, self_first).trainer.patience == 10  # an option after _self_ wins over the file


def test_an_explicit_encoder_wins_over_the_method_preset_unless_the_file_orders_otherwise(tmp_path):
    config = load_config(PretrainConfig, overrides=["encoder=gru", "method=mlm"])  # method is merged first
    assert config.method == "mlm" and config.model.sequence_encoder.type == "gru"
    ordered = _write(tmp_path / "ordered.yaml", "defaults:\n  - encoder: gru\n  - method: mlm\n")
    assert load_config(PretrainConfig, ordered).model.sequence_encoder.type == "transformer"


def test_a_method_key_in_a_file_chooses_the_preset(tmp_path):
    path = _write(tmp_path / "mlm.yaml", "method: mlm\nmodel:\n  sequence_encoder:\n    num_heads: 2\n")
    config = load_config(PretrainConfig, path)
    assert (config.method, config.model.sequence_encoder.type, config.model.sequence_encoder.num_heads) == (
        "mlm", "transformer", 2)
    assert _choices(config) == {"method": "mlm"}
    assert load_config(PretrainConfig, path, ["method=vicreg"]).method == "vicreg"  # the command line wins

    # a preset of one's own names the method it trains
    _write(tmp_path / "presets" / "method" / "coles_long.yaml", "method: coles\ncoles:\n  views:\n    max_len: 300\n")
    own = load_config(PretrainConfig, overrides=["method=coles_long"], config_dirs=[tmp_path / "presets"])
    assert (own.method, own.coles.views.max_len, _choices(own)) == ("coles", 300, {"method": "coles_long"})

    contradiction = _write(tmp_path / "both.yaml", "defaults:\n  - method: vicreg\nmethod: mlm\n")
    with pytest.raises(ConfigError, match="'method: mlm' contradicts its defaults list"):
        load_config(PretrainConfig, contradiction)


# ------------------------------------------------------------------ where options are found


def test_user_options_from_configs_and_config_dir_shadow_shipped_ones(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    my_events = _write(tmp_path / "configs" / "data" / "my_events.yaml", "# mine\npath: /data/mine\nmax_len: 100\n")
    _write(tmp_path / "configs" / "trainer" / "quick.yaml", "max_epochs: 2\n")  # replaces the shipped quick
    team = tmp_path / "team"
    wide = _write(team / "encoder" / "wide.yaml", "sequence_encoder:\n  hidden_size: 256\n")
    config = load_config(TrainConfig, overrides=["data=my_events", "trainer=quick", "encoder=wide"], config_dirs=[team])
    assert (config.data.path, config.data.max_len, config.data.batch_size) == ("/data/mine", 100, 64)
    assert (config.trainer.max_epochs, config.trainer.progress_bar) == (2, True)
    assert config.model.sequence_encoder.hidden_size == 256
    files = {choice.group: choice.path.resolve() for choice in group_choices(config)}
    assert files == {"encoder": wide.resolve(), "data": my_events.resolve(),
                     "trainer": (tmp_path / "configs" / "trainer" / "quick.yaml").resolve()}

    _write(team / "data" / "my_events.yaml", "path: /team/data\n")  # --config-dir comes before ./configs
    assert load_config(TrainConfig, overrides=["data=my_events"], config_dirs=[team]).data.path == "/team/data"


# ------------------------------------------------------------------ errors


def test_unknown_option_lists_the_shipped_and_the_users_options(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _write(tmp_path / "configs" / "data" / "my_events.yaml", "path: x\n")
    with pytest.raises(ConfigError) as error:
        load_config(TrainConfig, overrides=["data=my_event"])
    message = str(error.value)
    assert "data='my_event' (command line): no such option of config group 'data'" in message
    assert "did you mean 'my_events'" in message
    assert "demo, synthetic (eventseq)" in message and "my_events (configs)" in message
    with pytest.raises(ConfigError, match="available method options: barlow_twins, coles, cpc"):
        load_config(PretrainConfig, overrides=["method=simclr"])
    with pytest.raises(ConfigError, match=re.escape("encoder='../x'")):
        load_config(TrainConfig, overrides=["encoder=../x"])
    # a group of another command is an unknown key; a misspelt group is suggested
    with pytest.raises(ConfigError, match="unknown config key 'method'"):
        load_config(TrainConfig, overrides=["method=coles"])
    with pytest.raises(ConfigError, match="did you mean 'encoder'"):
        load_config(TrainConfig, overrides=["encoer=gru"])
    with pytest.raises(ConfigError, match="not a directory"):
        load_config(TrainConfig, config_dirs=[tmp_path / "missing"])


@pytest.mark.parametrize(
    "text, message",
    [
        ("defaults:\n  - encodr: gru\n", "names config group 'encodr' (did you mean 'encoder'?)"),
        ("defaults: gru\n", "'defaults' must be a list"),
        ("defaults:\n  - [encoder, gru]\n", "must be `group: option` or _self_"),
        ("defaults:\n  - encoder: gru\n  - encoder: lstm\n", "names config group 'encoder' twice"),
        ("defaults:\n  - trainer: 5\n", "defaults entry trainer: 5 must name an option"),
        ("data: my_events\n", "choose a data option in the defaults list"),
        ("- a\n- b\n", "must hold a mapping"),
    ],
)
def test_bad_defaults_lists_are_clear_errors(tmp_path, text, message):
    path = _write(tmp_path / "run.yaml", text)
    with pytest.raises(ConfigError, match=re.escape(message)) as error:
        load_config(TrainConfig, path)
    assert str(path) in str(error.value)


def test_bad_option_files_and_commands_without_groups(tmp_path):
    from eventseq.cli import GenerateJob

    _write(tmp_path / "encoder" / "typo.yaml", "sequence_encoder:\n  hiden_size: 3\n")
    with pytest.raises(ConfigError, match=re.escape("unknown config key 'model.sequence_encoder.hiden_size' in "
                                                    "encoder option 'typo'")) as error:
        load_config(TrainConfig, overrides=["encoder=typo"], config_dirs=[tmp_path])
    assert "did you mean 'model.sequence_encoder.hidden_size'" in str(error.value)
    _write(tmp_path / "encoder" / "nested.yaml", "defaults:\n  - trainer: quick\n")
    with pytest.raises(ConfigError, match="read only in the --config file"):
        load_config(TrainConfig, overrides=["encoder=nested"], config_dirs=[tmp_path])
    with pytest.raises(ConfigError, match="this command has no groups"):
        load_config(GenerateJob, _write(tmp_path / "g.yaml", "defaults:\n  - trainer: quick\n"))


# ------------------------------------------------------------------ --help


def test_help_lists_the_groups_and_their_options(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    _write(tmp_path / "configs" / "data" / "my_events.yaml", "# My own events\npath: x\n")
    _write(tmp_path / "team" / "encoder" / "wide.yaml", "# A wide GRU\nsequence_encoder:\n  hidden_size: 256\n")
    with pytest.raises(SystemExit):
        main(["pretrain", "--config-dir", str(tmp_path / "team"), "--help"])
    text = capsys.readouterr().out
    for group in ("method", "encoder", "data", "trainer"):
        assert f"  {group}=OPTION  " in text
    assert re.search(r"^ +mlm +MLM: masked events", text, re.M)
    assert re.search(r"^ +my_events +My own events \[configs\]$", text, re.M)
    assert re.search(rf"^ +wide +A wide GRU \[{re.escape(str(tmp_path / 'team'))}\]$", text, re.M)
    assert "--config-dir DIR" in text
    with pytest.raises(SystemExit):
        main(["rec", "finetune", "--help"])
    text = capsys.readouterr().out
    assert "  trainer=OPTION  " in text and "data=OPTION" not in text


# ------------------------------------------------------------------ what a run saves


def _json(value):
    return json.loads(json.dumps(value, default=str))


def test_pretrain_saves_the_config_that_ran(prepared_dir, tmp_path, monkeypatch):
    from eventseq.training import pretrain

    monkeypatch.chdir(tmp_path)
    _write(tmp_path / "configs" / "data" / "my_events.yaml", f"path: {prepared_dir}\nbatch_size: 32\n")
    config = load_config(PretrainConfig, overrides=[
        "method=vicreg", "encoder=gru", "data=my_events", "trainer=quick", f"output={tmp_path / 'run'}",
        "model.sequence_encoder.hidden_size=8", "vicreg.views.min_len=3", "vicreg.views.max_len=10"])
    result = pretrain(config)
    ran = asdict(config)
    text = (result.run_dir / "config.yaml").read_text()
    assert "# config groups: method=vicreg encoder=gru data=my_events trainer=quick" in text
    assert f"#   data=my_events from {(tmp_path / 'configs' / 'data' / 'my_events.yaml').resolve()}" in text
    assert asdict(load_config(PretrainConfig, result.run_dir / "config.yaml")) == ran  # re-running gives the same
    extra = json.loads((result.model_dir / "config.json").read_text())["extra"]
    assert extra["train_config"] == _json(ran)
    assert extra["config_groups"] == {"method": "vicreg", "encoder": "gru", "data": "my_events", "trainer": "quick"}


def test_train_from_the_command_line_saves_the_config_that_ran(prepared_dir, tmp_path):
    run, team = tmp_path / "run", tmp_path / "team"
    _write(team / "data" / "tiny.yaml", f"path: {prepared_dir}\nbatch_size: 32\n")
    arguments = ["encoder=transformer", "data=tiny", "trainer=quick", f"output={run}",
                 "model.sequence_encoder.hidden_size=8", "model.sequence_encoder.num_layers=1"]
    assert main(["train", "--config-dir", str(team), *arguments]) == 0
    ran = asdict(load_config(TrainConfig, overrides=arguments, config_dirs=[team]))
    assert ran["data"]["path"] == str(prepared_dir) and ran["model"]["sequence_encoder"]["type"] == "transformer"
    assert asdict(load_config(TrainConfig, run / "config.yaml")) == ran  # no --config-dir needed to re-run
    extra = json.loads((run / "model" / "config.json").read_text())["extra"]
    assert extra["train_config"] == _json(ran)
    assert extra["config_groups"] == {"encoder": "transformer", "data": "tiny", "trainer": "quick"}


# ----------------------------------------------------------------------------- declared ranges


def _config_classes() -> list[type]:
    """Every config dataclass a command reads, nested sections included."""
    import dataclasses

    from eventseq.cli import _commands
    from eventseq.rec.cli import COMMANDS as REC_COMMANDS

    found: list[type] = []

    def walk(schema: type) -> None:
        if schema in found:
            return
        found.append(schema)
        for item in dataclasses.fields(schema):
            default = item.default_factory() if item.default_factory is not dataclasses.MISSING else item.default
            if dataclasses.is_dataclass(default):
                walk(type(default))

    for schema, _, _ in [*_commands().values(), *REC_COMMANDS.values()]:
        walk(schema)
    return found


def test_every_numeric_option_declares_its_range():
    import dataclasses
    import typing

    from eventseq.config import RULES

    classes = _config_classes()
    undeclared = []
    for schema in classes:
        hints = typing.get_type_hints(schema)
        for item in dataclasses.fields(schema):
            if dataclasses.is_dataclass(item.default_factory() if item.default_factory is not dataclasses.MISSING
                                        else item.default):
                continue
            if re.search(r"\b(int|float)\b", str(hints[item.name])) and not item.metadata.get(RULES):
                undeclared.append(f"{schema.__name__}.{item.name}")
    assert len(classes) > 30
    assert undeclared == []


@pytest.mark.parametrize(
    "command, override, message",
    [
        ("train", "data.max_len=0", "data.max_len=0: expected a whole number >= 1"),
        ("pretrain", "data.max_len=-5", "data.max_len=-5: expected a whole number >= 1"),
        ("predict", "max_len=0", "max_len=0: expected a whole number >= 1"),
        ("embed", "batch_size=0", "batch_size=0: expected a whole number >= 1"),
        ("predict", "chunk_rows=0", "chunk_rows=0: expected a whole number >= 1"),
        ("train", "trainer.max_epochs=0", "trainer.max_epochs=0: expected a whole number >= 1"),
        ("train", "trainer.patience=-1", "trainer.patience=-1"),
        ("train", "model.sequence_encoder.dropout=2", "model.sequence_encoder.dropout=2.0: expected a number >= 0 and < 1"),
        ("train", "model.event_encoder.default_embedding_dim=0", "default_embedding_dim=0"),
        ("train", "trainer.gradient_clip_val=-1", "gradient_clip_val=-1.0"),
        ("train", "optimizer.lr=-0.1", "optimizer.lr=-0.1: expected a number > 0"),
        ("train", "seed=-1", "seed=-1: expected a whole number >= 0"),
        ("train", "data.num_workers=-2", "data.num_workers=-2"),
        ("demo", "max_epochs=0", "max_epochs=0"),
        ("demo", "coles_epochs=0", "coles_epochs=0"),
        ("prepare", "quantize={amount:100000}", "quantize.amount=100000: expected a whole number >= 2 and <= 1024"),
        ("prepare", "fill_value=nan", "fill_value=nan"),
        ("prepare", "min_frequency=0", "min_frequency=0"),
        ("train", "data.valid_fraction=1.5", "data.valid_fraction=1.5"),
        ("pretrain", "coles.temperature=0", "coles.temperature=0.0: expected a number > 0"),
    ],
)
def test_out_of_range_options_are_refused_naming_key_value_and_range(command, override, message, capsys):
    assert main([command, override]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.mark.parametrize(
    "command, override, message",
    [
        ("rec evaluate", "k=0", "k=0: expected a whole number >= 1"),
        ("rec evaluate", "k=-5", "k=-5"),
        ("rec score", "part=test", "part='test': expected one of ['train', 'valid']"),
        ("rec demo", "pretrain_epochs=0", "pretrain_epochs=0"),
    ],
)
def test_out_of_range_rec_options_are_refused(command, override, message, capsys):
    assert main([*command.split(), override]) == 2
    assert message in capsys.readouterr().err


def test_api_configs_are_checked_for_types_and_ranges_too(tmp_path):
    from eventseq.data import PrepareConfig, prepare
    from eventseq.training import TrainConfig, train

    config = TrainConfig(output=str(tmp_path / "run"))
    config.data.path = str(tmp_path)
    config.data.batch_size = "32"
    with pytest.raises(ConfigError, match=r"data.batch_size='32': expected a whole number, got str"):
        train(config)
    config.data.batch_size, config.data.max_len = 32, 0
    with pytest.raises(ConfigError, match=r"data.max_len=0: expected a whole number >= 1"):
        train(config)
    with pytest.raises(ConfigError, match=r"categorical='mcc': expected a list of strings, got str"):
        prepare(pl.DataFrame({"id": [1], "t": [1]}), PrepareConfig(id_column="id", time_column="t", categorical="mcc"))
    assert not (tmp_path / "run").exists()  # refused before anything was written


@pytest.mark.parametrize(
    "command, override, message",
    [
        ("train", "trainer.accelerator=gpu", "trainer.accelerator=gpu, but this machine has no CUDA GPU"),
        ("pretrain", "trainer.accelerator=tpu9", "trainer.accelerator='tpu9': expected one of"),
        ("train", "trainer.precision=13-bit", "trainer.precision='13-bit': expected one of"),
        ("train", "trainer.devices=0", "trainer.devices=0: expected a whole number >= 1"),
        ("train", "trainer.strategy=bogus", "trainer.strategy='bogus': expected one of"),
        ("predict", "device=cuda", "device=cuda, but this machine has no CUDA GPU"),
        ("embed", "device=gpu0", "device='gpu0': not a torch device"),
    ],
)
def test_devices_this_machine_lacks_are_refused_with_the_fix(command, override, message, capsys, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert main([command, override, *(["data.path=x"] if command in ("train", "pretrain") else ["data=x", "model=m"]),
                 f"output={tmp_path / 'out'}"]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_keyword_overrides_copy_the_config_and_name_the_closest_option():
    from eventseq.config import with_overrides
    from eventseq.data import PrepareConfig
    from eventseq.rec.data import prepare_rec

    given = PrepareConfig(categorical=["mcc"])
    changed = with_overrides(given, {"min_frequency": 3}, "prepare")
    assert (changed.min_frequency, given.min_frequency) == (3, 1)  # the caller's object is left as it was
    with pytest.raises(ConfigError, match="unknown prepare option 'validate'"):  # a method is not an option
        with_overrides(given, {"validate": None}, "prepare")
    with pytest.raises(ConfigError, match=r"unknown prepare option 'shard' \(did you mean 'shards'\?\)"):
        with_overrides(given, {"shard": 2}, "prepare", ("engine", "shards"))
    with pytest.raises(ConfigError, match="unknown rec prepare option 'user_col'.*user_column"):
        prepare_rec(pl.DataFrame({"user_id": [1]}), user_col="user")
