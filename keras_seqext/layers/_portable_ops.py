"""Index operations written so that every backend traces them and every
export format converts them: where Keras' own form of an operation does
not, on one backend or for one format, these give the same values."""

from keras import ops


def one_hot(indices, depth, dtype):
    """`ops.one_hot`, as a comparison: PyTorch's one-hot asserts that its
    indices are non-negative, an operation LiteRT cannot convert.

    Args:
        indices: integer ids, any shape.
        depth: the number of classes.
        dtype: the result's dtype.

    Returns:
        `indices.shape + (depth,)`, 1 at each id and 0 elsewhere.
    """
    # Start and stop both given: a stop of None fails in an export trace.
    classes = ops.arange(0, depth, dtype=indices.dtype)
    return ops.cast(ops.expand_dims(indices, -1) == classes, dtype)


def first_max_index(values):
    """The index of each row's largest value, the first of equal ones, as
    `ops.argmax` gives it; through an integer argmax, since Keras' float
    argmax on a JAX CPU (a fix of the sign of zero, by its bits) does not
    convert to ONNX.

    Args:
        values: `(..., n)`.

    Returns:
        The indices, `values.shape[:-1]`.
    """
    if 0 in values.shape:
        # An empty batch: Keras' eager max raises for an empty tensor on
        # TensorFlow and PyTorch (and jax2onnx converts no max with an
        # initial value, which would serve instead).
        return ops.zeros(values.shape[:-1], "int32")
    is_max = values >= ops.max(values, axis=-1, keepdims=True)
    return ops.argmax(ops.cast(is_max, "int32"), axis=-1)
