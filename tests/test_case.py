"""The base of every layer test: checks a Keras user relies on, on the public
API only."""

import importlib.util
import json
import os

import keras
import numpy as np
import pytest
from keras import ops

MIXED_PRECISION_POLICY = "mixed_float16"
BACKENDS = ("tensorflow", "jax", "torch")


def other_backends():
    """The backends other than this run's, as parameters: each skipped
    where its package is not installed (the sdist's tests run on an
    install of one backend)."""
    return [
        pytest.param(
            backend,
            marks=pytest.mark.skipif(
                importlib.util.find_spec(backend) is None,
                reason=f"{backend} is not installed",
            ),
        )
        for backend in BACKENDS
        if backend != keras.backend.backend()
    ]


class TestCase:
    """Helpers shared by the layer tests (pytest collects the subclasses)."""

    def assertAllClose(self, actual, expected, atol=1e-6, rtol=1e-6):
        np.testing.assert_allclose(
            _to_numpy(actual), _to_numpy(expected), atol=atol, rtol=rtol
        )

    def assertNotAllClose(self, actual, expected, atol=1e-6):
        difference = np.max(np.abs(_to_numpy(actual) - _to_numpy(expected)))
        assert difference > atol, f"expected a change, max diff {difference}"

    def run_config_test(self, layer):
        """`from_config(get_config())` makes a layer with the same config."""
        config = layer.get_config()
        revived = type(layer).from_config(config)
        assert revived.get_config() == config
        return revived

    def run_serialization_test(self, layer):
        """A JSON round trip of `serialize_keras_object`, without
        `custom_objects`, revives the same class with the same config and
        attributes."""
        serialized = keras.saving.serialize_keras_object(layer)
        revived = keras.saving.deserialize_keras_object(
            json.loads(json.dumps(serialized))
        )
        assert type(revived) is type(layer)
        assert revived.get_config() == layer.get_config()
        assert set(dir(revived)) >= set(dir(layer)) - {"_build_shapes_dict"}
        return revived

    def run_model_saving_test(self, model, inputs, directory, atol=1e-6):
        """`.keras` save and `load_model` (default `safe_mode`) give a model
        of the same layer classes that predicts the same."""
        path = os.path.join(directory, "model.keras")
        expected = model.predict(inputs, verbose=0)
        model.save(path)
        loaded = keras.saving.load_model(path)
        assert [type(layer) for layer in loaded.layers] == [
            type(layer) for layer in model.layers
        ]
        for actual, wanted in zip(
            keras.tree.flatten(loaded.predict(inputs, verbose=0)),
            keras.tree.flatten(expected),
        ):
            self.assertAllClose(actual, wanted, atol=atol)
        return loaded

    def run_output_shape_test(self, layer, inputs, **call_kwargs):
        """`compute_output_shape`, the symbolic call and the eager call agree
        on every output's shape. `inputs` is an array or a list of them."""
        outputs = layer(inputs, **call_kwargs)
        actual = [tuple(t.shape) for t in keras.tree.flatten(outputs)]
        expected = _flatten_shapes(layer.compute_output_shape(_shapes(inputs)))
        assert actual == expected
        symbolic = layer(_symbolic(inputs), **call_kwargs)
        assert [tuple(t.shape) for t in keras.tree.flatten(symbolic)] == (
            expected
        )
        return outputs

    def run_precision_test(self, layer_factory, inputs):
        """Under `mixed_float16` the outputs are float16 as the symbolic call
        says, finite, and the weights stay float32."""
        layer = layer_factory(dtype=MIXED_PRECISION_POLICY)
        outputs = layer(inputs)
        symbolic = layer(_symbolic(inputs))
        for tensor, spec in zip(
            keras.tree.flatten(outputs), keras.tree.flatten(symbolic)
        ):
            assert keras.backend.standardize_dtype(tensor.dtype) == "float16"
            assert spec.dtype == "float16"
            assert np.all(np.isfinite(_to_numpy(tensor)))
        for weight in layer.weights:
            assert weight.dtype == "float32"
        return outputs

    def run_training_test(
        self, model, inputs, targets, steps=3, unused_weights=(), **compile
    ):
        """A few `fit` steps: the loss is finite and every weight moves,
        except those whose name is in `unused_weights`, which must not."""
        compile.setdefault("loss", "categorical_crossentropy")
        model.compile(optimizer="adam", **compile)
        before = [_to_numpy(w) for w in model.trainable_weights]
        batch_size = len(keras.tree.flatten(inputs)[0]) // steps
        history = model.fit(inputs, targets, batch_size=batch_size, verbose=0)
        assert np.isfinite(history.history["loss"][-1])
        for weight, old in zip(model.trainable_weights, before):
            moved = not np.allclose(_to_numpy(weight), old)
            assert moved == (weight.name not in unused_weights), weight.path
        return history

    def run_layer_test(
        self,
        layer_factory,
        inputs,
        directory,
        targets=None,
        loss="categorical_crossentropy",
    ):
        """Runs every check above on layers made by `layer_factory(**kw)`.

        `inputs` is an array or a list of arrays. The model of the saving and
        training checks is `keras.Model(Input(s), layer(Input(s)))`, trained
        on `targets` (shaped as the layer's output) with `loss`, under
        `jit_compile="auto"`.
        """
        layer = layer_factory()
        self.run_output_shape_test(layer, inputs)
        self.run_config_test(layer)
        self.run_serialization_test(layer)
        model_inputs = keras.tree.map_structure(
            lambda x: keras.Input(x.shape[1:]), inputs
        )
        model = keras.Model(model_inputs, layer_factory()(model_inputs))
        self.run_model_saving_test(model, inputs, directory)
        if targets is not None:
            self.run_training_test(model, inputs, targets, loss=loss)
        self.run_precision_test(layer_factory, inputs)

    def run_summed_gradient_test(
        self, model_factory, table, inputs, targets, loss, optimizer
    ):
        """One `fit` step with `optimizer`, on a batch that looks up some
        rows of the weight `table(model)` more than once, moves that
        weight as the optimizer moves it for the weight's whole gradient,
        each row's summed (measured by a step of SGD, at a rate large
        enough that small gradients survive the subtraction)."""

        def one_step(optimizer):
            keras.utils.set_random_seed(0)
            model = model_factory()
            model.compile(optimizer, loss)
            before = _to_numpy(table(model))
            model.fit(
                inputs,
                targets,
                batch_size=len(keras.tree.flatten(inputs)[0]),
                verbose=0,
                shuffle=False,
            )
            return before, _to_numpy(table(model))

        sgd_rate = 1e3
        before, after_sgd = one_step(keras.optimizers.SGD(sgd_rate))
        _, after = one_step(optimizer)
        expected = keras.Variable(before)
        fresh = optimizer.__class__.from_config(optimizer.get_config())
        gradient = (before - after_sgd) / sgd_rate
        fresh.apply([ops.convert_to_tensor(gradient)], [expected])
        self.assertAllClose(after, expected, atol=1e-6)


