"""Argument and shape checks shared by the layers, in Keras' error form."""

import math
import numbers

import numpy as np


def is_integer(value):
    """An int, not a bool (which Python counts as one)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_real(value):
    """A real number (an int or a float), not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


# The largest size a layer takes for a dimension of its weights: far past
# any real model, and small enough to refuse a typo before Keras allocates.
MAX_SIZE = 2**24


def check_positive_int(owner, name, value, allow_none=False, maximum=None):
    """Returns `value` as a Python int if it is a positive integer, at most
    `maximum` when given (or None when allowed)."""
    if value is None and allow_none:
        return value
    too_large = maximum is not None and is_integer(value) and value > maximum
    if not is_integer(value) or value <= 0 or too_large:
        expected = "a positive integer"
        if maximum is not None:
            expected += f" of at most {maximum}"
        expected += " or None" if allow_none else ""
        raise ValueError(
            f"Invalid value for argument `{name}` of {owner}. Expected "
            f"{expected}. Received: {name}={value!r}"
        )
    return int(value)


def check_size(owner, name, value, allow_none=False):
    """`check_positive_int` for a size of a layer's weights, up to
    `MAX_SIZE`."""
    return check_positive_int(owner, name, value, allow_none, MAX_SIZE)


def check_finite(owner, name, value, expected, condition=lambda x: True):
    """Returns `value` as a Python float if it is a finite real number (not
    a bool) for which `condition` holds; `expected` says what is asked."""
    if not (is_real(value) and math.isfinite(value) and condition(value)):
        raise ValueError(
            f"Invalid value for argument `{name}` of {owner}. Expected "
            f"{expected}. Received: {name}={value!r}"
        )
    return float(value)


def check_token(owner, name, value, vocabulary_size):
    """Returns `value` as an int if it is None or a token id in
    `[0, vocabulary_size)`."""
    if value is None:
        return None
    if not is_integer(value) or not 0 <= value < vocabulary_size:
        raise ValueError(
            f"Invalid value for argument `{name}` of {owner}. Expected None "
            f"or a token id in [0, {vocabulary_size}), below the decoder's "
            f"output_dim. Received: {name}={value!r}"
        )
    return int(value)


def check_bool(owner, name, value):
    """Returns `value` as a Python bool if it is one, or NumPy's (a truthy
    string or number is a mistake)."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(
            f"Invalid value for argument `{name}` of {owner}. Expected True "
            f"or False. Received: {name}={value!r}"
        )
    return bool(value)


def check_seed(owner, name, value):
    """Returns `value` as a Python int, or None: what `SeedGenerator` and
    NumPy's generators take (Keras refuses a NumPy integer)."""
    if value is not None and not is_integer(value):
        raise ValueError(
            f"Invalid value for argument `{name}` of {owner}. Expected an "
            f"integer or None. Received: {name}={value!r}"
        )
    return None if value is None else int(value)


def check_keras_object(owner, name, value, get):
    """Returns `get(value)`, where `get` is a Keras getter such as
    `keras.activations.get`, with its error naming `owner` and `name`."""
    try:
        return get(value)
    except (ValueError, TypeError) as error:
        role = name.rsplit("_", 1)[-1]
        raise ValueError(
            f"Invalid value for argument `{name}` of {owner}. Expected a "
            f"Keras {role}: a name, a config or an object ({error}). "
            f"Received: {name}={value!r}"
        ) from error


def check_probability(owner, name, value):
    """Returns `value` if it is a real number in [0, 1]."""
    if not is_real(value) or not 0.0 <= value <= 1.0:
        raise ValueError(
            f"Invalid value for argument `{name}` of {owner}. Expected a "
            f"probability in [0, 1]. Received: {name}={value!r}"
        )
    return float(value)


def check_required_for_score(
    owner, name, value, score, needing_score, required=True
):
    """Checks a size argument that one score uses and the others have no
    use for (so it must be None with them); that score needs it unless
    `required` is False."""
    if required and score == needing_score and value is None:
        raise ValueError(
            f"Invalid value for argument `{name}` of {owner}. Expected a "
            f"positive integer with score={needing_score!r}. Received: "
            f"{name}=None"
        )
    if score != needing_score and value is not None:
        raise ValueError(
            f"Invalid value for argument `{name}` of {owner}. It is only "
            f"used by score={needing_score!r}; expected None with "
            f"score={score!r}. Received: {name}={value!r}"
        )
    return check_size(
        owner, name, value, allow_none=score != needing_score or not required
    )


def check_choice(owner, name, value, choices):
    """Returns `value` if it is one of `choices` (strings)."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(
            f"Invalid value for argument `{name}` of {owner}. Expected one "
            f"of {{{', '.join(map(repr, choices))}}}. Received: "
            f"{name}={value!r}"
        )
    return value


def check_dot_sizes(owner, query_size, key_size, query_name, key_name):
    """The `dot` score multiplies query and key: their sizes must match."""
    if query_size != key_size:
        raise ValueError(
            f"Invalid inputs for {owner}(score='dot'): the score is the dot "
            f"product of query and key, so {query_name} and {key_name} must "
            f"match (score='general' projects instead). Received: "
            f"{query_name} {query_size}, {key_name} {key_size}"
        )


def check_source_length(owner, name, shape, max_source_length):
    """The `location` score has weights for `max_source_length` steps (when
    that is known: None before a build that takes the memory's length)."""
    length = shape[1]
    known = isinstance(length, int) and max_source_length is not None
    if known and length > max_source_length:
        raise shape_error(
            owner,
            name,
            f"at most max_source_length={max_source_length} steps, the "
            "longest the location score serves",
            shape,
        )


def shape_error(owner, name, expected, shape):
    """The error for a tensor argument of the wrong shape."""
    return ValueError(
        f"Invalid shape for argument `{name}` of {owner}. Expected "
        f"{expected}. Received: {name}.shape={tuple(shape)}"
    )
