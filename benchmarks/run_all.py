"""Runs the AttentionDecoder benchmarks and writes `docs/benchmarks.md`.

What: `make bench` runs this script, which runs three benchmarks in turn,
each runner in a process of its own with the same samples, epochs and
learning rate:

1. Speed: at batch sizes 16, 128 and 512, the PyTorch reference
   (`torch_reference.py`) and `attention_decoder.py` on TensorFlow, JAX
   and PyTorch. One table: training samples/s and its ratio to the
   reference's, inference samples/s, peak resident memory, held-out exact
   match, and the share of the GEMM bound. Written to the page's `speed`
   section.
2. Length sweep: training time per sample of the same runners at
   T_in = T_out = 5, 20, 80 and 320 (batch 16), and the exponent `k` of
   the fit `log(time per sample) = a + k log(T)` (1 means linear growth).
   Written to the `length-sweep` section.
3. Step breakdown: `step_breakdown.py` with its defaults, which writes the
   `step-breakdown` section.

The tables are printed as well. Sections other than these, and the page's
hand-written text, are left as they are (see `_page.py`).

Why: to show how keras-seqext compares with the same model written by
hand in eager PyTorch, how close it comes to what the machine can do, and
how its cost grows with the sequence length, in figures that a command
wrote rather than a person.

How to run, from the repository root, on an otherwise idle machine: two
threads of PyTorch in particular slow down many times over when another
process takes a core. A full run takes about twenty minutes on a 2-core
machine, most of it at batch 512.

    make bench                                      # all three, the page
    make bench BENCH_ARGS=--quick                   # a few minutes
    .venv/bin/python benchmarks/run_all.py --repeats 3   # steadier ratios
    .venv/bin/python benchmarks/run_all.py --skip-speed --skip-breakdown

`--quick` runs the speed table at batch 16 for 3 epochs and a length sweep
at two short lengths, no step breakdown, and writes both tables to the
page's `quick` section alone: a check that the benchmarks run, not figures
to compare. Other options narrow a full run; the sections it writes record
its command.

The GEMM bound is the samples/s the model would reach if all its matmul
work (`training_flop_per_sample` in `_copy_task.py`) ran at the best
float32 2048 x 2048 matmul speed measured on this machine: NumPy's here,
and each runner's inside its own run. Peak RSS is each process's own
`ru_maxrss`, read after inference.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from _page import PAGE
from _page import markdown_table
from _page import record
from _page import shown
from _page import write_section
from _processes import available_cores
from _processes import progress
from _processes import run_json

HERE = Path(__file__).parent
BENCHMARK = HERE / "attention_decoder.py"
REFERENCE = HERE / "torch_reference.py"
STEP_BREAKDOWN = HERE / "step_breakdown.py"
BACKENDS = ("tensorflow", "jax", "torch")
REFERENCE_RUNNER = "reference"
REFERENCE_NAME = "reference (torch eager)"
BATCH_SIZES = (16, 128, 512)
# Epochs per batch size, the same for every runner. Larger batches make
# fewer updates per epoch, so they get more epochs: enough for every runner
# to pass 99% exact match with some margin.
EPOCHS_BY_BATCH_SIZE = {16: 10, 128: 40, 512: 200}
SWEEP_LENGTHS = (5, 20, 80, 320)
# Small, because training keeps every decoder step's (batch, T, units)
# attention activations for the backward pass: T^2 * units floats per
# sample, gigabytes for a batch of T = 320.
SWEEP_BATCH_SIZE = 16
SWEEP_EPOCHS = 2  # the first is the warm-up, so one is timed
# Each sweep epoch holds about this many sample steps (2000 samples at
# T = 5), in whole batches, so that every length gets a similar budget; but
# at least this many batches, so that an epoch is more than one batch.
SWEEP_SAMPLE_STEPS = 10_000
SWEEP_MIN_BATCHES = 4
# `--quick`: enough to run every table's code once, in a few minutes.
QUICK = {
    "batch_sizes": [16],
    "epochs": 3,
    "sweep_lengths": [5, 10],
    "sweep_sample_steps": 5_000,
}
MATMUL_SIZE = 2048
MATMUL_REPEATS = 5


def numpy_matmul_flops_per_second(size=MATMUL_SIZE):
    """The best float32 matmul speed of NumPy's BLAS, in FLOP/s."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), "float32")
    b = rng.standard_normal((size, size), "float32")
    best = float("inf")
    for _ in range(MATMUL_REPEATS + 1):  # the first call warms up
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def run_runner(runner, flags, args):
    """One run of the reference or of `attention_decoder.py` on a backend,
    with `flags` (which both scripts take) and what `args` ask of that
    runner: the backend's options and, on TensorFlow, its threads per
    operation; the reference's threads, as many as the backends use."""
    if runner == REFERENCE_RUNNER:
        command = [sys.executable, str(REFERENCE), "--json-only", *flags]
        return run_json(command + ["--threads", str(available_cores())])
    env = dict(os.environ, KERAS_BACKEND=runner)
    if runner == "tensorflow" and args.tf_intra_op_threads:
        env["TF_NUM_INTRAOP_THREADS"] = str(args.tf_intra_op_threads)
    command = [sys.executable, str(BENCHMARK), "--json-only", *flags]
    return run_json(command + backend_flags(runner, args), env)


