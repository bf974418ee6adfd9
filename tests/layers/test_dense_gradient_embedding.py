"""`DenseGradientEmbedding`: `keras.layers.Embedding` whose gradient
Keras' optimizers apply as they apply a dense one, on every backend."""

import keras
import numpy as np
import pytest

from keras_seqext.layers import DenseGradientEmbedding
from tests.test_case import TestCase

VOCABULARY, DIM = 9, 4
# Every row of the batch repeats token 3, and token 5 twice; 0 is padding.
IDS = np.array([[3, 5, 3, 0], [3, 5, 5, 7], [1, 3, 0, 0]], "int32")


def pooled_model(embedding_type):
    """Ids to one logit per sequence: the embeddings' masked mean."""
    ids = keras.Input((IDS.shape[1],), dtype="int32")
    embedded = embedding_type(VOCABULARY, DIM, mask_zero=True)(ids)
    pooled = keras.layers.GlobalAveragePooling1D()(embedded)
    return keras.Model(ids, keras.layers.Dense(1)(pooled))


class TestDenseGradientEmbedding(TestCase):
    def test_is_keras_embedding(self, tmp_path):
        """Outputs, mask, config and saving as `keras.layers.Embedding`'s."""
        layer = DenseGradientEmbedding(VOCABULARY, DIM, mask_zero=True)
        reference = keras.layers.Embedding(VOCABULARY, DIM, mask_zero=True)
        reference.build()
        layer.build()
        layer.set_weights(reference.get_weights())
        self.assertAllClose(layer(IDS), reference(IDS))
        self.assertAllClose(layer.compute_mask(IDS), IDS != 0)
        self.run_config_test(layer)
        self.run_serialization_test(layer)
        self.run_output_shape_test(layer, IDS)
        self.run_precision_test(
            lambda **kwargs: DenseGradientEmbedding(VOCABULARY, DIM, **kwargs),
            IDS,
        )
        model = pooled_model(DenseGradientEmbedding)
        self.run_model_saving_test(model, IDS, str(tmp_path))

    @pytest.mark.parametrize("optimizer", ["adam", "rmsprop", "adagrad"])
    def test_optimizers_step_by_the_summed_gradient(self, optimizer):
        self.run_summed_gradient_test(
            lambda: pooled_model(DenseGradientEmbedding),
            lambda model: model.layers[1].embeddings,
            IDS,
            np.array([[1.0], [-1.0], [0.5]], "float32"),
            "mean_squared_error",
            keras.optimizers.get(optimizer),
        )
