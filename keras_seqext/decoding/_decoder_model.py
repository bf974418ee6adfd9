"""A trained model as the decoding searches use it: its `AttentionDecoder`
found and checked, its encoder run once, and its cell stepped one token at
a time."""

import keras
import numpy as np
from keras import ops

from keras_seqext._model_graph import decoder_arguments
from keras_seqext._validation import check_positive_int
from keras_seqext._validation import check_token
from keras_seqext.decoding._numpy_decoding import log_probabilities
from keras_seqext.layers.attention_decoder import AttentionDecoder


class DecoderModel:
    """The decoding state of `model` on `inputs`, encoded once.

    Args:
        owner: the decoding function, for error messages.
        model: a functional or `Sequential` model whose output layer is an
            `AttentionDecoder` with a softmax or linear output.
        inputs: the model's inputs, as `predict` takes them.
        max_length: the steps to decode, or None for the decoder's
            `output_length` (the memory's length if that is None too).
        end_token: the id that ends a sequence, or None.
    """

    def __init__(self, owner, model, inputs, max_length, end_token):
        self.owner = owner
        self.decoder = find_decoder(model, owner)
        self.cell = self.decoder.cell
        max_length = check_positive_int(
            owner, "max_length", max_length, allow_none=True
        )
        self.end_token = check_token(
            owner, "end_token", end_token, self.decoder.output_dim
        )
        self.memory, self.attention_memory, self.states = _encode(
            model, self.decoder, inputs
        )
        self.batch_size = int(ops.shape(self.memory)[0])
        self.max_length = (
            max_length
            or self.decoder.output_length
            or int(ops.shape(self.memory)[1])
        )
        # Rows per input sequence in the steps: the beam's width.
        self._repeats = 1
        self._from_logits = (
            self.decoder.output_activation is keras.activations.linear
        )

    def repeated(self, times):
        """The initial states and the attention memory with each row
        repeated `times` times, the copies of row `b` becoming rows
        `b * times` to `b * times + times - 1`, as a beam search keeps
        them."""
        self.attention_memory = _repeat(self.attention_memory, times)
        self._repeats = times
        return _repeat(self.states, times)

    def step(self, tokens, states):
        """One step of the cell, as the searches take it: fed the fed-back
        form of `tokens` (or, with None, its own `y_0`), it returns NumPy
        log-probabilities `(n, output_dim)` and attention weights
        `(n, T_in)`, and the new states."""
        cell = self.cell
        if tokens is None:
            inputs = ops.zeros((ops.shape(states[1])[0], 0), cell.compute_dtype)
        else:
            # A last input column of 1 makes the cell take the fed tokens
            # rather than its own feedback, as teacher forcing does.
            fed = cell.feed_of_tokens(ops.convert_to_tensor(tokens, "int32"))
            inputs = ops.concatenate(
                [fed, ops.ones((len(tokens), 1), fed.dtype)], axis=-1
            )
        step_output, states = cell(
            inputs, states, attention_memory=self.attention_memory
        )
        step_output = ops.convert_to_numpy(step_output).astype("float32")
        self._check_finite(step_output)
        output_dim = cell.output_dim
        log_probs = log_probabilities(
            step_output[:, :output_dim], self._from_logits
        )
        return log_probs, step_output[:, output_dim:], states

    def _check_finite(self, step_output):
        """A NaN or an infinity in the model's outputs has no argmax and no
        log-probability to rank by: decoding it would return made-up tokens
        with NaN scores."""
        finite = np.isfinite(step_output).all(axis=-1)
        if finite.all():
            return
        rows = np.unique(np.flatnonzero(~finite) // self._repeats)
        raise ValueError(
            f"Invalid value for argument `inputs` of {self.owner}. The "
            "model's outputs are not finite (NaN or infinity) for the rows "
            f"{rows[:10].tolist()}{' ...' if len(rows) > 10 else ''} of the "
            "batch; check those inputs (a NaN or an infinity outside the "
            "mask) and the model's weights. Received: inputs with "
            f"{len(rows)} such rows"
        )

    @staticmethod
    def select(states, rows):
        """The states of `rows`, as beam search reorders them."""
        rows = ops.convert_to_tensor(np.asarray(rows, "int32"))
        return [ops.take(state, rows, axis=0) for state in states]


def _encode(model, decoder, inputs):
    """Runs the model up to its decoder, once.

    Returns the memory `(batch, T_in, memory_dim)`, the cell's attention
    memory and its initial states `[y_0, s_0]`.
    """
    outputs = encoder_outputs(decoder)
    outputs.pop("targets", None)  # for training only
    encoder = keras.Model(model.inputs, outputs)
    # Flat, as `model.inputs` is: a dict's values in sorted key order.
    encoded = encoder(keras.tree.flatten(inputs), training=False)
    memory, mask = encoded["memory"], encoded["mask"]
    cell = decoder.cell
    states = cell.initial_state(memory, mask, encoded.get("initial_state"))
    return memory, cell.attention_memory(memory, mask), states


def encoder_outputs(decoder):
    """The symbolic memory, mask, initial state and targets (the last two
    if any) that the model passes its decoder, by name."""
    memory, others = decoder_arguments(decoder)
    arguments = {"memory": memory}
    # A float rank-2 other is `initial_state`, a boolean one the mask, and
    # the targets are rank 3, or integer rank 2 in token mode.
    for tensor in others:
        dtype = keras.backend.standardize_dtype(tensor.dtype)
        if len(tensor.shape) == 2 and dtype == "bool":
            arguments.setdefault("mask", tensor)
        elif len(tensor.shape) == 2 and "float" in dtype:
            arguments.setdefault("initial_state", tensor)
        else:
            arguments.setdefault("targets", tensor)
    # The mask that Keras hands the decoder by itself is recorded as an
    # argument only when the decoder has no other tensor argument; it is
    # the memory's Keras mask, which a layer can read.
    arguments.setdefault("mask", _KerasMask()(memory))
    return arguments


class _KerasMask(keras.layers.Layer):
    """The Keras mask that its input carries, `(batch, T)`, all True if it
    carries none: Keras hands a tensor's mask only to a layer's `call`."""

    def call(self, inputs, mask=None):
        if mask is None:
            return ops.ones(ops.shape(inputs)[:2], "bool")
        return mask

    def compute_mask(self, inputs, previous_mask=None):
        # The mask is this layer's output, not a mask on it.
        return None

    def compute_output_spec(self, inputs, mask=None):
        return keras.KerasTensor(inputs.shape[:2], dtype="bool")


def _repeat(tensors, times):
    return [ops.repeat(tensor, times, axis=0) for tensor in tensors]


def find_decoder(model, owner):
    """The model's `AttentionDecoder`, checked to be usable for decoding."""
    layers = model.layers if isinstance(model, keras.Model) else []
    decoders = [
        layer for layer in layers if isinstance(layer, AttentionDecoder)
    ]
    if len(decoders) != 1:
        raise ValueError(
            f"Invalid value for argument `model` of {owner}. Expected a "
            "Keras model with one AttentionDecoder among its layers. "
            f"Received: model={model!r}, with {len(decoders)} of them"
        )
    decoder = decoders[0]
    try:
        model_outputs = model.outputs
        decoder_outputs = keras.tree.flatten(decoder.output)
    except AttributeError as error:
        raise ValueError(
            f"Invalid value for argument `model` of {owner}. Expected a "
            "functional or Sequential model, built from `keras.Input`. "
            f"Received: model={model!r}, which has no symbolic outputs"
        ) from error
    decoder_output_ids = {id(t) for t in decoder_outputs}
    if any(id(t) not in decoder_output_ids for t in model_outputs):
        raise ValueError(
            f"Invalid value for argument `model` of {owner}. Expected a "
            f"model whose outputs are its AttentionDecoder's "
            f"({decoder.name!r}); layers after the decoder are not "
            f"supported. Received: model={model!r}, with outputs "
            f"{model_outputs}"
        )
    activation = decoder.output_activation
    if activation not in (keras.activations.softmax, keras.activations.linear):
        raise ValueError(
            f"Invalid value for argument `model` of {owner}. Expected an "
            "AttentionDecoder with output_activation='softmax' "
            "(probabilities) or None (logits). Received: output_activation="
            f"{keras.activations.serialize(activation)!r}"
        )
    return decoder
