"""The RepeatVector LSTM autoencoder as one layer, and its encoder."""

import keras
from keras import ops

from keras_seqext._tensor_checks import check_mask
from keras_seqext._validation import check_bool
from keras_seqext._validation import check_choice
from keras_seqext._validation import check_keras_object
from keras_seqext._validation import check_positive_int
from keras_seqext._validation import check_size
from keras_seqext._validation import is_integer
from keras_seqext._validation import is_real
from keras_seqext._validation import shape_error
from keras_seqext._weight_arguments import get_weight_argument

MODES = ("reconstruct", "predict", "composite")


def _lstm_arguments(
    owner, activation, dropout, recurrent_dropout, unroll, **weights
):
    """The arguments that every LSTM of a stack gets, checked and serialized
    (so that each LSTM deserializes initializer objects of its own)."""
    for name, rate in (
        ("dropout", dropout),
        ("recurrent_dropout", recurrent_dropout),
    ):
        if not is_real(rate) or not 0.0 <= rate < 1.0:
            raise ValueError(
                f"Invalid value for argument `{name}` of {owner}. Expected a "
                f"rate in [0, 1). Received: {name}={rate!r}"
            )
    arguments = {
        "activation": keras.activations.serialize(
            check_keras_object(
                owner, "activation", activation, keras.activations.get
            )
        ),
        "dropout": float(dropout),
        "recurrent_dropout": float(recurrent_dropout),
        "unroll": check_bool(owner, "unroll", unroll),
    }
    for name, value in weights.items():
        arguments[name] = keras.saving.serialize_keras_object(
            get_weight_argument(owner, name, value)
        )
    return arguments


def _check_units(owner, units):
    """Returns `units` as a non-empty list of positive ints."""
    if is_integer(units):
        units = [units]
    if not isinstance(units, (list, tuple)) or not units:
        raise ValueError(
            f"Invalid value for argument `units` of {owner}. Expected a "
            "positive integer or a non-empty list of them. Received: "
            f"units={units!r}"
        )
    return [check_size(owner, "units", size) for size in units]


def _as_given(units):
    """`units` as the config holds it: an integer as it is, a list of them
    as a list (JSON has no tuple)."""
    return int(units) if is_integer(units) else [int(u) for u in units]


def _lstm_stack(sizes, arguments, name, dtype, last_returns_sequences):
    return [
        keras.layers.LSTM(
            size,
            return_sequences=last_returns_sequences or i < len(sizes) - 1,
            name=f"{name}_{i}",
            dtype=dtype,
            **arguments,
        )
        for i, size in enumerate(sizes)
    ]


def _run_stack(lstms, sequences, mask, training):
    for lstm in lstms:
        sequences = lstm(sequences, mask=mask, training=training)
    return sequences


def _build_stack(lstms, sequences_shape):
    for lstm in lstms:
        lstm.build(sequences_shape)
        sequences_shape = lstm.compute_output_shape(sequences_shape)
    return sequences_shape


def _is_empty_batch(inputs):
    """A batch of no sequences, which Keras' LSTM fails on under
    TensorFlow: there is nothing to compute."""
    batch_size = inputs.shape[0]
    return isinstance(batch_size, int) and batch_size == 0


def _zeros_like_outputs(layer, inputs):
    """`layer`'s outputs for an empty batch: empty arrays of their shapes."""
    return keras.tree.map_shape_structure(
        lambda shape: ops.zeros(shape, layer.compute_dtype),
        layer.compute_output_shape(tuple(inputs.shape)),
    )


