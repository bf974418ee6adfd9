"""Decoding served outside Keras: a trained model written as an encoder
artifact and a one-step decoder artifact, with a NumPy driver."""

import json
import os
import shutil

import keras
from keras import ops

from keras_seqext._validation import check_choice
from keras_seqext.decoding import _numpy_decoding
from keras_seqext.decoding._decoder_model import encoder_outputs
from keras_seqext.decoding._decoder_model import find_decoder

FORMATS = ("onnx", "litert")
EXTENSIONS = {"onnx": ".onnx", "litert": ".tflite"}
# The driver's name beside the artifacts.
DRIVER_FILE = "seq2seq_serving.py"
# The sizes given to the unknown dimensions of a first, sample call: Keras
# exports a model only once it has been called.
SAMPLE_BATCH_SIZE, SAMPLE_LENGTH = 2, 3


def export_for_serving(model, directory, format="onnx"):
    """Writes a trained decoder model for decoding outside Keras.

    A beam search, or any decoding that feeds back chosen tokens, cannot
    be one exported model: its loop picks tokens between steps. So this
    writes two artifacts, each exported by Keras' `Model.export`:

    - `encoder`: the model's inputs (without `targets`) to what every step
      reads, the attention memory `(batch, T_in, ...)` (the values, the
      keys and the mask as 0 and 1, side by side), and the decoder's
      initial states `y_0` and `s_0`;
    - `step`: one step of the decoder's cell, from the token ids fed back
      `(n,)`, a flag `(n, 1)` (0 at the first step, where the cell reads its
      own `y_0`, 1 after), the states `y` and `s` and the attention memory,
      to the step's outputs (probabilities or logits, as the decoder's)
      and its attention weights side by side, `(n, output_dim + T_in)`,
      and the new states.

    Beside them go `decoder.json`, which describes them, and
    `seq2seq_serving.py`, a module that needs only NumPy and the format's
    runtime (onnxruntime, or `ai_edge_litert` for LiteRT): its
    `ServedDecoder(directory)` runs `greedy_decode` and `beam_search` as
    `keras_seqext.decoding` does, with the same length penalty, and
    returns the same arrays.

    Both artifacts take any batch size and input length. For LiteRT the
    model must run on TensorFlow's builtin operations: give its Keras LSTMs
    `unroll=True` (the decoder's step has no loop).

    Args:
        model: A functional or `Sequential` model whose output layer is an
            `AttentionDecoder` with a softmax or linear output, as the
            other decoding functions take.
        directory: The folder to write, made if missing.
        format: `"onnx"` (on every backend) or `"litert"` (on TensorFlow).
            Defaults to `"onnx"`.

    Returns:
        `directory`.

    Raises:
        ValueError: on a bad argument, a model that is not as `model` says,
            or LiteRT on a backend other than TensorFlow.
        ImportError: without the format's exporter (the `export` extra).

    Example:

    >>> from keras_seqext.decoding import export_for_serving
    >>> model = keras.Sequential([
    ...     keras.Input((5, 8)),
    ...     keras.layers.LSTM(16, return_sequences=True),
    ...     keras_seqext.AttentionDecoder(16, 10, output_length=4),
    ... ])
    >>> export_for_serving(model, "served")  # doctest: +SKIP
    'served'

    Then, in a process without Keras:

    >>> import sys  # doctest: +SKIP
    >>> sys.path.insert(0, "served")  # doctest: +SKIP
    >>> import seq2seq_serving  # doctest: +SKIP
    >>> decoder = seq2seq_serving.ServedDecoder("served")  # doctest: +SKIP
    >>> tokens, scores, weights = decoder.beam_search(  # doctest: +SKIP
    ...     [np.random.rand(2, 5, 8).astype("float32")], beam_width=3)
    """
    owner = "export_for_serving"
    check_choice(owner, "format", format, FORMATS)
    backend = keras.backend.backend()
    if format == "litert" and backend != "tensorflow":
        raise ValueError(
            f"Invalid value for argument `format` of {owner} on the "
            f"{backend} backend. Keras exports LiteRT from JAX not at all, "
            "and from PyTorch for fixed shapes only, which the rows of a "
            "beam search are not. Load the model with "
            "KERAS_BACKEND=tensorflow to write LiteRT, or use "
            "format='onnx'. Received: format='litert'"
        )
    decoder = find_decoder(model, owner)
    encoder = _serving_encoder(model, decoder)
    step = _serving_step(decoder.cell, encoder)
    os.makedirs(directory, exist_ok=True)
    extension = EXTENSIONS[format]
    for name, part in (("encoder", encoder), ("step", step)):
        part(_sample_inputs(part))
        part.export(
            os.path.join(directory, name + extension),
            format=format,
            verbose=False,
        )
    metadata = {
        "format": format,
        "extension": extension,
        "output_dim": decoder.output_dim,
        "output_length": decoder.output_length,
        "from_logits": decoder.output_activation is keras.activations.linear,
        "inputs": [tensor.name for tensor in encoder.inputs],
    }
    metadata_file = os.path.join(directory, _numpy_decoding.METADATA_FILE)
    with open(metadata_file, "w") as file:
        json.dump(metadata, file, indent=2)
    shutil.copyfile(
        _numpy_decoding.__file__, os.path.join(directory, DRIVER_FILE)
    )
    return directory


