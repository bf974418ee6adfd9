"""Runs the token-mode translation benchmark and writes its tables.

What: a vocabulary of 8000 token ids on each side, sentences of about 20
words (`keras_seqext.datasets.synthetic_translation`), batch 64: the
PyTorch reference (`torch_translation_reference.py`) and
`translation_keras.py` on TensorFlow, JAX and PyTorch, each in a process
of its own, train on the same sentences for the same epochs under the same
schedule, then decode the held-out sentences freely. One table: training
tokens/s and its ratio to the reference's, the first (warm-up) epoch,
inference tokens/s, held-out token accuracy and its difference from the
reference's, peak resident memory and parameters. A second table counts
the decoder's parameters at vocabularies of 1k, 8k and 32k, built by Keras
and by the formula of `AttentionDecoderCell`'s docstring. Both go to the
page's `translation` section (`--quick`: `translation-quick`).

Why: to show that the token mode serves a real vocabulary, with
parameters linear in it, at a speed and accuracy compared with the same
model written by hand in eager PyTorch.

How to run, from the repository root, on an otherwise idle machine (a full
run trains four models, the longest part of all the benchmarks):

    make bench-translation                          # the full run
    make bench-translation BENCH_ARGS=--quick       # a few minutes, V=1000
    .venv/bin/python benchmarks/translation.py --runners reference jax

`--quick` trains on a vocabulary of 1000 for 2 epochs on a few thousand
short sentences: a check that every runner runs, not figures to compare.
"""

import argparse
import json
import os
import sys
from pathlib import Path

from _page import markdown_table
from _page import record
from _page import write_section
from _processes import available_cores
from _processes import progress
from _processes import run_json
from _translation_task import FULL
from _translation_task import QUICK
from _translation_task import training_flop_per_sentence
from run_all import MATMUL_SIZE
from run_all import numpy_matmul_flops_per_second

HERE = Path(__file__).parent
KERAS_RUNNER = HERE / "translation_keras.py"
REFERENCE = HERE / "torch_translation_reference.py"
RUNNERS = ("reference", "jax", "tensorflow", "torch")
REFERENCE_NAME = "reference (torch eager)"
# The task is drawn once, on any backend: the sentences are NumPy's.
TASK_BACKEND = "jax"


def keras_env(backend):
    return dict(os.environ, KERAS_BACKEND=backend)


def write_task(path, settings):
    """Draws the sentences for `settings` into `path`, in a Keras process."""
    command = [sys.executable, str(KERAS_RUNNER), "--write-task", str(path)]
    command += ["--settings", json.dumps(settings)]
    run_json(command, keras_env(TASK_BACKEND))


def run_runner(runner, task_path):
    """One training and decoding run; its JSON fields."""
    if runner == "reference":
        command = [sys.executable, str(REFERENCE), "--task", str(task_path)]
        command += ["--threads", str(available_cores()), "--json-only"]
        return run_json(command)
    command = [sys.executable, str(KERAS_RUNNER), "--task", str(task_path)]
    return run_json(command + ["--json-only"], keras_env(runner))


def parameter_counts():
    command = [sys.executable, str(KERAS_RUNNER), "--parameter-counts"]
    return run_json(command, keras_env(TASK_BACKEND))


def speed_table(runs, bound_tokens_per_second):
    """One row per runner; the ratios are to the reference, if it ran."""
    reference = next((r for r in runs if r["backend"] == "reference"), None)
    rows = []
    for run in runs:
        rate = run["train_tokens_per_second"]
        if reference is None:
            ratio = accuracy_gap = "-"
        else:
            ratio = f"{rate / reference['train_tokens_per_second']:.2f}"
            gap = 100 * (run["accuracy"] - reference["accuracy"])
            accuracy_gap = f"{gap:+.1f}"
        name = REFERENCE_NAME if run["backend"] == "reference" else None
        rows.append(
            [
                name or run["backend"],
                f"{rate:,.0f}",
                ratio,
                f"{rate / bound_tokens_per_second:.1%}",
                f"{run['warmup_epoch_seconds']:.1f}",
                f"{run['predict_tokens_per_second']:,.0f}",
                f"{100 * run['accuracy']:.1f}",
                accuracy_gap,
                f"{run['peak_rss_mb']:,.0f}",
                f"{run['params']:,}",
            ]
        )
    header = [
        "runner",
        "train tokens/s",
        "ratio",
        "share of GEMM bound",
        "warm-up epoch (s)",
        "inference tokens/s",
        "token accuracy (%)",
        "vs reference (pt)",
        "peak RSS (MB)",
        "parameters",
    ]
    return markdown_table(header, rows)


