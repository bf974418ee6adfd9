import keras
import pytest

from keras_seqext.callbacks._batch_hooks import last_batch_run
from keras_seqext.callbacks._batch_hooks import steps_per_epoch


def callback_with(params):
    callback = keras.callbacks.Callback()
    if params is not None:
        callback.set_params(params)
    return callback


@pytest.mark.parametrize(
    "params, steps",
    [(None, None), ({"epochs": 2}, None), ({"epochs": 2, "steps": 5}, 5)],
)
def test_steps_per_epoch(params, steps):
    assert steps_per_epoch(callback_with(params)) == steps


@pytest.mark.parametrize(
    "params, batch, last",
    [
        # The epoch's last call of 3 batches, counted to 5 of batches 0-4.
        ({"steps": 5}, 5, 4),
        ({"steps": 5}, 2, 2),
        # Unknown steps per epoch: as Keras counts.
        ({"steps": None}, 5, 5),
        (None, 5, 5),
    ],
)
def test_last_batch_run_stops_at_the_epochs_last(params, batch, last):
    assert last_batch_run(callback_with(params), batch) == last
