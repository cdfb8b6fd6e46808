from __future__ import annotations

import importlib.util
import math
import re

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal, assert_series_equal

from eventseq.cli import main
from eventseq.config import _all_keys
from eventseq.data.schema import CategoricalFeature, NumericFeature, Schema, Target
from eventseq.downstream import (
    AggregateFeatures,
    aggregate_features,
    compare_feature_sets,
    concat_features,
    cross_validation_folds,
    detect_task,
    evaluate,
    format_table,
)
from eventseq.errors import ColumnError, ConfigError, DataError

# Small models and one thread each: fast, and no OpenMP spin-waiting on a busy CI machine.
FAST = {
    "lightgbm": {"n_estimators": 30, "n_jobs": 1},
    "catboost": {"iterations": 50, "thread_count": 1},
}
FAST_CLI = [
    "model_params.lightgbm.n_estimators=30", "model_params.lightgbm.n_jobs=1",
    "model_params.catboost.iterations=50", "model_params.catboost.thread_count=1",
]


# ----------------------------------------------------------------------------- aggregate_features


def tiny_schema(amount: NumericFeature | None = None) -> Schema:
    return Schema(
        id_column="client",
        time_column="ts",
        time_kind="int",
        features=[CategoricalFeature("mcc", ["a", "b", "c"]), amount or NumericFeature("amount")],
        targets=[Target("churned", "binary", [0, 1])],
    )


def tiny_table() -> pl.DataFrame:
    # id frequencies over the table: 2 → 3, 3 → 3, 1 → 1, 4 → 1
    return pl.DataFrame(
        {
            "client": ["x", "y", "z"],
            "event_time": [[0, 10, 40], [100], [5, 7, 9, 11]],
            "mcc": [[2, 3, 2], [4], [2, 1, 3, 3]],
            "amount": [[1.0, 2.0, 6.0], [5.0], [-1.0, 1.0, -1.0, 1.0]],
            "churned": [0, 1, 1],
        },
        schema_overrides={"mcc": pl.List(pl.Int32), "amount": pl.List(pl.Float32)},
    )


def test_aggregate_features_hand_computed():
    result = aggregate_features(tiny_table(), tiny_schema(), max_categories=2)
    expected = pl.DataFrame(
        {
            "client": ["x", "y", "z"],
            "n_events": [3, 1, 4],
            "time_span_s": [40.0, 0.0, 6.0],
            "mean_gap_s": [20.0, None, 2.0],
            "mcc_nunique": [2, 1, 3],
            "mcc_count_2": [2, 0, 1],
            "mcc_frac_2": [2 / 3, 0.0, 0.25],
            "mcc_count_3": [1, 0, 2],
            "mcc_frac_3": [1 / 3, 0.0, 0.5],
            "amount_mean": [3.0, 5.0, 0.0],
            "amount_std": [math.sqrt(14 / 3), 0.0, 1.0],  # population std
            "amount_min": [1.0, 5.0, -1.0],
            "amount_max": [6.0, 5.0, 1.0],
            "amount_sum": [9.0, 5.0, 0.0],
        },
        schema_overrides={"mean_gap_s": pl.Float64},
    )
    assert_frame_equal(result, expected)


def test_category_cap_breaks_ties_by_smaller_id_and_none_means_all():
    assert AggregateFeatures(tiny_schema(), max_categories=3).fit(tiny_table()).categories_ == {"mcc": [1, 2, 3]}
    assert AggregateFeatures(tiny_schema(), max_categories=None).fit(tiny_table()).categories_ == {"mcc": [1, 2, 3, 4]}
    columns = aggregate_features(tiny_table(), tiny_schema(), max_categories=0).columns
    assert not [c for c in columns if "_count_" in c or "_frac_" in c]


def test_transform_keeps_the_fitted_columns_on_new_data():
    aggregates = AggregateFeatures(tiny_schema(), max_categories=2).fit(tiny_table())
    other = tiny_table().filter(pl.col("client") == "y")  # has none of the fitted ids 2, 3
    result = aggregates.transform(other)
    assert result.columns == aggregates.transform(tiny_table()).columns
    assert result.select("mcc_count_2", "mcc_frac_3").row(0) == (0, 0.0)