def backend_flags(backend, args):
    """The options of `attention_decoder.py` that `args` ask of `backend`."""
    # Keras' torch trainer raises for more than one step per execution.
    steps_per_execution = 1 if backend == "torch" else args.steps_per_execution
    flags = ["--jit-compile", args.jit_compile]
    flags += ["--steps-per-execution", str(steps_per_execution)]
    return flags + (["--unroll"] if args.unroll else [])


def sweep_train_samples(length, batch_size, sample_steps):
    """Whole batches holding about `sample_steps` sample steps."""
    batches = round(sample_steps / (length * batch_size))
    return batch_size * max(SWEEP_MIN_BATCHES, batches)


def seconds_per_sample(run):
    """Timed training seconds per sample of a run (unrounded, unlike its
    samples/s, which matters for the slow long sequences)."""
    timed_samples = (run["epochs"] - 1) * run["train_samples"]
    return run["timed_seconds"] / timed_samples


def log_log_slope(lengths, values):
    """The exponent `k` of the least-squares fit `values ~ lengths^k`."""
    slope, _ = np.polyfit(np.log(lengths), np.log(values), 1)
    return slope


def runner_name(run):
    """The runner, and what was asked of a backend beyond the defaults."""
    if run["backend"] == REFERENCE_RUNNER:
        return REFERENCE_NAME
    flags = [
        flag
        for flag, on in [("jit", run["jit_compile"]), ("unroll", run["unroll"])]
        if on
    ]
    if run["steps_per_execution"] > 1:
        flags.append(f"{run['steps_per_execution']} steps per execution")
    if run["intra_op_threads"]:
        threads = run["intra_op_threads"]
        flags.append(f"{threads} intra-op thread{'s' if threads > 1 else ''}")
    return run["backend"] + (f" ({', '.join(flags)})" if flags else "")


def per_sample_rate(run):
    """The tutorials' one-`predict`-per-sample loop (Keras runs only)."""
    rate = run.get("per_sample_predict_samples_per_second")
    return "-" if rate is None else f"{rate:,.0f}"


def ratio_cell(ratios):
    """The median of the rounds' ratios, and their range if several."""
    cell = f"{np.median(ratios):.2f}"
    if min(ratios) != max(ratios):
        cell += f" ({min(ratios):.2f}-{max(ratios):.2f})"
    return cell


def speed_table(results, bound_flops):
    """One row per batch size and runner, the reference first."""
    rows = []
    for batch_size, runs in results:
        for run in runs:
            rate = run["train_samples_per_second"]
            flop = run["flop_per_training_sample"]
            rows.append(
                [
                    runner_name(run),
                    str(batch_size),
                    str(run["epochs"]),
                    f"{rate:,.0f}",
                    ratio_cell(run["ratios_to_reference"]),
                    f"{run['predict_samples_per_second']:,.0f}",
                    per_sample_rate(run),
                    f"{run['peak_rss_mb']:,.0f}",
                    f"{run['accuracy']:.1%}",
                    f"{rate * flop / bound_flops:.1%}",
                    f"{run['warmup_epoch_seconds']:.1f}",
                ]
            )
    header = [
        "runner",
        "batch",
        "epochs",
        "train samples/s",
        "ratio to reference",
        "inference samples/s",
        "one predict per sample, samples/s",
        "peak RSS MB",
        "accuracy",
        "share of GEMM bound",
        "warm-up epoch s",
    ]
    return markdown_table(header, rows)


