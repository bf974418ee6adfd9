"""The translation benchmark's Keras model and its PyTorch reference, from
the same weights on the same batches: where their training parts.

What: builds the Keras model of `translation_keras.py` (on the backend of
`KERAS_BACKEND`) at a small vocabulary, copies its weights into the
reference of `torch_translation_reference.py`, and trains both on the same
batches in the same order, each with its own optimizer: Keras' Adam in
`fit`, the reference's fused Adam. It prints each step's batch loss in
three columns: the Keras model; the reference as the benchmark trains it;
and the reference with Keras' placement of Adam's epsilon and one trained
bias per LSTM gate (`torch.nn.LSTM` keeps two, `bias_ih` and `bias_hh`,
which Adam moves a full step each, so their sum twice as far as Keras'
one bias). Then, after the first step, the share of each weight's entries
that the two references have moved more than a tenth of the learning rate
away from the Keras model's.

Why: the translation benchmark's runners differ in accuracy after the same
epochs. This shows which of their differences makes them train apart:
given the same weights and batches, the model's math is the same (the
first step's losses agree), and what differs is how each optimizer steps.
Keras' Adam adds epsilon to the square root of the uncorrected second
moment, `m_hat / (sqrt(v_hat) + epsilon / sqrt(1 - beta_2^t))`, where
PyTorch adds it to the corrected one: the same epsilon damps Keras' first
steps of every weight whose gradient is near it (at the start, most of
the attention's), 31.6 times as much at the first step.

    KERAS_BACKEND=jax .venv/bin/python benchmarks/translation_sync_check.py

`make bench-translation` runs it last, on JAX. It writes the
`translation-sync` section of `docs/benchmarks.md` (`--page` for another
file) and prints its tables; it takes a minute.
"""

import argparse
import math

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

from keras_seqext.datasets import synthetic_translation

VOCABULARY = 300
MAX_LENGTH = 8
LEARNING_RATE = 3e-3


def weighted_layers(model):
    """The model's layers that hold weights: the source embedding, the
    bidirectional encoder and the decoder."""
    return [layer for layer in model.layers if layer.weights]


def copy_weights(model, reference):
    """Sets `reference`'s weights to `model`'s: the LSTMs' one bias into
    `bias_ih`, and `bias_hh` to zeros."""
    embedding, bidirectional, decoder = weighted_layers(model)

    def tensor(weight):
        return torch.from_numpy(keras.ops.convert_to_numpy(weight)).float()

    with torch.no_grad():
        reference.source_embedding.weight.copy_(tensor(embedding.embeddings))
        directions = (
            (bidirectional.forward_layer, "_l0"),
            (bidirectional.backward_layer, "_l0_reverse"),
        )
        encoder = reference.encoder
        for layer, suffix in directions:
            cell = layer.cell
            getattr(encoder, "weight_ih" + suffix).copy_(tensor(cell.kernel).T)
            getattr(encoder, "weight_hh" + suffix).copy_(
                tensor(cell.recurrent_kernel).T
            )
            getattr(encoder, "bias_ih" + suffix).copy_(tensor(cell.bias))
            getattr(encoder, "bias_hh" + suffix).zero_()
        cell, target = decoder.cell, reference.decoder
        for name in (
            "initial_kernel",
            "key_kernel",
            "key_bias",
            "score_vector",
            "proposal_kernel",
            "bias",
            "embeddings",
        ):
            getattr(target, name).copy_(tensor(getattr(cell, name)))
        target.state_kernel.copy_(tensor(cell.recurrent_kernel))
        target.input_kernel.copy_(
            torch.cat(
                [tensor(cell.feedback_kernel), tensor(cell.context_kernel)]
            )
        )


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


def reference_losses(reference, source, target, like_keras):
    """The reference's training steps over the batches in order; with
    `like_keras`, Keras' epsilon placement and one bias per LSTM gate."""
    if like_keras:
        for name, weight in reference.encoder.named_parameters():
            if name.startswith("bias_hh"):
                weight.requires_grad_(False)
    steps = -(-len(source) // BATCH_SIZE)
    optimizer, schedule = reference_module.adam(reference, LEARNING_RATE, steps)
    if like_keras:
        updates = [0]

        def keras_epsilon(optimizer, args, kwargs):
            updates[0] += 1
            for group in optimizer.param_groups:
                beta_2 = group["betas"][1]
                group["eps"] = reference_module.ADAM_EPSILON / math.sqrt(
                    1 - beta_2 ** updates[0]
                )

        optimizer.register_step_pre_hook(keras_epsilon)
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
    embedding, bidirectional, decoder = weighted_layers(model)
    cell, target = decoder.cell, reference.decoder
    lstm, encoder = bidirectional.forward_layer.cell, reference.encoder
    pairs = {
        "source embeddings": (
            embedding.embeddings,
            reference.source_embedding.weight,
        ),
        "LSTM kernel": (lstm.kernel, encoder.weight_ih_l0.T),
        "LSTM bias": (lstm.bias, encoder.bias_ih_l0 + encoder.bias_hh_l0),
        "decoder embeddings": (cell.embeddings, target.embeddings),
        "initial_kernel": (cell.initial_kernel, target.initial_kernel),
        "key_kernel": (cell.key_kernel, target.key_kernel),
        "score_vector": (cell.score_vector, target.score_vector),
        "recurrent_kernel": (cell.recurrent_kernel, target.state_kernel),
        "bias": (cell.bias, target.bias),
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


def run(source, target, steps):
    """Trains the Keras model and both references from the same weights
    on the first `steps` batches; returns the losses and the moved-apart
    shares of each reference."""
    keras.utils.set_random_seed(0)
    settings = {
        "vocabulary": VOCABULARY,
        "max_length": MAX_LENGTH,
        "learning_rate": LEARNING_RATE,
        "epochs": 1,
    }
    source, target = source[: steps * BATCH_SIZE], target[: steps * BATCH_SIZE]
    model = compiled_model(settings, len(source))
    model([source[:1], target[:1]])
    references = {}
    for like_keras in (False, True):
        references[like_keras] = reference_module.TranslationReference(
            VOCABULARY, MAX_LENGTH + 1
        )
        copy_weights(model, references[like_keras])
    losses = {"keras": keras_losses(model, source, target)}
    moved = {}
    for like_keras, reference in references.items():
        losses[like_keras] = reference_losses(
            reference, source, target, like_keras
        )
        moved[like_keras] = moved_apart(model, reference)
    return losses, moved


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
    losses, _ = run(source, target, args.steps)
    _, moved = run(source, target, 1)
    backend = keras.backend.backend()
    loss_table = markdown_table(
        [
            "step",
            f"Keras ({backend})",
            "reference",
            "reference, Keras' epsilon and one LSTM bias",
        ],
        [
            [str(step + 1)] + [f"{losses[k][step]:.5f}" for k in losses]
            for step in range(args.steps)
        ],
    )
    moved_table = markdown_table(
        ["weight", "reference", "reference, Keras' epsilon and one LSTM bias"],
        [
            [name, f"{moved[False][name]:.1%}", f"{moved[True][name]:.1%}"]
            for name in moved[False]
        ],
    )
    body = "\n".join(
        [
            record(__file__),
            "",
            f"Vocabulary {VOCABULARY}, batches of {BATCH_SIZE} sentences "
            f"of up to {MAX_LENGTH} words, Adam at {LEARNING_RATE}; each "
            "step's batch loss:",
            "",
            loss_table,
            "",
            "After one step, the share of each weight's entries more than a "
            "tenth of the learning rate from the Keras model's:",
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
