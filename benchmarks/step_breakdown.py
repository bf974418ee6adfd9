"""Where a training step's time goes, on each backend and in the reference.

What: at batch sizes 16 and 128, times one training step (milliseconds per
batch) of four models, each trained the same way on TensorFlow, JAX and
PyTorch through Keras' `fit`, and in eager PyTorch with the modules and
training loop of the reference (`torch_reference.py`):

- `whole`: the tutorial's model, the LSTM(150) encoder then the attention
  decoder, on the copy-first task;
- `floor`: one dense layer from the inputs to the 50 classes, so the
  training loop, the loss and Adam with next to no model;
- `encoder`: the LSTM(150) alone, its 150 states taken as the logits of
  150 classes (the targets' classes are all below 50);
- `decoder`: the attention decoder alone, reading a fixed random memory.

The encoder's and the decoder's shares are their model's step less the
floor's. The floor and the two shares add up to about the whole step; the
table shows the sum beside it. The whole step is a little more, since only
there does the decoder's backward pass go on into the encoder.

Why: where a backend trains slower than the reference, the same four
models in both show which part of the step makes the difference: the
training loop, the encoder, or our decoder.

How to run, from the repository root, on an otherwise idle machine (a few
minutes; `make bench` runs it after the speed table and the length sweep):

    .venv/bin/python benchmarks/step_breakdown.py
    .venv/bin/python benchmarks/step_breakdown.py --backends torch \\
        --batch-sizes 16 --rounds 3                          # quick check

It writes its table to the `step-breakdown` section of
`docs/benchmarks.md` (`--page` for another file) and prints it.

Each runner (the reference, or one Keras backend) runs in its own process.
There each model trains one warm-up epoch (tracing and compiling), then
`--rounds` rounds of one epoch of each model in turn, so that the machine's
drift over minutes touches the four alike. A model's time is its median
round's, per batch. The Keras backends run with `fit`'s defaults: XLA on
JAX, a `tf.function` without XLA on a CPU-only TensorFlow, eager on torch.
"""

import argparse
import functools
import json
import os
import statistics
import sys
import time

import numpy as np
from _copy_task import ADAM_EPSILON
from _copy_task import CARDINALITY
from _copy_task import LEARNING_RATE
from _copy_task import TUTORIAL_LENGTH
from _copy_task import UNITS
from _copy_task import copy_task
from _page import markdown_table
from _page import record
from _page import write_section
from _processes import available_cores
from _processes import progress
from _processes import run_json
from run_all import REFERENCE_NAME
from run_all import REFERENCE_RUNNER
from run_all import add_runner_arguments
from run_all import positive

BATCH_SIZES = (16, 128)
# Per epoch, at every batch size: enough that `fit`'s own start-up (some
# milliseconds per call) is small beside the epoch.
BATCHES_PER_EPOCH = 100
ROUNDS = 5
MODELS = ("whole", "floor", "encoder", "decoder")


def median_ms_per_step(epochs, batches, rounds):
    """Times `epochs`, `{model: function training one epoch}`.

    Runs each function once to warm up, then `rounds` rounds of each in
    turn; returns `{model: milliseconds per batch}` of its median round.
    """
    for train_one_epoch in epochs.values():
        train_one_epoch()
    seconds = {model: [] for model in epochs}
    for _ in range(rounds):
        for model, train_one_epoch in epochs.items():
            start = time.perf_counter()
            train_one_epoch()
            seconds[model].append(time.perf_counter() - start)
    return {
        model: 1e3 * statistics.median(times) / batches
        for model, times in seconds.items()
    }


def random_memory(n_samples, seed):
    """What the decoder alone reads: `(n_samples, T, UNITS)` float32."""
    return np.random.default_rng(seed).standard_normal(
        (n_samples, TUTORIAL_LENGTH, UNITS), "float32"
    )


def keras_epochs(batch_size, batches, seed):
    """The four models on the current Keras backend, compiled with Adam:
    `{model: function training one epoch}`."""
    # Imported here, in the backend's own process: the driver and the
    # reference's process never load Keras.
    import attention_decoder as benchmark
    import keras

    import keras_seqext

    benchmark.seed_weights_and_shuffling(seed)
    x, y = benchmark.copy_task_one_hot(
        batch_size * batches, TUTORIAL_LENGTH, seed
    )
    memory = random_memory(len(x), seed)
    # The targets' one-hot classes, widened to the encoder's 150 states.
    y_as_states = np.pad(y, [(0, 0), (0, 0), (0, UNITS - CARDINALITY)])
    layers = keras.layers
    cases = {
        "whole": (benchmark.seed_model(TUTORIAL_LENGTH), x, y),
        "floor": (
            keras.Sequential(
                [
                    keras.Input((TUTORIAL_LENGTH, CARDINALITY)),
                    layers.Dense(CARDINALITY, activation="softmax"),
                ]
            ),
            x,
            y,
        ),
        "encoder": (
            keras.Sequential(
                [
                    keras.Input((TUTORIAL_LENGTH, CARDINALITY)),
                    layers.LSTM(UNITS, return_sequences=True),
                ]
            ),
            x,
            y_as_states,
        ),
        "decoder": (
            keras.Sequential(
                [
                    keras.Input((TUTORIAL_LENGTH, UNITS)),
                    keras_seqext.AttentionDecoder(UNITS, CARDINALITY),
                ]
            ),
            memory,
            y,
        ),
    }
    epochs = {}
    for name, (model, features, targets) in cases.items():
        model.compile(
            optimizer=keras.optimizers.Adam(
                learning_rate=LEARNING_RATE, epsilon=ADAM_EPSILON
            ),
            loss=keras.losses.CategoricalCrossentropy(
                # The LSTM's states are logits; the others end in softmax.
                from_logits=name == "encoder"
            ),
        )
        epochs[name] = functools.partial(
            model.fit, features, targets, batch_size=batch_size, verbose=0
        )
    return epochs


