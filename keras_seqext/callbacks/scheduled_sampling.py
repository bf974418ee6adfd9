"""Scheduled sampling: Bengio et al.'s decaying teacher-forcing probability.

Each schedule maps a counter `i` (batches or epochs seen) to the probability
`epsilon_i` of feeding the decoder the true previous token rather than its
own prediction; `ScheduledSampling` writes it into every layer that has a
`teacher_forcing_probability` variable, such as `AttentionDecoder`.
"""

import math
import warnings

import keras

from keras_seqext._model_graph import all_layers
from keras_seqext._validation import check_choice
from keras_seqext._validation import check_finite
from keras_seqext._validation import check_probability
from keras_seqext.callbacks._batch_hooks import last_batch_run
from keras_seqext.callbacks._batch_hooks import steps_per_epoch

UPDATES = ("batch", "epoch")


@keras.saving.register_keras_serializable(package="keras_seqext")
class LinearDecay:
    """`epsilon_i = max(minimum, k - c * i)`.

    Args:
        k: The probability at `i = 0`, in [0, 1]. Defaults to `1.0`.
        c: The decrease per step, positive. Defaults to `1e-3`.
        minimum: The floor, in [0, 1]. Defaults to `0.0`.

    Example:

    >>> schedule = keras_seqext.callbacks.LinearDecay(k=1.0, c=0.1)
    >>> round(schedule(3), 6)
    0.7
    """

    def __init__(self, k=1.0, c=1e-3, minimum=0.0):
        self.k = check_probability("LinearDecay", "k", k)
        self.c = check_finite(
            "LinearDecay", "c", c, "a finite positive number", lambda c: c > 0
        )
        self.minimum = check_probability("LinearDecay", "minimum", minimum)

    def __call__(self, i):
        return max(self.minimum, self.k - self.c * i)

    def get_config(self):
        return {"k": self.k, "c": self.c, "minimum": self.minimum}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


@keras.saving.register_keras_serializable(package="keras_seqext")
class ExponentialDecay:
    """`epsilon_i = max(minimum, k ** i)`, with `0 < k < 1`.

    Args:
        k: The decay factor per step, in (0, 1). Defaults to `0.999`.
        minimum: The floor, in [0, 1]. Defaults to `0.0`.

    Example:

    >>> schedule = keras_seqext.callbacks.ExponentialDecay(k=0.5)
    >>> schedule(0), schedule(2)
    (1.0, 0.25)
    """

    def __init__(self, k=0.999, minimum=0.0):
        k = check_finite(
            "ExponentialDecay",
            "k",
            k,
            "a number in (0, 1)",
            lambda k: 0.0 < k < 1.0,
        )
        self.k = float(k)
        self.minimum = check_probability("ExponentialDecay", "minimum", minimum)

    def __call__(self, i):
        return max(self.minimum, self.k**i)

    def get_config(self):
        return {"k": self.k, "minimum": self.minimum}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


@keras.saving.register_keras_serializable(package="keras_seqext")
class InverseSigmoidDecay:
    """`epsilon_i = max(minimum, k / (k + exp(i / k)))`, with `k >= 1`.

    Stays near `k / (k + 1)` for the first steps, then falls; it crosses
    0.5 at `i = k * ln(k)`.

    Args:
        k: Positive number at least 1; larger keeps teacher forcing longer.
            Defaults to `100.0`.
        minimum: The floor, in [0, 1]. Defaults to `0.0`.

    Example:

    >>> schedule = keras_seqext.callbacks.InverseSigmoidDecay(k=10.0)
    >>> round(schedule(0), 4), round(schedule(100), 4)
    (0.9091, 0.0005)
    """

    def __init__(self, k=100.0, minimum=0.0):
        self.k = check_finite(
            "InverseSigmoidDecay",
            "k",
            k,
            "a finite number >= 1",
            lambda k: k >= 1.0,
        )
        self.minimum = check_probability(
            "InverseSigmoidDecay", "minimum", minimum
        )

    def __call__(self, i):
        # exp(i / k) overflows a float near i / k = 710: the value is 0 there.
        exponent = i / self.k
        if exponent > _MAX_EXPONENT:
            return self.minimum
        return max(self.minimum, self.k / (self.k + math.exp(exponent)))

    def get_config(self):
        return {"k": self.k, "minimum": self.minimum}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


_MAX_EXPONENT = math.log(1e300)
SCHEDULES = {
    "linear": LinearDecay,
    "exponential": ExponentialDecay,
    "inverse_sigmoid": InverseSigmoidDecay,
}


