"""Data-parallel runs for `test_distributed.py`, which also trains their
one-device references with the functions here.

`python -m tests._distributed_training OUTPUT_DIR` runs the scenarios below
on two simulated CPU devices under the backend of `KERAS_BACKEND`: JAX with
`keras.distribution.DataParallel` (the caller sets
`XLA_FLAGS=--xla_force_host_platform_device_count=2`, which JAX reads
before this module could set it), TensorFlow in the scope of a
`tf.distribute.MirroredStrategy` over two logical CPU devices, made here.
Each scenario trains the seed attention model (an LSTM encoder read by
`AttentionDecoder`, at small sizes) from its seeded initial weights for a
few SGD steps of one global batch each, as one device would:

- `"plain"`: trained, then saved as `.keras` in the strategy's scope
  (`in_scope.keras`) and after it (`after_scope.keras`).
- `"monitor"`: trained with `GradientNormMonitor(per_layer=True)`.
- `"schedule"`: trained with targets, `ScheduledSampling` setting the
  teacher-forcing probability to `SCHEDULE`: a replica that missed a value
  of 0 or 1 would feed other inputs, and at 0.5 the coins drawn count.

It writes `SCENARIO.npz` (see `train`) for each, or `NAME.error` with the
traceback of a step that raised, so that one failure leaves the others to
run and the tests report it.
"""

import os
import sys
import traceback

import keras
import numpy as np

import keras_seqext
from keras_seqext.callbacks import GradientNormMonitor
from keras_seqext.callbacks import ScheduledSampling

REPLICAS = 2
SCENARIOS = ("plain", "monitor", "schedule")
# The seed task at small sizes, so that a subprocess trains in seconds.
UNITS = 16
CARDINALITY = 10
STEPS_IN = 5
GLOBAL_BATCH = 8
# The teacher-forcing probability of each step of `"schedule"`.
SCHEDULE = (0.0, 1.0, 0.5, 0.5)
STEPS = len(SCHEDULE)
SEED = 0
# Large, so that a few steps move the weights far past the tolerance.
LEARNING_RATE = 0.5
MONITORED = ("grad_norm", "grad_norm/encoder", "grad_norm/decoder")


def training_data():
    """`(inputs, targets)` of `STEPS` global batches of the seed task."""
    return keras_seqext.datasets.copy_first(
        STEPS * GLOBAL_BATCH, n_in=STEPS_IN, cardinality=CARDINALITY, seed=SEED
    )


def held_out_inputs():
    """Held-out inputs for the saved model's predictions."""
    inputs, _ = keras_seqext.datasets.copy_first(
        GLOBAL_BATCH, n_in=STEPS_IN, cardinality=CARDINALITY, seed=SEED + 1
    )
    return inputs


def build(scenario):
    """The scenario's model, compiled: the LSTM encoder read by the
    attention decoder, with the targets as an optional second input where
    the scenario trains with teacher forcing."""
    keras.utils.set_random_seed(SEED)
    source = keras.Input((STEPS_IN, CARDINALITY), name="source")
    encoded = keras.layers.LSTM(UNITS, return_sequences=True, name="encoder")(
        source
    )
    if scenario in ("plain", "monitor"):
        decoder = keras_seqext.AttentionDecoder(
            UNITS, CARDINALITY, name="decoder"
        )
        model = keras.Model(source, decoder(encoded))
    else:
        targets = keras.Input(
            (STEPS_IN, CARDINALITY), name="targets", optional=True
        )
        decoder = keras_seqext.AttentionDecoder(
            UNITS,
            CARDINALITY,
            seed=SEED,
            name="decoder",
        )
        model = keras.Model(
            [source, targets], decoder(encoded, targets=targets)
        )
    model.compile(
        optimizer=keras.optimizers.SGD(LEARNING_RATE),
        loss="categorical_crossentropy",
    )
    return model


def one_copy(variable):
    """The value of `variable` on one device, as `(1, *shape)`."""
    return np.asarray(keras.ops.convert_to_numpy(variable.value))[None]


def train(scenario, replica_copies=one_copy):
    """Trains the scenario's model for `STEPS` steps, without shuffling.

    Args:
        scenario: One of `SCENARIOS`.
        replica_copies: Function of a variable: its value on each replica,
            stacked, `(replicas, *shape)`.

    Returns:
        The trained model and a dict: `initial_weights` (a list of arrays),
        `trained_weights` (the replica copies of each of `model.weights`),
        and what the scenario records in each step: the monitor's norms
        (`MONITORED`, each `(STEPS,)`), or the decoder's
        `teacher_forcing_probability` on each replica, `(STEPS, replicas)`.
    """
    model = build(scenario)
    initial_weights = model.get_weights()
    inputs, targets = training_data()
    if scenario not in ("plain", "monitor"):
        inputs = [inputs, targets]
    callbacks = {
        "monitor": [GradientNormMonitor(per_layer=True)],
        "schedule": [ScheduledSampling(lambda i: SCHEDULE[i])],
    }.get(scenario, [])
    recorder = Recorder(scenario, replica_copies)
    model.fit(
        inputs,
        targets,
        batch_size=GLOBAL_BATCH,
        shuffle=False,
        verbose=0,
        callbacks=[*callbacks, recorder],
    )
    return model, {
        "initial_weights": initial_weights,
        "trained_weights": [replica_copies(w) for w in model.weights],
        **{key: np.asarray(v) for key, v in recorder.records.items()},
    }


