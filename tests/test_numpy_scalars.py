"""NumPy scalars work wherever Python numbers do, and reach Keras and the
configs as Python numbers; configs hold the arguments as given."""

import json

import keras
import numpy as np

import keras_seqext
from keras_seqext import AttentionDecoder
from keras_seqext import GradientNormMonitor
from keras_seqext import LSTMAutoencoder
from keras_seqext import LuongAttention
from keras_seqext import ScheduledSampling
from keras_seqext.decoding import beam_search
from keras_seqext.decoding import sample_decode
from keras_seqext.layers import LSTMEncoder


def json_config(layer):
    """The config as JSON: a NumPy scalar in it would not serialize."""
    return json.loads(json.dumps(layer.get_config()))


def test_attention_decoder():
    decoder = AttentionDecoder(
        np.int64(4),
        np.int32(6),
        output_length=np.int64(3),
        embedding_dim=np.int16(2),
        start_token=np.int64(1),
        teacher_forcing_probability=np.float32(0.5),
        seed=np.int64(1),
    )
    memory = np.random.rand(2, 5, 3).astype("float32")
    targets = np.ones((2, 3), "int32")
    outputs = decoder(memory, targets=targets, training=True)
    assert tuple(outputs.shape) == (2, 3, 6)
    config = json_config(decoder)
    assert config["units"] == 4 and config["seed"] == 1
    assert config["teacher_forcing_probability"] == 0.5


def test_lstm_autoencoder_predicts_with_numpy_sizes():
    autoencoder = LSTMAutoencoder(
        np.int64(8), mode="predict", prediction_length=np.int64(2)
    )
    inputs = keras.Input((None, 1))
    model = keras.Model(inputs, autoencoder(inputs))
    predictions = model.predict(np.zeros((3, 4, 1), "float32"), verbose=0)
    assert predictions.shape == (3, 2, 1)
    assert json_config(autoencoder)["prediction_length"] == 2


def test_configs_hold_units_as_given():
    assert json_config(LSTMAutoencoder(8))["units"] == 8
    assert json_config(LSTMAutoencoder([64, 32]))["units"] == [64, 32]
    assert json_config(LSTMEncoder((16, 8)))["units"] == [16, 8]
    assert json_config(LSTMEncoder(np.int64(8)))["units"] == 8
    revived = LSTMAutoencoder.from_config(LSTMAutoencoder(8).get_config())
    assert revived.get_config()["units"] == 8


def test_luong_attention_and_callbacks():
    attention = LuongAttention(
        "concat", units=np.int64(5), attentional_units=np.int64(3)
    )
    query = np.random.rand(2, 3, 4).astype("float32")
    assert tuple(attention([query, query]).shape) == (2, 3, 3)
    assert json_config(attention)["units"] == 5
    monitor = GradientNormMonitor(
        log_every_n_steps=np.int64(2),
        norm_type=np.int64(2),
        per_layer=np.bool_(True),
        warn_above=np.float32(10.0),
    )
    assert monitor.per_layer is True and type(monitor.norm_type) is int
    sampling = ScheduledSampling("linear", k=np.float32(1.0), c=np.float64(0.1))
    assert abs(sampling.schedule(2) - 0.8) < 1e-6


def test_decoding_and_datasets():
    x, _ = keras_seqext.datasets.copy_first(np.int64(4), seed=np.int64(1))
    model = keras.Sequential(
        [
            keras.Input((5, 50)),
            keras.layers.LSTM(4, return_sequences=True),
            AttentionDecoder(4, 50, output_length=3),
        ]
    )
    sequences, _, _ = beam_search(
        model,
        x,
        beam_width=np.int64(2),
        end_token=np.int64(0),
        length_penalty=np.float32(0.6),
    )
    assert sequences.shape == (4, 3)
    sampled, _, _ = sample_decode(
        model,
        x,
        temperature=np.float32(0.5),
        top_k=np.int64(3),
        seed=np.int64(2),
    )
    assert sampled.shape == (4, 3)
