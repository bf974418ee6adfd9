"""Greedy and beam-search decoding with a trained `AttentionDecoder` model.

Both functions run the model's encoder once, up to the decoder's memory and
its mask, then step the decoder's cell one token at a time in a Python loop,
feeding back the one-hot of the chosen token (as teacher forcing does in
training) whatever the decoder's `feedback`. The cell runs on the backend;
the search (scores, ranking, finished sequences) runs in NumPy. A
sequence's score is the sum of the natural logarithms of its tokens'
probabilities; beam search divides it by the length penalty of Wu et al.
(2016), `((5 + length) / 6) ** alpha`.

The model must be functional or `Sequential`, with one `AttentionDecoder`
among its layers, called once with the memory as its first argument, and
its outputs must be that decoder's (no layer after it). The decoder's
`initial_state` and mask, when the model gives it any, are used; its
`targets` are not. The whole batch is decoded at once, eagerly.

Reference:
    Wu et al., "Google's Neural Machine Translation System: Bridging the Gap
    between Human and Machine Translation", arXiv:1609.08144, 2016.
"""

import keras
import numpy as np
from keras import ops

from keras_seqext._model_graph import decoder_arguments
from keras_seqext._validation import check_positive_int
from keras_seqext._validation import is_integer
from keras_seqext._validation import is_real
from keras_seqext.layers.attention_decoder import AttentionDecoder

__all__ = [
    "beam_search",
    "greedy_decode",
]


def greedy_decode(model, inputs, max_length=None, end_token=None):
    """Decodes each sequence by taking its most probable token at each step.

    Each step feeds the decoder the one-hot of the token chosen at the step
    before. With `feedback="one_hot"` that is what the decoder does in
    `predict`, so without `end_token` the sequences are the argmax of its
    predictions. A sequence that emits `end_token` is finished: its score
    stays, and its later steps are `end_token` with zero attention weights.

    Args:
        model: A functional or `Sequential` model whose output layer is an
            `AttentionDecoder` with a softmax output (see the module's
            docstring).
        inputs: The model's inputs, as `predict` takes them (`None` for an
            optional `targets` input).
        max_length: Positive integer, the number of steps to decode, or None
            for the decoder's `output_length` (the memory's length if that
            is None too). Defaults to `None`.
        end_token: Integer id of the token that ends a sequence, or None to
            decode `max_length` tokens always. Defaults to `None`.

    Returns:
        A tuple of NumPy arrays `(sequences, scores, attention_weights)`:
        the token ids, int32 `(batch, max_length)`; each sequence's sum of
        log-probabilities, float32 `(batch,)`; the attention weights of each
        step, float32 `(batch, max_length, T_in)`.

    Raises:
        ValueError: on a bad argument value, or a model that is not as
            `model` says.

    Example:

    >>> from keras_seqext.decoding import greedy_decode
    >>> model = keras.Sequential([
    ...     keras.Input((5, 8)),
    ...     keras.layers.LSTM(16, return_sequences=True),
    ...     keras_seqext.AttentionDecoder(16, 10, output_length=3),
    ... ])
    >>> x = np.random.rand(6, 5, 8).astype("float32")
    >>> sequences, scores, weights = greedy_decode(model, x)
    >>> sequences.shape, scores.shape, weights.shape
    ((6, 3), (6,), (6, 3, 5))
    """
    cell, memory, attention_memory, states, max_length, end_token = _start(
        "greedy_decode", model, inputs, max_length, end_token
    )
    batch_size = ops.shape(memory)[0]
    examples = np.arange(batch_size)
    scores = np.zeros(batch_size, "float32")
    finished = np.zeros(batch_size, bool)
    feedback = np.zeros((batch_size, cell.output_dim), "float32")
    tokens, weights = [], []
    for _ in range(max_length):
        log_probs, step_weights, states = _decoder_step(
            cell, feedback, states, attention_memory
        )
        log_probs = _end_finished(log_probs, finished, end_token)
        step_tokens = log_probs.argmax(-1)
        scores = scores + log_probs[examples, step_tokens]
        tokens.append(step_tokens)
        weights.append(np.where(finished[:, None], 0.0, step_weights))
        feedback = _one_hot(step_tokens, cell.output_dim)
        finished = _update_finished(finished, step_tokens, end_token)
        if _all_finished(finished, end_token):
            break
    sequences, weights = _stack_steps(tokens, weights, max_length, end_token)
    return sequences, scores, weights


