"""The JAX decoder loop that computes its kernels' gradients once per
sequence gives the gradients JAX's autodiff gives."""

import keras
import numpy as np
import pytest
from keras import ops

from keras_seqext import AttentionDecoder
from keras_seqext import AttentionDecoderCell
from keras_seqext.layers._deferred_kernel_gradients import MAX_BATCH_SIZE
from tests.layers.test_attention_decoder import BATCH
from tests.layers.test_attention_decoder import GATES_DIM
from tests.layers.test_attention_decoder import INPUT_LENGTH
from tests.layers.test_attention_decoder import MASK
from tests.layers.test_attention_decoder import MEMORY_DIM
from tests.layers.test_attention_decoder import OUTPUT_DIM
from tests.layers.test_attention_decoder import UNITS
from tests.layers.test_attention_decoder import random_memory
from tests.test_case import TestCase

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "jax", reason="the loop is JAX's"
)


def weighted_sum(outputs):
    """A loss whose gradient differs at every output."""
    import jax.numpy as jnp

    weights = jnp.sin(jnp.arange(outputs.size).reshape(outputs.shape))
    return jnp.sum(weights * outputs.astype("float32"))


class TestScanWithDeferredKernelGradients(TestCase):
    def test_matches_autodiff_of_a_scan(self):
        import jax

        from keras_seqext.layers._deferred_kernel_gradients import (
            ProjectionTape,
        )
        from keras_seqext.layers._deferred_kernel_gradients import (
            scan_with_deferred_kernel_gradients,
        )

        rng = np.random.default_rng(0)
        steps, batch, units = 4, 3, 5
        kernels = [
            keras.Variable(rng.normal(size=(units, units)), name="state")
            for _ in range(2)
        ]
        kernel_values = [kernel.value for kernel in kernels]
        bias = rng.normal(size=(units,)).astype("float32")
        inputs = rng.normal(size=(steps, batch, units)).astype("float32")
        state = rng.normal(size=(batch, units)).astype("float32")

        def step(bias, inputs_t, states, tape):
            hidden = jax.numpy.tanh(
                tape.project(states[0], kernels[0]) + inputs_t + bias
            )
            return hidden, [tape.project(hidden, kernels[1])]

        def deferred_loss(kernel_values, bias, inputs, state):
            outputs, states = scan_with_deferred_kernel_gradients(
                step, kernels, kernel_values, bias, inputs, [state], "float32"
            )
            return weighted_sum(outputs) + weighted_sum(states[0])

        def autodiff_loss(kernel_values, bias, inputs, state):
            def body(states, inputs_t):
                # A tape without probes applies the kernels as they are.
                tape = ProjectionTape(kernels, kernel_values)
                output, states = step(bias, inputs_t, states, tape)
                return states, output

            states, outputs = jax.lax.scan(body, [state], inputs)
            return weighted_sum(outputs) + weighted_sum(states[0])

        arguments = (kernel_values, bias, inputs, state)
        argnums = (0, 1, 2, 3)
        deferred = jax.grad(deferred_loss, argnums)(*arguments)
        expected = jax.grad(autodiff_loss, argnums)(*arguments)
        for actual, wanted in zip(
            jax.tree.leaves(deferred), jax.tree.leaves(expected)
        ):
            self.assertAllClose(actual, wanted, atol=1e-5, rtol=1e-5)


def decoder_model(teacher_forced, memory_dim=MEMORY_DIM, **kwargs):
    """The decoder in a functional model, so that it runs under its dtype
    policy's autocast as in `fit`."""
    decoder = AttentionDecoder(
        kwargs.pop("units", UNITS),
        OUTPUT_DIM,
        bias_initializer="random_normal",
        teacher_forcing_probability=0.5,
        seed=1,
        **kwargs,
    )
    output_length = kwargs.get("output_length") or INPUT_LENGTH
    memory = keras.Input((INPUT_LENGTH, memory_dim))
    if not teacher_forced:
        return keras.Model(memory, decoder(memory))
    targets = keras.Input((output_length, OUTPUT_DIM))
    mask = keras.Input((INPUT_LENGTH,), dtype="bool")
    outputs = decoder(memory, targets=targets, mask=mask)
    return keras.Model([memory, targets, mask], outputs)


def model_inputs(teacher_forced, output_length=None, memory_dim=MEMORY_DIM):
    memory = random_memory(shape=(BATCH, INPUT_LENGTH, memory_dim))
    if not teacher_forced:
        return [memory]
    rng = np.random.default_rng(2)
    classes = rng.integers(
        0, OUTPUT_DIM, (len(memory), output_length or INPUT_LENGTH)
    )
    targets = np.eye(OUTPUT_DIM, dtype="float32")[classes]
    return [memory, targets, MASK]


