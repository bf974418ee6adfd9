"""Gradient norms in `model.fit`'s logs, and an alarm for exploding ones.

Keras gives callbacks no access to gradients (keras-team/keras#20760).
`GradientNormMonitor` gets them where the train step hands them to the
optimizer: at `set_model` it wraps the model's optimizer's `apply` (the
TensorFlow and PyTorch trainers call it) or `stateless_apply` (the JAX
trainer), and the model's `compute_metrics`, which ends every train step,
then drops the cached train function so that `fit` traces a new one with the
wrappers in it. Inside the step, the first wrapper reduces the gradients to
one norm per layer and the second adds them to the step's logs, which leave
the compiled step with the loss (`_train_step_hooks` has the plumbing); the
callback turns them into the public `grad_norm` entries. At the end of
training it unwraps both and drops the train function again.

What this gives and what it costs:

- The norms are exact: the gradients of that step, before the optimizer
  clips them (`clipnorm`, `clipvalue`, `global_clipnorm`), divided by the
  loss scale (a `LossScaleOptimizer`'s current `dynamic_scale`, or the
  optimizer's `loss_scale_factor`).
- Every step computes the norms, a few reductions over the gradients, small
  beside the backward pass, and returns them with its logs; the logged
  steps (`log_every_n_steps`) read them, and non-finite norms are caught on
  those steps only. Put the monitor first in the callback list: the
  callbacks after it see `grad_norm` in the step logs.
- Data-parallel training gives the norm of the gradients of the whole
  global batch, as one device would: JAX's `keras.distribution` hands the
  optimizer global arrays; under a `tf.distribute` strategy, whose replicas
  each hold the gradients of their share, the monitor sums them over the
  replicas first, one more all-reduce of the gradients per step.
- Limits: with `steps_per_execution > 1` the norms read are those of the
  last step of each execution, logged when the execution ran one of the
  steps to log; with gradient accumulation they are those of
  each micro-batch; under a `LossScaleOptimizer`, a step whose scaled
  gradients overflow has a non-finite norm, though the optimizer skips it
  and lowers its scale (leave `on_nonfinite="warn"` there). A custom
  `train_step` that bypasses `optimizer.apply` or `compute_metrics` is not
  seen.
- The per-layer norms are per top-level layer of the model (`model.layers`);
  weights of nested layers count towards the layer that holds them.
"""

import math
import warnings

import keras
import numpy as np
from keras import ops

from keras_seqext._validation import check_bool
from keras_seqext._validation import check_choice
from keras_seqext._validation import check_finite
from keras_seqext._validation import check_positive_int
from keras_seqext._validation import is_real
from keras_seqext.callbacks._batch_hooks import last_batch_run
from keras_seqext.callbacks._gradient_norms import group_norms
from keras_seqext.callbacks._train_step_hooks import ReplicaSlot
from keras_seqext.callbacks._train_step_hooks import add_to_step_logs
from keras_seqext.callbacks._train_step_hooks import watch_gradients

ON_NONFINITE = ("warn", "stop", "raise", "ignore")
NORM_TYPES = (1, 2, math.inf)
# The step logs' entry for the per-layer norms, replaced by the public ones.
_STEP_LOGS_KEY = "_gradient_norm_monitor_layer_norms"