@keras.saving.register_keras_serializable(package="keras_seqext")
class LSTMEncoder(keras.layers.Layer):
    """Stacked LSTMs that read a sequence into one vector, the code.

    The encoder half of `LSTMAutoencoder`, whose `encoder` attribute is one
    of these sharing its weights; on its own it is the feature extractor of
    the LSTM autoencoder tutorials. Masked steps (from
    `keras.layers.Masking` or a mask argument) are skipped by every LSTM.

    Args:
        units: Positive integer, or a list of them for stacked LSTMs (first
            to last); the code has the last size.
        activation: Activation of the LSTMs. Defaults to `"tanh"`.
        dropout: Input dropout rate of the LSTMs, in [0, 1). Defaults to
            `0.0`.
        recurrent_dropout: Recurrent dropout rate, in [0, 1). Defaults to
            `0.0`.
        unroll: Whether the LSTMs unroll their loops, as in
            `keras.layers.LSTM`: for a fixed length, and needed to export
            to LiteRT or OpenVINO from TensorFlow. Defaults to `False`.
        kernel_initializer, recurrent_initializer, bias_initializer,
        kernel_regularizer, recurrent_regularizer, bias_regularizer,
        kernel_constraint, recurrent_constraint, bias_constraint: As in
            `keras.layers.LSTM`, for every LSTM of the stack.
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: `(batch, timesteps, features)`.
        mask: Boolean `(batch, timesteps)`, False on padded steps. Defaults
            to `None`.
        training: Python boolean, whether dropout applies.

    Returns:
        The code, `(batch, units[-1])`.

    Example:

    >>> encoder = keras_seqext.layers.LSTMEncoder([16, 8])
    >>> tuple(encoder(np.zeros((2, 9, 1), "float32")).shape)
    (2, 8)
    """

    def __init__(
        self,
        units,
        activation="tanh",
        dropout=0.0,
        recurrent_dropout=0.0,
        unroll=False,
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
        owner = type(self).__name__
        self.units = _check_units(owner, units)
        self._units_argument = _as_given(units)
        self.lstm_arguments = _lstm_arguments(
            owner,
            activation,
            dropout,
            recurrent_dropout,
            unroll,
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
        self.lstms = _lstm_stack(
            self.units,
            self.lstm_arguments,
            "encoder_lstm",
            self.dtype_policy,
            last_returns_sequences=False,
        )
        self.supports_masking = True

    def build(self, inputs_shape):
        self.check_inputs_shape(type(self).__name__, inputs_shape)
        _build_stack(self.lstms, inputs_shape)

    def call(self, inputs, mask=None, training=None):
        self.check_inputs(type(self).__name__, inputs, mask)
        if _is_empty_batch(inputs):
            return _zeros_like_outputs(self, inputs)
        return _run_stack(self.lstms, inputs, mask, training)

    def compute_output_spec(self, inputs, mask=None, training=None):
        # Here too, so that a functional model checks its mask when built.
        self.check_inputs(type(self).__name__, inputs, mask)
        return super().compute_output_spec(inputs, mask=mask, training=training)

    def compute_output_shape(self, inputs_shape):
        self.check_inputs_shape(type(self).__name__, inputs_shape)
        return (inputs_shape[0], self.units[-1])

    def check_inputs(self, owner, inputs, mask):
        """`check_inputs_shape`, and `mask` must be `(batch, timesteps)`
        as `inputs`."""
        self.check_inputs_shape(owner, inputs.shape)
        check_mask(owner, mask, tuple(inputs.shape))

    def check_inputs_shape(self, owner, shape):
        """Raises, naming `owner`, unless `shape` is rank 3 with at least
        one step and the feature size the first LSTM was built for (any,
        before the build)."""
        if len(shape) != 3 or shape[-1] is None:
            raise shape_error(
                owner,
                "inputs",
                "a rank-3 tensor (batch, timesteps, features) with a known "
                "feature size",
                shape,
            )
        if isinstance(shape[1], int) and shape[1] == 0:
            raise shape_error(owner, "inputs", "at least one time step", shape)
        if not self.built:
            return
        built_features = self.lstms[0].cell.kernel.shape[0]
        if shape[-1] != built_features:
            raise shape_error(
                owner,
                "inputs",
                f"(batch, timesteps, {built_features}), the feature size the "
                "layer was built with",
                shape,
            )

    def compute_mask(self, inputs, mask=None):
        # The code is one vector per sequence: nothing left to mask.
        return None

    def get_config(self):
        return {
            **super().get_config(),
            "units": self._units_argument,
            **self.lstm_arguments,
        }


class _RepeatDecoder(keras.layers.Layer):
    """Repeats the code along the time axis and decodes it: LSTMs that
    mirror the encoder's stack, then a Dense layer at every step."""

    def __init__(self, sizes, lstm_arguments, backwards, **kwargs):
        super().__init__(**kwargs)
        self.lstms = _lstm_stack(
            sizes,
            lstm_arguments,
            f"{self.name}_lstm",
            self.dtype_policy,
            last_returns_sequences=True,
        )
        self.backwards = backwards
        self.supports_masking = True

    def build(self, code_shape, output_dim):
        steps_shape = (code_shape[0], None, code_shape[-1])
        outputs_shape = _build_stack(self.lstms, steps_shape)
        self.dense = keras.layers.Dense(
            output_dim, name=f"{self.name}_dense", dtype=self.dtype_policy
        )
        self.dense.build(outputs_shape)

    def call(self, code, length, mask=None, training=None):
        steps = ops.broadcast_to(
            ops.expand_dims(code, 1),
            (ops.shape(code)[0], length, ops.shape(code)[-1]),
        )
        if self.backwards and mask is not None:
            mask = ops.flip(mask, axis=1)
        outputs = self.dense(_run_stack(self.lstms, steps, mask, training))
        # Decoded last step first, so the first step is flipped back first.
        return ops.flip(outputs, axis=1) if self.backwards else outputs


@keras.saving.register_keras_serializable(package="keras_seqext")
class LSTMAutoencoder(keras.layers.Layer):
    """The RepeatVector LSTM autoencoder of the tutorials, as one layer.

    An LSTM encoder reads the sequence into one vector, the code; a decoder
    repeats the code once per output step and decodes it with LSTMs (the
    encoder's stack mirrored) and a Dense layer at every step. The modes of
    Srivastava et al. (2015):

    - `"reconstruct"`: the input sequence itself, `(batch, T, output_dim)`.
    - `"predict"`: the next `prediction_length` steps,
      `(batch, prediction_length, output_dim)`.
    - `"composite"`: two decoders on one code, `[reconstruction,
      prediction]`.

    Unlike `RepeatVector(n)`, the repeat follows each batch's own length,
    so one built layer serves `keras.Input((None, features))` and sequences
    of any length. Masked steps (from `keras.layers.Masking` or a `mask`
    argument) are skipped by the encoder and by the reconstruction decoder,
    and the mask is passed on with the reconstruction, so `fit` leaves
    padded steps out of the loss. `autoencoder.encoder` is an `LSTMEncoder`
    sharing the encoder's weights: `keras.Model(inputs,
    autoencoder.encoder(inputs))` is the standalone feature extractor.

    Args:
        units: Positive integer, or a list of them for stacked LSTMs (the
            encoder's, first to last; the decoders mirror them). The code
            has the last size.
        mode: `"reconstruct"`, `"predict"` or `"composite"`. Defaults to
            `"reconstruct"`.
        prediction_length: Positive integer, the steps to predict (needed by
            `"predict"` and `"composite"` and only by them). Defaults to
            `None`.
        reverse_reconstruction: Whether the reconstruction decoder produces
            the last step first, as Srivastava et al. do; the output is in
            the input's order either way. The first steps decoded are then
            the last the encoder read, which trained markedly faster in
            `examples/anomaly_detection.py`. Defaults to `False`.
        output_dim: Positive integer, the feature size of the outputs, or
            None for the input's. Defaults to `None`.
        return_encoding: Whether to also return the code, `(batch,
            units[-1])`, last. Defaults to `False`.
        activation: Activation of the LSTMs. Defaults to `"tanh"` (the
            tutorials use `"relu"`).
        dropout: Input dropout rate of every LSTM, in [0, 1). Defaults to
            `0.0`.
        recurrent_dropout: Recurrent dropout rate of every LSTM, in [0, 1).
            Defaults to `0.0`.
        unroll: Whether every LSTM unrolls its loop, as in
            `keras.layers.LSTM`: for inputs of a fixed length, and needed
            to export to LiteRT or OpenVINO from TensorFlow. Defaults to
            `False`.
        kernel_initializer, recurrent_initializer, bias_initializer,
        kernel_regularizer, recurrent_regularizer, bias_regularizer,
        kernel_constraint, recurrent_constraint, bias_constraint: As in
            `keras.layers.LSTM`, for every LSTM.
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: `(batch, T, features)`.
        mask: Boolean `(batch, T)`, False on padded steps. Defaults to
            `None`.
        training: Python boolean, whether dropout applies.

    Returns:
        The reconstruction or the prediction; with `"composite"` the list
        `[reconstruction, prediction]`; with `return_encoding=True` the
        code is appended (a list in every mode).

    Raises:
        ValueError: on a bad argument, or inputs that are not rank 3 with a
            known feature size.

    Example:

    The tutorials' reconstruction of `[0.1, ..., 0.9]`, and its encoder:

    >>> sequence = np.linspace(0.1, 0.9, 9, dtype="float32").reshape(1, 9, 1)
    >>> autoencoder = keras_seqext.layers.LSTMAutoencoder(100)
    >>> inputs = keras.Input((None, 1))
    >>> model = keras.Model(inputs, autoencoder(inputs))
    >>> model.compile(optimizer="adam", loss="mse")
    >>> history = model.fit(sequence, sequence, epochs=2, verbose=0)
    >>> encoder = keras.Model(inputs, autoencoder.encoder(inputs))
    >>> tuple(encoder.predict(sequence, verbose=0).shape)
    (1, 100)

    Reference:
        Srivastava, Mansimov and Salakhutdinov, "Unsupervised Learning of
        Video Representations using LSTMs", ICML 2015.
    """

    def __init__(
        self,
        units,
        mode="reconstruct",
        prediction_length=None,
        reverse_reconstruction=False,
        output_dim=None,
        return_encoding=False,
        activation="tanh",
        dropout=0.0,
        recurrent_dropout=0.0,
        unroll=False,
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
        owner = type(self).__name__
        self.mode = check_choice(owner, "mode", mode, MODES)
        predicts = mode != "reconstruct"
        if predicts or prediction_length is not None:
            if not predicts:
                raise ValueError(
                    f"Invalid value for argument `prediction_length` of "
                    f"{owner}. It is only used by modes 'predict' and "
                    "'composite'; expected None with mode='reconstruct'. "
                    f"Received: prediction_length={prediction_length!r}"
                )
            prediction_length = check_positive_int(
                owner, "prediction_length", prediction_length
            )
        self.prediction_length = prediction_length
        self.reverse_reconstruction = check_bool(
            owner, "reverse_reconstruction", reverse_reconstruction
        )
        self.output_dim = check_size(
            owner, "output_dim", output_dim, allow_none=True
        )
        self.return_encoding = check_bool(
            owner, "return_encoding", return_encoding
        )
        lstm_arguments = {
            "activation": activation,
            "dropout": dropout,
            "recurrent_dropout": recurrent_dropout,
            "unroll": unroll,
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
        # Checked here first, so that an error names this layer, not the
        # encoder it builds.
        _check_units(owner, units)
        _lstm_arguments(owner, **lstm_arguments)
        self.encoder = LSTMEncoder(
            units, name="encoder", dtype=self.dtype_policy, **lstm_arguments
        )
        mirrored = self.encoder.units[::-1]
        arguments = self.encoder.lstm_arguments
        self.reconstruction_decoder = None
        self.prediction_decoder = None
        if mode != "predict":
            self.reconstruction_decoder = _RepeatDecoder(
                mirrored,
                arguments,
                backwards=self.reverse_reconstruction,
                name="reconstruction_decoder",
                dtype=self.dtype_policy,
            )
        if predicts:
            self.prediction_decoder = _RepeatDecoder(
                mirrored,
                arguments,
                backwards=False,
                name="prediction_decoder",
                dtype=self.dtype_policy,
            )
        self.supports_masking = True

    @property
    def units(self):
        return self.encoder.units

    def build(self, inputs_shape):
        self.encoder.check_inputs_shape(type(self).__name__, inputs_shape)
        self.encoder.build(inputs_shape)
        code_shape = self.encoder.compute_output_shape(inputs_shape)
        for decoder in self._decoders():
            decoder.build(code_shape, self.output_dim or inputs_shape[-1])

    def call(self, inputs, mask=None, training=None):
        self.encoder.check_inputs(type(self).__name__, inputs, mask)
        if _is_empty_batch(inputs):
            return _zeros_like_outputs(self, inputs)
        code = self.encoder(inputs, mask=mask, training=training)
        outputs = []
        if self.reconstruction_decoder is not None:
            outputs.append(
                self.reconstruction_decoder(
                    code,
                    length=ops.shape(inputs)[1],
                    mask=mask,
                    training=training,
                )
            )
        if self.prediction_decoder is not None:
            outputs.append(
                self.prediction_decoder(
                    code, length=self.prediction_length, training=training
                )
            )
        return self._arrange(outputs, code)

    def compute_output_spec(self, inputs, mask=None, training=None):
        # Here too, so that a functional model checks its mask when built.
        self.encoder.check_inputs(type(self).__name__, inputs, mask)
        return super().compute_output_spec(inputs, mask=mask, training=training)

    def compute_output_shape(self, inputs_shape):
        self.encoder.check_inputs_shape(type(self).__name__, inputs_shape)
        batch_size, length, features = inputs_shape
        output_dim = self.output_dim or features
        shapes = []
        if self.reconstruction_decoder is not None:
            shapes.append((batch_size, length, output_dim))
        if self.prediction_decoder is not None:
            shapes.append((batch_size, self.prediction_length, output_dim))
        return self._arrange(shapes, (batch_size, self.units[-1]))

    def compute_mask(self, inputs, mask=None):
        # Only the reconstruction lines up with the input's steps.
        masks = []
        if self.reconstruction_decoder is not None:
            masks.append(mask)
        if self.prediction_decoder is not None:
            masks.append(None)
        return self._arrange(masks, None)

    def _arrange(self, outputs, code):
        """One output as it is, several (or the code too) as a list."""
        if self.return_encoding:
            outputs = [*outputs, code]
        return outputs[0] if len(outputs) == 1 else outputs

    def _decoders(self):
        return [
            decoder
            for decoder in (
                self.reconstruction_decoder,
                self.prediction_decoder,
            )
            if decoder is not None
        ]

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.encoder._units_argument,
            "mode": self.mode,
            "prediction_length": self.prediction_length,
            "reverse_reconstruction": self.reverse_reconstruction,
            "output_dim": self.output_dim,
            "return_encoding": self.return_encoding,
            **self.encoder.lstm_arguments,
        }
