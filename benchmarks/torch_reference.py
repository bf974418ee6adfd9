"""The benchmarked model written by hand in eager PyTorch: the reference.

What: an `LSTM(150)` encoder returning every state, read by a Bahdanau
attention decoder of 150 units emitting 50 classes, the same math as
`keras_seqext.AttentionDecoder` (see `AttentionDecoderCell`'s docstring):

```
e_j = v_a . tanh(W_a s + U_a h_j + b_a)    a = softmax(e)    c = sum a_j h_j
r  = sigmoid(W_r y + U_r s + C_r c + b_r)
z  = sigmoid(W_z y + U_z s + C_z c + b_z)
p  = tanh(W_p y + U_p (r * s) + C_p c + b_p)
s' = (1 - z) * s + z * p
y' = softmax(W_o y + U_o s + C_o c + b_o)
```

with `s_0 = tanh(W_s h_0)` and `y_0 = 0`. The output `y'` reads the
*previous* state `s`, and the next step is fed `y'` itself (the soft
output distribution), as in the Keras layer. It trains on the copy task of
`_copy_task.py` with Adam (`fused=True`, learning rate 1e-3, epsilon 1e-7,
Keras' defaults) and the cross-entropy of every output step, on the same
samples, batch size and epochs as `attention_decoder.py`, and prints the
same JSON fields, so that `run_all.py` runs either script alike.

Why: the benchmarks compare keras-seqext with what a careful engineer
would write in eager PyTorch, not with a strawman. So the keys `U_a h + b_a`
are computed once per sequence; each step multiplies `s` once by
`[W_a | U_r | U_z | U_o]` and `[y, c]` once by the stacked `W` and `C`
blocks; the loss reads the logits (`cross_entropy`), not the log of the
softmax; and the encoder is `torch.nn.LSTM`'s fused loop. The weights start
from the distributions Keras draws them from (Glorot-uniform kernels,
orthogonal recurrent kernels, zero biases and a forget-gate bias of 1), so
that the two sides' accuracies compare. `torch.nn.LSTM` keeps two bias
vectors where Keras keeps one, so the reference has 600 more parameters.
It imports only torch and NumPy.

How the numbers are taken, as in `attention_decoder.py`: training is timed
epoch by epoch, the first being the warm-up and reported apart; inference
is one forward pass over the 1000 held-out samples as a single batch,
once to warm up, then the median of 5; accuracy is held-out exact match;
peak RSS is read before the float32 2048 x 2048 matmul is timed.

    .venv/bin/python benchmarks/torch_reference.py [--batch-size 16] \\
        [--epochs 10] [--length 5] [--train-samples 5000] [--threads N] \\
        [--train-only] [--json-only]

`--threads` defaults to the cores this process may use, as many as the
Keras backends use; `--length T` copies all T integers, for the length
sweep, where `--train-only` skips inference and accuracy.
"""

import argparse
import json
import math
import sys
import time

import torch
from _copy_task import ADAM_EPSILON
from _copy_task import CARDINALITY
from _copy_task import LEARNING_RATE
from _copy_task import TEST_SAMPLES
from _copy_task import TRAIN_SAMPLES
from _copy_task import TUTORIAL_LENGTH
from _copy_task import UNITS
from _copy_task import copy_task
from _copy_task import exact_match
from _copy_task import training_flop_per_sample
from _processes import available_cores
from _processes import peak_rss_mb
from _timing import warm_median_seconds
from torch import nn
from torch.nn import functional

PREDICT_REPEATS = 5
MATMUL_SIZE = 2048
MATMUL_REPEATS = 5
LSTM_GATES = 4  # input, forget, cell, output: torch's order, and Keras'


def glorot_uniform_(weight, fan_in, fan_out):
    """Keras' default kernel initializer, given the fans Keras would
    compute for the kernel (a fused kernel holds several)."""
    limit = math.sqrt(6 / (fan_in + fan_out))
    with torch.no_grad():
        return weight.uniform_(-limit, limit)


