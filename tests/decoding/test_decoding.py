import itertools

import keras
import numpy as np
import pytest
from keras import ops

from keras_seqext import AttentionDecoder
from keras_seqext.decoding import beam_search
from keras_seqext.decoding import greedy_decode
from tests.test_case import TestCase

BATCH, INPUT_LENGTH, FEATURES, UNITS = 6, 4, 3, 4
# Small enough to score all VOCABULARY ** LENGTH sequences.
VOCABULARY, LENGTH = 3, 3
# Keeps every hypothesis of the last step but one: beam search is exact.
EXACT_BEAM = VOCABULARY ** (LENGTH - 1)
END = 1
# The seeds of the weights and of the beam tests' inputs, on which the
# tests' data conditions hold.
WEIGHT_SEED, BEAM_SEED = 2, 2
# The spread of the random weights: the untrained decoder's distributions
# are then neither flat (the best sequences would be near ties) nor sharp
# (greedy decoding would always find the best).
WEIGHT_SCALE = 0.6


def random_inputs(seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(BATCH, INPUT_LENGTH, FEATURES)).astype("float32")


def set_random_weights(model):
    """Draws the weights with NumPy: the backends' initializers differ, and
    the tests' data conditions must hold on all of them."""
    rng = np.random.default_rng(WEIGHT_SEED)
    for weight in model.trainable_weights:
        weight.assign(rng.normal(scale=WEIGHT_SCALE, size=weight.shape))


def make_model():
    """A Dense encoder and the decoder, with the teacher-forcing targets as a
    second, optional input. The decoder feeds back one-hot argmaxes, so its
    own decoding is greedy, and returns its attention weights."""
    source = keras.Input((INPUT_LENGTH, FEATURES))
    targets = keras.Input((LENGTH, VOCABULARY), optional=True)
    encoded = keras.layers.Dense(UNITS, activation="tanh")(source)
    decoder = AttentionDecoder(
        UNITS,
        VOCABULARY,
        output_length=LENGTH,
        feedback="one_hot",
        return_attention_weights=True,
    )
    model = keras.Model([source, targets], decoder(encoded, targets=targets))
    set_random_weights(model)
    return model


def predict(model, inputs):
    """The model's outputs as NumPy arrays, from an eager call: quicker than
    `predict`, which compiles, for one small batch."""
    return [ops.convert_to_numpy(t) for t in model(inputs, training=False)]


def exhaustive_search(model, x):
    """Teacher-forces every sequence through the model.

    Returns all sequences `(n, LENGTH)`, and for each example the
    log-probability of each of their tokens, `(BATCH, n, LENGTH)`, and the
    attention weights, `(BATCH, n, LENGTH, INPUT_LENGTH)`.
    """
    sequences = itertools.product(range(VOCABULARY), repeat=LENGTH)
    sequences = np.array(list(sequences))
    n = len(sequences)
    targets = np.eye(VOCABULARY, dtype="float32")[sequences]
    # Teacher forcing is for training; its probability is 1 by default.
    outputs, weights = model(
        [np.repeat(x, n, axis=0), np.tile(targets, (BATCH, 1, 1))],
        training=True,
    )
    outputs = ops.convert_to_numpy(outputs).reshape(BATCH, n, LENGTH, -1)
    weights = ops.convert_to_numpy(weights).reshape(BATCH, n, LENGTH, -1)
    chosen = np.take_along_axis(outputs, sequences[None, ..., None], -1)
    return sequences, np.log(chosen[..., 0]), weights


@pytest.fixture(scope="module")
def model():
    """`make_model()`, built once for the tests that only decode with it."""
    return make_model()


@pytest.fixture(scope="module")
def reference(model):
    """The model's inputs and outputs: as its decoder feeds back one-hot
    argmaxes, they are those of the greedy decode."""
    x = random_inputs()
    return x, *predict(model, [x, None])


@pytest.fixture(scope="module")
def exhaustive(model):
    """The beam tests' inputs and `exhaustive_search` on them."""
    x = random_inputs(BEAM_SEED)
    return x, *exhaustive_search(model, x)


