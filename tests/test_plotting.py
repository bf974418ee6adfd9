import sys

import matplotlib
import numpy as np
import pytest
from keras import ops
from matplotlib import image
from matplotlib.figure import Figure

from keras_seqext.plotting import CELL_INCHES
from keras_seqext.plotting import COLORMAP
from keras_seqext.plotting import plot_attention

# No window may open: the tests only render to files.
matplotlib.use("Agg")


def weights_of(rows, columns, seed=0):
    """Softmax rows with distinct values, as attention weights are."""
    logits = np.random.default_rng(seed).normal(size=(rows, columns)) * 2
    exp = np.exp(logits)
    return exp / exp.sum(-1, keepdims=True)


def render(figure, path):
    """Saves `figure` as a PNG and reads back its RGB pixels."""
    figure.savefig(path)
    return image.imread(path)[..., :3]


def cell_pixels(figure, pixels, shape):
    """The RGB colour at the centre of each heatmap cell, `(*shape, 3)`."""
    ax = figure.axes[0]
    rows, columns = np.mgrid[: shape[0], : shape[1]]
    centres = np.stack([columns.ravel(), rows.ravel()], axis=-1)
    x, y = ax.transData.transform(centres).T
    # Display coordinates count pixels from the bottom left, images rows
    # from the top.
    found = pixels[(pixels.shape[0] - y).astype(int), x.astype(int)]
    return found.reshape(*shape, 3)


class TestPlotAttention:
    def test_cell_colours_follow_the_weights(self, tmp_path):
        weights = weights_of(4, 6)
        figure = plot_attention(weights, "abcdef", "wxyz")
        pixels = render(figure, tmp_path / "attention.png")
        found = cell_pixels(figure, pixels, weights.shape)
        expected = matplotlib.colormaps[COLORMAP](weights)[..., :3]
        np.testing.assert_allclose(found, expected, atol=2 / 255)
        # Output steps read from the top down, input steps left to right.
        x, y = figure.axes[0].transData.transform([[0, 0], [5, 3]]).T
        assert x[0] < x[1] and y[0] > y[1]
        # The brightest cell is the largest weight, the darkest the least.
        brightness = found.sum(-1)
        assert brightness.argmax() == weights.argmax()
        assert brightness.argmin() == weights.argmin()

    def test_image_size_follows_the_steps(self, tmp_path):
        figure = plot_attention(weights_of(3, 5), "abcde", "xyz")
        pixels = render(figure, tmp_path / "small.png")
        width, height = figure.get_size_inches() * figure.dpi
        assert pixels.shape[:2] == (round(height), round(width))
        wider = plot_attention(weights_of(3, 15), "a" * 15, "xyz")
        wider_pixels = render(wider, tmp_path / "wide.png")
        assert wider_pixels.shape[0] == pixels.shape[0]
        assert wider_pixels.shape[1] - pixels.shape[1] == pytest.approx(
            10 * CELL_INCHES * figure.dpi, abs=1
        )

    def test_labels_on_the_axes(self):
        figure = plot_attention(weights_of(2, 3), ["one", "two", "3"], "xy")
        ax = figure.axes[0]
        xs = [label.get_text() for label in ax.get_xticklabels()]
        ys = [label.get_text() for label in ax.get_yticklabels()]
        assert xs == ["one", "two", "3"]
        assert ys == ["x", "y"]

    def test_draws_into_a_given_axes(self):
        figure = Figure()
        left, right = figure.subplots(1, 2)
        returned = plot_attention(weights_of(2, 2), "ab", "xy", ax=right)
        assert returned is figure
        assert len(right.images) == 1 and not left.images

    def test_accepts_backend_tensors(self):
        weights = weights_of(2, 3)
        figure = plot_attention(ops.convert_to_tensor(weights), "abc", "xy")
        np.testing.assert_allclose(
            figure.axes[0].images[0].get_array(), weights, rtol=1e-6
        )

    @pytest.mark.parametrize(
        "weights, input_labels, output_labels, message",
        [
            (np.ones((1, 2, 3)) / 3, "abc", "xy", r"weights.shape=\(1, 2, 3\)"),
            (np.full((2, 3), 0.5), "ab", "xy", "Expected 3 labels"),
            (np.full((2, 3), 0.5), "abc", "xyz", "`output_labels`"),
            (np.full((2, 3), 1.5), "abc", "xy", r"weights\[0, 0\]=1.5"),
            (np.full((2, 3), np.nan), "abc", "xy", "6 values outside"),
            (np.full((2, 3), 0.5), None, "xy", "`input_labels`.*None"),
            (np.full((2, 3), 0.5), "abc", 3, "`output_labels`.*3"),
        ],
    )
    def test_bad_arguments(self, weights, input_labels, output_labels, message):
        with pytest.raises(ValueError, match=message):
            plot_attention(weights, input_labels, output_labels)

    def test_missing_matplotlib_names_the_extra(self, monkeypatch):
        monkeypatch.setitem(sys.modules, "matplotlib", None)
        monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
        with pytest.raises(ImportError, match=r"keras-seqext\[plot\]"):
            plot_attention(np.eye(2), "ab", "xy")
