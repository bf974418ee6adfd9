"""Reaching into `model.fit`'s train step from a callback.

- `watch_gradients`, the backend-specific piece: the trainers hand the
  gradients to the optimizer in different calls. TensorFlow and PyTorch call
  `optimizer.apply` (TensorFlow through `apply_gradients`) on stateful
  variables; JAX calls `optimizer.stateless_apply(optimizer_variables,
  grads, ...)`, where the optimizer's state is the list passed in, not its
  variables.
- `add_to_step_logs`: the way out of the step for a value computed there.
  The train step of every backend ends with `model.compute_metrics`, whose
  result is the step's logs, returned from the compiled step like the loss
  and handed to the callbacks. (A variable would not do on JAX, whose step
  is a pure function of the state the trainer threads through it: an
  assignment to a variable it does not track is dropped.)
- `ReplicaSlot`: how a value gets from the first hook to the second.

Under a `tf.distribute` strategy each replica runs the step in a thread of
its own, and the optimizer's cross-replica update interleaves them: every
replica reaches `apply` before any reaches `compute_metrics`. So each
replica keeps its own value, and `watch_gradients` sums the gradients over
the replicas first (see `_replicas.py`).
"""

import keras

from keras_seqext._replicas import replica_context
from keras_seqext._replicas import sum_over_replicas


def watch_gradients(optimizer, on_gradients):
    """Calls `on_gradients(grads)` in every train step, before `optimizer`
    uses them, until the returned `restore()` is called.

    `grads` are as the trainer computed them (scaled by a loss scale, not
    yet clipped), in the order of the model's trainable variables; under a
    `tf.distribute` strategy, summed over its replicas. While
    `on_gradients` runs, the optimizer's variables (such as a
    `LossScaleOptimizer`'s `dynamic_scale`) read their values in this step,
    also in JAX's stateless step.
    """
    if keras.backend.backend() == "jax":
        name = "stateless_apply"
        stateless_apply = optimizer.stateless_apply

        def hooked(optimizer_variables, grads, trainable_variables):
            mapping = list(zip(optimizer.variables, optimizer_variables))
            with keras.StatelessScope(state_mapping=mapping):
                on_gradients(grads)
            return stateless_apply(
                optimizer_variables, grads, trainable_variables
            )

    else:
        name = "apply"
        apply = optimizer.apply

        def hooked(grads, trainable_variables=None):
            if not optimizer.built:
                # As `apply` would (TensorFlow builds it in the first
                # trace), so that its variables exist for `on_gradients`.
                with keras.name_scope(optimizer.name, caller=optimizer):
                    optimizer.build(trainable_variables)
                optimizer.built = True
            on_gradients(sum_over_replicas(list(grads)))
            return apply(grads, trainable_variables)

    # An instance attribute shadows the method; deleting it restores it.
    setattr(optimizer, name, hooked)

    def restore():
        if optimizer.__dict__.get(name) is hooked:
            delattr(optimizer, name)

    return restore


def add_to_step_logs(model, pop_values):
    """Adds `pop_values()` (a dict, or None) to the logs of `model`'s steps,
    until the returned `restore()` is called.

    `pop_values` runs in the same step (and trace) as the `on_gradients` of
    `watch_gradients`, after it; it returns None in steps that did not train,
    such as those of `evaluate`.
    """
    compute_metrics = model.compute_metrics

    def hooked(*args, **kwargs):
        logs = compute_metrics(*args, **kwargs)
        values = pop_values()
        return logs if values is None else {**logs, **values}

    model.compute_metrics = hooked

    def restore():
        if model.__dict__.get("compute_metrics") is hooked:
            del model.compute_metrics

    return restore


class ReplicaSlot:
    """Holds a value from `put` to `pop` in one train step, one per
    `tf.distribute` replica."""

    def __init__(self):
        self._values = {}

    def put(self, value):
        self._values[replica_context()] = value

    def pop(self):
        """What this replica `put`, or None; empties its slot."""
        return self._values.pop(replica_context(), None)
