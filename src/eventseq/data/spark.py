"""`prepare` as a PySpark job: the same schema and sequence table as the Polars engine, computed by Spark.

The statistics a schema needs (value counts, numeric moments, target values) are computed with Spark
and handed to `schema_from_statistics`, the function the Polars engine uses too, so vocabularies,
rare values, numeric defaults and target classes cannot differ between the engines. Encoding is
whole-column Spark expressions: a broadcast join per vocabulary, the numeric transform, the
invalid-numeric and null-time policies, then one `groupBy` per entity that sorts its events by
(time, input row), which is the Polars engine's stable sort by time.

The sequence table is written from the executors (`mapInArrow` + pyarrow) as
`data.parquet/part-00000.parquet`, ...: whole entities per part, parts in entity-id order, the
schema in each part's Parquet metadata, no `_SUCCESS` or checksum files, and the directory renamed
into place only once every part is written. The output must be a path that the driver and the
executors both see (local mode, or a shared mount).

PySpark is an optional dependency (`pip install 'eventseq[spark]'`, and Java 17+); it is imported
only when this engine runs.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import sys
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import polars as pl
import pyarrow as pa

from eventseq._io import PART_FILE, open_parquet
from eventseq.data.encode import FLOAT32_MAX, invalid_numeric_error
from eventseq.data.fit import FitStatistics, require_numeric, schema_from_statistics
from eventseq.data.inputs import ROW_COLUMN, check_columns
from eventseq.data.prepare_config import PrepareConfig, check_shards
from eventseq.data.store import (
    DATA_FILE,
    PreparedData,
    PrepareReport,
    check_prepare_output,
    prepared_directory,
    schema_metadata,
    write_schema_and_report,
)
from eventseq.data.inputs import from_pandas
from eventseq.data.schema import FIRST_VALUE_ID, TIME_COLUMN, UNKNOWN_ID, Schema, Target
from eventseq.data.times import MAX_EPOCH_SECONDS, TIME_UNITS, implausible_time_error, time_kind_of
from eventseq.errors import ColumnError, ConfigError, DataError, EventseqError, FileFormatError

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

EVENTS_PER_PART = 1_000_000  # with shards=None, one part file per this many events (tens of MB)
_EVENTS = "__eventseq_events__"


@dataclass
class SparkPrepared:
    """What `prepare_spark` returns: the sequence table as a Spark DataFrame, its schema and report.

    Attributes:
        table: one row per entity, partitioned by entity-id range and sorted by id inside each
            partition. Without `output`, Spark keeps it cached until `to_prepared` or
            `unpersist`; after writing `output` it is released (using it recomputes it).
        schema: the fitted schema, as the Polars engine fits it.
        report: rows in, events and entities out, drops with reasons.
    """

    table: DataFrame
    schema: Schema
    report: PrepareReport
    _cached: list[DataFrame] = field(default_factory=list, repr=False)

    def to_prepared(self) -> PreparedData:
        """Collect the table into this process as PreparedData (a Polars table, sorted by id).

        It must fit in this process's memory; then what Spark cached is released.
        """
        table = pl.from_arrow(_to_arrow(self.table))
        assert isinstance(table, pl.DataFrame)
        self.unpersist()
        if not table.get_column(self.schema.id_column).is_sorted():
            table = table.sort(self.schema.id_column, maintain_order=True)
        return PreparedData(table=table, schema=self.schema, report=self.report)

    def unpersist(self) -> None:
        """Release what Spark cached for this preparation (the input rows and the table)."""
        for frame in self._cached:
            frame.unpersist()
        self._cached.clear()


# ----------------------------------------------------------------------------- session and input


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    # PySpark warns on every pandas-related call under pandas 3; eventseq moves data through Arrow.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas")
        yield


def local_memory() -> str:
    """The heap of a local Spark session: $EVENTSEQ_SPARK_MEMORY (e.g. "6g"), else half the RAM, 1g to 8g."""
    if os.environ.get("EVENTSEQ_SPARK_MEMORY"):
        return os.environ["EVENTSEQ_SPARK_MEMORY"]
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return "2g"
    return f"{min(8, max(1, total // 2**31))}g"


def spark_session() -> SparkSession:
    """The active SparkSession (a cluster user's own), or else a local one created for eventseq.

    The local session runs on every core with the web UI off, 64 shuffle partitions (adaptive
    execution merges small ones), UTC as the session time zone, this Python for the workers and a
    heap of `local_memory()`. For another master or other settings, create your own session before
    calling eventseq: it is reused as is.

    Raises:
        ConfigError: PySpark is not installed, or Java is missing or Spark cannot start.
    """
    with _quiet():
        try:
            from pyspark.sql import SparkSession
        except ImportError:
            raise ConfigError("engine=spark needs PySpark: pip install 'eventseq[spark]' (and Java 17+)") from None
        active = SparkSession.getActiveSession()
        if active is not None:
            return active
        if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
            raise ConfigError("engine=spark needs Java 17 or newer: no `java` on PATH and JAVA_HOME is not set")
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # workers need this Python's pyarrow
        try:
            session = (
                SparkSession.builder.master("local[*]")
                .appName("eventseq-prepare")
                .config("spark.ui.enabled", "false")
                .config("spark.ui.showConsoleProgress", "false")
                # local mode runs the executors inside the driver's JVM: its heap is all Spark has
                .config("spark.driver.memory", local_memory())
                # enough partitions that one task's group of entities fits; adaptive execution merges
                # them back when the data is small
                .config("spark.sql.shuffle.partitions", "64")
                .config("spark.sql.adaptive.enabled", "true")
                .config("spark.sql.session.timeZone", "UTC")
                .config("spark.sql.execution.arrow.pyspark.enabled", "true")
                .getOrCreate()
            )
        except Exception as error:  # the JVM failed to start: report it as a configuration problem
            raise ConfigError(f"cannot start a local Spark session (engine=spark needs Java 17+): {error}") from None
        session.sparkContext.setLogLevel("ERROR")
        return session


def _is_spark_frame(value: Any) -> bool:
    return type(value).__module__.startswith("pyspark.sql") and hasattr(value, "schema") and hasattr(value, "rdd")


def _spark_frame(spark: SparkSession, source: Any, columns: list[str], what: str) -> tuple[DataFrame, pl.Schema]:
    """Any input `prepare` accepts (or a Spark DataFrame) as a Spark DataFrame, in input row order.

    Returns:
        The Spark DataFrame (for pandas/Polars input only the `columns` it has, converted through
        Arrow), and the input's full schema in Polars dtypes, for the checks shared with Polars.
    """
    if _is_spark_frame(source):
        return source, _polars_schema(source)
    if isinstance(source, (str, os.PathLike)):
        text = os.fspath(source)
        if "://" not in text:  # a local path: fail early, naming it
            path = Path(text)
            if not path.exists():
                raise FileFormatError(f"{what} file not found: {path}")
            if path.is_file() and path.suffix != ".csv":
                open_parquet(path)
            text = str(path.resolve())  # the JVM resolves relative paths from its own start directory
        if text.endswith(".csv"):
            frame = _read_csv(spark, text)
        else:
            frame = spark.read.parquet(text)
        return frame, _polars_schema(frame)
    if isinstance(source, pd.DataFrame):
        source = from_pandas(source)
    if isinstance(source, pl.LazyFrame):
        full_schema = source.collect_schema()
        return _from_polars(spark, source.select([c for c in columns if c in full_schema]).collect()), full_schema
    if isinstance(source, pl.DataFrame):
        return _from_polars(spark, source.select([c for c in columns if c in source.columns])), source.schema
    raise DataError(
        f"{what} must be a pandas/Polars/PySpark DataFrame, a Polars LazyFrame or a Parquet/CSV path, "
        f"got {type(source).__name__}"
    )


def _read_csv(spark: SparkSession, path: str) -> DataFrame:
    """A CSV file with inferred types close to Polars': int64 integers, 'inf'/'-inf' as numbers."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import IntegerType

    frame = spark.read.options(header=True, inferSchema=True, positiveInf="inf", negativeInf="-inf").csv(path)
    return frame.select([F.col(f"`{f.name}`").cast("long").alias(f.name) if isinstance(f.dataType, IntegerType)
                         else F.col(f"`{f.name}`") for f in frame.schema.fields])


def _from_polars(spark: SparkSession, frame: pl.DataFrame) -> DataFrame:
    casts = []
    for name, dtype in frame.schema.items():
        if isinstance(dtype, (pl.Categorical, pl.Enum)):
            casts.append(pl.col(name).cast(pl.String))
        elif isinstance(dtype, pl.Datetime):
            # the Polars engine reads naive datetimes as UTC; Spark would read them in the session zone
            zoned = pl.col(name) if dtype.time_zone else pl.col(name).dt.replace_time_zone("UTC")
            casts.append(zoned.dt.convert_time_zone("UTC").cast(pl.Datetime("us", "UTC")))
    arrow = frame.with_columns(casts).to_arrow(compat_level=pl.CompatLevel.oldest())
    return _arrow_to_spark(spark, arrow)


def _arrow_to_spark(spark: SparkSession, table: pa.Table) -> DataFrame:
    try:
        return spark.createDataFrame(table)  # PySpark >= 4.0 takes Arrow directly
    except TypeError:
        return spark.createDataFrame(table.to_pandas())


def _to_arrow(frame: DataFrame) -> pa.Table:
    if hasattr(frame, "toArrow"):  # PySpark >= 4.0
        return frame.toArrow()
    return pa.Table.from_batches(frame._collect_as_arrow())


def _polars_schema(frame: DataFrame) -> pl.Schema:
    """The Spark frame's columns with the Polars dtypes they arrive as (for the shared checks)."""
    from pyspark.sql.pandas.types import to_arrow_type

    def arrow_type(spark_type: Any) -> pa.DataType:
        try:
            return to_arrow_type(spark_type, timezone="UTC")  # PySpark >= 4.0 asks for the zone
        except TypeError:
            return to_arrow_type(spark_type)

    dtypes: dict[str, pl.DataType] = {}
    for spark_field in frame.schema.fields:
        try:
            dtypes[spark_field.name] = pl.from_arrow(pa.array([], type=arrow_type(spark_field.dataType))).dtype
        except Exception:  # a Spark type without an Arrow equivalent: no check accepts it
            dtypes[spark_field.name] = pl.Object()
    return pl.Schema(dtypes)


# ----------------------------------------------------------------------------- expressions


def _time_seconds(column: str, spark_type: Any, time_unit: str = "s") -> Column:
    """The time column as int64 epoch seconds, floored, naive datetimes read as UTC and integers in
    `time_unit` (as Polars does, data/times.py)."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import DateType, TimestampNTZType, TimestampType

    values = F.col(column)
    if isinstance(spark_type, DateType):
        return F.unix_date(values).cast("long") * 86400
    if isinstance(spark_type, TimestampNTZType):  # wall-clock time: count it from its own fields
        return (F.unix_date(F.to_date(values)).cast("long") * 86400
                + F.hour(values) * 3600 + F.minute(values) * 60 + F.second(values))
    if isinstance(spark_type, TimestampType):
        return values.cast("long")  # an instant; the cast floors to seconds
    factor = TIME_UNITS[time_unit]
    values = values.cast("long")
    if factor == 1:
        return values
    return F.expr(f"(`{column}` - pmod(`{column}`, {factor})) div {factor}")  # exact floor division


def _numeric_transform(column: str, transform: str, mean: float, std: float) -> Column:
    """The Spark twin of fit.numeric_transform (the engine tests hold them equal)."""
    from pyspark.sql import functions as F

    values = F.col(column).cast("double")
    if transform in ("log", "log_standardize"):
        values = F.signum(values) * F.log1p(F.abs(values))
    if transform in ("standardize", "log_standardize"):
        values = (values - F.lit(mean)) / F.lit(std)
    return values


def _finite(values: Column) -> Column:
    from pyspark.sql import functions as F

    return values.isNotNull() & ~F.isnan(values) & (F.abs(values) != F.lit(math.inf))


def _count(condition: Column) -> Column:
    from pyspark.sql import functions as F

    return F.coalesce(F.sum(condition.cast("long")), F.lit(0))


def _encoded_target(target: Target) -> Column:
    """The Spark twin of encode._encode_target: classes → 0..k-1 (others null), regression → float."""
    from pyspark.sql import functions as F

    values = F.col(target.name)
    if target.task == "regression":
        return values.cast("float").alias(target.name)
    assert target.classes is not None
    encoded = F.when(values == F.lit(target.classes[0]), F.lit(0))
    for index, value in enumerate(target.classes[1:], start=1):
        encoded = encoded.when(values == F.lit(value), F.lit(index))
    return encoded.cast("int").alias(target.name)


def _row_number(base: DataFrame, frame: DataFrame, condition: Column) -> int:
    """Input position (0-based) of the first row of `frame` matching `condition`, as the Polars engine
    names rows: the number of input rows (`base`) before it."""
    from pyspark.sql import functions as F

    first = frame.where(condition).agg(F.min(ROW_COLUMN)).first()[0]
    return int(base.where(F.col(ROW_COLUMN) < F.lit(first)).count())


# ----------------------------------------------------------------------------- the job


def prepare_spark(
    events: Any,
    config: PrepareConfig | None = None,
    labels: Any = None,
    output: str | os.PathLike | None = None,
    shards: int | None = None,
    spark: SparkSession | None = None,
) -> SparkPrepared:
    """Fit the schema and encode the sequence table with Spark, as `prepare` does with Polars.

    Args:
        events: raw events: a PySpark DataFrame, a pandas/Polars DataFrame, a Polars LazyFrame, or
            a Parquet/CSV path (local, or a URI Spark can read). Ties in time keep the order Spark
            reads the rows in: the input order for a DataFrame or a single file.
        config: the column declaration and policies (the same PrepareConfig as the Polars engine).
        labels: optional per-entity labels (id column + target columns), any of the same kinds.
        output: if given, a directory to write data.parquet/ (part files), schema.json and
            report.json into, from the executors, without collecting the table here.
        shards: number of part files (fewer if there are fewer entities); None: one per
            EVENTS_PER_PART events.
        spark: the session to use; default: the active one, else a local one (`spark_session`).

    Returns:
        SparkPrepared: the table as a Spark DataFrame, the schema and the report.

    Raises:
        ColumnError, DataError, ConfigError, FileFormatError: the same errors as the Polars engine
            for the same bad input, naming the column, row or file.
    """
    config = config or PrepareConfig()
    config.validate()
    unsupported = [name for name, used in [("several sources", isinstance(events, dict)),
                                           ("quantize", config.quantize), ("bpe_fields", config.bpe_fields),
                                           ("text", config.text)] if used]
    if unsupported:
        raise ConfigError(f"engine=spark does not support {', '.join(unsupported)} yet: use engine=polars "
                          f"(with shards= for data larger than memory)")
    if shards is not None:
        check_shards(shards)
    if output is not None:
        check_prepare_output(output)
    spark = spark or spark_session()
    with _quiet():
        try:
            return _prepare(spark, events, config, labels, output, shards)
        except EventseqError:
            raise
        except Exception as error:  # a failed Spark job: its JVM stack trace says little to a user
            if type(error).__module__.split(".")[0] not in ("pyspark", "py4j"):
                raise
            first = next((line.strip() for line in str(error).splitlines()
                          if "Error" in line or "Exception" in line), str(error).splitlines()[0])
            hint = (" Spark ran out of memory: set EVENTSEQ_SPARK_MEMORY (now "
                    f"{spark.conf.get('spark.driver.memory', 'default')}) or pass a session with more."
                    if "OUT_OF_MEMORY" in str(error) or "OutOfMemory" in str(error) else "")
            raise DataError(f"the Spark job failed: {first[:300]}.{hint}") from None


def _prepare(
    spark: SparkSession,
    events: Any,
    config: PrepareConfig,
    labels: Any,
    output: str | os.PathLike | None,
    shards: int | None,
) -> SparkPrepared:
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    id_column, time_column = config.id_column, config.time_column
    event_columns = [id_column, time_column, *config.categorical, *config.numeric]
    for column in [*event_columns, *config.targets]:
        if "." in column or "`" in column:
            raise ColumnError(
                f"column '{column}': engine=spark does not take column names with '.' or '`' (Spark reads "
                f"'a.b' as field b of a struct a); rename the column, or use engine=polars"
            )

    # ---- inputs and the checks that need no data (as inputs.scan_inputs does them)
    raw, event_schema = _spark_frame(spark, events, [*event_columns, *config.targets], "events")
    check_columns(event_schema, event_columns, "the event table")
    targets_in_events = [t for t in config.targets if t in event_schema.names()]
    label_targets = [t for t in config.targets if t not in targets_in_events]
    label_frame = None
    if labels is not None:
        label_frame, label_schema = _spark_frame(spark, labels, [id_column, *label_targets], "labels")
        check_columns(label_schema, [id_column], "the labels table")
        check_columns(label_schema, label_targets, "the labels table")
        label_frame = label_frame.select(id_column, *label_targets)
    else:
        check_columns(event_schema, list(config.targets), "the event table (no labels table given)")
    for column in config.numeric:
        require_numeric(event_schema[column], column)
    time_kind_of(event_schema[time_column], time_column)

    # the input position of every row: ties in time keep it, errors name it
    base = raw.select(*event_columns, *targets_in_events, F.monotonically_increasing_id().alias(ROW_COLUMN))
    base = base.persist(StorageLevel.MEMORY_AND_DISK)
    cached = [base]
    try:
        result = _fit_and_encode(spark, base, label_frame, config, targets_in_events, label_targets,
                                 event_schema[time_column], raw.schema[time_column].dataType, output, shards,
                                 events, cached)
    except BaseException:
        for frame in cached:
            frame.unpersist()
        raise
    result._cached.extend(cached)
    if output is not None:
        result.unpersist()
    return result


def _fit_and_encode(
    spark: SparkSession,
    base: DataFrame,
    label_frame: DataFrame | None,
    config: PrepareConfig,
    targets_in_events: list[str],
    label_targets: list[str],
    time_dtype: pl.DataType,
    time_type: Any,
    output: str | os.PathLike | None,
    shards: int | None,
    events: Any,
    cached: list[DataFrame],
) -> SparkPrepared:
    from pyspark import StorageLevel
    from pyspark.errors import PySparkException
    from pyspark.sql import functions as F

    id_column, time_column = config.id_column, config.time_column
    seconds = _time_seconds(time_column, time_type, config.time_unit)

    # ---- fit: one pass for counts and numeric moments, one for every vocabulary
    transforms = {c: config.numeric_transform.get(c, config.default_numeric_transform) for c in config.numeric}
    moments = []
    for index, column in enumerate(config.numeric):
        values = _numeric_transform(column, transforms[column], 0.0, 1.0)
        finite = F.when(_finite(values), values)
        moments += [F.avg(finite).alias(f"mean_{index}"), F.stddev_samp(finite).alias(f"std_{index}")]
    try:
        totals = base.agg(
            F.count(F.lit(1)).alias("rows"),
            _count(F.col(id_column).isNull()).alias("null_ids"),
            _count(seconds.isNull()).alias("null_times"),
            F.countDistinct(F.col(id_column)).alias("entities_in"),
            F.countDistinct(F.when(seconds.isNotNull(), F.col(id_column))).alias("entities_with_times"),
            _count(F.abs(seconds) > F.lit(MAX_EPOCH_SECONDS)).alias("implausible_times"),
            *moments,
        ).first()
    except PySparkException as error:
        if isinstance(events, (str, os.PathLike)):
            raise FileFormatError(f"cannot read events {os.fspath(events)}: {error}") from None
        raise
    if totals["rows"] == 0:
        raise DataError("the event table is empty: no rows to prepare")

    def moment(name: str) -> float | None:
        value = totals[name]
        return None if value is None or math.isnan(value) else float(value)  # Spark gives NaN or null for n=1

    numeric_moments = {c: (moment(f"mean_{i}"), moment(f"std_{i}")) for i, c in enumerate(config.numeric)}
    category_counts = _category_counts(base, config.categorical)
    target_values = {}
    for column, task in config.targets.items():
        source = label_frame if column in label_targets else base
        assert source is not None
        values = source.select(column).where(F.col(column).isNotNull())
        values = values.limit(1) if task == "regression" else values.distinct()  # dtype, or classes
        target_values[column] = pl.from_arrow(_to_arrow(values)).get_column(column)
    statistics = FitStatistics(time_dtype, category_counts, numeric_moments, target_values)
    schema = schema_from_statistics(statistics, config)

    # ---- encode, with the Polars engine's checks in its order
    report = PrepareReport(rows_in=int(totals["rows"]))
    if totals["null_ids"]:
        row = _row_number(base, base, F.col(id_column).isNull())
        raise DataError(f"id column '{id_column}' has {totals['null_ids']:,} null values (first at row {row})")
    frame = base.withColumn(TIME_COLUMN, seconds)
    if totals["implausible_times"]:
        condition = F.abs(F.col(TIME_COLUMN)) > F.lit(MAX_EPOCH_SECONDS)
        first = frame.where(condition).orderBy(ROW_COLUMN).select(time_column).first()[0]
        raise implausible_time_error(time_column, _row_number(base, frame, condition), int(first),
                                     int(totals["implausible_times"]), config.time_unit)
    if totals["null_times"]:
        if config.null_time == "error":
            row = _row_number(base, frame, F.col(TIME_COLUMN).isNull())
            raise DataError(
                f"time column '{time_column}' has {totals['null_times']:,} null values (first at row {row})"
            )
        frame = frame.where(F.col(TIME_COLUMN).isNotNull())
        report.rows_dropped[f"null {time_column}"] = int(totals["null_times"])
        vanished = int(totals["entities_in"]) - int(totals["entities_with_times"])
        if vanished:
            report.entities_dropped[f"every event had a null {time_column}"] = vanished
    for index, feature in enumerate(schema.categorical):
        frame = _encode_categorical(spark, frame, feature.name, feature.vocabulary, index)
    for feature in schema.numeric:
        frame = frame.withColumn(feature.name,
                                 _numeric_transform(feature.name, feature.transform, feature.mean, feature.std))
    frame, events_out, entities_out = _handle_invalid_numerics(frame, base, schema, config, report)
    _check_constant_targets(frame, id_column, targets_in_events)

    # ---- one row per entity: events sorted by (time, input row) == a stable sort by time
    event_fields = [F.col(TIME_COLUMN), F.col(ROW_COLUMN),
                    *[F.col(f.name).cast("int").alias(f.name) for f in schema.categorical],
                    *[F.col(f.name).cast("float").alias(f.name) for f in schema.numeric]]
    table = frame.groupBy(id_column).agg(
        F.sort_array(F.collect_list(F.struct(*event_fields))).alias(_EVENTS),
        *[F.max(t).alias(t) for t in targets_in_events],  # constant per entity (checked above)
    )
    table = table.select(
        id_column,
        *[F.col(_EVENTS).getField(name).alias(name) for name in [TIME_COLUMN, *schema.feature_names]],
        *targets_in_events,
    )
    if label_frame is not None and label_targets:
        table = _join_labels(table, frame.select(id_column).distinct(), label_frame, id_column, label_targets,
                             config, report)
    targets = list(config.targets)
    table = table.select(id_column, TIME_COLUMN, *schema.feature_names, *[_encoded_target(schema.target(t))
                                                                           for t in targets])
    report.events_out, report.entities_out = events_out, entities_out
    if targets:  # entities without a value, as the Polars engine reports them
        nulls = table.select([F.sum(F.col(t).isNull().cast("long")).alias(t) for t in targets]).first()
        report.targets_missing = {t: int(nulls[t] or 0) for t in targets}

    shards = shards or max(1, math.ceil(events_out / EVENTS_PER_PART))
    # cached, so that sampling the id ranges and writing the parts group the events only once
    table = table.persist(StorageLevel.MEMORY_AND_DISK)
    cached.append(table)
    table = table.repartitionByRange(shards, F.col(id_column)).sortWithinPartitions(id_column)
    if output is not None:
        _write(table, schema, report, Path(output))
    return SparkPrepared(table=table, schema=schema, report=report)


def _category_counts(base: DataFrame, columns: list[str]) -> dict[str, pl.DataFrame]:
    """Per categorical column, its non-null values as strings and their counts (one Spark job for all)."""
    from pyspark.sql import functions as F

    if not columns:
        return {}
    pairs = F.array(*[F.struct(F.lit(index).alias("feature"), _categorical_value(base, column).cast("string")
                               .alias("value")) for index, column in enumerate(columns)])
    counts = (base.select(F.explode(pairs).alias("pair")).select("pair.*")
              .where(F.col("value").isNotNull()).groupBy("feature", "value").count())
    collected = pl.from_arrow(_to_arrow(counts))
    assert isinstance(collected, pl.DataFrame)
    return {
        column: collected.filter(pl.col("feature") == index).select(pl.col("value").alias(column), "count")
        for index, column in enumerate(columns)
    }


def _categorical_value(frame: DataFrame, column: str) -> Column:
    """A categorical column with NaN (of a float column) as null, as `prepare.categorical_values` does."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import DoubleType, FloatType

    values = F.col(column)
    if isinstance(frame.schema[column].dataType, (DoubleType, FloatType)):
        return F.when(~F.isnan(values), values)
    return values


def _encode_categorical(spark: SparkSession, frame: DataFrame, column: str, vocabulary: list[str],
                        index: int) -> DataFrame:
    """Raw values → int32 ids with a broadcast join on the vocabulary; unseen and null → unknown."""
    from pyspark.sql import functions as F

    value, code = f"__eventseq_value_{index}__", f"__eventseq_id_{index}__"
    ids = pa.array(range(FIRST_VALUE_ID, FIRST_VALUE_ID + len(vocabulary)), pa.int32())
    lookup = _arrow_to_spark(spark, pa.table({value: pa.array(vocabulary, pa.string()), code: ids}))
    joined = frame.join(F.broadcast(lookup), _categorical_value(frame, column).cast("string") == F.col(value), "left")
    return joined.withColumn(column, F.coalesce(F.col(code), F.lit(UNKNOWN_ID)).cast("int")).drop(value, code)


def _handle_invalid_numerics(
    frame: DataFrame, base: DataFrame, schema: Schema, config: PrepareConfig, report: PrepareReport
) -> tuple[DataFrame, int, int]:
    """Apply invalid_numeric as the Polars engine does (column by column), counting in one pass.

    Returns:
        The frame of kept events, the number of events kept and of distinct entities among them.
    """
    from pyspark.sql import functions as F

    policy = config.invalid_numeric
    # stored as float32: beyond its range a value would become inf, so it is invalid too
    invalid = [~(_finite(F.col(f.name)) & (F.abs(F.col(f.name)) <= F.lit(FLOAT32_MAX))) for f in schema.numeric]
    counts, valid_so_far = [], F.lit(True)
    for index, condition in enumerate(invalid):
        # under drop, a column counts only the rows earlier columns did not already drop
        counts.append(_count(condition & valid_so_far if policy == "drop" else condition).alias(f"invalid_{index}"))
        valid_so_far = valid_so_far & ~condition
    kept = valid_so_far if policy == "drop" else F.lit(True)
    totals = frame.agg(
        *counts,
        _count(kept).alias("kept"),
        F.countDistinct(F.when(kept, F.col(config.id_column))).alias("entities"),
        *[_count(kept & (F.col(f.name) == UNKNOWN_ID)).alias(f"unknown_{i}") for i, f in enumerate(schema.categorical)],
    ).first()
    for index, feature in enumerate(schema.numeric):
        count = int(totals[f"invalid_{index}"])
        if not count:
            continue
        if policy == "error":
            row = _row_number(base, frame, invalid[index])
            raise invalid_numeric_error(feature.name, count, row)
        if policy == "fill":
            frame = frame.withColumn(feature.name, F.when(invalid[index], F.lit(config.fill_value))
                                     .otherwise(F.col(feature.name)))
            key = f"filled invalid '{feature.name}' (kept)"
            report.rows_dropped[key] = report.rows_dropped.get(key, 0) + count
        else:
            report.rows_dropped[f"NaN/inf/null '{feature.name}'"] = count
    if policy == "drop":
        frame = frame.where(kept)
    if not totals["kept"]:
        raise DataError("no events left after dropping invalid rows: " + report.summary().replace("\n", "; "))
    for index, feature in enumerate(schema.categorical):
        report.unknown_values[feature.name] = int(totals[f"unknown_{index}"])
    return frame, int(totals["kept"]), int(totals["entities"])


def _check_constant_targets(frame: DataFrame, id_column: str, targets: list[str]) -> None:
    """A target taken from the event table must have one value per entity (null counts as a value)."""
    from pyspark.sql import functions as F

    if not targets:
        return
    distinct = [(F.countDistinct(t) + F.max(F.col(t).isNull().cast("int"))).alias(t) for t in targets]
    per_entity = frame.groupBy(id_column).agg(*distinct)
    first_varying = per_entity.agg(*[F.min(F.when(F.col(t) > 1, F.col(id_column))).alias(t) for t in targets]).first()
    for target in targets:
        entity = first_varying[target]
        if entity is not None:
            raise DataError(
                f"target '{target}' is not constant within entity {entity!r}: a per-entity target must "
                f"have one value per entity (pass it in a labels table instead)"
            )


def _join_labels(
    table: DataFrame, entity_ids: DataFrame, labels: DataFrame, id_column: str, label_targets: list[str],
    config: PrepareConfig, report: PrepareReport,
) -> DataFrame:
    """Attach label columns, with the Polars engine's checks (one row per entity, entities without events)."""
    from pyspark.sql import functions as F

    repeated = (labels.groupBy(id_column).count().where(F.col("count") > 1)
                .agg(F.sum("count").alias("rows"), F.min(id_column).alias("first")).first())
    if repeated["rows"]:
        raise DataError(
            f"labels table has {repeated['rows']:,} rows with a repeated '{id_column}' "
            f"(first: {repeated['first']!r}); expected one row per entity"
        )
    id_type = table.schema[id_column].dataType.simpleString()
    labels = labels.select(F.expr(f"try_cast(`{id_column}` AS {id_type})").alias(id_column), *label_targets)
    missing = (labels.join(entity_ids, on=id_column, how="left_anti")
               .agg(F.count(F.lit(1)).alias("rows"), F.min(id_column).alias("first")).first())
    if missing["rows"]:
        if config.entities_without_events == "error":
            raise DataError(
                f"{missing['rows']:,} labelled entities have no events "
                f"(first: {missing['first']!r}); set entities_without_events=drop to skip them"
            )
        report.entities_dropped["labelled but no events"] = int(missing["rows"])
    return table.join(labels, on=id_column, how="left")


# ----------------------------------------------------------------------------- output


BatchMap = Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]


