"""`AttentionDecoder` in token mode: ids in and out, embeddings fed back."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from keras import ops

import keras_seqext
from keras_seqext import AttentionDecoder
from keras_seqext import AttentionDecoderCell
from keras_seqext.datasets import START_TOKEN
from keras_seqext.datasets import synthetic_translation
from tests.layers.test_attention_decoder import BATCH
from tests.layers.test_attention_decoder import INPUT_LENGTH
from tests.layers.test_attention_decoder import MASK
from tests.layers.test_attention_decoder import MEMORY_DIM
from tests.layers.test_attention_decoder import SCORE_KWARGS
from tests.layers.test_attention_decoder import UNITS
from tests.layers.test_attention_decoder import memory_for
from tests.layers.test_attention_decoder import numpy_decoder
from tests.layers.test_attention_decoder import random_memory
from tests.test_case import TestCase
from tests.test_case import other_backends

VOCABULARY, EMBEDDING_DIM = 11, 6


def make_token_decoder(**kwargs):
    kwargs.setdefault("bias_initializer", "random_normal")
    return AttentionDecoder(
        UNITS, VOCABULARY, embedding_dim=EMBEDDING_DIM, **kwargs
    )


def token_targets(length, seed=3):
    rng = np.random.default_rng(seed)
    return rng.integers(0, VOCABULARY, (BATCH, length)).astype("int32")


def parameter_count(V, E, d, u, score, q=None):
    """The count that `AttentionDecoderCell`'s docstring gives."""
    q = {"additive": u, "concat": u, "location": q}.get(score, 0)
    count = V * E + (E + d + 1) * (3 * u + V) + u * (q + 3 * u + V)
    count += d * u  # initial_kernel
    if score in ("additive", "concat", "general"):
        count += d * u  # key_kernel
    if score == "additive":
        count += u  # key_bias
    if score in ("additive", "concat"):
        count += u  # score_vector
    return count


def built_count(V, E, d, u, **kwargs):
    decoder = AttentionDecoder(u, V, embedding_dim=E, **kwargs)
    decoder.build((None, None, d))
    return sum(int(np.prod(w.shape)) for w in decoder.cell.weights)


class TestTokenModeParameters:
    @pytest.mark.parametrize("score", list(SCORE_KWARGS))
    def test_count_matches_the_formula(self, score):
        kwargs = dict(SCORE_KWARGS[score])
        d = UNITS if score == "dot" else MEMORY_DIM
        count = built_count(VOCABULARY, EMBEDDING_DIM, d, UNITS, **kwargs)
        expected = parameter_count(
            VOCABULARY,
            EMBEDDING_DIM,
            d,
            UNITS,
            score,
            kwargs.get("max_source_length"),
        )
        assert count == expected

    def test_a_vocabulary_of_8000_has_under_10_million(self):
        count = built_count(8000, 256, 256, 256)
        assert count == parameter_count(8000, 256, 256, 256, "additive")
        assert count < 10_000_000
        # The one-hot decoder of the same size, for scale: quadratic.
        one_hot = 8000 * (8000 + 256 + 1 + 3 * 256) + 256 * (256 + 3 * 256)
        assert count < one_hot / 8

    def test_count_grows_linearly_with_the_vocabulary(self):
        counts = [built_count(V, 8, 8, 8) for V in (1000, 8000, 32000)]
        slopes = [
            (counts[1] - counts[0]) / 7000,
            (counts[2] - counts[1]) / 24000,
        ]
        assert slopes[0] == slopes[1]
        # V E for the table, E + d + 1 and u for the V-wide blocks.
        assert slopes[0] == 8 + (8 + 8 + 1) + 8


