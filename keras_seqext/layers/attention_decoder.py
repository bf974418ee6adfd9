"""The Bahdanau attention decoder: `AttentionDecoder`, an RNN over
`AttentionDecoderCell`."""

import keras

from keras_seqext._validation import check_bool
from keras_seqext._validation import check_positive_int
from keras_seqext._validation import check_probability
from keras_seqext._validation import check_seed
from keras_seqext._weight_arguments import get_weight_argument
from keras_seqext.layers._decoder_arguments import CELL_ARGUMENTS
from keras_seqext.layers._decoder_arguments import check_cell_arguments
from keras_seqext.layers._decoder_inputs import check_decoder_mask
from keras_seqext.layers._decoder_inputs import check_decoder_shapes
from keras_seqext.layers._decoder_inputs import check_targets_dtype
from keras_seqext.layers._decoder_inputs import shapes_of
from keras_seqext.layers._deferred_kernel_gradients import decoder_loop
from keras_seqext.layers._teacher_forcing import loadable_probability
from keras_seqext.layers._teacher_forcing import teacher_forcing_inputs
from keras_seqext.layers.attention_decoder_cell import AttentionDecoderCell

# On TensorFlow, at inference, a loop of at most this many steps is
# unrolled (see `AttentionDecoder.unroll`); a longer one would make a large
# graph, slow to trace.
MAX_UNROLLED_STEPS = 100


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
    `ScheduledSampling` callback lowers as training goes, through
    `set_teacher_forcing_probability`, which checks it. A value assigned to
    the variable directly is read clipped to [0, 1] (NaN as 0), and saved
    so, so that a saved model always loads. Without targets, or
    at inference, the decoder feeds back its own outputs, so the model that
    was trained with targets decodes on its own. In a functional model the
    targets are a second input, which can be
    `keras.Input(..., optional=True)` so that `predict` needs none.

    Token mode: with `embedding_dim`, the decoder reads and writes token
    ids, for vocabularies of thousands of tokens. Each step feeds back the
    embedding of a token (its own argmax, or the expected embedding with
    `feedback="probabilities"`), so the parameters grow linearly with the
    vocabulary, not with its square (`AttentionDecoderCell` gives the
    count); `targets` are ids `(batch, T_out)`, looked up once per sequence;
    `output_activation=None` returns logits, for
    `keras.losses.SparseCategoricalCrossentropy(from_logits=True)`, whose
    `ignore_class` leaves padded target steps out of the loss; and
    `start_token` is the id fed at the first step.

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
        output_dim: Positive integer, the number of output classes: the
            vocabulary size in token mode.
        embedding_dim: Positive integer: token mode, feeding back token
            embeddings of this size; or None to feed back vectors of
            `output_dim`, as the Keras 2 layer does. Defaults to `None`.
        start_token: Integer id in `[0, output_dim)` fed at the first step
            (its embedding, or its one-hot vector); or None to feed zeros.
            Defaults to `None`.
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
        output_activation: Activation of each output step; None gives the
            logits. Defaults to `"softmax"`.
        return_attention_weights: Whether the call also returns the attention
            weights, as `(outputs, weights)`. Defaults to `False`.
        return_probabilities: Keras 2 compatibility: whether the call returns
            the attention weights *instead of* the outputs. Defaults to
            `False`.
        return_state: Whether the call also returns the last decoder state,
            `(batch, units)`, as its last element. Defaults to `False`.
        feedback: What each step feeds back as the next input:
            `"probabilities"` (the output distribution, as the Keras 2 layer
            does; in token mode the expected embedding) or `"one_hot"` (its
            argmax, one-hot encoded; in token mode that token's embedding).
            Defaults to `None`: `"one_hot"` in token mode, `"probabilities"`
            otherwise.
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
        embeddings_initializer: Initializer of the token embeddings.
            Defaults to `"uniform"`.
        embeddings_regularizer: Regularizer of the token embeddings.
            Defaults to `None`.
        embeddings_constraint: Constraint of the token embeddings. Defaults
            to `None`.
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
        targets: The true outputs, `(batch, T_out, output_dim)`, or in
            token mode their integer ids, `(batch, T_out)`, for teacher
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
            `(batch, T_out, output_dim)` (integer `(batch, T_out)` in token
            mode), or an initial state that is not `(batch, units)`.

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

    Token mode, a vocabulary of 1000 and logits out:

    >>> source = keras.Input((None,), dtype="int32")
    >>> targets = keras.Input((6,), dtype="int32", optional=True)
    >>> embedded = keras.layers.Embedding(1000, 32, mask_zero=True)(source)
    >>> encoded = keras.layers.LSTM(32, return_sequences=True)(embedded)
    >>> logits = keras_seqext.AttentionDecoder(
    ...     32, 1000, embedding_dim=32, output_length=6, start_token=1,
    ...     output_activation=None)(encoded, targets=targets)
    >>> model = keras.Model([source, targets], logits)
    >>> model.compile("adam", keras.losses.SparseCategoricalCrossentropy(
    ...     from_logits=True, ignore_class=0))
    >>> ids = np.random.randint(1, 1000, (4, 6))
    >>> history = model.fit([ids, ids], ids, verbose=0)
    >>> tuple(model.predict([ids, None], verbose=0).shape)
    (4, 6, 1000)

    Reference:
        Bahdanau, Cho and Bengio, "Neural Machine Translation by Jointly
        Learning to Align and Translate", ICLR 2015.
    """

    def __init__(
        self,
        units,
        output_dim,
        output_length=None,
        embedding_dim=None,
        start_token=None,
        score="additive",
        max_source_length=None,
        activation="tanh",
        output_activation="softmax",
        return_attention_weights=False,
        return_probabilities=False,
        return_state=False,
        feedback=None,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        embeddings_initializer="uniform",
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        embeddings_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        embeddings_constraint=None,
        teacher_forcing_probability=1.0,
        seed=None,
        unroll=False,
        **kwargs,
    ):
        given = locals()
        owner = type(self).__name__
        teacher_forcing_probability = check_probability(
            owner, "teacher_forcing_probability", teacher_forcing_probability
        )
        output_length = check_positive_int(
            owner, "output_length", output_length, allow_none=True
        )
        return_attention_weights = check_bool(
            owner, "return_attention_weights", return_attention_weights
        )
        return_probabilities = check_bool(
            owner, "return_probabilities", return_probabilities
        )
        return_state = check_bool(owner, "return_state", return_state)
        unroll = check_bool(owner, "unroll", unroll)
        seed = check_seed(owner, "seed", seed)
        cell_arguments = {name: given[name] for name in CELL_ARGUMENTS}
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

    def set_teacher_forcing_probability(self, probability):
        """Sets `teacher_forcing_probability` to `probability`, checked: how
        `ScheduledSampling` changes it.

        Args:
            probability: A number in [0, 1].

        Raises:
            ValueError: unless `probability` is a real number in [0, 1]
                (NaN is not).
        """
        value = check_probability(
            type(self).__name__, "probability", probability
        )
        self.teacher_forcing_probability.assign(value)

    def build(
        self,
        encoder_sequence_shape,
        targets_shape=None,
        initial_state_shape=None,
    ):
        check_decoder_shapes(
            self, encoder_sequence_shape, targets_shape, initial_state_shape
        )
        # Built on a given initial state (as in a model with that input),
        # the decoder has no W_s: a call must then give the state.
        self.cell.build(
            encoder_sequence_shape,
            computes_initial_state=initial_state_shape is None,
            owner=type(self).__name__,
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
        check_decoder_mask(self, encoder_sequence, mask)
        check_targets_dtype(self, targets)
        check_decoder_shapes(
            self,
            encoder_sequence.shape,
            None if targets is None else tuple(targets.shape),
            None if initial_state is None else shapes_of(initial_state),
        )
        if initial_state is not None:
            initial_state = keras.tree.flatten(initial_state)[0]
        states = self.cell.initial_state(encoder_sequence, mask, initial_state)
        step_inputs = teacher_forcing_inputs(
            self, encoder_sequence, targets if training else None
        )
        with self.cell._stepping(
            self.cell.attention_memory(encoder_sequence, mask),
            unrolled=_unrolls_at_inference(step_inputs.shape[1], training),
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
        """Whether the loop is unrolled: as given; always on torch; and on
        TensorFlow at inference for up to `MAX_UNROLLED_STEPS` steps.

        Both of Keras' torch loops run each step from Python, so unrolling
        costs nothing there, while the rolled loop runs its first step an
        extra time to learn the output's shape. TensorFlow's symbolic loop
        keeps its outputs in TensorLists, which LiteRT and OpenVINO convert
        only through TensorFlow's own operations: unrolled, an exported
        model runs on their builtin ones.
        """
        context = self.cell._step_context
        unrolled = context is not None and context.unrolled
        return self._unroll or unrolled or keras.backend.backend() == "torch"

    @unroll.setter
    def unroll(self, value):
        self._unroll = value

    def compute_output_shape(
        self,
        encoder_sequence_shape,
        targets_shape=None,
        initial_state_shape=None,
    ):
        check_decoder_shapes(
            self, encoder_sequence_shape, targets_shape, initial_state_shape
        )
        batch_size, input_length = encoder_sequence_shape[:2]
        output_length = self.output_length or input_length
        return self._select_outputs(
            (batch_size, output_length, self.output_dim),
            (batch_size, output_length, input_length),
            (batch_size, self.units),
        )

    def compute_output_spec(
        self,
        encoder_sequence,
        targets=None,
        mask=None,
        training=None,
        initial_state=None,
        encoder_sequence_mask=None,
    ):
        # Here too, so that a functional model refuses float token ids and
        # a mask of another shape when it is built, not at its first fit.
        check_decoder_mask(
            self,
            encoder_sequence,
            encoder_sequence_mask if mask is None else mask,
        )
        check_targets_dtype(self, targets)
        return super().compute_output_spec(
            encoder_sequence,
            targets=targets,
            mask=mask,
            training=training,
            initial_state=initial_state,
            encoder_sequence_mask=encoder_sequence_mask,
        )

    def compute_mask(self, sequences, mask=None):
        # Every output step is decoded, whatever the memory's mask.
        return None

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

    def get_config(self):
        cell_config = self.cell.get_config()
        config = {name: cell_config[name] for name in CELL_ARGUMENTS}
        config.update(
            output_length=self.output_length,
            return_attention_weights=self.return_attention_weights,
            return_probabilities=self.return_probabilities,
            # Of the variable, not its `.value`: in a `tf.distribute` scope
            # that is a MirroredVariable, which NumPy cannot convert.
            teacher_forcing_probability=loadable_probability(
                float(self.teacher_forcing_probability.numpy())
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


def _unrolls_at_inference(steps, training):
    """Whether the loop is unrolled at inference: on TensorFlow, for a
    number of steps known when traced and at most `MAX_UNROLLED_STEPS`."""
    return (
        keras.backend.backend() == "tensorflow"
        and not training
        and isinstance(steps, int)
        and steps <= MAX_UNROLLED_STEPS
    )
