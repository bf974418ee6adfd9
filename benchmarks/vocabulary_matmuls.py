"""The vocabulary's matmuls of one token-mode training step, alone, in each
framework: what bounds the translation benchmark's speed.

What: at the translation benchmark's sizes (batch 64, 23 target steps, a
vocabulary of 8000, a fed-back embedding and context of 512 features and a
state of 256), one training step of the decoder multiplies, at each step,
`[y, c]` by the vocabulary's columns of the input kernel and `s` by those of
the state kernel (the logits), and in the backward pass multiplies the
logits' gradient by both kernels' transposes and by both inputs (the
kernels' gradients): six matmuls with the vocabulary as one side, more than
four in five of the step's multiply-adds. This times those six matmuls
alone, with random values and no other work, two ways:

- `per step`: as the decoder's loop runs them, 23 times on 64 rows each
  (in JAX inside a `jax.lax.scan` under `jax.jit`, in PyTorch eagerly as
  the reference's loop and autograd run them, in TensorFlow in a
  `tf.while_loop` inside a `tf.function` without XLA, as `fit` runs
  Keras' RNN loop there);
- `per sequence`: the same multiply-adds as one matmul of each kind over
  all `23 * 64` rows.

The median of `--repeats` timed runs after a warm-up one, in milliseconds
per batch, beside the share of the machine's GEMM bound (NumPy's best
float32 matmul) that each way reaches.

Why: the translation table's "share of GEMM bound" says each runner is far
from the bound; this says how far the vocabulary's matmuls alone are, in
each framework at these shapes, so what a faster decoder loop could gain.

    .venv/bin/python benchmarks/vocabulary_matmuls.py [--repeats 5]

`make bench-translation` runs it after the translation benchmark (it takes
seconds); it writes the `vocabulary-matmuls` section of
`docs/benchmarks.md` (`--page` for another file) and prints its table.
"""

import argparse
import statistics
import time

import numpy as np
from _page import PAGE
from _page import markdown_table
from _page import record
from _page import write_section
from _translation_task import BATCH_SIZE
from _translation_task import DECODER_UNITS
from _translation_task import EMBEDDING_DIM
from _translation_task import MEMORY_DIM
from _translation_task import VOCABULARY
from _translation_task import target_length
from run_all import numpy_matmul_flops_per_second

STEPS = target_length(22)  # the full task's longest target
FEED_DIM = EMBEDDING_DIM + MEMORY_DIM  # [y, c]
# Forward, the input's gradient and the kernel's gradient, for both kernels.
FLOP_PER_BATCH = (
    3 * 2 * STEPS * BATCH_SIZE * (FEED_DIM + DECODER_UNITS) * VOCABULARY
)


def random_operands(seed=0):
    """The step inputs `[y, c]` and `s` of every step, the logits'
    gradients, and the two kernels' vocabulary columns, float32."""
    rng = np.random.default_rng(seed)

    def draw(*shape):
        return rng.standard_normal(shape, dtype=np.float32) * 0.05

    return (
        draw(STEPS, BATCH_SIZE, FEED_DIM),
        draw(STEPS, BATCH_SIZE, DECODER_UNITS),
        draw(STEPS, BATCH_SIZE, VOCABULARY),
        draw(FEED_DIM, VOCABULARY),
        draw(DECODER_UNITS, VOCABULARY),
    )


def median_ms(run, repeats):
    """`run()` once to warm up, then the median of `repeats` timed calls."""
    run()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - start)
    return 1000 * statistics.median(seconds)


def jax_timings(operands, repeats):
    import jax
    import jax.numpy as jnp

    def six_matmuls(feed, state, upstream, feed_kernel, state_kernel):
        logits = feed @ feed_kernel + state @ state_kernel
        return (
            logits,
            upstream @ feed_kernel.T,
            upstream @ state_kernel.T,
            feed.T @ upstream,
            state.T @ upstream,
        )

    @jax.jit
    def per_step(feeds, states, upstreams, feed_kernel, state_kernel):
        def step(kernel_gradients, xs):
            outputs = six_matmuls(*xs, feed_kernel, state_kernel)
            return (
                kernel_gradients[0] + outputs[3],
                kernel_gradients[1] + outputs[4],
            ), outputs[:3]

        zeros = (jnp.zeros_like(feed_kernel), jnp.zeros_like(state_kernel))
        return jax.lax.scan(step, zeros, (feeds, states, upstreams))

    @jax.jit
    def per_sequence(feeds, states, upstreams, feed_kernel, state_kernel):
        rows = STEPS * BATCH_SIZE
        return six_matmuls(
            feeds.reshape(rows, -1),
            states.reshape(rows, -1),
            upstreams.reshape(rows, -1),
            feed_kernel,
            state_kernel,
        )

    arrays = [jnp.asarray(array) for array in operands]
    return {
        name: median_ms(
            lambda f=function: jax.block_until_ready(f(*arrays)), repeats
        )
        for name, function in (
            ("per step", per_step),
            ("per sequence", per_sequence),
        )
    }