def test_numeric_aggregates_undo_the_prepare_transform():
    feature = NumericFeature("amount", transform="log_standardize", mean=0.5, std=2.0)
    raw = [[1.0, 2.0, 6.0], [5.0], [-1.0, 1.0, -1.0, 1.0]]
    encoded = [[(math.copysign(math.log1p(abs(v)), v) - 0.5) / 2.0 for v in row] for row in raw]
    table = tiny_table().with_columns(pl.Series("amount", encoded, dtype=pl.List(pl.Float32)))
    result = aggregate_features(table, tiny_schema(feature))
    np.testing.assert_allclose(result["amount_sum"].to_numpy(), [9.0, 5.0, 0.0], atol=1e-5)
    prepared_scale = aggregate_features(table, tiny_schema(feature), raw_numeric=False)
    np.testing.assert_allclose(prepared_scale["amount_max"].to_numpy(), [max(r) for r in encoded], atol=1e-6)


def test_aggregate_features_names_a_missing_column():
    with pytest.raises(ColumnError, match="'amount'"):
        aggregate_features(tiny_table().drop("amount"), tiny_schema())


def test_aggregates_of_a_prepared_directory(prepared_dir, synthetic):
    from eventseq.data import load_prepared

    prepared = load_prepared(prepared_dir)
    result = aggregate_features(prepared.table, prepared.schema)
    assert result.height == prepared.table.height
    assert "label" not in result.columns  # targets never become features
    raw = synthetic.events.group_by("entity_id").agg(pl.len().alias("n"), pl.col("amount").sum().alias("sum"))
    joined = result.join(raw, on="entity_id")
    assert (joined["n_events"] == joined["n"]).all()
    np.testing.assert_allclose(joined["amount_sum"].to_numpy(), joined["sum"].to_numpy(), rtol=1e-4)


# ----------------------------------------------------------------------------- evaluate


def clear_signal(n: int = 200, seed: int = 0) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Features where the label is `signal + small noise > 0`, plus two noise columns; ids are strings."""
    rng = np.random.default_rng(seed)
    signal = rng.normal(size=n)
    ids = [f"e{i:04d}" for i in range(n)]
    features = pl.DataFrame({"id": ids, "signal": signal, "noise_a": rng.normal(size=n),
                             "noise_b": rng.integers(0, 5, n)})
    label = (signal + 0.2 * rng.normal(size=n) > 0).astype(np.int64)
    labels = pl.DataFrame({"id": ids[::-1], "y": label[::-1]})
    return features, labels


def test_every_model_finds_a_clear_signal():
    features, labels = clear_signal()
    result = evaluate(features, labels, "id", "y", folds=3, model_params=FAST)
    assert result.columns == ["model", "metric", "mean", "std", "seconds"]
    assert result["model"].to_list() == ["logreg", "lightgbm", "catboost"]
    assert (result["metric"] == "auroc").all()
    assert (result["mean"] > 0.9).all(), result
    assert (result["std"] >= 0).all() and (result["seconds"] > 0).all()


def test_same_seed_same_result_other_seed_other_folds():
    features, labels = clear_signal()
    kwargs = dict(models=["logreg", "lightgbm"], folds=3, model_params=FAST)
    first = evaluate(features, labels, "id", "y", seed=1, **kwargs).drop("seconds")
    again = evaluate(features, labels, "id", "y", seed=1, **kwargs).drop("seconds")
    other = evaluate(features, labels, "id", "y", seed=2, **kwargs).drop("seconds")
    assert_frame_equal(first, again)
    assert first["mean"].to_list() != other["mean"].to_list()


def test_compare_feature_sets_uses_the_same_entities_and_folds():
    features, labels = clear_signal()
    # the same features shuffled, with extra entities that have no label: same rows, same folds
    extra = pl.DataFrame({"id": ["zz1", "zz2"], "signal": [0.0, 1.0], "noise_a": [0.0, 0.0], "noise_b": [1, 2]})
    shuffled = pl.concat([features.sample(fraction=1.0, shuffle=True, seed=5), extra])
    result = compare_feature_sets({"plain": features, "shuffled": shuffled}, labels, "id", "y",
                                  models=["logreg", "lightgbm"], folds=3, model_params=FAST)
    assert result.columns == ["features", "model", "metric", "mean", "std", "seconds"]
    plain, other = (result.filter(pl.col("features") == name).drop("features", "seconds")
                    for name in ("plain", "shuffled"))
    assert_frame_equal(plain, other)


def two_halves(n: int = 300, seed: int = 0) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Two feature tables that each carry half of a binary label's signal (same column names)."""
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=n), rng.normal(size=n)
    ids = [f"e{i:04d}" for i in range(n)]
    first = pl.DataFrame({"id": ids, "x": a, "noise": rng.normal(size=n)})
    second = pl.DataFrame({"id": ids, "x": b, "noise": rng.normal(size=n)})
    labels = pl.DataFrame({"id": ids, "y": (a + b + 0.3 * rng.normal(size=n) > 0).astype(np.int64)})
    return first, second, labels


