"""The tutorials' sequence tasks, generated from a seed as NumPy arrays.

Each function returns `(inputs, targets)`, both one-hot float32 arrays of
shape `(n_samples, steps, cardinality)`. Pass different seeds for training
and held-out data.
"""

import numpy as np

from keras_seqext._validation import check_positive_int
from keras_seqext._validation import check_seed


def copy_first(n_samples, n_in=5, n_out=2, cardinality=50, seed=None):
    """The attention tutorial's task: copy the first `n_out` integers.

    Inputs are `n_in` random integers in `[0, cardinality)`; the target has
    the same length, its first `n_out` steps equal to the input's and the
    rest class 0. With the defaults (first 2 of 5, cardinality 50) a plain
    encoder-decoder gets about a quarter of the sequences right and an
    attention decoder nearly all.

    Args:
        n_samples: Positive integer, the number of sequences.
        n_in: Positive integer, the input length. Defaults to `5`.
        n_out: Positive integer at most `n_in`, the number of integers to
            copy. Defaults to `2`.
        cardinality: Positive integer, the number of classes. Defaults to
            `50`.
        seed: Integer seed of the generator, or None for fresh randomness.
            Defaults to `None`.

    Returns:
        `(inputs, targets)`, each `(n_samples, n_in, cardinality)`.

    Example:

    >>> x, y = keras_seqext.datasets.copy_first(3, seed=0)
    >>> x.shape, y.shape
    ((3, 5, 50), (3, 5, 50))
    >>> bool((y.argmax(-1)[:, :2] == x.argmax(-1)[:, :2]).all())
    True
    """
    sequences = _random_sequences(
        "copy_first", n_samples, ("n_in", n_in), cardinality, seed
    )
    n_out = _check_length("copy_first", "n_out", n_out, n_in)
    targets = np.zeros_like(sequences)
    targets[:, :n_out] = sequences[:, :n_out]
    return _one_hot(sequences, cardinality), _one_hot(targets, cardinality)


def reverse_sequence(n_samples, n_in=4, n_out=None, cardinality=10, seed=None):
    """The reversal task: the target is the input's first `n_out` reversed.

    Args:
        n_samples: Positive integer, the number of sequences.
        n_in: Positive integer, the input length. Defaults to `4`.
        n_out: Positive integer at most `n_in`, the target length, or None
            to reverse the whole input. Defaults to `None`.
        cardinality: Positive integer, the number of classes. Defaults to
            `10`.
        seed: Integer seed of the generator, or None for fresh randomness.
            Defaults to `None`.

    Returns:
        `(inputs, targets)`, shapes `(n_samples, n_in, cardinality)` and
        `(n_samples, n_out, cardinality)`.

    Example:

    >>> x, y = keras_seqext.datasets.reverse_sequence(1, seed=0)
    >>> bool((y.argmax(-1) == x.argmax(-1)[:, ::-1]).all())
    True
    """
    sequences = _random_sequences(
        "reverse_sequence", n_samples, ("n_in", n_in), cardinality, seed
    )
    n_out = n_in if n_out is None else n_out
    n_out = _check_length("reverse_sequence", "n_out", n_out, n_in)
    targets = sequences[:, :n_out][:, ::-1]
    return _one_hot(sequences, cardinality), _one_hot(targets, cardinality)


def echo_sequence(n_samples, length=5, cardinality=10, seed=None):
    """The echo task: the target is the input itself, step by step.

    Args:
        n_samples: Positive integer, the number of sequences.
        length: Positive integer, the sequence length. Defaults to `5`.
        cardinality: Positive integer, the number of classes. Defaults to
            `10`.
        seed: Integer seed of the generator, or None for fresh randomness.
            Defaults to `None`.

    Returns:
        `(inputs, targets)`, two equal `(n_samples, length, cardinality)`
        arrays.

    Example:

    >>> x, y = keras_seqext.datasets.echo_sequence(2, seed=0)
    >>> x.shape, bool((x == y).all())
    ((2, 5, 10), True)
    """
    sequences = _random_sequences(
        "echo_sequence", n_samples, ("length", length), cardinality, seed
    )
    inputs = _one_hot(sequences, cardinality)
    return inputs, inputs.copy()


def _random_sequences(owner, n_samples, named_length, cardinality, seed):
    """`n_samples` sequences of random integers, their length given as
    `(argument name, value)` so that an error names the caller's."""
    n_samples = check_positive_int(owner, "n_samples", n_samples)
    length = check_positive_int(owner, *named_length)
    cardinality = check_positive_int(owner, "cardinality", cardinality)
    rng = np.random.default_rng(check_seed(owner, "seed", seed))
    return rng.integers(0, cardinality, size=(n_samples, length))


def _check_length(owner, name, value, limit):
    value = check_positive_int(owner, name, value)
    if value > limit:
        raise ValueError(
            f"Invalid value for argument `{name}` of {owner}. Expected at "
            f"most the input length {limit}. Received: {name}={value}"
        )
    return value


def _one_hot(sequences, cardinality):
    return np.eye(cardinality, dtype="float32")[sequences]
