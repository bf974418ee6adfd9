"""Exposure bias, and scheduled sampling against it, on one decoder.

A decoder trained with teacher forcing is fed the true previous term at every
step; when it decodes on its own it is fed its own previous output instead,
which it never met in training. Bengio et al. (2015) call this mismatch
exposure bias. Their remedy, scheduled sampling, feeds the true term with a
probability epsilon that decays from 1 as training goes on, so that the
decoder meets more and more of its own outputs.

The task: continue an arithmetic progression modulo 13. The input is its
first 3 terms (a, a + d, a + 2d), the target the next 16. No input step lines
up with an output step, so the decoder has to carry the count itself, and the
true previous term that teacher forcing hands it is a strong cue.
`AttentionDecoder` feeds back its output distribution, which is one-hot only
where the model is sure. The same model, an LSTM encoder read by the decoder,
is trained three ways on the same data from the same seed: always fed the
truth (teacher forcing), always fed its own outputs (free running), and with
epsilon on the inverse sigmoid schedule (`ScheduledSampling`). After every
epoch, each of the 13 * 12 = 156 progressions is decoded freely and scored by
exact match, then decoded again fed the true previous terms. Every
progression is also in the training data: this measures decoding, not
generalization.

What to look for: while it learns, the teacher-forced model is far better fed
the truth than on its own, the gap that exposure bias makes; the gap closes
once its outputs are confident. Scheduled sampling shows no such gap. In our
runs (seeds 0, 1 and 2) its free-running exact match was ahead of teacher
forcing's after epochs 3 to 7, and both were at 100% after epoch 8; free
running learned slowest. The targets are label-smoothed for all three
models: without smoothing, scheduled sampling learned slower than teacher
forcing in our runs and ended behind it (89% and 94% against 100% after 8
epochs, seeds 0 and 1).

Run it with any backend:

    KERAS_BACKEND=jax python examples/scheduled_sampling.py [--epochs 8]
"""

import argparse
import time

import keras
import numpy as np
from _tables import markdown_table

import keras_seqext

GIVEN_TERMS = 3
NEXT_TERMS = 16
MODULUS = 13  # prime, so that every step d in [1, 13) visits every residue
UNITS = 64
LEARNING_RATE = 3e-3
# Some unclipped runs of this decoder diverged late in training.
CLIPNORM = 1.0
# Without it scheduled sampling fell behind teacher forcing (see above).
LABEL_SMOOTHING = 0.1


def arithmetic_progressions(starts, steps):
    """The progressions `start + step * t (mod MODULUS)`, one-hot encoded.

    Args:
        starts: integer array `(n,)`, the first terms.
        steps: integer array `(n,)`, the common differences.

    Returns:
        `(inputs, targets)`: the first `GIVEN_TERMS` terms and the
        `NEXT_TERMS` after them, `(n, GIVEN_TERMS, MODULUS)` and
        `(n, NEXT_TERMS, MODULUS)` float32 arrays.
    """
    positions = np.arange(GIVEN_TERMS + NEXT_TERMS)
    terms = (starts[:, None] + steps[:, None] * positions) % MODULUS
    one_hot = np.eye(MODULUS, dtype="float32")
    return one_hot[terms[:, :GIVEN_TERMS]], one_hot[terms[:, GIVEN_TERMS:]]


def random_progressions(n_samples, seed):
    """`n_samples` progressions with random starts and nonzero steps."""
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, MODULUS, n_samples)
    steps = rng.integers(1, MODULUS, n_samples)
    return arithmetic_progressions(starts, steps)


def every_progression():
    """Each of the `MODULUS * (MODULUS - 1)` progressions once."""
    starts, steps = np.meshgrid(np.arange(MODULUS), np.arange(1, MODULUS))
    return arithmetic_progressions(starts.ravel(), steps.ravel())


def build_model(teacher_forcing_probability, seed):
    """The LSTM encoder and attention decoder, compiled; returns the model
    and its decoder. The targets are an optional second input, used for
    teacher forcing in training only."""
    source = keras.Input((GIVEN_TERMS, MODULUS), name="source")
    targets = keras.Input((NEXT_TERMS, MODULUS), name="targets", optional=True)
    encoded = keras.layers.LSTM(UNITS, return_sequences=True)(source)
    decoder = keras_seqext.AttentionDecoder(
        UNITS,
        MODULUS,
        output_length=NEXT_TERMS,
        teacher_forcing_probability=teacher_forcing_probability,
        seed=seed,
    )
    model = keras.Model([source, targets], decoder(encoded, targets=targets))
    model.compile(
        optimizer=keras.optimizers.Adam(LEARNING_RATE, clipnorm=CLIPNORM),
        loss=keras.losses.CategoricalCrossentropy(
            label_smoothing=LABEL_SMOOTHING
        ),
    )
    return model, decoder


