"""Runs the AttentionDecoder benchmark on every backend and the peer; prints
the tables.

What: for each batch size, runs the PyTorch peer (`torch_attention_peer.py`
in the shared `peers/` folder) and `attention_decoder.py` on TensorFlow, JAX
and PyTorch, each in its own process with the same samples, epochs and
learning rate, and prints one markdown table: training samples/s and its
ratio to the peer's, inference samples/s, peak resident memory, held-out
exact match, and the share of the GEMM bound. Then a length sweep
(T_in = T_out = 5, 20, 80, 320) times training on the peer (through
`peer_at_length.py`, since the peer script trains at length 5 only) and on
each backend, and fits `log(time per sample) = a + k log(T)`, printing
the exponent `k` (1 means linear growth).

Why: issue 8 asks how keras-seqext compares with a careful hand-written
PyTorch model, how close it comes to what the machine can do, and how its
cost grows with the sequence length.

How to run, from the repository root (a full run takes about half an hour
on the 2-core benchmark machine, most of it at batch 512; nothing else
should be running, since two-thread PyTorch in particular slows down many
times over when another process takes a core):

    .venv/bin/python benchmarks/run_all.py
    .venv/bin/python benchmarks/run_all.py --backends jax \\
        --batch-sizes 128 --epochs 2 --skip-sweep            # quick check
    .venv/bin/python benchmarks/run_all.py --repeats 3       # steadier ratios
    .venv/bin/python benchmarks/run_all.py --skip-speed      # the sweep alone

The GEMM bound is the samples/s the model would reach if all its matmul
work (`training_flop_per_sample` in `attention_decoder.py`, 10.4 MFLOP per
sample) ran at the best float32 2048 x 2048 matmul speed measured on this
machine: NumPy's here, and each backend's inside its own run. Peak RSS is
the kernel's `ru_maxrss` of each process: the benchmark reads its own after
inference, and `os.wait4` reads the peer's when it ends.
"""

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BENCHMARK = Path(__file__).with_name("attention_decoder.py")
PEER_AT_LENGTH = Path(__file__).with_name("peer_at_length.py")
DEFAULT_PEER = Path("/work/shared/peers/torch_attention_peer.py")
BACKENDS = ("tensorflow", "jax", "torch")
PEER_NAME = "peer (torch eager)"
BATCH_SIZES = (16, 128, 512)
# Epochs per batch size, the same for the peer and the backends. Batch 16
# keeps the peer's default, 10 epochs (3130 updates). Larger batches make
# fewer updates per epoch and need more epochs to pass 99% exact match with
# some margin: on JAX, batch 128 reached 99.0% after 30 epochs and 99.3%
# after 40; batch 512 98.6% after 80, 99.0% after 120 and 99.6% after 200.
EPOCHS_BY_BATCH_SIZE = {16: 10, 128: 40, 512: 200}
SWEEP_LENGTHS = (5, 20, 80, 320)
# Small, because training keeps every decoder step's (batch, T, units)
# attention activations for the backward pass: T^2 * units floats per
# sample, 2-3 GB at batch 16 and T = 320 (about 17 GB at batch 128 on JAX).
SWEEP_BATCH_SIZE = 16
SWEEP_EPOCHS = 2  # the first is the warm-up, so one is timed
# Each sweep epoch holds about this many sample steps (2000 samples at
# T = 5), in whole batches, so that every length gets a similar budget; but
# at least this many batches, so that an epoch is more than one batch.
SWEEP_SAMPLE_STEPS = 10_000
SWEEP_MIN_BATCHES = 4
MATMUL_SIZE = 2048
MATMUL_REPEATS = 5
TAIL_LINES = 20  # of a failed run's stderr


def cores():
    """The CPU cores this process may use; the backends use all of them."""
    return len(os.sched_getaffinity(0))


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


