import keras
import numpy as np
import pytest

import keras_seqext


@pytest.fixture(autouse=True)
def fresh_keras_session():
    """Each test starts from a clean Keras state and fixed seeds."""
    keras.backend.clear_session()
    keras.config.set_dtype_policy("float32")
    keras.utils.set_random_seed(0)
    yield


@pytest.fixture(autouse=True)
def doctest_names(doctest_namespace):
    doctest_namespace.update(np=np, keras=keras, keras_seqext=keras_seqext)
