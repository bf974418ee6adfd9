"""The arguments of `AttentionDecoderCell`, which `AttentionDecoder` takes
too: their names and their checks, shared by both so that an error names
the class the user made."""

import math

import keras

from keras_seqext._validation import check_choice
from keras_seqext._validation import check_keras_object
from keras_seqext._validation import check_required_for_score
from keras_seqext._validation import check_size
from keras_seqext._validation import check_token
from keras_seqext._weight_arguments import get_weight_argument
from keras_seqext.layers.attention_scores import SCORES

FEEDBACK_MODES = ("probabilities", "one_hot")

# The cell's constructor arguments, which the layer forwards to it, exposes
# as read-only properties and writes flat into its own config (as GRU does).
CELL_ARGUMENTS = (
    "units",
    "output_dim",
    "embedding_dim",
    "start_token",
    "score",
    "max_source_length",
    "activation",
    "output_activation",
    "feedback",
    "kernel_initializer",
    "recurrent_initializer",
    "bias_initializer",
    "embeddings_initializer",
    "kernel_regularizer",
    "recurrent_regularizer",
    "bias_regularizer",
    "embeddings_regularizer",
    "kernel_constraint",
    "recurrent_constraint",
    "bias_constraint",
    "embeddings_constraint",
)

# The most numbers one weight may hold: past it some backends' kernels
# index out of range, and the allocation itself is a mistake.
MAX_WEIGHT_ELEMENTS = 2**31 - 1

# The weights' kinds, each with an initializer, regularizer and constraint.
WEIGHT_KINDS = ("kernel", "recurrent", "bias", "embeddings")


def check_cell_arguments(owner, **arguments):
    """`AttentionDecoderCell`'s arguments (every name of `CELL_ARGUMENTS`),
    checked, with errors naming `owner` (the cell, or the decoder that
    makes it).

    Returns:
        A dict of each name and its value as the cell keeps it: activations
        and weight arguments as Keras objects, and `feedback` resolved to
        its mode's default when None (`"one_hot"` with `embedding_dim`,
        `"probabilities"` without).
    """
    unknown = set(arguments) ^ set(CELL_ARGUMENTS)
    if unknown:
        raise TypeError(f"Unexpected or missing arguments: {sorted(unknown)}")
    output_dim = check_size(owner, "output_dim", arguments["output_dim"])
    embedding_dim = check_size(
        owner, "embedding_dim", arguments["embedding_dim"], allow_none=True
    )
    feedback = arguments["feedback"]
    if feedback is None:
        feedback = "probabilities" if embedding_dim is None else "one_hot"
    score = arguments["score"]
    checked = {
        "units": check_size(owner, "units", arguments["units"]),
        "output_dim": output_dim,
        "embedding_dim": embedding_dim,
        "start_token": check_token(
            owner, "start_token", arguments["start_token"], output_dim
        ),
        "score": check_choice(owner, "score", score, SCORES),
        "max_source_length": check_required_for_score(
            owner,
            "max_source_length",
            arguments["max_source_length"],
            score,
            "location",
            # Without it, the length of the memory the cell is built on.
            required=False,
        ),
        "feedback": check_choice(owner, "feedback", feedback, FEEDBACK_MODES),
    }
    for name in ("activation", "output_activation"):
        checked[name] = check_keras_object(
            owner, name, arguments[name], keras.activations.get
        )
    for kind in WEIGHT_KINDS:
        for role in ("initializer", "regularizer", "constraint"):
            name = f"{kind}_{role}"
            checked[name] = get_weight_argument(owner, name, arguments[name])
    return checked


def check_weight_sizes(owner, cell, shapes, memory_shape):
    """Raises, naming `owner`, if a weight of `shapes` (each name's kind
    and shape, as the cell makes them) would hold more than
    `MAX_WEIGHT_ELEMENTS` numbers: before any allocation."""
    for name, (_, shape) in shapes.items():
        elements = math.prod(shape)
        if elements > MAX_WEIGHT_ELEMENTS:
            raise ValueError(
                f"Invalid arguments for {owner}: its `{name}` would be "
                f"{shape}, {elements:,} numbers, more than the "
                f"{MAX_WEIGHT_ELEMENTS:,} one weight may hold. Received: "
                f"units={cell.units}, output_dim={cell.output_dim}, "
                f"embedding_dim={cell.embedding_dim}, memory of "
                f"{memory_shape[-1]} features"
            )
