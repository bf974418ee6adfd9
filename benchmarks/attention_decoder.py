"""Training and inference speed of the attention tutorial's model, one backend.

What: trains the seed model of `examples/copy_first.py`, an `LSTM(150)`
encoder returning every state read by `keras_seqext.AttentionDecoder(150,
50)`, on 5000 copy-first samples (the first 2 of 5 integers in [0, 50),
one-hot; see `_copy_task.py`) with Adam (learning rate 1e-3) and
categorical cross-entropy, for a fixed number of epochs. It then prints one
JSON line: training samples/s after warm-up, inference samples/s, peak
resident memory, held-out exact-match accuracy, the floating-point work of
one training sample and the float32 matmul speed the backend reaches on
this machine.

Why: the benchmarks compare keras-seqext with the same model written by
hand in eager PyTorch (`torch_reference.py`), run side by side on the same
machine, and with the GEMM bound, the speed the model would reach if all
its work ran as fast as one large matmul. The set-up matches the
reference's: the same samples, epochs, batch size, units, optimizer and
learning rate, and the same JSON fields. `run_all.py` runs both scripts
for each batch size and writes the tables.

How the numbers are taken:

- Training: one `fit` over all epochs; a callback times each epoch. The
  first epoch is the warm-up (it includes tracing and compiling the train
  step, for the full and the last partial batch) and is reported apart;
  `train_samples_per_second` covers the later epochs. So `--epochs` must be
  at least 2.
- Inference: `predict` on 1000 held-out samples as one batch, once to
  warm up, then the median of 5 timed calls (as the reference does).
  Beside it, the tutorials' slow way: a loop of one `predict` call per
  sample, over 50 of them, after one warm-up call.
- Accuracy: the fraction of held-out sequences whose argmax is right at
  every step, computed with NumPy from those predictions.
- Peak RSS: `getrusage(RUSAGE_SELF).ru_maxrss`, read before the matmul
  measurement, which allocates arrays of its own.
- Matmul speed: `keras.ops.matmul` of two float32 2048 x 2048 matrices on
  the backend, the best of 5 after one warm-up call.
- FLOP per training sample: see `training_flop_per_sample` in
  `_copy_task.py`.

The backend is fixed when Keras is imported, so each process runs one:

    KERAS_BACKEND=jax .venv/bin/python benchmarks/attention_decoder.py \\
        [--batch-size 16] [--epochs 10] [--length 5] [--train-samples 5000] \\
        [--jit-compile auto] [--unroll] [--train-only] [--json-only]

On TensorFlow, `TF_NUM_INTRAOP_THREADS=1` in the environment runs each
operation on one thread (TensorFlow's default is one per core); the JSON
records it as `intra_op_threads`.

`--length T` sets the input and output length (copying all T integers) for
the length sweep, where `--train-only` skips inference and accuracy.
"""

import argparse
import json
import os
import random
import sys
import time

import keras
import numpy as np
from _copy_task import ADAM_EPSILON
from _copy_task import CARDINALITY
from _copy_task import LEARNING_RATE
from _copy_task import TEST_SAMPLES
from _copy_task import TRAIN_SAMPLES
from _copy_task import TUTORIAL_LENGTH
from _copy_task import UNITS
from _copy_task import copy_task
from _copy_task import exact_match
from _copy_task import one_hot
from _copy_task import training_flop_per_sample
from _processes import peak_rss_mb
from _timing import warm_median_seconds
from keras import ops

import keras_seqext

PREDICT_REPEATS = 5
PER_SAMPLE_PREDICTS = 50  # samples decoded one `predict` call each
MATMUL_SIZE = 2048
MATMUL_REPEATS = 5


def seed_model(length, unroll=False):
    """The tutorial's model: LSTM encoder, then the attention decoder."""
    return keras.Sequential(
        [
            keras.Input((length, CARDINALITY)),
            keras.layers.LSTM(UNITS, return_sequences=True, unroll=unroll),
            keras_seqext.AttentionDecoder(UNITS, CARDINALITY, unroll=unroll),
        ]
    )


class EpochTimer(keras.callbacks.Callback):
    """Records the wall time and loss of each epoch.

    Keras turns the logs into Python floats before `on_epoch_end`, which
    waits for the epoch's last step, so the times hold on JAX's asynchronous
    dispatch too. Only epoch hooks are defined, so that per-batch dispatch
    stays asynchronous.
    """

    def __init__(self, verbose):
        super().__init__()
        self.verbose = verbose

    def on_train_begin(self, logs=None):
        # Reset, so that a second `fit` starts a new record.
        self.seconds = []
        self.losses = []

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._epoch_start)
        self.losses.append(logs["loss"])
        if self.verbose:
            print(
                f"epoch {epoch + 1}/{self.params['epochs']}: "
                f"loss {logs['loss']:.4f}, {self.seconds[-1]:.2f} s",
                file=sys.stderr,
            )


def per_sample_predict_seconds(model, x):
    """Seconds per sample of the tutorials' loop, one `predict` call per
    sample (after one warm-up call)."""
    model.predict(x[:1], verbose=0)
    start = time.perf_counter()
    for sample in x:
        model.predict(sample[np.newaxis], verbose=0)
    return (time.perf_counter() - start) / len(x)


