import keras
import numpy as np
import pytest

import keras_seqext


@pytest.fixture(autouse=True)
def fresh_keras_session():
    """Each test starts from a clean Keras state and fixed seeds.

    Without Keras' full garbage collection at every test: with three
    backends imported it took 0.2 to 1.1 s a test, a quarter of the suite's
    time on TensorFlow and over a third on PyTorch. Python still collects
    on its own.
    """
    keras.backend.clear_session(free_memory=False)
    keras.config.set_dtype_policy("float32")
    keras.utils.set_random_seed(0)
    yield


@pytest.fixture(autouse=True)
def doctest_names(doctest_namespace):
    doctest_namespace.update(np=np, keras=keras, keras_seqext=keras_seqext)