def run_json(command, env=None):
    """Runs `command`; returns its last stdout line, parsed as JSON, and
    the process's peak RSS in MB.

    The child's stderr goes to a temporary file, shown only if it fails.
    """
    with tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=stderr, env=env
        )
        stdout = process.stdout.read().decode()
        process.stdout.close()
        # wait4, unlike Popen.wait, returns the child's own resource usage.
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            stderr.seek(0)
            tail = stderr.read().decode().splitlines()[-TAIL_LINES:]
            raise RuntimeError(
                f"{' '.join(map(str, command))} exited with "
                f"{process.returncode}:\n" + "\n".join(tail)
            )
    result = json.loads(stdout.strip().splitlines()[-1])
    return result, usage.ru_maxrss / 1024  # Linux reports KiB


def run_backend(backend, flags, args):
    """One run of `attention_decoder.py` on `backend` with `flags`, and with
    what `args` ask of that backend: its options (`backend_flags`) and, on
    TensorFlow, the threads per operation.

    Its JSON has the peak RSS it read itself, before measuring its matmul.
    """
    env = dict(os.environ, KERAS_BACKEND=backend)
    if backend == "tensorflow" and args.tf_intra_op_threads:
        env["TF_NUM_INTRAOP_THREADS"] = str(args.tf_intra_op_threads)
    command = [sys.executable, str(BENCHMARK), "--json-only", *flags]
    command += backend_flags(backend, args)
    result, _ = run_json(command, env)
    return result


def load_peer(path):
    """The peer script as a module, to use its models and training loop."""
    spec = importlib.util.spec_from_file_location("torch_attention_peer", path)
    peer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(peer)
    return peer


def run_peer(peer, batch_size, epochs):
    """One run of the PyTorch peer, on as many threads as the backends use;
    its peak RSS is added to its JSON as `"peak_rss_mb"`."""
    command = [
        sys.executable,
        str(peer),
        "--batch-size",
        str(batch_size),
        "--epochs",
        str(epochs),
        "--threads",
        str(cores()),
        "--json-only",
    ]
    result, peak_rss_mb = run_json(command)
    return {**result, "peak_rss_mb": peak_rss_mb}


def sweep_train_samples(length, batch_size):
    """Whole batches holding about `SWEEP_SAMPLE_STEPS` sample steps."""
    batches = round(SWEEP_SAMPLE_STEPS / (length * batch_size))
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


def progress(message):
    print(message, file=sys.stderr, flush=True)


def markdown_table(header, rows):
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def runner_name(run):
    """The backend, and what was asked of it beyond the defaults."""
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
    """The tutorials' one-`predict`-per-sample loop (not run by the peer)."""
    rate = run.get("per_sample_predict_samples_per_second")
    return "-" if rate is None else f"{rate:,.0f}"


def ratio_cell(ratios):
    """The median of the rounds' ratios, and their range if several."""
    cell = f"{np.median(ratios):.2f}"
    if min(ratios) != max(ratios):
        cell += f" ({min(ratios):.2f}-{max(ratios):.2f})"
    return cell


def speed_table(results, bound_flops):
    """The main table: one row per batch size and runner, peer first."""
    rows = []
    for batch_size, peer, runs in results:
        flop = runs[0]["flop_per_training_sample"]
        named_runs = [(PEER_NAME, peer)] + [
            (runner_name(run), run) for run in runs
        ]
        for name, run in named_runs:
            rate = run["train_samples_per_second"]
            warmup = run.get("warmup_epoch_seconds")
            rows.append(
                [
                    name,
                    str(batch_size),
                    str(run["epochs"]),
                    f"{rate:,.0f}",
                    ratio_cell(run["ratios_to_peer"]),
                    f"{run['predict_samples_per_second']:,.0f}",
                    per_sample_rate(run),
                    f"{run['peak_rss_mb']:,.0f}",
                    f"{run['accuracy']:.1%}",
                    f"{rate * flop / bound_flops:.1%}",
                    "-" if warmup is None else f"{warmup:.1f}",
                ]
            )
    header = [
        "backend",
        "batch",
        "epochs",
        "train samples/s",
        "ratio to peer",
        "inference samples/s",
        "one predict per sample, samples/s",
        "peak RSS MB",
        "accuracy",
        "share of GEMM bound",
        "warm-up epoch s",
    ]
    return markdown_table(header, rows)


