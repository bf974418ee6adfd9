import keras
import numpy as np
import pytest
from keras import ops

from keras_seqext.layers import LSTMAutoencoder
from keras_seqext.layers import LSTMEncoder
from tests.test_case import TestCase

BATCH, LENGTH, FEATURES = 3, 6, 2
# The course's sequence, (1, 9, 1).
SEQUENCE = np.linspace(0.1, 0.9, 9, dtype="float32").reshape(1, 9, 1)


def random_sequences(length=LENGTH, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(BATCH, length, FEATURES)).astype("float32")


MODE_KWARGS = {
    "reconstruct": {},
    "predict": {"mode": "predict", "prediction_length": 4},
    "composite": {"mode": "composite", "prediction_length": 4},
}


class TestLSTMAutoencoderShapes(TestCase):
    @pytest.mark.parametrize("mode", list(MODE_KWARGS))
    @pytest.mark.parametrize("units", [5, [6, 3]])
    @pytest.mark.parametrize("return_encoding", [False, True])
    def test_shapes_and_dtypes(self, mode, units, return_encoding):
        layer = LSTMAutoencoder(
            units,
            output_dim=3,
            return_encoding=return_encoding,
            **MODE_KWARGS[mode],
        )
        outputs = self.run_output_shape_test(layer, random_sequences())
        outputs = outputs if isinstance(outputs, list) else [outputs]
        expected = {
            "reconstruct": [(BATCH, LENGTH, 3)],
            "predict": [(BATCH, 4, 3)],
            "composite": [(BATCH, LENGTH, 3), (BATCH, 4, 3)],
        }[mode]
        if return_encoding:
            code_size = units if isinstance(units, int) else units[-1]
            expected.append((BATCH, code_size))
        assert [tuple(o.shape) for o in outputs] == expected
        assert all(
            keras.backend.standardize_dtype(o.dtype) == "float32"
            for o in outputs
        )

    def test_output_dim_defaults_to_the_input_features(self):
        layer = LSTMAutoencoder(4)
        assert tuple(layer(random_sequences()).shape) == (
            BATCH,
            LENGTH,
            FEATURES,
        )

    def test_stacked_decoder_mirrors_the_encoder(self):
        layer = LSTMAutoencoder([8, 4, 2])
        layer(random_sequences())
        encoder = [lstm.units for lstm in layer.encoder.lstms]
        decoder = [lstm.units for lstm in layer.reconstruction_decoder.lstms]
        assert encoder == [8, 4, 2] and decoder == [2, 4, 8]

    def test_one_built_layer_serves_several_lengths(self):
        layer = LSTMAutoencoder(4, return_encoding=True)
        inputs = keras.Input((None, FEATURES))
        model = keras.Model(inputs, layer(inputs))
        for length in (5, 9, 17):
            reconstruction, code = model.predict(
                random_sequences(length), verbose=0
            )
            assert reconstruction.shape == (BATCH, length, FEATURES)
            assert code.shape == (BATCH, 4)


class TestLSTMAutoencoderMasking(TestCase):
    @pytest.mark.parametrize("reverse_reconstruction", [False, True])
    def test_padding_changes_neither_code_nor_reconstruction(
        self, reverse_reconstruction
    ):
        layer = LSTMAutoencoder(
            [5, 3],
            return_encoding=True,
            reverse_reconstruction=reverse_reconstruction,
        )
        short = random_sequences(length=4)
        padded = np.concatenate([short, random_sequences(2, seed=3)], axis=1)
        mask = np.arange(LENGTH) < 4
        mask = np.broadcast_to(mask, (BATCH, LENGTH))
        reconstruction, code = layer(padded, mask=mask)
        short_reconstruction, short_code = layer(short)
        self.assertAllClose(code, short_code, atol=1e-6)
        self.assertAllClose(
            ops.convert_to_numpy(reconstruction)[:, :4],
            short_reconstruction,
            atol=1e-6,
        )
        # The check can fail: unmasked, the padding does change the code.
        _, unmasked_code = layer(padded)
        self.assertNotAllClose(unmasked_code, short_code)

    def test_mask_reaches_the_loss(self):
        """Behind `Masking`, padded steps count in neither the loss nor the
        gradient: any value as their target gives the same loss."""
        inputs = keras.Input((None, FEATURES))
        masked = keras.layers.Masking(0.0)(inputs)
        model = keras.Model(inputs, LSTMAutoencoder(4)(masked))
        model.compile(optimizer="adam", loss="mse")
        x = random_sequences()
        x[:, 4:] = 0.0
        targets = x.copy()
        other_targets = x.copy()
        other_targets[:, 4:] = 100.0
        self.assertAllClose(
            model.evaluate(x, targets, verbose=0),
            model.evaluate(x, other_targets, verbose=0),
            atol=1e-6,
        )

    def test_predict_output_carries_no_mask(self):
        layer = LSTMAutoencoder(4, **MODE_KWARGS["composite"])
        mask = np.ones((BATCH, LENGTH), bool)
        masks = layer.compute_mask(random_sequences(), mask)
        assert masks[0] is mask and masks[1] is None