def sweep_table(lengths, sweep):
    """Milliseconds per training sample by length, and the fitted exponent;
    the FLOP count's own exponent comes first, for comparison."""
    flops = [run["flop_per_training_sample"] for run in next(iter(sweep))]
    rows = [
        ["MFLOP per training sample"]
        + [f"{flop / 1e6:,.1f}" for flop in flops]
        + [f"{log_log_slope(lengths, flops):.2f}"]
    ]
    for runs in sweep:
        ms_per_sample = [1e3 * seconds_per_sample(run) for run in runs]
        rows.append(
            [f"{runner_name(runs[0])} ms per sample"]
            + [f"{ms:.3f}" for ms in ms_per_sample]
            + [f"{log_log_slope(lengths, ms_per_sample):.2f}"]
        )
    header = ["T_in = T_out"] + [str(length) for length in lengths]
    return markdown_table(header + ["exponent k"], rows)


def positive(value):
    """An argparse type: an integer of at least 1."""
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(
            f"must be at least 1. Received: {value}"
        )
    return number


def at_least_two(value):
    """An argparse type for epochs: the first is the warm-up, not timed."""
    number = int(value)
    if number < 2:
        raise argparse.ArgumentTypeError(
            "must be at least 2: the first epoch is the warm-up and is "
            f"not timed. Received: {value}"
        )
    return number


def add_runner_arguments(parser, batch_sizes):
    """The options of both drivers, this and `step_breakdown.py`: which
    backends, at which batch sizes, and the page to write."""
    parser.add_argument(
        "--backends", nargs="+", choices=BACKENDS, default=list(BACKENDS)
    )
    parser.add_argument(
        "--batch-sizes",
        nargs="+",
        type=positive,
        default=list(batch_sizes),
    )
    parser.add_argument(
        "--page",
        type=Path,
        default=PAGE,
        help="the markdown page whose sections to write. Defaults to "
        "docs/benchmarks.md",
    )


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_runner_arguments(parser, BATCH_SIZES)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="batch 16, 3 epochs, a sweep of lengths 5 and 10, no step "
        "breakdown; written to the page's `quick` section only",
    )
    parser.add_argument(
        "--epochs",
        type=at_least_two,
        help="epochs at every batch size, for every runner. Defaults to "
        f"{EPOCHS_BY_BATCH_SIZE} by batch size",
    )
    parser.add_argument(
        "--jit-compile",
        choices=["auto", "true", "false"],
        default="auto",
        help="passed to every backend run",
    )
    parser.add_argument(
        "--unroll",
        action="store_true",
        help="passed to every backend run: unrolled encoder and decoder",
    )
    parser.add_argument(
        "--steps-per-execution",
        type=positive,
        default=1,
        help="`model.compile(steps_per_execution=...)` on TensorFlow and "
        "JAX; torch runs 1, the only value Keras allows there",
    )
    parser.add_argument(
        "--tf-intra-op-threads",
        type=positive,
        help="threads each TensorFlow operation runs on "
        "(`TF_NUM_INTRAOP_THREADS`); TensorFlow's default is one per core",
    )
    parser.add_argument(
        "--repeats",
        type=positive,
        default=1,
        help="rounds of the runners in turn at each batch size, and of the "
        "sweep; the tables show the median run and the median ratio",
    )
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-sweep", action="store_true")
    parser.add_argument(
        "--skip-breakdown",
        action="store_true",
        help="do not run step_breakdown.py after the sweep",
    )
    parser.add_argument("--sweep-lengths", nargs="+", type=positive)
    parser.add_argument(
        "--sweep-batch-size", type=positive, default=SWEEP_BATCH_SIZE
    )
    parser.add_argument(
        "--sweep-epochs",
        type=at_least_two,
        default=SWEEP_EPOCHS,
        help="epochs per sweep run, the first being the warm-up",
    )
    args = parser.parse_args()
    args.sweep_sample_steps = SWEEP_SAMPLE_STEPS
    if args.quick:
        if args.batch_sizes == list(BATCH_SIZES):
            args.batch_sizes = QUICK["batch_sizes"]
        args.epochs = args.epochs or QUICK["epochs"]
        args.sweep_lengths = args.sweep_lengths or QUICK["sweep_lengths"]
        args.sweep_sample_steps = QUICK["sweep_sample_steps"]
        args.skip_breakdown = True
    args.sweep_lengths = args.sweep_lengths or list(SWEEP_LENGTHS)
    if args.epochs is None:
        unknown = set(args.batch_sizes) - set(EPOCHS_BY_BATCH_SIZE)
        if unknown:
            parser.error(
                f"no default epochs for batch sizes {sorted(unknown)}; "
                "pass --epochs"
            )
    if args.skip_speed and args.skip_sweep and args.skip_breakdown:
        parser.error("the --skip-* options leave nothing to run")
    if not args.skip_sweep and len(set(args.sweep_lengths)) < 2:
        parser.error(
            "--sweep-lengths needs at least 2 lengths to fit an exponent. "
            f"Received: {args.sweep_lengths}"
        )
    return args


