import os
import sys

import keras
import matplotlib
import numpy as np
import pytest
from matplotlib import image

from keras_seqext import AttentionDecoder
from keras_seqext.callbacks import AttentionHeatmap
from keras_seqext.callbacks import attention_heatmap
from tests.test_case import TestCase

# No window may open: the tests only render to files.
matplotlib.use("Agg")

LENGTH, VOCABULARY, CLASSES, OUTPUT_LENGTH, UNITS = 5, 7, 4, 3, 4


def data():
    """Token ids with 0 as padding at the end, and one-hot targets."""
    rng = np.random.default_rng(0)
    x = rng.integers(1, VOCABULARY, (6, LENGTH))
    x[0, 2:] = 0
    x[1, 4:] = 0
    y = np.eye(CLASSES, dtype="float32")[
        rng.integers(0, CLASSES, (6, OUTPUT_LENGTH))
    ]
    return x, y


def teacher_forced_model():
    """The date example's model in small, the targets an optional input."""
    source = keras.Input((LENGTH,), dtype="int32", name="source")
    targets = keras.Input(
        (OUTPUT_LENGTH, CLASSES), name="targets", optional=True
    )
    # No encoder RNN: the decoder reads the embeddings, which keeps `fit`'s
    # compilation short.
    embedded = keras.layers.Embedding(
        VOCABULARY, 3, mask_zero=True, name="embedding"
    )(source)
    decoder = AttentionDecoder(
        UNITS, CLASSES, output_length=OUTPUT_LENGTH, seed=0, name="decoder"
    )
    return keras.Model([source, targets], decoder(embedded, targets=targets))


def sequential_model(*decoders):
    """Decoders reading masked embeddings (no encoder RNN, for speed)."""
    return keras.Sequential(
        [
            keras.Input((LENGTH,), dtype="int32"),
            keras.layers.Embedding(VOCABULARY, 3, mask_zero=True),
            *decoders,
        ]
    )


def start(callback, model):
    """What `fit` does before the first epoch ends."""
    callback.set_model(model)
    callback.on_train_begin()


class TestAttentionHeatmap(TestCase):
    def test_saves_the_current_attention_every_n_epochs(self, tmp_path):
        model = teacher_forced_model()
        model.compile(keras.optimizers.Adam(0.05), "categorical_crossentropy")
        x, y = data()
        callback = AttentionHeatmap(
            [x[:2], None],
            directory=str(tmp_path),
            every_n_epochs=2,
            decoder="decoder",
        )
        model.fit(
            [x, y], y, batch_size=6, epochs=4, verbose=0, callbacks=[callback]
        )
        names = sorted(os.listdir(tmp_path))
        assert names == [
            "example0_epoch002.png",
            "example0_epoch004.png",
            "example1_epoch002.png",
            "example1_epoch004.png",
        ]
        assert image.imread(tmp_path / names[0]).ndim == 3
        # The last heatmaps show the trained model's weights, as a decoder
        # returning them computes from the embeddings and the padding mask
        # given by hand.
        memory = model.get_layer("embedding")(x[:2])
        reference = AttentionDecoder(
            UNITS,
            CLASSES,
            output_length=OUTPUT_LENGTH,
            return_attention_weights=True,
        )
        mask = x[:2] != 0
        reference(memory, mask=mask)
        reference.set_weights(model.get_layer("decoder").get_weights())
        _, expected = reference(memory, mask=mask)
        self.assertAllClose(callback.attention_weights, expected, atol=1e-5)
        assert np.all(callback.attention_weights[0][:, 2:] == 0)

    def test_labels(self, tmp_path, monkeypatch):
        drawn = []

        def recording_plot(weights, input_labels, output_labels):
            drawn.append((weights, input_labels, output_labels))
            return plot_attention(weights, input_labels, output_labels)

        plot_attention = attention_heatmap.plot_attention
        monkeypatch.setattr(attention_heatmap, "plot_attention", recording_plot)
        decoder = AttentionDecoder(UNITS, CLASSES, output_length=OUTPUT_LENGTH)
        model = sequential_model(decoder)
        x, _ = data()
        labelled = AttentionHeatmap(
            x[:2],
            directory=str(tmp_path),
            input_labels=["ab", ["p", "q", "r", "s"]],
            output_labels=lambda outputs: outputs.argmax(-1).astype(str),
            decoder=decoder,
        )
        start(labelled, model)
        labelled.on_epoch_end(0)
        predicted = model.predict(x[:2], verbose=0).argmax(-1).astype(str)
        (first, first_in, first_out), (_, second_in, second_out) = drawn
        # Labels shorter than the input crop the heatmap: here its padding.
        assert first.shape == (OUTPUT_LENGTH, 2)
        assert first_in == ["a", "b"]
        assert second_in == ["p", "q", "r", "s"]
        assert [first_out, second_out] == predicted.tolist()

        drawn.clear()
        unlabelled = AttentionHeatmap(x[:1], directory=str(tmp_path))
        start(unlabelled, model)
        unlabelled.on_epoch_end(0)
        ((weights, input_labels, output_labels),) = drawn
        assert weights.shape == (OUTPUT_LENGTH, LENGTH)
        assert input_labels == ["0", "1", "2", "3", "4"]
        assert output_labels == ["0", "1", "2"]

    @pytest.mark.skipif(
        keras.backend.backend() != "tensorflow",
        reason="tf.summary: TensorFlow is loaded on its own backend's run",
    )
    def test_tensorboard_images(self, tmp_path):
        import tensorflow as tf

        model = sequential_model(
            AttentionDecoder(UNITS, CLASSES, output_length=OUTPUT_LENGTH)
        )
        x, _ = data()
        callback = AttentionHeatmap(x[:2], log_dir=str(tmp_path))
        start(callback, model)
        callback.on_epoch_end(0)
        callback.on_epoch_end(1)
        callback.on_train_end()
        images = []
        for name in os.listdir(tmp_path / "train"):
            path = str(tmp_path / "train" / name)
            for event in tf.compat.v1.train.summary_iterator(path):
                for value in event.summary.value:
                    assert value.metadata.plugin_data.plugin_name == "images"
                    width, height, png = value.tensor.string_val
                    decoded = tf.io.decode_png(png).shape
                    assert decoded[:2] == (int(height), int(width))
                    images.append((value.tag, event.step))
        assert sorted(images) == [
            ("attention/example0", 0),
            ("attention/example0", 1),
            ("attention/example1", 0),
            ("attention/example1", 1),
        ]


