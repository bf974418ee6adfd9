"""Sequence-to-sequence layers."""

from keras_seqext.layers.attention_decoder import AttentionDecoder
from keras_seqext.layers.attention_decoder_cell import AttentionDecoderCell
from keras_seqext.layers.dense_gradient_embedding import DenseGradientEmbedding
from keras_seqext.layers.lstm_autoencoder import LSTMAutoencoder
from keras_seqext.layers.lstm_autoencoder import LSTMEncoder
from keras_seqext.layers.luong_attention import LuongAttention

__all__ = [
    "AttentionDecoder",
    "AttentionDecoderCell",
    "DenseGradientEmbedding",
    "LSTMAutoencoder",
    "LSTMEncoder",
    "LuongAttention",
]
