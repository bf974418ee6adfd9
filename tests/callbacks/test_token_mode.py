"""The callbacks on a decoder in token mode, all three in one `fit`."""

import keras
import matplotlib
import numpy as np

import keras_seqext
from keras_seqext import AttentionDecoder
from keras_seqext.datasets import START_TOKEN
from keras_seqext.datasets import synthetic_translation
from tests.test_case import TestCase

# No window may open: the tests only render to files.
matplotlib.use("Agg")

VOCABULARY, MAX_LENGTH = 30, 4


def token_model():
    source = keras.Input((MAX_LENGTH,), dtype="int32", name="source")
    targets = keras.Input(
        (MAX_LENGTH + 1,), dtype="int32", name="targets", optional=True
    )
    embedded = keras.layers.Embedding(
        VOCABULARY, 6, mask_zero=True, name="embedding"
    )(source)
    decoder = AttentionDecoder(
        8,
        VOCABULARY,
        embedding_dim=6,
        output_length=MAX_LENGTH + 1,
        start_token=START_TOKEN,
        output_activation=None,
        seed=0,
        name="decoder",
    )
    return keras.Model([source, targets], decoder(embedded, targets=targets))


class TestCallbacksInTokenMode(TestCase):
    def test_scheduled_sampling_norms_and_heatmaps(self, tmp_path):
        source, target = synthetic_translation(
            32, VOCABULARY, 2, MAX_LENGTH, seed=0
        )
        model = token_model()
        model.compile(
            "adam",
            keras.losses.SparseCategoricalCrossentropy(
                from_logits=True, ignore_class=0
            ),
        )
        sampling = keras_seqext.ScheduledSampling("linear", c=0.1)
        monitor = keras_seqext.GradientNormMonitor()
        heatmaps = keras_seqext.AttentionHeatmap(
            [source[:2], None], directory=str(tmp_path)
        )
        history = model.fit(
            [source, target],
            target,
            batch_size=8,
            epochs=2,
            verbose=0,
            callbacks=[monitor, sampling, heatmaps],
        )
        # Four batches an epoch: the probability after batch 7 of 8.
        decoder = model.get_layer("decoder")
        self.assertAllClose(decoder.teacher_forcing_probability, 0.3)
        assert np.all(np.isfinite(history.history["grad_norm"]))
        assert np.all(np.asarray(history.history["grad_norm"]) > 0)
        # The heatmaps are the free-running decoder's weights.
        reference = AttentionDecoder.from_config(
            {**decoder.get_config(), "return_attention_weights": True}
        )
        memory = model.get_layer("embedding")(source[:2])
        mask = source[:2] != 0
        reference(memory, mask=mask)
        reference.set_weights(decoder.get_weights())
        _, expected = reference(memory, mask=mask)
        self.assertAllClose(heatmaps.attention_weights, expected, atol=1e-5)
        assert len(list(tmp_path.iterdir())) == 4
