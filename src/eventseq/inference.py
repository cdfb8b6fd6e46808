"""Batched, no-grad, streaming inference: predictions or embeddings per entity, to Parquet.

Input is either a sequence table prepared with the model's own schema, or raw events that are
encoded with the saved schema (unknown categories → the unknown id). Entities are processed in
chunks, each chunk sorted by length to cut padding, and written through one ParquetWriter to a
temporary file that is renamed at the end.
"""

from __future__ import annotations

import copy
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from torch import nn
from tqdm.auto import tqdm

from eventseq._io import atomic_path, open_parquet
from eventseq.data.dataset import SequenceDataset
from eventseq.data.prepare import SCHEMA_METADATA_KEY, DATA_FILE, EventsLike, encode_events
from eventseq.data.schema import Schema
from eventseq.errors import ConfigError, DataError, FileFormatError
from eventseq.saved import load_model


def _chunks_of_sequence_tables(data: Any, schema: Schema, chunk_rows: int) -> Iterator[pa.Table]:
    """Yield sequence-table chunks encoded with `schema`, streaming prepared Parquet by row batches."""
    path = None
    if isinstance(data, (str, os.PathLike)):
        path = Path(data)
        if path.is_dir() and (path / DATA_FILE).exists():
            path = path / DATA_FILE
    if path is not None and path.is_file() and path.suffix == ".parquet":
        parquet = open_parquet(path)
        raw_schema = (parquet.schema_arrow.metadata or {}).get(SCHEMA_METADATA_KEY)
        if raw_schema is not None:
            prepared_with = Schema.from_json(raw_schema.decode())
            if prepared_with.fingerprint() != schema.fingerprint():
                raise DataError(
                    f"{path} was prepared with a different schema than the model's "
                    f"(different vocabularies or transforms): pass the raw events instead"
                )
            try:
                for batch in parquet.iter_batches(batch_size=chunk_rows):
                    yield pa.Table.from_batches([batch])
            except (pa.ArrowInvalid, OSError) as error:
                raise FileFormatError(f"cannot read {path}: corrupt or truncated ({error})") from None
            return
    prepared = encode_events(data, schema)
    table = prepared.table.to_arrow()
    for start in range(0, table.num_rows, chunk_rows):
        yield table.slice(start, chunk_rows)


def quantized_copy(module: L.LightningModule) -> L.LightningModule:
    """A copy whose GRU/LSTM and Linear layers run in int8 (dynamic quantization, CPU only).

    Measured on a GRU 256 over 20k entities: about 1.6x the float32 throughput with a mean
    cosine similarity of 0.9999 between the two embeddings. Embeddings feed downstream models,
    so check the metric on your data before switching a production job to it.
    """
    from torch.ao.quantization import quantize_dynamic

    with warnings.catch_warnings():  # the eager API is deprecated in favour of torchao, still supported
        warnings.simplefilter("ignore")
        return quantize_dynamic(copy.deepcopy(module).cpu(), {nn.GRU, nn.LSTM, nn.Linear}, dtype=torch.qint8)


@torch.no_grad()
def _run(
    module: L.LightningModule,
    data: EventsLike,
    output: str | os.PathLike | None,
    mode: str,
    batch_size: int,
    chunk_rows: int,
    progress: bool,
    max_len: int | None,
    device: str,
    quantize: bool = False,
) -> pl.DataFrame | Path:
    if quantize:
        if device != "cpu":
            raise ConfigError(f"quantize=true runs on the CPU only; got device={device!r}")
        module = quantized_copy(module.eval())
    module = module.eval().to(device)
    schema: Schema = module.schema
    writer: pq.ParquetWriter | None = None
    frames: list[pl.DataFrame] = []
    bar = tqdm(desc=f"{mode}", unit=" entities", disable=not progress)
    with atomic_path(output) if output is not None else _null_context() as tmp:
        for chunk in _chunks_of_sequence_tables(data, schema, chunk_rows):
            dataset = SequenceDataset.from_table(chunk, schema, max_len=max_len)
            order = np.argsort(-dataset.lengths, kind="stable")  # longest first: less padding
            results = []
            for start in range(0, len(order), batch_size):
                positions = order[start : start + batch_size]
                batch = dataset.collate(positions).to(device)
                values = module.embed(batch) if mode == "embed" else module.predict_outputs(batch)
                results.append(values.float().cpu().numpy().reshape(len(positions), -1))
                bar.update(len(positions))
            values = np.concatenate(results)[np.argsort(order)]  # back to input order
            frame = _output_frame(module, dataset.entity_ids(), values, mode)
            if tmp is None:
                frames.append(frame)
                continue
            arrow = frame.to_arrow()
            if writer is None:
                writer = pq.ParquetWriter(tmp, arrow.schema)
            writer.write_table(arrow)
        bar.close()
        if tmp is not None:
            if writer is None:
                raise DataError("no entities to process: the input is empty")
            writer.close()
    if output is None:
        if not frames:
            raise DataError("no entities to process: the input is empty")
        return pl.concat(frames)
    return Path(output)


