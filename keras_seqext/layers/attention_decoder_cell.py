"""The step of the Bahdanau attention decoder: `AttentionDecoderCell`."""

import contextlib

import keras
from keras import ops

from keras_seqext._tensor_checks import check_mask
from keras_seqext._validation import check_dot_sizes
from keras_seqext._weight_arguments import add_weight_of_kind
from keras_seqext._weight_arguments import weight_arguments_config
from keras_seqext.layers._decoder_arguments import CELL_ARGUMENTS
from keras_seqext.layers._decoder_arguments import WEIGHT_KINDS
from keras_seqext.layers._decoder_arguments import check_cell_arguments
from keras_seqext.layers._decoder_arguments import check_weight_sizes
from keras_seqext.layers._portable_ops import first_max_index
from keras_seqext.layers._portable_ops import one_hot
from keras_seqext.layers.attention_scores import additive_scores
from keras_seqext.layers.attention_scores import context_vectors
from keras_seqext.layers.attention_scores import dot_scores
from keras_seqext.layers.attention_scores import location_scores
from keras_seqext.layers.attention_scores import masked_softmax
from keras_seqext.layers.attention_scores import zero_masked


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

    Token mode: with `embedding_dim` set, the cell owns an embedding table
    `E`, `(output_dim, embedding_dim)`, and `y` is the embedding of the
    previous token rather than a vector of `output_dim`: `E[argmax(l)]`
    with `feedback="one_hot"` (the default there) or the expected
    embedding `softmax(l) @ E` with `"probabilities"`, where `l` are the
    step's logits, before `output_activation`. Every kernel that reads `y`
    then has `embedding_dim` rows, so the parameters grow linearly with
    `output_dim`. With `V = output_dim`, `E = embedding_dim`, `d` the
    memory's size, `u = units` and `q` the query's columns (`u` for the
    additive and concat scores, `max_source_length` for location, 0 for dot
    and general), the cell has `V E + (E + d + 1)(3u + V) + u (q + 3u + V)`
    weights, plus `d u` for `initial_kernel`, `d u` for `key_kernel`
    (additive, concat, general), `u` for `key_bias` (additive) and `u` for
    `score_vector` (additive, concat). Without `embedding_dim`, `V` takes
    the place of `E` and there is no table: `V (V + d + 1 + 3u + u) + ...`,
    quadratic in `V`.

    The cell is normally driven by `AttentionDecoder`. It is built on the
    shape of the encoder sequence, `(batch, T_in, memory_dim)`. Its states
    are `[y, s]`, made by `initial_state()` (`y_0` is zeros, or the
    fed-back form of `start_token`); what every step attends to
    (the memory or its projection `C h`, its keys and its mask) is made
    once per sequence by `attention_memory()` and passed to each step as a
    constant, not as a state, so that a step by hand (as in a beam search)
    reads it as it is.

    Args:
        units: Positive integer, the size of the decoder state `s`.
        output_dim: Positive integer, the size of each output `y'`: the
            number of classes, or the vocabulary in token mode.
        embedding_dim: Positive integer, the size of the token embeddings
            fed back in token mode; or None to feed back vectors of
            `output_dim`. Defaults to `None`.
        start_token: Integer id in `[0, output_dim)` whose fed-back form
            (its embedding, or its one-hot vector) is `y_0`; or None for
            zeros. Defaults to `None`.
        score: The attention score: `"additive"` (Bahdanau's), `"dot"`,
            `"general"`, `"concat"` or `"location"` (Luong's). Defaults to
            `"additive"`.
        max_source_length: Positive integer, the longest memory the
            `"location"` score serves, or None to take the length of the
            memory the cell is built on (which must then be known); unused
            by the other scores. Defaults to `None`.
        activation: Activation of the state proposal `p` and of `s_0`.
            Defaults to `"tanh"`.
        output_activation: Activation of the output `y'`. Defaults to
            `"softmax"`.
        feedback: What the next step receives as `y`: `"probabilities"` (the
            output as it is; in token mode the expected embedding) or
            `"one_hot"` (its argmax, one-hot encoded; in token mode its
            embedding). Defaults to `None`: `"one_hot"` in token mode,
            `"probabilities"` otherwise.
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
        embeddings_initializer: Initializer of the embedding table.
            Defaults to `"uniform"`, as in `keras.layers.Embedding`.
        embeddings_regularizer: Regularizer of the embedding table.
            Defaults to `None`.
        embeddings_constraint: Constraint of the embedding table. Defaults
            to `None`.
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: `(batch, feed_dim + 1)`: a teacher's fed-back form (see
            `feed_of_tokens`; `feed_dim` is `embedding_dim` in token mode,
            `output_dim` otherwise) and, in the last column, 1 where the
            step is fed it instead of its own `y` (0 otherwise); or
            `(batch, 0)` to feed back `y` (no teacher), which spares the
            step the choice.
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
        embedding_dim=None,
        start_token=None,
        score="additive",
        max_source_length=None,
        activation="tanh",
        output_activation="softmax",
        feedback=None,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        embeddings_initializer="uniform",
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        embeddings_regularizer=None,
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        embeddings_constraint=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        given = locals()
        arguments = {name: given[name] for name in CELL_ARGUMENTS}
        checked = check_cell_arguments(type(self).__name__, **arguments)
        for name, value in checked.items():
            setattr(self, name, value)
        self.state_size = [self.feed_dim, self.units]
        self.output_size = self.output_dim
        # Set only while a decoding loop steps the cell (`_stepping`).
        self._step_context = None
        self._location_length = None

    @property
    def feed_dim(self):
        """The size of the fed-back `y`: `embedding_dim` in token mode,
        `output_dim` otherwise."""
        return self.embedding_dim or self.output_dim

    def build(self, memory_shape, computes_initial_state=True, owner=None):
        """Makes the weights for a memory of `memory_shape`; `W_s` only
        with `computes_initial_state`, since a decoder that is always given
        `s_0` never reads it (and Keras' optimizers warn of a weight
        without a gradient). Errors name `owner` (this class by default),
        the layer the user made."""
        owner = owner or type(self).__name__
        shapes = self._weight_shapes(
            owner, memory_shape, computes_initial_state
        )
        check_weight_sizes(owner, self, shapes, memory_shape)
        self.embeddings = None
        self.initial_kernel = None
        for name, (kind, shape) in shapes.items():
            setattr(self, name, add_weight_of_kind(self, kind, name, shape))

    def _weight_shapes(self, owner, memory_shape, computes_initial_state):
        """Each weight's kind and shape, by name, in the order they are
        made (the order a saved file holds them in)."""
        memory_dim = memory_shape[-1]
        units, output_dim = self.units, self.output_dim
        if self.score == "dot":
            check_dot_sizes(
                owner, units, memory_dim, "`units`", "the memory's size"
            )
        self._location_length = None
        if self.score == "location":
            self._location_length = self._source_length(owner, memory_shape)
        # One column block per gate: reset, update, proposal, then output.
        gates_dim = 3 * units + output_dim
        shapes = {}
        if self.embedding_dim is not None:
            shapes["embeddings"] = (
                "embeddings",
                (output_dim, self.embedding_dim),
            )
        if computes_initial_state:
            shapes["initial_kernel"] = ("kernel", (memory_dim, units))
        if self.score in ("additive", "concat", "general"):
            shapes["key_kernel"] = ("kernel", (memory_dim, units))
        if self.score == "additive":
            shapes["key_bias"] = ("bias", (units,))
        if self.score in ("additive", "concat"):
            shapes["score_vector"] = ("kernel", (units,))
        # The query W_a s shares the state's matmul with U_r, U_z and U_o;
        # U_p stays apart because it multiplies r * s, not s.
        shapes["recurrent_kernel"] = (
            "recurrent",
            (units, self._query_size + 2 * units + output_dim),
        )
        shapes["proposal_kernel"] = ("recurrent", (units, units))
        shapes["feedback_kernel"] = ("kernel", (self.feed_dim, gates_dim))
        shapes["context_kernel"] = ("kernel", (memory_dim, gates_dim))
        shapes["bias"] = ("bias", (gates_dim,))
        return shapes

    def _source_length(self, owner, memory_shape):
        """The memory length the location score serves: `max_source_length`,
        or without it the memory's length at the build."""
        if self.max_source_length is not None:
            return self.max_source_length
        length = memory_shape[1]
        if not isinstance(length, int) or length <= 0:
            raise ValueError(
                f"Invalid value for argument `max_source_length` of {owner}. "
                "Expected a positive integer with score='location' when the "
                "memory's length is not known as the layer is built (it is "
                f"taken from there otherwise). Received: "
                f"max_source_length=None, a memory of shape "
                f"{tuple(memory_shape)}"
            )
        return length

    @property
    def source_length(self):
        """The longest memory the location score serves, once built (None
        for the other scores)."""
        return self._location_length

    @property
    def _query_size(self):
        """The columns of `W_a s` in `recurrent_kernel`."""
        if self.score in ("additive", "concat"):
            return self.units
        if self.score == "location":
            return self._location_length
        return 0

    def attention_memory(self, memory, mask=None, by_feature_size=False):
        """The per-sequence states that every step attends to.

        Computes the keys (`U_a h + b_a` for the additive score) once per
        sequence rather than once per step; and, for a small batch of short
        sequences, the values `C h` as well (see `_projects_values`).

        Args:
            memory: the encoder sequence, `(batch, T_in, memory_dim)`.
            mask: boolean `(batch, T_in)`, True on the steps to attend to;
                or None.
            by_feature_size: whether to decide on projecting the values by
                the feature sizes alone, whatever the batch size and
                length: so that the values' width is known before a call.

        Returns:
            `[values, keys]`, or `[values, keys, mask]` with the mask as a
            boolean `(batch, 1, T_in)`; the values are the memory or
            `memory @ context_kernel`.
        """
        check_mask(
            type(self).__name__, mask, tuple(memory.shape), "mask", "memory"
        )
        memory = zero_masked(memory, mask)
        values = memory
        shape = memory.shape
        if by_feature_size:
            shape = (None, None, shape[-1])
        if self._projects_values(shape):
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
    def _stepping(self, attention_memory, tape=None, unrolled=False):
        """Within the block, the cell is stepped by a decoding loop.

        Each step called without `attention_memory` reads this one, since
        Keras 3's `RNN` passes no constants to its cell. A step runs `call`
        without `Layer.__call__`: the loop's owner has already cast the
        inputs and opened the dtype scope once for the whole sequence, and
        on PyTorch, where every step runs from Python, the per-step
        `__call__` is a visible share of the training step. With `tape`,
        the per-step kernels are applied through it (see
        `_deferred_kernel_gradients.py`).

        Args:
            attention_memory: what `attention_memory()` returned.
            tape: a `ProjectionTape`, or None.
            unrolled: whether the loop is to be unrolled, whatever its
                owner was configured with.
        """
        outer = self._step_context
        self._step_context = _StepContext(
            tuple(attention_memory), tape, unrolled
        )
        try:
            yield
        finally:
            self._step_context = outer

    def __call__(self, *args, **kwargs):
        if self._step_context is not None:
            return self.call(*args, **kwargs)
        return super().__call__(*args, **kwargs)

    def initial_state(self, memory, mask=None, state=None):
        """The states `[y_0, s_0]`: zeros (or the fed-back form of
        `start_token`), and `activation(W_s h_0)`.

        Args:
            memory: the encoder sequence, `(batch, T_in, memory_dim)`.
            mask: boolean `(batch, T_in)` or None; `h_0` is the first
                unmasked step of each sequence.
            state: a given `s_0`, `(batch, units)`, or None to compute it.

        Returns:
            `[y_0, s_0]`, shapes `(batch, feed_dim)` and `(batch, units)`.
        """
        check_mask(
            type(self).__name__, mask, tuple(memory.shape), "mask", "memory"
        )
        output = self.start_feed(ops.shape(memory)[0], memory.dtype)
        if state is not None:
            return [output, state]
        if self.initial_kernel is None:
            raise ValueError(
                f"{type(self).__name__} was built to be given the initial "
                "state, so it has no `initial_kernel` to compute one. "
                "Expected a `state` (`initial_state` of AttentionDecoder). "
                "Received: state=None"
            )
        # Zeroed, so that a fully masked sequence starts from zeros, not
        # from whatever its first step holds.
        memory = zero_masked(memory, mask)
        if mask is None:
            first = memory[:, 0]
        else:
            # argmax returns the first maximum: the first unmasked step,
            # picked by a product with its one-hot (a gather along the
            # time axis has no ONNX form on PyTorch).
            first_index = ops.argmax(ops.cast(mask, "int32"), axis=1)
            picks = one_hot(first_index, ops.shape(memory)[1], memory.dtype)
            first = ops.sum(ops.expand_dims(picks, -1) * memory, axis=1)
        state = self.activation(ops.matmul(first, self.initial_kernel))
        return [output, state]

    def feed_of_tokens(self, tokens, dtype=None):
        """The fed-back form of token ids: their embeddings in token mode,
        their one-hot vectors otherwise.

        Args:
            tokens: integer ids in `[0, output_dim)`, any shape.
            dtype: the result's dtype; the compute dtype by default.

        Returns:
            The ids' fed-back forms, `tokens.shape + (feed_dim,)`.
        """
        dtype = dtype or self.compute_dtype
        tokens = ops.convert_to_tensor(tokens)
        if self.embeddings is None:
            return one_hot(tokens, self.output_dim, dtype)
        return ops.cast(ops.take(self.embeddings, tokens, axis=0), dtype)

    def start_feed(self, batch_size, dtype=None):
        """`y_0` for `batch_size` sequences, `(batch, feed_dim)`: the
        fed-back form of `start_token`, or zeros without one."""
        dtype = dtype or self.compute_dtype
        zeros = ops.zeros((batch_size, self.feed_dim), dtype)
        if self.start_token is None:
            return zeros
        # Broadcast from one vector: a batch size that is symbolic (in an
        # export) can shape zeros, not an array filled with the id. The
        # embedding is a product with the one-hot vector, not a gather:
        # LiteRT fails to convert a second gather beside the feedback's on
        # PyTorch.
        start = one_hot(
            ops.convert_to_tensor(self.start_token, "int32"),
            self.output_dim,
            dtype,
        )
        if self.embeddings is not None:
            start = ops.matmul(start, ops.cast(self.embeddings, dtype))
        return zeros + start

    def call(self, inputs, states, attention_memory=None):
        if attention_memory is None and self._step_context is not None:
            attention_memory = self._step_context.attention_memory
        if attention_memory is None:
            raise ValueError(
                f"{type(self).__name__} needs the memory to attend to. "
                "Expected `attention_memory`, as `attention_memory()` makes "
                "it, or a call inside `_stepping(...)`. Received: "
                "attention_memory=None"
            )
        prev_output, prev_state = states
        values, keys = attention_memory[:2]
        mask = attention_memory[2] if len(attention_memory) > 2 else None
        units, feed_dim = self.units, self.feed_dim

        fed_output = prev_output
        if inputs.shape[-1]:
            use_teacher = ops.cast(inputs[:, feed_dim:], "bool")
            fed_output = ops.where(
                use_teacher, inputs[:, :feed_dim], prev_output
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
        logits = state_logits + from_inputs[:, 3 * units :]
        output = self.output_activation(logits)
        step_output = ops.concatenate([output, weights], axis=-1)
        return step_output, [self._feed_back(output, logits), state]

    def _projects_values(self, memory_shape):
        """Whether `attention_memory` projects the values, `C h`, once per
        sequence, so that each step reads `sum_j a_j (C h_j)`, one small
        batched product, instead of multiplying `c` by `context_kernel`.

        It does when a step then reads fewer numbers: `batch * T_in *
        gates_dim` against `batch * T_in * memory_dim` plus the kernel's
        `memory_dim * gates_dim`. That always holds when `gates_dim <=
        memory_dim`; otherwise it needs the batch size and `T_in` as
        numbers, and when either is unknown or symbolic (TensorFlow's
        `fit` traces its step for any batch size; an export traces a
        symbolic one) the values stay as they are, which is right for any
        size. Small batches of short sequences gain most: see the JAX
        section of the benchmarks page.
        """
        batch_size, length, memory_dim = memory_shape
        gates_dim = self.context_kernel.shape[-1]
        if gates_dim <= memory_dim:
            return True
        if not (isinstance(batch_size, int) and isinstance(length, int)):
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

    def _project(self, tensor, kernel):
        """`tensor @ kernel`; through the loop's tape when it has one."""
        tape = self._step_context and self._step_context.tape
        if tape is None:
            return ops.matmul(tensor, kernel)
        return tape.project(tensor, kernel)

    def _scores(self, query, state, keys):
        """The step's scores, `(batch, 1, T_in)`, from the projected query
        `W_a s`, the state `s` and the keys."""
        if self.score in ("additive", "concat"):
            return additive_scores(query, keys, self.score_vector)
        if self.score == "location":
            return location_scores(query, ops.shape(keys)[1])
        return dot_scores(ops.expand_dims(state, 1), keys)

    def _feed_back(self, output, logits):
        """The next step's `y`, from this step's output and its logits (in
        token mode, whatever the output's activation)."""
        if self.feedback == "one_hot":
            scores = output if self.embeddings is None else logits
            return self.feed_of_tokens(first_max_index(scores), output.dtype)
        if self.embeddings is None:
            return output
        probabilities = ops.softmax(ops.cast(logits, "float32"), axis=-1)
        embeddings = ops.cast(self.embeddings, "float32")
        return ops.cast(ops.matmul(probabilities, embeddings), output.dtype)

    def get_config(self):
        config = {
            "units": self.units,
            "output_dim": self.output_dim,
            "embedding_dim": self.embedding_dim,
            "start_token": self.start_token,
            "score": self.score,
            "max_source_length": self.max_source_length,
            "activation": keras.activations.serialize(self.activation),
            "output_activation": keras.activations.serialize(
                self.output_activation
            ),
            "feedback": self.feedback,
            **weight_arguments_config(self, WEIGHT_KINDS),
        }
        return {**super().get_config(), **config}


class _StepContext:
    """What the steps of one decoding loop share: the attention memory, the
    tape of the JAX loop that defers the kernels' gradients (or None), and
    whether the loop is unrolled."""

    def __init__(self, attention_memory, tape, unrolled):
        self.attention_memory = attention_memory
        self.tape = tape
        self.unrolled = unrolled
