"""Sequence-to-sequence layers."""

from keras_seqext.layers.attention_decoder import AttentionDecoder
from keras_seqext.layers.attention_decoder import AttentionDecoderCell