def keras_like_lstm(input_size, units):
    """A `torch.nn.LSTM` returning every state, initialized as Keras' LSTM:
    a Glorot-uniform input kernel, an orthogonal recurrent kernel, zero
    biases but 1 for the forget gate (`unit_forget_bias`)."""
    lstm = nn.LSTM(input_size, units, batch_first=True)
    glorot_uniform_(lstm.weight_ih_l0, input_size, LSTM_GATES * units)
    nn.init.orthogonal_(lstm.weight_hh_l0)
    with torch.no_grad():
        lstm.bias_ih_l0.zero_()
        lstm.bias_hh_l0.zero_()
        lstm.bias_ih_l0[units : 2 * units] = 1.0
    return lstm


class AttentionDecoder(nn.Module):
    """The Bahdanau decoder, as many steps as the memory has.

    The kernels are stored `(inputs, outputs)`, as Keras stores them, and
    fused one per input of a step: `state_kernel` is `[W_a | U_r | U_z |
    U_o]`, `input_kernel` is `[W_r | W_z | W_p | W_o]` above `[C_r | C_z |
    C_p | C_o]`, applied to `[y, c]`.

    Call arguments:
        memory: the encoder states, `(batch, T, memory_dim)`.

    Returns:
        The output logits, `(batch, T, output_dim)`: `y'` before its
        softmax.
    """

    def __init__(self, memory_dim, units, output_dim, feedback_dim=None):
        # `feedback_dim`: the width of the fed-back `y`, the one-hot output
        # here, an embedding in the token mode's reference.
        super().__init__()
        self.units, self.output_dim = units, output_dim
        gates_dim = 3 * units + output_dim

        def kernel(fan_in, fan_out):
            weight = nn.Parameter(torch.empty(fan_in, fan_out))
            return glorot_uniform_(weight, fan_in, fan_out)

        self.initial_kernel = kernel(memory_dim, units)
        self.key_kernel = kernel(memory_dim, units)
        self.key_bias = nn.Parameter(torch.zeros(units))
        # Keras gives both fans of a vector its length.
        self.score_vector = glorot_uniform_(
            nn.Parameter(torch.empty(units)), units, units
        )
        # The query, then the reset, update and output blocks: no proposal
        # block, since U_p multiplies r * s, not s.
        self.state_kernel = nn.Parameter(
            torch.empty(units, units + 2 * units + output_dim)
        )
        nn.init.orthogonal_(self.state_kernel)
        self.proposal_kernel = nn.Parameter(torch.empty(units, units))
        nn.init.orthogonal_(self.proposal_kernel)
        # Two blocks with their own fans, as Keras' two kernels have.
        self.input_kernel = nn.Parameter(
            torch.cat(
                [
                    kernel(feedback_dim or output_dim, gates_dim).detach(),
                    kernel(memory_dim, gates_dim).detach(),
                ]
            )
        )
        self.bias = nn.Parameter(torch.zeros(gates_dim))

    def forward(self, memory):
        units, output_dim = self.units, self.output_dim
        keys = torch.matmul(memory, self.key_kernel) + self.key_bias
        state = torch.tanh(torch.matmul(memory[:, 0], self.initial_kernel))
        output = memory.new_zeros(len(memory), output_dim)
        logits = []
        for _ in range(memory.shape[1]):
            query, state_gates, state_to_output = torch.matmul(
                state, self.state_kernel
            ).split([units, 2 * units, output_dim], dim=1)
            scores = torch.tanh(keys + query[:, None]) @ self.score_vector
            weights = torch.softmax(scores, dim=1)
            context = torch.bmm(weights[:, None], memory)[:, 0]
            input_gates, input_proposal, input_to_output = torch.addmm(
                self.bias, torch.cat([output, context], 1), self.input_kernel
            ).split([2 * units, units, output_dim], dim=1)
            reset, update = torch.sigmoid(input_gates + state_gates).chunk(
                2, dim=1
            )
            proposal = torch.tanh(
                input_proposal + (reset * state) @ self.proposal_kernel
            )
            logit = input_to_output + state_to_output
            logits.append(logit)
            output = torch.softmax(logit, dim=1)
            state = torch.lerp(state, proposal, update)
        return torch.stack(logits, dim=1)


class ReferenceModel(nn.Module):
    """The LSTM encoder, then the attention decoder: `(batch, T, 50)`
    one-hot inputs to `(batch, T, 50)` logits."""

    def __init__(self):
        super().__init__()
        self.encoder = keras_like_lstm(CARDINALITY, UNITS)
        self.decoder = AttentionDecoder(UNITS, UNITS, CARDINALITY)

    def forward(self, inputs):
        return self.decoder(self.encoder(inputs)[0])


