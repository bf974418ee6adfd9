import json
import math

import keras
import numpy as np
import pytest

from keras_seqext import AttentionDecoder
from keras_seqext.callbacks import ExponentialDecay
from keras_seqext.callbacks import InverseSigmoidDecay
from keras_seqext.callbacks import LinearDecay
from keras_seqext.callbacks import ScheduledSampling
from tests.test_case import TestCase

LENGTH, FEATURES, CLASSES, SAMPLES = 4, 3, 5, 24


class TestSchedules:
    """Bengio et al.'s formulas, at i = 0, 10 and 1000."""

    @pytest.mark.parametrize("i", [0, 10, 1000])
    def test_linear(self, i):
        schedule = LinearDecay(k=0.9, c=0.002, minimum=0.1)
        assert schedule(i) == pytest.approx(max(0.1, 0.9 - 0.002 * i))

    @pytest.mark.parametrize("i", [0, 10, 1000])
    def test_exponential(self, i):
        schedule = ExponentialDecay(k=0.99)
        assert schedule(i) == pytest.approx(0.99**i)

    @pytest.mark.parametrize("i", [0, 10, 1000])
    def test_inverse_sigmoid(self, i):
        schedule = InverseSigmoidDecay(k=50.0)
        assert schedule(i) == pytest.approx(50 / (50 + math.exp(i / 50)))

    def test_minimum_is_a_floor(self):
        assert ExponentialDecay(k=0.5, minimum=0.3)(10) == 0.3
        assert InverseSigmoidDecay(k=2.0, minimum=0.05)(10**6) == 0.05

    @pytest.mark.parametrize(
        "schedule",
        [
            LinearDecay(0.8, 0.01, 0.2),
            ExponentialDecay(0.9),
            InverseSigmoidDecay(3.0),
        ],
    )
    def test_serializes_without_custom_objects(self, schedule):
        revived = keras.saving.deserialize_keras_object(
            json.loads(
                json.dumps(keras.saving.serialize_keras_object(schedule))
            )
        )
        assert type(revived) is type(schedule)
        assert revived(7) == schedule(7)

    def test_string_shortcuts_build_the_schedules(self):
        linear = ScheduledSampling("linear", k=0.9, c=0.1, minimum=0.2)
        assert isinstance(linear.schedule, LinearDecay)
        assert linear.schedule(3) == pytest.approx(0.6)
        assert ScheduledSampling("exponential", k=0.5).schedule(2) == 0.25
        assert ScheduledSampling().schedule.k == InverseSigmoidDecay().k


def decoder_model(**decoder_kwargs):
    """An encoder and AttentionDecoder trained with teacher forcing, the
    targets a second model input."""
    source = keras.Input((LENGTH, FEATURES))
    targets = keras.Input((LENGTH, CLASSES))
    encoded = keras.layers.LSTM(6, return_sequences=True)(source)
    decoder = AttentionDecoder(6, CLASSES, seed=0, **decoder_kwargs)
    return keras.Model([source, targets], decoder(encoded, targets=targets))


def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(SAMPLES, LENGTH, FEATURES)).astype("float32")
    y = np.eye(CLASSES, dtype="float32")[
        rng.integers(0, CLASSES, (SAMPLES, LENGTH))
    ]
    return [x, y], y


def halvings_logged(batch_size, **compile_kwargs):
    """The probability in each batch log of two epochs of a schedule that
    halves it every batch."""
    model = decoder_model()
    model.compile("adam", "categorical_crossentropy", **compile_kwargs)
    logged = []
    recorder = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: logged.append(
            logs["teacher_forcing_probability"]
        )
    )
    x, y = data()
    model.fit(
        x,
        y,
        batch_size=batch_size,
        epochs=2,
        verbose=0,
        callbacks=[ScheduledSampling("exponential", k=0.5), recorder],
    )
    return logged


