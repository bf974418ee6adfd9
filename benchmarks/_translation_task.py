"""The translation benchmark's task, model sizes and scores, in NumPy alone.

Every process of the benchmark imports this module: the driver
(`translation.py`), the Keras runner (`translation_keras.py`) and the
PyTorch reference (`torch_translation_reference.py`), which imports
neither Keras nor keras-seqext. The sentences themselves come from
`keras_seqext.datasets.synthetic_translation`, which imports Keras, so a
Keras process writes them once to an `.npz` file (`write_task` in
`translation_keras.py`) and every runner reads that file: the same
sentences, in the same order, for every runner.
"""

import json
import math

import numpy as np
from _copy_task import FORWARD_PASSES_PER_TRAINING_STEP

# The special tokens of `keras_seqext.datasets`, repeated here so that the
# reference need not import it; the Keras process that writes the task
# checks that they match.
PAD_TOKEN = 0
START_TOKEN = 1
END_TOKEN = 2

VOCABULARY = 8000  # token ids of each side, special tokens included
EMBEDDING_DIM = 256  # the encoder's and the decoder's embeddings
ENCODER_UNITS = 128  # per direction, so the memory has 256 features
DECODER_UNITS = 256
MEMORY_DIM = 2 * ENCODER_UNITS
BATCH_SIZE = 64

# The task: sentences of about 20 words, and a budget of sentences and
# epochs aimed at JAX passing 90% held-out token accuracy in about 20
# minutes of training on a 2-core machine. The Zipf exponent is 1.2 since
# at 1.0 the same budget fell short of 90%: too many rare words, each seen
# too few times to learn its translation. Seven epochs, since after six
# the runners' training losses were still falling and the reference's
# accuracy was just short of 90%. The learning rate warms up over half an
# epoch: at its peak rate from the first step, runs that differed only by
# rounding parted at the escape from the loss plateau and ended points of
# accuracy apart. No clipping: a global-norm clip that binds made Keras and
# the reference part within 100 steps where they agree without it.
FULL = {
    "vocabulary": VOCABULARY,
    "min_length": 18,
    "max_length": 22,
    "zipf_exponent": 1.2,
    "train_samples": 20_000,
    "test_samples": 2_000,
    "epochs": 7,
    "learning_rate": 3e-3,
    "warmup_steps": 156,
}
# `--quick`: every code path once, in a few minutes; a smaller vocabulary,
# which the page labels.
QUICK = {
    "vocabulary": 1000,
    "min_length": 8,
    "max_length": 12,
    "zipf_exponent": 1.0,
    "train_samples": 2_048,
    "test_samples": 256,
    "epochs": 2,
    "learning_rate": 3e-3,
    "warmup_steps": 16,
}
# PyTorch's Adam default, below Keras' 1e-7: Keras adds epsilon to the
# square root of the uncorrected second moment, which makes it up to 31.6
# times larger in the first steps, where it damped the updates of the
# attention's weights (`translation_sync_check.py`); the reference adds it
# as Keras does.
ADAM_EPSILON = 1e-8
# The sentences are drawn with these seeds (and the language with
# `language_seed=0`, the dataset's default); the initial weights and the
# epochs' orders with `WEIGHTS_SEED` and `ORDER_SEED`.
TRAIN_SEED = 1
TEST_SEED = 2
WEIGHTS_SEED = 0
ORDER_SEED = 3
# The task file's key of each initial weight is this prefix and the name
# that `translation_keras.named_weights` gives it.
INITIAL_WEIGHT = "initial_weight:"
# The vocabularies of the build-only table of parameter counts.
PARAMETER_COUNT_VOCABULARIES = (1000, 8000, 32000)


def target_length(max_length):
    """`T_out`: the longest target, its words and the end token."""
    return max_length + 1


def load_task(path):
    """The task `write_task` saved: `{"train_source", "train_target",
    "test_source", "test_target"}`, int32 arrays; `"epoch_orders"`, one
    permutation of the training sentences per epoch, `(epochs,
    train_samples)`; `"initial_weights"`, `{name: array}` as
    `translation_keras.named_weights` names them; and `"settings"`, the
    dict of settings (`FULL`'s keys) that every runner trains with."""
    with np.load(path) as saved:
        task = {name: saved[name] for name in saved.files}
    task["settings"] = json.loads(str(task["settings"]))
    task["initial_weights"] = {
        name.removeprefix(INITIAL_WEIGHT): task.pop(name)
        for name in list(task)
        if name.startswith(INITIAL_WEIGHT)
    }
    return task


def epoch_orders(train_samples, epochs):
    """Each epoch's order of the training sentences, drawn with NumPy:
    `(epochs, train_samples)` int64 permutations."""
    generator = np.random.default_rng(ORDER_SEED)
    return np.stack(
        [generator.permutation(train_samples) for _ in range(epochs)]
    )


def counted_tokens(target):
    """The target tokens that count: every one but the padding (the words
    and the end token), an int."""
    return int((target != PAD_TOKEN).sum())


