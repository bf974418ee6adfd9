import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from keras import ops

import keras_seqext
from keras_seqext import AttentionDecoder
from keras_seqext import AttentionDecoderCell
from tests.test_case import TestCase
from tests.test_case import other_backends

BATCH, INPUT_LENGTH, MEMORY_DIM, UNITS, OUTPUT_DIM = 3, 6, 4, 5, 7
# The columns of the cell's input kernels: three gate blocks and the output.
GATES_DIM = 3 * UNITS + OUTPUT_DIM
# Steps 4 and 5 of the first sequence and step 0 of the second are masked:
# the second sequence starts under the mask, which moves its h_0.
MASK = np.array(
    [
        [True, True, True, True, False, False],
        [False, True, True, True, True, True],
        [True, True, True, True, True, True],
    ]
)


def random_memory(seed=0, shape=(BATCH, INPUT_LENGTH, MEMORY_DIM)):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


PINNED_ADDITIVE_OUTPUTS = [
    [
        [0.258524, 0.137435, 0.363699, 0.240342],
        [0.206508, 0.131472, 0.406132, 0.255889],
        [0.21352, 0.145352, 0.400619, 0.24051],
    ],
    [
        [0.241681, 0.150087, 0.388765, 0.219467],
        [0.190704, 0.132465, 0.43021, 0.24662],
        [0.195742, 0.142074, 0.425674, 0.23651],
    ],
]
PINNED_ADDITIVE_WEIGHTS = [
    [
        [0.152428, 0.167276, 0.227438, 0.200448, 0.25241],
        [0.151952, 0.167168, 0.227623, 0.200418, 0.252839],
        [0.151544, 0.167443, 0.228225, 0.201168, 0.251621],
    ],
    [
        [0.0, 0.357628, 0.341952, 0.30042, 0.0],
        [0.0, 0.357736, 0.341806, 0.300458, 0.0],
        [0.0, 0.357986, 0.342068, 0.299946, 0.0],
    ],
]


# XLA on TensorFlow once failed to retrace the additive score for a smaller
# batch, and not the general one. On PyTorch, where torch.compile of a fit
# step takes about a minute, the additive score alone covers the retrace.
PARTIAL_BATCH_SCORES = (
    ["additive"]
    if keras.backend.backend() == "torch"
    else ["additive", "general"]
)


def make_decoder(**kwargs):
    # Random biases, so that the reference checks where each bias goes.
    kwargs.setdefault("bias_initializer", "random_normal")
    return AttentionDecoder(UNITS, OUTPUT_DIM, **kwargs)


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def softmax(x):
    e = np.exp(x - x.max())
    return e / e.sum()


def numpy_decoder(
    cell,
    memory,
    mask,
    output_length,
    feedback=None,
    state=None,
    targets=None,
):
    """The recurrence of the Keras 2 AttentionDecoder, one sequence at a time,
    written from the equations with the cell's weights and score. With
    `targets`, step t is fed `targets[:, t-1]` (teacher forcing) instead of
    its own output. In token mode (`cell.embedding_dim`) the fed-back `y` is
    the embedding of a token (the targets are ids), `E[argmax l]` or
    `softmax(l) @ E` of the step's logits `l`; `y_0` is the embedding or
    one-hot vector of `cell.start_token`, or zeros. `feedback` defaults to
    the cell's."""
    w = {v.name: ops.convert_to_numpy(v.value) for v in cell.weights}
    w = {name: value.astype("float64") for name, value in w.items()}
    u, o = cell.units, cell.output_dim
    feedback = feedback or cell.feedback
    E = w.get("embeddings")
    # Columns of W_a s in the recurrent kernel: none for dot and general.
    q = {"additive": u, "concat": u, "location": cell.source_length}.get(
        cell.score, 0
    )
    W_a, U_r, U_z, U_o = np.split(
        w["recurrent_kernel"], [q, q + u, q + 2 * u], 1
    )
    W_r, W_z, W_p, W_o = np.split(w["feedback_kernel"], [u, 2 * u, 3 * u], 1)
    C_r, C_z, C_p, C_o = np.split(w["context_kernel"], [u, 2 * u, 3 * u], 1)
    b_r, b_z, b_p, b_o = np.split(w["bias"], [u, 2 * u, 3 * u])
    U_p, W_s = w["proposal_kernel"], w.get("initial_kernel")
    logits_out = keras.activations.serialize(cell.output_activation) in (
        "linear",
        None,
    )

    def fed(token):
        """What a step is fed for a token id."""
        return np.eye(o)[token] if E is None else E[token]

    def score(s, h):
        """e_j for every memory step j, from the paper's formulas."""
        if cell.score == "additive":
            return (
                np.tanh(s @ W_a + h @ w["key_kernel"] + w["key_bias"])
                @ (w["score_vector"])
            )
        if cell.score == "concat":  # v_a . tanh(W_a [s; h_j]), no bias
            W_concat = np.concatenate([W_a, w["key_kernel"]])
            s_and_h = np.concatenate([np.tile(s, (len(h), 1)), h], axis=1)
            return np.tanh(s_and_h @ W_concat) @ w["score_vector"]
        if cell.score == "dot":
            return h @ s
        if cell.score == "general":  # s . W h_j, W = key_kernel^T
            return np.array([s @ w["key_kernel"].T @ h_j for h_j in h])
        return (s @ W_a)[: len(h)]  # location

    all_outputs, all_weights, last_states = [], [], []
    for i, h in enumerate(memory.astype("float64")):
        attend = np.ones(len(h), bool) if mask is None else mask[i]
        h_0 = h[np.argmax(attend)]
        s = np.tanh(h_0 @ W_s) if state is None else state[i]
        start = cell.start_token
        y = np.zeros(W_r.shape[0]) if start is None else fed(start)
        outputs, weights = [], []
        for t in range(output_length):
            if targets is not None and t > 0:
                y = targets[i, t - 1] if E is None else fed(targets[i, t - 1])
            e = score(s, h)
            a = np.zeros(len(h))
            a[attend] = softmax(e[attend])
            c = a @ h
            r = sigmoid(y @ W_r + s @ U_r + c @ C_r + b_r)
            z = sigmoid(y @ W_z + s @ U_z + c @ C_z + b_z)
            p = np.tanh(y @ W_p + (r * s) @ U_p + c @ C_p + b_p)
            logits = y @ W_o + s @ U_o + c @ C_o + b_o
            output = logits if logits_out else softmax(logits)
            s = (1 - z) * s + z * p
            outputs.append(output)
            weights.append(a)
            if feedback == "one_hot":
                y = fed(np.argmax(logits))
            elif E is None:
                y = output
            else:
                y = softmax(logits) @ E
        all_outputs.append(outputs)
        all_weights.append(weights)
        last_states.append(s)
    return np.array(all_outputs), np.array(all_weights), np.array(last_states)