def sweep_table(lengths, sweep, flop_by_length):
    """Milliseconds per training sample by length, and the fitted exponent;
    the FLOP count's own exponent comes first, for comparison."""
    flops = [flop_by_length[length] for length in lengths]
    rows = [
        ["MFLOP per training sample"]
        + [f"{flop / 1e6:,.1f}" for flop in flops]
        + [f"{log_log_slope(lengths, flops):.2f}"]
    ]
    for runner, runs in sweep.items():
        name = runner if runner == PEER_NAME else runner_name(runs[0])
        ms_per_sample = [1e3 * seconds_per_sample(run) for run in runs]
        rows.append(
            [f"{name} ms per sample"]
            + [f"{ms:.3f}" for ms in ms_per_sample]
            + [f"{log_log_slope(lengths, ms_per_sample):.2f}"]
        )
    header = ["T_in = T_out"] + [str(length) for length in lengths]
    return markdown_table(header + ["exponent k"], rows)


def add_runner_arguments(parser, batch_sizes):
    """The options of both drivers, this and `step_breakdown.py`: which
    backends, at which batch sizes, against which peer script."""
    parser.add_argument(
        "--backends", nargs="+", choices=BACKENDS, default=list(BACKENDS)
    )
    parser.add_argument(
        "--batch-sizes", nargs="+", type=int, default=list(batch_sizes)
    )
    parser.add_argument("--peer", type=Path, default=DEFAULT_PEER)


def check_peer(parser, args):
    if not args.peer.is_file():
        parser.error(f"--peer: no such file: {args.peer}")


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_runner_arguments(parser, BATCH_SIZES)
    parser.add_argument(
        "--epochs",
        type=int,
        help="epochs at every batch size, for the peer and the backends "
        f"(at least 2). Defaults to {EPOCHS_BY_BATCH_SIZE} by batch size",
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
        type=int,
        default=1,
        help="`model.compile(steps_per_execution=...)` on TensorFlow and "
        "JAX; torch runs 1, the only value Keras allows there",
    )
    parser.add_argument(
        "--tf-intra-op-threads",
        type=int,
        help="threads each TensorFlow operation runs on "
        "(`TF_NUM_INTRAOP_THREADS`); TensorFlow's default is one per core",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="rounds of the peer and the backends in turn at each batch "
        "size, and of the sweep; the tables show the median run and the "
        "median ratio",
    )
    parser.add_argument(
        "--skip-speed",
        action="store_true",
        help="run the length sweep alone",
    )
    parser.add_argument("--skip-sweep", action="store_true")
    parser.add_argument(
        "--sweep-lengths", nargs="+", type=int, default=list(SWEEP_LENGTHS)
    )
    parser.add_argument(
        "--sweep-batch-size", type=int, default=SWEEP_BATCH_SIZE
    )
    parser.add_argument(
        "--sweep-epochs",
        type=int,
        default=SWEEP_EPOCHS,
        help="epochs per sweep run, the first being the warm-up",
    )
    args = parser.parse_args()
    if args.epochs is None:
        unknown = set(args.batch_sizes) - set(EPOCHS_BY_BATCH_SIZE)
        if unknown:
            parser.error(
                f"no default epochs for batch sizes {sorted(unknown)}; "
                "pass --epochs"
            )
    for flag, epochs in [
        ("--epochs", args.epochs),
        ("--sweep-epochs", args.sweep_epochs),
    ]:
        if epochs is not None and epochs < 2:
            parser.error(
                f"{flag} must be at least 2: the first epoch is the warm-up "
                f"and is not timed. Received: {flag} {epochs}"
            )
    if args.skip_speed and args.skip_sweep:
        parser.error("--skip-speed and --skip-sweep leave nothing to run")
    if args.steps_per_execution < 1:
        parser.error(
            "--steps-per-execution must be at least 1. Received: "
            f"{args.steps_per_execution}"
        )
    if args.tf_intra_op_threads is not None and args.tf_intra_op_threads < 1:
        parser.error(
            "--tf-intra-op-threads must be at least 1. Received: "
            f"{args.tf_intra_op_threads}"
        )
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1. Received: {args.repeats}")
    if not args.skip_sweep and len(set(args.sweep_lengths)) < 2:
        parser.error(
            "--sweep-lengths needs at least 2 lengths to fit an exponent. "
            f"Received: {args.sweep_lengths}"
        )
    check_peer(parser, args)
    return args