class TestLSTMAutoencoderEncoder(TestCase):
    def test_standalone_encoder_shares_the_weights(self):
        autoencoder = LSTMAutoencoder([6, 3], return_encoding=True)
        inputs = keras.Input((None, FEATURES))
        model = keras.Model(inputs, autoencoder(inputs)[0])
        encoder_model = keras.Model(inputs, autoencoder.encoder(inputs))
        x = random_sequences()
        self.assertAllClose(
            encoder_model.predict(x, verbose=0), autoencoder(x)[1]
        )
        before = encoder_model.predict(x, verbose=0)
        model.compile(optimizer="adam", loss="mse")
        model.fit(x, x, epochs=2, verbose=0)
        after = encoder_model.predict(x, verbose=0)
        # Training the autoencoder moved the encoder's code.
        self.assertNotAllClose(after, before)
        self.assertAllClose(after, autoencoder(x)[1], atol=1e-6)

    def test_encoder_saves_and_loads_on_its_own(self, tmp_path):
        autoencoder = LSTMAutoencoder([6, 3])
        inputs = keras.Input((None, FEATURES))
        autoencoder(inputs)
        encoder_model = keras.Model(inputs, autoencoder.encoder(inputs))
        loaded = self.run_model_saving_test(
            encoder_model, random_sequences(), str(tmp_path)
        )
        assert isinstance(loaded.layers[-1], LSTMEncoder)

    def test_encoder_layer(self, tmp_path):
        self.run_layer_test(
            lambda **kwargs: LSTMEncoder([4, 3], **kwargs),
            random_sequences(),
            str(tmp_path),
            targets=np.zeros((BATCH, 3)),
            loss="mse",
        )


class TestLSTMAutoencoderKerasConventions(TestCase):
    @pytest.mark.parametrize(
        "kwargs",
        [
            {},
            {"reverse_reconstruction": True, "units": [5, 3]},
            MODE_KWARGS["predict"],
            {**MODE_KWARGS["composite"], "return_encoding": True},
            {
                # Not the tutorials' relu: with 4 units a relu LSTM can stay
                # at zero for a whole sequence, and then nothing trains.
                "activation": "sigmoid",
                "dropout": 0.1,
                "recurrent_dropout": 0.1,
                "kernel_regularizer": "l2",
                "recurrent_constraint": "max_norm",
            },
        ],
    )
    def test_layer(self, kwargs, tmp_path):
        kwargs = {"units": 4, **kwargs}
        layer = LSTMAutoencoder(**kwargs)
        x = random_sequences()
        shapes = layer.compute_output_shape(x.shape)
        targets = None
        if not isinstance(shapes, list):
            targets = np.zeros(shapes)
        self.run_layer_test(
            lambda **extra: LSTMAutoencoder(**kwargs, **extra),
            x,
            str(tmp_path),
            targets=targets,
            loss="mse",
        )

    def test_composite_trains_both_decoders_in_a_model(self, tmp_path):
        inputs = keras.Input((9, 1))
        reconstruction, prediction = LSTMAutoencoder(
            8, mode="composite", prediction_length=8
        )(inputs)
        model = keras.Model(inputs, [reconstruction, prediction])
        self.run_training_test(
            model,
            SEQUENCE,
            [SEQUENCE, SEQUENCE[:, 1:]],
            steps=1,
            loss=["mse", "mse"],
        )
        self.run_model_saving_test(model, SEQUENCE, str(tmp_path))