class TestTokenModeMath(TestCase):
    @pytest.mark.parametrize("score", list(SCORE_KWARGS))
    @pytest.mark.parametrize("feedback", ["one_hot", "probabilities"])
    @pytest.mark.parametrize("masked", [False, True])
    def test_free_running_matches_numpy_reference(
        self, score, feedback, masked
    ):
        decoder = make_token_decoder(
            output_length=4,
            feedback=feedback,
            return_attention_weights=True,
            **SCORE_KWARGS[score],
        )
        memory = memory_for(score)
        mask = MASK if masked else None
        outputs, weights = decoder(memory, mask=mask)
        expected_outputs, expected_weights, _ = numpy_decoder(
            decoder.cell, memory, mask, 4
        )
        self.assertAllClose(outputs, expected_outputs, atol=1e-5)
        self.assertAllClose(weights, expected_weights, atol=1e-5)

    @pytest.mark.parametrize("masked", [False, True])
    @pytest.mark.parametrize("output_length", [3, 9])
    def test_teacher_forced_matches_numpy_reference(
        self, masked, output_length
    ):
        decoder = make_token_decoder(
            output_length=output_length,
            start_token=START_TOKEN,
            return_attention_weights=True,
        )
        memory = random_memory()
        mask = MASK if masked else None
        targets = token_targets(output_length)
        outputs, weights = decoder(
            memory, targets=targets, mask=mask, training=True
        )
        expected_outputs, expected_weights, _ = numpy_decoder(
            decoder.cell, memory, mask, output_length, targets=targets
        )
        self.assertAllClose(outputs, expected_outputs, atol=1e-5)
        self.assertAllClose(weights, expected_weights, atol=1e-5)

    def test_logits_and_start_token_match_numpy_reference(self):
        decoder = make_token_decoder(
            start_token=4, output_activation=None, feedback="probabilities"
        )
        memory = random_memory()
        outputs = decoder(memory)
        expected, *_ = numpy_decoder(decoder.cell, memory, None, INPUT_LENGTH)
        self.assertAllClose(outputs, expected, atol=1e-5)
        # Logits, not probabilities: rows do not sum to 1.
        assert not np.allclose(np.sum(ops.convert_to_numpy(outputs), -1), 1.0)

    def test_start_token_changes_the_first_step(self):
        memory = random_memory()
        plain = make_token_decoder()
        started = make_token_decoder(start_token=4)
        plain.build(memory.shape)
        started.build(memory.shape)
        started.set_weights(plain.get_weights())
        self.assertNotAllClose(started(memory)[:, 0], plain(memory)[:, 0])

    def test_one_hot_mode_takes_a_start_token_too(self):
        decoder = AttentionDecoder(UNITS, VOCABULARY, start_token=2)
        memory = random_memory()
        outputs = decoder(memory)
        expected, *_ = numpy_decoder(decoder.cell, memory, None, INPUT_LENGTH)
        self.assertAllClose(outputs, expected, atol=1e-5)

    def test_stepping_the_cell_with_tokens_matches_the_layer(self):
        decoder = make_token_decoder(output_length=3, start_token=1)
        memory = random_memory()
        expected = decoder(memory)
        cell = decoder.cell
        attention_memory = cell.attention_memory(memory)
        states = cell.initial_state(memory)
        inputs = np.zeros((BATCH, 0), "float32")
        for t in range(3):
            step_output, states = cell(
                inputs, states, attention_memory=attention_memory
            )
            self.assertAllClose(
                step_output[:, :VOCABULARY], expected[:, t], atol=1e-6
            )