# Arguments of each score; `dot` needs memory features equal to the units.
SCORE_KWARGS = {
    "additive": {},
    "concat": {"score": "concat"},
    "general": {"score": "general"},
    "dot": {"score": "dot"},
    "location": {"score": "location", "max_source_length": INPUT_LENGTH + 2},
}


def memory_for(score, seed=0):
    features = UNITS if score == "dot" else MEMORY_DIM
    return random_memory(seed, shape=(BATCH, INPUT_LENGTH, features))


class TestAttentionDecoderMath(TestCase):
    @pytest.mark.parametrize("score", list(SCORE_KWARGS))
    @pytest.mark.parametrize("output_length", [None, 3, 9])
    @pytest.mark.parametrize("masked", [False, True])
    def test_matches_numpy_reference(self, score, output_length, masked):
        decoder = make_decoder(
            output_length=output_length,
            return_attention_weights=True,
            **SCORE_KWARGS[score],
        )
        memory = memory_for(score)
        mask = MASK if masked else None
        outputs, weights = decoder(memory, mask=mask)
        expected_outputs, expected_weights, _ = numpy_decoder(
            decoder.cell, memory, mask, output_length or INPUT_LENGTH
        )
        self.assertAllClose(outputs, expected_outputs, atol=1e-5)
        self.assertAllClose(weights, expected_weights, atol=1e-5)

    @pytest.mark.parametrize("score", list(SCORE_KWARGS))
    @pytest.mark.parametrize("masked", [False, True])
    def test_projected_values_match_numpy_reference(self, score, masked):
        """A batch of one short sequence, for which every step reads the
        values projected once, `C h`, decodes as the equations say."""
        decoder = make_decoder(
            output_length=4,
            return_attention_weights=True,
            **SCORE_KWARGS[score],
        )
        memory = memory_for(score)[:1, :3]
        mask = np.array([[False, True, True]]) if masked else None
        outputs, weights = decoder(memory, mask=mask)
        values = decoder.cell.attention_memory(memory, mask)[0]
        assert values.shape[-1] == GATES_DIM  # projected
        expected_outputs, expected_weights, _ = numpy_decoder(
            decoder.cell, memory, mask, 4
        )
        self.assertAllClose(outputs, expected_outputs, atol=1e-5)
        self.assertAllClose(weights, expected_weights, atol=1e-5)

    def test_additive_outputs_are_pinned(self):
        """The additive score's outputs, pinned before the other scores
        were added (same weights, memory and mask)."""
        decoder = AttentionDecoder(
            3, 4, output_length=3, return_attention_weights=True
        )
        decoder.build((None, 5, 2))
        rng = np.random.default_rng(42)
        for weight in decoder.cell.weights:
            weight.assign(rng.uniform(-0.5, 0.5, size=weight.shape))
        memory = rng.normal(size=(2, 5, 2)).astype("float32")
        mask = np.array([[True] * 5, [False, True, True, True, False]])
        outputs, weights = decoder(memory, mask=mask)
        self.assertAllClose(outputs, PINNED_ADDITIVE_OUTPUTS, atol=1e-5)
        self.assertAllClose(weights, PINNED_ADDITIVE_WEIGHTS, atol=1e-5)

    def test_one_hot_feedback_matches_numpy_reference(self):
        decoder = make_decoder(feedback="one_hot")
        memory = random_memory()
        outputs = decoder(memory)
        expected, *_ = numpy_decoder(
            decoder.cell, memory, None, INPUT_LENGTH, feedback="one_hot"
        )
        self.assertAllClose(outputs, expected, atol=1e-5)
        # Fed back as probabilities the outputs differ: feedback is used.
        soft, *_ = numpy_decoder(
            decoder.cell, memory, None, INPUT_LENGTH, feedback="probabilities"
        )
        self.assertNotAllClose(expected, soft, atol=1e-3)

    def test_initial_state_replaces_the_computed_one(self):
        decoder = make_decoder(return_state=True)
        memory = random_memory()
        state = np.random.default_rng(1).normal(size=(BATCH, UNITS))
        state = state.astype("float32")
        outputs, last_state = decoder(memory, initial_state=state)
        expected, *_ = numpy_decoder(
            decoder.cell, memory, None, INPUT_LENGTH, state=state
        )
        self.assertAllClose(outputs, expected, atol=1e-5)
        # A list holding the state, as keras.layers.RNN takes it, works too.
        self.assertAllClose(decoder(memory, initial_state=[state])[0], outputs)
        assert tuple(last_state.shape) == (BATCH, UNITS)

    def test_returned_state_is_the_last_state(self):
        decoder = make_decoder(output_length=4, return_state=True)
        memory = random_memory()
        _, last_state = decoder(memory, mask=MASK)
        *_, expected = numpy_decoder(decoder.cell, memory, MASK, 4)
        self.assertAllClose(last_state, expected, atol=1e-5)

    def test_unroll_gives_the_same_outputs(self):
        memory = random_memory()
        rolled = make_decoder()
        unrolled = make_decoder(unroll=True)
        rolled.build(memory.shape)
        unrolled.build(memory.shape)
        unrolled.set_weights(rolled.get_weights())
        self.assertAllClose(unrolled(memory), rolled(memory), atol=1e-6)

    def test_unroll_is_saved_as_given(self):
        # On torch the loop always unrolls; the config keeps the argument,
        # so a model saved there does not unroll on the other backends.
        assert make_decoder().get_config()["unroll"] is False
        assert make_decoder(unroll=True).get_config()["unroll"] is True

    def test_return_probabilities_gives_the_weights_only(self):
        memory = random_memory()
        both = make_decoder(return_attention_weights=True)
        keras2 = make_decoder(return_probabilities=True)
        both.build(memory.shape)
        keras2.build(memory.shape)
        keras2.set_weights(both.get_weights())
        weights = keras2(memory)
        self.assertAllClose(weights, both(memory)[1])
        self.assertAllClose(ops.sum(weights, axis=-1), np.ones((3, 6)))

    def test_weight_count_matches_the_tutorial_model(self):
        """LSTM(150) + AttentionDecoder(150, 50) has the Keras 2 count."""
        model = keras.Sequential(
            [
                keras.Input((5, 50)),
                keras.layers.LSTM(150, return_sequences=True),
                AttentionDecoder(150, 50),
            ]
        )
        trainable = sum(np.prod(w.shape) for w in model.trainable_weights)
        assert trainable == 363_900


