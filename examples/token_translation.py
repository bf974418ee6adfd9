"""A vocabulary of a thousand tokens: the attention decoder in token mode.

Sentences of a made-up language pair (`keras_seqext.datasets.
synthetic_translation`: Zipf-distributed words, each translated to a fixed
word or dropped, word order reversed in blocks of three) go in as token
ids through `DenseGradientEmbedding(mask_zero=True)` and a bidirectional
LSTM; an
`AttentionDecoder` in token mode (`embedding_dim`) writes the translation
as token ids, feeding back the embedding of each token it writes. It trains
with teacher forcing on logits (`output_activation=None`) with
`SparseCategoricalCrossentropy(from_logits=True, ignore_class=0)`, so the
padding after each target's end token counts for nothing.

After training it decodes the held-out sentences three ways, each stopping
at the end token: `greedy_decode`, `beam_search` (width 4, GNMT's length
penalty 0.6) and `sample_decode` (temperature 0.7, nucleus 0.9), and prints
for each the share of sentences translated exactly and the corpus BLEU
score (sacreBLEU, on the token ids as words).

It needs sacreBLEU, in the `examples` extra (`pip install -e
".[examples,jax]"`, or the test set-up of `make test`), and takes a few
minutes on a laptop's CPU with JAX. Run it with any backend:

    KERAS_BACKEND=jax python examples/token_translation.py [--epochs 8]
"""

import argparse
import time

import keras
import numpy as np

from keras_seqext import AttentionDecoder
from keras_seqext.datasets import END_TOKEN
from keras_seqext.datasets import START_TOKEN
from keras_seqext.datasets import synthetic_translation
from keras_seqext.decoding import beam_search
from keras_seqext.decoding import greedy_decode
from keras_seqext.decoding import sample_decode
from keras_seqext.layers import DenseGradientEmbedding

VOCABULARY = 1000
MIN_LENGTH, MAX_LENGTH = 8, 12
TRAIN_SAMPLES, TEST_SAMPLES = 20000, 1000
EMBEDDING_DIM, ENCODER_UNITS, DECODER_UNITS = 64, 64, 128
BATCH_SIZE = 64
LEARNING_RATE = 4e-3


def build_model():
    """The encoder and the token-mode decoder; the targets are a second,
    optional input, for teacher forcing in training only."""
    source = keras.Input((None,), dtype="int32", name="source")
    targets = keras.Input(
        (MAX_LENGTH + 1,), dtype="int32", name="targets", optional=True
    )
    # keras.layers.Embedding, with a gradient that Adam applies right on
    # TensorFlow to tokens repeated in a batch.
    embedded = DenseGradientEmbedding(
        VOCABULARY, EMBEDDING_DIM, mask_zero=True
    )(source)
    encoded = keras.layers.Bidirectional(
        keras.layers.LSTM(ENCODER_UNITS, return_sequences=True)
    )(embedded)
    logits = AttentionDecoder(
        DECODER_UNITS,
        VOCABULARY,
        embedding_dim=EMBEDDING_DIM,
        output_length=MAX_LENGTH + 1,
        start_token=START_TOKEN,
        output_activation=None,
        seed=0,
    )(encoded, targets=targets)
    return keras.Model([source, targets], logits)


def until_end(sequence):
    """The tokens of `sequence` before its first end token."""
    ends = np.flatnonzero(sequence == END_TOKEN)
    return sequence[: ends[0]] if len(ends) else sequence


def scores(decoded, references):
    """Exact match (up to the end token) and corpus BLEU, in percent."""
    import sacrebleu

    hypotheses = [until_end(s) for s in decoded]
    truths = [until_end(s) for s in references]
    exact = np.mean([np.array_equal(h, t) for h, t in zip(hypotheses, truths)])
    as_text = [" ".join(f"w{token}" for token in s) for s in hypotheses]
    truth_text = [" ".join(f"w{token}" for token in s) for s in truths]
    bleu = sacrebleu.corpus_bleu(as_text, [truth_text], tokenize="none")
    return 100 * exact, bleu.score


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    keras.utils.set_random_seed(args.seed)
    train = synthetic_translation(
        TRAIN_SAMPLES, VOCABULARY, MIN_LENGTH, MAX_LENGTH, seed=1
    )
    test_source, test_target = synthetic_translation(
        TEST_SAMPLES, VOCABULARY, MIN_LENGTH, MAX_LENGTH, seed=2
    )
    model = build_model()
    steps = args.epochs * -(-TRAIN_SAMPLES // BATCH_SIZE)
    model.compile(
        keras.optimizers.Adam(
            keras.optimizers.schedules.CosineDecay(LEARNING_RATE, steps)
        ),
        keras.losses.SparseCategoricalCrossentropy(
            from_logits=True, ignore_class=0
        ),
    )
    print(f"{model.count_params():,} parameters; {keras.backend.backend()}")
    start = time.perf_counter()
    model.fit(
        [train[0], train[1]],
        train[1],
        batch_size=BATCH_SIZE,
        epochs=args.epochs,
        verbose=2,
    )
    print(f"trained in {time.perf_counter() - start:.0f} s\n")

    inputs = [test_source, None]
    decodings = {
        "greedy": greedy_decode(model, inputs, end_token=END_TOKEN),
        "beam search, width 4": beam_search(
            model, inputs, 4, end_token=END_TOKEN, length_penalty=0.6
        ),
        "sampling, T=0.7, top-p 0.9": sample_decode(
            model,
            inputs,
            temperature=0.7,
            top_p=0.9,
            seed=args.seed,
            end_token=END_TOKEN,
        ),
    }
    print("| decoding | exact match | BLEU |")
    print("|---|---|---|")
    for name, (sequences, _, _) in decodings.items():
        exact, bleu = scores(sequences, test_target)
        print(f"| {name} | {exact:.1f}% | {bleu:.1f} |")


if __name__ == "__main__":
    main()