class TestTokenModeKerasConventions(TestCase):
    def test_layer(self, tmp_path):
        """Config and serialization round trips, output shapes, `.keras`
        saving and mixed precision, with teacher forcing in training."""
        memory = random_memory()
        targets = token_targets(INPUT_LENGTH)

        def factory(**kwargs):
            return make_token_decoder(start_token=1, **kwargs)

        layer = factory()
        self.run_output_shape_test(layer, memory)
        self.run_config_test(layer)
        self.run_serialization_test(layer)
        source = keras.Input((INPUT_LENGTH, MEMORY_DIM))
        target_ids = keras.Input((INPUT_LENGTH,), dtype="int32")
        model = keras.Model(
            [source, target_ids], factory()(source, targets=target_ids)
        )
        self.run_model_saving_test(model, [memory, targets], str(tmp_path))
        self.run_training_test(
            model,
            [memory, targets],
            targets,
            loss="sparse_categorical_crossentropy",
        )
        self.run_precision_test(factory, memory)

    def test_one_hot_config_keeps_its_values(self):
        """Without `embedding_dim` the config holds today's arguments with
        today's values; the new ones are None or their defaults."""
        config = AttentionDecoder(UNITS, VOCABULARY).get_config()
        assert config["feedback"] == "probabilities"
        assert config["embedding_dim"] is None
        assert config["start_token"] is None
        assert make_token_decoder().get_config()["feedback"] == "one_hot"

    def test_padded_targets_with_ignore_class(self):
        """`ignore_class` leaves the padded target steps out of the loss:
        what the model predicts there changes nothing."""
        memory = random_memory()
        targets = token_targets(INPUT_LENGTH)
        targets[:, 4:] = 0
        decoder = make_token_decoder(output_activation=None)
        logits = ops.convert_to_numpy(decoder(memory))
        loss = keras.losses.SparseCategoricalCrossentropy(
            from_logits=True, ignore_class=0
        )
        changed = logits.copy()
        changed[:, 4:] = np.random.default_rng(0).normal(
            size=changed[:, 4:].shape
        )
        self.assertAllClose(
            loss(targets, logits), loss(targets, changed), atol=1e-6
        )

    def test_adam_steps_the_embeddings_by_their_summed_gradient(self):
        """Adam moves each embedding by its whole gradient, however often
        a batch feeds its token (see `DenseGradientEmbedding` for why this
        can fail on TensorFlow)."""
        targets = token_targets(INPUT_LENGTH)
        assert len(np.unique(targets)) < targets.size  # tokens repeat

        def model_factory():
            source = keras.Input((INPUT_LENGTH, MEMORY_DIM))
            target_ids = keras.Input((INPUT_LENGTH,), dtype="int32")
            decoder = make_token_decoder(start_token=1, output_activation=None)
            outputs = decoder(source, targets=target_ids)
            return keras.Model([source, target_ids], outputs)

        self.run_summed_gradient_test(
            model_factory,
            lambda model: model.layers[-1].cell.embeddings,
            [random_memory(), targets],
            targets,
            keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            keras.optimizers.Adam(),
        )


class TestTokenModeErrors:
    @pytest.mark.parametrize(
        "kwargs, argument",
        [
            ({"embedding_dim": 0}, "embedding_dim"),
            ({"embedding_dim": -3}, "embedding_dim"),
            ({"embedding_dim": 2.5}, "embedding_dim"),
            ({"start_token": VOCABULARY}, "start_token"),
            ({"start_token": -1}, "start_token"),
            ({"start_token": 1.0}, "start_token"),
            ({"embeddings_initializer": "nope"}, "embeddings_initializer"),
        ],
    )
    def test_bad_argument(self, kwargs, argument):
        with pytest.raises(ValueError, match=f"`{argument}` of Attention"):
            AttentionDecoder(UNITS, VOCABULARY, **kwargs)

    def test_float_targets_eagerly(self):
        decoder = make_token_decoder()
        targets = token_targets(INPUT_LENGTH).astype("float32")
        with pytest.raises(ValueError, match="`targets`.*integer token ids"):
            decoder(random_memory(), targets=targets, training=True)

    def test_float_targets_in_a_functional_model(self):
        source = keras.Input((INPUT_LENGTH, MEMORY_DIM))
        targets = keras.Input((INPUT_LENGTH,), dtype="float32")
        with pytest.raises(ValueError, match="`targets`.*integer token ids"):
            make_token_decoder()(source, targets=targets)

    @pytest.mark.parametrize(
        "shape", [(BATCH,), (BATCH, INPUT_LENGTH, VOCABULARY)]
    )
    def test_targets_of_the_wrong_rank(self, shape):
        targets = np.zeros(shape, "int32")
        with pytest.raises(ValueError, match="`targets`.*token ids"):
            make_token_decoder()(
                random_memory(), targets=targets, training=True
            )

    def test_cell_names_itself(self):
        with pytest.raises(ValueError, match="of AttentionDecoderCell"):
            AttentionDecoderCell(UNITS, VOCABULARY, embedding_dim=0)