def parameter_table(counts):
    rows = [
        [
            f"{count['vocabulary']:,}",
            f"{count['built']:,}",
            f"{count['formula']:,}",
        ]
        for count in counts
    ]
    header = ["vocabulary", "decoder parameters (built)", "by the formula"]
    return markdown_table(header, rows)


def settings_line(settings, runs):
    train = runs[0]
    return (
        f"Vocabulary {settings['vocabulary']:,}; "
        f"{train['train_samples']:,} training sentences "
        f"({train['train_tokens']:,} target tokens) of "
        f"{settings['min_length']}-{settings['max_length']} words, Zipf "
        f"exponent {settings['zipf_exponent']}; {settings['epochs']} epochs "
        f"of batch {train['batch_size']}, Adam at "
        f"{settings['learning_rate']}, warmed up over "
        f"{settings['warmup_steps']} steps, then under a cosine decay; "
        f"{settings['test_samples']:,} held-out sentences decoded freely."
    )


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a small vocabulary and task, written to `translation-quick`",
    )
    parser.add_argument(
        "--runners",
        nargs="+",
        choices=RUNNERS,
        default=list(RUNNERS),
        help="which runners to train, in this order (default: all, the "
        "reference first, whose figures the others are compared with)",
    )
    parser.add_argument(
        "--epochs",
        type=int,
        help="overrides the task's epochs (the section records it)",
    )
    parser.add_argument(
        "--no-write",
        action="store_true",
        help="print the tables without writing the page",
    )
    return parser.parse_args()


def section_body(settings, runs, pending, counts, bound_flops):
    """The section's markdown: the settings, the runners' table with its
    GEMM bound, the runners still to run (if any) and the parameters."""
    flop = training_flop_per_sentence(settings)
    tokens_per_sentence = runs[0]["train_tokens"] / runs[0]["train_samples"]
    bound = bound_flops / flop * tokens_per_sentence
    parts = [
        settings_line(settings, runs),
        speed_table(runs, bound),
        f"GEMM bound: {bound_flops / 1e9:.1f} GFLOP/s (NumPy's best "
        f"{MATMUL_SIZE}x{MATMUL_SIZE} float32 matmul) / "
        f"{flop / 1e9:.2f} GFLOP per training sentence (matmuls only, at "
        "the padded lengths, `training_flop_per_sentence`) = "
        f"{bound:,.0f} training tokens/s.",
    ]
    if pending:
        parts.append(
            "Written before the run ended; still to run: "
            + ", ".join(pending)
            + "."
        )
    parts += [
        "The decoder alone, `AttentionDecoder(256, V, embedding_dim=256)` "
        "on a memory of 256 features:",
        parameter_table(counts),
    ]
    return "\n\n".join(parts)


def main():
    args = parse_args()
    settings = dict(QUICK if args.quick else FULL)
    if args.epochs:
        settings["epochs"] = args.epochs
    build = HERE.parent / "build"
    build.mkdir(exist_ok=True)
    task_path = build / (
        "translation-task-quick.npz" if args.quick else "translation-task.npz"
    )
    progress(f"drawing the task: {settings}")
    write_task(task_path, settings)
    counts = parameter_counts()
    bound_flops = numpy_matmul_flops_per_second()
    note = (
        "A quick run (`--quick`): a check that every runner runs, not "
        "figures to compare."
        if args.quick
        else None
    )
    section = "translation-quick" if args.quick else "translation"
    runs = []
    for done, runner in enumerate(args.runners, 1):
        progress(f"training: {runner}")
        runs.append(run_runner(runner, task_path))
        progress(json.dumps(runs[-1]))
        body = section_body(
            settings, runs, args.runners[done:], counts, bound_flops
        )
        # After each runner, so that a run stopped early (a full one takes
        # over an hour) leaves what it measured, marked as such.
        if not args.no_write:
            write_section(section, f"{record(__file__, note)}\n\n{body}")
    print(body)


if __name__ == "__main__":
    main()
