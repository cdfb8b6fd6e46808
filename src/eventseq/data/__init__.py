"""Data: raw events → sequence table → dataset → batches."""

from eventseq.data.batch import Batch
from eventseq.data.dataset import SequenceDataset
from eventseq.data.prepare import (
    PrepareConfig,
    PreparedData,
    PrepareReport,
    SequencePreparer,
    encode_events,
    load_prepared,
    prepare,
    read_events,
)
from eventseq.data.sampler import LengthBucketSampler
from eventseq.data.schema import CategoricalFeature, NumericFeature, Schema, Target, TextFeature
from eventseq.data.splits import split_by_entity, split_by_time

__all__ = [
    "Batch", "SequenceDataset", "PrepareConfig", "PreparedData", "PrepareReport", "SequencePreparer",
    "encode_events", "load_prepared", "prepare", "read_events", "LengthBucketSampler",
    "CategoricalFeature", "NumericFeature", "Schema", "Target", "TextFeature", "split_by_entity", "split_by_time",
]
