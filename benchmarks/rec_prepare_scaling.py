"""How `eventseq.rec.data.prepare_rec` scales with the size of the interaction log.

Generates synthetic logs of growing size (`eventseq.rec.synthetic.make_interactions`, ~330 rows per
user), times `prepare_rec` on each in this process, and prints rows, seconds, rows/s and the
seconds per million rows; linear scaling shows as a flat last column. Peak RSS is the process's
peak so far (generation included), so read it as an upper bound.

    python benchmarks/rec_prepare_scaling.py --users 5000,20000,40000
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import resource
import time
from pathlib import Path

from eventseq._io import atomic_path
from eventseq.rec.data import prepare_rec
from eventseq.rec.synthetic import make_interactions

RESULTS = Path(__file__).resolve().parent / "results" / "rec_prepare_scaling.md"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", default="5000,20000,40000", help="comma-separated log sizes in users")
    parser.add_argument("--items", type=int, default=2_000)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()

    lines = ["| users | log rows | prepare seconds | rows/s | seconds per 1M rows | peak RSS GiB |",
             "|---:|---:|---:|---:|---:|---:|"]
    for users in (int(value) for value in args.users.split(",")):
        log = make_interactions(n_users=users, n_items=args.items, seed=0).log
        gc.collect()
        start = time.perf_counter()
        data = prepare_rec(log)
        seconds = time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        groups = data.report["groups"]
        print(f"{users:,} users: {log.height:,} rows in {seconds:.1f}s, groups {groups}", flush=True)
        lines.append(f"| {users:,} | {log.height:,} | {seconds:.1f} | {log.height / seconds:,.0f} | "
                     f"{seconds / log.height * 1e6:.2f} | {peak:.1f} |")
        del log, data
    table = "\n".join(lines)
    print(f"\n{table}")
    with atomic_path(args.output) as tmp:
        tmp.write_text(f"# rec prepare scaling\n\n`python benchmarks/rec_prepare_scaling.py --users {args.users} "
                       f"--items {args.items}`, {dt.date.today().isoformat()}\n\n{table}\n")
    print(f"\nwritten to {args.output}")


if __name__ == "__main__":
    main()
