"""The translation benchmark's model written by hand in eager PyTorch.

What: token ids in, token ids out, at a vocabulary of 8000 (`V`). The
encoder is an embedding of 256 and a bidirectional LSTM of 128 units per
direction (a memory of 256 features); the decoder is the token mode of
`keras_seqext.AttentionDecoder` (256 units, an embedding table of 256,
logits out), the math of `AttentionDecoderCell`'s docstring:

```
e_j = v_a . tanh(W_a s + U_a h_j + b_a)    a = softmax(e)    c = sum a_j h_j
r  = sigmoid(W_r y + U_r s + C_r c + b_r)
z  = sigmoid(W_z y + U_z s + C_z c + b_z)
p  = tanh(W_p y + U_p (r * s) + C_p c + b_p)
s' = (1 - z) * s + z * p
l  = W_o y + U_o s + C_o c + b_o
```

with `s_0 = tanh(W_s h_0)`, `y_0` the embedding of the start token, and
`y` the embedding of the previous target token in training (teacher
forcing) or of the argmax of the previous step's logits `l` when decoding
freely. The logits read the *previous* state `s`, as in the Keras layer.
It starts from the Keras model's initial weights and trains on the
sentences, in each epoch's order, that `translation.py` wrote, with the
cross-entropy of the logits over the target tokens that are not padding
and Adam (`fused=True`) under the same schedule (a linear warm-up, then a
cosine decay), learning rate and epsilon as
`translation_keras.py`, and prints the same JSON fields.

Why: the benchmark compares keras-seqext with what a careful engineer
would write in eager PyTorch. So the source embeddings go through
`torch.nn.LSTM`'s fused bidirectional loop as a packed sequence; the keys
`U_a h + b_a` are computed once per sequence; the weights are stored fused
as the Keras cell stores them, so that each step multiplies `s` once by
`[W_a | U_r | U_z | U_o]` and `[y, c]` once by `[W_r | W_z | W_p | W_o]`
stacked on `[C_r | C_z | C_p | C_o]` (`torch.addmm` with the bias); the
teacher's embeddings are looked up once per batch; the loss reads the
logits. Two details make its training the Keras model's, step for step
(`translation_sync_check.py` shows it): Adam adds epsilon where Keras'
Adam adds it, and `torch.nn.LSTM`'s second bias vector, `bias_hh`, stays
at zero, untrained, since Keras' LSTM has one bias per gate (a second
trained one would move their sum twice as far per step). It imports only
torch and NumPy (and modules of this folder that import only those).

    .venv/bin/python benchmarks/torch_translation_reference.py \\
        --task TASK.npz [--threads N] [--json-only]

`translation.py` writes `TASK.npz` and runs this script; `--threads`
defaults to the cores this process may use, as many as the Keras backends
use.
"""

import argparse
import json
import math
import sys
import time

import torch
from _processes import available_cores
from _processes import peak_rss_mb
from _timing import warm_median_seconds
from _translation_task import ADAM_EPSILON
from _translation_task import BATCH_SIZE
from _translation_task import DECODER_UNITS
from _translation_task import EMBEDDING_DIM
from _translation_task import ENCODER_UNITS
from _translation_task import MEMORY_DIM
from _translation_task import PAD_TOKEN
from _translation_task import START_TOKEN
from _translation_task import counted_tokens
from _translation_task import learning_rate_factor
from _translation_task import load_task
from _translation_task import timing_fields
from _translation_task import token_accuracy
from _translation_task import training_steps
from torch import nn
from torch.nn import functional
from torch.nn.utils import rnn
from torch_reference import AttentionDecoder

PREDICT_REPEATS = 3
# The suffixes of `torch.nn.LSTM`'s weights in each direction, by the
# prefix that `translation_keras.named_weights` gives that direction.
LSTM_DIRECTIONS = {"forward": "_l0", "backward": "_l0_reverse"}


def one_bias_lstm(input_size, units):
    """A bidirectional `torch.nn.LSTM` whose `bias_hh` stays at zero,
    untrained, so that each gate has one trained bias, as in Keras."""
    lstm = nn.LSTM(input_size, units, batch_first=True, bidirectional=True)
    for suffix in LSTM_DIRECTIONS.values():
        bias = getattr(lstm, "bias_hh" + suffix)
        with torch.no_grad():
            bias.zero_()
        bias.requires_grad_(False)
    return lstm