def test_a_stacked_model_combines_what_each_feature_set_knows():
    first, second, labels = two_halves()
    result = compare_feature_sets({"first": first, "second": second}, labels, "id", "y", models=["logreg"],
                                  folds=3, stack=["first", "second"])
    score = dict(zip(result["features"], result["mean"]))
    assert list(score) == ["first", "second", "stacked: first | second"]
    # each half alone is ~0.75 AUROC; both (as a logistic regression over two logistic regressions) ~0.98
    assert score["stacked: first | second"] > max(score["first"], score["second"]) + 0.1
    assert score["stacked: first | second"] > 0.9


@pytest.mark.parametrize("task, target", [("regression", "z"), ("multiclass", "k")])
def test_stacking_fits_regression_and_multiclass_targets(task, target):
    first, second, labels = two_halves()
    labels = labels.with_columns(
        z=first["x"] + second["x"], k=(first["x"] > 0).cast(pl.Int64) + (second["x"] > 0).cast(pl.Int64))
    result = compare_feature_sets({"first": first, "second": second}, labels.select("id", target), "id", target,
                                  models=["logreg"], folds=3, task=task, stack=["first", "second"])
    first_score, second_score, stacked = result["mean"].to_list()
    if task == "regression":  # rmse: lower is better
        assert stacked < 0.5 * min(first_score, second_score)
    else:
        assert stacked > max(first_score, second_score) + 0.15


def test_stacking_errors_name_the_problem():
    first, second, labels = two_halves(60)
    with pytest.raises(ConfigError, match="'sceond', not a feature set.*did you mean 'second'"):
        compare_feature_sets({"first": first, "second": second}, labels, "id", "y", stack=["first", "sceond"])
    with pytest.raises(ConfigError, match="at least two different feature sets"):
        compare_feature_sets({"first": first, "second": second}, labels, "id", "y", stack=["first", "first"])
    with pytest.raises(ConfigError, match="stack_groups has 1 group"):
        evaluate(first, labels, "id", "y", models=["logreg"], stack_groups=[["x"]])
    with pytest.raises(ConfigError, match=r"stack_groups\[1\] is empty"):
        evaluate(first, labels, "id", "y", models=["logreg"], stack_groups=[["x"], []])
    with pytest.raises(ColumnError, match=r"stack_groups\[1\] names 'nosie'.*did you mean 'noise'"):
        evaluate(first, labels, "id", "y", models=["logreg"], stack_groups=[["x"], ["nosie"]])


def test_cross_validation_folds_are_the_stratified_folds_of_the_labelled_ids():
    _, labels = clear_signal()
    labels = pl.concat([labels, pl.DataFrame({"id": ["no_label"], "y": [None]}, schema=labels.schema)])
    folds = cross_validation_folds(labels, "id", "y", folds=4, seed=3)
    tests = np.concatenate([test for _, test in folds])
    labelled = labels.drop_nulls("y")
    assert sorted(tests.tolist()) == sorted(labelled["id"].to_list())  # a partition, unlabelled left out
    rate = labelled["y"].mean()
    for fit, test in folds:
        assert not set(fit) & set(test) and len(fit) + len(test) == labelled.height
        assert labelled.filter(pl.col("id").is_in(test.tolist()))["y"].mean() == pytest.approx(rate, abs=0.05)
    again = cross_validation_folds(labels.sample(fraction=1.0, shuffle=True, seed=1), "id", "y", folds=4, seed=3)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(folds, again))  # row order does not matter
    with pytest.raises(ConfigError, match="folds=1"):
        cross_validation_folds(labels, "id", "y", folds=1)


def test_concat_features_suffixes_clashing_names():
    features, _ = clear_signal(10)
    other = features.select("id", "signal", (pl.col("signal") * 2).alias("double")).tail(6)
    joined = concat_features(features, other, "id")
    assert joined.columns == ["id", "signal", "noise_a", "noise_b", "signal_b", "double"]
    assert joined["id"].to_list() == features["id"].tail(6).to_list()
    assert_series_equal(joined["signal_b"].alias("signal"), joined["signal"])


@pytest.mark.parametrize(
    "values, task",
    [([0, 1, 1, 0], "binary"), (["a", "b", "a"], "binary"), ([0, 1, 2, 2], "multiclass"),
     ([1.0, 2.0, 3.0], "multiclass"), ([0.5, 1.5, 2.25], "regression"), (list(range(50)), "regression")],
)
def test_detect_task(values, task):
    assert detect_task(pl.Series("y", values)) == task