class TestErrors:
    @pytest.mark.parametrize(
        "kwargs, message",
        [
            ({}, "`directory` for PNG files, a TensorBoard `log_dir`"),
            ({"directory": "d", "every_n_epochs": 0}, "`every_n_epochs`"),
            ({"directory": "d", "input_labels": ["ab"]}, "2 in all"),
            ({"directory": "d", "output_labels": "ab"}, "`output_labels`"),
            ({"directory": "d", "decoder": 3}, "`decoder`"),
        ],
    )
    def test_bad_arguments(self, kwargs, message):
        x, _ = data()
        with pytest.raises(ValueError, match=message):
            AttentionHeatmap(x[:2], **kwargs)

    def test_needs_exactly_one_decoder(self, tmp_path):
        x = data()[0]
        directory = str(tmp_path)
        with pytest.raises(ValueError, match=r"layers \[\]"):
            start(AttentionHeatmap(x, directory), sequential_model())
        # Found before the model is built.
        two = keras.Sequential(
            [
                AttentionDecoder(UNITS, UNITS, name="first"),
                AttentionDecoder(UNITS, CLASSES, name="second"),
            ]
        )
        with pytest.raises(ValueError, match=r"\['first', 'second'\]"):
            start(AttentionHeatmap(x, directory), two)
        with pytest.raises(ValueError, match="decoder='third'"):
            start(AttentionHeatmap(x, directory, decoder="third"), two)

    def test_decoder_in_a_nested_model(self, tmp_path):
        inner = sequential_model(AttentionDecoder(UNITS, CLASSES))
        source = keras.Input((LENGTH,), dtype="int32")
        outer = keras.Model(source, inner(source))
        callback = AttentionHeatmap(data()[0], str(tmp_path))
        with pytest.raises(ValueError, match="not in a nested model"):
            start(callback, outer)

    def test_missing_matplotlib_names_the_extra(self, monkeypatch):
        monkeypatch.setitem(sys.modules, "matplotlib", None)
        monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
        with pytest.raises(ImportError, match=r"keras-seqext\[plot\]"):
            AttentionHeatmap(np.ones((1, 2)), directory="d")

    def test_log_dir_without_tensorflow(self, monkeypatch):
        monkeypatch.setitem(sys.modules, "tensorflow", None)
        with pytest.raises(ImportError, match="pip install tensorflow"):
            AttentionHeatmap(np.ones((1, 2)), log_dir="logs")
