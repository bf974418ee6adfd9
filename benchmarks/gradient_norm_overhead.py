"""What `GradientNormMonitor` costs: training steps/s with and without it.

The model is the attention tutorial's (an LSTM(150) encoder read by
`AttentionDecoder(150, 50)`, on `copy_first`: 5 integers in [0, 50),
one-hot), trained with Adam at batch size 16 on 4992 samples, 312 steps an
epoch (no partial batch, whose new shape would trace the step again).
Small steps are the hard case for the monitor: its cost per step
(reducing the gradients to norms, and waiting for the step's logs) is
fixed, so the smaller the step, the larger its share.

For each backend, in its own process, the script trains four models from
the same weights: without callbacks; with a callback that does nothing at
the end of each step (the monitor's baseline: any such callback makes
Keras wait for each step's logs before it starts the next step, which JAX
would otherwise overlap); with the monitor logging every step; and logging
every 10 steps. One epoch per `fit` call, taking turns epoch by epoch so
that a slow spell of the machine hits all four alike. Each call traces its
train step again (the monitor hooks the optimizer for one `fit` and
unhooks it at its end), so an epoch is timed from the end of its 10th step
to the end of `fit`. Steps/s is the median over `--epochs` epochs, after
one warm-up epoch each. Overhead is the median over those epochs of each
epoch's relative loss of steps/s against the model without callbacks in
the same turn: paired so, a slow spell of the machine that spans a turn
moves the overhead less than it moves the steps/s.

Run it (all three backends, one table, which it prints and writes to the
`gradient-norm-overhead` section of `docs/benchmarks.md`; `--page` for
another file; a few minutes with `--epochs 1`):

    .venv/bin/python benchmarks/gradient_norm_overhead.py [--epochs 5]
"""

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

from _page import PAGE
from _page import markdown_table
from _page import record
from _page import write_section
from _processes import progress
from _processes import run_json
from run_all import positive

BACKENDS = ("tensorflow", "jax", "torch")
CONFIGURATIONS = {
    "no callback": None,
    "a callback per step": 0,
    "monitor, every step": 1,
    "monitor, every 10 steps": 10,
}
SAMPLES = 4992
UNTIMED_STEPS = 10  # tracing and compilation happen in the first
BATCH_SIZE = 16
UNITS = 150


def measure(epochs):
    """Steps/s per configuration on the backend of this process."""
    import keras

    import keras_seqext

    x, y = keras_seqext.datasets.copy_first(SAMPLES, seed=1)
    keras.utils.set_random_seed(0)
    models, monitors = {}, {}
    for name, log_every in CONFIGURATIONS.items():
        model = keras.Sequential(
            [
                keras.Input(x.shape[1:]),
                keras.layers.LSTM(UNITS, return_sequences=True),
                keras_seqext.AttentionDecoder(UNITS, y.shape[-1]),
            ]
        )
        if models:
            model.set_weights(next(iter(models.values())).get_weights())
        model.compile(optimizer="adam", loss="categorical_crossentropy")
        models[name] = model
        monitors[name] = _callbacks(keras, keras_seqext, log_every)

    timed_steps = SAMPLES // BATCH_SIZE - UNTIMED_STEPS
    steps_per_second = {name: [] for name in CONFIGURATIONS}
    for epoch in range(epochs + 1):  # epoch 0 warms up
        for name, model in models.items():
            start = []
            timer = keras.callbacks.LambdaCallback(
                on_train_batch_end=lambda batch, logs: (
                    start.append(time.perf_counter())
                    if batch == UNTIMED_STEPS - 1
                    else None
                )
            )
            model.fit(
                x,
                y,
                batch_size=BATCH_SIZE,
                epochs=1,
                verbose=0,
                callbacks=[*monitors[name], timer],
            )
            # `fit` returns once the epoch's logs are computed: in sync.
            seconds = time.perf_counter() - start[0]
            if epoch > 0:
                steps_per_second[name].append(timed_steps / seconds)
    baseline = steps_per_second["no callback"]
    return {
        name: {
            "steps_per_second": statistics.median(rates),
            "overheads": [
                1 - rate / base for rate, base in zip(rates, baseline)
            ],
        }
        for name, rates in steps_per_second.items()
    }


def _callbacks(keras, keras_seqext, log_every):
    if log_every is None:
        return []
    if log_every == 0:
        # Any callback with a batch-end method makes Keras wait for each
        # step's logs before it starts the next step, monitor or not.
        return [
            keras.callbacks.LambdaCallback(
                on_train_batch_end=lambda batch, logs: None
            )
        ]
    return [keras_seqext.GradientNormMonitor(log_every_n_steps=log_every)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=positive, default=5)
    parser.add_argument(
        "--backends", nargs="+", choices=BACKENDS, default=list(BACKENDS)
    )
    parser.add_argument(
        "--page",
        type=Path,
        default=PAGE,
        help="the markdown page whose section to write. Defaults to "
        "docs/benchmarks.md",
    )
    parser.add_argument(
        "--measure", action="store_true", help=argparse.SUPPRESS
    )
    arguments = parser.parse_args()
    if arguments.measure:
        print(json.dumps(measure(arguments.epochs)))
        return

    compared = list(CONFIGURATIONS)[1:]
    header = ["backend", *CONFIGURATIONS]
    header += [f"overhead, {name}" for name in compared]
    rows = []
    for backend in arguments.backends:
        measured = run_json(
            [
                sys.executable,
                __file__,
                "--measure",
                "--epochs",
                str(arguments.epochs),
            ],
            env={**os.environ, "KERAS_BACKEND": backend},
        )
        rows.append(
            [backend]
            + [
                f"{measured[name]['steps_per_second']:.1f}"
                for name in CONFIGURATIONS
            ]
            + [_overhead_cell(measured[name]["overheads"]) for name in compared]
        )
        progress(f"{backend}: {json.dumps(measured)}")
    text = "\n".join(
        [
            markdown_table(header, rows),
            "",
            f"Training steps/s at batch size {BATCH_SIZE}, the median of "
            f"{arguments.epochs} epoch(s) after one warm-up epoch each; "
            "overhead, the median of the epochs' losses of steps/s against "
            "no callback in the same turn (their range in brackets).",
        ]
    )
    print(text)
    write_section(
        "gradient-norm-overhead",
        f"{record(__file__)}\n\n{text}",
        arguments.page,
        title="Cost of GradientNormMonitor",
    )


def _overhead_cell(overheads):
    """The median of the epochs' overheads, and their range if several."""
    cell = f"{statistics.median(overheads):+.1%}"
    if min(overheads) != max(overheads):
        cell += f" ({min(overheads):+.1%} to {max(overheads):+.1%})"
    return cell


if __name__ == "__main__":
    main()
