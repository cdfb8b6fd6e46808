"""The Python examples of the documentation (docs/*.md and README.md), for the tests that run them."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def page_path(page: str) -> Path:
    """docs/<page>, or the README for "README.md"."""
    return ROOT / page if page == "README.md" else DOCS / page


def python_blocks(page: str) -> list[tuple[str, str]]:
    """(heading, code) of every ```python block of `page`, under the nearest heading above it
    (headings inside code blocks do not count)."""
    blocks, heading, code, language = [], "", None, None
    for line in page_path(page).read_text().splitlines():
        if code is None and line.startswith("```"):
            language, code = line[3:].strip(), []
        elif code is not None and line.startswith("```"):
            if language == "python":
                blocks.append((heading, "\n".join(code) + "\n"))
            code = None
        elif code is not None:
            code.append(line)
        elif re.match(r"^#{1,4} ", line):
            heading = line
    return blocks


def python_block(page: str, heading: str) -> str:
    """The first Python example of `page` under `heading` (the heading line as written, e.g. "## Splits")."""
    for found, code in python_blocks(page):
        if found == heading:
            return code
    raise AssertionError(f"{page} has no ```python block under {heading!r}")
