"""Which batches a call of `fit`'s train function ran, from its batch hooks.

With `compile(steps_per_execution=n)` one call runs `n` batches, and `fit`
runs `on_train_batch_begin` once with the epoch's index of the call's first
batch, and `on_train_batch_end` once with that of its last, counted as if
every call were full: the epoch's last call may end past its last batch.
"""


def steps_per_epoch(callback):
    """The batches of an epoch of `callback`'s `fit`, or None if unknown."""
    return callback.params.get("steps") if callback.params else None


def last_batch_run(callback, batch):
    """The last batch run by the call whose `on_train_batch_end` got
    `batch`: `batch` itself, but no further than the epoch's last when the
    number of steps per epoch is known."""
    steps = steps_per_epoch(callback)
    return min(batch, steps - 1) if steps else batch