class TestAttentionMemory(TestCase):
    @pytest.mark.parametrize(
        "shape, projected",
        [
            # A step reads 18 * 22 values projected, 18 * 4 + 4 * 22 not.
            ((BATCH, INPUT_LENGTH, MEMORY_DIM), False),
            # 3 * 22 against 3 * 4 + 4 * 22.
            ((1, 3, MEMORY_DIM), True),
            # A memory at least as wide as the gates is always projected.
            ((BATCH, INPUT_LENGTH, GATES_DIM), True),
        ],
    )
    def test_values_are_projected_when_a_step_reads_less(
        self, shape, projected
    ):
        decoder = make_decoder()
        memory = random_memory(shape=shape)
        decoder(memory)
        values, keys = decoder.cell.attention_memory(memory)
        expected = GATES_DIM if projected else shape[-1]
        assert tuple(values.shape) == (*shape[:2], expected)
        assert tuple(keys.shape) == (*shape[:2], UNITS)


class TestAttentionDecoderMasking(TestCase):
    @pytest.mark.parametrize("score", list(SCORE_KWARGS))
    def test_values_under_the_mask_change_nothing(self, score):
        decoder = make_decoder(
            return_attention_weights=True,
            return_state=True,
            **SCORE_KWARGS[score],
        )
        memory = memory_for(score)
        changed = memory.copy()
        changed[~MASK] = memory_for(score, seed=5)[~MASK] * 100
        before = decoder(memory, mask=MASK)
        after = decoder(changed, mask=MASK)
        for old, new in zip(before, after):
            self.assertAllClose(new, old, atol=1e-6)
        # Masked steps get exactly zero weight.
        weights = ops.convert_to_numpy(before[1])
        assert np.all(weights.transpose(1, 0, 2)[:, ~MASK] == 0)
        # ... and the check can fail: an unmasked change moves the outputs.
        changed[0, 1] += 1.0
        self.assertNotAllClose(decoder(changed, mask=MASK)[0], before[0])

    def test_call_arguments_in_design_order(self):
        """`decoder(encoder_sequence, targets, mask, training,
        initial_state)`, positionally or by name."""
        decoder = make_decoder(return_probabilities=True)
        memory = random_memory()
        by_name = decoder(encoder_sequence=memory, mask=MASK)
        positional = decoder(memory, None, MASK)
        self.assertAllClose(positional, by_name)
        weights = ops.convert_to_numpy(positional)
        assert np.all(weights.transpose(1, 0, 2)[:, ~MASK] == 0)

    def test_fully_masked_sequence_gives_zero_weights_not_nan(self):
        decoder = make_decoder(return_attention_weights=True)
        mask = MASK.copy()
        mask[2] = False
        outputs, weights = decoder(random_memory(), mask=mask)
        assert np.all(np.isfinite(ops.convert_to_numpy(outputs)))
        assert np.all(ops.convert_to_numpy(weights)[2] == 0)

    def test_masking_layer_in_a_model(self):
        memory = random_memory()
        memory[~MASK] = 0.0
        model = keras.Sequential(
            [
                keras.Input((INPUT_LENGTH, MEMORY_DIM)),
                keras.layers.Masking(0.0),
                make_decoder(return_probabilities=True),
            ]
        )
        weights = model.predict(memory, verbose=0)
        assert np.all(weights.transpose(1, 0, 2)[:, ~MASK] == 0)
        self.assertAllClose(weights.sum(-1), np.ones((BATCH, INPUT_LENGTH)))

    @pytest.mark.parametrize("with_initial_state", [False, True])
    def test_embedding_mask_reaches_the_decoder(self, with_initial_state):
        """With `initial_state` also a tensor, Keras passes the encoder mask
        as `encoder_sequence_mask`; it must still be honoured."""
        tokens = keras.Input((INPUT_LENGTH,), dtype="int32")
        state = keras.Input((UNITS,))
        embedded = keras.layers.Embedding(9, MEMORY_DIM, mask_zero=True)(tokens)
        encoded = keras.layers.LSTM(MEMORY_DIM, return_sequences=True)(embedded)
        decoder = make_decoder(return_probabilities=True)
        initial_state = state if with_initial_state else None
        weights = decoder(encoded, initial_state=initial_state)
        model = keras.Model([tokens, state], weights)
        token_values = np.where(MASK, 3, 0)
        predicted = model.predict(
            [token_values, np.zeros((BATCH, UNITS))], verbose=0
        )
        assert np.all(predicted.transpose(1, 0, 2)[:, ~MASK] == 0)
        self.assertAllClose(predicted.sum(-1), np.ones((BATCH, INPUT_LENGTH)))


