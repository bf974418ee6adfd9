"""Attention heatmaps of fixed examples, saved as training goes."""

import io
import os

import keras
from keras import ops

from keras_seqext._matplotlib import import_figure
from keras_seqext._model_graph import all_layers
from keras_seqext._model_graph import decoder_arguments
from keras_seqext._validation import check_positive_int
from keras_seqext.layers import AttentionDecoder
from keras_seqext.plotting import plot_attention


class AttentionHeatmap(keras.callbacks.Callback):
    """Saves heatmaps of a decoder's attention on fixed examples.

    At the end of every `every_n_epochs`-th epoch, the callback decodes
    `inputs` with the model's current weights and draws, for each example,
    the `AttentionDecoder`'s attention weights with `plot_attention`: one
    row per output step, one column per input step. Watching the heatmaps
    of the same examples over the epochs shows the alignment being learned.

    The heatmaps go to PNG files in `directory`, named
    `example{i}_epoch{epoch:03d}.png` with `epoch` counted from 1 (as
    `ModelCheckpoint` counts), and, with `log_dir`, to TensorBoard as the
    images `attention/example{i}` of the run `log_dir/train`, where Keras'
    `TensorBoard` callback writes its epoch logs, at the step of the epoch
    counted from 0 (as it counts). TensorBoard writing uses `tf.summary`, as
    Keras' own `TensorBoard` callback does, so it needs TensorFlow
    installed, whatever the backend (and TensorBoard to view the images).

    How the weights are read: a model usually returns the decoder's outputs
    only. The callback makes a twin of the decoder (the same config, with
    `return_attention_weights=True`), calls it on the decoder's input
    tensor in the model's graph, and builds a `keras.Model` from the model's
    inputs to the twin's outputs and weights. Every other layer is shared;
    the twin gets the decoder's current weights before each use. The
    heatmaps therefore show the decoder running freely, as in `predict`,
    whether or not training uses teacher forcing.

    Limits: the model must be a functional or `Sequential` model in whose
    own graph the decoder is called, once (a decoder inside a nested model,
    or in a subclassed model's `call`, cannot be reached this way); and the
    decoder's input must be computed from the model's inputs alone.

    Args:
        inputs: The examples, in the form `model.predict` takes, with an
            entry for every model input: for a model whose teacher-forcing
            targets are an optional input, `[x, None]` or
            `{"source": x, "targets": None}`. Keep them few: each gets one
            image per saved epoch.
        directory: Folder for the PNG files (created if missing), or None.
            Defaults to `None`.
        log_dir: TensorBoard log folder, or None. At least one of
            `directory` and `log_dir` is needed. Defaults to `None`.
        every_n_epochs: Positive integer: save after epochs n, 2n, ...
            (counted from 1). Defaults to `1`.
        input_labels: None, to label the input steps by their positions, or
            one label sequence per example (a string stands for its
            characters). A sequence shorter than the input crops the heatmap
            to its first steps, to leave out padding. Defaults to `None`.
        output_labels: None (positions), one label sequence per example
            (cropping as for `input_labels`), or a callable that takes one
            example's decoded outputs, `(T_out, output_dim)` as a NumPy
            array, and returns its labels, for instance the decoded text.
            Defaults to `None`.
        decoder: The `AttentionDecoder` to watch, or its name; None finds
            the only one in the model (nested layers included). Defaults to
            `None`.

    Attributes:
        attention_weights: The weights of the last heatmaps, a NumPy array
            `(examples, T_out, T_in)`, or None before the first.

    Raises:
        ValueError: on a bad argument; at the start of training, when the
            decoder cannot be found or reached (see the limits above).
        ImportError: when matplotlib is missing, or TensorFlow with
            `log_dir`.

    Example:

    For a model that reads token ids through
    `keras.layers.Embedding(..., mask_zero=True)`, 0 being padding:

    >>> x = np.array([[3, 1, 4, 0], [2, 7, 1, 8]])
    >>> heatmaps = keras_seqext.callbacks.AttentionHeatmap(
    ...     x, directory="heatmaps", every_n_epochs=5,
    ...     input_labels=["314", "2718"])
    >>> model.fit(x, y, epochs=10, callbacks=[heatmaps])  # doctest: +SKIP

    `heatmaps/` then holds `example0_epoch005.png`,
    `example1_epoch005.png`, `example0_epoch010.png` and
    `example1_epoch010.png`; the first example's heatmaps have 3 columns,
    its padding cropped by its labels. `heatmaps.attention_weights` holds
    the weights of epoch 10, `(2, T_out, 4)`.
    """

    def __init__(
        self,
        inputs,
        directory=None,
        log_dir=None,
        every_n_epochs=1,
        input_labels=None,
        output_labels=None,
        decoder=None,
    ):
        super().__init__()
        owner = type(self).__name__
        import_figure()
        if directory is None and log_dir is None:
            raise ValueError(
                f"Invalid arguments for {owner}: expected a `directory` for "
                "PNG files, a TensorBoard `log_dir`, or both. Received: "
                "directory=None, log_dir=None"
            )
        if log_dir is not None:
            self._tf = _import_tensorflow()
        self.inputs = inputs
        self.directory = directory
        self.log_dir = log_dir
        self.every_n_epochs = check_positive_int(
            owner, "every_n_epochs", every_n_epochs
        )
        n_examples = _count_examples(owner, inputs)
        self.input_labels = _check_labels(
            owner, "input_labels", input_labels, n_examples
        )
        if not callable(output_labels):
            output_labels = _check_labels(
                owner, "output_labels", output_labels, n_examples
            )
        self.output_labels = output_labels
        if decoder is not None and not isinstance(
            decoder, (str, AttentionDecoder)
        ):
            raise ValueError(
                f"Invalid value for argument `decoder` of {owner}. Expected "
                "an AttentionDecoder, its name, or None. Received: "
                f"decoder={decoder!r}"
            )
        self.decoder = decoder
        self.attention_weights = None
        self._watched = None
        self._input_tensors = None
        self._twin = None
        self._weights_model = None
        self._writer = None

    def on_train_begin(self, logs=None):
        # Built anew for each `fit`: the callback may be reused, with
        # another model.
        self._watched = self._find_decoder()
        # Tensors, not arrays: a model with one input takes a bare tensor.
        self._input_tensors = keras.tree.map_structure(
            lambda x: None if x is None else ops.convert_to_tensor(x),
            self.inputs,
        )
        self._twin, self._weights_model = _weights_model(
            self.model, self._watched
        )
        if self.directory is not None:
            os.makedirs(self.directory, exist_ok=True)
        if self.log_dir is not None:
            self._writer = self._tf.summary.create_file_writer(
                os.path.join(self.log_dir, "train")
            )

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every_n_epochs:
            return
        self._twin.set_weights(self._watched.get_weights())
        outputs, weights = self._weights_model(
            self._input_tensors, training=False
        )
        outputs = ops.convert_to_numpy(outputs)
        self.attention_weights = ops.convert_to_numpy(weights)
        for index, example in enumerate(self.attention_weights):
            png = _png(self._plot(index, example, outputs[index]))
            if self.directory is not None:
                name = f"example{index}_epoch{epoch + 1:03d}.png"
                with open(os.path.join(self.directory, name), "wb") as file:
                    file.write(png)
            if self._writer is not None:
                with self._writer.as_default():
                    _write_image(
                        self._tf, f"attention/example{index}", png, epoch
                    )
        if self._writer is not None:
            self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def _plot(self, index, weights, outputs):
        output_length, input_length = weights.shape
        input_labels = _labels_or_positions(
            self.input_labels, index, input_length
        )
        if callable(self.output_labels):
            output_labels = list(self.output_labels(outputs))
        else:
            output_labels = _labels_or_positions(
                self.output_labels, index, output_length
            )
        return plot_attention(
            weights[: len(output_labels), : len(input_labels)],
            input_labels,
            output_labels,
        )

    def _find_decoder(self):
        owner = type(self).__name__
        decoders = [
            layer
            for layer in all_layers(self.model)
            if isinstance(layer, AttentionDecoder)
        ]
        if isinstance(self.decoder, AttentionDecoder):
            found = [d for d in decoders if d is self.decoder]
        elif isinstance(self.decoder, str):
            found = [d for d in decoders if d.name == self.decoder]
        else:
            found = decoders
        if len(found) != 1:
            names = [decoder.name for decoder in decoders]
            wanted = "one decoder" if self.decoder is None else "the given one"
            raise ValueError(
                f"{owner} expected {wanted} among the model's "
                f"AttentionDecoder layers {names}. Received: "
                f"decoder={self.decoder!r}"
            )
        return found[0]


