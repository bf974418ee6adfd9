"""The Bahdanau attention decoder: `AttentionDecoder`, an RNN over
`AttentionDecoderCell`."""

import keras
from keras import ops

from keras_seqext._replicas import replica_context
from keras_seqext._validation import check_bool
from keras_seqext._validation import check_dot_sizes
from keras_seqext._validation import check_positive_int
from keras_seqext._validation import check_probability
from keras_seqext._validation import check_seed
from keras_seqext._validation import check_source_length
from keras_seqext._validation import shape_error
from keras_seqext._weight_arguments import get_weight_argument
from keras_seqext.layers._deferred_kernel_gradients import decoder_loop
from keras_seqext.layers.attention_decoder_cell import CELL_ARGUMENTS
from keras_seqext.layers.attention_decoder_cell import AttentionDecoderCell
from keras_seqext.layers.attention_decoder_cell import check_cell_arguments


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
        check_cell_arguments(owner, **cell_arguments)
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
        with self.cell._stepping(
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
        # The JAX loop for small batches where it applies, else Keras' own.
        try:
            return decoder_loop(
                self.cell, sequences, initial_state, unroll=self.unroll
            )
        except NotImplementedError:
            return super().inner_loop(sequences, initial_state, mask, training)

    @property
    def unroll(self):
        """Whether the loop is unrolled: as given, and always on torch.

        Both of Keras' torch loops run each step from Python, so unrolling
        costs nothing there, while the rolled loop runs its first step an
        extra time to learn the output's shape.
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
        config = {name: cell_config[name] for name in CELL_ARGUMENTS}
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


def _cell_argument(name):
    return property(
        lambda self: getattr(self.cell, name),
        doc=f"The cell's `{name}` (read-only).",
    )


for _name in CELL_ARGUMENTS:
    setattr(AttentionDecoder, _name, _cell_argument(_name))


def _is_shape(value):
    return all(isinstance(dim, (int, type(None))) for dim in value)


def _shapes_of(tensors):
    return [tuple(t.shape) for t in keras.tree.flatten(tensors)]