def run_speed(args):
    """Every runner at each batch size, `--repeats` rounds of them in turn:
    a list of `(batch_size, runs)`, the reference's run first, each the
    median one of its rounds (see `median_run`)."""
    results = []
    for batch_size in args.batch_sizes:
        epochs = args.epochs or EPOCHS_BY_BATCH_SIZE[batch_size]
        flags = ["--batch-size", str(batch_size), "--epochs", str(epochs)]
        runs = {runner: [] for runner in [REFERENCE_RUNNER, *args.backends]}
        for _ in range(args.repeats):
            for runner, rounds in runs.items():
                rounds.append(run_runner(runner, flags, args))
                progress(
                    f"{runner}, batch {batch_size}: {json.dumps(rounds[-1])}"
                )
        references = runs[REFERENCE_RUNNER]
        results.append(
            (
                batch_size,
                [median_run(rounds, references) for rounds in runs.values()],
            )
        )
    return results


def median_run(runs, references):
    """The run of median training speed among `runs` (one per round), with
    `"ratios_to_reference"`: each round's speed over that round's
    reference's.

    Rounds, not one run each, because a machine's speed can drift by a
    large fraction over minutes: a ratio of two runs minutes apart can be
    off by as much, where the median of paired ratios holds.
    """
    ratios = [
        run["train_samples_per_second"] / reference["train_samples_per_second"]
        for run, reference in zip(runs, references)
    ]
    middle = middle_run(runs, key=lambda run: run["train_samples_per_second"])
    return {**middle, "ratios_to_reference": ratios}