def matmul_flops_per_second(size=MATMUL_SIZE):
    """The best float32 matmul speed of the backend, in FLOP/s."""
    rng = np.random.default_rng(0)
    a, b = (
        ops.convert_to_tensor(rng.standard_normal((size, size), "float32"))
        for _ in range(2)
    )
    best = float("inf")
    for _ in range(MATMUL_REPEATS + 1):  # the first call warms up
        start = time.perf_counter()
        product = ops.matmul(a, b)
        # Reading one element waits for JAX's asynchronous dispatch.
        ops.convert_to_numpy(product[0, 0])
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def tensorflow_intra_op_threads():
    """The threads per operation set for TensorFlow through
    `TF_NUM_INTRAOP_THREADS`, or None: another backend, or TensorFlow's
    default of one per core."""
    threads = os.environ.get("TF_NUM_INTRAOP_THREADS")
    if keras.backend.backend() != "tensorflow" or not threads:
        return None
    return int(threads)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument(
        "--epochs",
        type=int,
        default=10,
        help="epochs in all, the first being the warm-up (at least 2)",
    )
    parser.add_argument(
        "--length",
        type=int,
        default=TUTORIAL_LENGTH,
        help="input and output steps; other than 5, every integer is copied",
    )
    parser.add_argument("--train-samples", type=int, default=TRAIN_SAMPLES)
    parser.add_argument(
        "--jit-compile",
        choices=["auto", "true", "false"],
        default="auto",
        help="`model.compile(jit_compile=...)`; auto is XLA on JAX, a "
        "tf.function without XLA on a CPU-only TensorFlow, eager on torch",
    )
    parser.add_argument(
        "--steps-per-execution",
        type=int,
        default=1,
        help="`model.compile(steps_per_execution=...)`: training steps per "
        "call of the compiled function (TensorFlow and JAX only; Keras "
        "allows only 1 on torch)",
    )
    parser.add_argument(
        "--unroll",
        action="store_true",
        help="unroll the encoder's and the decoder's loops (`unroll=True`)",
    )
    parser.add_argument(
        "--train-only",
        action="store_true",
        help="skip inference and accuracy (for the length sweep)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seeds the weights, the training data and the shuffling; "
        "the held-out data uses seed + 1",
    )
    parser.add_argument(
        "--json-only",
        action="store_true",
        help="print only the final JSON line",
    )
    args = parser.parse_args()
    if args.epochs < 2:
        parser.error(
            "--epochs must be at least 2: the first epoch is the warm-up "
            f"and is not timed. Received: --epochs {args.epochs}"
        )
    return args


def copy_task_one_hot(n_samples, length, seed):
    """`_copy_task.copy_task`'s samples, with one-hot targets for Keras'
    categorical cross-entropy."""
    inputs, classes = copy_task(n_samples, length, seed)
    return inputs, one_hot(classes)


def seed_weights_and_shuffling(seed):
    """Seeds the weights on every backend and the shuffling on JAX.

    Keras draws the seeds of unseeded initializers from Python's `random`,
    and shuffles NumPy arrays for JAX with NumPy's global generator; the
    TensorFlow and torch backends shuffle with their own generators, left
    unseeded. `keras.utils.set_random_seed` would seed those too, but it
    imports TensorFlow whenever it is installed, which would add
    TensorFlow's memory to the peak RSS of a JAX or torch run.
    """
    random.seed(seed)
    np.random.seed(seed)


def main():
    args = parse_args()
    seed_weights_and_shuffling(args.seed)
    x_train, y_train = copy_task_one_hot(
        args.train_samples, args.length, args.seed
    )
    model = seed_model(args.length, unroll=args.unroll)
    model.compile(
        optimizer=keras.optimizers.Adam(
            learning_rate=LEARNING_RATE, epsilon=ADAM_EPSILON
        ),
        loss="categorical_crossentropy",
        jit_compile={"auto": "auto", "true": True, "false": False}[
            args.jit_compile
        ],
        steps_per_execution=args.steps_per_execution,
    )
    timer = EpochTimer(verbose=not args.json_only)
    model.fit(
        x_train,
        y_train,
        batch_size=args.batch_size,
        epochs=args.epochs,
        callbacks=[timer],
        verbose=0,
    )
    timed_seconds = sum(timer.seconds[1:])
    train_rate = (args.epochs - 1) * args.train_samples / timed_seconds
    result = {
        "backend": keras.backend.backend(),
        "keras": keras.__version__,
        "jit_compile": model.jit_compile,
        "unroll": args.unroll,
        "steps_per_execution": model.steps_per_execution,
        "intra_op_threads": tensorflow_intra_op_threads(),
        "batch_size": args.batch_size,
        "epochs": args.epochs,
        "length": args.length,
        "train_samples": args.train_samples,
        "warmup_epoch_seconds": round(timer.seconds[0], 3),
        "timed_seconds": round(timed_seconds, 3),
        "train_samples_per_second": round(train_rate, 1),
        "final_loss": round(timer.losses[-1], 5),
    }
    if not args.train_only:
        x_test, y_test = copy_task(TEST_SAMPLES, args.length, args.seed + 1)
        predictions, predict_seconds = warm_median_seconds(
            lambda: model.predict(x_test, batch_size=len(x_test), verbose=0),
            PREDICT_REPEATS,
        )
        per_sample_seconds = per_sample_predict_seconds(
            model, x_test[:PER_SAMPLE_PREDICTS]
        )
        result.update(
            predict_samples_per_second=round(TEST_SAMPLES / predict_seconds, 1),
            per_sample_predict_samples_per_second=round(
                1 / per_sample_seconds, 1
            ),
            accuracy=exact_match(predictions.argmax(-1), y_test),
        )
    result["peak_rss_mb"] = round(peak_rss_mb(), 1)
    flop = training_flop_per_sample(args.length)
    matmul_flops = matmul_flops_per_second()
    result.update(
        params=model.count_params(),
        flop_per_training_sample=flop,
        matmul_gflops=round(matmul_flops / 1e9, 2),
        share_of_backend_gemm_bound=round(train_rate * flop / matmul_flops, 4),
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
