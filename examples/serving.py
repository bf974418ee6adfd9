"""Train, export, and decode in a process that knows nothing of Keras.

Trains a token-mode attention model on a small synthetic translation task
(`keras_seqext.datasets.synthetic_translation`, 500 token ids), writes it
with `keras_seqext.decoding.export_for_serving` as an encoder and a
one-step decoder artifact (ONNX; LiteRT too on TensorFlow) with the NumPy
driver beside them, then runs `examples/serve_exported.py` in a new process.
That script imports NumPy and the runtime only, decodes the held-out
sentences by greedy decoding and beam search, and checks that it
reproduces what `greedy_decode` and `beam_search` decode here.

It needs the `export` extra (`pip install -e ".[export,jax]"`, or the test
set-up of `make test`). Run it with any backend:

    KERAS_BACKEND=jax python examples/serving.py [--directory served]
"""

import argparse
import os
import subprocess
import sys
import tempfile

import keras
import numpy as np

from keras_seqext import AttentionDecoder
from keras_seqext.datasets import END_TOKEN
from keras_seqext.datasets import START_TOKEN
from keras_seqext.datasets import synthetic_translation
from keras_seqext.decoding import beam_search
from keras_seqext.decoding import export_for_serving
from keras_seqext.decoding import greedy_decode

VOCABULARY, MIN_LENGTH, MAX_LENGTH = 500, 4, 8
TRAIN_SAMPLES, TEST_SAMPLES, EPOCHS, BATCH_SIZE = 12000, 200, 6, 64
BEAM_WIDTH, LENGTH_PENALTY = 4, 0.6
SERVER = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "serve_exported.py"
)


def build_model():
    source = keras.Input((MAX_LENGTH,), dtype="int32", name="source")
    targets = keras.Input(
        (MAX_LENGTH + 1,), dtype="int32", name="targets", optional=True
    )
    embedded = keras.layers.Embedding(VOCABULARY, 32, mask_zero=True)(source)
    # Unrolled, so that LiteRT runs the encoder on its builtin operations.
    encoded = keras.layers.Bidirectional(
        keras.layers.LSTM(32, return_sequences=True, unroll=True)
    )(embedded)
    logits = AttentionDecoder(
        64,
        VOCABULARY,
        embedding_dim=32,
        output_length=MAX_LENGTH + 1,
        start_token=START_TOKEN,
        output_activation=None,
        seed=0,
    )(encoded, targets=targets)
    return keras.Model([source, targets], logits)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--directory", help="where to export (a temporary folder)"
    )
    args = parser.parse_args()
    keras.utils.set_random_seed(0)
    train = synthetic_translation(
        TRAIN_SAMPLES, VOCABULARY, MIN_LENGTH, MAX_LENGTH, 0.5, seed=1
    )
    test_source, test_target = synthetic_translation(
        TEST_SAMPLES, VOCABULARY, MIN_LENGTH, MAX_LENGTH, 0.5, seed=2
    )
    model = build_model()
    steps = EPOCHS * -(-TRAIN_SAMPLES // BATCH_SIZE)
    model.compile(
        keras.optimizers.Adam(
            keras.optimizers.schedules.CosineDecay(6e-3, steps)
        ),
        keras.losses.SparseCategoricalCrossentropy(
            from_logits=True, ignore_class=0
        ),
    )
    model.fit(
        list(train), train[1], batch_size=BATCH_SIZE, epochs=EPOCHS, verbose=2
    )

    root = args.directory or tempfile.mkdtemp()
    formats = ["onnx"] + (
        ["litert"] if keras.backend.backend() == "tensorflow" else []
    )
    inputs = [test_source, None]
    expected = {
        "greedy": greedy_decode(model, inputs, end_token=END_TOKEN)[0],
        "beam": beam_search(
            model,
            inputs,
            BEAM_WIDTH,
            end_token=END_TOKEN,
            length_penalty=LENGTH_PENALTY,
        )[0],
    }
    np.savez(
        os.path.join(root, "held_out.npz"),
        source=test_source,
        target=test_target,
        **expected,
    )
    for fmt in formats:
        directory = export_for_serving(model, os.path.join(root, fmt), fmt)
        files = ", ".join(sorted(os.listdir(directory)))
        print(f"\nExported ({fmt}) to {directory}: {files}")
        # A fresh process, as a server would be: it imports no Keras.
        subprocess.run(
            [
                sys.executable,
                SERVER,
                directory,
                os.path.join(root, "held_out.npz"),
            ],
            check=True,
        )


if __name__ == "__main__":
    main()