def backend_flags(backend, args):
    """The options of `attention_decoder.py` that `args` ask of `backend`."""
    # Keras' torch trainer raises for more than one step per execution.
    steps_per_execution = 1 if backend == "torch" else args.steps_per_execution
    flags = ["--jit-compile", args.jit_compile]
    flags += ["--steps-per-execution", str(steps_per_execution)]
    return flags + (["--unroll"] if args.unroll else [])


def run_speed(args):
    """The peer and each backend at each batch size, `--repeats` rounds of
    them in turn: a list of `(batch_size, peer_result, backend_results)`,
    each result the median one of its runs (see `median_run`)."""
    results = []
    for batch_size in args.batch_sizes:
        epochs = args.epochs or EPOCHS_BY_BATCH_SIZE[batch_size]
        flags = ["--batch-size", str(batch_size), "--epochs", str(epochs)]
        peers, backend_runs = [], {backend: [] for backend in args.backends}
        for _ in range(args.repeats):
            peers.append(run_peer(args.peer, batch_size, epochs))
            progress(f"peer, batch {batch_size}: {json.dumps(peers[-1])}")
            for backend, runs in backend_runs.items():
                runs.append(run_backend(backend, flags, args))
                progress(
                    f"{backend}, batch {batch_size}: {json.dumps(runs[-1])}"
                )
        results.append(
            (
                batch_size,
                median_run(peers, peers),
                [median_run(runs, peers) for runs in backend_runs.values()],
            )
        )
    return results


def median_run(runs, peers):
    """The run of median training speed among `runs` (one per round), with
    `"ratios_to_peer"`: each round's speed over that round's peer's.

    Rounds, not one run each, because this machine's speed drifts by up to
    a third over minutes: a ratio of two runs minutes apart can be off by
    as much, where the median of paired ratios holds.
    """
    ratios = [
        run["train_samples_per_second"] / peer["train_samples_per_second"]
        for run, peer in zip(runs, peers)
    ]
    middle = middle_run(runs, key=lambda run: run["train_samples_per_second"])
    return {**middle, "ratios_to_peer": ratios}