def _weights_model(model, decoder):
    """A twin of `decoder` returning its attention weights, and a model from
    `model`'s inputs to the twin's outputs and weights."""
    owner = "AttentionHeatmap"
    try:
        memory, _ = decoder_arguments(decoder)
    except (AttributeError, ValueError) as error:
        raise ValueError(
            f"{owner} cannot read the input of {decoder.name!r}: it has not "
            "been called in a functional or Sequential model."
        ) from error
    config = decoder.get_config()
    config.update(
        name=f"{decoder.name}_attention_twin",
        return_attention_weights=True,
        return_probabilities=False,
        return_state=False,
    )
    twin = type(decoder).from_config(config)
    try:
        weights_model = keras.Model(model.inputs, twin(memory))
    except ValueError as error:
        raise ValueError(
            f"{owner} cannot reach the input of {decoder.name!r} from the "
            "model's inputs: the decoder must be called in the model's own "
            "graph (not in a nested model)."
        ) from error
    return twin, weights_model


def _count_examples(owner, inputs):
    arrays = [x for x in keras.tree.flatten(inputs) if x is not None]
    if not arrays:
        raise ValueError(
            f"Invalid value for argument `inputs` of {owner}. Expected at "
            f"least one array of examples. Received: inputs={inputs!r}"
        )
    return len(arrays[0])


