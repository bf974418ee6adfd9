"""The translation benchmark's Keras model, on one backend.

What: token ids in, token ids out, at a vocabulary of 8000 (`V`):
`keras_seqext.layers.DenseGradientEmbedding(V, 256, mask_zero=True)`, a
`keras.layers.Bidirectional(keras.layers.LSTM(128, return_sequences=True))`
encoder (a memory of 256) and `keras_seqext.AttentionDecoder(256, V,
embedding_dim=256, start_token=1, output_activation=None,
output_length=T_out)`, the targets a second, optional input for teacher
forcing. It starts from the initial weights of a task file (see
`_translation_task.py`) and trains with `fit` on its sentences, one `fit`
per epoch in the file's order for that epoch, with
`keras.losses.SparseCategoricalCrossentropy(from_logits=True,
ignore_class=0)` and Adam under a `CosineDecay` schedule, batch 64, then
decodes the held-out sentences freely with `predict` (no targets: each step
is fed the embedding of its previous argmax) and prints one JSON line:
training and inference tokens/s, the token accuracy, peak resident memory
and the parameter count. `torch_translation_reference.py` is the same model
in eager PyTorch and prints the same fields.

How the numbers are taken:

- Training: one `fit` per epoch (the compiled step is kept from one to
  the next); a callback times each epoch. The first is the warm-up
  (tracing and compiling, on TensorFlow and JAX) and is reported apart;
  tokens/s cover the others. A token counts if it is not padding: the
  target's words and its end token.
- Inference: `predict` over the held-out sentences, `PREDICT_CHUNK` at a
  time in batches of 64, each chunk's logits reduced to their argmax at
  once (so that the process never holds all the logits); a warm-up pass,
  then the median of 3 timed ones. Its tokens are counted as in training.
- Accuracy: the share of counted held-out target tokens that the argmax
  gets right at the same position (up to and including the end token).
- Peak RSS: `getrusage(RUSAGE_SELF).ru_maxrss`, at the end.

Other modes: `--write-task` draws the sentences with
`keras_seqext.datasets.synthetic_translation`, the model's initial weights
and the epochs' orders, and saves them with the settings, for every
runner; `--parameter-counts` builds the decoder alone at several
vocabularies (no training).
`translation.py` runs all of them:

    KERAS_BACKEND=jax .venv/bin/python benchmarks/translation_keras.py \\
        --task TASK.npz [--json-only]
"""

import os
import sys

if os.environ.get("KERAS_BACKEND") in ("jax", "torch"):
    # Keras' Bidirectional imports TensorFlow whenever it is installed (to
    # test for a tf.TensorShape as it serializes its layer), which would
    # add TensorFlow's memory to the peak RSS of a JAX or torch run; an
    # install for one of those backends alone has no TensorFlow. None in
    # `sys.modules` makes `import tensorflow` fail, as it fails there.
    sys.modules["tensorflow"] = None

import argparse  # noqa: E402
import json  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
from _processes import peak_rss_mb  # noqa: E402
from _timing import warm_median_seconds  # noqa: E402
from _translation_task import ADAM_EPSILON  # noqa: E402
from _translation_task import BATCH_SIZE  # noqa: E402
from _translation_task import DECODER_UNITS  # noqa: E402
from _translation_task import EMBEDDING_DIM  # noqa: E402
from _translation_task import ENCODER_UNITS  # noqa: E402
from _translation_task import END_TOKEN  # noqa: E402
from _translation_task import INITIAL_WEIGHT  # noqa: E402
from _translation_task import MEMORY_DIM  # noqa: E402
from _translation_task import PAD_TOKEN  # noqa: E402
from _translation_task import PARAMETER_COUNT_VOCABULARIES  # noqa: E402
from _translation_task import START_TOKEN  # noqa: E402
from _translation_task import TEST_SEED  # noqa: E402
from _translation_task import TRAIN_SEED  # noqa: E402
from _translation_task import WEIGHTS_SEED  # noqa: E402
from _translation_task import counted_tokens  # noqa: E402
from _translation_task import decoder_parameters  # noqa: E402
from _translation_task import epoch_orders  # noqa: E402
from _translation_task import load_task  # noqa: E402
from _translation_task import target_length  # noqa: E402
from _translation_task import timing_fields  # noqa: E402
from _translation_task import token_accuracy  # noqa: E402
from _translation_task import training_steps  # noqa: E402
from attention_decoder import EpochTimer  # noqa: E402
from attention_decoder import seed_weights_and_shuffling  # noqa: E402
from attention_decoder import tensorflow_intra_op_threads  # noqa: E402