def identity_decoder(output_length, **kwargs):
    """A decoder whose output is exactly what it is fed: every weight is 0
    but the W_o block of `feedback_kernel`, the identity, and the output is
    linear. Step t then outputs `targets[:, t-1]` when teacher-forced and
    repeats its previous output otherwise."""
    decoder = AttentionDecoder(
        UNITS,
        OUTPUT_DIM,
        output_length=output_length,
        output_activation="linear",
        **kwargs,
    )
    decoder.build((None, INPUT_LENGTH, MEMORY_DIM))
    for weight in decoder.cell.weights:
        weight.assign(np.zeros(weight.shape))
    passthrough = np.zeros((OUTPUT_DIM, 3 * UNITS + OUTPUT_DIM))
    passthrough[:, 3 * UNITS :] = np.eye(OUTPUT_DIM)
    decoder.cell.feedback_kernel.assign(passthrough)
    return decoder


def step_targets(batch, length):
    """Targets whose step t is all `t + 1`, so each output tells which step's
    target fed it."""
    steps = np.arange(1, length + 1, dtype="float32")
    return np.broadcast_to(steps[None, :, None], (batch, length, OUTPUT_DIM))


class TestAttentionDecoderTeacherForcing(TestCase):
    def test_probability_one_feeds_the_true_previous_outputs(self):
        decoder = make_decoder(output_length=4)
        memory = random_memory()
        targets = np.eye(OUTPUT_DIM, dtype="float32")[
            np.random.default_rng(2).integers(0, OUTPUT_DIM, (BATCH, 4))
        ]
        outputs = decoder(memory, targets=targets, mask=MASK, training=True)
        expected, *_ = numpy_decoder(
            decoder.cell, memory, MASK, 4, targets=targets
        )
        self.assertAllClose(outputs, expected, atol=1e-5)
        # Teacher forcing changed the outputs: the check can fail.
        free, *_ = numpy_decoder(decoder.cell, memory, MASK, 4)
        self.assertNotAllClose(expected, free, atol=1e-3)

    def test_probability_zero_is_free_running(self):
        decoder = make_decoder(teacher_forcing_probability=0.0)
        memory = random_memory()
        targets = step_targets(BATCH, INPUT_LENGTH)
        forced = decoder(memory, targets=targets, training=True)
        self.assertAllClose(forced, decoder(memory), atol=0)

    def test_targets_are_ignored_at_inference(self):
        decoder = make_decoder()
        memory = random_memory()
        targets = step_targets(BATCH, INPUT_LENGTH)
        outputs = decoder(memory, targets=targets, training=False)
        self.assertAllClose(outputs, decoder(memory), atol=0)

    def test_half_probability_feeds_targets_on_about_half_the_steps(self):
        batch, length = 200, 6
        decoder = identity_decoder(
            length, teacher_forcing_probability=0.5, seed=7
        )
        targets = step_targets(batch, length)
        memory = random_memory(shape=(batch, INPUT_LENGTH, MEMORY_DIM))
        outputs = decoder(memory, targets=targets, training=True)
        outputs = ops.convert_to_numpy(outputs)[:, :, 0]
        # Step t >= 1 was teacher-forced if it outputs targets[:, t-1] = t;
        # otherwise it repeats an earlier output, which is smaller.
        forced = outputs[:, 1:] == np.arange(1, length)
        assert abs(forced.mean() - 0.5) < 0.05, forced.mean()
        # Decided per example and per step, not once per batch or per step.
        assert not np.any(forced.all(axis=0) | ~forced.any(axis=0))
        assert len({tuple(row) for row in forced}) > 10
        # At probability 1 every step is forced: the reading is exact.
        decoder.teacher_forcing_probability.assign(1.0)
        outputs = decoder(memory, targets=targets, training=True)
        forced = ops.convert_to_numpy(outputs)[:, 1:, 0] == np.arange(1, length)
        assert forced.all()

    def test_trained_with_targets_decodes_without_them(self, tmp_path):
        """Trained with a second, optional `targets` input; saved, loaded,
        and decoded in one `predict` call without targets."""
        x, y = keras_seqext.datasets.reverse_sequence(
            32, n_in=INPUT_LENGTH, cardinality=OUTPUT_DIM, seed=0
        )
        source = keras.Input((INPUT_LENGTH, OUTPUT_DIM), name="source")
        targets = keras.Input(
            (INPUT_LENGTH, OUTPUT_DIM), name="targets", optional=True
        )
        encoded = keras.layers.LSTM(8, return_sequences=True)(source)
        outputs = make_decoder(seed=1)(encoded, targets=targets)
        model = keras.Model([source, targets], outputs)
        self.run_training_test(model, [x, y], y, steps=2)
        expected = model.predict([x, np.zeros_like(y)], verbose=0)
        loaded = self.run_model_saving_test(
            model, {"source": x, "targets": None}, str(tmp_path)
        )
        without = loaded.predict({"source": x, "targets": None}, verbose=0)
        self.assertAllClose(without, expected, atol=1e-6)

    def test_probability_is_saved_with_the_model(self, tmp_path):
        model = keras.Sequential(
            [keras.Input((INPUT_LENGTH, MEMORY_DIM)), make_decoder()]
        )
        model.layers[0].teacher_forcing_probability.assign(0.25)
        loaded = self.run_model_saving_test(
            model, random_memory(), str(tmp_path)
        )
        probability = loaded.layers[0].teacher_forcing_probability
        self.assertAllClose(probability, 0.25)
        assert not probability.trainable
        assert loaded.layers[0].get_config()["teacher_forcing_probability"] == (
            0.25
        )

    @pytest.mark.parametrize("value", [1.5, -0.5, float("nan"), float("inf")])
    def test_any_assigned_probability_saves_and_loads(self, value, tmp_path):
        """The setter refuses the value; assigned to the variable directly,
        it is used clipped (NaN as 0) and saved so, and the file loads."""
        decoder = make_decoder(seed=0)
        with pytest.raises(ValueError, match="`probability` of Attention"):
            decoder.set_teacher_forcing_probability(value)
        decoder.teacher_forcing_probability.assign(value)
        used = 0.0 if np.isnan(value) else min(max(value, 0.0), 1.0)
        model = keras.Sequential(
            [keras.Input((INPUT_LENGTH, MEMORY_DIM)), decoder]
        )
        loaded = self.run_model_saving_test(
            model, random_memory(), str(tmp_path)
        )
        assert loaded.layers[0].get_config()["teacher_forcing_probability"] == (
            used
        )
        # The step feeds the targets exactly when the clipped value says.
        memory, targets = random_memory(), step_targets(BATCH, INPUT_LENGTH)
        clipped = make_decoder(seed=0, teacher_forcing_probability=used)
        clipped.build(memory.shape)
        clipped.set_weights(decoder.get_weights())
        clipped.teacher_forcing_probability.assign(used)
        self.assertAllClose(
            decoder(memory, targets=targets, training=True),
            clipped(memory, targets=targets, training=True),
        )


