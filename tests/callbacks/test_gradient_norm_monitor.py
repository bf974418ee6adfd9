import contextlib
import csv
import math
import warnings

import keras
import numpy as np
import pytest

from keras_seqext.callbacks import GradientNormMonitor

SAMPLES, FEATURES, HIDDEN, OUTPUTS = 8, 3, 4, 2


def data(seed=0, samples=SAMPLES):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(samples, FEATURES)).astype("float32")
    y = rng.normal(size=(samples, OUTPUTS)).astype("float32")
    return x, y


def two_dense_layers():
    return keras.Sequential(
        [
            keras.Input((FEATURES,)),
            keras.layers.Dense(HIDDEN, name="hidden"),
            keras.layers.Dense(OUTPUTS, name="output"),
        ]
    )


def numpy_gradients(model, x, y):
    """Closed-form gradients of the mean squared error of two linear Dense
    layers, per layer: [[d kernel, d bias] of "hidden", of "output"]."""
    w1, b1, w2, b2 = [w.astype("float64") for w in model.get_weights()]
    hidden = x @ w1 + b1
    d_outputs = 2 * (hidden @ w2 + b2 - y) / y.size
    d_hidden = d_outputs @ w2.T
    return [
        [x.T @ d_hidden, d_hidden.sum(0)],
        [hidden.T @ d_outputs, d_outputs.sum(0)],
    ]


def numpy_norm(gradients, norm_type):
    flat = np.concatenate([np.ravel(g) for g in gradients])
    return np.linalg.norm(flat, norm_type)