def middle_run(runs, key):
    """The run whose `key` is the median of the runs' (the lower of the two
    middle ones for an even count)."""
    return sorted(runs, key=key)[(len(runs) - 1) // 2]


def run_sweep(args):
    """Training only, at each length: `{runner: [result per length]}`, the
    peer first, then the backends.

    `--repeats` rounds; in each, every length in turn and at each length
    every runner in turn, so that the runners compared at one length share
    the machine's state of the moment. Each result is the runner's median
    run at that length.
    """
    runners = [PEER_NAME, *args.backends]
    runs = {
        (runner, length): []
        for runner in runners
        for length in args.sweep_lengths
    }
    for _ in range(args.repeats):
        for length in args.sweep_lengths:
            for runner in runners:
                result = run_at_length(runner, length, args)
                runs[runner, length].append(result)
                progress(f"{runner}, T={length}: {json.dumps(result)}")
    return {
        runner: [
            middle_run(runs[runner, length], key=seconds_per_sample)
            for length in args.sweep_lengths
        ]
        for runner in runners
    }


def run_at_length(runner, length, args):
    """One timed training run of the peer or a backend at `length`."""
    samples = sweep_train_samples(length, args.sweep_batch_size)
    flags = [
        "--length",
        str(length),
        "--train-samples",
        str(samples),
        "--batch-size",
        str(args.sweep_batch_size),
        "--epochs",
        str(args.sweep_epochs),
    ]
    if runner != PEER_NAME:
        return run_backend(runner, [*flags, "--train-only"], args)
    command = [sys.executable, str(PEER_AT_LENGTH), *flags]
    command += ["--threads", str(cores()), "--peer", str(args.peer)]
    result, _ = run_json(command)
    return result


def main():
    args = parse_args()
    if not args.skip_speed:
        numpy_flops = numpy_matmul_flops_per_second()
        progress(f"NumPy float32 matmul: {numpy_flops / 1e9:.1f} GFLOP/s")
        results = run_speed(args)
    sweep = {} if args.skip_sweep else run_sweep(args)
    backend_sweep = {
        runner: runs for runner, runs in sweep.items() if runner != PEER_NAME
    }
    if not args.skip_speed:
        print_speed(args, results, backend_sweep, numpy_flops)
    if sweep:
        flop_by_length = {
            run["length"]: run["flop_per_training_sample"]
            for runs in backend_sweep.values()
            for run in runs
        }
        print(
            f"\n## Length sweep: training, batch {args.sweep_batch_size}, "
            f"timed epochs: {args.sweep_epochs - 1}\n"
        )
        print(sweep_table(args.sweep_lengths, sweep, flop_by_length))
        print(
            "\nexponent k: least-squares slope of log(time per sample) "
            "against log(T); k <= 1 is at most linear growth."
        )
        if args.repeats > 1:
            print(
                f"Each time is the median of {args.repeats} runs, the "
                "runners taking turns at each length."
            )


def print_speed(args, results, backend_sweep, numpy_flops):
    """The speed table, the GEMM bound it is measured against (the fastest
    matmul seen: NumPy's or any backend run's) and the fastest backend's
    share of it."""
    matmul_flops = {"NumPy": numpy_flops}
    backend_runs = [run for _, _, runs in results for run in runs]
    backend_runs += [run for runs in backend_sweep.values() for run in runs]
    for run in backend_runs:
        matmul_flops[run["backend"]] = max(
            matmul_flops.get(run["backend"], 0), run["matmul_gflops"] * 1e9
        )
    bound_source = max(matmul_flops, key=matmul_flops.get)
    bound_flops = matmul_flops[bound_source]

    print(f"\n## Training and inference, {cores()} cores\n")
    print(speed_table(results, bound_flops))
    flop = results[0][2][0]["flop_per_training_sample"]
    print(
        f"\nGEMM bound: {bound_flops / 1e9:.1f} GFLOP/s (the best "
        f"{MATMUL_SIZE}x{MATMUL_SIZE} float32 matmul, {bound_source}'s) / "
        f"{flop / 1e6:.2f} MFLOP per training sample = "
        f"{bound_flops / flop:,.0f} samples/s. Training samples/s are "
        "timed after the first (warm-up) epoch for the backends, over all "
        "epochs for the peer (eager, nothing to compile)."
    )
    if args.repeats > 1:
        print(
            f"Each row is the run of median training speed among "
            f"{args.repeats}, the peer and the backends taking turns; the "
            "ratio to the peer is the median of each turn's (their range "
            "in brackets)."
        )
    batch_size, _, runs = max(results, key=lambda result: result[0])
    fastest = max(runs, key=lambda run: run["train_samples_per_second"])
    print(
        f"Fastest backend at batch {batch_size}: {fastest['backend']}, "
        f"{fastest['train_samples_per_second'] * flop / bound_flops:.1%} of "
        "the GEMM bound."
    )


if __name__ == "__main__":
    main()
