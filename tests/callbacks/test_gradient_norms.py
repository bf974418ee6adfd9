import math

import keras
import numpy as np
import pytest

from keras_seqext.callbacks._gradient_norms import group_norms


def numpy_group_norms(grads, groups, norm_type):
    norms = []
    for group in groups:
        flat = [np.ravel(grads[i]) for i in group if grads[i] is not None]
        values = np.concatenate(flat + [np.zeros(1)]).astype("float64")
        norms.append(np.linalg.norm(values, norm_type))
    return norms


def compute(grads, groups, norm_type):
    tensors = [
        None if g is None else keras.ops.convert_to_tensor(g, "float32")
        for g in grads
    ]
    norms = group_norms(tensors, groups, norm_type)
    assert keras.backend.standardize_dtype(norms.dtype) == "float32"
    return keras.ops.convert_to_numpy(norms)


@pytest.mark.parametrize("norm_type", [1, 2, math.inf])
def test_each_group_against_numpy(norm_type):
    rng = np.random.default_rng(0)
    grads = [
        rng.normal(size=(3, 4)),
        None,
        rng.normal(size=(4,)),
        rng.normal(size=(2, 2, 2)),
    ]
    groups = [[0, 1], [2, 3], [1]]
    np.testing.assert_allclose(
        compute(grads, groups, norm_type),
        numpy_group_norms(grads, groups, norm_type),
        rtol=1e-6,
    )


def test_a_group_whose_squares_overflow_float32_beside_a_small_one():
    # The squares of 3e19 overflow float32; the norms (about 6e19) do not.
    grads = [np.full((4,), 3e19), np.full((3,), 0.5)]
    groups = [[0], [1], [0, 1]]
    expected = numpy_group_norms(grads, groups, 2)
    assert np.isfinite(expected).all()
    np.testing.assert_allclose(compute(grads, groups, 2), expected, rtol=1e-6)


@pytest.mark.parametrize("norm_type", [1, 2, math.inf])
@pytest.mark.parametrize("bad", [math.inf, math.nan])
def test_a_non_finite_gradient_makes_only_its_group_non_finite(norm_type, bad):
    grads = [np.array([1.0, bad]), np.array([3.0, 4.0])]
    norms = compute(grads, [[0], [1]], norm_type)
    if math.isnan(bad):
        assert math.isnan(norms[0])
    else:
        assert norms[0] == math.inf
    np.testing.assert_allclose(
        norms[1], numpy_group_norms(grads, [[1]], norm_type)[0], rtol=1e-6
    )