def counted_steps(sequences, end_token):
    """True up to and including each sequence's first `end_token`."""
    if end_token is None:
        return np.ones(sequences.shape, bool)
    ends = sequences == end_token
    return np.cumsum(ends, axis=-1) - ends == 0


def ended(sequences, end_token):
    """The sequences with each token after the first `end_token` set to it."""
    if end_token is None:
        return sequences
    return np.where(counted_steps(sequences, end_token), sequences, end_token)


def scores_of(sequences, log_probs, end_token, length_penalty=0.0):
    """The summed log-probabilities up to the end token, over the GNMT
    length penalty, as written in Wu et al. (2016)."""
    counted = counted_steps(sequences, end_token)
    lengths = counted.sum(-1)
    penalty = ((5 + lengths) / 6) ** length_penalty
    return np.where(counted, log_probs, 0.0).sum(-1) / penalty


class TestGreedyDecode(TestCase):
    def test_is_the_argmax_of_one_hot_feedback_outputs(self, model, reference):
        x, outputs, weights = reference
        sequences, scores, decoded_weights = greedy_decode(model, [x, None])
        assert sequences.dtype == np.int32
        # The default length is the decoder's output_length.
        np.testing.assert_array_equal(sequences, outputs.argmax(-1))
        self.assertAllClose(scores, np.log(outputs.max(-1)).sum(-1), atol=1e-5)
        self.assertAllClose(decoded_weights, weights, atol=1e-6)

    @pytest.mark.parametrize("given", ["initial_state", "mask"])
    def test_uses_what_the_model_gives_the_decoder(self, given):
        """The decoder's initial state or mask, model inputs of their own,
        change the decode as they change the model's outputs. Its output
        length is the memory's, the default."""
        source = keras.Input((INPUT_LENGTH, FEATURES))
        encoded = keras.layers.Dense(UNITS, activation="tanh")(source)
        decoder = AttentionDecoder(
            UNITS,
            VOCABULARY,
            feedback="one_hot",
            return_attention_weights=True,
        )
        if given == "initial_state":
            extra = keras.Input((UNITS,))
            extra_value = np.random.default_rng(1).normal(size=(BATCH, UNITS))
        else:
            extra = keras.Input((INPUT_LENGTH,), dtype="bool")
            # Sequence i attends to its first i + 1 steps (or all).
            extra_value = np.arange(INPUT_LENGTH) <= np.arange(BATCH)[:, None]
        model = keras.Model([source, extra], decoder(encoded, **{given: extra}))
        set_random_weights(model)
        inputs = [random_inputs(), extra_value]
        outputs, weights = predict(model, inputs)
        sequences, _, decoded_weights = greedy_decode(model, inputs)
        np.testing.assert_array_equal(sequences, outputs.argmax(-1))
        self.assertAllClose(decoded_weights, weights, atol=1e-6)

    def test_end_token_finishes_a_sequence(self, model, reference):
        x, outputs, weights = reference
        free = outputs.argmax(-1)
        counted = counted_steps(free, END)
        # Sequences end at different steps, all before the last one: the
        # decode goes on past the first ends, stops early, and pads.
        assert counted[:, 1].any() and not counted[:, 1].all()
        assert not counted[:, -1].any()
        sequences, scores, decoded_weights = greedy_decode(
            model, [x, None], end_token=END
        )
        np.testing.assert_array_equal(sequences, ended(free, END))
        log_probs = np.log(outputs.max(-1))
        self.assertAllClose(
            scores, np.where(counted, log_probs, 0).sum(1), atol=1e-5
        )
        self.assertAllClose(
            decoded_weights, np.where(counted[..., None], weights, 0)
        )


