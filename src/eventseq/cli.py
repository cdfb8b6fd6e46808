"""The `eventseq` command line. Each command reads a YAML config (--config) plus key=value overrides;
train, pretrain and the rec training commands also take config group options (`encoder=transformer`).

Every command is a thin wrapper over the Python API (`eventseq.prepare`, `eventseq.train`,
`eventseq.predict`, `eventseq.embed`, `eventseq.demo.run_demo`), so notebooks and pipelines get
the same behaviour.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from eventseq.config import config_groups, config_search_path, describe, describe_groups, load_config, option
from eventseq.data.prepare_config import PrepareConfig
from eventseq.errors import ColumnError, ConfigError, EventseqError

if TYPE_CHECKING:
    from eventseq.training import PretrainConfig, TrainConfig

# command -> one line for `eventseq --help`, which lists them without importing any command's config
# (that would load Lightning and torch: seconds); `_commands()` imports them when one is run
SUMMARIES = {
    "prepare": "raw event log → sequence table + schema",
    "train": "train a supervised sequence model",
    "pretrain": "self-supervised pretraining (CoLES) of an encoder",
    "predict": "predictions per entity → Parquet",
    "embed": "embeddings per entity → Parquet",
    "evaluate": "cross-validate GBDT/logreg on embeddings and aggregates",
    "generate": "write the synthetic data set",
    "demo": "the whole pipeline on built-in data",
    "rec": "the sequential recommender / ranker (eventseq rec COMMAND --help)",
}


@dataclass
class PrepareJob(PrepareConfig):
    """Prepare a raw event log.

    Attributes:
        input: raw events: a Parquet file/directory or CSV (or ptls-format Parquet, see input_format).
        input_format: events (one row per event) or ptls (one row per entity with list columns,
            as pytorch-lifestream keeps prepared data; targets are its scalar columns).
        labels: optional per-entity labels (Parquet/CSV) with the id column and the target columns.
        output: directory to write data.parquet, schema.json and report.json into.
        sources: several event sources instead of `input`: source name -> file, e.g.
            `sources={card:card.parquet,app:app.parquet}` (merged by time, see source_column).
        engine: polars (in this process) or spark (a PySpark job: the same schema and table, written
            by the executors; needs `pip install 'eventseq[spark]'` and Java 17+; reuses an active
            SparkSession, else runs Spark locally).
        shards: write data.parquet as a directory of this many part files (part-00000.parquet, ...),
            each holding whole entities; null: one file with polars, one part per million events
            with spark. With polars the entities are split by a hash of their id and one shard at a
            time is read, encoded and written (`prepare_in_shards`): memory for one shard, not the log.
        progress: show progress (polars): the steps (read, fit, encode, write), or the shards.
    """

    input: str = ""
    input_format: str = option("events", choices=("events", "ptls"))
    labels: str | None = None
    output: str = "prepared"
    sources: dict[str, str] = field(default_factory=dict)
    engine: str = option("polars", choices=("polars", "spark"))
    shards: int | None = option(None, ge=1)
    progress: bool = True


@dataclass
class PredictJob:
    """Run a saved model over data.

    Attributes:
        model: saved model directory (e.g. runs/train/model).
        data: raw events (Parquet/CSV) or a prepare directory made with the model's schema.
        output: Parquet file to write (under torchrun: a directory of part-<rank>.parquet files).
        batch_size: entities per forward pass.
        chunk_rows: entities read and written per chunk (bounds memory).
        max_len: most recent events kept per entity (None = as in training).
        device: torch device (cpu, cuda).
        progress: show a progress bar.
        quantize: int8 dynamic quantization of the GRU/LSTM and linear layers (CPU only): faster,
            outputs nearly identical (check your downstream metric).
    """

    model: str = ""
    data: str = ""
    output: str = "predictions.parquet"
    batch_size: int = option(256, ge=1)
    chunk_rows: int = option(50_000, ge=1)
    max_len: int | None = option(None, ge=1)
    device: str = "cpu"
    progress: bool = True
    quantize: bool = False


@dataclass
class EmbedJob(PredictJob):
    """Write one embedding per entity (or one per event with level=event).

    Attributes:
        output: Parquet file to write (id + emb_* columns; with level=event also event_index, event_time).
        level: entity (one pooled vector per entity) or event (the encoder's state at every event,
            computed from that event and earlier ones only: needs a causal encoder, GRU/LSTM or
            cnn/transformer trained with causal=true).
        max_len: most recent events kept per entity (None = as in training; with level=event,
            None = every event, or max_positions for a transformer with learned positions).
        plot: also save a 2-D map of the embeddings to this PNG (None = no plot; level=entity only).
        plot_method: pca, tsne or umap (umap needs umap-learn).
        labels: labels table (Parquet/CSV) to colour the map by.
        target: label column in `labels`.
    """

    output: str = "embeddings.parquet"
    level: str = option("entity", choices=("entity", "event"))
    plot: str | None = None
    plot_method: str = option("pca", choices=("pca", "tsne", "umap"))
    labels: str | None = None
    target: str | None = None


@dataclass
class GenerateJob:
    """Write the built-in synthetic transactions as Parquet.

    Attributes:
        output: directory for events.parquet and labels.parquet.
        n_entities: number of clients.
        n_classes: label classes.
        seed: random seed.
    """

    output: str = "synthetic"
    n_entities: int = option(5000, ge=1)
    n_classes: int = option(2, ge=2)
    seed: int = option(0, ge=0, le=2**32 - 1)


def _require(value: str, key: str) -> None:
    if not value:
        raise ConfigError(f"'{key}' is required (pass {key}=...)")


def run_prepare(job: PrepareJob) -> None:
    from eventseq.data.prepare import prepare

    if job.sources and job.input:
        raise ConfigError("give either input= or sources=, not both")
    if not job.sources:
        _require(job.input, "input")
    config = PrepareConfig(**{k: getattr(job, k) for k in PrepareConfig.__dataclass_fields__})
    if job.input_format == "ptls":
        from eventseq.data.ptls_format import read_ptls_parquet

        if job.labels or job.sources:
            raise ConfigError("input_format=ptls reads one ptls file with its targets as scalar columns: "
                              "no labels= or sources=")
        if job.engine != "polars" or job.shards is not None:
            raise ConfigError("input_format=ptls is read with engine=polars into one file (no engine=, shards=)")
        report = read_ptls_parquet(job.input, config, output=job.output).report
    elif job.input_format != "events":
        raise ConfigError(f"input_format={job.input_format!r}: expected events or ptls")
    elif job.engine == "spark":  # written by the executors, never collected here
        from eventseq.data.spark import prepare_spark

        report = prepare_spark(job.input, config, labels=job.labels, output=job.output, shards=job.shards).report
    elif job.shards is not None:  # one hash shard of entities in memory at a time
        from eventseq.data.prepare import prepare_in_shards

        _, report = prepare_in_shards(dict(job.sources) or job.input, config, job.output, job.shards, labels=job.labels,
                                      progress=job.progress)
    else:
        report = prepare(dict(job.sources) or job.input, config, labels=job.labels, output=job.output,
                         engine=job.engine, progress=job.progress).report
    print(report.summary())
    print(f"written: {job.output}/")


def run_train(config: TrainConfig) -> None:
    from eventseq.training import train

    result = train(config)
    _print_result(result)


def run_pretrain(config: PretrainConfig) -> None:
    from eventseq.training import pretrain

    result = pretrain(config)
    _print_result(result)


def _print_result(result: Any) -> None:
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    if rank_zero_only.rank == 0:  # a multi-process (DDP) run: rank 0 evaluated and saved
        print(_format_metrics(result.metrics))
        print(f"model: {result.model_dir}   curves: {result.run_dir / 'curves.png'}")


def run_predict(job: PredictJob, mode: str = "predict") -> None:
    from eventseq import inference

    _require(job.model, "model")
    _require(job.data, "data")
    arguments = (job.model, job.data, job.output, job.batch_size, job.chunk_rows, job.progress, job.max_len,
                 job.device, job.quantize)
    if mode == "embed":
        level = getattr(job, "level", "entity")
        if level == "event" and getattr(job, "plot", None):
            raise ConfigError("plot= maps one point per entity: it needs level=entity, not level=event")
        if getattr(job, "plot", None):
            _check_plot_labels(job)  # before embedding: a bad labels= must not cost the whole run
        path = inference.embed(*arguments, level=level)
    else:
        path = inference.predict(*arguments)
    if path is not None:  # None: a torchrun rank left without input
        print(f"written: {path}")
    if mode == "embed" and getattr(job, "plot", None):
        _plot_embeddings(job)


def _check_plot_labels(job: EmbedJob) -> None:
    """The map's labels= and target=, checked before anything is computed or written."""
    from eventseq._io import check_output, read_labels
    from eventseq.errors import did_you_mean

    check_output(job.plot, "file", "plot")
    if job.target and not job.labels:
        raise ConfigError("target= colours the map by a column of labels=: pass labels=... too")
    if job.labels:
        labels = read_labels(job.labels)
        if job.target and job.target not in labels.columns:
            raise ColumnError(f"target '{job.target}' is not a column of labels={job.labels}"
                              f"{did_you_mean(job.target, labels.columns)}; columns: {labels.columns[:20]}")