def test_multiclass_and_regression_metrics():
    features, labels = clear_signal()
    signal = features.sort("id")["signal"]
    labels = features.select("id", ((signal > -0.5).cast(pl.Int64) + (signal > 0.5).cast(pl.Int64)).alias("k"),
                             (signal * 3).alias("value"))
    multiclass = evaluate(features, labels, "id", "k", models=["logreg"], folds=3)
    assert multiclass["metric"].to_list() == ["accuracy"] and multiclass["mean"][0] > 0.8
    regression = evaluate(features, labels, "id", "value", models=["logreg"], folds=3)
    assert regression["metric"].to_list() == ["rmse"] and regression["mean"][0] < 0.1


def test_missing_package_is_skipped_with_a_note(monkeypatch, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "catboost" else real(name, *a))
    features, labels = clear_signal()
    result = evaluate(features, labels, "id", "y", models=["logreg", "catboost"], folds=3)
    assert result["model"].to_list() == ["logreg"]
    assert "catboost is not installed" in capsys.readouterr().err


def test_bad_inputs_raise_clear_errors():
    features, labels = clear_signal()
    with pytest.raises(DataError, match="'id'"):
        evaluate(features, labels.with_columns((pl.lit("other") + pl.col("id")).alias("id")), "id", "y")
    with pytest.raises(DataError, match="one distinct value"):
        evaluate(features, labels.with_columns(pl.lit(1).alias("y")), "id", "y")
    with pytest.raises(ColumnError, match="no numeric column"):
        evaluate(features.select("id", pl.col("signal").cast(pl.String)), labels, "id", "y")
    with pytest.raises(ColumnError, match="'client'"):
        evaluate(features, labels, "client", "y")
    with pytest.raises(ColumnError, match="leak"):
        evaluate(features.join(labels, on="id"), labels, "id", "y")
    with pytest.raises(ConfigError, match="did you mean 'lightgbm'"):
        evaluate(features, labels, "id", "y", models=["lightgmb"])
    with pytest.raises(DataError, match="fewer than folds=5"):
        evaluate(features, labels.with_columns((pl.col("id") == "e0001").cast(pl.Int64).alias("y")), "id", "y")


def test_format_table_shows_mean_plus_minus_std():
    table = pl.DataFrame({"features": ["embeddings"], "model": ["logreg"], "metric": ["auroc"],
                          "mean": [0.91234], "std": [0.0123], "seconds": [1.26]})
    text = format_table(table)
    assert re.search(r"embeddings\s+logreg\s+auroc\s+0\.9123 ± 0\.0123\s+1\.3", text)
    assert "| embeddings | logreg | auroc | 0.9123 ± 0.0123 | 1.3 |" in format_table(table, markdown=True)


# ----------------------------------------------------------------------------- CLI


def test_cli_evaluate_embeddings_and_aggregates(trained, prepared_dir, tmp_path, capsys):
    from eventseq.inference import embed

    embeddings = embed(trained.module, prepared_dir, output=tmp_path / "embeddings.parquet", progress=False)
    report = tmp_path / "report.md"
    code = main(["evaluate", f"embeddings={embeddings}", f"data={prepared_dir}", "folds=2",
                 f"output={report}", *FAST_CLI])
    assert code == 0, capsys.readouterr().err
    text = report.read_text()
    for features in ("aggregates", "embeddings", "embeddings + aggregates", "stacked: embeddings | aggregates"):
        for model in ("logreg", "lightgbm", "catboost"):
            assert re.search(rf"\| {re.escape(features)} \| {model} \| auroc \| \d\.\d{{4}} ± \d\.\d{{4}} \|", text)
    assert "embeddings + aggregates" in capsys.readouterr().out


def test_cli_evaluate_from_a_model_equals_from_its_embeddings(trained, prepared_dir, tmp_path, capsys):
    from eventseq.inference import embed

    embeddings = embed(trained.module, prepared_dir, output=tmp_path / "embeddings.parquet", progress=False)
    arguments = [f"data={prepared_dir}", "folds=2", "aggregates=false", "models=[logreg]", "output="]
    assert main(["evaluate", f"embeddings={embeddings}", *arguments]) == 0
    from_file = capsys.readouterr().out
    assert main(["evaluate", f"model={trained.model_dir}", *arguments]) == 0
    from_model = capsys.readouterr().out
    assert re.findall(r"\d\.\d{4} ± \d\.\d{4}", from_file) == re.findall(r"\d\.\d{4} ± \d\.\d{4}", from_model)
    # both: the file is used once it has the model's width
    assert main(["evaluate", f"model={trained.model_dir}", f"embeddings={embeddings}", *arguments]) == 0
    assert re.findall(r"\d\.\d{4} ± \d\.\d{4}", capsys.readouterr().out) == re.findall(r"\d\.\d{4} ± \d\.\d{4}", from_file)


