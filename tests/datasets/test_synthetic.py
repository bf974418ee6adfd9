import numpy as np
import pytest

from keras_seqext import datasets


class TestCopyFirst:
    def test_targets_copy_the_first_steps_then_class_zero(self):
        x, y = datasets.copy_first(50, n_in=6, n_out=3, cardinality=9, seed=0)
        assert x.shape == y.shape == (50, 6, 9)
        assert x.dtype == y.dtype == np.float32
        assert np.all(x.sum(-1) == 1) and np.all(y.sum(-1) == 1)
        np.testing.assert_array_equal(y.argmax(-1)[:, :3], x.argmax(-1)[:, :3])
        assert np.all(y.argmax(-1)[:, 3:] == 0)

    def test_seeded(self):
        first, _ = datasets.copy_first(20, seed=4)
        again, _ = datasets.copy_first(20, seed=4)
        other, _ = datasets.copy_first(20, seed=5)
        np.testing.assert_array_equal(first, again)
        assert not np.array_equal(first, other)

    def test_uses_every_class(self):
        x, _ = datasets.copy_first(2000, seed=0)
        assert set(x.argmax(-1).ravel()) == set(range(50))


class TestReverseSequence:
    def test_whole_reversal(self):
        x, y = datasets.reverse_sequence(10, seed=0)
        assert x.shape == y.shape == (10, 4, 10)
        np.testing.assert_array_equal(y.argmax(-1), x.argmax(-1)[:, ::-1])

    def test_first_steps_reversed(self):
        x, y = datasets.reverse_sequence(10, n_in=6, n_out=3, seed=0)
        assert y.shape == (10, 3, 10)
        np.testing.assert_array_equal(y.argmax(-1), x.argmax(-1)[:, 2::-1])


class TestEchoSequence:
    def test_target_is_the_input(self):
        x, y = datasets.echo_sequence(10, length=7, cardinality=3, seed=0)
        assert x.shape == (10, 7, 3)
        np.testing.assert_array_equal(x, y)
        assert x is not y


@pytest.mark.parametrize(
    "function, kwargs, argument",
    [
        (datasets.copy_first, {"n_samples": 0}, "n_samples"),
        (datasets.copy_first, {"n_samples": 5, "n_out": 6}, "n_out"),
        (datasets.copy_first, {"n_samples": 5, "cardinality": 1.5}, "card"),
        (datasets.reverse_sequence, {"n_samples": 5, "n_in": -1}, "n_in"),
        (datasets.reverse_sequence, {"n_samples": 5, "n_out": 9}, "n_out"),
        (datasets.echo_sequence, {"n_samples": 5, "length": 0}, "length"),
    ],
)
def test_bad_argument(function, kwargs, argument):
    with pytest.raises(ValueError, match=f"`{argument}"):
        function(**kwargs)


@pytest.mark.parametrize(
    "make",
    [
        lambda: datasets.copy_first(2, seed="1"),
        lambda: datasets.reverse_sequence(2, seed=1.5),
        lambda: datasets.echo_sequence(2, seed=[1]),
        lambda: datasets.dates(2, seed="x"),
    ],
)
def test_a_seed_of_the_wrong_type_names_seed(make):
    with pytest.raises(ValueError, match="`seed` of"):
        make()