def _plot_embeddings(job: EmbedJob) -> None:
    import polars as pl

    from eventseq.data.inputs import read_events
    from eventseq.plots import plot_embedding_map
    from eventseq.saved import load_model

    embeddings = pl.read_parquet(job.output)
    id_column = load_model(job.model).schema.id_column
    labels = read_events(job.labels).collect() if job.labels else None
    path = plot_embedding_map(embeddings, labels, id_column, job.plot, target=job.target, method=job.plot_method)
    print(f"embedding map: {path}")


def run_generate(job: GenerateJob) -> None:
    from pathlib import Path

    from eventseq._io import check_output, write_parquet
    from eventseq.datasets.synthetic import make_transactions

    check_output(job.output, "directory")
    data = make_transactions(job.n_entities, n_classes=job.n_classes, seed=job.seed)
    write_parquet(data.events.to_arrow(), Path(job.output) / "events.parquet")
    write_parquet(data.labels.to_arrow(), Path(job.output) / "labels.parquet")
    print(f"written: {job.output}/events.parquet ({data.events.height:,} events), {job.output}/labels.parquet")


def run_evaluate(job: Any) -> None:
    from eventseq.evaluation import evaluate

    evaluate(job)


def _format_metrics(metrics: dict[str, Any]) -> str:
    lines = []
    for name, value in sorted(metrics.items()):
        if isinstance(value, float):
            lines.append(f"  {name:<16} {value:.4f}")
        elif not isinstance(value, dict):  # auto_choice, auto_reason (auto_candidates: in metrics.json)
            lines.append(f"  {name:<16} {value}")
    return "\n".join(lines)


