"""The attention tutorial's experiment on Keras 3: with and without attention.

The task: read 5 random integers in [0, 50), one-hot encoded, and output the
first 2 followed by 3 zeros. A plain encoder-decoder squeezes the input into
one vector; a decoder that attends over the encoder's states can look the
two integers up. The Keras 2 tutorial reported 23.1% and 95.7% exact match
(mean of 10 runs, 5000 updates of one sample each). This script trains both
models batched on 5000 samples and scores them on 1000 held-out samples after
every epoch, since the plain model's score depends on the budget: it passes
the tutorial's 23% around epoch 3 and keeps climbing, while the attention
model is past 99% by then.

Run it with any backend:

    KERAS_BACKEND=jax python examples/copy_first.py [--epochs 5]
"""

import argparse
import time

import keras

import keras_seqext

STEPS_IN = 5
CARDINALITY = 50
UNITS = 150  # as in the tutorial
TUTORIAL_ACCURACY = {"encoder-decoder": 0.231, "with AttentionDecoder": 0.957}


def encoder_decoder():
    """LSTM encoder, its last state repeated, LSTM decoder, softmax."""
    return keras.Sequential(
        [
            keras.Input((STEPS_IN, CARDINALITY)),
            keras.layers.LSTM(UNITS),
            keras.layers.RepeatVector(STEPS_IN),
            keras.layers.LSTM(UNITS, return_sequences=True),
            keras.layers.TimeDistributed(
                keras.layers.Dense(CARDINALITY, activation="softmax")
            ),
        ]
    )


def attention_decoder():
    """LSTM encoder returning every state, read by the attention decoder."""
    return keras.Sequential(
        [
            keras.Input((STEPS_IN, CARDINALITY)),
            keras.layers.LSTM(UNITS, return_sequences=True),
            keras_seqext.AttentionDecoder(UNITS, CARDINALITY),
        ]
    )


def train_and_score(model, data, epochs, batch_size):
    """Trains one epoch at a time; returns the held-out exact match after
    each epoch and the seconds spent in `fit`."""
    x_train, y_train, x_test, y_test = data
    model.compile(
        optimizer="adam",
        loss="categorical_crossentropy",
        metrics=[keras_seqext.metrics.SequenceAccuracy()],
    )
    accuracies, seconds = [], 0.0
    for _ in range(epochs):
        start = time.perf_counter()
        model.fit(x_train, y_train, batch_size=batch_size, verbose=0)
        seconds += time.perf_counter() - start
        logs = model.evaluate(x_test, y_test, verbose=0, return_dict=True)
        accuracies.append(logs["sequence_accuracy"])
    return accuracies, seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    data = (
        *keras_seqext.datasets.copy_first(5000, seed=args.seed + 1),
        *keras_seqext.datasets.copy_first(1000, seed=args.seed + 2),
    )
    backend = keras.backend.backend()
    epochs = range(1, args.epochs + 1)
    header = (
        f"| {'model':<21} | {'backend':<10} | "
        + " | ".join(f"epoch {e}" for e in epochs)
        + " | tutorial | train s |"
    )
    rows = []
    for name, build in [
        ("encoder-decoder", encoder_decoder),
        ("with AttentionDecoder", attention_decoder),
    ]:
        keras.utils.set_random_seed(args.seed)
        accuracies, seconds = train_and_score(
            build(), data, args.epochs, args.batch_size
        )
        rows.append(
            f"| {name:<21} | {backend:<10} | "
            + " | ".join(f"{a:>7.1%}" for a in accuracies)
            + f" | {TUTORIAL_ACCURACY[name]:>8.1%} | {seconds:>7.1f} |"
        )
        print(f"{name}: {accuracies[-1]:.1%} in {seconds:.1f} s", flush=True)

    print(
        "\nExact match on 1000 held-out sequences (first 2 of 5 integers, "
        f"cardinality 50)\nafter each epoch over 5000 training sequences, "
        f"batch {args.batch_size}:\n"
    )
    print(header)
    columns = header.split("|")[1:-1]
    print("|" + "|".join("-" * len(column) for column in columns) + "|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