class TestAttentionDecoderKerasConventions(TestCase):
    @pytest.mark.parametrize(
        "kwargs",
        [
            {},
            {"output_length": 3, "return_attention_weights": True},
            {"return_state": True},
            {"return_probabilities": True, "return_state": True},
            {"feedback": "one_hot", "output_length": 8},
            {
                "kernel_regularizer": "l2",
                "recurrent_constraint": "max_norm",
                "output_activation": "sigmoid",
                "activity_regularizer": "l1",
            },
            *[kwargs for kwargs in SCORE_KWARGS.values() if kwargs],
        ],
    )
    def test_layer(self, kwargs, tmp_path):
        memory = memory_for(kwargs.get("score", "additive"))
        output_shape = make_decoder(**kwargs).compute_output_shape(memory.shape)
        # Single-output variants also train inside a Sequential model.
        targets = None
        if not isinstance(output_shape[0], tuple):
            classes = np.arange(np.prod(output_shape[:2])) % output_shape[2]
            targets = np.eye(output_shape[2])[classes].reshape(output_shape)
        self.run_layer_test(
            lambda **extra: make_decoder(**kwargs, **extra),
            memory,
            str(tmp_path),
            targets=targets,
        )

    def test_config_is_flat_like_gru(self):
        config = make_decoder(output_length=4).get_config()
        assert "cell" not in config
        assert config["units"] == UNITS and config["output_length"] == 4
        assert config["bias_initializer"]["class_name"] == "RandomNormal"

    def test_cell_arguments_are_properties(self):
        decoder = make_decoder(feedback="one_hot")
        assert decoder.units == UNITS and decoder.output_dim == OUTPUT_DIM
        assert decoder.feedback == "one_hot"
        with pytest.raises(AttributeError):
            decoder.units = 3

    def test_cell_serializes_on_its_own(self):
        cell = AttentionDecoderCell(UNITS, OUTPUT_DIM, feedback="one_hot")
        revived = self.run_serialization_test(cell)
        assert revived.feedback == "one_hot"

    def test_mixed_precision_matches_float32(self):
        memory = random_memory()
        full = make_decoder()
        half = make_decoder(dtype="mixed_float16")
        full.build(memory.shape)
        half.build(memory.shape)
        half.set_weights(full.get_weights())
        self.assertAllClose(half(memory), full(memory), atol=1e-2)

    @pytest.mark.parametrize("jit_compile", [True, False])
    # An error, not a warning: every weight gets a gradient.
    @pytest.mark.filterwarnings("error:Gradients do not exist")
    def test_functional_model_with_two_inputs(self, jit_compile, tmp_path):
        """The encoder's last state seeds the decoder: two model inputs,
        and no `W_s`, which would make `s_0` from the memory."""
        sequence = keras.Input((INPUT_LENGTH, MEMORY_DIM))
        start = keras.Input((UNITS,))
        encoded = keras.layers.LSTM(8, return_sequences=True)(sequence)
        decoder = make_decoder(output_length=4)
        outputs = decoder(encoded, initial_state=start)
        model = keras.Model([sequence, start], outputs)
        assert "initial_kernel" not in [w.name for w in decoder.weights]
        x = [random_memory(), np.ones((BATCH, UNITS), "float32")]
        y = np.eye(OUTPUT_DIM)[np.zeros((BATCH, 4), int)]
        history = self.run_training_test(
            model, x, y, steps=1, jit_compile=jit_compile
        )
        assert len(history.history["loss"]) == 1
        path = str(tmp_path / "model.keras")
        model.save(path)
        reloaded = keras.saving.load_model(path)
        self.assertAllClose(
            reloaded.predict(x, verbose=0), model.predict(x, verbose=0)
        )

    def test_built_with_a_given_state_needs_one(self):
        decoder = make_decoder()
        state = np.zeros((BATCH, UNITS), "float32")
        decoder(random_memory(), initial_state=state)
        with pytest.raises(ValueError, match="`initial_state`.*built with"):
            decoder(random_memory())
        with pytest.raises(ValueError, match="`initial_kernel`"):
            decoder.cell.initial_state(random_memory())

    @pytest.mark.parametrize("score", PARTIAL_BATCH_SCORES)
    def test_compiled_fit_with_a_partial_last_batch(self, score):
        """`jit_compile=True` retraces for the last, smaller batch (3 of 7
        samples at batch size 4), with teacher forcing on."""
        source = keras.Input((INPUT_LENGTH, MEMORY_DIM))
        targets = keras.Input((INPUT_LENGTH, OUTPUT_DIM), optional=True)
        outputs = make_decoder(**SCORE_KWARGS[score])(source, targets=targets)
        model = keras.Model([source, targets], outputs)
        model.compile("adam", "categorical_crossentropy", jit_compile=True)
        y = np.eye(OUTPUT_DIM, dtype="float32")[
            np.zeros((7, INPUT_LENGTH), int)
        ]
        history = model.fit(
            [random_memory(shape=(7, INPUT_LENGTH, MEMORY_DIM)), y],
            y,
            batch_size=4,
            verbose=0,
        )
        assert np.isfinite(history.history["loss"][0])