class TestBeamSearch(TestCase):
    @pytest.mark.parametrize("end_token", [None, END])
    def test_width_one_is_greedy(self, model, end_token):
        x = [random_inputs(), None]
        greedy = greedy_decode(model, x, end_token=end_token)
        beam = beam_search(model, x, 1, end_token=end_token)
        for actual, expected in zip(beam, greedy):
            np.testing.assert_array_equal(actual, expected)

    @pytest.mark.parametrize(
        "end_token, length_penalty", [(None, 0.0), (END, 0.0), (END, 1.0)]
    )
    def test_exact_beam_finds_the_best_of_all_sequences(
        self, model, exhaustive, end_token, length_penalty
    ):
        x, sequences, log_probs, weights = exhaustive
        scores = scores_of(sequences, log_probs, end_token, length_penalty)
        best = scores.argmax(1)
        if end_token is not None:
            # The data can tell whether sequences end, and whether the
            # penalty is applied: it changes some of the best sequences.
            assert not counted_steps(sequences[best], end_token).all()
            unpenalized = scores_of(sequences, log_probs, end_token)
            assert np.any(unpenalized.argmax(1) != best) == (length_penalty > 0)
        decoded, decoded_scores, decoded_weights = beam_search(
            model,
            [x, None],
            EXACT_BEAM,
            end_token=end_token,
            length_penalty=length_penalty,
        )
        np.testing.assert_array_equal(
            decoded, ended(sequences[best], end_token)
        )
        self.assertAllClose(decoded_scores, scores.max(1), atol=1e-5)
        counted = counted_steps(sequences[best], end_token)
        self.assertAllClose(
            decoded_weights,
            np.where(counted[..., None], weights[np.arange(BATCH), best], 0),
        )

    def test_a_wider_beam_scores_at_least_greedy(self, model, exhaustive):
        """Width 2 returns sequences with their own scores, none below the
        greedy ones and some above. (Beam search does not promise that in
        general; it holds for these inputs.)"""
        x, sequences, log_probs, _ = exhaustive
        scores = log_probs.sum(-1)
        _, greedy_scores, _ = greedy_decode(model, [x, None])
        decoded, decoded_scores, _ = beam_search(model, [x, None], 2)
        own = (decoded[:, None] == sequences).all(-1)
        self.assertAllClose(decoded_scores, scores[own], atol=1e-5)
        assert np.all(decoded_scores >= greedy_scores - 1e-6)
        assert np.any(decoded_scores > greedy_scores + 1e-3)


class TestMaskedInputs(TestCase):
    def test_padding_decodes_as_the_unpadded_input(self):
        """The tutorial's model, with targets: the decoder gets the mask of
        `Embedding(mask_zero=True)` as `encoder_sequence_mask`."""
        tokens = keras.Input((None,), dtype="int32")
        targets = keras.Input((LENGTH, VOCABULARY), optional=True)
        embedded = keras.layers.Embedding(7, FEATURES, mask_zero=True)(tokens)
        encoded = keras.layers.LSTM(UNITS, return_sequences=True)(embedded)
        decoder = AttentionDecoder(UNITS, VOCABULARY, output_length=LENGTH)
        decoded = decoder(encoded, targets=targets)
        model = keras.Model([tokens, targets], decoded)
        set_random_weights(model)
        unpadded = np.random.default_rng(2).integers(1, 7, (BATCH, 2))
        padded = np.pad(unpadded, [(0, 0), (0, INPUT_LENGTH - 2)])
        expected = beam_search(model, [unpadded, None], 2, end_token=END)
        sequences, scores, weights = beam_search(
            model, [padded, None], 2, end_token=END
        )
        np.testing.assert_array_equal(sequences, expected[0])
        self.assertAllClose(scores, expected[1], atol=1e-5)
        self.assertAllClose(weights[..., :2], expected[2])
        assert np.all(weights[..., 2:] == 0)


def make_token_model():
    """`make_model` in token mode: ids as targets, logits out."""
    source = keras.Input((INPUT_LENGTH, FEATURES))
    targets = keras.Input((LENGTH,), dtype="int32", optional=True)
    encoded = keras.layers.Dense(UNITS, activation="tanh")(source)
    decoder = AttentionDecoder(
        UNITS,
        VOCABULARY,
        embedding_dim=2,
        start_token=2,
        output_length=LENGTH,
        output_activation=None,
        return_attention_weights=True,
    )
    model = keras.Model([source, targets], decoder(encoded, targets=targets))
    set_random_weights(model)
    return model


