"""Training callbacks."""

from keras_seqext.callbacks.attention_heatmap import AttentionHeatmap
from keras_seqext.callbacks.gradient_norm_monitor import GradientNormMonitor
from keras_seqext.callbacks.scheduled_sampling import ExponentialDecay
from keras_seqext.callbacks.scheduled_sampling import InverseSigmoidDecay
from keras_seqext.callbacks.scheduled_sampling import LinearDecay
from keras_seqext.callbacks.scheduled_sampling import ScheduledSampling

__all__ = [
    "AttentionHeatmap",
    "ExponentialDecay",
    "GradientNormMonitor",
    "InverseSigmoidDecay",
    "LinearDecay",
    "ScheduledSampling",
]
