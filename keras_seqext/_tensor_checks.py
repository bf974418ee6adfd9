"""The checks of a call's tensors against each other, shared by every layer:
a mask must fit its tensor, and the tensors of one call must agree on the
batch size. Neither broadcasts: a mask of one sample applied to a whole
batch, or one memory attended by another batch's queries, is a mistake that
would otherwise give numbers and no error.

The checks compare the sizes that are known: numbers. A size that is None
or symbolic (in a functional model before it runs, or under an export's
symbolic batch) passes here and is checked again when it is known.
"""

import keras


def check_mask(owner, mask, tensor_shape, mask_name="mask", tensor_name=None):
    """Raises unless `mask` is None or a boolean-castable tensor of shape
    `(batch, T)`, the first two sizes of `tensor_shape` exactly.

    Args:
        owner: the layer's class name, for the error.
        mask: the mask, or None.
        tensor_shape: the shape of the tensor it masks, `(batch, T, ...)`.
        mask_name: the mask's argument name.
        tensor_name: the masked tensor's argument name; `inputs` when None.
    """
    if mask is None:
        return
    tensor_name = tensor_name or "inputs"
    shape = getattr(mask, "shape", None)
    dtype = getattr(mask, "dtype", None)
    if shape is None or dtype is None:
        raise ValueError(
            f"Invalid value for argument `{mask_name}` of {owner}. Expected "
            f"a boolean tensor (batch, T) matching `{tensor_name}`. "
            f"Received: {mask_name}={mask!r}"
        )
    dtype = keras.backend.standardize_dtype(dtype)
    castable = dtype == "bool" or "int" in dtype or "float" in dtype
    expected = tuple(tensor_shape[:2])
    if not castable or len(shape) != 2 or _differ(shape, expected):
        raise ValueError(
            f"Invalid value for argument `{mask_name}` of {owner}. Expected "
            f"a boolean tensor of shape {_describe(expected)}, the batch "
            f"size and length of `{tensor_name}` (shape "
            f"{_describe(tensor_shape)}), with no broadcasting. Received: "
            f"{mask_name}.shape={_describe(shape)}, dtype {dtype}"
        )


def check_batch_sizes(owner, shapes):
    """Raises unless the tensors whose `shapes` are given (a dict from
    argument name to shape, in the call's order; None for an argument not
    given) have the same batch size; the error names the first that
    differs from the first one."""
    given = [(name, shape) for name, shape in shapes.items() if shape]
    known = [(name, shape) for name, shape in given if _is_size(shape[0])]
    if not known:
        return
    first_name, first_shape = known[0]
    for name, shape in known[1:]:
        if shape[0] != first_shape[0]:
            raise ValueError(
                f"Invalid value for argument `{name}` of {owner}. Expected "
                f"the batch size of `{first_name}`, {first_shape[0]}, with "
                f"no broadcasting. Received: {name}.shape={_describe(shape)}"
            )


def check_matching_shape(owner, name, shape, expected, what):
    """Raises unless `shape` has the rank of `expected` and the same sizes
    where both are known; `what` says what `expected` is."""
    if len(shape) != len(expected) or _differ(shape, expected):
        raise ValueError(
            f"Invalid value for argument `{name}` of {owner}. Expected "
            f"shape {_describe(expected)}, {what}, with no broadcasting. "
            f"Received: {name}.shape={_describe(shape)}"
        )


def _differ(shape, expected):
    return any(
        _is_size(size) and _is_size(wanted) and size != wanted
        for size, wanted in zip(shape, expected)
    )


def _is_size(size):
    """A size known as a number (not None, not symbolic)."""
    return isinstance(size, int)


def _describe(shape):
    return tuple(size if _is_size(size) else None for size in shape)