def _serving_encoder(model, decoder):
    """The model from its inputs but the targets to the encoder artifact's
    outputs."""
    arguments = encoder_outputs(decoder)
    targets = arguments.pop("targets", None)
    inputs = [t for t in model.inputs if t is not targets]
    outputs = _EncoderOutputs(decoder.cell)(
        arguments["memory"],
        arguments["mask"],
        initial_state=arguments.get("initial_state"),
    )
    return keras.Model(inputs, outputs, name="serving_encoder")


def _serving_step(cell, encoder):
    """The one-step model, its inputs shaped after the encoder's outputs."""
    memory_dim = encoder.outputs[0].shape[-1]
    tokens = keras.Input((), dtype="int32", name="tokens")
    fed = keras.Input((1,), name="fed")
    output = keras.Input((cell.feed_dim,), name="output")
    state = keras.Input((cell.units,), name="state")
    memory = keras.Input((None, memory_dim), name="memory")
    inputs = [tokens, fed, output, state, memory]
    # As `_EncoderOutputs` projects the values: by the feature sizes.
    memory_shape = (None, None, encoder_memory_dim(encoder))
    values_dim = memory_shape[-1]
    if cell._projects_values(memory_shape):
        values_dim = cell.context_kernel.shape[-1]
    outputs = _Step(cell, values_dim)(*inputs)
    return keras.Model(inputs, outputs, name="serving_step")


def encoder_memory_dim(encoder):
    """The feature size of the memory the encoder's decoder reads."""
    return encoder.get_layer(index=-1).input[0].shape[-1]


def _sample_inputs(model):
    """Zeros shaped as `model`'s inputs, unknown sizes filled in."""
    samples = []
    for tensor in model.inputs:
        shape = [SAMPLE_BATCH_SIZE, *tensor.shape[1:]]
        shape = [SAMPLE_LENGTH if size is None else size for size in shape]
        samples.append(ops.zeros(shape, tensor.dtype))
    return samples


class _EncoderOutputs(keras.layers.Layer):
    """What the steps read, from the memory, its mask and the initial
    state: the attention memory, the values, keys and mask (as 0 and 1)
    side by side, one tensor of one length (exporters name each input's
    unknown length apart, and could not tell that they are equal), and
    `y_0` and `s_0`."""

    def __init__(self, cell, **kwargs):
        super().__init__(**kwargs)
        self.cell = cell
        # The memory's Keras mask comes as the `mask` argument.
        self.supports_masking = True

    def compute_mask(self, *args, **kwargs):
        return None

    def call(self, memory, mask, initial_state=None):
        states = self.cell.initial_state(memory, mask, initial_state)
        values, keys = self.cell.attention_memory(
            memory, mask, by_feature_size=True
        )[:2]
        mask = ops.expand_dims(ops.cast(mask, values.dtype), -1)
        return [ops.concatenate([values, keys, mask], axis=-1), *states]


class _Step(keras.layers.Layer):
    """One step of `cell`, fed token ids where `fed` is 1; the attention
    memory as `_EncoderOutputs` packs it, its values `values_dim` wide."""

    def __init__(self, cell, values_dim, **kwargs):
        super().__init__(**kwargs)
        self.cell = cell
        self.values_dim = values_dim

    def call(self, tokens, fed, output, state, memory):
        cell = self.cell
        values = memory[..., : self.values_dim]
        keys = memory[..., self.values_dim : -1]
        mask = memory[..., -1] > 0.5
        inputs = ops.concatenate(
            [cell.feed_of_tokens(tokens, output.dtype), fed], axis=-1
        )
        attention_memory = [values, keys, ops.expand_dims(mask, 1)]
        step_output, (output, state) = cell.call(
            inputs, [output, state], attention_memory
        )
        # As the cell returns it, outputs and weights side by side: jax2onnx
        # mislabels the slices of a concatenation as outputs.
        return [step_output, output, state]
