"""The Bahdanau attention decoder: `AttentionDecoderCell` and its RNN."""

import contextlib

import keras
from keras import ops

from keras_seqext._replicas import replica_context
from keras_seqext._validation import check_bool
from keras_seqext._validation import check_choice
from keras_seqext._validation import check_dot_sizes
from keras_seqext._validation import check_keras_object
from keras_seqext._validation import check_positive_int
from keras_seqext._validation import check_probability
from keras_seqext._validation import check_required_for_score
from keras_seqext._validation import check_seed
from keras_seqext._validation import check_source_length
from keras_seqext._validation import shape_error
from keras_seqext._weight_arguments import add_weight_of_kind
from keras_seqext._weight_arguments import get_weight_argument
from keras_seqext._weight_arguments import weight_arguments_config
from keras_seqext.layers.attention_scores import SCORES
from keras_seqext.layers.attention_scores import additive_scores
from keras_seqext.layers.attention_scores import context_vectors
from keras_seqext.layers.attention_scores import dot_scores
from keras_seqext.layers.attention_scores import location_scores
from keras_seqext.layers.attention_scores import masked_softmax

FEEDBACK_MODES = ("probabilities", "one_hot")

# On JAX, up to this batch size the decoder's loop computes its per-step
# kernels' gradients once per sequence (`_deferred_kernel_gradients.py`):
# a training step of the tutorial's model took 11% less time at batch size
# 16, as long at 32, and 3% longer at 64 and 10% longer at 128, where the
# per-step matmuls are large enough and keeping every step's inputs costs
# more than it saves.
_DEFERRED_KERNEL_GRADIENTS_MAX_BATCH = 32

# The cell's constructor arguments, which the layer forwards to it, exposes
# as read-only properties and writes flat into its own config (as GRU does).
_CELL_ARGUMENTS = (
    "units",
    "output_dim",
    "score",
    "max_source_length",
    "activation",
    "output_activation",
    "feedback",
    "kernel_initializer",
    "recurrent_initializer",
    "bias_initializer",
    "kernel_regularizer",
    "recurrent_regularizer",
    "bias_regularizer",
    "kernel_constraint",
    "recurrent_constraint",
    "bias_constraint",
)


