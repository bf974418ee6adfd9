"""The checks of `AttentionDecoder`'s call arguments against its
configuration and each other: the memory, its mask, the targets and the
initial state."""

import keras

from keras_seqext._tensor_checks import check_batch_sizes
from keras_seqext._tensor_checks import check_mask
from keras_seqext._validation import check_dot_sizes
from keras_seqext._validation import check_source_length
from keras_seqext._validation import shape_error


def check_decoder_shapes(
    decoder, encoder_sequence_shape, targets_shape, initial_state_shape
):
    """Raises a `ValueError` naming the argument unless the shapes fit
    `decoder`: a rank-3 memory of at least one step and of the feature size
    it was built with (and the score allows), targets of the output length,
    one initial state of `units` (required when it was built without
    `W_s`), and the same batch size for all."""
    owner = type(decoder).__name__
    if len(encoder_sequence_shape) != 3:
        raise shape_error(
            owner,
            "encoder_sequence",
            "a rank-3 tensor (batch, timesteps, features)",
            encoder_sequence_shape,
        )
    if _is_size(encoder_sequence_shape[1]) and encoder_sequence_shape[1] == 0:
        raise shape_error(
            owner,
            "encoder_sequence",
            "at least one time step to attend to",
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
        decoder.cell.context_kernel.shape[0] if decoder.cell.built else None
    )
    if built_dim is not None and memory_dim != built_dim:
        raise shape_error(
            owner,
            "encoder_sequence",
            f"(batch, timesteps, {built_dim}), the feature size the "
            "layer was built with",
            encoder_sequence_shape,
        )
    if decoder.score == "dot":
        check_dot_sizes(
            owner, decoder.units, memory_dim, "`units`", "the memory's size"
        )
    if decoder.score == "location":
        check_source_length(
            owner,
            "encoder_sequence",
            encoder_sequence_shape,
            decoder.cell.source_length
            if decoder.cell.built
            else decoder.max_source_length,
        )
    if targets_shape is not None:
        _check_targets_shape(decoder, encoder_sequence_shape, targets_shape)
    state_shapes = _state_shapes(initial_state_shape)
    check_batch_sizes(
        owner,
        {
            "encoder_sequence": encoder_sequence_shape,
            "targets": targets_shape,
            "initial_state": state_shapes[0] if state_shapes else None,
        },
    )
    if initial_state_shape is None:
        if decoder.cell.built and decoder.cell.initial_kernel is None:
            raise ValueError(
                f"Invalid value for argument `initial_state` of {owner}. "
                "The layer was built with a given initial state, so it "
                "has no weights to compute one. Expected a tensor of "
                f"shape (batch, {decoder.units}). Received: "
                "initial_state=None"
            )
        return
    if (
        len(state_shapes) != 1
        or len(state_shapes[0]) != 2
        or state_shapes[0][-1] != decoder.units
    ):
        raise ValueError(
            f"Invalid shape for argument `initial_state` of {owner}. "
            f"Expected one tensor of shape (batch, {decoder.units}). "
            f"Received shapes: {[tuple(s) for s in state_shapes]}"
        )


def _check_targets_shape(decoder, encoder_sequence_shape, targets_shape):
    """`(batch, T_out, output_dim)`, or `(batch, T_out)` in token mode,
    with `T_out` the output length where both are known."""
    output_length = decoder.output_length or encoder_sequence_shape[1]
    expected_rank = 3 if decoder.embedding_dim is None else 2
    given_length = targets_shape[1] if len(targets_shape) > 1 else None
    known_lengths = _is_size(output_length) and _is_size(given_length)
    if (
        len(targets_shape) != expected_rank
        or (expected_rank == 3 and targets_shape[-1] != decoder.output_dim)
        or (known_lengths and targets_shape[1] != output_length)
    ):
        length = "T_out" if output_length is None else output_length
        if expected_rank == 3:
            expected = (
                f"(batch, {length}, {decoder.output_dim}): the output "
                "length and output_dim"
            )
        else:
            expected = f"token ids (batch, {length}): the output length"
        raise shape_error(
            type(decoder).__name__, "targets", expected, targets_shape
        )


def check_decoder_mask(decoder, encoder_sequence, mask):
    """The memory's mask must be `(batch, T_in)`, as the memory."""
    check_mask(
        type(decoder).__name__,
        mask,
        tuple(encoder_sequence.shape),
        "mask",
        "encoder_sequence",
    )


def _state_shapes(initial_state_shape):
    """The initial state's shape as a list of shapes (empty for None)."""
    if initial_state_shape is None:
        return []
    if is_shape(initial_state_shape):
        return [initial_state_shape]
    return list(initial_state_shape)


def check_targets_dtype(decoder, targets):
    """Token ids must be integers: a float id would be truncated."""
    if decoder.embedding_dim is None or targets is None:
        return
    dtype = keras.backend.standardize_dtype(targets.dtype)
    if "int" not in dtype:
        raise ValueError(
            f"Invalid dtype for argument `targets` of "
            f"{type(decoder).__name__}. Expected integer token ids, since "
            "the decoder is in token mode (embedding_dim="
            f"{decoder.embedding_dim}). Received: targets.dtype={dtype}"
        )


def _is_size(size):
    """A size known as a number (not None, not symbolic)."""
    return isinstance(size, int)


def is_shape(value):
    """Whether `value` is one shape, not a list of shapes."""
    return all(isinstance(dim, (int, type(None))) for dim in value)


def shapes_of(tensors):
    """The shapes of a tensor or a nest of them, as a list of tuples."""
    return [tuple(t.shape) for t in keras.tree.flatten(tensors)]