class _null_context:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> None:
        return None


def _output_frame(module: L.LightningModule, ids: np.ndarray, values: np.ndarray, mode: str) -> pl.DataFrame:
    schema: Schema = module.schema
    columns: dict[str, Any] = {schema.id_column: ids}
    if mode == "embed":
        width = len(str(values.shape[1] - 1))
        for index in range(values.shape[1]):
            columns[f"emb_{index:0{width}d}"] = values[:, index]
        return pl.DataFrame(columns)
    head = module.head_config
    targets = [schema.target(name) for name in head.targets]
    if head.task == "binary":
        classes = targets[0].classes
        columns[f"{targets[0].name}_proba"] = values[:, 0]
        columns[f"{targets[0].name}_pred"] = np.asarray(classes)[(values[:, 0] >= 0.5).astype(np.int64)]
    elif head.task == "multiclass":
        classes = targets[0].classes
        for index, value in enumerate(classes):
            columns[f"{targets[0].name}_proba_{value}"] = values[:, index]
        columns[f"{targets[0].name}_pred"] = np.asarray(classes)[values.argmax(axis=1)]
    elif head.task == "multilabel":
        for index, target in enumerate(targets):
            columns[f"{target.name}_proba"] = values[:, index]
    else:
        for index, target in enumerate(targets):
            columns[f"{target.name}_pred"] = values[:, index]
    return pl.DataFrame(columns)


def predict(
    model: L.LightningModule | str | os.PathLike,
    data: EventsLike,
    output: str | os.PathLike | None = None,
    batch_size: int = 256,
    chunk_rows: int = 50_000,
    progress: bool = True,
    max_len: int | None = None,
    device: str = "cpu",
    quantize: bool = False,
) -> pl.DataFrame | Path:
    """Predict per entity with a trained model.

    Args:
        model: a module or a saved model directory.
        data: raw events (DataFrame / Parquet path) or a prepare directory made with this model's schema.
        output: Parquet path to write (atomically); None returns a Polars DataFrame.
        batch_size: entities per forward pass.
        chunk_rows: entities read and written per chunk (bounds memory).
        progress: show a progress bar with rate and ETA.
        max_len: most recent events kept (default: the training max_len).
        device: torch device.
        quantize: run the recurrent and linear layers in int8 (CPU; faster, nearly the same outputs).

    Returns:
        id column plus `<target>_proba` / `<target>_pred` columns (or the written path).
    """
    module = load_model(model) if isinstance(model, (str, os.PathLike)) else model
    return _run(module, data, output, "predict", batch_size, chunk_rows, progress, _max_len(module, max_len), device,
                quantize)


def embed(
    model: L.LightningModule | str | os.PathLike,
    data: EventsLike,
    output: str | os.PathLike | None = None,
    batch_size: int = 256,
    chunk_rows: int = 50_000,
    progress: bool = True,
    max_len: int | None = None,
    device: str = "cpu",
    quantize: bool = False,
) -> pl.DataFrame | Path:
    """One embedding per entity (the pooled encoder output) as emb_* columns; see `predict`."""
    module = load_model(model) if isinstance(model, (str, os.PathLike)) else model
    return _run(module, data, output, "embed", batch_size, chunk_rows, progress, _max_len(module, max_len), device,
                quantize)


def _max_len(module: L.LightningModule, max_len: int | None) -> int | None:
    if max_len is not None:
        return max_len
    info = getattr(module, "saved_info", {}) or {}
    return info.get("train_config", {}).get("data", {}).get("max_len")