def _check_labels(owner, name, labels, n_examples):
    if labels is None:
        return None
    if isinstance(labels, str) or len(labels) != n_examples:
        raise ValueError(
            f"Invalid value for argument `{name}` of {owner}. Expected one "
            f"label sequence per example, {n_examples} in all. Received: "
            f"{name}={labels!r}"
        )
    # A string stands for its characters.
    return [list(label) for label in labels]


def _labels_or_positions(labels, index, length):
    if labels is None:
        return [str(step) for step in range(length)]
    return labels[index]


def _png(figure):
    """The figure as PNG bytes."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _write_image(tf, tag, png, step):
    """Writes a PNG as a TensorBoard image summary.

    The summary has the form that `tf.summary.image` gives it (a string
    tensor `[width, height, png]` under the `images` plugin), written with
    TensorFlow alone: `tf.summary.image` also needs the `tensorboard`
    package, which only viewing the images should need.
    """
    # A PNG's header holds its width and height at bytes 16 to 24.
    width, height = (int.from_bytes(png[i : i + 4], "big") for i in (16, 20))
    metadata = tf.compat.v1.SummaryMetadata(
        plugin_data=tf.compat.v1.SummaryMetadata.PluginData(
            plugin_name="images"
        )
    )
    tf.summary.write(
        tag,
        tf.constant([str(width).encode(), str(height).encode(), png]),
        step=step,
        metadata=metadata,
    )


def _import_tensorflow():
    try:
        import tensorflow as tf
    except ImportError as error:
        raise ImportError(
            "AttentionHeatmap(log_dir=...) writes TensorBoard images with "
            "tf.summary, which needs TensorFlow: pip install tensorflow. "
            "Or save PNG files with `directory=` instead."
        ) from error
    return tf