@contextlib.contextmanager
def user_warnings():
    """Records UserWarnings; unlike `pytest.warns`, leaves the others to the
    test filters (which ignore Keras' own NumPy deprecation warnings)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        yield caught


def fit(model, x, y, monitor, batch_size=SAMPLES, epochs=1, **compile):
    compile.setdefault("optimizer", keras.optimizers.SGD(0.01))
    model.compile(loss="mse", **compile)
    return model.fit(
        x,
        y,
        batch_size=batch_size,
        epochs=epochs,
        verbose=0,
        callbacks=[monitor],
    )


class TestNormValues:
    @pytest.mark.parametrize("jit_compile", [False, True])
    @pytest.mark.parametrize("norm_type", [2, 1, math.inf])
    def test_matches_the_closed_form(self, norm_type, jit_compile):
        x, y = data()
        model = two_dense_layers()
        hidden, output = numpy_gradients(model, x, y)
        history = fit(
            model,
            x,
            y,
            GradientNormMonitor(norm_type=norm_type, per_layer=True),
            jit_compile=jit_compile,
        ).history
        np.testing.assert_allclose(
            history["grad_norm"],
            [numpy_norm(hidden + output, norm_type)],
            rtol=1e-5,
        )
        np.testing.assert_allclose(
            history["grad_norm/hidden"],
            [numpy_norm(hidden, norm_type)],
            rtol=1e-5,
        )
        np.testing.assert_allclose(
            history["grad_norm/output"],
            [numpy_norm(output, norm_type)],
            rtol=1e-5,
        )

    @pytest.mark.parametrize(
        "clipping",
        [{"clipnorm": 1e-3}, {"clipvalue": 1e-3}, {"global_clipnorm": 1e-3}],
    )
    def test_is_the_norm_before_clipping(self, clipping):
        x, y = data()
        model = two_dense_layers()
        hidden, output = numpy_gradients(model, x, y)
        expected = numpy_norm(hidden + output, 2)
        assert expected > 1e-2  # so that clipping would change it
        history = fit(
            model,
            x,
            y,
            GradientNormMonitor(),
            optimizer=keras.optimizers.SGD(0.01, **clipping),
        ).history
        np.testing.assert_allclose(history["grad_norm"], [expected], rtol=1e-5)

    def test_gradients_past_float32_squares_do_not_overflow(self):
        # Gradients near 1e19: their squares overflow float32, the norm not.
        x = np.full((2, FEATURES), 3e9, "float32")
        y = np.zeros((2, 1), "float32")
        model = keras.Sequential(
            [
                keras.Input((FEATURES,)),
                keras.layers.Dense(1, kernel_initializer="ones"),
            ]
        )
        kernel, bias = [w.astype("float64") for w in model.get_weights()]
        d_outputs = 2 * (x @ kernel + bias - y) / y.size
        expected = numpy_norm([x.T @ d_outputs, d_outputs.sum(0)], 2)
        assert expected**2 > np.finfo("float32").max
        history = fit(model, x, y, GradientNormMonitor()).history
        np.testing.assert_allclose(history["grad_norm"], [expected], rtol=1e-5)

    def test_mixed_precision_logs_the_unscaled_norm(self):
        x, y = data()
        float32_model = two_dense_layers()
        weights = float32_model.get_weights()
        float32_norm = fit(float32_model, x, y, GradientNormMonitor())
        keras.config.set_dtype_policy("mixed_float16")
        model = two_dense_layers()
        model.set_weights(weights)
        history = fit(model, x, y, GradientNormMonitor())
        # The check can fail: the gradients it sees are scaled by 2**15.
        assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
        np.testing.assert_allclose(
            history.history["grad_norm"],
            float32_norm.history["grad_norm"],
            rtol=1e-2,
        )


class TestLogs:
    def test_history_has_one_value_per_epoch_the_mean_of_its_steps(self):
        x, y = data(samples=4 * SAMPLES)
        batch_norms = []
        recorder = keras.callbacks.LambdaCallback(
            on_train_batch_end=lambda batch, logs: batch_norms.append(
                logs["grad_norm"]
            )
        )
        model = two_dense_layers()
        model.compile(optimizer="sgd", loss="mse")
        history = model.fit(
            x,
            y,
            batch_size=SAMPLES,
            epochs=3,
            verbose=0,
            callbacks=[GradientNormMonitor(), recorder],
        )
        assert sorted(history.history) == ["grad_norm", "loss"]
        assert len(history.history["grad_norm"]) == 3
        np.testing.assert_allclose(
            history.history["grad_norm"],
            np.mean(np.reshape(batch_norms, (3, 4)), axis=1),
            rtol=1e-6,
        )

    def test_logs_every_n_steps_of_each_epoch(self):
        x, y = data(samples=5 * SAMPLES)
        logged = []
        recorder = keras.callbacks.LambdaCallback(
            on_train_batch_end=lambda batch, logs: logged.append(
                "grad_norm" in logs
            )
        )
        model = two_dense_layers()
        model.compile(optimizer="sgd", loss="mse")
        model.fit(
            x,
            y,
            batch_size=SAMPLES,
            epochs=2,
            verbose=0,
            callbacks=[GradientNormMonitor(log_every_n_steps=2), recorder],
        )
        assert logged == [True, False, True, False, True] * 2

    @pytest.mark.skipif(
        keras.backend.backend() == "torch",
        reason="Keras' torch trainer runs one batch per call",
    )
    def test_logs_the_calls_that_ran_a_step_to_log(self):
        """With 2 batches per call, the batch hooks see batches 1, 3 and 5
        of each epoch, and each call ran one of the even batches to log."""
        x, y = data(samples=5 * SAMPLES)
        logged = []
        recorder = keras.callbacks.LambdaCallback(
            on_train_batch_end=lambda batch, logs: logged.append(
                (batch, "grad_norm" in logs)
            )
        )
        model = two_dense_layers()
        model.compile(optimizer="sgd", loss="mse", steps_per_execution=2)
        model.fit(
            x,
            y,
            batch_size=SAMPLES,
            epochs=2,
            verbose=0,
            callbacks=[GradientNormMonitor(log_every_n_steps=2), recorder],
        )
        assert logged == [(1, True), (3, True), (5, True)] * 2

    def test_csv_logger_writes_the_column(self, tmp_path):
        x, y = data()
        path = tmp_path / "log.csv"
        model = two_dense_layers()
        model.compile(optimizer="sgd", loss="mse")
        model.fit(
            x,
            y,
            epochs=2,
            verbose=0,
            callbacks=[
                GradientNormMonitor(per_layer=True),
                keras.callbacks.CSVLogger(str(path)),
            ],
        )
        with open(path) as file:
            rows = list(csv.DictReader(file))
        assert len(rows) == 2
        assert all(float(row["grad_norm"]) > 0 for row in rows)
        assert "grad_norm/hidden" in rows[0]

    def test_a_model_built_only_by_fit(self):
        x, y = data()
        model = keras.Sequential([keras.layers.Dense(OUTPUTS, name="dense")])
        model.compile(optimizer="sgd", loss="mse")
        history = model.fit(
            x,
            y,
            epochs=1,
            verbose=0,
            callbacks=[GradientNormMonitor(per_layer=True)],
        )
        assert (
            history.history["grad_norm/dense"] == history.history["grad_norm"]
        )


class TestNonFinite:
    """Batch 2 of 4 holds an inf input."""

    def inf_at_batch_2(self):
        x, y = data(samples=4 * SAMPLES)
        x[2 * SAMPLES] = np.inf
        return x, y

    def fit_counting_steps(self, monitor, x, y):
        steps = []
        counter = keras.callbacks.LambdaCallback(
            on_train_batch_end=lambda batch, logs: steps.append(batch)
        )
        model = two_dense_layers()
        model.compile(optimizer="sgd", loss="mse")
        model.fit(
            x,
            y,
            batch_size=SAMPLES,
            epochs=2,
            verbose=0,
            shuffle=False,
            callbacks=[monitor, counter],
        )
        return steps

    def test_stop_ends_training_after_that_step(self):
        steps = self.fit_counting_steps(
            GradientNormMonitor(on_nonfinite="stop"), *self.inf_at_batch_2()
        )
        assert steps == [0, 1, 2]

    def test_raise_names_the_step_and_the_layers(self):
        with pytest.raises(
            FloatingPointError, match=r"step 2 .*layer\(s\) hidden, output"
        ):
            self.fit_counting_steps(
                GradientNormMonitor(on_nonfinite="raise"),
                *self.inf_at_batch_2(),
            )

    def test_warn_warns_at_every_nonfinite_step(self):
        x, y = self.inf_at_batch_2()
        # A LossScaleOptimizer skips the non-finite steps, so the weights
        # stay finite and only the inf batch has a non-finite gradient.
        optimizer = keras.optimizers.LossScaleOptimizer(
            keras.optimizers.SGD(0.01)
        )
        with user_warnings() as caught:
            model = two_dense_layers()
            model.compile(optimizer=optimizer, loss="mse")
            model.fit(
                x,
                y,
                batch_size=SAMPLES,
                epochs=2,
                verbose=0,
                shuffle=False,
                callbacks=[GradientNormMonitor()],
            )
        messages = [str(warning.message) for warning in caught]
        assert len(messages) == 2, messages
        assert "step 2 (epoch 0, batch 2)" in messages[0]
        assert "step 6 (epoch 1, batch 2)" in messages[1]

    def test_ignore_is_silent(self):
        steps = self.fit_counting_steps(
            GradientNormMonitor(on_nonfinite="ignore"), *self.inf_at_batch_2()
        )
        assert len(steps) == 8


class TestWarnAbove:
    def fit_with(self, monitor):
        x, y = data(samples=3 * SAMPLES)
        model = two_dense_layers()
        model.compile(optimizer=keras.optimizers.SGD(0.0), loss="mse")
        model.fit(
            x, y, batch_size=SAMPLES, epochs=1, verbose=0, callbacks=[monitor]
        )

    def test_warns_once_per_patience_steps_above(self):
        with user_warnings() as caught:
            self.fit_with(GradientNormMonitor(warn_above=0.0, patience=2))
        messages = [str(warning.message) for warning in caught]
        assert len(messages) == 1, messages
        assert "above warn_above=0.0 for 2 logged" in messages[0]
        assert "up to step 1 " in messages[0]

    def test_silent_below(self):
        self.fit_with(GradientNormMonitor(warn_above=1e6))


class TestHook:
    def test_optimizer_is_given_back_and_the_model_trains_on(self):
        x, y = data()
        model = two_dense_layers()
        fit(model, x, y, GradientNormMonitor())
        assert "apply" not in vars(model.optimizer)
        assert "stateless_apply" not in vars(model.optimizer)
        history = model.fit(x, y, epochs=1, verbose=0)
        assert "grad_norm" not in history.history
        # A second monitor hooks in again.
        history = model.fit(
            x, y, epochs=1, verbose=0, callbacks=[GradientNormMonitor()]
        )
        assert history.history["grad_norm"][0] > 0

    def test_evaluate_and_predict_leave_the_optimizer_alone(self):
        x, y = data()
        model = two_dense_layers()
        model.compile(optimizer="sgd", loss="mse")
        monitor = GradientNormMonitor()
        model.evaluate(x, y, verbose=0, callbacks=[monitor])
        model.predict(x, verbose=0, callbacks=[monitor])
        assert "apply" not in vars(model.optimizer)
        assert "stateless_apply" not in vars(model.optimizer)

    def test_validation_in_fit_does_not_unhook_it(self):
        x, y = data()
        model = two_dense_layers()
        model.compile(optimizer="sgd", loss="mse")
        history = model.fit(
            x,
            y,
            validation_data=(x, y),
            epochs=2,
            verbose=0,
            callbacks=[GradientNormMonitor()],
        )
        assert len(history.history["grad_norm"]) == 2


class TestErrors:
    @pytest.mark.parametrize(
        "kwargs, argument",
        [
            ({"on_nonfinite": "explode"}, "on_nonfinite"),
            ({"norm_type": 3}, "norm_type"),
            ({"norm_type": 0}, "norm_type"),
            ({"norm_type": True}, "norm_type"),
            ({"norm_type": "l2"}, "norm_type"),
            ({"log_every_n_steps": 0}, "log_every_n_steps"),
            ({"log_every_n_steps": 1.5}, "log_every_n_steps"),
            ({"warn_above": -1.0}, "warn_above"),
            ({"warn_above": float("nan")}, "warn_above"),
            ({"patience": 0}, "patience"),
        ],
    )
    def test_bad_argument(self, kwargs, argument):
        with pytest.raises(ValueError, match=f"`{argument}` of Gradient"):
            GradientNormMonitor(**kwargs)