class TestAttentionDecoderCellByHand(TestCase):
    def test_stepping_the_cell_matches_the_layer(self):
        """A cell stepped in a Python loop, as a beam search does, with the
        memory passed to each step, decodes what the layer decodes."""
        memory = random_memory()
        decoder = make_decoder(return_attention_weights=True)
        outputs, weights = decoder(memory, mask=MASK)
        cell = decoder.cell
        attention_memory = cell.attention_memory(memory, MASK)
        states = cell.initial_state(memory, MASK)
        no_teacher = np.zeros((BATCH, OUTPUT_DIM + 1), "float32")
        for t in range(INPUT_LENGTH):
            step_output, states = cell(
                no_teacher, states, attention_memory=attention_memory
            )
            self.assertAllClose(step_output[:, :OUTPUT_DIM], outputs[:, t])
            self.assertAllClose(step_output[:, OUTPUT_DIM:], weights[:, t])

    def test_a_step_without_memory_is_an_error(self):
        decoder = make_decoder()
        decoder(random_memory())
        states = decoder.cell.initial_state(random_memory())
        with pytest.raises(ValueError, match="attention_memory"):
            decoder.cell(np.zeros((BATCH, OUTPUT_DIM + 1), "float32"), states)


class TestAttentionDecoderErrors:
    @pytest.mark.parametrize(
        "kwargs, argument",
        [
            ({"units": 0}, "units"),
            ({"units": 2.5}, "units"),
            ({"units": True}, "units"),
            ({"output_dim": -1}, "output_dim"),
            ({"output_dim": "50"}, "output_dim"),
            ({"output_length": 0}, "output_length"),
            ({"output_length": 1.0}, "output_length"),
            ({"feedback": "greedy"}, "feedback"),
            (
                {
                    "return_probabilities": True,
                    "return_attention_weights": True,
                },
                "return_probabilities",
            ),
            ({"score": "bahdanau"}, "score"),
            (
                {"score": "location", "max_source_length": 0},
                "max_source_length",
            ),
            ({"max_source_length": 9}, "max_source_length"),
            ({"teacher_forcing_probability": 1.5}, "teacher_forcing"),
            ({"teacher_forcing_probability": -0.1}, "teacher_forcing"),
            ({"teacher_forcing_probability": "1"}, "teacher_forcing"),
            ({"return_state": "yes"}, "return_state"),
            ({"return_attention_weights": 1}, "return_attention_weights"),
            ({"return_probabilities": "no"}, "return_probabilities"),
            ({"unroll": None}, "unroll"),
            ({"seed": "abc"}, "seed"),
            ({"activation": "nope"}, "activation"),
            ({"output_activation": 3}, "output_activation"),
            ({"kernel_initializer": "nope"}, "kernel_initializer"),
            ({"recurrent_regularizer": "nope"}, "recurrent_regularizer"),
            ({"bias_constraint": "nope"}, "bias_constraint"),
            ({"activity_regularizer": "nope"}, "activity_regularizer"),
        ],
    )
    def test_bad_argument(self, kwargs, argument):
        arguments = {"units": 4, "output_dim": 3, **kwargs}
        with pytest.raises(ValueError, match=f"`?{argument}") as error:
            AttentionDecoder(**arguments)
        assert "AttentionDecoder" in str(error.value)

    def test_cell_bad_argument_names_the_cell(self):
        with pytest.raises(ValueError, match="AttentionDecoderCell.*units"):
            AttentionDecoderCell(0, 3)

    @pytest.mark.parametrize(
        "shape, expected",
        [((3, 4), "rank-3"), ((3, 5, 2, 4), "rank-3"), ((3, 5, None), "known")],
    )
    def test_bad_memory_shape_at_build(self, shape, expected):
        with pytest.raises(ValueError, match=f"`encoder_sequence`.*{expected}"):
            AttentionDecoder(4, 3)(keras.KerasTensor(shape))

    def test_dot_score_needs_units_equal_to_the_memory_size(self):
        with pytest.raises(
            ValueError, match="dot.*`units` 5, the memory's size 4"
        ):
            AttentionDecoder(5, 3, score="dot")(random_memory())

    def test_location_score_memory_longer_than_max_source_length(self):
        decoder = AttentionDecoder(
            4, 3, score="location", max_source_length=INPUT_LENGTH - 1
        )
        with pytest.raises(
            ValueError, match="encoder_sequence.*max_source_length"
        ):
            decoder(random_memory())

    def test_location_score_takes_the_built_memory_length(self, tmp_path):
        """Without `max_source_length` the location score serves the length
        the memory has when the layer is built, saves and loads so."""
        memory = random_memory()
        inputs = keras.Input(memory.shape[1:])
        decoder = AttentionDecoder(4, 3, score="location")
        model = keras.Model(inputs, decoder(inputs))
        assert decoder.cell.source_length == INPUT_LENGTH
        assert decoder.get_config()["max_source_length"] is None
        TestCase().run_model_saving_test(model, memory, str(tmp_path))
        with pytest.raises(ValueError, match="encoder_sequence.*at most"):
            decoder(random_memory(shape=(BATCH, INPUT_LENGTH + 1, 4)))

    def test_location_score_needs_a_length_known_at_build(self):
        with pytest.raises(ValueError, match="`max_source_length`.*not known"):
            AttentionDecoder(4, 3, score="location")(keras.Input((None, 4)))

    def test_feature_size_other_than_built(self):
        decoder = AttentionDecoder(4, 3)
        decoder(random_memory())
        with pytest.raises(
            ValueError, match=r"`encoder_sequence`.*\(batch, timesteps"
        ):
            decoder(random_memory(shape=(BATCH, INPUT_LENGTH, 9)))

    @pytest.mark.parametrize(
        "targets_shape",
        [(BATCH, INPUT_LENGTH, 4), (BATCH, 2, 3), (BATCH, INPUT_LENGTH)],
    )
    def test_targets_of_the_wrong_shape(self, targets_shape):
        targets = np.zeros(targets_shape, "float32")
        expected = rf"targets.*\(batch, {INPUT_LENGTH}, 3\)"
        with pytest.raises(ValueError, match=expected):
            AttentionDecoder(4, 3)(random_memory(), targets=targets)
        with pytest.raises(ValueError, match=expected):
            AttentionDecoder(4, 3)(
                keras.Input((INPUT_LENGTH, MEMORY_DIM)),
                targets=keras.Input(targets_shape[1:]),
            )

    def test_targets_length_follows_output_length(self):
        decoder = AttentionDecoder(4, 3, output_length=2)
        targets = np.zeros((BATCH, 2, 3), "float32")
        decoder(random_memory(), targets=targets, training=True)
        with pytest.raises(ValueError, match=r"targets.*\(batch, 2, 3\)"):
            decoder(random_memory(), targets=targets[:, :1], training=True)

    @pytest.mark.parametrize("state_shape", [(BATCH, 5), (BATCH, 4, 1)])
    def test_initial_state_of_the_wrong_shape(self, state_shape):
        decoder = AttentionDecoder(4, 3)
        state = np.zeros(state_shape, "float32")
        with pytest.raises(ValueError, match=r"initial_state.*\(batch, 4\)"):
            decoder(random_memory(), initial_state=state)
        # Symbolically, at model construction, too.
        with pytest.raises(ValueError, match=r"initial_state.*\(batch, 4\)"):
            AttentionDecoder(4, 3)(
                keras.Input((INPUT_LENGTH, MEMORY_DIM)),
                initial_state=keras.Input(state_shape[1:]),
            )


