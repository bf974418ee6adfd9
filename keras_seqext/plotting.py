"""Attention heatmaps, drawn with matplotlib (the `plot` extra)."""

import numpy as np
from keras import ops

from keras_seqext._matplotlib import import_figure

__all__ = [
    "plot_attention",
]

# Each heatmap cell is this many inches wide and high, so that a figure
# grows with the sequences and its labels stay legible.
CELL_INCHES = 0.3
# Room around the cells for the tick labels, axis titles and colour bar.
MARGIN_INCHES = (1.8, 1.2)
COLORMAP = "viridis"


def plot_attention(weights, input_labels, output_labels, ax=None):
    """Draws one example's attention weights as a heatmap.

    Row `t` shows what output step `t` attended to: column `j` is coloured
    by the weight of input step `j`, on a fixed scale from 0 (dark) to 1
    (bright) with a colour bar, so that heatmaps of different examples or
    epochs compare. An attention decoder that aligns outputs with inputs
    draws a bright (near-)diagonal.

    The new figure is made with `matplotlib.figure.Figure`, not `pyplot`,
    so that it is not kept open by pyplot: save it with
    `figure.savefig(path)`, or let a notebook display it. To draw into a
    pyplot window instead, pass `ax` from `pyplot.subplots()`.

    Args:
        weights: The attention weights of one example, `(T_out, T_in)`, in
            [0, 1]: for instance `weights[i]` of
            `AttentionDecoder(..., return_attention_weights=True)`'s
            `(batch, T_out, T_in)`. A NumPy array or backend tensor.
        input_labels: `T_in` labels of the columns (the input steps): a
            sequence of strings, or one string, one label per character.
        output_labels: `T_out` labels of the rows (the output steps), in
            the same forms.
        ax: A matplotlib `Axes` to draw into, or None to make a new figure
            sized to the weights. Defaults to `None`.

    Returns:
        The matplotlib `Figure` drawn into.

    Raises:
        ImportError: when matplotlib is not installed.
        ValueError: when `weights` is not 2-D, has values outside [0, 1]
            or NaN, or a label sequence's length does not match it.

    Example:

    >>> from keras_seqext.plotting import plot_attention
    >>> weights = np.eye(3)[[0, 2, 1]]
    >>> figure = plot_attention(weights, "abc", ["x", "y", "z"])
    >>> [label.get_text() for label in figure.axes[0].get_xticklabels()]
    ['a', 'b', 'c']
    >>> figure.savefig("attention.png")  # doctest: +SKIP
    """
    figure_class = import_figure()
    weights = np.asarray(ops.convert_to_numpy(weights), dtype="float64")
    _check_weights(weights)
    output_length, input_length = weights.shape
    input_labels = _check_labels("input_labels", input_labels, input_length)
    output_labels = _check_labels("output_labels", output_labels, output_length)

    if ax is None:
        figure = figure_class(
            figsize=(
                input_length * CELL_INCHES + MARGIN_INCHES[0],
                output_length * CELL_INCHES + MARGIN_INCHES[1],
            ),
            layout="constrained",
        )
        ax = figure.add_subplot()
    else:
        figure = ax.figure
    # "auto": the cells fill the axes (and so match the colour bar's
    # height); a new figure is sized to keep them about square.
    image = ax.imshow(weights, cmap=COLORMAP, vmin=0.0, vmax=1.0, aspect="auto")
    # Words read better turned upright; single characters stay level.
    rotation = 90 if any(len(label) > 1 for label in input_labels) else 0
    ax.set_xticks(range(input_length), input_labels, rotation=rotation)
    ax.set_yticks(range(output_length), output_labels)
    ax.set_xlabel("input")
    ax.set_ylabel("output")
    figure.colorbar(image, ax=ax, label="attention weight")
    return figure


def _check_weights(weights):
    if weights.ndim != 2:
        raise ValueError(
            "Invalid shape for argument `weights` of plot_attention. "
            "Expected one example's weights, 2-D (T_out, T_in); for a "
            "batch (batch, T_out, T_in), pass weights[i]. Received: "
            f"weights.shape={weights.shape}"
        )
    outside = np.argwhere(~((weights >= 0.0) & (weights <= 1.0)))
    if len(outside):
        row, column = outside[0]
        raise ValueError(
            "Invalid value for argument `weights` of plot_attention. "
            "Expected attention weights in [0, 1]. Received "
            f"{len(outside)} values outside it (or NaN), such as "
            f"weights[{row}, {column}]={weights[row, column]}"
        )


def _check_labels(name, labels, length):
    if labels is None or not hasattr(labels, "__len__"):
        raise ValueError(
            f"Invalid value for argument `{name}` of plot_attention. "
            f"Expected a sequence of {length} labels (a string stands for "
            f"its characters). Received: {name}={labels!r}"
        )
    labels = [str(label) for label in labels]
    if len(labels) != length:
        raise ValueError(
            f"Invalid value for argument `{name}` of plot_attention. "
            f"Expected {length} labels, one per step of `weights`. "
            f"Received {len(labels)}: {name}={labels!r}"
        )
    return labels