def gradients(function, arrays):
    """The gradients of the scalar `function(*tensors)` with respect to each
    tensor, as NumPy arrays, on the current backend."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        argnums = tuple(range(len(arrays)))
        return [np.asarray(g) for g in jax.grad(function, argnums)(*arrays)]
    if backend == "tensorflow":
        import tensorflow as tf

        tensors = [tf.constant(a) for a in arrays]
        with tf.GradientTape() as tape:
            tape.watch(tensors)
            value = function(*tensors)
        # A gather's gradient (an embedding's) comes as IndexedSlices.
        grads = tape.gradient(value, tensors)
        return [tf.convert_to_tensor(g).numpy() for g in grads]
    import torch

    tensors = [torch.tensor(a, requires_grad=True) for a in arrays]
    value = function(*tensors)
    return [g.numpy() for g in torch.autograd.grad(value, tensors)]


def _to_numpy(value):
    if isinstance(value, (list, tuple)):
        return np.asarray([_to_numpy(v) for v in value])
    if isinstance(value, keras.Variable):
        value = value.value
    return np.asarray(ops.convert_to_numpy(value))


def _shapes(inputs):
    return keras.tree.map_structure(lambda x: tuple(x.shape), inputs)


def _symbolic(inputs):
    return keras.tree.map_structure(
        lambda x: keras.KerasTensor(x.shape), inputs
    )


def _flatten_shapes(shapes):
    if all(isinstance(d, (int, type(None))) for d in shapes):
        return [tuple(shapes)]
    return [s for shape in shapes for s in _flatten_shapes(shape)]
