"""Which replica of a data-parallel train step the code runs in.

Under a `tf.distribute` strategy (`MirroredStrategy`,
`MultiWorkerMirroredStrategy`) every replica runs the train step on its own
share of the global batch, in a replica context of its own; what the step
computes is per replica until it is all-reduced. JAX's `keras.distribution`
runs one program on global arrays, and Keras has no distribution on
PyTorch: there, the step runs once.
"""

import keras


def replica_context():
    """The `tf.distribute.ReplicaContext` the code runs in when the strategy
    keeps more than one replica in sync; None otherwise."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        context = tf.distribute.get_replica_context()
        if context is None or context.num_replicas_in_sync == 1:
            return None
        return context
    if backend in ("jax", "torch"):
        return None
    raise NotImplementedError(f"No replica context on backend {backend!r}")


def sum_over_replicas(grads):
    """`grads` (None for no gradient) summed over the replicas of a
    `tf.distribute` strategy; as they are outside one.

    Each replica holds the gradients of its share of the global batch (of
    the loss divided by the number of replicas), which the optimizer sums
    over the replicas only inside `apply`: summed here, they are those one
    device would compute, for the cost of one more all-reduce per step.
    """
    context = replica_context()
    if context is None:
        return grads
    import tensorflow as tf

    present = [g for g in grads if g is not None]
    summed = iter(context.all_reduce(tf.distribute.ReduceOp.SUM, present))
    return [None if g is None else next(summed) for g in grads]
