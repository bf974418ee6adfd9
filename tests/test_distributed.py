"""Data-parallel training on two simulated CPU devices gives the numbers of
one device.

The two-device runs happen in a subprocess (`tests/_distributed_training.py`
says what each scenario does), so that this process, and the rest of the
suite, keeps one device: JAX with `keras.distribution.DataParallel`,
TensorFlow with `tf.distribute.MirroredStrategy`. The subprocess starts with
the first test and runs while this process trains the one-device references
from the same seeded weights, with the same global batches. The PyTorch
backend of Keras has no data-parallel training; its tests say what happens
there instead.
"""

import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest

from tests import _distributed_training as runs

BACKEND = keras.backend.backend()
ROOT = pathlib.Path(__file__).parents[1]
EXAMPLE = ROOT / "examples" / "distributed_training.py"
# Generous: the subprocess takes well under a minute on two free cores.
TIMEOUT_SECONDS = 600
WEIGHT_TOLERANCE = 1e-4
NORM_RTOL = 1e-5
PREDICTION_TOLERANCE = 1e-5

data_parallel = pytest.mark.skipif(
    BACKEND not in ("jax", "tensorflow"),
    reason=f"Keras has no data-parallel training on the {BACKEND} backend "
    "(see the PyTorch tests below)",
)
on_torch = pytest.mark.skipif(
    BACKEND != "torch", reason="what the PyTorch backend does instead"
)


class DistributedRuns:
    """The subprocess of `tests._distributed_training` and its output."""

    def __init__(self, directory):
        self.directory = directory
        env = dict(os.environ)
        if BACKEND == "jax":
            env["XLA_FLAGS"] = (
                f"{env.get('XLA_FLAGS', '')} "
                f"--xla_force_host_platform_device_count={runs.REPLICAS}"
            ).strip()
        self._log = open(directory / "log.txt", "w")
        self._process = subprocess.Popen(
            [sys.executable, "-m", "tests._distributed_training", directory],
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def path(self, name):
        """Waits for the subprocess; the path of `name` in its output, or a
        test failure with the traceback of the step that was to write it."""
        self.wait()
        error = self.directory / f"{pathlib.Path(name).stem}.error"
        if error.exists():
            pytest.fail(
                f"The data-parallel step {error.stem!r} raised:\n"
                f"{error.read_text()}",
                pytrace=False,
            )
        return self.directory / name

    def result(self, scenario):
        return runs.load_result(self.path(f"{scenario}.npz"))

    def wait(self):
        code = self._process.wait(timeout=TIMEOUT_SECONDS)
        if code:
            log = (self.directory / "log.txt").read_text()
            pytest.fail(
                f"The data-parallel subprocess exited with {code}:\n"
                f"{log[-3000:]}",
                pytrace=False,
            )

    def close(self):
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        self._log.close()


@pytest.fixture(scope="module")
def distributed(tmp_path_factory):
    distributed_runs = DistributedRuns(tmp_path_factory.mktemp("distributed"))
    yield distributed_runs
    distributed_runs.close()


@pytest.fixture(scope="module")
def monitored_on_one_device():
    # The monitor does not change the training: also the reference of
    # "plain".
    return runs.train("monitor")[1]


@pytest.fixture(scope="module")
def scheduled_on_one_device():
    return runs.train("schedule")[1]


def assert_same_training(result, reference):
    """Same start, weights moved, every replica's copy of every weight as
    on one device."""
    for got, expected in zip(
        result["initial_weights"], reference["initial_weights"]
    ):
        np.testing.assert_array_equal(
            got, expected, err_msg="the runs started from other weights"
        )
    largest_move = max(
        np.max(np.abs(trained[0] - initial))
        for trained, initial in zip(
            reference["trained_weights"], reference["initial_weights"]
        )
    )
    assert largest_move > 100 * WEIGHT_TOLERANCE
    assert len(result["trained_weights"]) == len(reference["trained_weights"])
    for copies, expected in zip(
        result["trained_weights"], reference["trained_weights"]
    ):
        assert len(copies) == runs.REPLICAS
        np.testing.assert_allclose(
            copies,
            np.broadcast_to(expected, copies.shape),
            atol=WEIGHT_TOLERANCE,
            rtol=0,
        )


@data_parallel
def test_training_gives_the_weights_of_one_device(
    distributed, monitored_on_one_device
):
    assert_same_training(distributed.result("plain"), monitored_on_one_device)


@data_parallel
def test_gradient_norm_monitor_logs_the_global_norm(
    distributed, monitored_on_one_device
):
    """Each step's `grad_norm` (and per-layer norms) is the norm of the
    gradient of the whole global batch, as on one device."""
    result = distributed.result("monitor")
    for key in runs.MONITORED:
        assert result[key].shape == (runs.STEPS,)
        np.testing.assert_allclose(
            result[key], monitored_on_one_device[key], rtol=NORM_RTOL
        )
    assert_same_training(result, monitored_on_one_device)


@data_parallel
def test_scheduled_sampling_reaches_every_replica(distributed):
    probabilities = distributed.result("schedule")[
        "teacher_forcing_probability"
    ]
    np.testing.assert_array_equal(
        probabilities,
        np.repeat(np.reshape(runs.SCHEDULE, (-1, 1)), runs.REPLICAS, axis=1),
    )


@data_parallel
def test_scheduled_sampling_trains_as_on_one_device(
    distributed, scheduled_on_one_device
):
    """With targets and the schedule's probabilities of 0, 1 and 0.5: the
    inputs each replica feeds and the coins it draws are those of its half
    of the batch on one device."""
    assert_same_training(
        distributed.result("schedule"), scheduled_on_one_device
    )


@data_parallel
@pytest.mark.parametrize(
    "saved",
    [
        "in_scope",
        "after_scope",
    ],
)
def test_saved_model_predicts_the_same_on_one_device(distributed, saved):
    """Saved by the data-parallel run, in the distribution's (strategy's)
    scope or after it; loaded here, on one device."""
    expected = distributed.result("plain")["predictions"]
    model = keras.saving.load_model(distributed.path(f"{saved}.keras"))
    np.testing.assert_allclose(
        model.predict(runs.held_out_inputs(), verbose=0),
        expected,
        atol=PREDICTION_TOLERANCE,
    )


@on_torch
def test_keras_has_no_distribution_backend_on_torch():
    """The distributed-training guide says so. When this fails, Keras has added
    `keras.distribution` for PyTorch: run the tests above on it too."""
    with pytest.raises(AttributeError):
        keras.distribution.list_devices()


@on_torch
def test_the_example_stops_with_a_clear_message_on_torch():
    result = subprocess.run(
        [sys.executable, EXAMPLE],
        env={**os.environ, "KERAS_BACKEND": "torch"},
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
    )
    assert result.returncode == 1, result.stderr[-3000:]
    assert "no data-parallel training on the PyTorch backend" in result.stderr
