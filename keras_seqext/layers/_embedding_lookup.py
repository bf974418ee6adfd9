"""Embedding lookups whose gradient Keras' optimizers apply correctly on
every backend.

On TensorFlow the gradient of a gather is a `tf.IndexedSlices` holding one
row per looked-up id, repeats included, and Keras 3's optimizers apply it
row by row. That is right where an update is linear in the gradient, but
Adam squares each row apart: a token looked up `n` times in a batch gets
the sum of its rows' squares as its second moment, not the square of
their sum, and so a step up to `sqrt(n)` times too large, the larger the
more often it occurs. `take_rows` gives TensorFlow the summed, dense
gradient that JAX and PyTorch give.
"""

import keras
from keras import ops


def take_rows(table, ids):
    """`ops.take(table, ids, axis=0)`, with a dense gradient on TensorFlow.

    Args:
        table: the embedding table, `(rows, features)`, a variable or a
            tensor.
        ids: integer row ids in `[0, rows)`, any shape.

    Returns:
        The rows, `ids.shape + (features,)`.
    """
    if keras.backend.backend() != "tensorflow":
        return ops.take(table, ids, axis=0)
    return _take_rows_summing_gradient(table, ids)


def _take_rows_summing_gradient(table, ids):
    """TensorFlow's gather, its gradient summed per row into a dense table."""
    import tensorflow as tf

    @tf.custom_gradient
    def gather(values):
        def gradient(upstream):
            return tf.math.unsorted_segment_sum(
                upstream, ids, tf.shape(values)[0]
            )

        return tf.gather(values, ids), gradient

    return gather(tf.convert_to_tensor(table))