class TestScheduledSampling(TestCase):
    def test_variable_holds_the_value_of_the_last_step(self):
        model = decoder_model()
        model.compile("adam", "categorical_crossentropy")
        callback = ScheduledSampling("linear", k=1.0, c=0.04, minimum=0.1)
        x, y = data()
        history = model.fit(
            x, y, batch_size=6, epochs=3, verbose=0, callbacks=[callback]
        )
        last_step = 3 * SAMPLES // 6 - 1
        variable = model.layers[-1].teacher_forcing_probability
        self.assertAllClose(variable, 1.0 - 0.04 * last_step)
        # The epoch logs hold the value of each epoch's last batch.
        expected = [1.0 - 0.04 * (4 * epoch + 3) for epoch in range(3)]
        self.assertAllClose(
            history.history["teacher_forcing_probability"], expected
        )

    @pytest.mark.parametrize("jit_compile", [True, False])
    def test_compiled_step_reads_each_new_value(self, jit_compile):
        """A decoder that outputs what it is fed, trained with a zero
        learning rate, has a known loss at probability 0 (free-running: all
        zeros) and at 1 (the previous targets). A schedule alternating 0 and
        1 from batch to batch must alternate the losses within the epoch."""
        source = keras.Input((LENGTH, FEATURES))
        targets = keras.Input((LENGTH, CLASSES))
        decoder = AttentionDecoder(
            6, CLASSES, output_activation="linear", seed=0
        )
        model = keras.Model([source, targets], decoder(source, targets=targets))
        for weight in decoder.cell.weights:
            weight.assign(np.zeros(weight.shape))
        passthrough = np.zeros((CLASSES, 3 * 6 + CLASSES))
        passthrough[:, 3 * 6 :] = np.eye(CLASSES)
        decoder.cell.feedback_kernel.assign(passthrough)
        model.compile(keras.optimizers.SGD(0.0), "mse", jit_compile=jit_compile)
        x, y = data()
        batch_losses = []
        recorder = keras.callbacks.LambdaCallback(
            on_train_batch_end=lambda batch, logs: batch_losses.append(
                logs["loss"]
            )
        )
        model.fit(
            x,
            y,
            batch_size=SAMPLES // 4,
            shuffle=False,
            verbose=0,
            callbacks=[ScheduledSampling(lambda i: float(i % 2)), recorder],
        )
        shifted = np.concatenate([np.zeros_like(y[:, :1]), y[:, :-1]], axis=1)
        losses = [
            np.mean(((previous if forced else 0) - y_batch) ** 2)
            for forced, previous, y_batch in zip(
                [False, True, False, True],
                np.split(shifted, 4),
                np.split(y, 4),
            )
        ]
        # The batch logs hold the running mean of the epoch's losses.
        running_means = np.cumsum(losses) / np.arange(1, 5)
        self.assertAllClose(batch_losses, running_means, atol=1e-6)

    def test_batch_logs_hold_the_value(self):
        assert halvings_logged(batch_size=12) == [1.0, 0.5, 0.25, 0.125]

    @pytest.mark.skipif(
        keras.backend.backend() == "torch",
        reason="Keras' torch trainer runs one batch per call",
    )
    def test_counts_batches_under_steps_per_execution(self):
        """With 3 batches per call, the hooks run before batches 0 and 3 of
        each 4-batch epoch, the second call running batch 3 alone; `i`
        counts batches all the same."""
        logged = halvings_logged(batch_size=6, steps_per_execution=3)
        assert logged == [0.5**i for i in (0, 3, 4, 7)]

    def test_epoch_updates_and_resume_from_initial_epoch(self):
        model = decoder_model()
        model.compile("adam", "categorical_crossentropy")
        x, y = data()
        epochs = ScheduledSampling("exponential", k=0.5, update="epoch")
        history = model.fit(
            x,
            y,
            batch_size=12,
            epochs=4,
            initial_epoch=2,
            verbose=0,
            callbacks=[epochs],
        )
        assert history.history["teacher_forcing_probability"] == [0.25, 0.125]
        # Counting batches, epoch 2 of 2-batch epochs starts at i = 4.
        batches = ScheduledSampling("exponential", k=0.5)
        history = model.fit(
            x,
            y,
            batch_size=12,
            epochs=3,
            initial_epoch=2,
            verbose=0,
            callbacks=[batches],
        )
        assert history.history["teacher_forcing_probability"] == [0.5**5]

    def test_finds_decoders_in_nested_models_or_takes_given_layers(self):
        inner = decoder_model()
        source = keras.Input((LENGTH, FEATURES))
        targets = keras.Input((LENGTH, CLASSES))
        outer = keras.Model([source, targets], inner([source, targets]))
        outer.compile("adam", "categorical_crossentropy")
        x, y = data()
        outer.fit(
            x,
            y,
            batch_size=SAMPLES,
            verbose=0,
            callbacks=[ScheduledSampling(lambda i: 0.3)],
        )
        decoder = inner.layers[-1]
        self.assertAllClose(decoder.teacher_forcing_probability, 0.3)
        outer.fit(
            x,
            y,
            batch_size=SAMPLES,
            verbose=0,
            callbacks=[ScheduledSampling(lambda i: 0.6, layers=[decoder])],
        )
        self.assertAllClose(decoder.teacher_forcing_probability, 0.6)

    def test_model_without_decoder_raises_at_train_begin(self):
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
        model.compile("adam", "mse")
        with pytest.raises(ValueError, match="teacher_forcing_probability"):
            model.fit(
                np.zeros((4, 3)),
                np.zeros((4, 1)),
                verbose=0,
                callbacks=[ScheduledSampling()],
            )

    def test_schedule_value_outside_unit_interval_raises(self):
        model = decoder_model()
        model.compile("adam", "categorical_crossentropy")
        x, y = data()
        with pytest.raises(ValueError, match=r"schedule\(i\).*1\.5"):
            model.fit(
                x, y, verbose=0, callbacks=[ScheduledSampling(lambda i: 1.5)]
            )


@pytest.mark.parametrize(
    "make, argument",
    [
        (lambda: ScheduledSampling("cosine"), "schedule"),
        (lambda: ScheduledSampling(0.5), "schedule"),
        (lambda: ScheduledSampling(update="step"), "update"),
        (lambda: ScheduledSampling("linear", k=1.5), "k"),
        (lambda: ScheduledSampling("linear", c=-1.0), "c"),
        (lambda: ScheduledSampling("linear", minimum=2.0), "minimum"),
        (lambda: ScheduledSampling("exponential", k=1.0), "k"),
        (lambda: ScheduledSampling("exponential", c=0.1), "c"),
        (lambda: ScheduledSampling("inverse_sigmoid", k=0.5), "k"),
        (lambda: ScheduledSampling(lambda i: 1.0, k=2.0), "k"),
        (lambda: LinearDecay(c=0), "c"),
        (lambda: LinearDecay(c=float("inf")), "c"),
        (lambda: LinearDecay(c=float("nan")), "c"),
        (lambda: InverseSigmoidDecay(k=float("inf")), "k"),
        (lambda: ExponentialDecay(k=float("nan")), "k"),
        (lambda: ExponentialDecay(k=0.0), "k"),
        (lambda: InverseSigmoidDecay(minimum=-0.1), "minimum"),
    ],
)
def test_bad_argument(make, argument):
    with pytest.raises(ValueError, match=f"`{argument}`"):
        make()