def gradients(model, inputs):
    """The loss's gradients w.r.t. the weights and the memory, in training."""
    import jax

    trainable = [v.value for v in model.trainable_variables]
    non_trainable = [v.value for v in model.non_trainable_variables]

    def loss(trainable, memory):
        model_inputs = [memory, *inputs[1:]] if inputs[1:] else memory
        outputs, _ = model.stateless_call(
            trainable, non_trainable, model_inputs, training=True
        )
        return weighted_sum(keras.tree.flatten(outputs)[0])

    grads = jax.jit(jax.grad(loss, argnums=(0, 1)))(trainable, inputs[0])
    return jax.tree.leaves(grads)


class TestDecoderLoop(TestCase):
    @pytest.mark.parametrize(
        "kwargs",
        [
            {},
            {"score": "concat"},
            {"score": "general"},
            {"score": "dot", "units": MEMORY_DIM},
            {"score": "location", "max_source_length": 8},
            {"feedback": "one_hot", "output_length": 3},
            {"unroll": True},
            # Wide enough that the values are projected once per sequence,
            # and `context_kernel` is not applied at each step.
            {"memory_dim": GATES_DIM},
        ],
    )
    def test_gradients_match_keras_loop(self, kwargs):
        self.check_gradients_match_keras_loop(True, **kwargs)

    def test_gradients_match_keras_loop_without_targets_or_mask(self):
        self.check_gradients_match_keras_loop(False)

    def test_mixed_precision_gradients_match_keras_loop(self):
        self.check_gradients_match_keras_loop(
            True, atol=2e-3, rtol=1e-2, dtype="mixed_float16"
        )

    def check_gradients_match_keras_loop(
        self, teacher_forced, atol=1e-6, rtol=1e-5, **kwargs
    ):
        model = decoder_model(teacher_forced, **kwargs)
        inputs = model_inputs(
            teacher_forced,
            kwargs.get("output_length"),
            kwargs.get("memory_dim", MEMORY_DIM),
        )
        deferred = gradients(model, inputs)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(
                AttentionDecoder, "inner_loop", keras.layers.RNN.inner_loop
            )
            expected = gradients(model, inputs)
        assert len(deferred) == len(expected)
        for actual, wanted in zip(deferred, expected):
            self.assertAllClose(actual, wanted, atol=atol, rtol=rtol)

    @pytest.mark.parametrize(
        "batch_size, deferred",
        [(MAX_BATCH_SIZE, True), (MAX_BATCH_SIZE + 1, False)],
    )
    def test_used_up_to_max_batch_size(self, batch_size, deferred):
        from keras_seqext.layers import _deferred_kernel_gradients as module

        calls = []
        original = module.scan_with_deferred_kernel_gradients

        def counted(*args, **kwargs):
            calls.append(1)
            return original(*args, **kwargs)

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(
                module, "scan_with_deferred_kernel_gradients", counted
            )
            AttentionDecoder(UNITS, OUTPUT_DIM)(
                np.zeros((batch_size, INPUT_LENGTH, MEMORY_DIM), "float32")
            )
        assert bool(calls) == deferred


def read_directly(cell, tensor, kernel):
    """A projection that bypasses the tape."""
    return ops.matmul(tensor, kernel)


def read_beside(cell, tensor, kernel):
    """A projection through the tape, and a second read of the kernel."""
    projection = cell._step_context.tape.project(tensor, kernel)
    return projection + 0.0 * ops.sum(kernel)


class TestPerStepKernelGuard:
    @pytest.mark.parametrize("project", [read_directly, read_beside])
    def test_a_kernel_read_outside_the_tape_raises(self, project):
        model = decoder_model(teacher_forced=False)
        inputs = model_inputs(teacher_forced=False)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(AttentionDecoderCell, "_project", project)
            with pytest.raises(RuntimeError, match="other than through"):
                gradients(model, inputs)

    def test_the_keras_loop_is_unguarded(self):
        # Above the JAX loop's batch sizes, Keras' loop differentiates any
        # read, so the same step trains.
        model = decoder_model(teacher_forced=False)
        memory = random_memory(shape=(MAX_BATCH_SIZE + 1, INPUT_LENGTH, 4))
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(AttentionDecoderCell, "_project", read_directly)
            grads = gradients(model, [memory])
        assert all(np.any(np.asarray(g) != 0) for g in grads)