def middle_run(runs, key):
    """The run whose `key` is the median of the runs' (the lower of the two
    middle ones for an even count)."""
    return sorted(runs, key=key)[(len(runs) - 1) // 2]


def run_sweep(args):
    """Training only, at each length: a list, per runner (the reference
    first), of its result at each length.

    `--repeats` rounds; in each, every length in turn and at each length
    every runner in turn, so that the runners compared at one length share
    the machine's state of the moment. Each result is the runner's median
    run at that length.
    """
    runners = [REFERENCE_RUNNER, *args.backends]
    runs = {
        (runner, length): []
        for runner in runners
        for length in args.sweep_lengths
    }
    for _ in range(args.repeats):
        for length in args.sweep_lengths:
            samples = sweep_train_samples(
                length, args.sweep_batch_size, args.sweep_sample_steps
            )
            flags = [
                "--length",
                str(length),
                "--train-samples",
                str(samples),
                "--batch-size",
                str(args.sweep_batch_size),
                "--epochs",
                str(args.sweep_epochs),
                "--train-only",
            ]
            for runner in runners:
                result = run_runner(runner, flags, args)
                runs[runner, length].append(result)
                progress(f"{runner}, T={length}: {json.dumps(result)}")
    return [
        [
            middle_run(runs[runner, length], key=seconds_per_sample)
            for length in args.sweep_lengths
        ]
        for runner in runners
    ]


def speed_text(args, results, numpy_flops):
    """The speed table, the GEMM bound it is measured against (the fastest
    matmul seen: NumPy's or any run's) and the fastest backend's share of
    it, as markdown."""
    matmul_flops = {"NumPy": numpy_flops}
    for run in (run for _, runs in results for run in runs):
        name = "torch" if run["backend"] == REFERENCE_RUNNER else run["backend"]
        matmul_flops[name] = max(
            matmul_flops.get(name, 0), run["matmul_gflops"] * 1e9
        )
    bound_source = max(matmul_flops, key=matmul_flops.get)
    bound_flops = matmul_flops[bound_source]
    flop = results[0][1][0]["flop_per_training_sample"]
    lines = [
        speed_table(results, bound_flops),
        "",
        f"GEMM bound: {bound_flops / 1e9:.1f} GFLOP/s (the best "
        f"{MATMUL_SIZE}x{MATMUL_SIZE} float32 matmul, {bound_source}'s) / "
        f"{flop / 1e6:.2f} MFLOP per training sample = "
        f"{bound_flops / flop:,.0f} samples/s. Training samples/s are "
        "timed after the first (warm-up) epoch, on "
        f"{available_cores()} cores for every runner.",
    ]
    if args.repeats > 1:
        lines.append(
            f"Each row is the run of median training speed among "
            f"{args.repeats}, the runners taking turns; the ratio to the "
            "reference is the median of each turn's (their range in "
            "brackets)."
        )
    batch_size, runs = max(results, key=lambda result: result[0])
    backends = [run for run in runs if run["backend"] != REFERENCE_RUNNER]
    if backends:
        fastest = max(backends, key=lambda run: run["train_samples_per_second"])
        share = fastest["train_samples_per_second"] * flop / bound_flops
        lines.append(
            f"Fastest backend at batch {batch_size}: {runner_name(fastest)}, "
            f"{share:.1%} of the GEMM bound."
        )
    return "\n".join(lines)


def sweep_text(args, sweep):
    """The length sweep's table and how to read it, as markdown."""
    lines = [
        f"Training only, batch {args.sweep_batch_size}, "
        f"{args.sweep_epochs - 1} timed epoch(s) after a warm-up epoch, "
        "each of about the same number of sample steps.",
        "",
        sweep_table(args.sweep_lengths, sweep),
        "",
        "Exponent k: the least-squares slope of log(time per sample) "
        "against log(T); k <= 1 is at most linear growth.",
    ]
    if args.repeats > 1:
        lines.append(
            f"Each time is the median of {args.repeats} runs, the runners "
            "taking turns at each length."
        )
    return "\n".join(lines)


def run_step_breakdown(args):
    """`step_breakdown.py` with its own defaults, writing its section."""
    command = [sys.executable, str(STEP_BREAKDOWN)]
    if args.page != PAGE:
        command += ["--page", str(args.page)]
    if args.backends != list(BACKENDS):
        command += ["--backends", *args.backends]
    progress(f"Step breakdown: {shown(STEP_BREAKDOWN)} {' '.join(command[2:])}")
    subprocess.run(command, check=True)


def main():
    args = parse_args()
    quick_note = (
        "A quick run (`--quick`): a check that the benchmarks run, with "
        "too few epochs and samples for figures to compare; `make bench` "
        "measures the sections above."
    )
    parts = []
    if not args.skip_speed:
        numpy_flops = numpy_matmul_flops_per_second()
        progress(f"NumPy float32 matmul: {numpy_flops / 1e9:.1f} GFLOP/s")
        text = speed_text(args, run_speed(args), numpy_flops)
        parts.append(("Training and inference", text))
        print(f"\n## Training and inference\n\n{text}", flush=True)
        if not args.quick:
            write_section(
                "speed",
                f"{record(__file__)}\n\n{text}",
                args.page,
                title="Speed",
            )
    if not args.skip_sweep:
        text = sweep_text(args, run_sweep(args))
        parts.append(("Length sweep", text))
        print(f"\n## Length sweep\n\n{text}", flush=True)
        if not args.quick:
            write_section(
                "length-sweep",
                f"{record(__file__)}\n\n{text}",
                args.page,
                title="Sequence length",
            )
    if args.quick:
        body = "\n\n".join(f"### {title}\n\n{text}" for title, text in parts)
        write_section(
            "quick",
            f"{record(__file__, quick_note)}\n\n{body}",
            args.page,
            title="Quick run",
        )
    if not args.skip_breakdown:
        run_step_breakdown(args)


if __name__ == "__main__":
    main()