class GradientNormMonitor(keras.callbacks.Callback):
    """Logs the gradient norm of training steps as `grad_norm`.

    Plug it into `fit`; nothing else changes (no `compile` argument, no
    custom `train_step`). Every `log_every_n_steps` steps of each epoch
    (counting from its first), the norm of all the gradients of that step
    goes into the batch logs as `grad_norm` (and, with `per_layer=True`, one
    `grad_norm/<layer name>` per layer with trainable weights); the epoch
    logs get the mean over the logged steps, so `History`, `CSVLogger` and
    `TensorBoard` record it. The norm is of the gradients the optimizer
    receives, before any `clipnorm`, `clipvalue` or `global_clipnorm`, and
    unscaled under mixed precision's `LossScaleOptimizer`.

    A non-finite norm (`inf` or `nan`) warns, stops training after that step,
    raises, or is ignored (`on_nonfinite`); `warn_above` warns when the norm
    stays above a threshold for `patience` logged steps in a row.

    Args:
        log_every_n_steps: Positive integer: log steps 0, n, 2n, ... of each
            epoch. Defaults to `1`.
        norm_type: `2` (Euclidean), `1` (sum of absolute values) or
            `math.inf` (largest absolute value). Defaults to `2`.
        per_layer: Whether to also log each layer's norm; they combine into
            the global one (for `2`, the root of their sum of squares).
            Defaults to `False`.
        on_nonfinite: `"warn"` (a warning naming the step), `"stop"` (sets
            `model.stop_training`), `"raise"` (a `FloatingPointError` naming
            the step and the layers with non-finite gradients) or
            `"ignore"`. Defaults to `"warn"`.
        warn_above: Non-negative number or None: warn when the norm exceeds
            it. Defaults to `None`.
        patience: Positive integer: the logged steps in a row above
            `warn_above` that make one warning. Defaults to `1`.

    Example:

    >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    >>> model.compile(optimizer=keras.optimizers.SGD(clipnorm=1.0), loss="mse")
    >>> history = model.fit(
    ...     np.ones((8, 3)),
    ...     np.zeros((8, 1)),
    ...     epochs=2,
    ...     verbose=0,
    ...     callbacks=[keras_seqext.callbacks.GradientNormMonitor()],
    ... )
    >>> len(history.history["grad_norm"])
    2
    """

    def __init__(
        self,
        log_every_n_steps=1,
        norm_type=2,
        per_layer=False,
        on_nonfinite="warn",
        warn_above=None,
        patience=1,
    ):
        super().__init__()
        owner = type(self).__name__
        self.log_every_n_steps = check_positive_int(
            owner, "log_every_n_steps", log_every_n_steps
        )
        if not is_real(norm_type) or norm_type not in NORM_TYPES:
            raise ValueError(
                f"Invalid value for argument `norm_type` of {owner}. Expected "
                f"one of 1, 2, math.inf. Received: norm_type={norm_type!r}"
            )
        # A Python number, as the config and the messages show it.
        self.norm_type = math.inf if norm_type == math.inf else int(norm_type)
        self.per_layer = check_bool(owner, "per_layer", per_layer)
        self.on_nonfinite = check_choice(
            owner, "on_nonfinite", on_nonfinite, ON_NONFINITE
        )
        if warn_above is not None:
            warn_above = check_finite(
                owner,
                "warn_above",
                warn_above,
                "a finite non-negative number, or None never to warn",
                lambda threshold: threshold >= 0,
            )
        self.warn_above = warn_above
        self.patience = check_positive_int(owner, "patience", patience)
        self._restores = []
        self._training = False

    def set_model(self, model):
        super().set_model(model)
        self._unhook()
        if getattr(model, "optimizer", None) is None:
            return  # not compiled: nothing trains (predict, evaluate)
        self._optimizer = model.optimizer
        # Known at the first trace: TensorFlow builds the model there.
        self._variable_groups = self._layer_names = None
        self._step_norms = ReplicaSlot()
        self._restores = [
            watch_gradients(model.optimizer, self._compute_norms),
            add_to_step_logs(model, self._pop_norms),
        ]
        # `fit` reuses a traced train function: trace one with the hooks.
        model.train_function = None
        self._steps_done = 0
        self._steps_above = 0

    def _compute_norms(self, grads):
        """Runs inside the train step: the norm of each layer's gradients."""
        if self._variable_groups is None:
            self._variable_groups, self._layer_names = _variables_by_layer(
                self._model
            )
        if len(grads) != sum(map(len, self._variable_groups)):
            raise ValueError(
                f"{type(self).__name__} expected one gradient per trainable "
                f"variable of the model, "
                f"{sum(map(len, self._variable_groups))}. Received "
                f"{len(grads)} gradients: was the optimizer built on other "
                "variables?"
            )
        norms = group_norms(grads, self._variable_groups, self.norm_type)
        scale = _loss_scale(self._optimizer)
        if scale is not None:
            norms = norms / ops.cast(scale, norms.dtype)
        self._step_norms.put(norms)

    def _pop_norms(self):
        """Runs in the step after `_compute_norms`: the step logs' entry."""
        norms = self._step_norms.pop()
        return None if norms is None else {_STEP_LOGS_KEY: norms}

    def on_train_begin(self, logs=None):
        self._training = True

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._logged = {}

    def on_train_batch_begin(self, batch, logs=None):
        self._call_start = batch

    def on_train_batch_end(self, batch, logs=None):
        # Under `steps_per_execution`, one call ran batches `_call_start` to
        # `batch` and returns the norms of its last; they are logged when the
        # call ran a batch to log.
        batch = last_batch_run(self, batch)
        self._steps_done += batch - self._call_start + 1
        layer_norms = (logs or {}).pop(_STEP_LOGS_KEY, None)
        to_log = batch - batch % self.log_every_n_steps
        if to_log < self._call_start or layer_norms is None:
            return
        layer_norms = np.asarray(layer_norms, "float64").reshape(-1)
        norm = _combine(layer_norms, self.norm_type)
        values = {"grad_norm": norm}
        if self.per_layer:
            for name, layer_norm in zip(self._layer_names, layer_norms):
                values[f"grad_norm/{name}"] = float(layer_norm)
        for key, value in values.items():
            self._logged.setdefault(key, []).append(value)
        if logs is not None:
            logs.update(values)
        self._check(norm, layer_norms, batch)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            # Keras makes the epoch logs from the last step's.
            logs.pop(_STEP_LOGS_KEY, None)
            logs.update(
                {key: float(np.mean(v)) for key, v in self._logged.items()}
            )

    def on_train_end(self, logs=None):
        self._training = False
        self._unhook()

    def on_test_end(self, logs=None):
        # `set_model` hooks any compiled model, also for evaluate or predict;
        # within `fit` (validation), the hook stays.
        if not self._training:
            self._unhook()

    def on_predict_end(self, logs=None):
        if not self._training:
            self._unhook()

    def _check(self, norm, layer_norms, batch):
        step = (
            f"step {self._steps_done - 1} (epoch {self._epoch}, batch {batch})"
        )
        if not math.isfinite(norm):
            self._on_nonfinite(norm, layer_norms, step)
        if self.warn_above is None or not norm > self.warn_above:
            self._steps_above = 0
            return
        self._steps_above += 1
        if self._steps_above == self.patience:
            warnings.warn(
                f"{type(self).__name__}: the gradient norm was above "
                f"warn_above={self.warn_above} for {self.patience} logged "
                f"step(s) in a row, up to {step}: {norm:.6g}.",
                stacklevel=2,
            )

    def _on_nonfinite(self, norm, layer_norms, step):
        layers = [
            name
            for name, value in zip(self._layer_names, layer_norms)
            if not math.isfinite(value)
        ]
        message = (
            f"{type(self).__name__}: the gradient norm is {norm} at {step}; "
            f"non-finite gradients in layer(s) {', '.join(layers)}."
        )
        if self.on_nonfinite == "warn":
            warnings.warn(message, stacklevel=2)
        elif self.on_nonfinite == "stop":
            self._model.stop_training = True
        elif self.on_nonfinite == "raise":
            self._training = False
            self._unhook()
            raise FloatingPointError(message)

    def _unhook(self):
        """Gives the optimizer and the model back their own methods; the
        next `fit` traces a train function without the hooks."""
        if self._restores:
            for restore in self._restores:
                restore()
            self._restores = []
            self._model.train_function = None


def _variables_by_layer(model):
    """Groups the indices of `model.trainable_variables` by the top-level
    layer that holds them, in order; returns the groups and layer names."""
    owners = {}
    for layer in model.layers:
        for variable in layer.trainable_variables:
            owners.setdefault(id(variable), layer.name)
    groups = {}
    for index, variable in enumerate(model.trainable_variables):
        # Weights no layer holds are the model's own.
        owner = owners.get(id(variable), model.name)
        groups.setdefault(owner, []).append(index)
    return list(groups.values()), list(groups)


def _combine(layer_norms, norm_type):
    """The global norm from the per-layer ones."""
    if norm_type == math.inf:
        return float(np.max(layer_norms))
    return float(np.sum(layer_norms**norm_type) ** (1.0 / norm_type))


def _loss_scale(optimizer):
    """The factor the gradients the optimizer receives are scaled by."""
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return optimizer.dynamic_scale.value
    return optimizer.loss_scale_factor
