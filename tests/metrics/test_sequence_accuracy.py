import json

import keras
import numpy as np
import pytest

from keras_seqext.metrics import SequenceAccuracy
from tests.test_case import TestCase

# Two sequences of three steps over four classes; the second is wrong at one
# step only, so per-step accuracy is 5/6 but sequence accuracy is 1/2.
Y_TRUE = np.array([[1, 2, 3], [0, 0, 1]])
Y_PRED = np.eye(4, dtype="float32")[np.array([[1, 2, 3], [0, 0, 2]])]


class TestSequenceAccuracy(TestCase):
    @pytest.mark.parametrize("one_hot", [False, True])
    def test_whole_sequence_exact_match(self, one_hot):
        y_true = np.eye(4)[Y_TRUE] if one_hot else Y_TRUE
        metric = SequenceAccuracy()
        metric.update_state(y_true, Y_PRED)
        self.assertAllClose(metric.result(), 0.5)

    def test_sample_weight_and_accumulation(self):
        metric = SequenceAccuracy()
        metric.update_state(Y_TRUE, Y_PRED, sample_weight=[1.0, 3.0])
        self.assertAllClose(metric.result(), 0.25)
        metric.update_state(Y_TRUE[:1], Y_PRED[:1])
        self.assertAllClose(metric.result(), 0.4)
        metric.reset_state()
        self.assertAllClose(metric.result(), 0.0)

    def test_serializes_without_custom_objects(self):
        metric = SequenceAccuracy(name="exact")
        revived = keras.saving.deserialize_keras_object(
            json.loads(json.dumps(keras.saving.serialize_keras_object(metric)))
        )
        assert isinstance(revived, SequenceAccuracy)
        assert revived.name == "exact"

    def test_in_compile(self):
        model = keras.Sequential(
            [keras.Input((3, 4)), keras.layers.Activation("linear")]
        )
        model.compile(loss="mse", metrics=[SequenceAccuracy()])
        x = np.concatenate([Y_PRED, Y_PRED])
        y = np.eye(4)[np.concatenate([Y_TRUE, Y_TRUE])]
        logs = model.evaluate(x, y, verbose=0, return_dict=True)
        self.assertAllClose(logs["sequence_accuracy"], 0.5)

    def test_a_non_finite_prediction_is_never_right(self):
        metric = SequenceAccuracy()
        y_pred = np.full((2, 3, 4), np.nan)
        y_pred[1, :, 0] = 1.0
        y_pred[1, 1, 2] = np.inf
        # The argmax of a NaN row is 0, the truth here.
        metric.update_state(np.zeros((2, 3), "int32"), y_pred)
        self.assertAllClose(metric.result(), 0.0)

    @pytest.mark.parametrize("shape", [(2, 1), (1, 3), (2, 3, 1), (2, 4)])
    def test_y_true_of_another_shape_raises(self, shape):
        with pytest.raises(ValueError, match="`y_true` of SequenceAccuracy"):
            SequenceAccuracy().update_state(
                np.zeros(shape, "int32"), np.zeros((2, 3, 4), "float32")
            )
