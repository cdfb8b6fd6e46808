"""`eventseq rec …` commands: generate, prepare, pretrain, finetune, evaluate, score, demo.

Each job is a dataclass read from YAML + key=value overrides by `eventseq.config.load_config`,
exactly like the other commands; the functions they call are the Python API in `eventseq.rec`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import polars as pl

from eventseq.config import option
from eventseq._io import atomic_path, check_output, read_parquet, write_parquet
from eventseq.errors import ConfigError
from eventseq.rec.data import RecPrepareConfig, prepare_rec
from eventseq.rec.runs import RecFinetuneConfig, RecPretrainConfig, evaluate_rec, finetune_rec, pretrain_rec, score_rec
from eventseq.tables import render_table

LOG_FILE = "log.parquet"
ORACLE_FILE = "oracle.parquet"


@dataclass
class RecGenerateJob:
    """Write the built-in synthetic interaction log (log.parquet) and its oracle scores (oracle.parquet).

    Attributes:
        output: directory to write into.
        n_users: users in the log.
        n_items: items in the catalog.
        n_days: days the log spans.
        seed: random seed.
    """

    output: str = "rec_synthetic"
    n_users: int = option(2000, ge=1)
    n_items: int = option(500, ge=2)
    n_days: int = option(120, ge=1)
    seed: int = option(0, ge=0, le=2**32 - 1)


@dataclass
class RecPrepareJob(RecPrepareConfig):
    """Interaction log → histories of positives + request groups, split by time.

    Attributes:
        input: the interaction log (Parquet/CSV) with the configured columns.
        output: directory for history/, groups.parquet and rec.json.
        progress_bar: show a progress bar over the log's rows (rate and ETA).
    """

    input: str = ""
    output: str = "rec_prepared"
    progress_bar: bool = True


@dataclass
class RecEvaluateJob:
    """NDCG@k, HR@k, MRR on the validation groups: random order, popularity, each model, the oracle.

    Attributes:
        data: directory written by `eventseq rec prepare`.
        models: name → fine-tuned model directory, e.g. models.full=runs/rec_full/model.
        oracle: optional Parquet with request_id, item_id, oracle_score (from `rec generate`).
        k: cut-off.
        output: report file: .csv for the table, anything else Markdown; empty = only print.
    """

    data: str = ""
    models: dict[str, str] = field(default_factory=dict)
    oracle: str | None = None
    k: int = option(10, ge=1)
    output: str | None = "rec_evaluation.md"


@dataclass
class RecScoreJob:
    """Rank the candidates of each request group with a fine-tuned model → Parquet.

    Attributes:
        model: fine-tuned model directory.
        data: directory written by `eventseq rec prepare` (groups to score).
        part: which groups: valid or train.
        output: Parquet with request_id, item_id, score, rank.
        items_output: optional Parquet with one vector per catalog item (for a retrieval index).
    """

    model: str = ""
    data: str = ""
    part: str = option("valid", choices=("train", "valid"))
    output: str = "rec_scores.parquet"
    items_output: str | None = None


@dataclass
class RecDemoJob:
    """The recommender end to end on synthetic data: generate → prepare → pretrain → fine-tune three ways → evaluate.

    Attributes:
        output: working directory.
        n_users: users in the synthetic log.
        n_items: items in its catalog.
        pretrain_epochs: pretraining budget.
        finetune_epochs: fine-tuning budget, the same for every initialisation.
        max_len: history window.
        seed: random seed.
        progress_bar: show progress bars.
    """

    output: str = "rec_demo_output"
    n_users: int = option(2000, ge=1)
    n_items: int = option(500, ge=2)
    pretrain_epochs: int = option(15, ge=1)
    finetune_epochs: int = option(4, ge=1)
    max_len: int = option(64, ge=1)
    seed: int = option(0, ge=0, le=2**32 - 1)
    progress_bar: bool = True


def run_generate(job: RecGenerateJob) -> None:
    from eventseq.datasets.interactions import make_interactions

    output = check_output(job.output, "directory")
    data = make_interactions(n_users=job.n_users, n_items=job.n_items, n_days=job.n_days, seed=job.seed)
    write_parquet(data.log.to_arrow(), output / LOG_FILE)
    write_parquet(data.oracle.to_arrow(), output / ORACLE_FILE)
    print(f"written: {output / LOG_FILE} ({data.log.height:,} interactions), {output / ORACLE_FILE}")


def run_prepare(job: RecPrepareJob) -> None:
    if not job.input:
        raise ConfigError("'input' is required (pass input=...)")
    config = RecPrepareConfig(**{k: getattr(job, k) for k in RecPrepareConfig.__dataclass_fields__})
    data = prepare_rec(job.input, config, output=job.output, progress=job.progress_bar)
    print(_describe(data.report))
    print(data.split.describe())
    print(f"written: {job.output}/")


def _describe(report: dict[str, Any]) -> str:
    return "\n".join(f"  {key}: {value}" for key, value in report.items())


def _training_command(run: Callable[[Any], Any]) -> Callable[[Any], None]:
    """A command that runs `run(config)` and prints its metrics and where the model went."""

    def command(config: Any) -> None:
        result = run(config)
        print("\n".join(f"  {k:<14} {v:.4f}" for k, v in sorted(result.metrics.items())))
        print(f"model: {result.model_dir}   curves: {result.run_dir / 'curves.png'}")

    return command


def _write_report(table: pl.DataFrame, output: str | None) -> None:
    print(format_table(table))
    if output:
        with atomic_path(output) as tmp:
            if str(output).endswith(".csv"):
                table.write_csv(tmp)
            else:
                tmp.write_text(format_table(table, markdown=True) + "\n")
        print(f"written: {output}")


def format_table(table: pl.DataFrame, markdown: bool = False) -> str:
    """Render a `rec evaluate` table: metrics with 4 decimals, seconds with 1."""
    rows = [[row[c] if isinstance(row[c], str) else f"{row[c]:.4f}" if c != "seconds" else f"{row[c]:.1f}"
             for c in table.columns] for row in table.iter_rows(named=True)]
    return render_table(table.columns, rows, markdown)


def run_evaluate(job: RecEvaluateJob) -> None:
    if not job.data:
        raise ConfigError("'data' is required (pass data=...)")
    if job.output:
        check_output(job.output, "file")
    oracle = pl.from_arrow(read_parquet(job.oracle)) if job.oracle else None
    _write_report(evaluate_rec(job.data, job.models, oracle=oracle, k=job.k), job.output)


def run_score(job: RecScoreJob) -> None:
    if not job.model or not job.data:
        raise ConfigError("'model' and 'data' are required (pass model=... data=...)")
    score_rec(job.model, job.data, job.output, part=job.part, items_output=job.items_output)


def run_demo(job: RecDemoJob) -> pl.DataFrame:
    """Generate, prepare, pretrain, fine-tune (scratch / backbone / full, equal budgets), evaluate."""
    from eventseq.datasets.interactions import make_interactions

    root = check_output(job.output, "directory")
    started = time.perf_counter()
    synthetic = make_interactions(n_users=job.n_users, n_items=job.n_items, seed=job.seed)
    data = prepare_rec(synthetic.log, output=root / "prepared", progress=job.progress_bar)
    print(f"[1/4] {synthetic.log.height:,} interactions → {data.report['groups']['train']:,} training and "
          f"{data.report['groups']['valid']:,} validation groups ({time.perf_counter() - started:.1f}s)")

    pretrain = RecPretrainConfig(data=str(root / "prepared"), output=str(root / "pretrain"), seed=job.seed)
    pretrain.model.max_len = job.max_len
    pretrain.trainer.max_epochs = job.pretrain_epochs
    pretrain.trainer.progress_bar = job.progress_bar
    pretrained = pretrain_rec(pretrain)
    print(f"[2/4] pretrained: validation next-positive HR@10 {pretrained.metrics['val_hr_at_10']:.3f} "
          f"({pretrained.seconds:.1f}s)")

    models, seconds = {}, {}
    for init in ("scratch", "backbone", "full"):
        finetune = RecFinetuneConfig(data=str(root / "prepared"), init_from=str(pretrained.model_dir), init=init,
                                     output=str(root / f"finetune_{init}"), seed=job.seed)
        finetune.model.max_len = job.max_len
        finetune.trainer.max_epochs = job.finetune_epochs
        finetune.trainer.patience = job.finetune_epochs
        finetune.trainer.progress_bar = job.progress_bar
        result = finetune_rec(finetune)
        name = f"{init} init" if init != "scratch" else "scratch"
        models[name], seconds[name] = result.module, result.seconds + (pretrained.seconds if init != "scratch" else 0)
    print("[3/4] fine-tuned from scratch, from the pretrained backbone, and fully initialised")

    table = evaluate_rec(data, models, oracle=synthetic.oracle, seconds=seconds)
    print("[4/4] validation groups (the last 30 days after a 2-day gap); seconds include pretraining\n")
    _write_report(table, str(root / "evaluation.md"))
    ndcg = dict(zip(table["method"], table["ndcg@10"]))
    best = max(v for k, v in ndcg.items() if k not in ("oracle", "random order", "popularity"))
    gap = (best - ndcg["random order"]) / (ndcg["oracle"] - ndcg["random order"])
    print(f"\nbest model closes {gap:.0%} of the gap between random order and the oracle")
    return table


COMMANDS: dict[str, tuple[type, Callable[[Any], Any], str]] = {
    "generate": (RecGenerateJob, run_generate, "write the synthetic interaction log + oracle scores"),
    "prepare": (RecPrepareJob, run_prepare, "interaction log → histories + request groups, time split"),
    "pretrain": (RecPretrainConfig, _training_command(pretrain_rec), "next-positive + feedback pretraining"),
    "finetune": (RecFinetuneConfig, _training_command(finetune_rec), "fine-tune a ranker on request groups"),
    "evaluate": (RecEvaluateJob, run_evaluate, "NDCG@10 / HR@10 / MRR table with baselines"),
    "score": (RecScoreJob, run_score, "rank candidates with a saved model → Parquet"),
    "demo": (RecDemoJob, run_demo, "the recommender end to end on synthetic data"),
}