def token_accuracy(predicted, target):
    """The share of counted target tokens that `predicted` gets right, at
    the same position: up to and including the end token.

    Args:
        predicted: token ids, `(n_samples, T_out)`, such as the argmax of
            the logits of a free decoding.
        target: the true ids, `(n_samples, T_out)`, padded with
            `PAD_TOKEN`.

    Returns:
        A Python float in [0, 1].
    """
    counted = target != PAD_TOKEN
    return float((predicted == target)[counted].sum() / counted.sum())


def learning_rate_factor(step, warmup_steps, total_steps):
    """The learning rate's factor at optimizer step `step` (0 for the
    first update): linear from 0 over `warmup_steps`, then a cosine decay
    to 0 over the other steps, as `keras.optimizers.schedules.CosineDecay`
    with `warmup_target` does; the reference applies it through
    `LambdaLR`."""
    if step < warmup_steps:
        return step / warmup_steps
    decay_steps = total_steps - warmup_steps
    progress = min(step - warmup_steps, decay_steps) / decay_steps
    return 0.5 * (1 + math.cos(math.pi * progress))


def training_steps(train_samples, epochs, batch_size=BATCH_SIZE):
    """Optimizer steps of a run, the last batch of each epoch partial, as
    in Keras' `fit`: the schedule's warm-up and decay together."""
    return epochs * -(-train_samples // batch_size)


def decoder_parameters(
    vocabulary,
    embedding_dim=EMBEDDING_DIM,
    memory_dim=MEMORY_DIM,
    units=DECODER_UNITS,
):
    """The token-mode decoder's weights with the additive score, by the
    formula of `AttentionDecoderCell`'s docstring:

    ```
    V E + (E + d + 1)(3u + V) + u (q + 3u + V) + d u + d u + u + u
    ```

    with `q = u` (the additive score's query), and the last four terms
    `initial_kernel`, `key_kernel`, `key_bias` and `score_vector`.

    Args:
        vocabulary: `V`.
        embedding_dim: `E`. Defaults to `EMBEDDING_DIM`.
        memory_dim: `d`. Defaults to `MEMORY_DIM`.
        units: `u`. Defaults to `DECODER_UNITS`.

    Returns:
        The number of weights, an int.
    """
    v, e, d, u = vocabulary, embedding_dim, memory_dim, units
    return (
        v * e
        + (e + d + 1) * (3 * u + v)
        + u * (u + 3 * u + v)
        + 2 * d * u
        + 2 * u
    )


def training_flop_per_sentence(settings):
    """The matmul FLOP of one training sentence at the padded lengths
    (`T_in = max_length`, `T_out = max_length + 1`), at 2 FLOP per
    multiply-add; element-wise work, the loss and the optimizer are left
    out. With `V` the vocabulary, `E` the embedding, `H` the encoder's
    units per direction, `d = 2H` the memory and `u` the decoder's units,
    the forward pass is:

    ```
    encoder, 2 directions of T_in steps of [x, h] (E + H) x 4H:
                                                 2 * T_in * 8H(E + H)
    keys U_a h (T_in rows) and s_0 = W_s h_0:    2du(T_in + 1)
    decoder, T_out steps of
        s x [W_a | U_r | U_z | U_o]  u x (3u + V):  2u(3u + V)
        [y, c] x the gate and output blocks:        2(E + d)(3u + V)
        (r * s) x U_p                u x u:         2u^2
        v_a . tanh(...) and the context sum:        2 T_in (u + d)
    ```

    and training is `FORWARD_PASSES_PER_TRAINING_STEP` forward passes.
    Embedding lookups multiply nothing.

    Args:
        settings: a task's settings (`FULL`'s keys).

    Returns:
        The FLOP of one training sentence, an int.
    """
    t_in = settings["max_length"]
    t_out = target_length(t_in)
    v, e, h = settings["vocabulary"], EMBEDDING_DIM, ENCODER_UNITS
    d, u = MEMORY_DIM, DECODER_UNITS
    encoder = 2 * t_in * 8 * h * (e + h)
    keys_and_initial_state = 2 * d * u * (t_in + 1)
    gates_dim = 3 * u + v
    decoder_step = (
        2 * u * gates_dim
        + 2 * (e + d) * gates_dim
        + 2 * u * u
        + 2 * t_in * (u + d)
    )
    forward = encoder + keys_and_initial_state + t_out * decoder_step
    return FORWARD_PASSES_PER_TRAINING_STEP * forward


def timing_fields(settings, seconds, task):
    """The JSON fields of a run's training, the same for every runner, from
    its epochs' seconds: the first epoch is the warm-up (tracing and
    compiling, on the backends) and is reported apart; the tokens/s cover
    the others."""
    timed_seconds = sum(seconds[1:])
    tokens = counted_tokens(task["train_target"])
    return {
        "batch_size": BATCH_SIZE,
        "epochs": settings["epochs"],
        "train_samples": len(task["train_target"]),
        "train_tokens": tokens,
        "epoch_seconds": [round(s, 2) for s in seconds],
        "warmup_epoch_seconds": round(seconds[0], 2),
        "train_seconds": round(sum(seconds), 2),
        "train_tokens_per_second": round(
            (len(seconds) - 1) * tokens / timed_seconds, 1
        ),
    }