class ScheduledSampling(keras.callbacks.Callback):
    """Decays the teacher-forcing probability of a model's decoders.

    Scheduled sampling (Bengio et al., 2015) trains a decoder first on the
    true previous tokens (teacher forcing) and then, more and more, on its
    own predictions, so that it learns to recover from its own mistakes as
    it must at inference. Before each batch (or epoch) this callback
    computes the schedule's probability for the count `i` of batches (or
    epochs) seen and assigns it to the `teacher_forcing_probability`
    variable of every layer that has one, nested models included; the
    compiled train step reads the new value on every backend.

    The count resumes from `initial_epoch` when `fit` resumes training, using
    the number of steps per epoch. With `compile(steps_per_execution=n)`
    the batch hooks run once per `n` batches: the probability then changes
    every `n` batches, each time to its value at the first of them. The
    value is logged as `teacher_forcing_probability` in the batch and epoch
    logs, so `History` and the callbacks after this one in the list see it.

    Args:
        schedule: `"linear"`, `"exponential"`, `"inverse_sigmoid"`, a
            schedule object (`LinearDecay`, `ExponentialDecay`,
            `InverseSigmoidDecay`) or any callable `i -> probability`.
            Defaults to `"inverse_sigmoid"`.
        k: The schedule's `k`, with a string `schedule`; None takes the
            schedule's default. Defaults to `None`.
        c: The linear schedule's decrease per step; None takes its default.
            Defaults to `None`.
        minimum: The floor of the probability, with a string `schedule`.
            Defaults to `0.0`.
        update: `"batch"` to update before every batch (`i` counts batches)
            or `"epoch"` (`i` counts epochs). Defaults to `"batch"`.
        layers: The layers to update, or None for every layer of the model
            that has a `teacher_forcing_probability`. Defaults to `None`.

    Raises:
        ValueError: on a bad argument, a schedule value outside [0, 1], or,
            at the start of training, a model with no layer to update.

    Example:

    >>> callback = keras_seqext.callbacks.ScheduledSampling(
    ...     "linear", k=1.0, c=0.01, minimum=0.2)
    >>> callback.schedule(10)
    0.9

    Reference:
        Bengio, Vinyals, Jaitly and Shazeer, "Scheduled Sampling for
        Sequence Prediction with Recurrent Neural Networks", NeurIPS 2015.
    """

    def __init__(
        self,
        schedule="inverse_sigmoid",
        k=None,
        c=None,
        minimum=0.0,
        update="batch",
        layers=None,
    ):
        super().__init__()
        owner = type(self).__name__
        self.schedule = _make_schedule(owner, schedule, k, c, minimum)
        self.update = check_choice(owner, "update", update, UPDATES)
        self.layers = None if layers is None else list(layers)
        self._setters = []
        self._epoch_start = None
        self._epoch_batches = 0
        self._value = None

    def on_train_begin(self, logs=None):
        # Reset, so that one callback can serve several `fit` calls.
        self._setters = self._find_setters()
        self._epoch_start = None
        self._epoch_batches = 0
        self._value = None

    def on_epoch_begin(self, epoch, logs=None):
        if self.update == "epoch":
            self._assign(epoch)
            return
        if self._epoch_start is None:
            # The first epoch of this `fit`: resume from `initial_epoch`.
            steps = steps_per_epoch(self)
            self._epoch_start = epoch * (steps or 0)
            if epoch and not steps:
                warnings.warn(
                    f"{type(self).__name__} cannot resume its batch count "
                    f"at epoch {epoch}: the number of steps per epoch is "
                    "unknown. It counts from 0.",
                    stacklevel=2,
                )
        else:
            self._epoch_start += self._epoch_batches

    def on_train_batch_begin(self, batch, logs=None):
        # `batch` is the epoch's index of the first batch that the call runs,
        # which counts batches, not calls, under `steps_per_execution`.
        if self.update == "batch":
            self._assign(self._epoch_start + batch)

    def on_train_batch_end(self, batch, logs=None):
        self._epoch_batches = last_batch_run(self, batch) + 1
        if logs is not None:
            logs["teacher_forcing_probability"] = self._value

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["teacher_forcing_probability"] = self._value

    def _assign(self, i):
        value = check_probability(
            type(self).__name__, "schedule(i)", self.schedule(i)
        )
        # Reading `self.model` first matters on JAX: it writes the train
        # step's state back into the variables (a sync), so that the next
        # step starts from the variables, with this value in them.
        self.model
        for set_probability in self._setters:
            set_probability(value)
        self._value = value

    def _find_setters(self):
        """How to set each layer's probability: its checked setter where it
        has one (`AttentionDecoder`), else an assignment to its variable."""
        layers = self.layers
        if layers is None:
            layers = all_layers(self.model)
        setters = []
        for layer in layers:
            variable = getattr(layer, "teacher_forcing_probability", None)
            if not isinstance(variable, keras.Variable):
                continue
            setters.append(
                getattr(layer, "set_teacher_forcing_probability", None)
                or variable.assign
            )
        if not setters:
            raise ValueError(
                f"{type(self).__name__} found no layer with a "
                "`teacher_forcing_probability` variable in "
                f"{'the given layers' if self.layers else 'the model'} "
                f"(such as AttentionDecoder). Received: layers={layers!r}"
            )
        return setters


def _make_schedule(owner, schedule, k, c, minimum):
    if isinstance(schedule, str):
        check_choice(owner, "schedule", schedule, tuple(SCHEDULES))
        kwargs = {"minimum": minimum}
        if k is not None:
            kwargs["k"] = k
        if c is not None:
            if schedule != "linear":
                raise ValueError(
                    f"Invalid argument for {owner}: `c` is the linear "
                    f"schedule's. Received: schedule={schedule!r}, c={c!r}"
                )
            kwargs["c"] = c
        return SCHEDULES[schedule](**kwargs)
    if not callable(schedule):
        raise ValueError(
            f"Invalid value for argument `schedule` of {owner}. Expected one "
            f"of {set(SCHEDULES)} or a callable `i -> probability`. "
            f"Received: schedule={schedule!r}"
        )
    if (k, c, minimum) != (None, None, 0.0):
        raise ValueError(
            f"Invalid arguments for {owner}: `k`, `c` and `minimum` only "
            "configure a schedule given by name. Received: "
            f"schedule={schedule!r}, k={k!r}, c={c!r}, minimum={minimum!r}"
        )
    return schedule