def _demo(job: Any) -> None:
    from eventseq.demo import run_demo

    run_demo(job)


def _commands() -> dict[str, tuple[type, Callable[[Any], None], str]]:
    from eventseq.demo import DemoJob
    from eventseq.evaluation import EvaluateConfig
    from eventseq.training import PretrainConfig, TrainConfig

    functions: dict[str, tuple[type, Callable[[Any], None]]] = {
        "prepare": (PrepareJob, run_prepare),
        "train": (TrainConfig, run_train),
        "pretrain": (PretrainConfig, run_pretrain),
        "predict": (PredictJob, run_predict),
        "embed": (EmbedJob, lambda job: run_predict(job, "embed")),
        "evaluate": (EvaluateConfig, run_evaluate),
        "generate": (GenerateJob, run_generate),
        "demo": (DemoJob, _demo),
    }
    return {name: (schema, function, SUMMARIES[name]) for name, (schema, function) in functions.items()}


def build_parser(config_dirs: Sequence[str] = (), commands: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The argument parser; `config_dirs` (from --config-dir) add their group options to --help.

    Every command is listed with its summary; only those in `commands` (None: all) get their options
    and --help text, which import their configs (and so Lightning and torch): `main` passes the one
    command on the line, so `eventseq --help` lists the commands without loading them.
    """
    search_path = config_search_path([directory for directory in config_dirs if Path(directory).is_dir()])
    parser = argparse.ArgumentParser(
        prog="eventseq",
        description="Deep learning on event sequences. Each command takes --config FILE.yaml and key=value overrides.",
        epilog=f"Errors are one line; --debug (anywhere on the line) or {DEBUG_ENV}=1 also prints the traceback.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    wanted = list(SUMMARIES) if commands is None else list(commands)
    full = _commands() if any(name != "rec" for name in wanted) else {}
    for name, summary in SUMMARIES.items():
        if name in full and name in wanted:
            _add_commands(sub, {name: full[name]}, search_path)
        elif name != "rec":
            sub.add_parser(name, help=summary)
    rec = sub.add_parser("rec", help=SUMMARIES["rec"],
                         description="The two-stage recommender: pretrain on positives, fine-tune on request groups.")
    if "rec" in wanted:
        from eventseq.rec.cli import COMMANDS as REC_COMMANDS

        _add_commands(rec.add_subparsers(dest="rec_command", metavar="COMMAND"), REC_COMMANDS, search_path)
    rec.set_defaults(print_rec_help=rec.print_help)
    return parser


def _add_commands(sub: Any, commands: dict[str, tuple[type, Callable[[Any], Any], str]],
                  search_path: list[Path]) -> None:
    for name, (schema, _, summary) in commands.items():
        command = sub.add_parser(
            name,
            help=summary,
            description=f"{summary}. Options (set in YAML or as key=value; nested keys with dots):",
            epilog="\n".join(describe(schema) + describe_groups(schema, search_path)),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        command.add_argument("--config", help="YAML file with options (overridden by key=value); it may start "
                                              "with a defaults list of config group options")
        if config_groups(schema):
            command.add_argument("--config-dir", action="append", default=[], metavar="DIR",
                                 help="also look for config group options in DIR/<group>/<option>.yaml "
                                      "(before ./configs and the shipped ones; repeatable)")
        command.add_argument("overrides", nargs="*", metavar="key=value", help="option overrides and group=option")


def main(argv: list[str] | None = None) -> int:
    # --config-dir first, so that --help lists its options (no abbreviations: --config is not --config-dir)
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get(DEBUG_ENV, "") not in ("", "0")
    argv = [argument for argument in argv if argument != "--debug"]
    early = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    early.add_argument("--config-dir", action="append", default=[])
    chosen = [next((argument for argument in argv if argument in SUMMARIES), None)]  # the command, if any
    parser = build_parser(early.parse_known_args(argv)[0].config_dir, [name for name in chosen if name])
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 1
    name = args.command
    if args.command == "rec":
        from eventseq.rec.cli import COMMANDS as REC_COMMANDS

        if not args.rec_command:
            args.print_rec_help()
            return 1
        schema, function, _ = REC_COMMANDS[args.rec_command]
        name = f"rec {args.rec_command}"
    else:
        schema, function, _ = _commands()[args.command]
    try:
        job = load_config(schema, args.config, args.overrides, getattr(args, "config_dir", []))
        function(job)
    except BaseException as error:  # the one error boundary: every failure leaves as one line and a code
        if isinstance(error, SystemExit):
            raise
        return _report_failure(name, error, debug)
    return 0


DEBUG_ENV = "EVENTSEQ_DEBUG"  # set (to anything but 0 or empty) to see the traceback of any failure


def _report_failure(command: str, error: BaseException, debug: bool) -> int:
    """Print one line for `error` (and the traceback with --debug); return the exit code.

    2: bad input, config or files (EventseqError, an OS error naming a file, data Polars/Arrow could
    not read); 130: interrupted; 1: anything else, which is a bug of eventseq's and says so.
    """
    import traceback

    import polars as pl
    import pyarrow as pa

    how_to_debug = f"rerun with --debug (or {DEBUG_ENV}=1) for the traceback"
    if isinstance(error, EventseqError):
        code, message = getattr(error, "exit_code", 2), str(error)
    elif isinstance(error, KeyboardInterrupt):
        code, message = 130, "interrupted"
    elif isinstance(error, MemoryError):
        code, message = 1, "out of memory: lower data.batch_size / batch_size or chunk_rows, or use data.streaming=true"
    elif isinstance(error, OSError) and error.filename is not None:
        code, message = 2, f"{error.strerror or error}: {error.filename}"
    elif isinstance(error, (pl.exceptions.PolarsError, pa.ArrowException)):
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        code, message = 2, (f"the data could not be processed ({type(error).__name__}: {first[:300]}); check the "
                            f"input's columns and types; if they look right, this is a bug: {how_to_debug}")
    else:
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        code, message = 1, (f"unexpected {type(error).__name__}{': ' + first[:300] if first else ''}. This is a bug "
                            f"in eventseq: {how_to_debug} and report it")
    if debug:
        traceback.print_exception(error, file=sys.stderr)
    print(f"eventseq {command}: error: {message}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
