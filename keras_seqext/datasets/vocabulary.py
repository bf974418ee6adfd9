"""Character vocabularies: strings to padded integer ids or one-hot arrays,
and model outputs back to strings."""

import numpy as np

from keras_seqext._validation import check_positive_int


class CharacterVocabulary:
    """Maps strings to integer ids, one per character, and back.

    The characters get the ids 1 to `len(characters)`; id 0 is padding, so
    encoded batches suit `keras.layers.Embedding(mask_zero=True)`, and
    `size` (the number of characters plus one) is the embedding's
    `input_dim` or the number of output classes.

    Args:
        characters: String of distinct characters, in id order.

    Raises:
        ValueError: when `characters` is empty or repeats a character.

    Example:

    >>> vocabulary = keras_seqext.datasets.CharacterVocabulary("abc")
    >>> vocabulary.size
    4
    >>> vocabulary.encode(["cab", "b"])
    array([[3, 1, 2],
           [2, 0, 0]], dtype=int32)
    >>> vocabulary.decode(vocabulary.one_hot(["cab", "b"]))
    ['cab', 'b']
    """

    def __init__(self, characters):
        if (
            not isinstance(characters, str)
            or not characters
            or len(set(characters)) != len(characters)
        ):
            raise ValueError(
                "Invalid value for argument `characters` of "
                "CharacterVocabulary. Expected a non-empty string of "
                f"distinct characters. Received: characters={characters!r}"
            )
        self.characters = characters
        self.size = len(characters) + 1
        self._ids = {c: i for i, c in enumerate(characters, start=1)}

    def encode(self, strings, length=None):
        """Integer ids of `strings`, padded with 0 at the end.

        Args:
            strings: Sequence of strings.
            length: Positive integer, the length to pad to, or None for the
                longest of `strings`. Defaults to `None`.

        Returns:
            An int32 array `(len(strings), length)`.

        Raises:
            ValueError: when a string has a character outside the
                vocabulary or is longer than `length`.
        """
        strings = self._check_strings("encode", strings)
        if length is None:
            length = max(map(len, strings), default=0)
        else:
            length = check_positive_int(
                "CharacterVocabulary.encode", "length", length
            )
        ids = np.zeros((len(strings), length), dtype="int32")
        for row, text in enumerate(strings):
            if len(text) > length:
                raise ValueError(
                    "Invalid value for argument `strings` of "
                    f"CharacterVocabulary.encode. Expected strings of at "
                    f"most length={length} characters. Received: {text!r} "
                    f"({len(text)} characters)"
                )
            ids[row, : len(text)] = [self._ids[c] for c in text]
        return ids

    def one_hot(self, strings, length=None):
        """One-hot encoding of `strings`; padding steps are one-hot on 0.

        Args:
            strings: Sequence of strings.
            length: Positive integer, the length to pad to, or None for the
                longest of `strings`. Defaults to `None`.

        Returns:
            A float32 array `(len(strings), length, size)`.

        Raises:
            ValueError: as `encode` does.
        """
        return np.eye(self.size, dtype="float32")[self.encode(strings, length)]

    def decode(self, sequences):
        """Strings from ids or from per-step scores, padding left out.

        Args:
            sequences: Integer ids `(batch, steps)`, or scores such as a
                model's predicted probabilities `(batch, steps, size)`, of
                which each step's argmax is taken. NumPy arrays or backend
                tensors.

        Returns:
            A list of `batch` strings; steps with id 0 (padding) are left
            out.

        Raises:
            ValueError: on another rank, a last axis other than `size` for
                scores, or ids outside `[0, size)`.
        """
        sequences = np.asarray(sequences)
        owner = "CharacterVocabulary.decode"
        if sequences.ndim == 3:
            if sequences.shape[-1] != self.size:
                raise ValueError(
                    f"Invalid shape for argument `sequences` of {owner}. "
                    f"Expected scores (batch, steps, {self.size}), the "
                    "vocabulary size. Received: "
                    f"sequences.shape={sequences.shape}"
                )
            sequences = sequences.argmax(-1)
        elif sequences.ndim != 2:
            raise ValueError(
                f"Invalid shape for argument `sequences` of {owner}. "
                "Expected ids (batch, steps) or scores (batch, steps, "
                f"{self.size}). Received: sequences.shape={sequences.shape}"
            )
        if not np.issubdtype(sequences.dtype, np.integer):
            raise ValueError(
                f"Invalid value for argument `sequences` of {owner}. "
                "Expected integer ids (batch, steps), or scores (batch, "
                f"steps, {self.size}). Received: ids of dtype "
                f"{sequences.dtype}"
            )
        if sequences.size and (
            sequences.min() < 0 or sequences.max() >= self.size
        ):
            raise ValueError(
                f"Invalid value for argument `sequences` of {owner}. "
                f"Expected ids in [0, {self.size}). Received ids from "
                f"{sequences.min()} to {sequences.max()}"
            )
        # Index 0 of the table maps padding to the empty string.
        table = ["", *self.characters]
        return ["".join(table[i] for i in row) for row in sequences.tolist()]

    def _check_strings(self, method, strings):
        if isinstance(strings, str):
            raise ValueError(
                f"Invalid value for argument `strings` of "
                f"CharacterVocabulary.{method}. Expected a sequence of "
                f"strings, not one string. Received: strings={strings!r}"
            )
        strings = list(strings)
        for text in strings:
            unknown = sorted(set(text) - self._ids.keys())
            if unknown:
                raise ValueError(
                    f"Invalid value for argument `strings` of "
                    f"CharacterVocabulary.{method}. Expected characters of "
                    f"{self.characters!r}. Received: {text!r}, with "
                    f"{''.join(unknown)!r}"
                )
        return strings

    def __repr__(self):
        return f"CharacterVocabulary({self.characters!r})"


# Every character a date can be typed with, not only the ones `dates()`
# writes, so that typed examples with other letters still encode.