def _part_writer(directory: str, metadata: dict[bytes, bytes]) -> BatchMap:
    """A mapInArrow function writing its partition as `.task-NNNNN.parquet` in `directory`.

    It runs on the executors, so it imports only pyarrow and pyspark. A task writes to a name of
    its own attempt and renames when done, so a retried or speculative task never leaves a torn
    file under the task's name. It yields one row: (partition, rows written).
    """

    def write(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import os

        import pyarrow as pa
        import pyarrow.parquet as pq
        from pyspark import TaskContext

        context = TaskContext.get()
        partition = context.partitionId()
        temporary = os.path.join(directory, f".task-{partition:05d}-{context.attemptNumber()}.tmp")
        writer, schema, rows = None, None, 0
        try:
            for batch in batches:
                if batch.num_rows == 0:
                    continue
                if writer is None:
                    # the Arrow types the Polars engine writes (64-bit offsets), so that readers of
                    # the parts see one layout whichever engine prepared them
                    schema = pa.schema(
                        [pa.field(f.name, pa.large_list(f.type.value_type)) if pa.types.is_list(f.type)
                         else pa.field(f.name, pa.large_string()) if pa.types.is_string(f.type)
                         else f for f in batch.schema],
                        metadata=metadata,
                    )
                    writer = pq.ParquetWriter(temporary, schema)
                writer.write_table(pa.Table.from_batches([batch]).cast(schema))
                rows += batch.num_rows
        finally:
            if writer is not None:
                writer.close()
        if writer is not None:
            os.replace(temporary, os.path.join(directory, f".task-{partition:05d}.parquet"))
        yield pa.RecordBatch.from_pydict({"partition": [partition], "rows": [rows]},
                                         schema=pa.schema([("partition", pa.int64()), ("rows", pa.int64())]))

    return write


def _write(table: DataFrame, schema: Schema, report: PrepareReport, directory: Path) -> None:
    """Write data.parquet/part-*.parquet from the executors, schema.json and report.json: the prepare
    directory appears whole (see `PreparedData.save`)."""
    metadata = schema_metadata(schema)
    with prepared_directory(directory.resolve()) as prepare_tmp:  # the executors' working directory is not ours
        tmp = prepare_tmp / DATA_FILE
        tmp.mkdir()
        written = table.mapInArrow(_part_writer(str(tmp), metadata), "partition long, rows long").collect()
        partitions = sorted(row["partition"] for row in written if row["rows"])
        for index, partition in enumerate(partitions):  # consecutive names, in id order
            os.replace(tmp / f".task-{partition:05d}.parquet", tmp / PART_FILE.format(index=index))
        for leftover in tmp.glob(".task-*"):  # failed attempts' files
            leftover.unlink()
        if sum(row["rows"] for row in written) != report.entities_out:
            raise DataError(  # would mean the input changed while it was read
                f"Spark wrote {sum(row['rows'] for row in written):,} entities but counted "
                f"{report.entities_out:,}: was the input modified during the job?"
            )
        write_schema_and_report(prepare_tmp, schema, report)