def beam_search(
    model,
    inputs,
    beam_width,
    max_length=None,
    end_token=None,
    length_penalty=0.0,
):
    """Decodes each sequence by beam search, keeping its `beam_width` best
    hypotheses at each step.

    Each step extends every hypothesis by every token, ranks the extensions
    by `log P / ((5 + length) / 6) ** length_penalty` (Wu et al., 2016;
    `length` counts the tokens up to and including `end_token`), and keeps
    the best `beam_width`. A hypothesis that emits `end_token` is finished:
    it keeps its score and length and still competes for a place in the
    beam. The search stops after `max_length` steps or when every kept
    hypothesis is finished, and returns the best one of each sequence.

    `beam_width=1` gives the greedy decode (with `length_penalty=0.0` the
    same scores too); a beam of `output_dim ** (max_length - 1)` keeps every
    hypothesis and finds the best sequence. In between, a wider beam usually
    scores higher, but beam search does not promise it.

    Args:
        model: A functional or `Sequential` model whose output layer is an
            `AttentionDecoder` with a softmax output (see the module's
            docstring).
        inputs: The model's inputs, as `predict` takes them (`None` for an
            optional `targets` input).
        beam_width: Positive integer, the hypotheses kept per sequence.
        max_length: Positive integer, the number of steps to decode, or None
            for the decoder's `output_length` (the memory's length if that
            is None too). Defaults to `None`.
        end_token: Integer id of the token that ends a sequence, or None to
            decode `max_length` tokens always. Defaults to `None`.
        length_penalty: Non-negative number, the exponent `alpha` of the
            length penalty; 0 ranks by log-probability alone, higher values
            favour longer sequences. It only changes the ranking when
            `end_token` makes lengths differ. Defaults to `0.0`.

    Returns:
        A tuple of NumPy arrays `(sequences, scores, attention_weights)` for
        the best hypothesis of each sequence: the token ids, int32
        `(batch, max_length)`, padded with `end_token` after it; the sums of
        log-probabilities divided by the length penalty, float32 `(batch,)`;
        the attention weights of each step, float32
        `(batch, max_length, T_in)`, zeros after `end_token`.

    Raises:
        ValueError: on a bad argument value, or a model that is not as
            `model` says.

    Example:

    >>> from keras_seqext.decoding import beam_search
    >>> model = keras.Sequential([
    ...     keras.Input((5, 8)),
    ...     keras.layers.LSTM(16, return_sequences=True),
    ...     keras_seqext.AttentionDecoder(16, 10, output_length=4),
    ... ])
    >>> x = np.random.rand(2, 5, 8).astype("float32")
    >>> sequences, scores, weights = beam_search(
    ...     model, x, beam_width=3, end_token=0, length_penalty=0.6)
    >>> sequences.shape, scores.shape, weights.shape
    ((2, 4), (2,), (2, 4, 5))
    """
    owner = "beam_search"
    beam_width = check_positive_int(owner, "beam_width", beam_width)
    length_penalty = _check_length_penalty(owner, length_penalty)
    cell, memory, attention_memory, states, max_length, end_token = _start(
        owner, model, inputs, max_length, end_token
    )

    # Hypothesis k of sequence b is row b * beam_width + k of the states.
    batch_size = ops.shape(memory)[0]
    vocabulary = cell.output_dim
    shape = (batch_size, beam_width)
    attention_memory = _repeat(attention_memory, beam_width)
    states = _repeat(states, beam_width)
    feedback = np.zeros((batch_size * beam_width, vocabulary), "float32")
    # Every hypothesis starts empty; only the first may grow, or the first
    # step would fill the beam with copies of the same tokens.
    scores = np.full(shape, -np.inf, "float32")
    scores[:, 0] = 0.0
    lengths = np.zeros(shape, "float32")
    finished = np.zeros(shape, bool)
    examples = np.arange(batch_size)[:, None]
    steps = []
    for _ in range(max_length):
        log_probs, weights, states = _decoder_step(
            cell, feedback, states, attention_memory
        )
        log_probs = log_probs.reshape(*shape, vocabulary)
        log_probs = _end_finished(log_probs, finished, end_token)
        candidates = (scores[..., None] + log_probs).reshape(batch_size, -1)
        lengths = lengths + ~finished
        penalties = _length_penalty(lengths, length_penalty)
        ranking = candidates / np.repeat(penalties, vocabulary, axis=1)
        # A stable sort keeps the first of equal candidates, as argmax does,
        # so that a beam of width 1 is the greedy decode even on ties.
        best = np.argsort(-ranking, axis=1, kind="stable")[:, :beam_width]
        parents, step_tokens = np.divmod(best, vocabulary)
        ranking = np.take_along_axis(ranking, best, axis=1)
        scores = np.take_along_axis(candidates, best, axis=1)
        lengths = lengths[examples, parents]
        parent_finished = finished[examples, parents]
        weights = weights.reshape(*shape, -1)[examples, parents]
        weights = np.where(parent_finished[..., None], 0.0, weights)
        steps.append((step_tokens, parents, weights))
        rows = (examples * beam_width + parents).reshape(-1)
        states = [ops.take(state, rows, axis=0) for state in states]
        feedback = _one_hot(step_tokens.reshape(-1), vocabulary)
        finished = _update_finished(parent_finished, step_tokens, end_token)
        if _all_finished(finished, end_token):
            break
    tokens, weights = _backtrack(steps)
    sequences, weights = _stack_steps(tokens, weights, max_length, end_token)
    # Sorted: hypothesis 0 is the best.
    return sequences, ranking[:, 0], weights