def train_on_the_course_sequence(mode_kwargs, targets):
    """The course's set-up: one sequence, Adam, MSE, 300 epochs."""
    inputs = keras.Input((9, 1))
    outputs = LSTMAutoencoder(100, activation="relu", **mode_kwargs)(inputs)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="mse")
    model.fit(SEQUENCE, targets, epochs=300, verbose=0)
    return np.mean((model.predict(SEQUENCE, verbose=0) - targets) ** 2)


def test_reconstructs_the_course_sequence():
    assert train_on_the_course_sequence({}, SEQUENCE) <= 0.01


def test_predicts_the_rest_of_the_course_sequence():
    mode = {"mode": "predict", "prediction_length": 8}
    assert train_on_the_course_sequence(mode, SEQUENCE[:, 1:]) <= 0.01


class TestLSTMAutoencoderErrors:
    @pytest.mark.parametrize(
        "kwargs, argument",
        [
            ({"mode": "denoise"}, "mode"),
            ({"mode": "predict"}, "prediction_length"),
            (
                {"mode": "composite", "prediction_length": 0},
                "prediction_length",
            ),
            ({"prediction_length": 3}, "prediction_length"),
            ({"units": []}, "units"),
            ({"units": 0}, "units"),
            ({"units": [4, -1]}, "units"),
            ({"units": "8"}, "units"),
            ({"output_dim": 0}, "output_dim"),
            ({"dropout": 1.0}, "dropout"),
            ({"recurrent_dropout": -0.1}, "recurrent_dropout"),
            ({"reverse_reconstruction": "no"}, "reverse_reconstruction"),
            ({"return_encoding": 1}, "return_encoding"),
            ({"activation": "nope"}, "activation"),
            ({"kernel_initializer": "nope"}, "kernel_initializer"),
            ({"bias_regularizer": "nope"}, "bias_regularizer"),
        ],
    )
    def test_bad_argument(self, kwargs, argument):
        # The encoder's arguments too: the error names the autoencoder.
        with pytest.raises(ValueError, match=f"`{argument}` of LSTMAutoenc"):
            LSTMAutoencoder(**{"units": 4, **kwargs})

    @pytest.mark.parametrize(
        "kwargs, argument",
        [
            ({"units": 0}, "units"),
            ({"dropout": 1.5}, "dropout"),
            ({"activation": "nope"}, "activation"),
            ({"recurrent_initializer": "nope"}, "recurrent_initializer"),
        ],
    )
    def test_encoder_bad_argument(self, kwargs, argument):
        with pytest.raises(ValueError, match=f"`{argument}` of LSTMEncoder"):
            LSTMEncoder(**{"units": 4, **kwargs})

    @pytest.mark.parametrize("layer_class", [LSTMAutoencoder, LSTMEncoder])
    def test_feature_size_other_than_built(self, layer_class):
        layer = layer_class(4)
        layer(np.zeros((BATCH, LENGTH, 3), "float32"))
        expected = f"`inputs` of {layer_class.__name__}.*built with"
        with pytest.raises(ValueError, match=expected):
            layer(np.zeros((BATCH, LENGTH, 5), "float32"))
        with pytest.raises(ValueError, match=expected):
            layer(keras.KerasTensor((None, None, 5)))

    @pytest.mark.parametrize("shape", [(BATCH, LENGTH), (BATCH, 2, 3, 4)])
    def test_input_rank_other_than_three(self, shape):
        with pytest.raises(ValueError, match="`inputs`.*rank-3"):
            LSTMAutoencoder(4)(keras.KerasTensor(shape))
        with pytest.raises(ValueError, match="`inputs`.*rank-3"):
            LSTMEncoder(4)(keras.KerasTensor(shape))
