"""Bad input through the CLI, as a new user meets it: a clear error naming the key, column or file, exit 2.

Each case here was once a silent wrong result, lost data or a raw traceback (issue 15). The API side of
each case is tested beside the module it concerns; this file checks the command a user runs.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from eventseq.cli import main

NOW = 1_700_000_000


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    """Exit code and stderr of `eventseq argv`; a traceback in stderr fails the test."""
    code = main(argv)
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    return code, err


def _events_file(path: Path, times: list[int]) -> Path:
    pl.DataFrame({"id": [i % 3 for i in range(len(times))], "t": times,
                  "x": [float(i) for i in range(len(times))]}).write_parquet(path)
    return path


def test_prepare_refuses_millisecond_times_and_takes_time_unit(tmp_path, capsys):
    events = _events_file(tmp_path / "events.parquet", [(NOW + i) * 1000 for i in range(6)])
    common = ["prepare", f"input={events}", "id_column=id", "time_column=t", "numeric=[x]"]

    code, err = run_cli([*common, f"output={tmp_path / 'a'}"], capsys)
    assert code == 2
    assert "eventseq prepare: error: time column 't'" in err and "time_unit=ms" in err
    assert not (tmp_path / "a").exists()

    code, _ = run_cli([*common, f"output={tmp_path / 'b'}", "time_unit=ms"], capsys)
    assert code == 0
    times = pl.read_parquet(tmp_path / "b" / "data.parquet")["event_time"].explode()
    assert times.min() == NOW and times.max() == NOW + 5


# ----------------------------------------------------------------------------- outputs are never destroyed


@pytest.mark.parametrize("command", ["predict", "embed"])
def test_output_that_is_a_directory_is_refused_before_any_work_and_kept(command, trained, prepared_dir, tmp_path,
                                                                        capsys):
    keep = tmp_path / "results"
    keep.mkdir()
    (keep / "thesis.tex").write_text("the user's")

    code, err = run_cli([command, f"model={trained.model_dir}", f"data={prepared_dir}", f"output={keep}",
                         "progress=false"], capsys)

    assert code == 2
    assert f"output={keep} is an existing directory" in err and "give a file path" in err
    assert (keep / "thesis.tex").read_text() == "the user's"


def test_output_below_a_file_is_refused_by_prepare_and_train(prepared_dir, tmp_path, capsys):
    (tmp_path / "file.txt").write_text("x")

    code, err = run_cli(["train", f"data.path={prepared_dir}", f"output={tmp_path / 'file.txt' / 'run'}"], capsys)
    assert code == 2 and "file.txt is a file, not a folder" in err
    code, err = run_cli(["prepare", f"input={prepared_dir}/data.parquet", f"output={tmp_path / 'file.txt'}"], capsys)
    assert code == 2 and "is an existing file, and output is a directory" in err


def test_prepare_never_replaces_a_directory_of_the_users(tmp_path, capsys):
    events = _events_file(tmp_path / "events.parquet", [NOW + i for i in range(6)])
    home = tmp_path / "home"
    home.mkdir()
    (home / "notes.md").write_text("the user's")

    code, err = run_cli(["prepare", f"input={events}", "id_column=id", "time_column=t", "numeric=[x]",
                         f"output={home}"], capsys)

    assert code == 2 and "holding ['notes.md'], which this output does not write" in err
    assert [p.name for p in home.iterdir()] == ["notes.md"]


def test_a_failed_re_prepare_leaves_the_old_directory_whole(tmp_path, monkeypatch):
    import importlib

    from eventseq.data import PrepareConfig, prepare

    store = importlib.import_module("eventseq.data.store")  # where the prepare directory is written

    events = pl.read_parquet(_events_file(tmp_path / "events.parquet", [NOW + i for i in range(6)]))
    config = PrepareConfig(id_column="id", time_column="t", categorical=["x"])
    output = tmp_path / "prepared"
    prepare(events, config, output=output)
    before = {p.name: p.read_bytes() for p in output.iterdir()}

    def killed(*args, **kwargs):  # dies after data.parquet of the new run is written
        raise KeyboardInterrupt

    monkeypatch.setattr(store, "write_json", killed)
    with pytest.raises(KeyboardInterrupt):
        prepare(events.with_columns(pl.col("x") + 100), config, output=output)

    assert {p.name: p.read_bytes() for p in output.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary left


def test_train_refuses_data_from_another_prepare_run_beside_the_schema(tmp_path, prepared_dir, capsys):
    import shutil

    from eventseq.data import PrepareConfig, prepare

    mixed = tmp_path / "mixed"
    shutil.copytree(prepared_dir, mixed)
    other = pl.read_parquet(_events_file(tmp_path / "events.parquet", [NOW + i for i in range(6)]))
    prepare(other, PrepareConfig(id_column="id", time_column="t", numeric=["x"]), output=tmp_path / "other")
    shutil.copyfile(tmp_path / "other" / "data.parquet", mixed / "data.parquet")

    code, err = run_cli(["train", f"data.path={mixed}", f"output={tmp_path / 'run'}"], capsys)

    assert code == 2
    assert "data.parquet was encoded with another schema than" in err and "schema.json" in err


# ----------------------------------------------------------------------------- a model of the wrong kind


@pytest.mark.parametrize("command, message", [
    ("predict", "eventseq predict needs a supervised model; {model} is a self-supervised (coles) model: use "
                "eventseq embed or evaluate"),
    ("rec score", "eventseq rec score needs a rec_ranker model; {model} is a self-supervised (coles) model"),
])
def test_a_model_of_the_wrong_kind_is_named_with_the_command_that_serves_it(command, message, pretrained,
                                                                          prepared_dir, tmp_path, capsys):
    model = pretrained.model_dir
    code, err = run_cli([*command.split(), f"model={model}", f"data={prepared_dir}",
                         f"output={tmp_path / 'out.parquet'}"], capsys)

    assert code == 2
    assert message.format(model=model) in err
    assert not (tmp_path / "out.parquet").exists()


def test_predict_with_a_supervised_model_names_rec_score_for_rec_models(trained):
    from eventseq.errors import ConfigError
    from eventseq.saved import require_family

    with pytest.raises(ConfigError, match=r"rec score needs a rec_ranker model; the model is a supervised model: "
                                          r"use eventseq predict, embed or evaluate"):
        require_family(trained.module, ("rec_ranker",), "eventseq rec score")
    require_family(trained.module, ("supervised", "self-supervised"), "eventseq embed")  # accepted


# ----------------------------------------------------------------------------- input files and config files


def _mixed_parts(directory: Path) -> Path:
    directory.mkdir()
    pl.DataFrame({"id": [1], "t": [NOW], "x": [1.0]}).write_parquet(directory / "part-0.parquet")
    pl.DataFrame({"id": [2], "t": [NOW], "x": ["a"]}).write_parquet(directory / "part-1.parquet")
    return directory


@pytest.mark.parametrize("make_input, message", [
    (lambda d: (d / "empty.csv").write_text("") and d / "empty.csv" or d / "empty.csv", "empty.csv is empty (0 bytes)"),
    (lambda d: (d / "nothing").mkdir() or d / "nothing", "nothing is a directory without .parquet files"),
    (lambda d: _mixed_parts(d / "mixed"), "part-1.parquet does not match the other parts of"),
])
def test_unreadable_event_inputs_are_named(make_input, message, tmp_path, capsys):
    source = make_input(tmp_path)

    code, err = run_cli(["prepare", f"input={source}", "id_column=id", "time_column=t", "numeric=[x]",
                         f"output={tmp_path / 'out'}"], capsys)

    assert code == 2 and message in err
    assert not (tmp_path / "out").exists()


def test_parquet_parts_with_a_readme_beside_them_are_read(tmp_path, capsys):
    parts = tmp_path / "parts"
    parts.mkdir()
    for number in range(2):
        pl.DataFrame({"id": [number], "t": [NOW + number], "x": [1.0]}).write_parquet(parts / f"part-{number}.parquet")
    (parts / "README.txt").write_text("exported on Monday")
    (parts / "_SUCCESS").write_text("")

    code, _ = run_cli(["prepare", f"input={parts}", "id_column=id", "time_column=t", "numeric=[x]",
                       f"output={tmp_path / 'out'}"], capsys)

    assert code == 0
    assert pl.read_parquet(tmp_path / "out" / "data.parquet")["id"].to_list() == [0, 1]


def test_a_section_given_a_value_in_yaml_names_the_key(tmp_path, capsys):
    (tmp_path / "run.yaml").write_text("trainer: 5\n")

    code, err = run_cli(["train", "--config", str(tmp_path / "run.yaml")], capsys)

    assert code == 2
    assert "config key 'trainer' in" in err and "is a section of options, not a value" in err
    assert "trainer.max_epochs=" in err


def test_no_validation_entities_is_refused_saying_why(capsys):
    code, err = run_cli(["train", "data.valid_fraction=0.0", "data.test_fraction=0.0", "data.path=x"], capsys)

    assert code == 2 and "data.valid_fraction=0.0: expected a number > 0 and < 1" in err


def test_predict_on_events_with_nan_names_the_schemas_policy_not_a_missing_option(trained, raw_dir, tmp_path,
                                                                                   capsys):
    events = pl.read_parquet(raw_dir / "events.parquet")
    events = events.with_columns(pl.when(pl.int_range(pl.len()) == 3).then(float("nan")).otherwise(pl.col("amount"))
                                 .alias("amount"))
    events.write_parquet(tmp_path / "events.parquet")

    code, err = run_cli(["predict", f"model={trained.model_dir}", f"data={tmp_path / 'events.parquet'}",
                         f"output={tmp_path / 'p.parquet'}", "progress=false"], capsys)

    assert code == 2
    assert "numeric column 'amount' has 1 NaN/inf/null values (first at row 3)" in err
    assert "the model's schema was prepared with invalid_numeric=error" in err
    assert "set invalid_numeric=" not in err


def test_rec_prepare_names_a_label_action_the_log_lacks(tmp_path, capsys):
    from eventseq.datasets.interactions import make_interactions

    make_interactions(n_users=30, n_items=40, n_days=60, seed=0).log.write_parquet(tmp_path / "log.parquet")

    code, err = run_cli(["rec", "prepare", f"input={tmp_path / 'log.parquet'}", "label_action=carts",
                         f"output={tmp_path / 'rec'}", "progress_bar=false"], capsys)

    assert code == 2
    assert "has no 'carts' rows, the label_action" in err and "(set label_action=...)" in err


# ----------------------------------------------------------------------------- the one error boundary


@pytest.mark.parametrize("raised, code, message", [
    (RuntimeError("boom"), 1, "eventseq generate: error: unexpected RuntimeError: boom. This is a bug in eventseq: "
                              "rerun with --debug (or EVENTSEQ_DEBUG=1) for the traceback and report it"),
    (KeyError("x"), 1, "unexpected KeyError: 'x'. This is a bug"),
    (PermissionError(13, "Permission denied", "/data/out"), 2, "eventseq generate: error: Permission denied: /data/out"),
    (KeyboardInterrupt(), 130, "eventseq generate: error: interrupted"),
])
def test_every_failure_leaves_as_one_line_and_a_code(raised, code, message, capsys, monkeypatch):
    import eventseq.cli as cli

    def failing(job):
        raise raised

    commands = cli._commands()
    monkeypatch.setattr(cli, "_commands", lambda: {**commands, "generate": (commands["generate"][0], failing, "")})

    exit_code, err = run_cli(["generate"], capsys)
    assert exit_code == code and message in err
    assert len(err.strip().splitlines()) == 1


def test_debug_shows_the_traceback(capsys, monkeypatch):
    import eventseq.cli as cli

    def failing(job):
        raise RuntimeError("boom")

    commands = cli._commands()
    monkeypatch.setattr(cli, "_commands", lambda: {**commands, "generate": (commands["generate"][0], failing, "")})

    assert main(["generate", "--debug"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and err.rstrip().endswith("and report it")
    monkeypatch.setenv("EVENTSEQ_DEBUG", "1")
    assert main(["generate"]) == 1
    assert "Traceback" in capsys.readouterr().err


@pytest.mark.parametrize("extra, message", [
    (["labels=missing.parquet"], "labels file not found: missing.parquet"),
    (["labels={labels}", "target=nope"], "target 'nope' is not a column of labels="),
    (["plot_method=tsnee"], "plot_method='tsnee': expected one of ['pca', 'tsne', 'umap']"),
])
def test_embed_refuses_bad_map_options_before_writing_anything(extra, message, trained, prepared_dir, raw_dir,
                                                               tmp_path, capsys):
    extra = [item.format(labels=raw_dir / "labels.parquet") for item in extra]
    code, err = run_cli(["embed", f"model={trained.model_dir}", f"data={prepared_dir}",
                         f"output={tmp_path / 'emb.parquet'}", f"plot={tmp_path / 'map.png'}", "progress=false",
                         *extra], capsys)

    assert code == 2 and message in err
    assert list(tmp_path.iterdir()) == []


def test_a_list_typed_categorical_is_named(tmp_path, capsys):
    pl.DataFrame({"id": [1, 1], "t": [NOW, NOW + 1], "mcc": [["a"], ["b", "c"]]}).write_parquet(tmp_path / "e.parquet")

    code, err = run_cli(["prepare", f"input={tmp_path / 'e.parquet'}", "id_column=id", "time_column=t",
                         "categorical=[mcc]", f"output={tmp_path / 'out'}"], capsys)

    assert code == 2 and "categorical column 'mcc' has dtype List(String): expected one value per event" in err


def test_evaluate_names_an_embeddings_file_without_embeddings(raw_dir, capsys):
    code, err = run_cli(["evaluate", f"embeddings={raw_dir / 'labels.parquet'}", f"labels={raw_dir / 'labels.parquet'}",
                         "target=label"], capsys)

    assert code == 2 and "has no emb_* columns" in err and "not a file `eventseq embed` wrote" in err


def test_a_class_id_outside_the_schema_is_named_not_left_to_scikit_learn(prepared_dir, tmp_path, capsys):
    import shutil

    edited = tmp_path / "edited"
    shutil.copytree(prepared_dir, edited)
    table = pl.read_parquet(edited / "data.parquet")
    table.with_columns(pl.when(pl.int_range(pl.len()) == 7).then(5).otherwise(pl.col("label")).alias("label")
                       .cast(table.schema["label"])).write_parquet(edited / "data.parquet")

    code, err = run_cli(["train", f"data.path={edited}", f"output={tmp_path / 'run'}"], capsys)

    assert code == 2 and "target 'label' holds 5 at row 7, outside the class ids 0..1" in err


@pytest.mark.parametrize("argv, message", [
    (["prepare", "targets=[label]"], "bad value for config key 'targets' in override 'targets=[label]': expected a "
                                     "mapping of strings to strings (e.g. targets={name: value})"),
    (["train", "trainer=gpu", "data.path=x"], "trainer.accelerator=gpu, but this machine has no CUDA GPU"),
    (["evaluate", "data={prepared}", "models=[logreg]", "model_params.logreg.bogus_param=1"],
     "model_params.logreg.bogus_param: logreg does not take it"),
])
def test_misread_options_are_named(argv, message, prepared_dir, capsys):
    import torch

    if "trainer=gpu" in argv and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    code, err = run_cli([item.format(prepared=prepared_dir) for item in argv], capsys)

    assert code == 2 and message in err
