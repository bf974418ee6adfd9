"""The attention tutorial's task, trained data-parallel on several devices.

The model and task of `copy_first.py`: an LSTM encoder read by
`AttentionDecoder` learns to output the first 2 of 5 random integers in
[0, 50). Here each global batch is split over the devices, each holding a
copy of the model; the gradients of the parts are summed across devices
before every update, so that training takes the path it would take on one
device with the same global batch (tests/test_distributed.py checks this,
within 1e-4, on two devices).

The devices are all the GPUs, or, on a machine without any, two devices
simulated on the CPU: with JAX, `keras.distribution.DataParallel` over the
CPU devices that `XLA_FLAGS=--xla_force_host_platform_device_count=2`
(set below, before JAX starts) makes; with TensorFlow,
`tf.distribute.MirroredStrategy` over two logical CPU devices. Simulated
devices share the same cores: they show that the training works, not a
speed-up. Keras has no data-parallel training on its PyTorch backend; the
script says so and stops.

In our runs (seed 0, two simulated devices, global batch 32, so 16 per
device as in `copy_first.py`), the held-out exact match after 5 epochs was
98.2% with JAX and 99.1% with TensorFlow, in about 75 s each on a busy
2-core machine, a third of it compiling.

Run it with JAX (the default here) or TensorFlow:

    KERAS_BACKEND=jax python examples/distributed_training.py [--epochs 5]
"""

import os

os.environ.setdefault("KERAS_BACKEND", "jax")
# JAX reads this once, when it starts; it adds CPU devices only, so GPUs
# and TPUs are used as they are.
os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "")
    + " --xla_force_host_platform_device_count=2"
)

import argparse
import sys
import time

import keras
from _tables import markdown_table

import keras_seqext

SIMULATED_DEVICES = 2  # as in XLA_FLAGS above
STEPS_IN = 5
CARDINALITY = 50
UNITS = 150  # as in the tutorial


def data_parallel():
    """The context in which models train data-parallel, what it is, and the
    callbacks that training there needs."""
    backend = keras.backend.backend()
    if backend == "jax":
        devices = keras.distribution.list_devices()
        distribution = keras.distribution.DataParallel(devices=devices)
        on_cpu = all(device.startswith("cpu") for device in devices)
        return (
            distribution.scope(),
            f"keras.distribution.DataParallel over {', '.join(devices)}",
            [WaitForEachStep()] if on_cpu else [],
        )
    if backend == "tensorflow":
        import tensorflow as tf

        if not tf.config.list_physical_devices("GPU"):
            # Possible only before TensorFlow first runs an op.
            cpu = tf.config.list_physical_devices("CPU")[0]
            tf.config.set_logical_device_configuration(
                cpu,
                [tf.config.LogicalDeviceConfiguration()] * SIMULATED_DEVICES,
            )
        # Without devices, MirroredStrategy would take one CPU device only.
        devices = [
            device.name
            for device in tf.config.list_logical_devices("GPU")
            or tf.config.list_logical_devices("CPU")
        ]
        strategy = tf.distribute.MirroredStrategy(devices)
        return (
            strategy.scope(),
            f"tf.distribute.MirroredStrategy over {', '.join(devices)}",
            [],
        )
    if backend == "torch":
        sys.exit(
            f"Keras {keras.__version__} has no data-parallel training on "
            "the PyTorch backend: keras.distribution.list_devices() and "
            "DataParallel() raise there, and fit ignores a DataParallel "
            "given its devices. Run this example with KERAS_BACKEND=jax or "
            "KERAS_BACKEND=tensorflow."
        )
    raise NotImplementedError(f"No data-parallel training on {backend!r}")


class WaitForEachStep(keras.callbacks.Callback):
    """Waits for each step's loss, so that one step at a time is in flight.

    With dozens of steps in flight, jaxlib's CPU runtime can deadlock the
    all-reduce of simulated CPU devices when the machine has no more cores
    than devices (jaxlib 0.10 on 2 cores: XLA aborts after 40 s in a
    collective). GPUs and TPUs do not need this.
    """

    def on_train_batch_end(self, batch, logs=None):
        float(logs["loss"])

    def on_test_batch_end(self, batch, logs=None):
        float(logs["loss"])


def attention_decoder():
    """LSTM encoder returning every state, read by the attention decoder."""
    return keras.Sequential(
        [
            keras.Input((STEPS_IN, CARDINALITY)),
            keras.layers.LSTM(UNITS, return_sequences=True),
            keras_seqext.AttentionDecoder(UNITS, CARDINALITY),
        ]
    )


class EpochPrinter(keras.callbacks.Callback):
    """Prints each epoch's results as it ends and keeps them as rows."""

    def __init__(self):
        super().__init__()
        self.rows = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - self._start
        row = [
            str(epoch + 1),
            f"{logs['loss']:.4f}",
            f"{logs['sequence_accuracy']:.1%}",
            f"{logs['val_sequence_accuracy']:.1%}",
            f"{logs['grad_norm']:.3f}",
            f"{seconds:.1f}",
        ]
        self.rows.append(row)
        print(
            f"epoch {row[0]}: loss {row[1]}, exact match {row[2]} "
            f"(training), {row[3]} (held out), mean gradient norm "
            f"{row[4]}, {row[5]} s",
            flush=True,
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument(
        "--batch-size",
        type=int,
        default=32,
        help="the global batch, split over the devices",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    scope, description, callbacks = data_parallel()
    print(
        f"Backend {keras.backend.backend()}, {description}; global batch "
        f"{args.batch_size}.",
        flush=True,
    )
    x_train, y_train = keras_seqext.datasets.copy_first(
        5000, seed=args.seed + 1
    )
    x_test, y_test = keras_seqext.datasets.copy_first(1000, seed=args.seed + 2)
    printer = EpochPrinter()
    with scope:
        keras.utils.set_random_seed(args.seed)
        model = attention_decoder()
        model.compile(
            optimizer="adam",
            loss="categorical_crossentropy",
            metrics=[keras_seqext.metrics.SequenceAccuracy()],
        )
        model.fit(
            x_train,
            y_train,
            batch_size=args.batch_size,
            epochs=args.epochs,
            validation_data=(x_test, y_test),
            # The monitor logs the global gradient's norm, summed over the
            # devices, as one device would see it.
            callbacks=[
                keras_seqext.GradientNormMonitor(),
                *callbacks,
                printer,
            ],
            verbose=0,
        )
        logs = model.evaluate(
            x_test,
            y_test,
            callbacks=callbacks,
            verbose=0,
            return_dict=True,
        )

    print(
        "\nExact match (all 5 steps right) after each epoch over 5000 "
        "training sequences,\nand on 1000 held-out ones:\n"
    )
    header = ["epoch", "loss", "training", "held out", "grad norm", "seconds"]
    print(markdown_table(header, printer.rows))
    print(
        f"\nFinal held-out exact match: {logs['sequence_accuracy']:.1%} "
        f"({description})."
    )


if __name__ == "__main__":
    main()
