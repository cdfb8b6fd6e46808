"""How long work shows progress: bars where they can be drawn, lines where they would flood a log.

A terminal or a notebook draws bars with rate and ETA (tqdm, Lightning's bar); anything else (a
file, a pipe, a scheduler's log) gets one line per epoch from training and a bar redrawn every
30 s from inference, so a log holds a few lines per run, not thousands of redrawn bars.
"""

from __future__ import annotations

import sys


def bars_drawn() -> bool:
    """Whether stderr can draw progress bars: a terminal, or a notebook kernel's stream."""
    return sys.stderr.isatty() or type(sys.stderr).__module__.startswith("ipykernel")