class Recorder(keras.callbacks.Callback):
    """Waits for each step; records the monitor's norms in its logs and, in
    `"schedule"`, the decoder's teacher-forcing probability on each
    replica."""

    def __init__(self, scenario, replica_copies):
        super().__init__()
        self.scenario = scenario
        self.replica_copies = replica_copies
        self.records = {}

    def on_train_batch_end(self, batch, logs=None):
        # With many steps in flight, jaxlib's CPU runtime can deadlock the
        # simulated devices' all-reduce when there are no more cores than
        # devices; waiting for each step's loss keeps one in flight.
        float(logs["loss"])
        for key in MONITORED:
            if key in logs:
                self.records.setdefault(key, []).append(logs[key])
        if self.scenario == "schedule":
            # `self.model` first: on JAX it writes the step's state back
            # into the variables, which hold no value while `fit` runs.
            decoder = self.model.get_layer("decoder")
            self.records.setdefault("teacher_forcing_probability", []).append(
                self.replica_copies(decoder.teacher_forcing_probability)
            )


def save_result(path, result):
    """Writes a `train` result to an `.npz` file; lists become
    `name/0`, `name/1`, ..."""
    arrays = {}
    for key, value in result.items():
        if isinstance(value, list):
            arrays.update({f"{key}/{i}": v for i, v in enumerate(value)})
        else:
            arrays[key] = value
    np.savez(path, **arrays)


def load_result(path):
    """Reads what `save_result` wrote."""
    result = {}
    with np.load(path) as arrays:
        for key in arrays.files:
            name, _, index = key.partition("/")
            if index.isdigit():
                result.setdefault(name, {})[int(index)] = arrays[key]
            else:
                result[key] = arrays[key]
    return {
        key: [value[i] for i in sorted(value)]
        if isinstance(value, dict)
        else value
        for key, value in result.items()
    }


def data_parallel():
    """Sets up `REPLICAS` simulated CPU devices for this backend.

    Returns:
        `(scope, replica_copies)`: a function returning a new context
        manager in which models train data-parallel, and the
        `replica_copies` of `train`.
    """
    backend = keras.backend.backend()
    if backend == "jax":
        devices = keras.distribution.list_devices("cpu")
        if len(devices) != REPLICAS:
            raise RuntimeError(
                f"Expected {REPLICAS} CPU devices, found {devices}: set "
                "XLA_FLAGS=--xla_force_host_platform_device_count="
                f"{REPLICAS} before starting Python."
            )
        distribution = keras.distribution.DataParallel(devices=devices)

        def replica_copies(variable):
            shards = variable.value.addressable_shards
            return np.stack([np.asarray(shard.data) for shard in shards])

        return distribution.scope, replica_copies
    if backend == "tensorflow":
        import tensorflow as tf

        # Possible only before TensorFlow first runs an op.
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * REPLICAS
        )
        strategy = tf.distribute.MirroredStrategy(
            [f"/cpu:{i}" for i in range(REPLICAS)]
        )

        def replica_copies(variable):
            copies = strategy.experimental_local_results(variable.value)
            return np.stack([copy.numpy() for copy in copies])

        return strategy.scope, replica_copies
    raise NotImplementedError(
        f"No data-parallel training to test on backend {backend!r}"
    )


def main(output_dir):
    scope, replica_copies = data_parallel()

    def attempt(name, function):
        """`function()`, or None once its traceback is in `NAME.error`."""
        try:
            return function()
        except Exception:
            with open(os.path.join(output_dir, f"{name}.error"), "w") as file:
                file.write(traceback.format_exc())
            return None

    def run(scenario):
        with scope():
            model, result = train(scenario, replica_copies=replica_copies)
            if scenario == "plain":
                result["predictions"] = model.predict(
                    held_out_inputs(), verbose=0
                )
        save_result(os.path.join(output_dir, f"{scenario}.npz"), result)
        return model

    def save_in_scope(model):
        with scope():
            model.save(os.path.join(output_dir, "in_scope.keras"))

    model = attempt("plain", lambda: run("plain"))
    if model is not None:
        attempt("in_scope", lambda: save_in_scope(model))
        attempt(
            "after_scope",
            lambda: model.save(os.path.join(output_dir, "after_scope.keras")),
        )
    for scenario in SCENARIOS[1:]:
        attempt(scenario, lambda: run(scenario))


if __name__ == "__main__":
    main(sys.argv[1])
