"""Where a training step's time goes, on each backend and in the peer.

What: at batch sizes 16 and 128, times one training step (milliseconds per
batch) of four models, each trained the same way on TensorFlow, JAX and
PyTorch through Keras' `fit`, and in the PyTorch peer
(`torch_attention_peer.py` in the shared `peers/` folder) with the peer's
own modules and training loop:

- `whole`: the tutorial's model, the LSTM(150) encoder then the attention
  decoder, on the copy-first task;
- `floor`: one dense layer from the inputs to the 50 classes, so the
  training loop, the loss and Adam with next to no model;
- `encoder`: the LSTM(150) alone, its 150 states taken as the logits of
  150 classes (the targets' classes are all below 50);
- `decoder`: the attention decoder alone, reading a fixed random memory.

The encoder's and the decoder's shares are their model's step less the
floor's. The floor and the two shares add up to about the whole step; the
table prints the sum beside it.

Why: issue 8 asks, where a backend trains slower than the peer, by how much
and why. The same four models in both show which part of the step makes
the difference: the training loop, the encoder, or our decoder.

How to run, from the repository root, on an otherwise idle machine (about
four minutes):

    .venv/bin/python benchmarks/step_breakdown.py
    .venv/bin/python benchmarks/step_breakdown.py --backends torch \\
        --batch-sizes 16 --rounds 3                          # quick check

Each runner (the peer, or one Keras backend) runs in its own process. There
each model trains one warm-up epoch (tracing and compiling), then
`--rounds` rounds of one epoch of each model in turn, so that the machine's
drift over minutes touches the four alike. A model's time is its median
round's, per batch. The Keras backends run with `fit`'s defaults: XLA on
JAX, a `tf.function` without XLA on a CPU-only TensorFlow, eager on torch.
Each epoch of the peer is one call of its training loop, which makes a new
Adam optimizer each time, a small cost beside 100 batches.
"""

import argparse
import functools
import json
import os
import statistics
import sys
import time

import numpy as np
from run_all import PEER_NAME
from run_all import add_runner_arguments
from run_all import check_peer
from run_all import cores
from run_all import load_peer
from run_all import markdown_table
from run_all import progress
from run_all import run_json

BATCH_SIZES = (16, 128)
# Per epoch, at every batch size: enough that `fit`'s own start-up (some
# milliseconds per call) is small beside the epoch.
BATCHES_PER_EPOCH = 100
ROUNDS = 5


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


def keras_epochs(batch_size, batches, seed):
    """The four models on the current Keras backend, compiled with Adam:
    `{model: function training one epoch}`."""
    # Imported here, in the backend's own process: the driver and the
    # peer's process never load Keras.
    import attention_decoder as benchmark
    import keras

    import keras_seqext

    length, classes, units = (
        benchmark.TUTORIAL_LENGTH,
        benchmark.CARDINALITY,
        benchmark.UNITS,
    )
    benchmark.seed_weights_and_shuffling(seed)
    x, y = benchmark.copy_first(batch_size * batches, length, seed)
    memory = np.random.default_rng(seed).standard_normal(
        (len(x), length, units), "float32"
    )
    # The targets' one-hot classes, widened to the encoder's 150 states.
    y_as_states = np.pad(y, [(0, 0), (0, 0), (0, units - classes)])
    layers = keras.layers
    cases = {
        "whole": (benchmark.seed_model(length), x, y),
        "floor": (
            keras.Sequential(
                [
                    keras.Input((length, classes)),
                    layers.Dense(classes, activation="softmax"),
                ]
            ),
            x,
            y,
        ),
        "encoder": (
            keras.Sequential(
                [
                    keras.Input((length, classes)),
                    layers.LSTM(units, return_sequences=True),
                ]
            ),
            x,
            y_as_states,
        ),
        "decoder": (
            keras.Sequential(
                [
                    keras.Input((length, units)),
                    keras_seqext.AttentionDecoder(units, classes),
                ]
            ),
            memory,
            y,
        ),
    }
    epochs = {}
    for name, (model, inputs, targets) in cases.items():
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate=1e-3),
            loss=keras.losses.CategoricalCrossentropy(
                # The LSTM's states are logits; the others end in softmax.
                from_logits=name == "encoder"
            ),
        )
        epochs[name] = functools.partial(
            model.fit, inputs, targets, batch_size=batch_size, verbose=0
        )
    return epochs