def test_cli_evaluate_rejects_embeddings_of_another_width(trained, prepared_dir, tmp_path, capsys):
    from eventseq.inference import embed

    width = trained.module.encoder.embedding_dim  # 24: pooling last+mean+max of hidden size 8
    embeddings = embed(trained.module, prepared_dir, progress=False).drop(f"emb_{width - 1:02d}")
    path = tmp_path / "narrow.parquet"
    embeddings.write_parquet(path)
    code = main(["evaluate", f"model={trained.model_dir}", f"embeddings={path}", f"data={prepared_dir}",
                 "aggregates=false", "models=[logreg]", "output="])
    assert code == 2
    error = capsys.readouterr().err
    assert f"has {width - 1} emb_* columns but model" in error and f"embeds into {width} dimensions" in error


def test_entities_without_a_label_are_reported_not_silently_dropped(capsys):
    features, labels = clear_signal()
    partial = labels.with_columns(pl.when(pl.col("id").is_in(["e0001", "e0002"])).then(None).otherwise(pl.col("y"))
                                  .alias("y"))
    evaluate(features, partial, "id", "y", models=["logreg"], folds=2)
    note = capsys.readouterr().err
    assert "2 of" in note and "have no 'y' label and are left out" in note and "e0001" in note


def test_cli_evaluate_with_a_labels_csv_writes_csv(prepared_dir, synthetic, tmp_path):
    labels = tmp_path / "labels.csv"
    synthetic.labels.write_csv(labels)
    report = tmp_path / "report.csv"
    code = main(["evaluate", f"data={prepared_dir}", f"labels={labels}", "target=value", "folds=2",
                 "models=[logreg]", f"output={report}"])
    assert code == 0
    table = pl.read_csv(report)
    assert table.select("features", "model", "metric").row(0) == ("aggregates", "logreg", "rmse")


@pytest.mark.parametrize(
    "arguments, message",
    [([], "needs embeddings=..."), (["data=/nonexistent/dir"], "not found"),
     (["embeddings=x.parquet", "aggregates=true"], "aggregates=true needs data")],
)
def test_cli_evaluate_errors(arguments, message, capsys):
    assert main(["evaluate", *arguments]) == 2
    assert message in capsys.readouterr().err


def test_cli_evaluate_help_lists_every_option(capsys):
    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    text = capsys.readouterr().out
    from eventseq.evaluation import EvaluateConfig

    for key in _all_keys(EvaluateConfig):
        assert re.search(rf"^  {key} \(.*\): \S", text, re.M), key


def test_docs_example_runs(trained, prepared_dir, tmp_path, monkeypatch, python_block):
    from eventseq.inference import embed

    code = python_block("downstream.md", "# Downstream evaluation")
    assert "folds=5," in code
    code = code.replace("folds=5,", "folds=2, models=['logreg'],")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "prepared").symlink_to(prepared_dir)
    embed(trained.module, "prepared", output="embeddings.parquet", progress=False)
    namespace: dict = {}
    exec(compile(code, "docs", "exec"), namespace)
    results = namespace["results"]
    assert results["features"].to_list() == ["aggregates", "embeddings", "embeddings + aggregates",
                                             "stacked: embeddings | aggregates"]


def test_nan_embeddings_and_nan_targets_are_refused():
    from eventseq.errors import DataError

    ids = list(range(20))
    embeddings = pl.DataFrame({"id": ids, "emb_0": [float(i) for i in ids], "emb_1": [1.0] * 19 + [float("nan")]})
    labels = pl.DataFrame({"id": ids, "y": [i % 2 for i in ids]})

    with pytest.raises(DataError, match=r"feature set 'embeddings' has NaN/inf embeddings for 1 entities \(first at row 19\)"):
        compare_feature_sets({"embeddings": embeddings}, labels, "id", "y", models=["logreg"], folds=2)
    finite = embeddings.with_columns(pl.col("emb_1").fill_nan(0.0))
    with pytest.raises(DataError, match=r"target 'y' has 1 NaN/inf values in the labels \(first: entity 3\)"):
        evaluate(finite, labels.with_columns(pl.when(pl.col("id") == 3).then(float("nan")).otherwise(pl.col("y"))
                                             .alias("y")), "id", "y", models=["logreg"], folds=2, task="regression")
