"""What is under a mask reaches no output and no gradient: NaN and
infinities there change nothing, in every layer that masks and in the
decoding functions."""

import keras
import numpy as np
import pytest

from keras_seqext import AttentionDecoder
from keras_seqext import LuongAttention
from keras_seqext.decoding import beam_search
from keras_seqext.decoding import greedy_decode
from tests.layers.test_attention_decoder import SCORE_KWARGS
from tests.layers.test_attention_decoder import UNITS
from tests.test_case import TestCase
from tests.test_case import gradients

BATCH, LENGTH, FEATURES = 3, 6, 4
# Two masked steps at the end of the first sequence, one at the start of
# the second (where the decoder's initial state is read), none in the last.
MASK = np.ones((BATCH, LENGTH), bool)
MASK[0, 4:] = False
MASK[1, 0] = False
POISONS = [np.nan, np.inf]


def under_mask(values, mask, fill):
    values = values.copy()
    values[~mask] = fill
    return values


def random_values(features=FEATURES, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(BATCH, LENGTH, features)).astype("float32")


def outputs_and_gradients(layer, call, arrays):
    """The layer's outputs on `arrays`, and the gradients of a weighted sum
    of them with respect to every array and every trainable weight."""
    outputs = keras.tree.flatten(call(*arrays))
    weights = [keras.ops.convert_to_numpy(w) for w in layer.trainable_weights]

    def loss(*tensors):
        values = list(tensors[len(arrays) :])
        non_trainable = [w.value for w in layer.non_trainable_weights]
        with keras.StatelessScope(
            list(zip(layer.trainable_weights, values))
            + list(zip(layer.non_trainable_weights, non_trainable))
        ):
            results = keras.tree.flatten(call(*tensors[: len(arrays)]))
        return sum(
            keras.ops.sum(result * (index + 1.5))
            for index, result in enumerate(results)
        )

    return outputs, gradients(loss, [*arrays, *weights])


class TestMaskedValuesChangeNothing(TestCase):
    def check(self, layer, call, clean, poisoned):
        expected, expected_grads = outputs_and_gradients(layer, call, clean)
        actual, actual_grads = outputs_and_gradients(layer, call, poisoned)
        for got, wanted in zip(actual, expected):
            self.assertAllClose(got, wanted, atol=1e-6)
        for got, wanted in zip(actual_grads, expected_grads):
            assert np.all(np.isfinite(got))
            self.assertAllClose(got, wanted, atol=1e-6)
        return expected_grads

    @pytest.mark.parametrize("score", list(SCORE_KWARGS))
    @pytest.mark.parametrize("tokens", [False, True], ids=["one_hot", "ids"])
    @pytest.mark.parametrize("poison", POISONS)
    def test_attention_decoder(self, score, tokens, poison):
        features = UNITS if score == "dot" else FEATURES
        decoder = AttentionDecoder(
            UNITS,
            7,
            embedding_dim=3 if tokens else None,
            output_length=4,
            return_attention_weights=True,
            **SCORE_KWARGS[score],
        )
        memory = random_values(features)
        decoder(memory, mask=MASK)

        def call(memory):
            return decoder(memory, mask=MASK)

        zeroed = under_mask(memory, MASK, 0.0)
        grads = self.check(
            decoder, call, [zeroed], [under_mask(memory, MASK, poison)]
        )
        # The masked steps get no gradient; the others do.
        assert np.all(grads[0][~MASK] == 0)
        assert np.any(grads[0][MASK] != 0)

    @pytest.mark.parametrize("score", ["dot", "general", "concat", "location"])
    @pytest.mark.parametrize("poison", POISONS)
    def test_luong_attention(self, score, poison):
        kwargs = {"units": 5} if score == "concat" else {}
        attention = LuongAttention(score, attentional_units=4, **kwargs)
        query_mask = np.ones((BATCH, LENGTH), bool)
        query_mask[2, -1] = False
        query, value = random_values(seed=1), random_values(seed=2)

        def call(query, value):
            return attention([query, value], mask=[query_mask, MASK])

        call(query, value)
        clean = [under_mask(query, query_mask, 0.0), under_mask(value, MASK, 0)]
        poisoned = [
            under_mask(query, query_mask, poison),
            under_mask(value, MASK, poison),
        ]
        self.check(attention, call, clean, poisoned)


def masked_decoder_model():
    """The decoder reading a memory and its mask, both model inputs."""
    memory = keras.Input((LENGTH, FEATURES))
    mask = keras.Input((LENGTH,), dtype="bool")
    decoder = AttentionDecoder(UNITS, 5, output_length=4)
    model = keras.Model([memory, mask], decoder(memory, mask=mask))
    rng = np.random.default_rng(3)
    for weight in model.trainable_weights:
        weight.assign(rng.normal(scale=0.7, size=weight.shape))
    return model


@pytest.mark.parametrize("poison", POISONS)
def test_decoding_ignores_masked_values(poison):
    model = masked_decoder_model()
    memory = random_values()
    clean = [under_mask(memory, MASK, 0.0), MASK]
    poisoned = [under_mask(memory, MASK, poison), MASK]
    for decode in (
        lambda inputs: greedy_decode(model, inputs, end_token=0),
        lambda inputs: beam_search(model, inputs, 3, end_token=0),
    ):
        for actual, expected in zip(decode(poisoned), decode(clean)):
            np.testing.assert_allclose(actual, expected, atol=1e-6)
