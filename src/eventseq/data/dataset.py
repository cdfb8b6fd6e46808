"""In-memory dataset over a sequence table: each list column is one flat array plus offsets.

Slicing an entity, truncating to `max_len` and building a padded batch are vectorized NumPy
operations over those flat arrays; there are no per-event Python objects.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl
import pyarrow as pa
import torch

from eventseq.config import check_value
from eventseq.data.batch import Batch
from eventseq.data.schema import TIME_COLUMN, Schema
from eventseq.data.text import TextTable, gather_batch_texts, text_vectors_for
from eventseq.errors import ColumnError, DataError, did_you_mean


def _flat_and_offsets(column: pa.ChunkedArray | pa.Array, name: str) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(column, pa.ChunkedArray):
        # one chunk (the usual case) is used as is: combine_chunks would copy it
        column = column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
    if not (pa.types.is_list(column.type) or pa.types.is_large_list(column.type)):
        raise ColumnError(f"column '{name}' is {column.type}: expected a list column (one list per entity)")
    if column.null_count:
        raise DataError(f"list column '{name}' has {column.null_count} null rows; expected a list per entity")
    offsets = np.asarray(column.offsets, dtype=np.int64)
    flat = column.flatten()  # respects slicing of the array
    values = flat.to_numpy(zero_copy_only=False)
    return values, offsets - offsets[0]


class SequenceDataset(torch.utils.data.Dataset):
    """Sequence table as flat arrays + offsets; `collate(indices)` builds a padded Batch.

    Use with `torch.utils.data.DataLoader(dataset, batch_sampler=..., collate_fn=dataset.collate)`:
    items are just row positions, so the whole batch is gathered in one vectorized step.
    """

    def __init__(
        self,
        columns: dict[str, np.ndarray],
        offsets: np.ndarray,
        ids: np.ndarray,
        schema: Schema,
        targets: np.ndarray | None = None,
        target_names: Sequence[str] = (),
        max_len: int | None = None,
        rows: np.ndarray | None = None,
        text_vectors: dict[str, np.ndarray] | None = None,
    ) -> None:
        self.columns = columns
        self.offsets = offsets
        self.ids = ids
        self.schema = schema
        self.targets = targets
        self.target_names = list(target_names)
        self.max_len = max_len
        self.rows = np.arange(len(offsets) - 1) if rows is None else rows
        self.text_vectors = text_vectors or {}  # text feature -> [texts + 2, dim] vectors its ids index

    @classmethod
    def from_table(
        cls,
        table: pl.DataFrame | pa.Table,
        schema: Schema,
        target: str | Sequence[str] | None = None,
        max_len: int | None = None,
        texts: dict[str, TextTable] | None = None,
    ) -> SequenceDataset:
        """Build from a sequence table (as written by `prepare`).

        Args:
            table: one row per entity, list columns for `event_time` and each schema feature.
            schema: the fitted schema naming the features.
            target: target column(s) to attach (several for multilabel); None for unlabeled use.
            max_len: keep at most this many most recent events per entity.
            texts: the text table of each text feature (`PreparedData.texts`); needed when the
                schema has text features.

        Raises:
            ColumnError: a needed column is missing; DataError: null targets or ragged lists, a
                text feature without its table.
        """
        check_value("max_len", max_len, whole=True, ge=1)
        arrow = table.to_arrow() if isinstance(table, pl.DataFrame) else table
        available = arrow.column_names
        needed = [schema.id_column, TIME_COLUMN, *schema.feature_names]
        for name in needed:
            if name not in available:
                raise ColumnError(
                    f"sequence table lacks column '{name}'{did_you_mean(name, available)}; has {available}"
                )
        time_values, offsets = _flat_and_offsets(arrow[TIME_COLUMN], TIME_COLUMN)
        columns = {TIME_COLUMN: time_values.astype(np.int64, copy=False)}
        for feature in schema.features:
            values, feature_offsets = _flat_and_offsets(arrow[feature.name], feature.name)
            if not np.array_equal(feature_offsets, offsets):
                row = int(np.nonzero(np.diff(feature_offsets) != np.diff(offsets))[0][0])
                raise DataError(
                    f"list column '{feature.name}' has a different length than '{TIME_COLUMN}' at row {row}"
                )
            # keep Arrow's buffers (int32 ids, float32 values from prepare) without a copy;
            # ids are widened to int64 per batch in collate
            holds_ids = feature.kind in ("categorical", "text")
            if holds_ids and not np.issubdtype(values.dtype, np.integer):
                raise ColumnError(f"{feature.kind} column '{feature.name}' holds {values.dtype}: expected integer ids")
            columns[feature.name] = values if holds_ids else values.astype(np.float32, copy=False)
            if not holds_ids and not np.isfinite(columns[feature.name]).all():
                position = int(np.flatnonzero(~np.isfinite(columns[feature.name]))[0])
                row = int(np.searchsorted(offsets, position, side="right") - 1)
                raise DataError(
                    f"numeric list column '{feature.name}' holds NaN/inf (first in the entity at row {row}): prepare "
                    f"never writes them, so the table was changed after it was prepared; prepare it again"
                )
        if np.any(np.diff(offsets) == 0):
            row = int(np.nonzero(np.diff(offsets) == 0)[0][0])
            raise DataError(f"entity at row {row} has no events; every entity needs at least one")
        ids = arrow[schema.id_column].to_numpy()
        target_names = [target] if isinstance(target, str) else list(target or [])
        targets = None
        if target_names:
            for name in target_names:
                if name not in available:
                    raise ColumnError(
                        f"sequence table lacks target column '{name}'{did_you_mean(name, available)}"
                    )
                nulls = arrow[name].null_count
                if nulls:
                    raise DataError(f"target '{name}' is null for {nulls:,} entities; drop them or fill it")
                _check_encoded_target(arrow[name].to_numpy(), schema, name)
            stacked = np.stack([arrow[name].to_numpy() for name in target_names], axis=1)
            targets = stacked[:, 0] if len(target_names) == 1 else stacked
        text_vectors = text_vectors_for(schema.text, texts, columns)
        return cls(columns, offsets, ids, schema, targets, target_names, max_len, text_vectors=text_vectors)

    # -------------------------------------------------------------- sizes and views
    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, position: int) -> int:
        return position

    @property
    def lengths(self) -> np.ndarray:
        """Events per entity after truncation to max_len, in dataset order."""
        lengths = self.offsets[self.rows + 1] - self.offsets[self.rows]
        return lengths if self.max_len is None else np.minimum(lengths, self.max_len)

    @property
    def num_events(self) -> int:
        return int(self.lengths.sum())

    def subset(self, positions: np.ndarray) -> SequenceDataset:
        """A view over some entities; shares the flat arrays (no copy)."""
        return SequenceDataset(
            self.columns, self.offsets, self.ids, self.schema, self.targets, self.target_names,
            self.max_len, rows=self.rows[np.asarray(positions, dtype=np.int64)], text_vectors=self.text_vectors,
        )

    def entity_ids(self, positions: np.ndarray | None = None) -> np.ndarray:
        rows = self.rows if positions is None else self.rows[positions]
        return self.ids[rows]

    def target_values(self) -> np.ndarray | None:
        return None if self.targets is None else self.targets[self.rows]

    # -------------------------------------------------------------- batching
    def entity_lengths(self, positions: np.ndarray) -> np.ndarray:
        """Full (untruncated) event counts of the entities at `positions`."""
        rows = self.rows[positions]
        return self.offsets[rows + 1] - self.offsets[rows]

    def collate(self, positions: Sequence[int] | np.ndarray) -> Batch:
        """Gather entities into a padded Batch (left-aligned, most recent `max_len` events)."""
        positions = np.asarray(positions, dtype=np.int64)
        rows = self.rows[positions]
        starts, ends = self.offsets[rows], self.offsets[rows + 1]
        lengths = ends - starts
        if self.max_len is not None:
            lengths = np.minimum(lengths, self.max_len)
            starts = ends - lengths  # keep the most recent events
        return self._gather(positions, starts, lengths)

    def collate_views(
        self,
        positions: np.ndarray,
        view_starts: np.ndarray,
        view_lengths: np.ndarray,
        keep: np.ndarray | None = None,
    ) -> Batch:
        """Gather sub-sequences ("views") of entities into one Batch.

        Args:
            positions: entity position of each view, [V] (repeat a position for several views).
            view_starts: first event of each view, relative to its entity's first event, [V].
            view_lengths: events in each view, [V].
            keep: optional [V, max(view_lengths)] bool mask of events to keep (event dropout);
                kept events are compacted to the left; a view keeps at least its first event.

        Returns:
            Batch whose `index` holds the entity position of each view.
        """
        positions = np.asarray(positions, dtype=np.int64)
        starts = self.offsets[self.rows[positions]] + np.asarray(view_starts, dtype=np.int64)
        return self._gather(positions, starts, np.asarray(view_lengths, dtype=np.int64), keep)

    def _gather(
        self, positions: np.ndarray, starts: np.ndarray, lengths: np.ndarray, keep: np.ndarray | None = None
    ) -> Batch:
        width = max(int(lengths.max()), 1)
        steps = np.arange(width)
        valid = steps[None, :] < lengths[:, None]  # [B, T]
        gather = np.where(valid, starts[:, None] + steps[None, :], 0)  # [B, T] flat event index
        if keep is not None:
            keep = keep[:, :width] & valid
            keep[~keep.any(axis=1), 0] = True  # never an empty view
            order = np.argsort(~keep, axis=1, kind="stable")  # kept events first, in time order
            gather = np.take_along_axis(gather, order, axis=1)
            lengths = keep.sum(axis=1)
            valid = steps[None, :] < lengths[:, None]
        features, text_vectors = {}, {}
        for feature in self.schema.features:
            values = self.columns[feature.name][gather]
            if feature.kind in ("categorical", "text"):
                values = values.astype(np.int64, copy=False)
            values[~valid] = 0
            if feature.kind == "text":  # [B, T] rows of the batch's table of distinct texts
                values, vectors = gather_batch_texts(values, self.text_vectors[feature.name])
                text_vectors[feature.name] = torch.from_numpy(vectors)  # [U, dim]
            features[feature.name] = torch.from_numpy(values)
        event_time = self.columns[TIME_COLUMN][gather]
        event_time[~valid] = 0
        target = None
        if self.targets is not None:
            target = torch.from_numpy(np.ascontiguousarray(self.targets[self.rows[positions]]))
        return Batch(
            features=features,
            event_time=torch.from_numpy(event_time),
            lengths=torch.from_numpy(lengths.astype(np.int64)),
            index=torch.from_numpy(positions),
            target=target,
            text_vectors=text_vectors,
        )


def _check_encoded_target(values: np.ndarray, schema: Schema, name: str) -> None:
    """A target column as prepare encodes it: class ids 0..K-1, or finite numbers (regression).

    Raises:
        DataError: a value prepare cannot have written (the table was edited after it was prepared).
    """
    target = next((t for t in schema.targets if t.name == name), None)
    if target is None:
        return
    if target.classes is not None:
        bad = (values < 0) | (values >= len(target.classes))
        what = f"outside the class ids 0..{len(target.classes) - 1} of its {len(target.classes)} classes"
    else:
        bad = ~np.isfinite(values.astype(np.float64))
        what = "NaN/inf"
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(f"target '{name}' holds {values[row].item()!r} at row {row}, {what}: prepare never writes "
                        f"it, so the table was changed after it was prepared; prepare it again")