def log_softmax(logits):
    shifted = logits - logits.max(-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


class TestTokenMode(TestCase):
    def test_greedy_is_the_argmax_of_the_outputs(self):
        model = make_token_model()
        x = random_inputs()
        logits, weights = predict(model, [x, None])
        sequences, scores, decoded_weights = greedy_decode(model, [x, None])
        np.testing.assert_array_equal(sequences, logits.argmax(-1))
        self.assertAllClose(
            scores, log_softmax(logits).max(-1).sum(-1), atol=1e-5
        )
        self.assertAllClose(decoded_weights, weights, atol=1e-6)
        width_one = beam_search(model, [x, None], 1, end_token=END)
        greedy = greedy_decode(model, [x, None], end_token=END)
        for actual, expected in zip(width_one, greedy):
            np.testing.assert_array_equal(actual, expected)

    def test_exact_beam_finds_the_best_of_all_sequences(self):
        model = make_token_model()
        x = random_inputs(BEAM_SEED)
        sequences = np.array(
            list(itertools.product(range(VOCABULARY), repeat=LENGTH))
        )
        n = len(sequences)
        logits, _ = model(
            [np.repeat(x, n, axis=0), np.tile(sequences, (BATCH, 1))],
            training=True,
        )
        log_probs = log_softmax(ops.convert_to_numpy(logits))
        log_probs = log_probs.reshape(BATCH, n, LENGTH, -1)
        chosen = np.take_along_axis(log_probs, sequences[None, ..., None], -1)
        scores = scores_of(sequences, chosen[..., 0], END, 1.0)
        decoded, decoded_scores, _ = beam_search(
            model, [x, None], EXACT_BEAM, end_token=END, length_penalty=1.0
        )
        best = scores.argmax(1)
        np.testing.assert_array_equal(decoded, ended(sequences[best], END))
        self.assertAllClose(decoded_scores, scores.max(1), atol=1e-5)


class SubclassedModel(keras.Model):
    def __init__(self):
        super().__init__()
        self.decoder = AttentionDecoder(UNITS, VOCABULARY)

    def call(self, inputs):
        return self.decoder(inputs)


def model_with(*layers):
    return keras.Sequential([keras.Input((INPUT_LENGTH, FEATURES)), *layers])


class TestErrors:
    @pytest.mark.parametrize(
        "kwargs, argument",
        [
            ({"beam_width": 0}, "beam_width"),
            ({"beam_width": 2.0}, "beam_width"),
            ({"beam_width": True}, "beam_width"),
            ({"max_length": 0}, "max_length"),
            ({"end_token": VOCABULARY}, "end_token"),
            ({"end_token": -1}, "end_token"),
            ({"end_token": 1.0}, "end_token"),
            ({"length_penalty": -0.5}, "length_penalty"),
            ({"length_penalty": "0.6"}, "length_penalty"),
        ],
    )
    def test_bad_argument(self, model, kwargs, argument):
        arguments = {"beam_width": 2, **kwargs}
        with pytest.raises(ValueError, match=f"`{argument}` of beam_search"):
            beam_search(model, [random_inputs(), None], **arguments)

    def test_greedy_decode_names_itself(self, model):
        with pytest.raises(ValueError, match="`end_token` of greedy_decode"):
            greedy_decode(model, [random_inputs(), None], end_token=-1)

    @pytest.mark.parametrize(
        "unsupported_model, expected",
        [
            (lambda: model_with(keras.layers.Dense(2)), "one AttentionDecoder"),
            (
                lambda: model_with(
                    AttentionDecoder(UNITS, VOCABULARY), keras.layers.Dense(2)
                ),
                "layers after the decoder",
            ),
            (
                lambda: model_with(
                    AttentionDecoder(
                        UNITS, VOCABULARY, output_activation="sigmoid"
                    )
                ),
                "output_activation='softmax'.*or None.*'sigmoid'",
            ),
            (SubclassedModel, "functional or Sequential"),
        ],
        ids=["no_decoder", "layer_after", "not_softmax", "subclassed"],
    )
    def test_unsupported_model(self, unsupported_model, expected):
        with pytest.raises(
            ValueError, match=f"`model` of beam_search.*{expected}"
        ):
            beam_search(unsupported_model(), random_inputs(), 2)