import keras_seqext  # noqa: E402

PREDICT_REPEATS = 3
# Held-out sentences per `predict` call: 8 batches, whose logits (at
# V = 8000 and T_out = 23, about 190 MB) are reduced to ids at once.
PREDICT_CHUNK = 8 * BATCH_SIZE


def build_model(vocabulary, output_length):
    """The encoder and the token-mode decoder; the targets are a second,
    optional input, for teacher forcing in training only."""
    source = keras.Input((None,), dtype="int32", name="source")
    targets = keras.Input(
        (output_length,), dtype="int32", name="targets", optional=True
    )
    # keras.layers.Embedding but for its gradient on TensorFlow, which
    # Keras' Adam mis-applies there for tokens repeated in a batch.
    embedded = keras_seqext.layers.DenseGradientEmbedding(
        vocabulary, EMBEDDING_DIM, mask_zero=True
    )(source)
    memory = keras.layers.Bidirectional(
        keras.layers.LSTM(ENCODER_UNITS, return_sequences=True)
    )(embedded)
    logits = keras_seqext.AttentionDecoder(
        DECODER_UNITS,
        vocabulary,
        embedding_dim=EMBEDDING_DIM,
        start_token=START_TOKEN,
        output_activation=None,
        output_length=output_length,
    )(memory, targets=targets)
    return keras.Model([source, targets], logits)


def compiled_model(settings, train_samples):
    """`build_model` for a task's settings, compiled as every run trains
    it: Adam under a cosine decay over the whole run after a linear
    warm-up, and the cross-entropy of the logits with the padding left
    out."""
    model = build_model(
        settings["vocabulary"], target_length(settings["max_length"])
    )
    warmup_steps = settings["warmup_steps"]
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0,
        training_steps(train_samples, settings["epochs"]) - warmup_steps,
        warmup_target=settings["learning_rate"],
        warmup_steps=warmup_steps,
    )
    model.compile(
        optimizer=keras.optimizers.Adam(schedule, epsilon=ADAM_EPSILON),
        loss=keras.losses.SparseCategoricalCrossentropy(
            from_logits=True, ignore_class=PAD_TOKEN
        ),
    )
    return model


def named_weights(model):
    """`{name: variable}` of `build_model`'s trainable weights, named
    without Keras' layer names (which count the layers a process built):
    `source_embeddings`; `forward_` and `backward_` and the encoder's LSTM
    cell's names (`kernel`, `recurrent_kernel`, `bias`); `decoder_` and
    the decoder cell's names."""
    embedding, encoder, decoder = (
        layer for layer in model.layers if layer.weights
    )
    named = {"source_embeddings": embedding.embeddings}
    for direction in ("forward", "backward"):
        cell = getattr(encoder, f"{direction}_layer").cell
        for weight in cell.trainable_weights:
            named[f"{direction}_{weight.name}"] = weight
    for weight in decoder.cell.trainable_weights:
        named[f"decoder_{weight.name}"] = weight
    return named


def weight_arrays(model):
    """`named_weights(model)`'s values, as NumPy arrays."""
    return {
        name: keras.ops.convert_to_numpy(weight)
        for name, weight in named_weights(model).items()
    }


def write_task(path, settings):
    """Draws the training and held-out sentences for `settings`, the
    model's initial weights (seeded with `WEIGHTS_SEED`) and each epoch's
    order of the training sentences, and saves them, with the settings, to
    `path` (an `.npz`)."""
    from keras_seqext import datasets

    special = (datasets.PAD_TOKEN, datasets.START_TOKEN, datasets.END_TOKEN)
    if special != (PAD_TOKEN, START_TOKEN, END_TOKEN):
        raise ValueError(
            "_translation_task.py's special tokens must be those of "
            f"keras_seqext.datasets, {special}. Received: "
            f"{(PAD_TOKEN, START_TOKEN, END_TOKEN)}"
        )

    def draw(n_samples, seed):
        return datasets.synthetic_translation(
            n_samples,
            settings["vocabulary"],
            settings["min_length"],
            settings["max_length"],
            settings["zipf_exponent"],
            seed=seed,
        )

    train_source, train_target = draw(settings["train_samples"], TRAIN_SEED)
    test_source, test_target = draw(settings["test_samples"], TEST_SEED)
    seed_weights_and_shuffling(WEIGHTS_SEED)
    model = build_model(
        settings["vocabulary"], target_length(settings["max_length"])
    )
    initial_weights = {
        INITIAL_WEIGHT + name: array
        for name, array in weight_arrays(model).items()
    }
    np.savez(
        path,
        train_source=train_source,
        train_target=train_target,
        test_source=test_source,
        test_target=test_target,
        epoch_orders=epoch_orders(len(train_source), settings["epochs"]),
        settings=np.array(json.dumps(settings)),
        **initial_weights,
    )


