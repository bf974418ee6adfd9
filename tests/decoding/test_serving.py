"""`export_for_serving`: a process that imports neither Keras nor this
package decodes what `greedy_decode` and `beam_search` decode, from the
exported artifacts and the NumPy driver written beside them."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_seqext import AttentionDecoder
from keras_seqext.decoding import beam_search
from keras_seqext.decoding import export_for_serving
from keras_seqext.decoding import greedy_decode

BACKEND = keras.backend.backend()
FORMATS = ["onnx", "litert"] if BACKEND == "tensorflow" else ["onnx"]
RUNTIMES = {"onnx": "onnxruntime", "litert": "ai_edge_litert"}
LENGTH, FEATURES, UNITS, VOCABULARY, OUTPUT_LENGTH = 5, 4, 8, 9, 4
EXAMPLES, BEAM_WIDTH, END, PENALTY = 100, 3, 0, 0.6


SERVE = """
import json, sys
import numpy as np
sys.path.insert(0, {directory!r})
import seq2seq_serving

decoder = seq2seq_serving.ServedDecoder({directory!r})
inputs = [np.load({inputs!r})]
greedy = decoder.greedy_decode(inputs, end_token={end})
beam = decoder.beam_search(
    inputs, {beam_width}, end_token={end}, length_penalty={penalty}
)
np.savez({results!r}, *greedy, *beam)
loaded = sorted(
    name for name in sys.modules
    if name.split(".")[0] in ("keras", "keras_seqext")
)
print(json.dumps(loaded))
"""


def served_model(tokens):
    """An LSTM encoder and the decoder, the targets an optional input; the
    weights drawn wide, so that the best tokens are far from ties."""
    keras.utils.set_random_seed(0)
    source = keras.Input((LENGTH, FEATURES))
    if tokens:
        targets = keras.Input((OUTPUT_LENGTH,), dtype="int32", optional=True)
    else:
        targets = keras.Input((OUTPUT_LENGTH, VOCABULARY), optional=True)
    memory = keras.layers.LSTM(UNITS, return_sequences=True, unroll=True)(
        keras.layers.Masking()(source)
    )
    decoder = AttentionDecoder(
        UNITS,
        VOCABULARY,
        output_length=OUTPUT_LENGTH,
        embedding_dim=3 if tokens else None,
        start_token=1 if tokens else None,
        output_activation=None if tokens else "softmax",
    )
    model = keras.Model([source, targets], decoder(memory, targets=targets))
    rng = np.random.default_rng(1)
    for weight in model.trainable_weights:
        weight.assign(rng.normal(scale=1.2, size=weight.shape))
    return model


def served_inputs():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(EXAMPLES, LENGTH, FEATURES)).astype("float32")
    x[::3, -2:] = 0.0  # padding, which the Masking layer masks
    return x


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("tokens", [False, True], ids=["one_hot", "tokens"])
def test_a_process_without_keras_decodes_the_same(fmt, tokens, tmp_path):
    pytest.importorskip(RUNTIMES[fmt], reason="needs the `export` extra")
    model = served_model(tokens)
    x = served_inputs()
    directory = export_for_serving(model, str(tmp_path / "served"), fmt)
    assert sorted(os.listdir(directory)) == sorted(
        [
            "decoder.json",
            f"encoder.{'onnx' if fmt == 'onnx' else 'tflite'}",
            f"step.{'onnx' if fmt == 'onnx' else 'tflite'}",
            "seq2seq_serving.py",
        ]
    )
    np.save(tmp_path / "inputs.npy", x)
    results = str(tmp_path / "results.npz")
    script = SERVE.format(
        directory=directory,
        inputs=str(tmp_path / "inputs.npy"),
        results=results,
        end=END,
        beam_width=BEAM_WIDTH,
        penalty=PENALTY,
    )
    # A clean environment but for the path to Python's packages: the
    # serving process must find the runtime, not this package.
    process = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=str(tmp_path),
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    assert process.returncode == 0, process.stderr[-3000:]
    assert json.loads(process.stdout.splitlines()[-1]) == []
    served = np.load(results)
    inputs = [x, None]
    expected = [
        *greedy_decode(model, inputs, end_token=END),
        *beam_search(
            model, inputs, BEAM_WIDTH, end_token=END, length_penalty=PENALTY
        ),
    ]
    for index, wanted in enumerate(expected):
        got = served[f"arr_{index}"]
        if index % 3 == 0:  # the sequences
            np.testing.assert_array_equal(got, wanted)
        else:  # the scores and the attention weights
            np.testing.assert_allclose(got, wanted, atol=1e-4)


@pytest.mark.skipif(BACKEND != "tensorflow", reason="LiteRT on TensorFlow")
def test_litert_artifacts_use_builtin_operations(tmp_path):
    """No TensorFlow (Flex) operation in either artifact: the LiteRT
    interpreter alone runs them."""
    pytest.importorskip("ai_edge_litert", reason="needs the `export` extra")
    from ai_edge_litert.interpreter import Interpreter

    directory = export_for_serving(
        served_model(tokens=True), str(tmp_path), "litert"
    )
    for name in ("encoder", "step"):
        interpreter = Interpreter(os.path.join(directory, f"{name}.tflite"))
        operations = {op["op_name"] for op in interpreter._get_ops_details()}
        assert operations and not any(
            op.startswith("Flex") for op in operations
        )


def test_bad_format(tmp_path):
    with pytest.raises(ValueError, match="`format` of export_for_serving"):
        export_for_serving(served_model(False), str(tmp_path), "tflite")


@pytest.mark.skipif(BACKEND == "tensorflow", reason="LiteRT works here")
def test_litert_needs_tensorflow(tmp_path):
    with pytest.raises(ValueError, match="KERAS_BACKEND=tensorflow"):
        export_for_serving(served_model(False), str(tmp_path), "litert")
