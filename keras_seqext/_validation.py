"""Argument and shape checks shared by the layers, in Keras' error form."""

import math
import numbers


def is_integer(value):
    """An int, not a bool (which Python counts as one)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_real(value):
    """A real number (an int or a float), not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_positive_int(owner, name, value, allow_none=False):
    """Returns `value` if it is a positive int (or None when allowed)."""
    if value is None and allow_none:
        return value
    if not is_integer(value) or value <= 0:
        expected = "a positive integer" + (" or None" if allow_none else "")
        raise ValueError(
            f"Invalid value for argument `{name}` of {owner}. Expected "
            f"{expected}. Received: {name}={value!r}"
        )
    return int(value)


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
    """Returns `value` if it is a bool (a truthy string is a mistake)."""
    if not isinstance(value, bool):
        raise ValueError(
            f"Invalid value for argument `{name}` of {owner}. Expected True "
            f"or False. Received: {name}={value!r}"
        )
    return value


def check_seed(owner, name, value):
    """Returns `value` if it is an int or None, as `SeedGenerator` takes."""
    if value is not None and not is_integer(value):
        raise ValueError(
            f"Invalid value for argument `{name}` of {owner}. Expected an "
            f"integer or None. Received: {name}={value!r}"
        )
    return value


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


def check_required_for_score(owner, name, value, score, needing_score):
    """Checks a positive-int argument that one score needs and the others
    have no use for (so it must be None with them)."""
    if score == needing_score and value is None:
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
    return check_positive_int(
        owner, name, value, allow_none=score != needing_score
    )


def check_choice(owner, name, value, choices):
    """Returns `value` if it is one of `choices`."""
    if value not in choices:
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
    """The `location` score has weights for `max_source_length` steps."""
    if shape[1] is not None and shape[1] > max_source_length:
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
