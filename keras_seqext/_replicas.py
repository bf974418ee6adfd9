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