def _start(owner, model, inputs, max_length, end_token):
    """Checks the arguments both decodings take, then encodes `inputs`.

    Returns the decoder's cell, the memory, the cell's attention memory and
    initial states, the number of steps to decode and the end token.
    """
    decoder = _find_decoder(model, owner)
    max_length = _check_max_length(owner, decoder, max_length)
    end_token = _check_end_token(owner, decoder, end_token)
    memory, attention_memory, states = _encode(model, decoder, inputs)
    max_length = max_length or ops.shape(memory)[1]
    return decoder.cell, memory, attention_memory, states, max_length, end_token


def _decoder_step(cell, feedback, states, attention_memory):
    """One step of the cell, fed `feedback` as its previous output.

    Args:
        cell: the decoder's `AttentionDecoderCell`.
        feedback: NumPy float32 `(n, output_dim)`, the previous output.
        states: the cell's recurrent states `[y, s]`.
        attention_memory: what `cell.attention_memory` returned.

    Returns:
        The log-probabilities and the attention weights, NumPy float32
        `(n, output_dim)` and `(n, T_in)`, and the new states `[y, s]`.
    """
    # A last input column of 1 makes the cell take `feedback` rather than
    # its own previous output, as in teacher forcing.
    use_feedback = np.ones((len(feedback), 1), "float32")
    step_inputs = ops.convert_to_tensor(
        np.concatenate([feedback, use_feedback], axis=-1), cell.compute_dtype
    )
    step_output, states = cell(
        step_inputs, states, attention_memory=attention_memory
    )
    step_output = ops.convert_to_numpy(step_output).astype("float32")
    output_dim = cell.output_dim
    # A probability of 0 gives -inf: a sequence that cannot be.
    with np.errstate(divide="ignore"):
        log_probs = np.log(step_output[:, :output_dim])
    return log_probs, step_output[:, output_dim:], states


def _encode(model, decoder, inputs):
    """Runs the model up to its decoder, once.

    Returns the memory `(batch, T_in, memory_dim)`, the cell's attention
    memory and its initial states `[y_0, s_0]`.
    """
    encoder = keras.Model(model.inputs, _encoder_outputs(decoder))
    # Flat, as `model.inputs` is: a dict's values in sorted key order.
    encoded = encoder(keras.tree.flatten(inputs), training=False)
    memory, mask = encoded["memory"], encoded["mask"]
    cell = decoder.cell
    states = cell.initial_state(memory, mask, encoded.get("initial_state"))
    return memory, cell.attention_memory(memory, mask), states