LOAD_SCRIPT = """
import numpy as np, keras, keras_seqext
x, _ = keras_seqext.datasets.copy_first(8, seed=3)
model = keras.saving.load_model({path!r})
expected = np.load({predictions!r})
np.testing.assert_allclose(model.predict(x, verbose=0), expected, atol=1e-5)
"""


@pytest.fixture(scope="module")
def saved_here(tmp_path_factory):
    """A decoder behind masking, with an output length of its own, saved
    under this session's backend: the paths of the model and of its
    predictions."""
    directory = tmp_path_factory.mktemp("saved_here")
    x, _ = keras_seqext.datasets.copy_first(8, seed=3)
    model = keras.Sequential(
        [
            keras.Input((5, 50)),
            keras.layers.Masking(0.0),
            keras.layers.LSTM(12, return_sequences=True),
            AttentionDecoder(12, 50, output_length=3),
        ]
    )
    names = {
        "path": str(directory / "decoder.keras"),
        "predictions": str(directory / "predictions.npy"),
    }
    model.save(names["path"])
    np.save(names["predictions"], model.predict(x, verbose=0))
    return names


@pytest.mark.parametrize("load_backend", other_backends())
def test_saved_here_loads_on_another_backend(load_backend, saved_here):
    """Saved under this session's backend, loaded under another one with no
    `custom_objects`: the same predictions within 1e-5."""
    result = subprocess.run(
        [sys.executable, "-c", LOAD_SCRIPT.format(**saved_here)],
        env={**os.environ, "KERAS_BACKEND": load_backend},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]


