"""Argument and shape checks shared by the layers, in Keras' error form."""

import numbers


def check_positive_int(owner, name, value, allow_none=False):
    """Returns `value` if it is a positive int (or None when allowed)."""
    if value is None and allow_none:
        return value
    is_int = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if not is_int or value <= 0:
        expected = "a positive integer" + (" or None" if allow_none else "")
        raise ValueError(
            f"Invalid value for argument `{name}` of {owner}. Expected "
            f"{expected}. Received: {name}={value!r}"
        )
    return int(value)


def check_probability(owner, name, value):
    """Returns `value` if it is a real number in [0, 1]."""
    is_real = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not is_real or not 0.0 <= value <= 1.0:
        raise ValueError(
            f"Invalid value for argument `{name}` of {owner}. Expected a "
            f"probability in [0, 1]. Received: {name}={value!r}"
        )
    return float(value)


def check_choice(owner, name, value, choices):
    """Returns `value` if it is one of `choices`."""
    if value not in choices:
        raise ValueError(
            f"Invalid value for argument `{name}` of {owner}. Expected one "
            f"of {{{', '.join(map(repr, choices))}}}. Received: "
            f"{name}={value!r}"
        )
    return value


def shape_error(owner, name, expected, shape):
    """The error for a tensor argument of the wrong shape."""
    return ValueError(
        f"Invalid shape for argument `{name}` of {owner}. Expected "
        f"{expected}. Received: {name}.shape={tuple(shape)}"
    )