def _encoder_outputs(decoder):
    """The symbolic memory, mask and initial state (if any) that the model
    passes its decoder, by name."""
    memory, others = decoder_arguments(decoder)
    arguments = {"memory": memory}
    # The rank-3 other is `targets`, unused at inference.
    for tensor in others:
        if len(tensor.shape) == 2:
            name = "mask" if tensor.dtype == "bool" else "initial_state"
            arguments.setdefault(name, tensor)
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


def _end_finished(log_probs, finished, end_token):
    """The log-probabilities with which a finished sequence can only go on
    with `end_token`, at no cost; `finished` has their shape but the last
    axis."""
    if end_token is None:
        return log_probs
    only_end = np.full(log_probs.shape[-1], -np.inf, "float32")
    only_end[end_token] = 0.0
    return np.where(finished[..., None], only_end, log_probs)


def _update_finished(finished, tokens, end_token):
    if end_token is None:
        return finished
    return finished | (tokens == end_token)


def _all_finished(finished, end_token):
    return end_token is not None and finished.all()


def _length_penalty(lengths, alpha):
    """GNMT's `((5 + length) / 6) ** alpha`, 1 for `alpha = 0`."""
    return ((5.0 + lengths) / 6.0) ** alpha


def _one_hot(tokens, depth):
    return np.eye(depth, dtype="float32")[tokens]


def _repeat(tensors, times):
    """Repeats each row of the tensors `times` times, the copies of row
    `b` becoming rows `b * times` to `b * times + times - 1`."""
    return [ops.repeat(tensor, times, axis=0) for tensor in tensors]


def _backtrack(steps):
    """The tokens and weights of hypothesis 0 at the last step, one array
    `(batch,)` and `(batch, T_in)` per step, from each step's tokens,
    parents and weights `(batch, beam_width(, T_in))`."""
    examples = np.arange(len(steps[0][0]))
    hypothesis = np.zeros_like(examples)
    tokens, weights = [], []
    for step_tokens, parents, step_weights in reversed(steps):
        tokens.append(step_tokens[examples, hypothesis])
        weights.append(step_weights[examples, hypothesis])
        hypothesis = parents[examples, hypothesis]
    return tokens[::-1], weights[::-1]


def _stack_steps(tokens, weights, max_length, end_token):
    """Stacks the steps' tokens and weights along axis 1 and, if every
    sequence ended before `max_length`, pads them with `end_token` and
    zeros."""
    sequences = np.stack(tokens, axis=1).astype("int32")
    weights = np.stack(weights, axis=1).astype("float32")
    missing = max_length - sequences.shape[1]
    if missing:
        sequences = np.pad(
            sequences, [(0, 0), (0, missing)], constant_values=end_token
        )
        weights = np.pad(weights, [(0, 0), (0, missing), (0, 0)])
    return sequences, weights


def _find_decoder(model, owner):
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
    if activation is not keras.activations.softmax:
        raise ValueError(
            f"Invalid value for argument `model` of {owner}. Expected an "
            "AttentionDecoder with output_activation='softmax', whose "
            "outputs are probabilities. Received: output_activation="
            f"{keras.activations.serialize(activation)!r}"
        )
    return decoder


def _check_max_length(owner, decoder, max_length):
    max_length = check_positive_int(
        owner, "max_length", max_length, allow_none=True
    )
    return max_length or decoder.output_length


def _check_end_token(owner, decoder, end_token):
    output_dim = decoder.output_dim
    is_token = is_integer(end_token) and 0 <= end_token < output_dim
    if end_token is not None and not is_token:
        raise ValueError(
            f"Invalid value for argument `end_token` of {owner}. Expected "
            f"None or a token id in [0, {output_dim}), below the decoder's "
            f"output_dim. Received: end_token={end_token!r}"
        )
    return None if end_token is None else int(end_token)


def _check_length_penalty(owner, length_penalty):
    if not is_real(length_penalty) or length_penalty < 0:
        raise ValueError(
            f"Invalid value for argument `length_penalty` of {owner}. "
            "Expected a non-negative number. Received: "
            f"length_penalty={length_penalty!r}"
        )
    return float(length_penalty)