def score(model, decoder, inputs, targets):
    """Exact match and per-step accuracy decoding freely, and exact match
    fed the true previous term at every step."""
    free = model.predict({"source": inputs, "targets": None}, verbose=0)
    probability = decoder.teacher_forcing_probability.numpy()
    decoder.teacher_forcing_probability.assign(1.0)
    fed = keras.ops.convert_to_numpy(model([inputs, targets], training=True))
    decoder.teacher_forcing_probability.assign(probability)
    truth = targets.argmax(-1)
    free_right = free.argmax(-1) == truth
    return {
        "free": free_right.all(-1).mean(),
        "free per step": free_right.mean(),
        "fed": (fed.argmax(-1) == truth).all(-1).mean(),
    }


def train(probability, callbacks, data, args):
    """Trains one model for `args.epochs`, one `fit` call per epoch.

    Returns the epsilon at the end of each epoch, the scores after each
    epoch and the seconds spent in `fit`.
    """
    x_train, y_train, x_test, y_test = data
    keras.utils.set_random_seed(args.seed)
    model, decoder = build_model(probability, args.seed)
    epsilons, scores, seconds = [], [], 0.0
    for epoch in range(args.epochs):
        start = time.perf_counter()
        # With `initial_epoch`, ScheduledSampling resumes its batch count.
        history = model.fit(
            [x_train, y_train],
            y_train,
            batch_size=args.batch_size,
            initial_epoch=epoch,
            epochs=epoch + 1,
            callbacks=callbacks,
            verbose=0,
        )
        seconds += time.perf_counter() - start
        logged = history.history.get("teacher_forcing_probability")
        epsilons.append(logged[-1] if logged else probability)
        scores.append(score(model, decoder, x_test, y_test))
    return epsilons, scores, seconds


def plot(results, path):
    """Free-running exact match and epsilon after each epoch, as a PNG."""
    try:
        from matplotlib import pyplot
    except ImportError:
        print(
            f"\nNo plot written to {path}: matplotlib is missing "
            '(pip install "keras-seqext[plot]").'
        )
        return
    epsilons = results["scheduled sampling"][0]
    epochs = range(1, len(epsilons) + 1)
    figure, axes = pyplot.subplots(figsize=(6, 4))
    for name, (_, scores, _) in results.items():
        axes.plot(epochs, [s["free"] for s in scores], marker="o", label=name)
    axes.plot(epochs, epsilons, "k--", label="epsilon, scheduled sampling")
    axes.set_xlabel("epoch")
    axes.set_ylabel("free-running exact match; epsilon")
    axes.legend()
    figure.savefig(path, dpi=120, bbox_inches="tight")
    print(f"\nPlot written to {path}.")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--samples", type=int, default=5000)
    parser.add_argument(
        "--k",
        type=float,
        default=150.0,
        help="inverse sigmoid k: epsilon is 0.5 after k ln k batches",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plot", metavar="PNG", help="also plot to this file")
    args = parser.parse_args()

    data = (
        *random_progressions(args.samples, args.seed + 1),
        *every_progression(),
    )
    sampling = keras_seqext.ScheduledSampling("inverse_sigmoid", k=args.k)
    results = {}
    for name, probability, callbacks in [
        ("teacher forcing", 1.0, []),
        ("free running", 0.0, []),
        ("scheduled sampling", 1.0, [sampling]),
    ]:
        results[name] = train(probability, callbacks, data, args)
        _, scores, seconds = results[name]
        print(
            f"{name}: {scores[-1]['free']:.1%} free-running exact match, "
            f"{seconds:.1f} s",
            flush=True,
        )

    print(
        f"\nExact match on all {len(data[2])} progressions mod {MODULUS} "
        f"({GIVEN_TERMS} terms given, {NEXT_TERMS} to continue) after "
        f"{args.epochs} epochs\nof {args.samples} samples, batch "
        f"{args.batch_size}, backend {keras.backend.backend()}:\n"
    )
    rows = []
    for name, (epsilons, scores, seconds) in results.items():
        epsilon = f"{epsilons[-1]:.2f}"
        if name == "scheduled sampling":
            epsilon = f"{sampling.schedule(0):.2f} to {epsilon}"
        rows.append(
            [
                name,
                epsilon,
                f"{scores[-1]['free']:.1%}",
                f"{scores[-1]['free per step']:.1%}",
                f"{scores[-1]['fed']:.1%}",
                f"{seconds:.1f}",
            ]
        )
    header = [
        "training",
        "epsilon",
        "free-running",
        "free, per step",
        "fed the truth",
        "train s",
    ]
    print(markdown_table(header, rows))

    print(
        "\nAfter each epoch: free-running exact match (fed the truth in "
        "brackets), and\nepsilon = k / (k + exp(i / k)) at the epoch's last "
        f"batch i, k = {args.k:g}:\n"
    )
    rows = []
    for epoch in range(args.epochs):
        row = [str(epoch + 1)]
        for _, scores, _ in results.values():
            row.append(
                f"{scores[epoch]['free']:.1%} ({scores[epoch]['fed']:.1%})"
            )
        row.append(f"{results['scheduled sampling'][0][epoch]:.3f}")
        rows.append(row)
    print(markdown_table(["epoch", *results, "epsilon"], rows))
    if args.plot:
        plot(results, args.plot)


if __name__ == "__main__":
    main()
