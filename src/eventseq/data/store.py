"""A prepared sequence table on disk and in memory: `PreparedData`, the prepare directory's files, `load_prepared`.

A prepare directory holds `data.parquet` (one file, or a directory of part files each holding whole
entities), `schema.json`, `report.json` and, with text fields, `texts.parquet`. Every writer (the
Polars engine whole or in shards, the Spark engine's executors) stamps each Parquet file with the
schema (`schema_metadata`), so a part read alone knows how it was encoded and mixed runs are refused.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from eventseq._io import (
    atomic_directory,
    check_output,
    open_parquet,
    parquet_part_files,
    read_json,
    read_parquet_parts,
    write_json,
    write_parquet,
    write_parquet_parts,
)
from eventseq.data.prepare_config import check_shards
from eventseq.data.schema import TIME_COLUMN, Schema
from eventseq.data.text import TEXTS_FILE, TextTable, read_text_tables, write_text_tables
from eventseq.errors import FileFormatError

DATA_FILE = "data.parquet"
SCHEMA_FILE = "schema.json"
REPORT_FILE = "report.json"
SCHEMA_METADATA_KEY = b"eventseq.schema"


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
        arrow = sequence_arrow(self.table, self.schema)
        with prepared_directory(directory) as tmp:
            if shards is None:
                write_parquet(arrow, tmp / DATA_FILE)
            else:
                # one row per entity, so contiguous row ranges are whole entities in id order
                bounds = sorted({round(index * arrow.num_rows / shards) for index in range(shards + 1)})
                write_parquet_parts([arrow.slice(start, end - start) for start, end in zip(bounds, bounds[1:])],
                                    tmp / DATA_FILE)
            if self.schema.text:
                write_text_tables(self.texts, tmp / TEXTS_FILE)
            write_schema_and_report(tmp, self.schema, self.report)
        return Path(directory)


PREPARE_CONTENTS = (DATA_FILE, SCHEMA_FILE, REPORT_FILE, TEXTS_FILE)  # what a prepare directory holds


def check_prepare_output(directory: str | os.PathLike, option: str = "output") -> Path:
    """Refuse, before any data is read, a prepare output that could not be written whole (see `_io.check_output`)."""
    return check_output(directory, "directory", option, contents=PREPARE_CONTENTS)


def prepared_directory(directory: str | os.PathLike) -> Any:
    """A temporary directory to write a prepare directory's files into; renamed onto `directory` on success."""
    return atomic_directory(directory, PREPARE_CONTENTS)


def schema_metadata(schema: Schema) -> dict[bytes, bytes]:
    """The Parquet key-value metadata every sequence-table file carries: the schema it was encoded with."""
    return {SCHEMA_METADATA_KEY: schema.to_json().encode()}


def schema_in_metadata(arrow_schema: Any) -> Schema | None:
    """The schema a Parquet file's Arrow schema carries in its metadata (see `schema_metadata`); None if none."""
    raw = (arrow_schema.metadata or {}).get(SCHEMA_METADATA_KEY)
    return None if raw is None else Schema.from_json(raw.decode())


def sequence_arrow(table: pl.DataFrame, schema: Schema) -> Any:
    """A sequence table as Arrow, its metadata stamped with `schema_metadata(schema)`, ready to write."""
    arrow = table.to_arrow()
    return arrow.replace_schema_metadata({**(arrow.schema.metadata or {}), **schema_metadata(schema)})


def write_schema_and_report(directory: Path, schema: Schema, report: PrepareReport) -> None:
    """Write schema.json and report.json into a (temporary) prepare directory."""
    write_json(directory / SCHEMA_FILE, schema.to_dict())
    write_json(directory / REPORT_FILE, asdict(report))


def check_data_matches_schema(data_path: Path, schema: Schema, source: str) -> None:
    """Refuse a data.parquet (file or parts) encoded with another schema than `source`'s (mixed prepare runs)."""
    for part in parquet_part_files(data_path):
        check_part_schema(part, open_parquet(part).schema_arrow, schema, source)


def check_part_schema(part: Path, arrow_schema: Any, schema: Schema, source: str) -> None:
    """Raise FileFormatError if the Parquet file `part` (its Arrow schema given) was encoded with another
    schema than `schema` (from `source`); a file without eventseq metadata passes."""
    written_with = schema_in_metadata(arrow_schema)
    if written_with is not None and written_with.fingerprint() != schema.fingerprint():
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
        found = schema_in_metadata(open_parquet(parquet_part_files(data_path)[0]).schema_arrow)
        if found is None:
            raise FileFormatError(f"{data_path} has no eventseq schema in its metadata; pass the prepare directory")
        schema = found
        report = PrepareReport()
        check_data_matches_schema(data_path, schema, f"its first part ({parquet_part_files(data_path)[0].name})")
    else:
        schema = Schema.from_dict(read_json(directory / SCHEMA_FILE, "schema"))
        report_path = directory / REPORT_FILE
        report = PrepareReport(**read_json(report_path)) if report_path.exists() else PrepareReport()
        check_data_matches_schema(data_path, schema, str(directory / SCHEMA_FILE))
    table = pl.from_arrow(read_parquet_parts(data_path))
    assert isinstance(table, pl.DataFrame)
    missing = [c for c in [schema.id_column, TIME_COLUMN, *schema.feature_names] if c not in table.columns]
    if missing:
        raise FileFormatError(f"{directory}: sequence table lacks columns {missing} named by its schema")
    if not table.get_column(schema.id_column).is_sorted():  # parts written elsewhere, in another order
        table = table.sort(schema.id_column, maintain_order=True)
    texts = read_text_tables(data_path.parent / TEXTS_FILE, schema.text)
    return PreparedData(table=table, schema=schema, report=report, texts=texts)
