"""How `eventseq.rec.data.prepare_rec` scales with the size of the interaction log.

Generates synthetic logs of growing size (`eventseq.datasets.interactions.make_interactions`, ~330 rows per
user) into Parquet files in a temporary directory, then times `prepare_rec` on each in a fresh
process, twice: on the log already in memory as a Polars DataFrame, and on the Parquet path (as
`eventseq rec prepare` reads it: the read is included). Per million log rows it prints the wall
seconds, the user CPU seconds (all threads), the kernel seconds and the page faults (linear scaling
shows as flat columns), and each process's peak RSS.

It also measures how fast this machine hands out fresh memory (the first write to newly allocated
pages) against rewriting memory already touched: on a virtual machine the first can be slower by
an order of magnitude, and a larger log needs more fresh memory.

    python benchmarks/rec_prepare_scaling.py --users 20000,80000,155000
"""

from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from eventseq._io import atomic_path

RESULTS = Path(__file__).resolve().parent / "results" / "rec_prepare_scaling.md"


def _generate(users: int, items: int, path: Path) -> int:
    from eventseq.datasets.interactions import make_interactions

    log = make_interactions(n_users=users, n_items=items, seed=0).log
    log.write_parquet(path)
    return log.height


def _time_prepare(path: str, in_memory: bool) -> dict:
    """In a fresh process: wall, user CPU and kernel seconds of `prepare_rec`, its page faults, peak RSS."""
    import polars as pl

    from eventseq.rec.data import prepare_rec

    log = pl.read_parquet(path) if in_memory else path
    before = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    data = prepare_rec(log)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF)
    return {"seconds": seconds, "user": after.ru_utime - before.ru_utime, "sys": after.ru_stime - before.ru_stime,
            "faults": after.ru_minflt - before.ru_minflt, "peak": after.ru_maxrss / 2**20,
            "groups": data.report["groups"]}


def _first_touch_gb_per_s(gigabytes: float = 1.0) -> tuple[float, float]:
    """GB/s of the first write to fresh pages, and of rewriting them (one buffer of `gigabytes`)."""
    start = time.perf_counter()
    buffer = np.ones(int(gigabytes * 2**30 / 8))
    first = time.perf_counter() - start
    start = time.perf_counter()
    buffer[:] = 2.0
    again = time.perf_counter() - start
    return gigabytes / first, gigabytes / again


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", default="5000,20000,40000", help="comma-separated log sizes in users")
    parser.add_argument("--items", type=int, default=2_000)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()

    context = multiprocessing.get_context("spawn")
    lines = ["| users | log rows | input | wall s | wall s per 1M rows | user CPU s per 1M rows | "
             "kernel s per 1M rows | page faults per 1M rows | µs per fault | peak RSS GiB |",
             "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    with tempfile.TemporaryDirectory() as tmp, context.Pool(1, maxtasksperchild=1) as pool:
        for users in (int(value) for value in args.users.split(",")):
            path = Path(tmp) / f"log_{users}.parquet"
            rows = pool.apply(_generate, (users, args.items, path))
            for in_memory in (True, False):
                run = pool.apply(_time_prepare, (str(path), in_memory))
                source = "DataFrame" if in_memory else "Parquet path"
                per_million = 1e6 / rows
                print(f"{users:,} users, {source}: {rows:,} rows in {run['seconds']:.1f}s "
                      f"(user {run['user']:.1f}s, kernel {run['sys']:.1f}s), groups {run['groups']}", flush=True)
                lines.append(
                    f"| {users:,} | {rows:,} | {source} | {run['seconds']:.1f} | {run['seconds'] * per_million:.3f} | "
                    f"{run['user'] * per_million:.3f} | {run['sys'] * per_million:.3f} | "
                    f"{run['faults'] * per_million:,.0f} | {run['sys'] / max(run['faults'], 1) * 1e6:.1f} | "
                    f"{run['peak']:.1f} |")
            path.unlink()
    first, again = _first_touch_gb_per_s()
    memory = (f"Fresh memory on this machine: first write {first:.2f} GB/s, rewrite {again:.1f} GB/s "
              f"({again / first:.0f}x), 1 GB buffer.")
    table = "\n".join(lines)
    print(f"\n{table}\n\n{memory}")
    with atomic_path(args.output) as tmp_file:
        tmp_file.write_text(f"# rec prepare scaling\n\n`python benchmarks/rec_prepare_scaling.py --users {args.users} "
                            f"--items {args.items}`, {dt.date.today().isoformat()}. Each row is a fresh process.\n\n"
                            f"{table}\n\n{memory}\n")
    print(f"\nwritten to {args.output}")


if __name__ == "__main__":
    main()
