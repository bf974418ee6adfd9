"""Exploding gradients, watched with `GradientNormMonitor` and cured by
clipping.

The course's lesson on exploding gradients trains a small regression MLP
with stochastic gradient descent and momentum on targets left unscaled (in
the hundreds). The first errors are large, so are the gradients, and the
updates they make grow the errors further: within a few epochs the loss is
inf or nan. Its advice is to watch the gradient norm and to clip it
(`clipnorm`), which Keras users could not do, since callbacks never see the
gradients. Here the same model is trained twice from the same weights,
without clipping and with `clipnorm=1.0`, with a `GradientNormMonitor`
logging the norm of every step (before any clipping) into the history. The
unclipped run uses `on_nonfinite="stop"`, so training ends at the first
step whose gradient is not finite instead of going on with nan weights.

It prints the gradient norm of the first steps of each run side by side,
then per epoch the loss and the mean gradient norm, and saves a plot of the
norms of every step when matplotlib is installed
(`pip install "keras-seqext[plot]"`).

Run it with any backend:

    KERAS_BACKEND=jax python examples/exploding_gradients.py [--epochs 20]
"""

import argparse
import math

import keras
import numpy as np

from keras_seqext import GradientNormMonitor

SAMPLES = 1000
FEATURES = 20
INFORMATIVE = 10
SEED = 1
FIRST_STEPS = 12  # the steps printed one by one


def regression_data(rng):
    """A linear target of 10 of 20 standard normal features, with weights in
    [0, 100) and a little noise: targets with a spread of a few hundred."""
    x = rng.normal(size=(SAMPLES, FEATURES)).astype("float32")
    weights = np.zeros(FEATURES, "float32")
    weights[:INFORMATIVE] = rng.uniform(0, 100, INFORMATIVE)
    y = x @ weights + rng.normal(scale=0.1, size=SAMPLES)
    return x, y.astype("float32")[:, None]


def train(x, y, weights, epochs, **clipping):
    """The lesson's MLP from `weights`; returns its history, and the
    gradient norm of every step."""
    model = keras.Sequential(
        [
            keras.Input((FEATURES,)),
            keras.layers.Dense(25, activation="relu", name="hidden"),
            keras.layers.Dense(1, name="output"),
        ]
    )
    model.set_weights(weights)
    model.compile(
        optimizer=keras.optimizers.SGD(0.01, momentum=0.9, **clipping),
        loss="mse",
    )
    step_norms = []
    # After the monitor, which puts the step's norm into the batch logs.
    recorder = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: step_norms.append(
            logs["grad_norm"]
        )
    )
    history = model.fit(
        x,
        y,
        batch_size=32,
        epochs=epochs,
        verbose=0,
        shuffle=False,  # the same batches for both runs
        callbacks=[GradientNormMonitor(on_nonfinite="stop"), recorder],
    )
    return history.history, step_norms


def print_steps(step_norms, steps):
    names = list(step_norms)
    print("step | " + " | ".join(f"{name:>13}" for name in names))
    for step in range(steps):
        cells = [
            f"{norms[step]:13.4g}"
            if step < len(norms)
            else f"{'(stopped)':>13}"
            for norms in step_norms.values()
        ]
        print(f"{step:4d} | " + " | ".join(cells))
    print()


def print_epochs(runs, epochs):
    names = list(runs)
    print(
        "epoch | "
        + " | ".join(f"{name:>27}" for name in names)
        + "\n      | "
        + " | ".join(f"{'loss':>13} {'grad norm':>13}" for _ in names)
    )
    for epoch in range(epochs):
        cells = []
        for history in runs.values():
            if epoch < len(history["loss"]):
                cells.append(
                    f"{history['loss'][epoch]:13.4g} "
                    f"{history['grad_norm'][epoch]:13.4g}"
                )
            else:
                cells.append(f"{'(stopped)':>27}")
        print(f"{epoch + 1:5d} | " + " | ".join(cells))


def save_plot(step_norms, path):
    try:
        import matplotlib
    except ImportError:
        print("matplotlib is not installed: no plot (keras-seqext[plot]).")
        return
    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(figsize=(7, 4))
    for name, norms in step_norms.items():
        # Non-finite norms are left out of the log scale.
        norms = [n if math.isfinite(n) else np.nan for n in norms]
        axes.plot(norms, label=name)
    axes.set_yscale("log")
    axes.set_xlabel("step")
    axes.set_ylabel("gradient norm (before clipping)")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path)
    print(f"Plot saved to {path}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--plot", default="exploding_gradients.png")
    arguments = parser.parse_args()
    keras.utils.set_random_seed(SEED)
    x, y = regression_data(np.random.default_rng(SEED))
    weights = keras.Sequential(
        [
            keras.Input((FEATURES,)),
            keras.layers.Dense(25, activation="relu"),
            keras.layers.Dense(1),
        ]
    ).get_weights()
    print(
        f"backend {keras.backend.backend()}; targets: mean {y.mean():.1f}, "
        f"standard deviation {y.std():.1f}\n"
    )
    runs, step_norms = {}, {}
    for name, clipping in (
        ("no clipping", {}),
        ("clipnorm=1.0", {"clipnorm": 1.0}),
    ):
        runs[name], step_norms[name] = train(
            x, y, weights, arguments.epochs, **clipping
        )
    print_steps(step_norms, FIRST_STEPS)
    print_epochs(runs, arguments.epochs)
    save_plot(step_norms, arguments.plot)


if __name__ == "__main__":
    main()