def torch_timings(operands, repeats):
    import torch

    feeds, states, upstreams, feed_kernel, state_kernel = (
        torch.from_numpy(array) for array in operands
    )

    def per_step():
        feed_gradient = torch.zeros_like(feed_kernel)
        state_gradient = torch.zeros_like(state_kernel)
        for feed, state, upstream in zip(feeds, states, upstreams):
            torch.addmm(feed @ feed_kernel, state, state_kernel)
            upstream @ feed_kernel.T
            upstream @ state_kernel.T
            feed_gradient.addmm_(feed.T, upstream)
            state_gradient.addmm_(state.T, upstream)

    def per_sequence():
        feed, state, upstream = (
            array.flatten(0, 1) for array in (feeds, states, upstreams)
        )
        torch.addmm(feed @ feed_kernel, state, state_kernel)
        upstream @ feed_kernel.T
        upstream @ state_kernel.T
        feed.T @ upstream
        state.T @ upstream

    with torch.inference_mode():
        return {
            "per step": median_ms(per_step, repeats),
            "per sequence": median_ms(per_sequence, repeats),
        }


def tensorflow_timings(operands, repeats):
    import tensorflow as tf

    feeds, states, upstreams, feed_kernel, state_kernel = (
        tf.constant(array) for array in operands
    )

    def six_matmuls(feed, state, upstream):
        logits = feed @ feed_kernel + state @ state_kernel
        return (
            logits,
            tf.matmul(upstream, feed_kernel, transpose_b=True),
            tf.matmul(upstream, state_kernel, transpose_b=True),
            tf.matmul(feed, upstream, transpose_a=True),
            tf.matmul(state, upstream, transpose_a=True),
        )

    @tf.function(jit_compile=False)
    def per_step():
        # A `tf.while_loop`, as Keras' RNN loop runs on TensorFlow.
        # The per-step products are stacked, as the loop's outputs are:
        # TensorFlow prunes products that nothing reads.
        stacked = [tf.TensorArray(tf.float32, size=STEPS) for _ in range(3)]
        feed_gradient = tf.zeros_like(feed_kernel)
        state_gradient = tf.zeros_like(state_kernel)
        for step in tf.range(STEPS):
            outputs = six_matmuls(feeds[step], states[step], upstreams[step])
            stacked = [
                array.write(step, output)
                for array, output in zip(stacked, outputs[:3])
            ]
            feed_gradient += outputs[3]
            state_gradient += outputs[4]
        return [array.stack() for array in stacked] + [
            feed_gradient,
            state_gradient,
        ]

    @tf.function(jit_compile=False)
    def per_sequence():
        rows = STEPS * BATCH_SIZE
        return six_matmuls(
            tf.reshape(feeds, (rows, -1)),
            tf.reshape(states, (rows, -1)),
            tf.reshape(upstreams, (rows, -1)),
        )

    return {
        "per step": median_ms(lambda: [t.numpy() for t in per_step()], repeats),
        "per sequence": median_ms(
            lambda: [t.numpy() for t in per_sequence()], repeats
        ),
    }


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--page", default=PAGE, help="the page to write")
    return parser.parse_args()


def main():
    args = parse_args()
    operands = random_operands()
    bound = numpy_matmul_flops_per_second()
    timings = {
        "jax (XLA, jit)": jax_timings(operands, args.repeats),
        "torch (eager)": torch_timings(operands, args.repeats),
        "tensorflow (tf.function)": tensorflow_timings(operands, args.repeats),
    }
    rows = []
    for framework, ways in timings.items():
        for way, milliseconds in ways.items():
            share = FLOP_PER_BATCH / (milliseconds / 1000) / bound
            rows.append([framework, way, f"{milliseconds:.1f}", f"{share:.1%}"])
    table = markdown_table(
        ["framework", "matmuls", "ms per batch", "share of GEMM bound"], rows
    )
    body = "\n".join(
        [
            record(__file__),
            "",
            table,
            "",
            f"{FLOP_PER_BATCH / 1e9:.1f} GFLOP per batch; GEMM bound "
            f"{bound / 1e9:.1f} GFLOP/s (NumPy's best float32 matmul).",
        ]
    )
    write_section("vocabulary-matmuls", body, page=args.page)
    print(table)


if __name__ == "__main__":
    main()
