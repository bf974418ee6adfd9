"""Sequence-to-sequence layers and callbacks for Keras 3."""

from keras_seqext import callbacks
from keras_seqext import datasets
from keras_seqext import decoding
from keras_seqext import layers
from keras_seqext import metrics
from keras_seqext import plotting
from keras_seqext.callbacks import AttentionHeatmap
from keras_seqext.callbacks import GradientNormMonitor
from keras_seqext.callbacks import ScheduledSampling
from keras_seqext.layers import AttentionDecoder
from keras_seqext.layers import AttentionDecoderCell
from keras_seqext.layers import LSTMAutoencoder
from keras_seqext.layers import LuongAttention

__version__ = "0.1.0"

__all__ = [
    "AttentionDecoder",
    "AttentionDecoderCell",
    "AttentionHeatmap",
    "GradientNormMonitor",
    "LSTMAutoencoder",
    "LuongAttention",
    "ScheduledSampling",
    "callbacks",
    "datasets",
    "decoding",
    "layers",
    "metrics",
    "plotting",
]
