"""Tests for eventseq.progress: where bars are drawn."""

from __future__ import annotations

import io
import sys

from eventseq.progress import bars_drawn


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_bars_are_drawn_in_a_terminal_and_a_notebook_but_not_in_a_file(monkeypatch):
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert not bars_drawn()
    monkeypatch.setattr(sys, "stderr", _Terminal())
    assert bars_drawn()
    notebook_stream = type("OutStream", (io.StringIO,), {"__module__": "ipykernel.iostream"})
    monkeypatch.setattr(sys, "stderr", notebook_stream())
    assert bars_drawn()
