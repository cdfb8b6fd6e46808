"""Errors raised for bad user input. Every message names the column, row or file at fault."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class EventseqError(ValueError):
    """Base class: a problem with what the user gave us (data, config, files)."""


class ColumnError(EventseqError):
    """A declared column is missing or has the wrong type."""


class DataError(EventseqError):
    """Values in the data break a rule (nulls, NaN, empty input, one-class target...)."""


class ConfigError(EventseqError):
    """A config key or value is invalid."""


class FileFormatError(EventseqError):
    """A file is missing, corrupt, truncated or not what eventseq expects."""


class OutputError(EventseqError):
    """An output path cannot be written, or writing it would replace something that is not eventseq's."""


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """Return ' (did you mean 'x'?)' for the closest candidate, or '' if none is close."""
    matches = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean '{matches[0]}'?)" if matches else ""
