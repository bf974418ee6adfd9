"""Sequence-to-sequence layers and callbacks for Keras 3."""

from keras_seqext import datasets
from keras_seqext import metrics

__version__ = "0.1.0"
