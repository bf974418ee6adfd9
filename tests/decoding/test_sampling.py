"""`sample_decode` and the sampling distribution it draws from."""

import keras
import numpy as np
import pytest

from keras_seqext.decoding import greedy_decode
from keras_seqext.decoding import sample_decode
from keras_seqext.decoding._numpy_decoding import filtered_probabilities
from tests.decoding.test_decoding import END
from tests.decoding.test_decoding import make_model
from tests.decoding.test_decoding import make_token_model
from tests.decoding.test_decoding import predict
from tests.decoding.test_decoding import random_inputs
from tests.test_case import TestCase


def reference_distribution(log_probs, temperature, top_k, top_p):
    """The sampling distribution of one row, from its definition: the
    tempered softmax; the `top_k` most probable tokens; of those, the
    fewest most probable whose probability reaches `top_p`."""
    p = np.exp(log_probs / temperature)
    p /= p.sum()
    order = sorted(range(len(p)), key=lambda token: (-p[token], token))
    kept = order[:top_k] if top_k else order
    if top_p is not None:
        total, nucleus = 0.0, []
        for token in kept:
            nucleus.append(token)
            total += p[token]
            if total >= top_p:
                break
        kept = nucleus
    q = np.zeros_like(p)
    q[kept] = p[kept]
    return q / q.sum()


class TestFilteredProbabilities(TestCase):
    @pytest.mark.parametrize(
        "temperature, top_k, top_p",
        [
            (1.0, None, None),
            (0.5, None, None),
            (2.0, 3, None),
            (1.0, None, 0.5),
            (1.0, None, 0.9),
            (0.7, 4, 0.8),
            (1.0, 1, None),
            (1.0, None, 1.0),
        ],
    )
    def test_matches_the_definition(self, temperature, top_k, top_p):
        rng = np.random.default_rng(0)
        log_probs = np.log(rng.dirichlet(np.ones(8), size=20))
        actual = filtered_probabilities(log_probs, temperature, top_k, top_p)
        for row, probabilities in zip(log_probs, actual):
            expected = reference_distribution(row, temperature, top_k, top_p)
            self.assertAllClose(probabilities, expected, atol=1e-12)

    def test_top_p_keeps_the_token_that_reaches_p(self):
        log_probs = np.log(np.array([[0.5, 0.3, 0.2]]))
        # 0.5 alone is short of 0.6; with 0.3 the set reaches it.
        kept = filtered_probabilities(log_probs, top_p=0.6) > 0
        np.testing.assert_array_equal(kept, [[True, True, False]])
        kept = filtered_probabilities(log_probs, top_p=0.5) > 0
        np.testing.assert_array_equal(kept, [[True, False, False]])

    def test_ties_keep_the_lower_id_as_argmax_does(self):
        log_probs = np.log(np.array([[0.2, 0.4, 0.4]]))
        kept = filtered_probabilities(log_probs, top_k=1) > 0
        np.testing.assert_array_equal(kept, [[False, True, False]])


@pytest.fixture(scope="module", params=["one_hot", "tokens"])
def model(request):
    return make_model() if request.param == "one_hot" else make_token_model()


class TestSampleDecode(TestCase):
    @pytest.mark.parametrize("end_token", [None, END])
    def test_top_k_one_is_greedy(self, model, end_token):
        x = [random_inputs(), None]
        greedy = greedy_decode(model, x, end_token=end_token)
        sampled = sample_decode(model, x, top_k=1, seed=3, end_token=end_token)
        for actual, expected in zip(sampled, greedy):
            np.testing.assert_array_equal(actual, expected)

    def test_same_seed_same_samples(self, model):
        x = [np.repeat(random_inputs()[:1], 64, axis=0), None]
        first = sample_decode(model, x, seed=7)
        again = sample_decode(model, x, seed=7)
        other = sample_decode(model, x, seed=8)
        for actual, expected in zip(again, first):
            np.testing.assert_array_equal(actual, expected)
        assert np.any(other[0] != first[0])

    def test_draws_follow_the_model_distribution(self, model):
        """4000 draws of the first token of one input: their frequencies
        are the model's probabilities (within 0.03), and each score is the
        model's log-probability of the drawn token."""
        draws = 4000
        x = [np.repeat(random_inputs()[:1], draws, axis=0), None]
        outputs = predict(model, [x[0][:1], None])[0][0, 0]
        if model.layers[-1].output_activation is keras.activations.linear:
            probabilities = np.exp(outputs - outputs.max())
            probabilities /= probabilities.sum()
        else:
            probabilities = outputs
        sequences, scores, _ = sample_decode(model, x, seed=0, max_length=1)
        frequencies = np.bincount(sequences[:, 0], minlength=3) / draws
        self.assertAllClose(frequencies, probabilities, atol=0.03)
        self.assertAllClose(
            scores, np.log(probabilities[sequences[:, 0]]), atol=1e-5
        )


class TestErrors:
    @pytest.mark.parametrize(
        "kwargs, argument",
        [
            ({"temperature": 0}, "temperature"),
            ({"temperature": -1.0}, "temperature"),
            ({"temperature": float("nan")}, "temperature"),
            ({"temperature": float("inf")}, "temperature"),
            ({"top_k": 0}, "top_k"),
            ({"top_k": 1.5}, "top_k"),
            ({"top_p": 0.0}, "top_p"),
            ({"top_p": 1.5}, "top_p"),
            ({"top_p": float("nan")}, "top_p"),
            ({"seed": "1"}, "seed"),
            ({"max_length": 0}, "max_length"),
            ({"end_token": 3}, "end_token"),
        ],
    )
    def test_bad_argument(self, kwargs, argument):
        with pytest.raises(ValueError, match=f"`{argument}` of sample_decode"):
            sample_decode(make_model(), [random_inputs(), None], **kwargs)
