"""Prepare throughput: raw events → sequence table, eventseq vs the plain pandas notebook approach.

Usage: python benchmarks/prepare_speed.py [--events 10000000] [--skip-pandas]

Both sides do the same work on the same in-memory data: fit a vocabulary for two categoricals,
log-transform + standardize one numeric, sort events by (entity, time) and collect one list per
entity and feature. Prints events/s and the ratio in one table.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from eventseq.data import PrepareConfig, prepare
from eventseq.datasets.synthetic import SYNTHETIC_COLUMNS, make_transactions


def pandas_notebook_prepare(events: pd.DataFrame) -> pd.DataFrame:
    """What a hand-written notebook typically does: map dicts, sort, groupby(...).agg(list)."""
    frame = events.copy()
    for column in ["mcc", "channel"]:
        counts = frame[column].astype(str).value_counts()
        vocabulary = {value: index + 2 for index, value in enumerate(counts.index)}
        frame[column] = frame[column].astype(str).map(vocabulary).fillna(1).astype("int32")
    amount = np.sign(frame["amount"]) * np.log1p(frame["amount"].abs())
    frame["amount"] = ((amount - amount.mean()) / amount.std()).astype("float32")
    frame = frame.sort_values(["entity_id", "event_time"], kind="stable")
    return frame.groupby("entity_id", sort=True).agg(
        {"event_time": list, "mcc": list, "channel": list, "amount": list}
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000, help="approximate number of events")
    parser.add_argument("--skip-pandas", action="store_true", help="only time eventseq")
    args = parser.parse_args()

    entities = max(1, args.events // 50)  # lengths uniform in 20..80, mean 50
    start = time.perf_counter()
    data = make_transactions(entities, n_categories=12, min_length=20, max_length=80, seed=0)
    events = data.events.sample(fraction=1.0, shuffle=True, seed=0)  # real logs are not pre-sorted
    print(f"generated {events.height:,} events for {entities:,} entities in {time.perf_counter() - start:.1f}s")

    config = PrepareConfig(**{**SYNTHETIC_COLUMNS, "targets": {}})
    rows = []
    start = time.perf_counter()
    prepared = prepare(events, config)
    seconds = time.perf_counter() - start
    assert prepared.table.height == entities
    rows.append(("eventseq prepare (Polars)", seconds))

    if not args.skip_pandas:
        pandas_events = events.to_pandas()
        start = time.perf_counter()
        table = pandas_notebook_prepare(pandas_events)
        pandas_seconds = time.perf_counter() - start
        assert len(table) == entities
        rows.append(("pandas groupby(...).agg(list)", pandas_seconds))

    baseline = rows[-1][1]
    print(f"\n{'method':<32}{'seconds':>10}{'events/s':>16}{'speed-up':>10}")
    for name, elapsed in rows:
        print(f"{name:<32}{elapsed:>10.2f}{events.height / elapsed:>16,.0f}{baseline / elapsed:>9.1f}x")


if __name__ == "__main__":
    main()
