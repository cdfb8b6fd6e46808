"""Training-step cost of each shipped encoder option: why a fixed time budget favours some.

Usage:
    python benchmarks/encoder_speed.py [--lengths 100,200,500] [--batch 64] [--steps 5]
                                       [--output benchmarks/results/encoder_speed.md]

Each encoder is built from its option file (eventseq/configs/encoder/<name>.yaml, as `encoder=<name>`
gives it) over 40-wide event vectors, and one training step (forward, mean loss, backward, Adam)
is timed on a padded batch whose lengths are uniform between half and all of T. Times are the
median of `--steps` steps after two warm-up steps, in the same process, so the ratios to the GRU
are what to read; the absolute figures depend on the machine.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import time
from pathlib import Path

import torch

from eventseq._io import atomic_path
from eventseq.config import load_config
from eventseq.nn.sequence_encoder import SequenceEncoderConfig, build_sequence_encoder, pool
from eventseq.training import TrainConfig

RESULTS = Path(__file__).resolve().parent / "results" / "encoder_speed.md"
ENCODERS = ("gru", "lstm", "cnn", "transformer", "causal_transformer")
EVENT_DIM = 40


def encoder_config(name: str) -> SequenceEncoderConfig:
    """The sequence encoder `train encoder=<name>` builds."""
    return load_config(TrainConfig, overrides=[f"encoder={name}"]).model.sequence_encoder


def step_ms(config: SequenceEncoderConfig, batch: int, length: int, steps: int) -> float:
    torch.manual_seed(0)
    encoder = build_sequence_encoder(EVENT_DIM, config)
    optimizer = torch.optim.Adam(encoder.parameters())
    x = torch.randn(batch, length, EVENT_DIM)
    lengths = torch.randint(length // 2, length + 1, (batch,))
    lengths[0] = length
    times = []
    for step in range(steps + 2):
        start = time.perf_counter()
        optimizer.zero_grad()
        pool(encoder(x, lengths), lengths, config.pooling).mean().backward()
        optimizer.step()
        if step >= 2:
            times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main(argv: list[str] | None = None) -> list[str]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", default="100,200,500")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--output", default=str(RESULTS))
    args = parser.parse_args(argv)
    lengths = [int(value) for value in args.lengths.split(",")]
    lines = [
        "# Encoder training-step cost",
        "",
        f"`python benchmarks/encoder_speed.py --lengths {args.lengths} --batch {args.batch} --steps {args.steps}`, "
        f"{dt.date.today()}, torch {torch.__version__}, {torch.get_num_threads()} threads. "
        "One step = forward + backward + Adam over a padded batch; median ms, and the ratio to the GRU.",
        "",
        "| encoder | " + " | ".join(f"T={length}" for length in lengths) + " |",
        "|---|" + "---|" * len(lengths),
    ]
    measured = {name: [step_ms(encoder_config(name), args.batch, length, args.steps) for length in lengths]
                for name in ENCODERS}
    for name in ENCODERS:
        cells = [f"{ms:.0f} ms ({ms / gru:.1f}x)" for ms, gru in zip(measured[name], measured["gru"])]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    print(text)
    with atomic_path(args.output) as path:
        Path(path).write_text(text)
    return lines


if __name__ == "__main__":
    main()