class TokenAttentionDecoder(AttentionDecoder):
    """The token-mode Bahdanau decoder, its weights fused as Keras' cell
    fuses them and stored `(inputs, outputs)` as Keras stores them:
    `state_kernel` is the cell's `recurrent_kernel`, `input_kernel` its
    `feedback_kernel` above its `context_kernel`.

    Call arguments:
        memory: the encoder states, `(batch, T_in, memory_dim)`, zero at
            the padding.
        padding: boolean `(batch, T_in)`, True at the padding.
        output_length: the steps to decode, `T_out`.
        targets: the true ids, `(batch, T_out)`, for teacher forcing; or
            None to feed back the argmax of each step's logits.

    Returns:
        The logits, `(batch, T_out, vocabulary)`.
    """

    def __init__(self, memory_dim, units, vocabulary, embedding_dim):
        super().__init__(memory_dim, units, vocabulary, embedding_dim)
        self.vocabulary = vocabulary
        # Set by `set_keras_weights`, as every other weight.
        self.embeddings = nn.Parameter(torch.zeros(vocabulary, embedding_dim))

    def forward(self, memory, padding, output_length, targets=None):
        units, vocabulary = self.units, self.vocabulary
        keys = torch.matmul(memory, self.key_kernel) + self.key_bias
        # h_0 is the first step: the sources are padded on the right and
        # none is empty (`check_sources`).
        state = torch.tanh(torch.matmul(memory[:, 0], self.initial_kernel))
        start = torch.full((len(memory),), START_TOKEN, dtype=torch.long)
        feed = self.embeddings[start]
        if targets is not None:
            # The teacher's feeds, y_1 ... y_{T-1}, looked up at once.
            teacher = self.embeddings[targets[:, :-1]].unbind(1)
        step_logits = []
        for step in range(output_length):
            query, state_gates, state_logits = torch.matmul(
                state, self.state_kernel
            ).split([units, 2 * units, vocabulary], dim=1)
            context = self._context(memory, padding, keys, query)
            input_gates, input_proposal, input_logits = torch.addmm(
                self.bias, torch.cat([feed, context], 1), self.input_kernel
            ).split([2 * units, units, vocabulary], dim=1)
            state_logits = state_logits + input_logits
            step_logits.append(state_logits)
            state = self._next_state(
                state, state_gates, input_gates, input_proposal
            )
            if step + 1 < output_length:
                if targets is None:
                    feed = self.embeddings[state_logits.argmax(1)]
                else:
                    feed = teacher[step]
        return torch.stack(step_logits, dim=1)

    def _context(self, memory, padding, keys, query):
        """The context `c`, `(batch, memory_dim)`, of a step whose query
        is `W_a s`, `(batch, units)`."""
        scores = torch.tanh(keys + query[:, None]) @ self.score_vector
        weights = torch.softmax(scores.masked_fill(padding, -torch.inf), 1)
        return torch.bmm(weights[:, None], memory)[:, 0]

    def _next_state(self, state, state_gates, input_gates, input_proposal):
        """`s'` from `s`, `[U_r s | U_z s]` and the gates' other terms."""
        reset, update = torch.sigmoid(input_gates + state_gates).chunk(2, 1)
        proposal = torch.tanh(
            input_proposal + (reset * state) @ self.proposal_kernel
        )
        return torch.lerp(state, proposal, update)


class TranslationReference(nn.Module):
    """Source ids `(batch, T_in)`, padded on the right with `PAD_TOKEN`, to
    logits `(batch, T_out, vocabulary)`; with `targets`, teacher-forced."""

    def __init__(self, vocabulary, output_length):
        super().__init__()
        self.output_length = output_length
        self.source_embedding = nn.Embedding(vocabulary, EMBEDDING_DIM)
        self.encoder = one_bias_lstm(EMBEDDING_DIM, ENCODER_UNITS)
        self.decoder = TokenAttentionDecoder(
            MEMORY_DIM, DECODER_UNITS, vocabulary, EMBEDDING_DIM
        )

    def forward(self, source, targets=None):
        padding = source == PAD_TOKEN
        lengths = (~padding).sum(1)
        packed = rnn.pack_padded_sequence(
            self.source_embedding(source),
            lengths,
            batch_first=True,
            enforce_sorted=False,
        )
        # Zeros at the padding, as the Keras decoder zeroes masked steps.
        memory, _ = rnn.pad_packed_sequence(
            self.encoder(packed)[0],
            batch_first=True,
            total_length=source.shape[1],
        )
        return self.decoder(memory, padding, self.output_length, targets)


def set_keras_weights(reference, weights):
    """Sets `reference`'s weights to the Keras model's, `{name: array}` as
    `translation_keras.named_weights` names them: torch stores the LSTMs'
    kernels transposed, and the decoder's `input_kernel` is the cell's
    `feedback_kernel` above its `context_kernel`."""

    def tensor(name):
        return torch.from_numpy(weights[name]).float()

    encoder, decoder = reference.encoder, reference.decoder
    with torch.no_grad():
        reference.source_embedding.weight.copy_(tensor("source_embeddings"))
        for direction, suffix in LSTM_DIRECTIONS.items():
            for ours, theirs in (
                ("weight_ih", "kernel"),
                ("weight_hh", "recurrent_kernel"),
            ):
                getattr(encoder, ours + suffix).copy_(
                    tensor(f"{direction}_{theirs}").T
                )
            getattr(encoder, "bias_ih" + suffix).copy_(
                tensor(f"{direction}_bias")
            )
        for name in (
            "initial_kernel",
            "key_kernel",
            "key_bias",
            "score_vector",
            "proposal_kernel",
            "bias",
            "embeddings",
        ):
            getattr(decoder, name).copy_(tensor(f"decoder_{name}"))
        decoder.state_kernel.copy_(tensor("decoder_recurrent_kernel"))
        decoder.input_kernel.copy_(
            torch.cat(
                [
                    tensor("decoder_feedback_kernel"),
                    tensor("decoder_context_kernel"),
                ]
            )
        )


