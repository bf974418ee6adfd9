"""Sequence metrics."""

from keras_seqext.metrics.sequence_accuracy import SequenceAccuracy

__all__ = [
    "SequenceAccuracy",
]
