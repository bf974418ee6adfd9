"""A synthetic translation task with a vocabulary of any size, for token
ids in and out.

A made-up "language pair": source sentences draw their words from a Zipf
distribution, as natural text does, and each word translates to one fixed
target word, or to none. The translation also reverses the word order
within blocks of three, so a target word rarely sits at its source word's
position, and the target is shorter than the source by the words that are
dropped: a decoder has to learn where to look, which is what attention is
for. The language is fixed by `language_seed`, so training and held-out
sentences drawn with other `seed`s share it.
"""

import numpy as np

from keras_seqext._validation import check_finite
from keras_seqext._validation import check_positive_int
from keras_seqext._validation import check_seed

PAD_TOKEN = 0
START_TOKEN = 1
END_TOKEN = 2
# Word ids start after the three special tokens.
FIRST_WORD = 3
# Words are reversed in blocks of this many.
REORDER_BLOCK = 3
# The share of the words (by id, not by frequency) that have no
# translation, so that targets are shorter than their sources.
DROPPED_SHARE = 0.1


def synthetic_translation(
    n_samples,
    vocabulary_size=8000,
    min_length=16,
    max_length=24,
    zipf_exponent=1.0,
    seed=None,
    language_seed=0,
):
    """Sentence pairs of a synthetic language pair, as padded token ids.

    Source word `w` (ids `FIRST_WORD` to `vocabulary_size - 1`, the most
    frequent first) is drawn with probability proportional to
    `1 / rank(w) ** zipf_exponent`. The target reverses each block of
    `REORDER_BLOCK` source words, maps each word through a fixed
    permutation of the word ids, leaves out the words that translate to
    nothing (a fixed tenth of the words), and ends with `END_TOKEN`. Both
    are padded with `PAD_TOKEN` (0), for `Embedding(mask_zero=True)` and
    `SparseCategoricalCrossentropy(ignore_class=0)`; `START_TOKEN` is left
    for the decoder's `start_token`.

    Args:
        n_samples: Positive integer, the number of sentence pairs.
        vocabulary_size: Integer above `FIRST_WORD`, the number of token ids
            of each side, special tokens included. Defaults to `8000`.
        min_length: Positive integer, the shortest source sentence.
            Defaults to `16`.
        max_length: Integer at least `min_length`, the longest source
            sentence. Defaults to `24`.
        zipf_exponent: Non-negative number, the exponent of the word
            frequencies: 0 draws every word equally often, 1 is close to
            natural text. Defaults to `1.0`.
        seed: Integer seed of the sentences, or None for fresh randomness.
            Defaults to `None`.
        language_seed: Integer seed of the language itself (the word
            mapping and the dropped words). Defaults to `0`.

    Returns:
        `(source, target)`, int32 arrays `(n_samples, max_length)` and
        `(n_samples, max_length + 1)`.

    Raises:
        ValueError: on a bad argument value.

    Example:

    >>> source, target = keras_seqext.datasets.synthetic_translation(
    ...     2, vocabulary_size=100, min_length=4, max_length=6, seed=0)
    >>> source.shape, target.shape
    ((2, 6), (2, 7))
    >>> int((target == keras_seqext.datasets.END_TOKEN).sum())
    2
    """
    owner = "synthetic_translation"
    n_samples = check_positive_int(owner, "n_samples", n_samples)
    vocabulary_size = check_positive_int(
        owner, "vocabulary_size", vocabulary_size
    )
    if vocabulary_size <= FIRST_WORD:
        raise ValueError(
            f"Invalid value for argument `vocabulary_size` of {owner}. "
            f"Expected more than {FIRST_WORD} ids: the padding, start and "
            f"end tokens and at least one word. Received: "
            f"vocabulary_size={vocabulary_size!r}"
        )
    min_length = check_positive_int(owner, "min_length", min_length)
    max_length = check_positive_int(owner, "max_length", max_length)
    if max_length < min_length:
        raise ValueError(
            f"Invalid value for argument `max_length` of {owner}. Expected "
            f"at least min_length={min_length}. Received: "
            f"max_length={max_length}"
        )
    zipf_exponent = check_finite(
        owner,
        "zipf_exponent",
        zipf_exponent,
        "a finite non-negative number",
        lambda exponent: exponent >= 0,
    )
    seed = check_seed(owner, "seed", seed)
    language_seed = check_seed(owner, "language_seed", language_seed)
    if language_seed is None:
        raise ValueError(
            f"Invalid value for argument `language_seed` of {owner}. "
            "Expected an integer, so that every call draws from the same "
            "language. Received: language_seed=None"
        )

    translation = _language(vocabulary_size, language_seed)
    n_words = vocabulary_size - FIRST_WORD
    frequencies = 1.0 / np.arange(1, n_words + 1) ** zipf_exponent
    rng = np.random.default_rng(seed)
    lengths = rng.integers(min_length, max_length + 1, size=n_samples)
    words = FIRST_WORD + rng.choice(
        n_words, size=(n_samples, max_length), p=frequencies / frequencies.sum()
    )
    source = np.where(np.arange(max_length) < lengths[:, None], words, 0)
    target = np.full((n_samples, max_length + 1), PAD_TOKEN)
    for i, (sentence, length) in enumerate(zip(source, lengths)):
        translated = translation[_reordered(sentence[:length])]
        kept = translated[translated != PAD_TOKEN]
        target[i, : len(kept) + 1] = [*kept, END_TOKEN]
    return source.astype("int32"), target.astype("int32")


def _language(vocabulary_size, language_seed):
    """The word mapping: `translation[w]` is the target id of source word
    `w`, `PAD_TOKEN` for a word that has no translation."""
    rng = np.random.default_rng(language_seed)
    words = np.arange(FIRST_WORD, vocabulary_size)
    translation = np.zeros(vocabulary_size, "int64")
    translation[words] = rng.permutation(words)
    dropped = rng.random(len(words)) < DROPPED_SHARE
    translation[words[dropped]] = PAD_TOKEN
    return translation


def _reordered(words):
    """`words` with each block of `REORDER_BLOCK` reversed (the last block
    may be shorter)."""
    blocks = [
        words[start : start + REORDER_BLOCK][::-1]
        for start in range(0, len(words), REORDER_BLOCK)
    ]
    return np.concatenate(blocks)