def trainable_parameters(layer):
    """The trainable weights' size: the decoder also holds a non-trainable
    scalar, the probability of teacher forcing, which is no parameter."""
    return sum(int(np.prod(weight.shape)) for weight in layer.trainable_weights)


def parameter_counts():
    """The decoder alone, built (not trained) on a memory of `MEMORY_DIM`
    features at each vocabulary of `PARAMETER_COUNT_VOCABULARIES`: its
    weights counted by Keras and by the cell's formula."""
    counts = []
    for vocabulary in PARAMETER_COUNT_VOCABULARIES:
        decoder = keras_seqext.AttentionDecoder(
            DECODER_UNITS,
            vocabulary,
            embedding_dim=EMBEDDING_DIM,
            start_token=START_TOKEN,
            output_activation=None,
        )
        decoder.build((None, None, MEMORY_DIM))
        counts.append(
            {
                "vocabulary": vocabulary,
                "built": trainable_parameters(decoder),
                "formula": decoder_parameters(vocabulary),
            }
        )
        del decoder
    return counts


def predict_ids(model, source):
    """Free decoding: `predict` without targets, `PREDICT_CHUNK` sentences
    at a time; the argmax ids, `(n_samples, T_out)`."""
    chunks = []
    for start in range(0, len(source), PREDICT_CHUNK):
        chunk = source[start : start + PREDICT_CHUNK]
        logits = model.predict([chunk, None], batch_size=BATCH_SIZE, verbose=0)
        chunks.append(logits.argmax(-1))
    return np.concatenate(chunks)


def train(model, task, verbose):
    """Trains `model` on the task's sentences, one `fit` per epoch in the
    task's order for it; returns each epoch's seconds and loss."""
    timer = EpochTimer(verbose)
    seconds, losses = [], []
    for epoch, order in enumerate(task["epoch_orders"]):
        source, target = (
            task["train_source"][order],
            task["train_target"][order],
        )
        model.fit(
            [source, target],
            target,
            batch_size=BATCH_SIZE,
            epochs=epoch + 1,
            initial_epoch=epoch,
            shuffle=False,
            callbacks=[timer],
            verbose=0,
        )
        seconds += timer.seconds
        losses += timer.losses
    return seconds, losses


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument(
        "--task",
        help="train and score on this .npz, which --write-task wrote",
    )
    mode.add_argument(
        "--write-task",
        metavar="PATH",
        help="draw the sentences for --settings (JSON) and save them here",
    )
    mode.add_argument(
        "--parameter-counts",
        action="store_true",
        help="build the decoder alone at several vocabularies; print the "
        "counts",
    )
    parser.add_argument("--settings", help="with --write-task: a JSON dict")
    parser.add_argument(
        "--json-only",
        action="store_true",
        help="print only the final JSON line",
    )
    args = parser.parse_args()
    if args.write_task and not args.settings:
        parser.error("--write-task needs --settings")
    return args


def main():
    args = parse_args()
    if args.write_task:
        write_task(args.write_task, json.loads(args.settings))
        print(json.dumps({"written": args.write_task}))
        return
    if args.parameter_counts:
        print(json.dumps(parameter_counts()))
        return
    task = load_task(args.task)
    settings = task["settings"]
    model = compiled_model(settings, len(task["train_source"]))
    for name, weight in named_weights(model).items():
        weight.assign(task["initial_weights"][name])
    seconds, losses = train(model, task, verbose=not args.json_only)
    predicted, predict_seconds = warm_median_seconds(
        lambda: predict_ids(model, task["test_source"]), PREDICT_REPEATS
    )
    result = {
        "backend": keras.backend.backend(),
        "keras": keras.__version__,
        "jit_compile": model.jit_compile,
        "intra_op_threads": tensorflow_intra_op_threads(),
        "tensorflow_imported": "tensorflow" in sys.modules
        and sys.modules["tensorflow"] is not None,
        **timing_fields(settings, seconds, task),
        "predict_tokens_per_second": round(
            counted_tokens(task["test_target"]) / predict_seconds, 1
        ),
        "losses": [round(loss, 5) for loss in losses],
        "accuracy": token_accuracy(predicted, task["test_target"]),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "params": trainable_parameters(model),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
