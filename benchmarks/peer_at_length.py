"""The PyTorch peer's training time at any sequence length, for the sweep.

What: trains the peer's model (`torch_attention_peer.py` in the shared
`peers/` folder: its own modules and training loop) on the copy task at
length T, T random integers in [0, 50) in and the same T out, for a number
of epochs, the first being the warm-up, and prints one JSON line with the
fields of `attention_decoder.py --train-only` that `run_all.py`'s length
sweep reads: `epochs`, `train_samples` and `timed_seconds`.

Why: the peer script trains at the tutorial's length, 5, only. Beside our
backends in the sweep, the peer shows how the model's own cost grows with
the length, whoever implements it.

How: `run_all.py` runs it, as

    .venv/bin/python benchmarks/peer_at_length.py --length 80 \\
        --train-samples 128 [--batch-size 16] [--epochs 2] [--threads 2]

Each epoch is one call of the peer's training loop, which makes a new Adam
optimizer each time; a new optimizer's first step sets up its state, a
small cost next to an epoch.
"""

import argparse
import json
from pathlib import Path

import torch
from run_all import DEFAULT_PEER
from run_all import load_peer


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--length", type=int, required=True)
    parser.add_argument("--train-samples", type=int, required=True)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument(
        "--epochs",
        type=int,
        default=2,
        help="epochs in all, the first being the warm-up (at least 2)",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--peer", type=Path, default=DEFAULT_PEER)
    args = parser.parse_args()
    if args.epochs < 2:
        parser.error(
            "--epochs must be at least 2: the first epoch is the warm-up. "
            f"Received: {args.epochs}"
        )
    return args


def main():
    args = parse_args()
    peer = load_peer(args.peer)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    sequence = torch.randint(
        0,
        peer.CARDINALITY,
        (args.train_samples, args.length),
        generator=generator,
    )
    inputs = torch.nn.functional.one_hot(sequence, peer.CARDINALITY).float()
    model = peer.AttentionModel()
    seconds = [
        peer.train(
            model,
            inputs,
            sequence,
            batch_size=args.batch_size,
            epochs=1,
            seed=args.seed + epoch,
            verbose=False,
        )
        for epoch in range(args.epochs)
    ]
    result = {
        "backend": "peer",
        "length": args.length,
        "batch_size": args.batch_size,
        "epochs": args.epochs,
        "train_samples": args.train_samples,
        "warmup_epoch_seconds": round(seconds[0], 3),
        "timed_seconds": round(sum(seconds[1:]), 3),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