def reference_epochs(batch_size, batches, seed):
    """The four models in the reference's PyTorch, trained by its loop:
    `{model: function training one epoch}`."""
    import torch
    import torch_reference as reference

    # As run_all.py runs the reference: on as many threads as the backends.
    torch.set_num_threads(available_cores())
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    x, classes = (
        torch.from_numpy(array)
        for array in copy_task(batch_size * batches, TUTORIAL_LENGTH, seed)
    )
    memory = torch.from_numpy(random_memory(len(x), seed))

    class LSTMStates(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = reference.keras_like_lstm(CARDINALITY, UNITS)

        def forward(self, inputs):
            return self.lstm(inputs)[0]

    cases = {
        "whole": (reference.ReferenceModel(), x),
        "floor": (torch.nn.Linear(CARDINALITY, CARDINALITY), x),
        "encoder": (LSTMStates(), x),
        "decoder": (
            reference.AttentionDecoder(UNITS, UNITS, CARDINALITY),
            memory,
        ),
    }
    return {
        name: functools.partial(
            reference.train_epoch,
            model,
            reference.adam(model),
            features,
            classes,
            batch_size,
            generator,
        )
        for name, (model, features) in cases.items()
    }


def run_runner(runner, args, batch_size):
    """`runner` (the reference or a backend) at `batch_size`, in its own
    process: `{model: milliseconds per batch}`."""
    command = [
        sys.executable,
        __file__,
        "--runner",
        runner,
        "--batch-sizes",
        str(batch_size),
        "--batches",
        str(args.batches),
        "--rounds",
        str(args.rounds),
        "--seed",
        str(args.seed),
    ]
    env = None
    if runner != REFERENCE_RUNNER:
        env = dict(os.environ, KERAS_BACKEND=runner)
    return run_json(command, env)


def breakdown_table(results):
    """One row per batch size and runner: the four times, and the sum of
    the floor and the two shares."""
    rows = []
    for batch_size, runner, ms in results:
        encoder, decoder = (
            ms[name] - ms["floor"] for name in ("encoder", "decoder")
        )
        rows.append(
            [
                REFERENCE_NAME if runner == REFERENCE_RUNNER else runner,
                str(batch_size),
                f"{ms['whole']:.2f}",
                f"{ms['floor']:.2f}",
                f"{encoder:.2f}",
                f"{decoder:.2f}",
                f"{ms['floor'] + encoder + decoder:.2f}",
            ]
        )
    header = [
        "runner",
        "batch",
        "whole step ms",
        "floor ms",
        "encoder share ms",
        "decoder share ms",
        "floor + shares ms",
    ]
    return markdown_table(header, rows)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_runner_arguments(parser, BATCH_SIZES)
    parser.add_argument(
        "--batches",
        type=positive,
        default=BATCHES_PER_EPOCH,
        help="batches per epoch",
    )
    parser.add_argument(
        "--rounds",
        type=positive,
        default=ROUNDS,
        help="timed epochs of each model, in turn, after the warm-up",
    )
    parser.add_argument("--seed", type=int, default=0)
    # Internal: one runner at one batch size, printing its JSON.
    parser.add_argument("--runner", help=argparse.SUPPRESS)
    return parser.parse_args()


def main():
    args = parse_args()
    if args.runner:
        (batch_size,) = args.batch_sizes
        if args.runner == REFERENCE_RUNNER:
            epochs = reference_epochs(batch_size, args.batches, args.seed)
        else:
            epochs = keras_epochs(batch_size, args.batches, args.seed)
        print(json.dumps(median_ms_per_step(epochs, args.batches, args.rounds)))
        return
    results = []
    for batch_size in args.batch_sizes:
        for runner in [REFERENCE_RUNNER, *args.backends]:
            results.append(
                (batch_size, runner, run_runner(runner, args, batch_size))
            )
            progress(f"{runner}, batch {batch_size}: {results[-1][2]}")
    text = "\n".join(
        [
            f"Milliseconds per training step, on {available_cores()} cores.",
            "",
            breakdown_table(results),
            "",
            f"Each time is the median of {args.rounds} epoch(s) of "
            f"{args.batches} batches, per batch, the four models taking "
            "turns. A share is its model's step less the floor's.",
        ]
    )
    print(f"\n## Where the time goes\n\n{text}")
    write_section(
        "step-breakdown",
        f"{record(__file__)}\n\n{text}",
        args.page,
        title="Where the time goes",
    )


if __name__ == "__main__":
    main()