def peer_epochs(peer_path, batch_size, batches, seed):
    """The four models in the peer's PyTorch, trained by its own loop:
    `{model: function training one epoch}`."""
    import torch

    peer = load_peer(peer_path)
    # As run_all.py runs the peer: on as many threads as the backends use.
    torch.set_num_threads(cores())
    torch.manual_seed(seed)
    length, classes, units = peer.STEPS_IN, peer.CARDINALITY, peer.UNITS
    x, y = peer.copy_first(batch_size * batches, seed)
    memory = torch.randn(len(x), length, units)

    class LSTMStates(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = torch.nn.LSTM(classes, units, batch_first=True)

        def forward(self, inputs):
            return self.lstm(inputs)[0]

    cases = {
        "whole": (peer.AttentionModel(), x),
        "floor": (torch.nn.Linear(classes, classes), x),
        "encoder": (LSTMStates(), x),
        "decoder": (peer.AttentionDecoder(units, units, classes), memory),
    }
    return {
        name: functools.partial(
            peer.train,
            model,
            inputs,
            y,
            batch_size=batch_size,
            epochs=1,
            seed=seed,
            verbose=False,
        )
        for name, (model, inputs) in cases.items()
    }


def run_runner(runner, args, batch_size):
    """`runner` ("peer" or a backend) at `batch_size`, in its own process:
    `{model: milliseconds per batch}`."""
    command = [
        sys.executable,
        __file__,
        "--runner",
        runner,
        "--peer",
        str(args.peer),
        "--batch-sizes",
        str(batch_size),
        "--batches",
        str(args.batches),
        "--rounds",
        str(args.rounds),
        "--seed",
        str(args.seed),
    ]
    env = None if runner == "peer" else dict(os.environ, KERAS_BACKEND=runner)
    result, _ = run_json(command, env)
    return result


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
                PEER_NAME if runner == "peer" else runner,
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
        type=int,
        default=BATCHES_PER_EPOCH,
        help="batches per epoch",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=ROUNDS,
        help="timed epochs of each model, in turn, after the warm-up",
    )
    parser.add_argument("--seed", type=int, default=0)
    # Internal: one runner at one batch size, printing its JSON.
    parser.add_argument("--runner", help=argparse.SUPPRESS)
    args = parser.parse_args()
    for flag, value in [("--batches", args.batches), ("--rounds", args.rounds)]:
        if value < 1:
            parser.error(f"{flag} must be at least 1. Received: {value}")
    check_peer(parser, args)
    return args


def main():
    args = parse_args()
    if args.runner:
        (batch_size,) = args.batch_sizes
        if args.runner == "peer":
            epochs = peer_epochs(args.peer, batch_size, args.batches, args.seed)
        else:
            epochs = keras_epochs(batch_size, args.batches, args.seed)
        print(json.dumps(median_ms_per_step(epochs, args.batches, args.rounds)))
        return
    results = []
    for batch_size in args.batch_sizes:
        for runner in ["peer", *args.backends]:
            results.append(
                (batch_size, runner, run_runner(runner, args, batch_size))
            )
            progress(f"{runner}, batch {batch_size}: {results[-1][2]}")
    print(f"\n## Milliseconds per training step, {cores()} cores\n")
    print(breakdown_table(results))
    print(
        f"\nEach time is the median of {args.rounds} epochs of "
        f"{args.batches} batches, per batch. The shares are the encoder's "
        "and the decoder's model step less the floor's."
    )


if __name__ == "__main__":
    main()
