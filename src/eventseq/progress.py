"""How long work shows progress: bars where they can be drawn, lines where they would flood a log.

A terminal or a notebook draws bars with rate and ETA (tqdm, Lightning's bar); anything else (a
file, a pipe, a scheduler's log) gets one line per epoch from training and a bar redrawn every
30 s from inference, so a log holds a few lines per run, not thousands of redrawn bars.
"""

from __future__ import annotations

import sys
from typing import Any


def bars_drawn() -> bool:
    """Whether stderr can draw progress bars: a terminal, or a notebook kernel's stream."""
    return sys.stderr.isatty() or type(sys.stderr).__module__.startswith("ipykernel")


def progress_bar(description: str, enabled: bool, total: int | None = None, unit: str = " entities",
                 **options: Any) -> Any:
    """A tqdm bar with rate and ETA; without a terminal it redraws every 30 s, so that a log file gets a
    few lines, not thousands. `enabled=False` draws nothing; `options` go to tqdm (e.g. unit_scale)."""
    from tqdm.auto import tqdm

    return tqdm(desc=description, total=total, unit=unit, disable=not enabled,
                mininterval=0.1 if bars_drawn() else 30.0, **options)
