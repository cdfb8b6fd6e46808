"""Scale: prepare and embed a large synthetic event log with bounded memory.

Usage:
    python benchmarks/scale.py [--events 50_000_000] [--shards 32] [--engines polars,spark]
                               [--workdir /tmp/eventseq_scale] [--output benchmarks/results/scale.md]

Steps, each run as its own process (`eventseq` CLI) so that its wall time and peak memory are its
own; memory is the peak resident set of the process and all its children (the Spark JVM included),
sampled every 0.2 s with psutil:

1. generate: `make_transactions` in chunks of 50,000 clients (ids offset per chunk), written as
   Parquet part files; about 40 events per client. Not timed as a result.
2. prepare with each engine: `eventseq prepare input=<dir> engine=<e> shards=<n>`: the Polars
   engine fits the schema with streaming aggregations and encodes one hash shard of clients at a
   time; Spark (local mode, all cores) does the same as one job. Both write `data.parquet/` as
   part files. The two outputs are checked to hold the same number of entities and events.
3. embed: a CoLES model (GRU 64, untrained: the cost of inference does not depend on the weights)
   over the Polars output with `eventseq embed`, streaming shards and chunks, written as Parquet.

Figures are machine-dependent; the table states the machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import polars as pl
import psutil

CHUNK_ENTITIES = 50_000
EVENTS_PER_ENTITY = 40  # about, with make_transactions' default lengths


def generate(directory: Path, events: int) -> int:
    """Write about `events` synthetic events as Parquet part files; returns the exact count."""
    from eventseq.datasets.synthetic import make_transactions

    directory.mkdir(parents=True, exist_ok=True)
    written, chunk = 0, 0
    while written < events:
        data = make_transactions(n_entities=CHUNK_ENTITIES, seed=chunk)
        frame = data.events.with_columns(pl.col("entity_id") + chunk * CHUNK_ENTITIES)
        frame.write_parquet(directory / f"part-{chunk:05d}.parquet")
        written += frame.height
        chunk += 1
        print(f"  generated {written:,} events", end="\r", flush=True)
    print()
    return written


def measure(command: list[str]) -> tuple[float, float]:
    """Run a command; returns (wall seconds, peak RSS in GiB of it and its children)."""
    start = time.perf_counter()
    process = subprocess.Popen(command)
    peak = 0
    watched = psutil.Process(process.pid)

    def sample() -> None:
        nonlocal peak
        while process.poll() is None:
            try:
                tree = [watched, *watched.children(recursive=True)]
                peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
            except psutil.Error:
                pass
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    code = process.wait()
    sampler.join()
    if code != 0:
        raise SystemExit(f"failed ({code}): {' '.join(command)}")
    return time.perf_counter() - start, peak / 2**30


def make_model(prepared: Path, model_dir: Path) -> None:
    from eventseq.data.store import SCHEMA_FILE
    from eventseq.data.schema import Schema
    from eventseq.nn.encoder import EncoderConfig
    from eventseq.objectives.selfsupervised import SelfSupervisedModule
    from eventseq.saved import save_model

    schema = Schema.from_json((prepared / SCHEMA_FILE).read_text())
    config = EncoderConfig()
    config.sequence_encoder.hidden_size = 64
    save_model(SelfSupervisedModule(schema, "coles", config), model_dir)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=lambda text: int(text.replace("_", "")), default=50_000_000)
    parser.add_argument("--shards", type=int, default=32)
    parser.add_argument("--engines", default="polars,spark")
    parser.add_argument("--workdir", default="/tmp/eventseq_scale")
    parser.add_argument("--output", default="benchmarks/results/scale.md")
    parser.add_argument("--keep", action="store_true", help="keep the generated and prepared data")
    parser.add_argument("--in-memory", action="store_true",
                        help="also prepare with Polars in one piece (no shards=), to compare the peak memory")
    parser.add_argument("--skip-embed", action="store_true")
    args = parser.parse_args()
    workdir = Path(args.workdir)
    raw = workdir / "raw"
    if raw.exists() and any(raw.glob("*.parquet")):
        events = pl.scan_parquet(raw).select(pl.len()).collect().item()
    else:
        events = generate(raw, args.events)
    print(f"{events:,} raw events in {raw}")
    eventseq = [sys.executable, "-m", "eventseq.cli"]
    columns = ["id_column=entity_id", "time_column=event_time", "categorical=[mcc,channel]", "numeric=[amount]",
               "numeric_transform={amount:log_standardize}"]
    rows = []
    outputs = {}
    for engine in args.engines.split(","):
        output = workdir / f"prepared_{engine}"
        shutil.rmtree(output, ignore_errors=True)
        seconds, memory = measure([*eventseq, "prepare", f"input={raw}", f"output={output}", f"engine={engine}",
                                   f"shards={args.shards}", *columns])
        outputs[engine] = output
        rows.append((f"prepare, {engine}", seconds, memory, events / seconds, "events/s"))
        print(rows[-1], flush=True)
    if args.in_memory:
        output = workdir / "prepared_in_memory"
        seconds, memory = measure([*eventseq, "prepare", f"input={raw}", f"output={output}", *columns])
        rows.append(("prepare, polars in one piece (no shards)", seconds, memory, events / seconds, "events/s"))
        print(rows[-1], flush=True)
        shutil.rmtree(output, ignore_errors=True)
    counts = {engine: pl.scan_parquet(path / "data.parquet").select(
        pl.len(), pl.col("event_time").list.len().sum()).collect().row(0) for engine, path in outputs.items()}
    if len(set(counts.values())) != 1:
        raise SystemExit(f"the engines disagree on (entities, events): {counts}")
    entities = next(iter(counts.values()))[0]
    first = next(iter(outputs.values()))
    if not args.skip_embed:
        model_dir = workdir / "model"
        make_model(first, model_dir)
        embeddings = workdir / "embeddings.parquet"
        seconds, memory = measure([*eventseq, "embed", f"model={model_dir}", f"data={first}",
                                   f"output={embeddings}", "batch_size=512", "progress=false"])
        rows.append(("embed (GRU 64), from the prepared shards", seconds, memory, entities / seconds, "entities/s"))
        print(rows[-1], flush=True)
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, " \
              f"{psutil.virtual_memory().total / 2**30:.0f} GiB RAM"
    flags = "".join(f" --{name}" for name in ("in-memory", "skip-embed") if getattr(args, name.replace("-", "_")))
    lines = [f"`python benchmarks/scale.py --events {args.events} --shards {args.shards} --engines {args.engines}{flags}` "
             f"— {events:,} events, {entities:,} clients; {machine}; load average {os.getloadavg()[0]:.1f} "
             "at the end (other jobs shared the machine)", "",
             "| step | wall time | peak memory (process tree) | rate |", "|---|---|---|---|"]
    for name, seconds, memory, rate, unit in rows:
        lines.append(f"| {name} | {seconds / 60:.1f} min | {memory:.2f} GiB | {rate:,.0f} {unit} |")
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(text)
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