@keras.saving.register_keras_serializable(package="keras_seqext")
class AttentionDecoderCell(keras.layers.Layer):
    """One step of the Bahdanau attention decoder; owns its weights.

    At each step the cell scores every encoder state `h_j` against its
    previous state `s`, forms a context vector `c`, updates a GRU-like state
    and emits the next output `y'`, which is fed back as its next input:

    ```
    e_j = v_a . tanh(W_a s + U_a h_j + b_a)    a = softmax(e)    c = sum a_j h_j
    r  = sigmoid(W_r y + U_r s + C_r c + b_r)
    z  = sigmoid(W_z y + U_z s + C_z c + b_z)
    p  = activation(W_p y + U_p (r * s) + C_p c + b_p)
    s' = (1 - z) * s + z * p
    y' = output_activation(W_o y + U_o s + C_o c + b_o)
    ```

    As in the Keras 2 layer this rebuilds, `y'` reads the *previous* state
    `s`, not `s'`. The weights are stored fused, one matmul per input:
    `recurrent_kernel` is `[W_a | U_r | U_z | U_o]` (applied to `s`),
    `feedback_kernel` is `[W_r | W_z | W_p | W_o]` (to `y`),
    `context_kernel` is `[C_r | C_z | C_p | C_o]` (to `c`), `bias` is
    `[b_r | b_z | b_p | b_o]`; `proposal_kernel` is `U_p`, `key_kernel` and
    `key_bias` are `U_a` and `b_a`, `score_vector` is `v_a` and
    `initial_kernel` is the `W_s` of the initial state `s_0 = tanh(W_s h_0)`
    (not made when the cell is built to be given `s_0`).

    The other scores of `attention_scores.py` replace `e_j` (with `s` as the
    query `h_t` and `h_j` as `h_s`): `"concat"` is the additive score
    without `b_a`; `"general"` is `s . W_a h_j`, with `W_a h_j` as the keys
    (`key_kernel`, `(memory_dim, units)`) and no `W_a` block in
    `recurrent_kernel`; `"dot"` is `s . h_j` (so `units` must equal the
    memory's feature size) and has no attention weights; `"location"` is
    `(W_a s)_j`, its `W_a` block of `max_source_length` columns in
    `recurrent_kernel`, and no keys.

    The cell is normally driven by `AttentionDecoder`. It is built on the
    shape of the encoder sequence, `(batch, T_in, memory_dim)`. Its states
    are `[y, s]`, made by `initial_state()`; what every step attends to
    (the memory or its projection `C h`, its keys and its mask) is made
    once per sequence by `attention_memory()` and passed to each step as a
    constant, not as a state, so that a step by hand (as in a beam search)
    reads it as it is.

    Args:
        units: Positive integer, the size of the decoder state `s`.
        output_dim: Positive integer, the size of each output `y`.
        score: The attention score: `"additive"` (Bahdanau's), `"dot"`,
            `"general"`, `"concat"` or `"location"` (Luong's). Defaults to
            `"additive"`.
        max_source_length: Positive integer, the longest memory the
            `"location"` score serves (required there, unused otherwise).
            Defaults to `None`.
        activation: Activation of the state proposal `p` and of `s_0`.
            Defaults to `"tanh"`.
        output_activation: Activation of the output `y'`. Defaults to
            `"softmax"`.
        feedback: What the next step receives as `y`: `"probabilities"` (the
            output as it is) or `"one_hot"` (its argmax, one-hot encoded).
            Defaults to `"probabilities"`.
        kernel_initializer: Initializer of the kernels applied to the memory
            and to the fed-back output (`initial_kernel`, `key_kernel`,
            `score_vector`, `feedback_kernel`, `context_kernel`). Defaults to
            `"glorot_uniform"`.
        recurrent_initializer: Initializer of the kernels applied to the
            state (`recurrent_kernel`, `proposal_kernel`). Defaults to
            `"orthogonal"`.
        bias_initializer: Initializer of `key_bias` and `bias`. Defaults to
            `"zeros"`.
        kernel_regularizer: Regularizer of the kernels above. Defaults to
            `None`.
        recurrent_regularizer: Regularizer of the recurrent kernels. Defaults
            to `None`.
        bias_regularizer: Regularizer of the biases. Defaults to `None`.
        kernel_constraint: Constraint of the kernels. Defaults to `None`.
        recurrent_constraint: Constraint of the recurrent kernels. Defaults
            to `None`.
        bias_constraint: Constraint of the biases. Defaults to `None`.
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: `(batch, output_dim + 1)`: a teacher output and, in the last
            column, 1 where the step is fed that teacher output instead of
            the fed-back `y` (0 otherwise); or `(batch, 0)` to feed back `y`
            (no teacher), which spares the step the choice.
        states: `[y, s]`.
        attention_memory: What `attention_memory()` returned for the
            sequence being decoded. `AttentionDecoder` passes it for the
            length of its own call (Keras 3's `RNN` passes no constants to
            a cell), so it is only needed when stepping the cell by hand.

    Returns:
        A tuple `(step_output, new_states)`: `step_output` is `y'` and the
        attention weights concatenated, `(batch, output_dim + T_in)`;
        `new_states` is `[feedback(y'), s']`.
    """

    def __init__(
        self,
        units,
        output_dim,
        score="additive",
        max_source_length=None,
        activation="tanh",
        output_activation="softmax",
        feedback="probabilities",
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        checked = _check_cell_arguments(
            type(self).__name__,
            units,
            output_dim,
            score,
            max_source_length,
            activation,
            output_activation,
            feedback,
            kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer,
            kernel_regularizer=kernel_regularizer,
            recurrent_regularizer=recurrent_regularizer,
            bias_regularizer=bias_regularizer,
            kernel_constraint=kernel_constraint,
            recurrent_constraint=recurrent_constraint,
            bias_constraint=bias_constraint,
        )
        for name, value in checked.items():
            setattr(self, name, value)
        self.state_size = [self.output_dim, self.units]
        self.output_size = self.output_dim
        self._bound_attention_memory = None
        self._stepped_by_decoder = False
        self._projection_tape = None

    def build(self, memory_shape, computes_initial_state=True):
        """Makes the weights for a memory of `memory_shape`; `W_s` only
        with `computes_initial_state`, since a decoder that is always given
        `s_0` never reads it (and Keras' optimizers warn of a weight
        without a gradient)."""
        memory_dim = memory_shape[-1]
        units, output_dim = self.units, self.output_dim
        if self.score == "dot":
            check_dot_sizes(
                type(self).__name__,
                units,
                memory_dim,
                "`units`",
                "the memory's size",
            )
        # One column block per gate: reset, update, proposal, then output.
        gates_dim = 3 * units + output_dim

        def kernel(name, shape):
            return add_weight_of_kind(self, "kernel", name, shape)

        def recurrent_kernel(name, shape):
            return add_weight_of_kind(self, "recurrent", name, shape)

        def bias(name, shape):
            return add_weight_of_kind(self, "bias", name, shape)

        self.initial_kernel = None
        if computes_initial_state:
            self.initial_kernel = kernel("initial_kernel", (memory_dim, units))
        if self.score in ("additive", "concat", "general"):
            self.key_kernel = kernel("key_kernel", (memory_dim, units))
        if self.score == "additive":
            self.key_bias = bias("key_bias", (units,))
        if self.score in ("additive", "concat"):
            self.score_vector = kernel("score_vector", (units,))
        # The query W_a s shares the state's matmul with U_r, U_z and U_o;
        # U_p stays apart because it multiplies r * s, not s.
        self.recurrent_kernel = recurrent_kernel(
            "recurrent_kernel",
            (units, self._query_size + 2 * units + output_dim),
        )
        self.proposal_kernel = recurrent_kernel(
            "proposal_kernel", (units, units)
        )
        self.feedback_kernel = kernel(
            "feedback_kernel", (output_dim, gates_dim)
        )
        self.context_kernel = kernel("context_kernel", (memory_dim, gates_dim))
        self.bias = bias("bias", (gates_dim,))

    @property
    def _query_size(self):
        """The columns of `W_a s` in `recurrent_kernel`."""
        if self.score in ("additive", "concat"):
            return self.units
        if self.score == "location":
            return self.max_source_length
        return 0

    def attention_memory(self, memory, mask=None):
        """The per-sequence states that every step attends to.

        Computes the keys (`U_a h + b_a` for the additive score) once per
        sequence rather than once per step; and, for a small batch of short
        sequences, the values `C h` as well (see `_projects_values`).

        Args:
            memory: the encoder sequence, `(batch, T_in, memory_dim)`.
            mask: boolean `(batch, T_in)`, True on the steps to attend to;
                or None.

        Returns:
            `[values, keys]`, or `[values, keys, mask]` with the mask as a
            boolean `(batch, 1, T_in)`; the values are the memory or
            `memory @ context_kernel`.
        """
        values = memory
        if self._projects_values(memory.shape):
            values = ops.matmul(memory, self.context_kernel)
        keys = memory
        if self.score in ("additive", "concat", "general"):
            keys = ops.matmul(memory, self.key_kernel)
        if self.score == "additive":
            keys = keys + self.key_bias
        if mask is None:
            return [values, keys]
        return [values, keys, ops.expand_dims(ops.cast(mask, "bool"), 1)]

    @contextlib.contextmanager
    def attending_to(self, attention_memory):
        """Within the block, steps called without `attention_memory` use
        this one: how `AttentionDecoder` hands the memory to its loop."""
        self._bound_attention_memory = tuple(attention_memory)
        try:
            yield
        finally:
            self._bound_attention_memory = None

    @contextlib.contextmanager
    def _decoder_loop(self, attention_memory):
        """`attending_to`, for `AttentionDecoder`'s own loop, where each
        step runs `call` without `Layer.__call__`.

        The decoder's `__call__` has already cast the inputs and opened the
        dtype scope for the whole sequence. On torch, where every step runs
        from Python, the cell's `__call__` took about 0.4 ms a step at batch
        size 16, 5 to 10% of the training step.
        """
        with self.attending_to(attention_memory):
            self._stepped_by_decoder = True
            try:
                yield
            finally:
                self._stepped_by_decoder = False

    def __call__(self, *args, **kwargs):
        if self._stepped_by_decoder:
            return self.call(*args, **kwargs)
        return super().__call__(*args, **kwargs)

    def initial_state(self, memory, mask=None, state=None):
        """The states `[y_0, s_0]`: zeros, and `activation(W_s h_0)`.

        Args:
            memory: the encoder sequence, `(batch, T_in, memory_dim)`.
            mask: boolean `(batch, T_in)` or None; `h_0` is the first
                unmasked step of each sequence.
            state: a given `s_0`, `(batch, units)`, or None to compute it.

        Returns:
            `[y_0, s_0]`, shapes `(batch, output_dim)` and `(batch, units)`.
        """
        output = ops.zeros(
            (ops.shape(memory)[0], self.output_dim), memory.dtype
        )
        if state is not None:
            return [output, state]
        if self.initial_kernel is None:
            raise ValueError(
                f"{type(self).__name__} was built to be given the initial "
                "state, so it has no `initial_kernel` to compute one. "
                "Expected a `state` (`initial_state` of AttentionDecoder). "
                "Received: state=None"
            )
        if mask is None:
            first = memory[:, 0]
        else:
            # argmax returns the first maximum: the first unmasked step.
            first_index = ops.argmax(ops.cast(mask, "int32"), axis=1)
            first = ops.take_along_axis(
                memory, ops.reshape(first_index, (-1, 1, 1)), axis=1
            )[:, 0]
        state = self.activation(ops.matmul(first, self.initial_kernel))
        return [output, state]

    def call(self, inputs, states, attention_memory=None):
        if attention_memory is None:
            attention_memory = self._bound_attention_memory
        if attention_memory is None:
            raise ValueError(
                f"{type(self).__name__} needs the memory to attend to. "
                "Expected `attention_memory`, as `attention_memory()` makes "
                "it, or a call inside `attending_to(...)`. Received: "
                "attention_memory=None"
            )
        prev_output, prev_state = states
        values, keys = attention_memory[:2]
        mask = attention_memory[2] if len(attention_memory) > 2 else None
        units, output_dim = self.units, self.output_dim

        fed_output = prev_output
        if inputs.shape[-1]:
            use_teacher = ops.cast(inputs[:, output_dim:], "bool")
            fed_output = ops.where(
                use_teacher, inputs[:, :output_dim], prev_output
            )

        from_state = self._project(prev_state, self.recurrent_kernel)
        query_size = self._query_size
        query = ops.expand_dims(from_state[:, :query_size], 1)
        state_gates = from_state[:, query_size : query_size + 2 * units]
        state_logits = from_state[:, query_size + 2 * units :]

        scores = self._scores(query, prev_state, keys)
        weights = masked_softmax(scores, mask)
        # C c, either way: sum_j a_j (C h_j) when the values are projected.
        from_context = context_vectors(weights, values)[:, 0]
        if not self._are_projected(values):
            from_context = self._project(from_context, self.context_kernel)
        weights = weights[:, 0]

        from_inputs = (
            self._project(fed_output, self.feedback_kernel)
            + from_context
            + self.bias
        )
        gates = ops.sigmoid(state_gates + from_inputs[:, : 2 * units])
        reset, update = gates[:, :units], gates[:, units:]
        proposal = self.activation(
            self._project(reset * prev_state, self.proposal_kernel)
            + from_inputs[:, 2 * units : 3 * units]
        )
        state = prev_state + update * (proposal - prev_state)
        output = self.output_activation(
            state_logits + from_inputs[:, 3 * units :]
        )
        step_output = ops.concatenate([output, weights], axis=-1)
        return step_output, [self._feed_back(output), state]

    def _projects_values(self, memory_shape):
        """Whether `attention_memory` projects the values, `C h`, once per
        sequence, so that each step reads `sum_j a_j (C h_j)`, one small
        batched product, instead of multiplying `c` by `context_kernel`.

        It does when a step then reads fewer numbers: `batch * T_in *
        gates_dim` against `batch * T_in * memory_dim` plus the kernel's
        `memory_dim * gates_dim`. That always holds when `gates_dim <=
        memory_dim`; otherwise it needs the batch size and `T_in`, and with
        either unknown (as in TensorFlow's `fit`, which traces its step for
        any batch size) the values stay as they are. In the tutorial's
        model (150 units, 50 classes, 5 steps: up to batch size 42) on JAX,
        a training step took 9% less time at batch size 16 and 4% less at
        32 (medians of paired rounds); on torch the change was within the
        machine's noise.
        """
        batch_size, length, memory_dim = memory_shape
        gates_dim = self.context_kernel.shape[-1]
        if gates_dim <= memory_dim:
            return True
        if batch_size is None or length is None:
            return False
        step_reads = batch_size * length * gates_dim
        return step_reads <= batch_size * length * memory_dim + (
            memory_dim * gates_dim
        )

    def _are_projected(self, values):
        """Whether `values` (from `attention_memory`) are `C h`.

        Told by their size: when `gates_dim <= memory_dim` the values are
        always projected, so a last axis of `gates_dim` is never the raw
        memory's. (A beam search repeats the values along the batch, which
        a test of the batch size would misread.)
        """
        return values.shape[-1] == self.context_kernel.shape[-1]

    def _per_step_kernels(self, attention_memory):
        """The kernels that every step multiplies by, each once."""
        kernels = [
            self.recurrent_kernel,
            self.proposal_kernel,
            self.feedback_kernel,
        ]
        if not self._are_projected(attention_memory[0]):
            kernels.append(self.context_kernel)
        return kernels

    @contextlib.contextmanager
    def _projecting_through(self, tape):
        """Within the block, the steps' projections by `_per_step_kernels`
        go through `tape`, a `ProjectionTape` of the JAX loop."""
        self._projection_tape = tape
        try:
            yield
        finally:
            self._projection_tape = None

    def _project(self, tensor, kernel):
        projection = ops.matmul(tensor, kernel)
        if self._projection_tape is None:
            return projection
        return self._projection_tape.record(tensor, kernel, projection)

    def _scores(self, query, state, keys):
        """The step's scores, `(batch, 1, T_in)`, from the projected query
        `W_a s`, the state `s` and the keys."""
        if self.score in ("additive", "concat"):
            return additive_scores(query, keys, self.score_vector)
        if self.score == "location":
            return location_scores(query, ops.shape(keys)[1])
        return dot_scores(ops.expand_dims(state, 1), keys)

    def _feed_back(self, output):
        if self.feedback == "one_hot":
            one_hot = ops.one_hot(ops.argmax(output, axis=-1), self.output_dim)
            return ops.cast(one_hot, output.dtype)
        return output

    def get_config(self):
        config = {
            "units": self.units,
            "output_dim": self.output_dim,
            "score": self.score,
            "max_source_length": self.max_source_length,
            "activation": keras.activations.serialize(self.activation),
            "output_activation": keras.activations.serialize(
                self.output_activation
            ),
            "feedback": self.feedback,
            **weight_arguments_config(self, ("kernel", "recurrent", "bias")),
        }
        return {**super().get_config(), **config}


@keras.saving.register_keras_serializable(package="keras_seqext")
class AttentionDecoder(keras.layers.RNN):
    """Bahdanau attention decoder, the Keras 2 `AttentionDecoder` on Keras 3.

    Reads a whole encoder sequence (the "memory", usually the output of an
    `LSTM(..., return_sequences=True)`) and decodes an output sequence from
    it, one step at a time: each step attends over every encoder step, updates
    a GRU-like state and emits a distribution over `output_dim` classes, which
    it feeds back as its next input. `AttentionDecoderCell` has the
    equations and the weights.

    Shapes: memory `(batch, T_in, memory_dim)`, outputs
    `(batch, T_out, output_dim)`, attention weights `(batch, T_out, T_in)`,
    where `T_out` is `output_length`, or `T_in` when that is None. The whole
    output sequence comes from one call, for training and for `predict`.

    Teacher forcing: called with `targets` (the true outputs,
    `(batch, T_out, output_dim)`) and `training=True`, step t is fed
    `targets[:, t-1]` instead of its own previous output, with probability
    `teacher_forcing_probability`, drawn per example and per step. That
    probability is a non-trainable variable, saved with the model, which the
    `ScheduledSampling` callback lowers as training goes. Without targets, or
    at inference, the decoder feeds back its own outputs, so the model that
    was trained with targets decodes on its own. In a functional model the
    targets are a second input, which can be
    `keras.Input(..., optional=True)` so that `predict` needs none.

    Masking: a mask on the memory (from `keras.layers.Masking` or
    `keras.layers.Embedding(mask_zero=True)`, passed on by the encoder)
    removes the masked steps from every attention softmax: they get exactly
    0 weight, the outputs do not depend on the values under the mask, and
    `s_0` is computed from the first unmasked step. The outputs themselves
    carry no mask: every one of the `T_out` steps is decoded.

    Differences from the Keras 2 layer: the output length can differ from
    the input length, masks are honoured, `return_probabilities` can be had
    together with the outputs (`return_attention_weights`), and the weights
    are stored fused (see `AttentionDecoderCell`).

    Args:
        units: Positive integer, the size of the decoder state.
        output_dim: Positive integer, the number of output classes.
        output_length: Positive integer, the number of steps to decode, or
            None to decode as many steps as the memory has. Defaults to
            `None`.
        score: The attention score: `"additive"` (Bahdanau's, as in the
            Keras 2 layer), or Luong's `"dot"` (needs `units` equal to the
            memory's feature size), `"general"`, `"concat"` or
            `"location"` (needs `max_source_length`); see
            `AttentionDecoderCell`. Defaults to `"additive"`.
        max_source_length: Positive integer, the longest memory the
            `"location"` score serves. Defaults to `None`.
        activation: Activation of the state proposal and of the initial
            state. Defaults to `"tanh"`.
        output_activation: Activation of each output step. Defaults to
            `"softmax"`.
        return_attention_weights: Whether the call also returns the attention
            weights, as `(outputs, weights)`. Defaults to `False`.
        return_probabilities: Keras 2 compatibility: whether the call returns
            the attention weights *instead of* the outputs. Defaults to
            `False`.
        return_state: Whether the call also returns the last decoder state,
            `(batch, units)`, as its last element. Defaults to `False`.
        feedback: What each step feeds back as the next input:
            `"probabilities"` (the output distribution, as the Keras 2 layer
            does) or `"one_hot"` (its argmax, one-hot encoded). Defaults to
            `"probabilities"`.
        kernel_initializer: Initializer of the kernels applied to the memory
            and to the fed-back outputs. Defaults to `"glorot_uniform"`.
        recurrent_initializer: Initializer of the kernels applied to the
            decoder state. Defaults to `"orthogonal"`.
        bias_initializer: Initializer of the biases. Defaults to `"zeros"`.
        kernel_regularizer: Regularizer of the kernels. Defaults to `None`.
        recurrent_regularizer: Regularizer of the recurrent kernels. Defaults
            to `None`.
        bias_regularizer: Regularizer of the biases. Defaults to `None`.
        activity_regularizer: Regularizer of the layer's output. Defaults to
            `None`.
        kernel_constraint: Constraint of the kernels. Defaults to `None`.
        recurrent_constraint: Constraint of the recurrent kernels. Defaults
            to `None`.
        bias_constraint: Constraint of the biases. Defaults to `None`.
        teacher_forcing_probability: The initial probability, in [0, 1],
            of feeding a step the true previous output when `targets` are
            given in training. Defaults to `1.0`.
        seed: Integer seed of the teacher-forcing draws. Defaults to `None`.
        unroll: Whether to unroll the decoding loop (faster for short
            outputs, more memory). On PyTorch the loop is always unrolled,
            since its steps run from Python either way. Defaults to `False`.
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.

    Call arguments:
        encoder_sequence: The memory, `(batch, T_in, memory_dim)`.
        targets: The true outputs, `(batch, T_out, output_dim)`, for teacher
            forcing in training; ignored at inference. Defaults to `None`.
        mask: Boolean `(batch, T_in)`, True on the memory steps to attend
            to. Keras passes the encoder's mask here by itself. Defaults to
            `None`.
        training: Python boolean, whether the call is in training mode.
        initial_state: The initial decoder state `s_0`, `(batch, units)` (or
            a list holding it), instead of `tanh(W_s h_0)`. A decoder first
            called (built) with it, as in a model with that input, has no
            `W_s` and needs it in every call. Defaults to `None`.
        encoder_sequence_mask: The same as `mask`. When a call has more than
            one tensor argument (`targets` or `initial_state` too), Keras
            passes the encoder's mask under this name instead of `mask`.
            Defaults to `None`.

    Returns:
        The outputs `(batch, T_out, output_dim)`, or the attention weights
        `(batch, T_out, T_in)` with `return_probabilities=True`; followed by
        the weights with `return_attention_weights=True` and the last state
        with `return_state=True`, as a tuple.

    Raises:
        ValueError: on a bad argument value, a memory that is not rank 3 or
            has no known feature size, targets that are not
            `(batch, T_out, output_dim)`, or an initial state that is not
            `(batch, units)`.

    Example:

    The tutorial's model, an LSTM encoder and the decoder:

    >>> model = keras.Sequential([
    ...     keras.Input((5, 50)),
    ...     keras.layers.LSTM(150, return_sequences=True),
    ...     keras_seqext.AttentionDecoder(150, 50),
    ... ])
    >>> x = np.eye(50, dtype="float32")[np.random.randint(0, 50, (4, 5))]
    >>> tuple(model.predict(x, verbose=0).shape)
    (4, 5, 50)

    Three output steps, with the attention weights:

    >>> decoder = keras_seqext.AttentionDecoder(
    ...     16, 10, output_length=3, return_attention_weights=True)
    >>> outputs, weights = decoder(np.random.rand(2, 5, 8).astype("float32"))
    >>> tuple(outputs.shape), tuple(weights.shape)
    ((2, 3, 10), (2, 3, 5))

    Trained with teacher forcing, the targets a second (optional) input:

    >>> source = keras.Input((5, 50))
    >>> targets = keras.Input((5, 50), optional=True)
    >>> encoded = keras.layers.LSTM(32, return_sequences=True)(source)
    >>> decoded = keras_seqext.AttentionDecoder(32, 50)(
    ...     encoded, targets=targets)
    >>> model = keras.Model([source, targets], decoded)
    >>> model.compile("adam", "categorical_crossentropy")
    >>> history = model.fit([x, x], x, verbose=0)
    >>> tuple(model.predict([x, None], verbose=0).shape)
    (4, 5, 50)

    Reference:
        Bahdanau, Cho and Bengio, "Neural Machine Translation by Jointly
        Learning to Align and Translate", ICLR 2015.
    """

    def __init__(
        self,
        units,
        output_dim,
        output_length=None,
        score="additive",
        max_source_length=None,
        activation="tanh",
        output_activation="softmax",
        return_attention_weights=False,
        return_probabilities=False,
        return_state=False,
        feedback="probabilities",
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        teacher_forcing_probability=1.0,
        seed=None,
        unroll=False,
        **kwargs,
    ):
        owner = type(self).__name__
        check_probability(
            owner, "teacher_forcing_probability", teacher_forcing_probability
        )
        output_length = check_positive_int(
            owner, "output_length", output_length, allow_none=True
        )
        for name, flag in (
            ("return_attention_weights", return_attention_weights),
            ("return_probabilities", return_probabilities),
            ("return_state", return_state),
            ("unroll", unroll),
        ):
            check_bool(owner, name, flag)
        check_seed(owner, "seed", seed)
        cell_arguments = {
            "units": units,
            "output_dim": output_dim,
            "score": score,
            "max_source_length": max_source_length,
            "activation": activation,
            "output_activation": output_activation,
            "feedback": feedback,
            "kernel_initializer": kernel_initializer,
            "recurrent_initializer": recurrent_initializer,
            "bias_initializer": bias_initializer,
            "kernel_regularizer": kernel_regularizer,
            "recurrent_regularizer": recurrent_regularizer,
            "bias_regularizer": bias_regularizer,
            "kernel_constraint": kernel_constraint,
            "recurrent_constraint": recurrent_constraint,
            "bias_constraint": bias_constraint,
        }
        # The cell's own checks, here first, so that an error names this
        # layer, not its cell.
        _check_cell_arguments(owner, **cell_arguments)
        get_weight_argument(owner, "activity_regularizer", activity_regularizer)
        if return_probabilities and return_attention_weights:
            raise ValueError(
                f"Invalid arguments for {owner}: `return_probabilities=True` "
                "returns the attention weights instead of the outputs, "
                "`return_attention_weights=True` returns both. Expected at "
                "most one of them. Received: return_probabilities=True, "
                "return_attention_weights=True"
            )
        cell = AttentionDecoderCell(
            **cell_arguments,
            dtype=kwargs.get("dtype"),
            trainable=kwargs.get("trainable", True),
            name="attention_decoder_cell",
        )
        super().__init__(
            cell,
            return_sequences=True,
            return_state=return_state,
            unroll=unroll,
            activity_regularizer=activity_regularizer,
            **kwargs,
        )
        self.output_length = output_length
        self.return_attention_weights = return_attention_weights
        self.return_probabilities = return_probabilities
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        # A variable, not a float: callbacks change it between batches and a
        # compiled train step reads it anew each time. It is float32 even
        # under mixed precision, where it is compared with float32 draws.
        self.teacher_forcing_probability = self.add_weight(
            name="teacher_forcing_probability",
            shape=(),
            initializer=keras.initializers.Constant(
                teacher_forcing_probability
            ),
            trainable=False,
            dtype="float32",
            autocast=False,
        )

    def build(
        self,
        encoder_sequence_shape,
        targets_shape=None,
        initial_state_shape=None,
    ):
        self._check_shapes(
            encoder_sequence_shape, targets_shape, initial_state_shape
        )
        # Built on a given initial state (as in a model with that input),
        # the decoder has no W_s: a call must then give the state.
        self.cell.build(
            encoder_sequence_shape,
            computes_initial_state=initial_state_shape is None,
        )

    def call(
        self,
        encoder_sequence,
        targets=None,
        mask=None,
        training=None,
        initial_state=None,
        encoder_sequence_mask=None,
    ):
        if mask is None:
            mask = encoder_sequence_mask
        self._check_shapes(
            encoder_sequence.shape,
            None if targets is None else tuple(targets.shape),
            None if initial_state is None else _shapes_of(initial_state),
        )
        if initial_state is not None:
            initial_state = keras.tree.flatten(initial_state)[0]
        states = self.cell.initial_state(encoder_sequence, mask, initial_state)
        step_inputs = self._step_inputs(
            encoder_sequence, targets if training else None
        )
        with self.cell._decoder_loop(
            self.cell.attention_memory(encoder_sequence, mask)
        ):
            result = super().call(
                step_inputs, initial_state=states, training=training
            )
        if self.return_state:
            step_outputs, _, last_state = result
        else:
            step_outputs, last_state = result, None
        outputs = step_outputs[..., : self.output_dim]
        weights = step_outputs[..., self.output_dim :]
        return self._select_outputs(outputs, weights, last_state)

    def inner_loop(self, sequences, initial_state, mask, training=False):
        batch_size = sequences.shape[0]
        if (
            keras.backend.backend() != "jax"
            or batch_size is None
            or batch_size > _DEFERRED_KERNEL_GRADIENTS_MAX_BATCH
        ):
            return super().inner_loop(sequences, initial_state, mask, training)
        # The same steps, with the gradients of the kernels every step
        # multiplies by computed once per sequence.
        from keras_seqext.layers._deferred_kernel_gradients import (
            scan_with_deferred_kernel_gradients,
        )

        cell = self.cell
        kernels = cell._per_step_kernels(cell._bound_attention_memory)
        kernel_ids = {id(kernel) for kernel in kernels}
        others = [w for w in cell.weights if id(w) not in kernel_ids]

        def step(kernel_values, params, inputs, states, tape):
            other_values, attention_memory = params
            mapping = [*zip(kernels, kernel_values), *zip(others, other_values)]
            # The step's own scope: within the scan, the weights are
            # the traced values the loop was given.
            scope = keras.StatelessScope(mapping, initialize_variables=False)
            with scope, cell._projecting_through(tape):
                return cell.call(inputs, states, attention_memory)

        outputs, states = scan_with_deferred_kernel_gradients(
            step,
            kernels,
            [kernel.value for kernel in kernels],
            ([w.value for w in others], cell._bound_attention_memory),
            ops.swapaxes(sequences, 0, 1),
            initial_state,
            cell.compute_dtype,
            unroll=sequences.shape[1] if self.unroll else 1,
        )
        return outputs[-1], ops.swapaxes(outputs, 0, 1), states

    @property
    def unroll(self):
        """Whether the loop is unrolled: as given, and always on torch.

        Both of Keras' torch loops run each step from Python, so unrolling
        costs nothing there, while the rolled loop runs its first step an
        extra time to learn the output's shape: a training step at batch
        size 16 took 8 to 11% longer rolled.
        """
        return self._unroll or keras.backend.backend() == "torch"

    @unroll.setter
    def unroll(self, value):
        self._unroll = value

    def compute_output_shape(
        self,
        encoder_sequence_shape,
        targets_shape=None,
        initial_state_shape=None,
    ):
        self._check_shapes(
            encoder_sequence_shape, targets_shape, initial_state_shape
        )
        batch_size, input_length = encoder_sequence_shape[:2]
        output_length = self.output_length or input_length
        return self._select_outputs(
            (batch_size, output_length, self.output_dim),
            (batch_size, output_length, input_length),
            (batch_size, self.units),
        )

    def compute_mask(self, sequences, mask=None):
        # Every output step is decoded, whatever the memory's mask.
        return None

    def _step_inputs(self, sequences, targets):
        """The inputs of the decoding loop, `(batch, T_out, output_dim + 1)`.

        Step t's input is `targets[:, t-1]` (zeros at t = 0, where `y_0` is
        zeros anyway) and a last column that is 1 where that target is fed
        instead of the decoder's own previous output. The coins are drawn
        here, before the loop, because random ops cannot run inside a JAX
        recurrence step. Without targets every step feeds back its own
        output, and the inputs are `(batch, T_out, 0)`: only the loop's
        length.
        """
        batch_size, input_length = ops.shape(sequences)[:2]
        output_length = self.output_length or input_length
        if targets is None:
            return ops.zeros((batch_size, output_length, 0), sequences.dtype)
        targets = ops.cast(targets, sequences.dtype)
        previous_targets = ops.pad(targets[:, :-1], [[0, 0], [1, 0], [0, 0]])
        draws = self._draw_coins(batch_size, output_length)
        use_targets = ops.cast(
            draws < self.teacher_forcing_probability, sequences.dtype
        )
        return ops.concatenate([previous_targets, use_targets], axis=-1)

    def _draw_coins(self, batch_size, output_length):
        """Uniform draws for the teacher-forcing coins, `(batch, T_out, 1)`.

        Under a `tf.distribute` strategy every replica holds a share of the
        global batch and the same seed state, so drawing for its own rows
        would give every replica the same coins. Each draws for the whole
        global batch and keeps the rows of its share instead: the coins one
        device would draw, when the strategy splits the batch into equal,
        consecutive shares, as `MirroredStrategy` does with whole batches.
        """
        context = replica_context()
        replicas = 1 if context is None else context.num_replicas_in_sync
        draws = keras.random.uniform(
            (batch_size * replicas, output_length, 1), seed=self.seed_generator
        )
        if context is None:
            return draws
        start = context.replica_id_in_sync_group * batch_size
        return ops.slice(draws, (start, 0, 0), (batch_size, output_length, 1))

    def _select_outputs(self, outputs, weights, last_state):
        """Arranges outputs, weights and state as the arguments ask."""
        if self.return_probabilities:
            selected = [weights]
        elif self.return_attention_weights:
            selected = [outputs, weights]
        else:
            selected = [outputs]
        if self.return_state:
            selected.append(last_state)
        return selected[0] if len(selected) == 1 else tuple(selected)

    def _check_shapes(
        self, encoder_sequence_shape, targets_shape, initial_state_shape
    ):
        owner = type(self).__name__
        if len(encoder_sequence_shape) != 3:
            raise shape_error(
                owner,
                "encoder_sequence",
                "a rank-3 tensor (batch, timesteps, features)",
                encoder_sequence_shape,
            )
        memory_dim = encoder_sequence_shape[-1]
        if memory_dim is None:
            raise shape_error(
                owner,
                "encoder_sequence",
                "a known feature size (batch, timesteps, features)",
                encoder_sequence_shape,
            )
        built_dim = (
            self.cell.context_kernel.shape[0] if self.cell.built else None
        )
        if built_dim is not None and memory_dim != built_dim:
            raise shape_error(
                owner,
                "encoder_sequence",
                f"(batch, timesteps, {built_dim}), the feature size the "
                "layer was built with",
                encoder_sequence_shape,
            )
        if self.score == "dot":
            check_dot_sizes(
                owner, self.units, memory_dim, "`units`", "the memory's size"
            )
        if self.score == "location":
            check_source_length(
                owner,
                "encoder_sequence",
                encoder_sequence_shape,
                self.max_source_length,
            )
        if targets_shape is not None:
            output_length = self.output_length or encoder_sequence_shape[1]
            known_lengths = None not in (output_length, targets_shape[1])
            if (
                len(targets_shape) != 3
                or targets_shape[-1] != self.output_dim
                or (known_lengths and targets_shape[1] != output_length)
            ):
                length = "T_out" if output_length is None else output_length
                raise shape_error(
                    owner,
                    "targets",
                    f"(batch, {length}, {self.output_dim}): the output "
                    "length and output_dim",
                    targets_shape,
                )
        if initial_state_shape is None:
            if self.cell.built and self.cell.initial_kernel is None:
                raise ValueError(
                    f"Invalid value for argument `initial_state` of {owner}. "
                    "The layer was built with a given initial state, so it "
                    "has no weights to compute one. Expected a tensor of "
                    f"shape (batch, {self.units}). Received: "
                    "initial_state=None"
                )
            return
        state_shapes = (
            [initial_state_shape]
            if _is_shape(initial_state_shape)
            else list(initial_state_shape)
        )
        if (
            len(state_shapes) != 1
            or len(state_shapes[0]) != 2
            or state_shapes[0][-1] != self.units
        ):
            raise ValueError(
                f"Invalid shape for argument `initial_state` of {owner}. "
                f"Expected one tensor of shape (batch, {self.units}). "
                f"Received shapes: {[tuple(s) for s in state_shapes]}"
            )

    def get_config(self):
        cell_config = self.cell.get_config()
        config = {name: cell_config[name] for name in _CELL_ARGUMENTS}
        config.update(
            output_length=self.output_length,
            return_attention_weights=self.return_attention_weights,
            return_probabilities=self.return_probabilities,
            # Of the variable, not its `.value`: in a `tf.distribute` scope
            # that is a MirroredVariable, which NumPy cannot convert.
            teacher_forcing_probability=float(
                self.teacher_forcing_probability.numpy()
            ),
            seed=self.seed,
            unroll=self._unroll,
            activity_regularizer=keras.regularizers.serialize(
                self.activity_regularizer
            ),
        )
        base_config = super().get_config()
        # Fixed by this layer, so not arguments of its constructor.
        for name in (
            "cell",
            "return_sequences",
            "go_backwards",
            "stateful",
            "zero_output_for_mask",
        ):
            del base_config[name]
        return {**base_config, **config}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _check_cell_arguments(
    owner,
    units,
    output_dim,
    score,
    max_source_length,
    activation,
    output_activation,
    feedback,
    **weight_arguments,
):
    """`AttentionDecoderCell`'s arguments, checked, with errors naming
    `owner` (the cell, or the decoder that makes it): a dict of each name
    and its value as the cell keeps it (activations and weight arguments as
    Keras objects)."""
    checked = {
        "units": check_positive_int(owner, "units", units),
        "output_dim": check_positive_int(owner, "output_dim", output_dim),
        "score": check_choice(owner, "score", score, SCORES),
        "max_source_length": check_required_for_score(
            owner, "max_source_length", max_source_length, score, "location"
        ),
        "feedback": check_choice(owner, "feedback", feedback, FEEDBACK_MODES),
    }
    for name, value in (
        ("activation", activation),
        ("output_activation", output_activation),
    ):
        checked[name] = check_keras_object(
            owner, name, value, keras.activations.get
        )
    for name, value in weight_arguments.items():
        checked[name] = get_weight_argument(owner, name, value)
    return checked


def _cell_argument(name):
    return property(
        lambda self: getattr(self.cell, name),
        doc=f"The cell's `{name}` (read-only).",
    )


for _name in _CELL_ARGUMENTS:
    setattr(AttentionDecoder, _name, _cell_argument(_name))


def _is_shape(value):
    return all(isinstance(dim, (int, type(None))) for dim in value)


def _shapes_of(tensors):
    return [tuple(t.shape) for t in keras.tree.flatten(tensors)]
