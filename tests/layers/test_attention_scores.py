import numpy as np
from keras import ops

from keras_seqext.layers.attention_scores import additive_scores
from keras_seqext.layers.attention_scores import context_vectors
from keras_seqext.layers.attention_scores import masked_softmax
from tests.test_case import TestCase
from tests.test_case import gradients


class TestAdditiveScores(TestCase):
    def test_matches_the_formula(self):
        rng = np.random.default_rng(0)
        query = rng.normal(size=(2, 3, 4)).astype("float32")
        keys = rng.normal(size=(2, 5, 4)).astype("float32")
        vector = rng.normal(size=(4,)).astype("float32")
        expected = np.einsum(
            "bqkd,d->bqk", np.tanh(query[:, :, None] + keys[:, None]), vector
        )
        scores = additive_scores(query, keys, vector)
        self.assertAllClose(scores, expected, atol=1e-6)

    def test_gradients_match_the_closed_form(self):
        # On JAX the backward pass recomputes tanh(q + k); on every backend
        # it must give the same gradients as the formula.
        rng = np.random.default_rng(1)
        query = rng.normal(size=(2, 3, 4)).astype("float32")
        keys = rng.normal(size=(2, 5, 4)).astype("float32")
        vector = rng.normal(size=(4,)).astype("float32")
        upstream = rng.normal(size=(2, 3, 5)).astype("float32")
        hidden = np.tanh(query[:, :, None] + keys[:, None])
        before_tanh = upstream[..., None] * vector * (1 - hidden**2)
        expected = [
            before_tanh.sum(2),
            before_tanh.sum(1),
            np.einsum("bqk,bqkd->d", upstream, hidden),
        ]

        def weighted_sum(query, keys, vector):
            scores = additive_scores(query, keys, vector)
            return ops.sum(ops.multiply(scores, upstream))

        actual = gradients(weighted_sum, [query, keys, vector])
        for got, want in zip(actual, expected):
            self.assertAllClose(got, want, atol=1e-5, rtol=1e-5)


class TestMaskedSoftmax(TestCase):
    def test_closed_form(self):
        weights = masked_softmax(np.array([[[0.0, 1.0]]], "float32"))
        e = np.e
        self.assertAllClose(weights, [[[1 / (1 + e), e / (1 + e)]]])

    def test_masked_position_gets_exactly_zero(self):
        scores = np.array([[[3.0, 50.0]]], "float32")
        weights = masked_softmax(scores, np.array([[[True, False]]]))
        assert ops.convert_to_numpy(weights).tolist() == [[[1.0, 0.0]]]

    def test_fully_masked_row_is_zero_not_nan(self):
        scores = np.array([[[1.0, 2.0], [1.0, 2.0]]], "float32")
        mask = np.array([[[True, True], [False, False]]])
        weights = ops.convert_to_numpy(masked_softmax(scores, mask))
        assert weights[0, 1].tolist() == [0.0, 0.0]
        self.assertAllClose(weights[0, 0].sum(), 1.0)

    def test_float16_keeps_its_dtype_and_does_not_overflow(self):
        # exp(20) overflows float16; the softmax runs in float32.
        scores = np.array([[[20.0, 0.0, -20.0]]], "float16")
        weights = masked_softmax(scores, np.array([[[True, True, True]]]))
        assert ops.dtype(weights) == "float16"
        self.assertAllClose(weights, [[[1.0, 0.0, 0.0]]], atol=1e-3)


class TestContextVectors(TestCase):
    def test_weighted_sum(self):
        weights = np.array([[[0.25, 0.75]]], "float32")
        values = np.array([[[4.0, 0.0], [0.0, 8.0]]], "float32")
        self.assertAllClose(context_vectors(weights, values), [[[1.0, 6.0]]])
