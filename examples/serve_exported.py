"""Decodes held-out sentences with a decoder exported by
`keras_seqext.decoding.export_for_serving`, without Keras.

Run by `examples/serving.py`, in a process of its own; it imports NumPy and
the exported folder's `seq2seq_serving.py` (which imports the format's
runtime, onnxruntime or LiteRT), and checks at the end that neither Keras
nor keras_seqext was imported.

    python examples/serve_exported.py EXPORTED_FOLDER HELD_OUT.npz
"""

import sys

import numpy as np

END_TOKEN, BEAM_WIDTH, LENGTH_PENALTY = 2, 4, 0.6


def exact_match(sequences, targets):
    """The share of sentences decoded right up to and including the end."""
    counted = (
        np.cumsum(targets == END_TOKEN, axis=1) - (targets == END_TOKEN) == 0
    )
    return np.mean(np.all((sequences == targets) | ~counted, axis=1))


def main():
    directory, held_out = sys.argv[1:3]
    sys.path.insert(0, directory)
    import seq2seq_serving

    data = np.load(held_out)
    decoder = seq2seq_serving.ServedDecoder(directory)
    greedy, _, _ = decoder.greedy_decode([data["source"]], end_token=END_TOKEN)
    beam, _, _ = decoder.beam_search(
        [data["source"]],
        BEAM_WIDTH,
        end_token=END_TOKEN,
        length_penalty=LENGTH_PENALTY,
    )
    print("| decoding | exact match | as in Keras |")
    print("|---|---|---|")
    for name, sequences in (("greedy", greedy), ("beam search", beam)):
        same = np.array_equal(sequences, data[name.split()[0]])
        match = exact_match(sequences, data["target"])
        print(f"| {name} | {match:.1%} | {'yes' if same else 'NO'} |")
    imported = sorted(
        name
        for name in sys.modules
        if name.split(".")[0] in ("keras", "keras_seqext")
    )
    print(f"Keras or keras_seqext imported: {imported or 'none'}")


if __name__ == "__main__":
    main()