SAVED_BEFORE = os.path.join(os.path.dirname(__file__), "data")


def test_file_saved_by_an_earlier_version_loads_and_predicts_the_same():
    """`data/one_hot_decoder.keras` was saved by the one-hot decoder before
    token mode (a masked LSTM encoder and a decoder of 3 steps returning
    its weights), beside its inputs and predictions: it must keep loading,
    on every backend, and predict the same."""
    saved = np.load(os.path.join(SAVED_BEFORE, "one_hot_decoder.npz"))
    model = keras.saving.load_model(
        os.path.join(SAVED_BEFORE, "one_hot_decoder.keras")
    )
    outputs, weights = model.predict(
        {"source": saved["source"], "targets": None}, verbose=0
    )
    np.testing.assert_allclose(outputs, saved["outputs"], atol=1e-5)
    np.testing.assert_allclose(weights, saved["weights"], atol=1e-5)


def exact_match_after_training(model, train, test, epochs):
    """Trains with Adam at batch 16; returns the held-out exact match."""
    model.compile(
        optimizer="adam",
        loss="categorical_crossentropy",
        metrics=[keras_seqext.metrics.SequenceAccuracy()],
    )
    model.fit(*train, batch_size=16, epochs=epochs, verbose=0)
    logs = model.evaluate(*test, verbose=0, return_dict=True)
    return logs["sequence_accuracy"]


def test_learns_the_tutorial_task():
    """The tutorial's task (first 2 of 5 integers, cardinality 50): 5000
    training samples, batch 16, and 5 of the 20 epochs allowed reach >= 99%
    exact match on 1000 held-out samples (the Keras 2 layer: 95.7%)."""
    model = keras.Sequential(
        [
            keras.Input((5, 50)),
            keras.layers.LSTM(150, return_sequences=True),
            AttentionDecoder(150, 50),
        ]
    )
    accuracy = exact_match_after_training(
        model,
        keras_seqext.datasets.copy_first(5000, seed=1),
        keras_seqext.datasets.copy_first(1000, seed=2),
        epochs=5,
    )
    assert accuracy >= 0.99


@pytest.mark.parametrize("score", list(SCORE_KWARGS))
def test_every_score_learns_a_small_copy_task(score):
    """First 2 of 5 integers over 10 classes, 2000 samples, 5 epochs: each
    score goes from chance (1% exact match) to over half the sequences."""
    score_kwargs = dict(SCORE_KWARGS[score])
    if score == "location":
        score_kwargs["max_source_length"] = 5
    model = keras.Sequential(
        [
            keras.Input((5, 10)),
            keras.layers.LSTM(32, return_sequences=True),
            AttentionDecoder(32, 10, **score_kwargs),
        ]
    )
    accuracy = exact_match_after_training(
        model,
        keras_seqext.datasets.copy_first(2000, cardinality=10, seed=1),
        keras_seqext.datasets.copy_first(500, cardinality=10, seed=2),
        epochs=5,
    )
    assert accuracy >= 0.5