def adam(model):
    """Keras' Adam settings, on PyTorch's fused implementation."""
    return torch.optim.Adam(
        model.parameters(), lr=LEARNING_RATE, eps=ADAM_EPSILON, fused=True
    )


def train_epoch(model, optimizer, inputs, classes, batch_size, generator):
    """One epoch in shuffled batches, the last one partial as in Keras'
    `fit`; returns the mean loss of its samples.

    Args:
        model: maps `inputs[batch]` to logits, `(batch, T, classes)`.
        optimizer: steps `model`'s parameters.
        inputs: `(n_samples, T, features)`.
        classes: the target classes, int64 `(n_samples, T)`.
        batch_size: samples per step.
        generator: the `torch.Generator` that shuffles.

    Returns:
        The epoch's mean cross-entropy, a Python float.
    """
    model.train()
    order = torch.randperm(len(inputs), generator=generator)
    total = torch.zeros(())
    for batch in order.split(batch_size):
        logits = model(inputs[batch])
        loss = functional.cross_entropy(
            logits.flatten(0, 1), classes[batch].flatten()
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.detach() * len(batch)
    return total.item() / len(inputs)


@torch.inference_mode()
def predict(model, inputs):
    model.eval()
    return model(inputs)


def matmul_flops_per_second(size=MATMUL_SIZE):
    """The best float32 matmul speed of torch here, in FLOP/s."""
    generator = torch.Generator().manual_seed(0)
    a, b = (torch.randn(size, size, generator=generator) for _ in range(2))
    best = float("inf")
    for _ in range(MATMUL_REPEATS + 1):  # the first call warms up
        start = time.perf_counter()
        torch.matmul(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


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
        "--threads",
        type=int,
        default=available_cores(),
        help="`torch.set_num_threads`; defaults to the cores this process "
        "may use",
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
    for flag, value in [
        ("--batch-size", args.batch_size),
        ("--length", args.length),
        ("--train-samples", args.train_samples),
        ("--threads", args.threads),
    ]:
        if value < 1:
            parser.error(f"{flag} must be at least 1. Received: {value}")
    return args


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    x_train, y_train = (
        torch.from_numpy(array)
        for array in copy_task(args.train_samples, args.length, args.seed)
    )
    model = ReferenceModel()
    optimizer = adam(model)
    seconds, losses = [], []
    for epoch in range(args.epochs):
        start = time.perf_counter()
        losses.append(
            train_epoch(
                model, optimizer, x_train, y_train, args.batch_size, generator
            )
        )
        seconds.append(time.perf_counter() - start)
        if not args.json_only:
            print(
                f"epoch {epoch + 1}/{args.epochs}: loss {losses[-1]:.4f}, "
                f"{seconds[-1]:.2f} s",
                file=sys.stderr,
            )
    timed_seconds = sum(seconds[1:])
    train_rate = (args.epochs - 1) * args.train_samples / timed_seconds
    result = {
        "backend": "reference",
        "torch": torch.__version__,
        "threads": args.threads,
        "batch_size": args.batch_size,
        "epochs": args.epochs,
        "length": args.length,
        "train_samples": args.train_samples,
        "warmup_epoch_seconds": round(seconds[0], 3),
        "timed_seconds": round(timed_seconds, 3),
        "train_seconds": round(sum(seconds), 3),
        "train_samples_per_second": round(train_rate, 1),
        "final_loss": round(losses[-1], 5),
    }
    if not args.train_only:
        x_test, y_test = copy_task(TEST_SAMPLES, args.length, args.seed + 1)
        logits, predict_seconds = warm_median_seconds(
            lambda: predict(model, torch.from_numpy(x_test)), PREDICT_REPEATS
        )
        result.update(
            predict_samples_per_second=round(TEST_SAMPLES / predict_seconds, 1),
            accuracy=exact_match(logits.argmax(-1).numpy(), y_test),
        )
    result["peak_rss_mb"] = round(peak_rss_mb(), 1)
    flop = training_flop_per_sample(args.length)
    matmul_flops = matmul_flops_per_second()
    result.update(
        params=sum(weight.numel() for weight in model.parameters()),
        flop_per_training_sample=flop,
        matmul_gflops=round(matmul_flops / 1e9, 2),
        share_of_backend_gemm_bound=round(train_rate * flop / matmul_flops, 4),
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
