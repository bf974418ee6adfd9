"""The translation benchmark's Keras model and its PyTorch reference, from
the same weights on the same batches: do they train alike?

What: builds the Keras model of `translation_keras.py` (on the backend of
`KERAS_BACKEND`) at a small vocabulary, copies its weights into the
reference of `torch_translation_reference.py`, and trains both on the same
batches in the same order, each with its own optimizer: Keras' Adam in
`fit`, the reference's fused Adam. It prints each step's batch loss for
both; then, after the first step, the share of each weight's entries that
the reference has moved more than a tenth of the learning rate away from
the Keras model's.

Why: the benchmark compares the runners' accuracies after the same
epochs, from the same weights on the same batches; that compares the
backends' arithmetic only if the reference's training is the Keras
model's, step for step. Two differences once made it otherwise, and the
reference now matches Keras in both: Keras' Adam adds epsilon to the
square root of the uncorrected second moment, `m_hat / (sqrt(v_hat) +
epsilon / sqrt(1 - beta_2^t))`, where PyTorch adds it to the corrected
one; and `torch.nn.LSTM` trains two bias vectors per gate, `bias_ih` and
`bias_hh`, where Keras trains one.

    KERAS_BACKEND=jax .venv/bin/python benchmarks/translation_sync_check.py

`make bench-translation` runs it last, on JAX. It writes the
`translation-sync` section of `docs/benchmarks.md` (`--page` for another
file) and prints its tables; it takes a minute.
"""

import argparse

import keras
import numpy as np
import torch
import torch_translation_reference as reference_module
from _page import PAGE
from _page import markdown_table
from _page import record
from _page import write_section
from _translation_task import BATCH_SIZE
from translation_keras import compiled_model
from translation_keras import named_weights
from translation_keras import weight_arrays

from keras_seqext.datasets import synthetic_translation

VOCABULARY = 300
MAX_LENGTH = 8
LEARNING_RATE = 3e-3
# The loss table's run warms up as the benchmark does, for a few steps;
# the moved-apart table's single step has none, or it would move nothing.
WARMUP_STEPS = 3


def keras_losses(model, source, target):
    """`fit` over the batches in order; each batch's own loss (Keras logs
    the running mean of the epoch's)."""
    means = []

    class Record(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            means.append(logs["loss"])

    model.fit(
        [source, target],
        target,
        batch_size=BATCH_SIZE,
        shuffle=False,
        verbose=0,
        callbacks=[Record()],
    )
    steps = np.arange(1, len(means) + 1)
    totals = np.array(means) * steps
    return np.diff(totals, prepend=0.0)


def reference_losses(reference, source, target, warmup_steps):
    """The reference's training steps over the batches in order."""
    steps = -(-len(source) // BATCH_SIZE)
    optimizer, schedule = reference_module.adam(
        reference, LEARNING_RATE, warmup_steps, steps
    )
    source, target = (torch.from_numpy(a).long() for a in (source, target))
    return np.array(
        [
            reference_module.training_step(
                reference, optimizer, schedule, source[batch], target[batch]
            ).item()
            for batch in torch.arange(len(source)).split(BATCH_SIZE)
        ]
    )


def moved_apart(model, reference):
    """`{weight: share of entries more than LEARNING_RATE / 10 from the
    Keras model's}`, for the decoder's and the forward LSTM's weights."""
    ours = named_weights(model)
    target, encoder = reference.decoder, reference.encoder
    pairs = {
        "source embeddings": (
            ours["source_embeddings"],
            reference.source_embedding.weight,
        ),
        "LSTM kernel": (ours["forward_kernel"], encoder.weight_ih_l0.T),
        "LSTM bias": (
            ours["forward_bias"],
            encoder.bias_ih_l0 + encoder.bias_hh_l0,
        ),
        "decoder embeddings": (ours["decoder_embeddings"], target.embeddings),
        "initial_kernel": (
            ours["decoder_initial_kernel"],
            target.initial_kernel,
        ),
        "key_kernel": (ours["decoder_key_kernel"], target.key_kernel),
        "score_vector": (ours["decoder_score_vector"], target.score_vector),
        "recurrent_kernel": (
            ours["decoder_recurrent_kernel"],
            target.state_kernel,
        ),
        "bias": (ours["decoder_bias"], target.bias),
    }
    return {
        name: float(
            np.mean(
                np.abs(
                    keras.ops.convert_to_numpy(ours) - theirs.detach().numpy()
                )
                > LEARNING_RATE / 10
            )
        )
        for name, (ours, theirs) in pairs.items()
    }


def run(source, target, steps, warmup_steps):
    """Trains the Keras model and the reference from the same weights on
    the first `steps` batches, the first `warmup_steps` warming up; returns
    both's losses and the reference's moved-apart shares."""
    keras.utils.set_random_seed(0)
    settings = {
        "vocabulary": VOCABULARY,
        "max_length": MAX_LENGTH,
        "learning_rate": LEARNING_RATE,
        "epochs": 1,
        "warmup_steps": warmup_steps,
    }
    source, target = source[: steps * BATCH_SIZE], target[: steps * BATCH_SIZE]
    model = compiled_model(settings, len(source))
    reference = reference_module.TranslationReference(
        VOCABULARY, MAX_LENGTH + 1
    )
    reference_module.set_keras_weights(reference, weight_arrays(model))
    losses = [
        keras_losses(model, source, target),
        reference_losses(reference, source, target, warmup_steps),
    ]
    return losses, moved_apart(model, reference)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--page", default=PAGE, help="the page to write")
    return parser.parse_args()


def main():
    args = parse_args()
    torch.set_num_threads(1)
    source, target = synthetic_translation(
        args.steps * BATCH_SIZE, VOCABULARY, 6, MAX_LENGTH, 1.2, seed=3
    )
    losses, _ = run(source, target, args.steps, WARMUP_STEPS)
    _, moved = run(source, target, 1, 0)
    backend = keras.backend.backend()
    loss_table = markdown_table(
        ["step", f"Keras ({backend})", "reference"],
        [
            [str(step + 1)] + [f"{loss[step]:.5f}" for loss in losses]
            for step in range(args.steps)
        ],
    )
    moved_table = markdown_table(
        ["weight", "share moved apart"],
        [[name, f"{share:.1%}"] for name, share in moved.items()],
    )
    body = "\n".join(
        [
            record(__file__),
            "",
            f"Vocabulary {VOCABULARY}, batches of {BATCH_SIZE} sentences "
            f"of up to {MAX_LENGTH} words, Adam at {LEARNING_RATE} (epsilon "
            f"{reference_module.ADAM_EPSILON}) after "
            f"{WARMUP_STEPS} steps of warm-up; each step's batch loss:",
            "",
            loss_table,
            "",
            "After one step (with no warm-up), the share of each weight's "
            "entries more than a tenth of the learning rate from the Keras "
            "model's:",
            "",
            moved_table,
        ]
    )
    write_section("translation-sync", body, page=args.page)
    print(loss_table)
    print()
    print(moved_table)


if __name__ == "__main__":
    main()