def check_sources(source):
    """Raises unless every source starts with a word: the reference takes
    `h_0` at step 0 and packs the sequences, which needs them padded on
    the right and none empty."""
    if (source[:, 0] == PAD_TOKEN).any():
        raise ValueError(
            "Expected source sentences padded on the right, none empty. "
            f"Received: {(source[:, 0] == PAD_TOKEN).sum()} starting with "
            "padding"
        )


def adam(model, learning_rate, warmup_steps, total_steps):
    """Keras' Adam settings, epsilon placement and schedule (a linear
    warm-up, then a cosine decay), on PyTorch's fused Adam, for the
    trainable weights.

    Keras' Adam steps by `m_hat / (sqrt(v_hat) + epsilon / sqrt(1 -
    beta_2^t))`, PyTorch's by `m_hat / (sqrt(v_hat) + epsilon)`: a hook
    sets PyTorch's epsilon before each step `t` to Keras' term.
    """
    optimizer = torch.optim.Adam(
        [weight for weight in model.parameters() if weight.requires_grad],
        lr=learning_rate,
        eps=ADAM_EPSILON,
        fused=True,
    )
    updates = [0]

    def keras_epsilon(optimizer, args, kwargs):
        updates[0] += 1
        for group in optimizer.param_groups:
            beta_2 = group["betas"][1]
            group["eps"] = ADAM_EPSILON / math.sqrt(1 - beta_2 ** updates[0])

    optimizer.register_step_pre_hook(keras_epsilon)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: learning_rate_factor(step, warmup_steps, total_steps),
    )
    return optimizer, schedule


def training_step(model, optimizer, schedule, source, target):
    """One update on a batch; returns its loss, a 0-d tensor."""
    logits = model(source, target)
    loss = functional.cross_entropy(
        logits.flatten(0, 1), target.flatten(), ignore_index=PAD_TOKEN
    )
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    schedule.step()
    return loss.detach()


def train_epoch(model, step, source, target, order):
    """One epoch in batches of `BATCH_SIZE` in the order `order` (a
    permutation of the sentences), the last one partial as in Keras'
    `fit`; returns the mean of the batches' losses, as the loss Keras
    logs."""
    model.train()
    losses = [
        step(source[batch], target[batch]) for batch in order.split(BATCH_SIZE)
    ]
    return torch.stack(losses).mean().item()


@torch.inference_mode()
def predict(model, source):
    """Free decoding in batches of `BATCH_SIZE`: the argmax of each step's
    logits, `(n_samples, T_out)` NumPy ids."""
    model.eval()
    return torch.cat(
        [model(batch).argmax(-1) for batch in source.split(BATCH_SIZE)]
    ).numpy()


def build(task):
    """The reference model for a task, from its initial weights."""
    settings = task["settings"]
    model = TranslationReference(
        settings["vocabulary"], settings["max_length"] + 1
    )
    set_keras_weights(model, task["initial_weights"])
    return model


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--task",
        required=True,
        help="the .npz of sentences and settings that translation.py wrote",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=available_cores(),
        help="`torch.set_num_threads`; defaults to the cores this process "
        "may use",
    )
    parser.add_argument(
        "--json-only",
        action="store_true",
        help="print only the final JSON line",
    )
    return parser.parse_args()


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    task = load_task(args.task)
    settings = task["settings"]
    source, target = (
        torch.from_numpy(task[name]).long()
        for name in ("train_source", "train_target")
    )
    check_sources(source)
    check_sources(torch.from_numpy(task["test_source"]))
    model = build(task)
    optimizer, schedule = adam(
        model,
        settings["learning_rate"],
        settings["warmup_steps"],
        training_steps(len(source), settings["epochs"]),
    )

    def step(source, target):
        return training_step(model, optimizer, schedule, source, target)

    seconds, losses = [], []
    for epoch, order in enumerate(torch.from_numpy(task["epoch_orders"])):
        start = time.perf_counter()
        losses.append(train_epoch(model, step, source, target, order))
        seconds.append(time.perf_counter() - start)
        if not args.json_only:
            print(
                f"epoch {epoch + 1}/{settings['epochs']}: loss "
                f"{losses[-1]:.4f}, {seconds[-1]:.1f} s",
                file=sys.stderr,
            )
    test_source = torch.from_numpy(task["test_source"]).long()
    predicted, predict_seconds = warm_median_seconds(
        lambda: predict(model, test_source), PREDICT_REPEATS
    )
    result = {
        "backend": "reference",
        "torch": torch.__version__,
        "threads": args.threads,
        **timing_fields(settings, seconds, task),
        "predict_tokens_per_second": round(
            counted_tokens(task["test_target"]) / predict_seconds, 1
        ),
        "losses": [round(loss, 5) for loss in losses],
        "accuracy": token_accuracy(predicted, task["test_target"]),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "params": sum(
            weight.numel()
            for weight in model.parameters()
            if weight.requires_grad
        ),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
