"""The decoder's loop on JAX, with each kernel's gradient one matmul per
sequence.

Autodiff through a `jax.lax.scan` computes the gradient of a kernel that
every step multiplies by, `x_t @ K`, inside the reverse loop: one
`x_t^T @ dy_t` per step, a matmul whose inner size is the batch size, too
small for a small batch to run near the machine's speed. This loop keeps the
`x_t` of every step instead and computes each kernel's gradient after the
reverse loop, as one matmul over all `T * batch` rows (the benchmarks page
shows what that gains, and where it stops paying).

It does so without a hand-written backward pass: each projection by a
deferred kernel gets a zero "probe" added, `x_t @ K + z_t`, the loop is
differentiated by JAX with respect to everything but those kernels, and the
probes' gradients are the `dy_t`. A step applies the kernels through a
`ProjectionTape`, which holds their values and the probes and records the
`x_t`. That is the one rule the loop depends on, and it is enforced: within
a step, reading a deferred kernel other than through the tape raises, since
it would silently get no gradient.

`decoder_loop` is what `AttentionDecoder.inner_loop` tries first. It raises
`NotImplementedError` where it does not apply (another backend, or a batch
size that is not a number up to `MAX_BATCH_SIZE`), and the decoder then runs
Keras' own loop, as Keras' `GRU` falls back from `backend.gru`.
"""

import keras
from keras import ops

# Above this batch size the per-step matmuls are large enough that keeping
# every step's inputs costs more than one gradient matmul per sequence saves.
MAX_BATCH_SIZE = 32


def decoder_loop(cell, sequences, initial_state, unroll):
    """Steps `cell` over `sequences` with its per-step kernels' gradients
    deferred; the cell must be inside its `_stepping` block.

    Args:
        cell: the `AttentionDecoderCell`.
        sequences: the step inputs, `(batch, T_out, features)`.
        initial_state: the cell's states `[y_0, s_0]`.
        unroll: whether to unroll the loop.

    Returns:
        `(last_output, outputs, states)`, as `keras.layers.RNN.inner_loop`.

    Raises:
        NotImplementedError: on a backend other than JAX, or when the batch
            size is unknown, symbolic or above `MAX_BATCH_SIZE`.
    """
    if keras.backend.backend() != "jax":
        raise NotImplementedError("The deferred-gradient loop is JAX's.")
    batch_size = sequences.shape[0]
    if not isinstance(batch_size, int) or batch_size > MAX_BATCH_SIZE:
        raise NotImplementedError(
            "The deferred-gradient loop needs a known batch size of at most "
            f"{MAX_BATCH_SIZE}. Received: {batch_size}"
        )
    attention_memory = cell._step_context.attention_memory
    kernels = cell._per_step_kernels(attention_memory)
    kernel_ids = {id(kernel) for kernel in kernels}
    others = [w for w in cell.weights if id(w) not in kernel_ids]

    def step(params, inputs, states, tape):
        other_values, attention_memory = params
        # Within the scan the weights are the traced values it was given.
        scope = _DeferredKernelScope(list(zip(others, other_values)), kernels)
        with scope, cell._stepping(attention_memory, tape):
            return cell.call(inputs, states)

    outputs, states = scan_with_deferred_kernel_gradients(
        step,
        kernels,
        [kernel.value for kernel in kernels],
        ([w.value for w in others], attention_memory),
        ops.swapaxes(sequences, 0, 1),
        initial_state,
        cell.compute_dtype,
        unroll=sequences.shape[1] if unroll else 1,
    )
    return outputs[-1], ops.swapaxes(outputs, 0, 1), states


class ProjectionTape:
    """Applies a step's deferred kernels, adding their probes, and records
    the inputs of the projections.

    Args:
        kernels: the deferred kernels, Keras variables, in a fixed order.
        kernel_values: their values, as the step reads them.
        probes: one tensor per kernel, `(batch, kernel.shape[-1])`; or None
            to leave the projections as they are (no gradient to defer).
    """

    def __init__(self, kernels, kernel_values, probes=None):
        self._index = {id(kernel): i for i, kernel in enumerate(kernels)}
        self._kernels = kernels
        self._values = kernel_values
        self._probes = probes
        self.inputs = [None] * len(kernels)

    def project(self, tensor, kernel):
        """`tensor @ kernel`, with the kernel's probe added when it is
        deferred."""
        index = self._index.get(id(kernel))
        if index is None:
            return ops.matmul(tensor, kernel)
        if self.inputs[index] is not None:
            raise RuntimeError(
                "A deferred kernel can be applied once per step; "
                f"{kernel.path} was applied twice."
            )
        self.inputs[index] = tensor
        # In the tensor's dtype, as a variable's autocast would give it.
        projection = ops.matmul(
            tensor, ops.cast(self._values[index], tensor.dtype)
        )
        if self._probes is None:
            return projection
        return projection + self._probes[index]


class _DeferredKernelScope(keras.StatelessScope):
    """A step's variables: the traced values of the others, and an error
    for any read of a deferred kernel, whose gradient comes from the tape
    alone."""

    def __init__(self, state_mapping, deferred_kernels):
        super().__init__(state_mapping, initialize_variables=False)
        self._deferred_kernels = {id(k): k for k in deferred_kernels}

    def get_current_value(self, variable):
        kernel = self._deferred_kernels.get(id(variable))
        if kernel is not None:
            raise RuntimeError(
                f"{kernel.path} was read in a step of the JAX decoder loop "
                "other than through the cell's `_project`. The loop computes "
                "a per-step kernel's gradient from the projections "
                "`_project` records, so this read would get no gradient. "
                "Apply the kernel with `self._project(tensor, kernel)`."
            )
        return super().get_current_value(variable)


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
        step: `step(params, inputs_t, states, tape)`, which returns
            `(output, new_states)`, applies each kernel of `kernels` exactly
            once, through `tape.project`, and reads each differentiable
            value from its arguments (a `jax.custom_vjp` function cannot
            differentiate a value it closes over).
        kernels: the deferred kernels, Keras variables.
        kernel_values: their values.
        params: a pytree of the step's other tensors.
        inputs: `(T, batch, ...)`.
        initial_states: a list of `(batch, ...)` tensors.
        compute_dtype: the dtype of the projections.
        unroll: `jax.lax.scan`'s `unroll`.

    Returns:
        `(outputs, final_states)`, outputs `(T, batch, ...)`.
    """
    import jax
    import jax.numpy as jnp

    def run(kernel_values, params, inputs, initial_states, probes=None):
        def body(states, step_inputs):
            inputs_t, probes_t = step_inputs
            tape = ProjectionTape(kernels, kernel_values, probes_t)
            output, new_states = step(params, inputs_t, states, tape)
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
    return tensor.reshape((-1, tensor.shape[-1])).astype(dtype)
