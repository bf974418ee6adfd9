"""Whole-sequence exact match."""

import keras
from keras import ops

from keras_seqext._tensor_checks import check_matching_shape


@keras.saving.register_keras_serializable(package="keras_seqext")
class SequenceAccuracy(keras.metrics.Mean):
    """The fraction of sequences whose every step is predicted right.

    A sequence counts as right when the argmax of `y_pred` equals the target
    class at every step, the tutorials' `array_equal` evaluation. Per-step
    accuracy (Keras' `"accuracy"`) rewards a model that gets most steps of
    every sequence right; this metric does not.

    Args:
        name: Name of the metric. Defaults to `"sequence_accuracy"`.
        dtype: Dtype of the metric's result. Defaults to `None`.

    A step whose prediction holds a NaN or an infinity is wrong, whatever
    its argmax.

    Call arguments (`update_state`):
        y_true: one-hot or probability targets `(batch, steps, classes)`, or
            integer classes `(batch, steps)`; the batch size and steps of
            `y_pred`, exactly.
        y_pred: predictions `(batch, steps, classes)`.
        sample_weight: optional weights `(batch,)`.

    Example:

    >>> metric = keras_seqext.metrics.SequenceAccuracy()
    >>> y_true = np.array([[1, 2], [1, 2]])
    >>> y_pred = np.eye(3)[[[1, 2], [1, 0]]]
    >>> metric.update_state(y_true, y_pred)
    >>> float(metric.result())
    0.5
    """

    def __init__(self, name="sequence_accuracy", dtype=None):
        super().__init__(name=name, dtype=dtype)

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = ops.convert_to_tensor(y_true)
        y_pred = ops.convert_to_tensor(y_pred)
        owner = type(self).__name__
        pred_shape = tuple(y_pred.shape)
        if len(y_true.shape) == len(y_pred.shape):
            check_matching_shape(
                owner, "y_true", tuple(y_true.shape), pred_shape, "y_pred's"
            )
            y_true = ops.argmax(y_true, axis=-1)
        else:
            check_matching_shape(
                owner,
                "y_true",
                tuple(y_true.shape),
                pred_shape[:-1],
                "the classes of y_pred's steps",
            )
        predicted = ops.argmax(y_pred, axis=-1)
        # The argmax of a NaN row is 0: such a step is never right.
        finite = ops.all(ops.isfinite(y_pred), axis=-1)
        step_right = ops.logical_and(
            ops.equal(ops.cast(y_true, "int32"), ops.cast(predicted, "int32")),
            finite,
        )
        sequence_right = ops.cast(ops.all(step_right, axis=-1), self.dtype)
        super().update_state(sequence_right, sample_weight=sample_weight)
