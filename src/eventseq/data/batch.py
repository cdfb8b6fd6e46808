"""The one batch type: padded [B, T] tensors per feature, lengths, and an index back to entities."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch


@dataclass
class Batch:
    """A padded batch of event sequences.

    Events are left-aligned: positions `0 .. lengths[b]-1` are real, the rest is padding
    (categorical id 0, numeric 0.0). Augmented views (slices, masks) are batches too; `index`
    points back to the entity row each sequence came from.
    """

    features: dict[str, torch.Tensor]  # name -> [B, T] (int64 categorical ids / text rows, float32 numerics)
    event_time: torch.Tensor  # [B, T] int64 seconds
    lengths: torch.Tensor  # [B] int64
    index: torch.Tensor  # [B] int64 row in the dataset
    target: torch.Tensor | None = None  # [B] or [B, K]
    extra: dict[str, torch.Tensor] = field(default_factory=dict)
    # text feature -> [U, dim] float32: the batch's distinct texts; features[name] indexes its rows
    text_vectors: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def mask(self) -> torch.Tensor:
        """[B, T] bool, True at real events."""
        steps = torch.arange(self.event_time.shape[1], device=self.lengths.device)
        return steps[None, :] < self.lengths[:, None]

    @property
    def batch_size(self) -> int:
        return int(self.lengths.shape[0])

    @property
    def max_length(self) -> int:
        return int(self.event_time.shape[1])

    def to(self, device: torch.device | str) -> Batch:
        return replace(
            self,
            features={name: value.to(device) for name, value in self.features.items()},
            event_time=self.event_time.to(device),
            lengths=self.lengths.to(device),
            index=self.index.to(device),
            target=None if self.target is None else self.target.to(device),
            extra={name: value.to(device) for name, value in self.extra.items()},
            text_vectors={name: value.to(device) for name, value in self.text_vectors.items()},
        )

    def __len__(self) -> int:
        return self.batch_size
