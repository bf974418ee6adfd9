"""Luong attention in a teacher-forced encoder-decoder, four scores compared.

The task: read 8 random integers in [0, 10), one-hot encoded, and output them
in reverse order. The model is the functional encoder-decoder of the
tutorials: an LSTM encoder returning every state and its last one, an LSTM
decoder of the same size (which the `dot` score needs) started from that
state, `LuongAttention` over the encoder's states giving the paper's
attentional hidden state, and a softmax at each step. In training the
decoder reads the target shifted right by one step, a zero vector first
(teacher forcing).

Teacher forcing needs the answer, so the table scores greedy decoding
instead: a one-step decoder sharing the trained layers is fed its own
previous prediction, for the whole held-out set at once. Its exact match
equals the teacher-forced one by construction (a sequence is right under
one exactly when its every step is, and then both decoders read the same
inputs), but its per-step accuracy is lower when a mistake derails the
steps after it; the table prints both per-step accuracies.

The `location` score reads the decoder state alone, never the source; on
reversal, where the position to read depends only on the output step, that
is enough.

Run it with any backend:

    KERAS_BACKEND=jax python examples/luong_decoder.py [--epochs 8]
"""

import argparse
import math
import time

import keras
import numpy as np

import keras_seqext

STEPS = 8
CARDINALITY = 10
UNITS = 64
TRAIN_SAMPLES = 10000
TEST_SAMPLES = 1000
LEARNING_RATE = 5e-3
SCORE_ARGUMENTS = {
    "dot": {},
    "general": {},
    "concat": {"units": UNITS},
    "location": {"max_source_length": STEPS},
}


def build_models(score):
    """Returns the teacher-forced training model and, sharing its layers,
    the inference encoder and the one-step decoder."""
    encoder = keras.layers.LSTM(UNITS, return_sequences=True, return_state=True)
    decoder = keras.layers.LSTM(UNITS, return_sequences=True, return_state=True)
    attention = keras_seqext.layers.LuongAttention(
        score, attentional_units=UNITS, **SCORE_ARGUMENTS[score]
    )
    classifier = keras.layers.TimeDistributed(
        keras.layers.Dense(CARDINALITY, activation="softmax")
    )

    source = keras.Input((STEPS, CARDINALITY), name="source")
    shifted_target = keras.Input((None, CARDINALITY), name="shifted_target")
    encoder_states, encoder_h, encoder_c = encoder(source)
    decoder_states, _, _ = decoder(
        shifted_target, initial_state=[encoder_h, encoder_c]
    )
    predictions = classifier(attention([decoder_states, encoder_states]))
    training_model = keras.Model([source, shifted_target], predictions)

    inference_encoder = keras.Model(
        source, [encoder_states, encoder_h, encoder_c]
    )

    previous = keras.Input((1, CARDINALITY), name="previous")
    memory = keras.Input((STEPS, UNITS), name="encoder_states")
    h = keras.Input((UNITS,), name="h")
    c = keras.Input((UNITS,), name="c")
    step_state, next_h, next_c = decoder(previous, initial_state=[h, c])
    step_prediction = classifier(attention([step_state, memory]))
    step_decoder = keras.Model(
        [previous, memory, h, c], [step_prediction, next_h, next_c]
    )
    return training_model, inference_encoder, step_decoder


def shift_right(targets):
    """The decoder's teacher-forced inputs: a zero start step, then the
    targets but the last."""
    start = np.zeros_like(targets[:, :1])
    return np.concatenate([start, targets[:, :-1]], axis=1)


def greedy_decode(inference_encoder, step_decoder, sources):
    """Decodes all `sources` together, one decoder call per output step,
    each step fed the one-hot argmax of the step before; returns the
    predicted distributions, `(n_samples, STEPS, CARDINALITY)`."""
    memory, h, c = inference_encoder.predict_on_batch(sources)
    previous = np.zeros((len(sources), 1, CARDINALITY), "float32")
    predictions = []
    for _ in range(STEPS):
        prediction, h, c = step_decoder.predict_on_batch(
            [previous, memory, h, c]
        )
        predictions.append(prediction[:, 0])
        previous = np.eye(CARDINALITY, dtype="float32")[prediction.argmax(-1)]
    return np.stack(predictions, axis=1)


def exact_match(targets, predictions):
    """The fraction of sequences right at every step."""
    metric = keras_seqext.metrics.SequenceAccuracy()
    metric.update_state(targets, predictions)
    return float(metric.result())


def step_accuracy(targets, predictions):
    """The fraction of steps right, over all sequences."""
    return np.mean(targets.argmax(-1) == predictions.argmax(-1))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    x_train, y_train = keras_seqext.datasets.reverse_sequence(
        TRAIN_SAMPLES, STEPS, cardinality=CARDINALITY, seed=args.seed + 1
    )
    x_test, y_test = keras_seqext.datasets.reverse_sequence(
        TEST_SAMPLES, STEPS, cardinality=CARDINALITY, seed=args.seed + 2
    )
    backend = keras.backend.backend()
    updates = args.epochs * math.ceil(TRAIN_SAMPLES / args.batch_size)
    header = (
        "| score    | backend    | exact match | per step | "
        "per step, teacher-forced | train s |"
    )
    rows = []
    for score in SCORE_ARGUMENTS:
        keras.utils.set_random_seed(args.seed)
        training_model, inference_encoder, step_decoder = build_models(score)
        # Decaying the rate to 0 lets the last epochs settle instead of
        # hopping between solutions a few per cent apart.
        learning_rate = keras.optimizers.schedules.CosineDecay(
            LEARNING_RATE, updates
        )
        training_model.compile(
            optimizer=keras.optimizers.Adam(learning_rate),
            loss="categorical_crossentropy",
        )
        start = time.perf_counter()
        training_model.fit(
            [x_train, shift_right(y_train)],
            y_train,
            batch_size=args.batch_size,
            epochs=args.epochs,
            verbose=0,
        )
        seconds = time.perf_counter() - start

        greedy = greedy_decode(inference_encoder, step_decoder, x_test)
        teacher_forced = training_model.predict(
            [x_test, shift_right(y_test)], verbose=0
        )
        match = exact_match(y_test, greedy)
        rows.append(
            f"| {score:<8} | {backend:<10} | {match:>11.1%} | "
            f"{step_accuracy(y_test, greedy):>8.2%} | "
            f"{step_accuracy(y_test, teacher_forced):>24.2%} | "
            f"{seconds:>7.1f} |"
        )
        print(f"{score}: {match:.1%} in {seconds:.1f} s", flush=True)

    print(
        f"\nGreedy decoding of {TEST_SAMPLES} held-out sequences ({STEPS} "
        f"integers in [0, {CARDINALITY}) reversed)\nafter {args.epochs} "
        f"epochs over {TRAIN_SAMPLES} training sequences, batch "
        f"{args.batch_size}:\n"
    )
    print(header)
    columns = header.split("|")[1:-1]
    print("|" + "|".join("-" * len(column) for column in columns) + "|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