LOAD_SCRIPT = """
import numpy as np, keras, keras_seqext
saved = np.load({arrays!r})
model = keras.saving.load_model({path!r})
outputs = model.predict([saved["source"], None], verbose=0)
np.testing.assert_allclose(outputs, saved["outputs"], atol=1e-5)
"""


def token_model(vocabulary=50, length=5):
    source = keras.Input((None,), dtype="int32", name="source")
    targets = keras.Input((length,), dtype="int32", optional=True)
    embedded = keras.layers.Embedding(vocabulary, 8, mask_zero=True)(source)
    encoded = keras.layers.LSTM(12, return_sequences=True)(embedded)
    decoder = AttentionDecoder(
        12,
        vocabulary,
        embedding_dim=8,
        output_length=length,
        start_token=START_TOKEN,
        output_activation=None,
        seed=0,
    )
    return keras.Model([source, targets], decoder(encoded, targets=targets))


@pytest.mark.parametrize("load_backend", other_backends())
def test_saved_here_loads_on_another_backend(load_backend, tmp_path):
    model = token_model()
    source, _ = synthetic_translation(4, 50, 3, 5, seed=0)
    names = {
        "path": str(tmp_path / "tokens.keras"),
        "arrays": str(tmp_path / "tokens.npz"),
    }
    model.save(names["path"])
    np.savez(
        names["arrays"],
        source=source,
        outputs=model.predict([source, None], verbose=0),
    )
    result = subprocess.run(
        [sys.executable, "-c", LOAD_SCRIPT.format(**names)],
        env={**os.environ, "KERAS_BACKEND": load_backend},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]


def test_learns_a_small_vocabulary_translation():
    """A vocabulary of 200 (sentences of 3 to 6 words): trained with
    teacher forcing, the model decodes >= 99% of held-out sentences exactly
    by free running (up to and including the end token)."""
    vocabulary, max_length, epochs, batch_size = 200, 6, 6, 64
    train = synthetic_translation(12000, vocabulary, 3, max_length, 0.5, 1)
    test_source, test_target = synthetic_translation(
        500, vocabulary, 3, max_length, 0.5, 2
    )
    source = keras.Input((None,), dtype="int32")
    targets = keras.Input((max_length + 1,), dtype="int32", optional=True)
    embedded = keras.layers.Embedding(vocabulary, 32, mask_zero=True)(source)
    encoded = keras.layers.Bidirectional(
        keras.layers.LSTM(32, return_sequences=True)
    )(embedded)
    logits = AttentionDecoder(
        64,
        vocabulary,
        embedding_dim=32,
        output_length=max_length + 1,
        start_token=START_TOKEN,
        output_activation=None,
        seed=0,
    )(encoded, targets=targets)
    model = keras.Model([source, targets], logits)
    steps = epochs * -(-len(train[0]) // batch_size)
    model.compile(
        keras.optimizers.Adam(
            keras.optimizers.schedules.CosineDecay(6e-3, steps)
        ),
        keras.losses.SparseCategoricalCrossentropy(
            from_logits=True, ignore_class=0
        ),
    )
    model.fit(
        [train[0], train[1]],
        train[1],
        batch_size=batch_size,
        epochs=epochs,
        verbose=0,
    )
    predicted = model.predict([test_source, None], verbose=0).argmax(-1)
    counted = test_target != 0
    exact = np.all((predicted == test_target) | ~counted, axis=1).mean()
    assert exact >= 0.99
    # Greedy decoding by hand agrees with `predict` (one-hot feedback).
    sequences, *_ = keras_seqext.decoding.greedy_decode(
        model, [test_source[:50], None]
    )
    np.testing.assert_array_equal(sequences, predicted[:50])
