"""Property tests: whatever arguments, shapes, masks and batch sizes a user
passes, each public layer, callback and function either raises a
`ValueError` or `TypeError` that names the argument at fault, or returns
finite outputs of the documented shape. Never a backend error, never a NaN.

Each case is a valid call (arguments drawn at random, NumPy scalars among
them) with at most one thing made wrong: an argument given a wrong value,
or an input a wrong shape or mask. A valid call must run; a spoiled one
must raise, naming what was spoiled. Hypothesis draws the cases from a
fixed seed (`derandomize`), a bounded number per test, so that the suite is
the same on every run.
"""

import keras
import numpy as np
import pytest
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

import keras_seqext
from keras_seqext import AttentionDecoder
from keras_seqext import GradientNormMonitor
from keras_seqext import LSTMAutoencoder
from keras_seqext import LuongAttention
from keras_seqext import ScheduledSampling
from keras_seqext.decoding import beam_search
from keras_seqext.decoding import greedy_decode
from keras_seqext.decoding import sample_decode
from keras_seqext.metrics import SequenceAccuracy

SETTINGS = settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
NAN, INF = float("nan"), float("inf")
# Wrong values for the kinds of argument.
WRONG_SIZES = [0, -1, 2.5, NAN, True, "3", 2**40]
WRONG_PROBABILITIES = [-0.5, 1.5, NAN, INF, "0.5", None]
WRONG_FLAGS = ["False", 1, None]


def scalars(values):
    """Python numbers, and sometimes their NumPy twins."""
    return st.one_of(values, values.map(np.asarray).map(lambda a: a[()]))


def positive(high=5):
    return scalars(st.integers(1, high))


@st.composite
def spoiled(draw, arguments, wrong_values):
    """`arguments` with, in about half the cases, one of `wrong_values`'
    names given a wrong value: `(arguments, name or None)`."""
    name = draw(st.sampled_from([*[None] * len(wrong_values), *wrong_values]))
    if name is not None:
        arguments = {
            **arguments,
            name: draw(st.sampled_from(wrong_values[name])),
        }
    return arguments, name


def run(call, spoiled_name):
    """Runs `call`: a spoiled call must raise naming what was spoiled, a
    valid one must return. Returns the result, or None."""
    if spoiled_name is None:
        return call()
    with pytest.raises((ValueError, TypeError), match=f"`{spoiled_name}"):
        call()
    return None


def assert_finite(*tensors):
    for tensor in keras.tree.flatten(tensors):
        assert np.all(np.isfinite(keras.ops.convert_to_numpy(tensor)))


@st.composite
def inputs(draw, features=None, min_length=1):
    """A `(batch, length, features)` tensor and a fitting mask or None."""
    batch = draw(st.integers(0, 3))
    length = draw(st.integers(min_length, 4))
    features = features or draw(st.integers(1, 4))
    rng = np.random.default_rng(draw(st.integers(0, 99)))
    tensor = rng.normal(size=(batch, length, features)).astype("float32")
    mask = draw(st.sampled_from([None, rng.random((batch, length)) > 0.3]))
    return tensor, mask


@st.composite
def spoiled_mask(draw, shape):
    """A mask that does not fit `shape`'s `(batch, length)`: of another
    batch size, length or rank, broadcastable or not."""
    batch, length = shape[:2]
    candidates = [(batch, 1), (1, length), (batch + 1, length)]
    candidates += [(batch, length + 1), (batch,), (batch, length, 1)]
    fitting = (batch, length)
    wrong = draw(st.sampled_from([c for c in candidates if c != fitting]))
    return np.ones(wrong, bool)


SCORES = ["additive", "dot", "general", "concat", "location"]


@st.composite
def decoder_cases(draw):
    score = draw(st.sampled_from(SCORES))
    memory, mask = draw(inputs())
    output_dim = draw(st.integers(2, 6))
    length = memory.shape[1]
    arguments = {
        "units": memory.shape[-1] if score == "dot" else draw(positive()),
        "output_dim": output_dim,
        "score": score,
        "embedding_dim": draw(st.one_of(st.none(), positive(4))),
        "output_length": draw(st.one_of(st.none(), positive(4))),
        "start_token": draw(
            st.one_of(st.none(), scalars(st.integers(0, output_dim - 1)))
        ),
        "feedback": draw(st.sampled_from([None, "one_hot", "probabilities"])),
        "return_state": draw(scalars(st.booleans())),
        "teacher_forcing_probability": draw(scalars(st.floats(0, 1))),
        "max_source_length": (
            draw(st.sampled_from([None, length, length + 2]))
            if score == "location"
            else None
        ),
    }
    wrong = {
        "units": WRONG_SIZES,
        "output_dim": WRONG_SIZES,
        "embedding_dim": WRONG_SIZES,
        "output_length": WRONG_SIZES,
        "start_token": [-1, output_dim, 1.0, "0"],
        "score": ["cosine", None],
        "feedback": ["greedy", 1],
        "return_state": WRONG_FLAGS,
        "teacher_forcing_probability": WRONG_PROBABILITIES,
        "mask": ["spoiled"],
        "encoder_sequence": ["empty"],
    }
    if score != "location":
        wrong["max_source_length"] = [3]
    arguments, name = draw(spoiled(arguments, wrong))
    if name == "mask":
        mask = draw(spoiled_mask(memory.shape))
    if name == "encoder_sequence":
        memory = memory[:, :0]
    arguments.pop("mask", None)
    arguments.pop("encoder_sequence", None)
    return arguments, memory, mask, name


@SETTINGS
@given(case=decoder_cases())
def test_attention_decoder(case):
    arguments, memory, mask, name = case
    if name in ("mask", "encoder_sequence"):
        decoder = AttentionDecoder(**arguments)
        run(lambda: decoder(memory, mask=mask), name)
        return
    decoder = run(lambda: AttentionDecoder(**arguments), name)
    if decoder is None:
        return
    outputs = decoder(memory, mask=mask)
    assert_finite(outputs)
    expected = decoder.compute_output_shape(memory.shape)
    expected = expected if decoder.return_state else [expected]
    shapes = [tuple(t.shape) for t in keras.tree.flatten(outputs)]
    assert shapes == [tuple(shape) for shape in expected]


@st.composite
def luong_cases(draw):
    score = draw(st.sampled_from(["dot", "general", "concat", "location"]))
    query, query_mask = draw(inputs())
    features = query.shape[-1] if score == "dot" else None
    value, value_mask = draw(inputs(features=features))
    value = np.resize(value, (query.shape[0], *value.shape[1:]))
    value_mask = None if value_mask is None else np.ones(value.shape[:2], bool)
    arguments = {
        "score": score,
        "units": draw(positive()) if score == "concat" else None,
        "attentional_units": draw(st.one_of(st.none(), positive())),
        "max_source_length": (
            draw(st.sampled_from([None, value.shape[1]]))
            if score == "location"
            else None
        ),
    }
    wrong = {
        "score": ["additive", 2],
        "attentional_units": WRONG_SIZES,
        "mask[1]": ["spoiled"],
        "value": ["batch"],
    }
    if score == "concat":
        wrong["units"] = WRONG_SIZES
    else:
        wrong["units"] = [3]
    arguments, name = draw(spoiled(arguments, wrong))
    if name == "mask[1]":
        value_mask = draw(spoiled_mask(value.shape))
    if name == "value":
        value = np.concatenate([value, value[:1] + 1.0])
    for key in ("mask[1]", "value"):
        arguments.pop(key, None)
    return arguments, query, query_mask, value, value_mask, name


@SETTINGS
@given(case=luong_cases())
def test_luong_attention(case):
    arguments, query, query_mask, value, value_mask, name = case
    if name in ("mask[1]", "value"):
        attention = LuongAttention(**arguments)
    else:
        attention = run(lambda: LuongAttention(**arguments), name)
        if attention is None:
            return

    def call():
        return attention(
            [query, value],
            mask=[query_mask, value_mask],
            return_attention_scores=True,
        )

    call_name = {"mask[1]": r"mask\[1\]", "value": "value"}.get(name)
    outputs = run(call, call_name)
    if outputs is None:
        return
    assert_finite(outputs)
    context, weights = outputs
    assert tuple(context.shape) == tuple(
        attention.compute_output_shape([query.shape, value.shape])
    )
    assert tuple(weights.shape) == (*query.shape[:2], value.shape[1])


@st.composite
def autoencoder_cases(draw):
    mode = draw(st.sampled_from(["reconstruct", "predict", "composite"]))
    sequences, mask = draw(inputs())
    arguments = {
        "units": draw(
            st.one_of(positive(), st.lists(positive(), min_size=1, max_size=3))
        ),
        "mode": mode,
        "prediction_length": None
        if mode == "reconstruct"
        else draw(positive()),
        "output_dim": draw(st.one_of(st.none(), positive())),
        "reverse_reconstruction": draw(scalars(st.booleans())),
        "return_encoding": draw(scalars(st.booleans())),
    }
    wrong = {
        "units": [0, [], [2, 0], "4", 2.0],
        "mode": ["both"],
        "output_dim": WRONG_SIZES,
        "reverse_reconstruction": WRONG_FLAGS,
        "mask": ["spoiled"],
        "inputs": ["empty"],
    }
    wrong["prediction_length"] = (
        [3] if mode == "reconstruct" else [0, None, 2.5]
    )
    arguments, name = draw(spoiled(arguments, wrong))
    if name == "mask":
        mask = draw(spoiled_mask(sequences.shape))
    if name == "inputs":
        sequences = sequences[:, :0]
    for key in ("mask", "inputs"):
        arguments.pop(key, None)
    return arguments, sequences, mask, name


@SETTINGS
@given(case=autoencoder_cases())
def test_lstm_autoencoder(case):
    arguments, sequences, mask, name = case
    if name in ("mask", "inputs"):
        autoencoder = LSTMAutoencoder(**arguments)
        run(lambda: autoencoder(sequences, mask=mask), name)
        return
    autoencoder = run(lambda: LSTMAutoencoder(**arguments), name)
    if autoencoder is None:
        return
    outputs = autoencoder(sequences, mask=mask)
    assert_finite(outputs)
    expected = autoencoder.compute_output_shape(sequences.shape)
    expected = expected if isinstance(expected, list) else [expected]
    shapes = [tuple(t.shape) for t in keras.tree.flatten(outputs)]
    assert shapes == [tuple(shape) for shape in expected]


@st.composite
def schedule_cases(draw):
    schedule = draw(
        st.sampled_from(["linear", "exponential", "inverse_sigmoid"])
    )
    k = {
        "linear": scalars(st.floats(0, 1)),
        "exponential": scalars(st.floats(0.01, 0.99)),
        "inverse_sigmoid": scalars(st.floats(1, 1000)),
    }[schedule]
    arguments = {
        "schedule": schedule,
        "k": draw(k),
        "c": draw(scalars(st.floats(1e-6, 1)))
        if schedule == "linear"
        else None,
        "minimum": draw(scalars(st.floats(0, 1))),
        "update": draw(st.sampled_from(["batch", "epoch"])),
    }
    wrong = {
        "schedule": ["cosine", 0.5],
        "k": [NAN, INF, -1.0, "1"],
        "minimum": WRONG_PROBABILITIES[:-1],
        "update": ["step"],
    }
    if schedule == "linear":
        wrong["c"] = [0, -1.0, NAN, INF]
    return draw(spoiled(arguments, wrong))


@SETTINGS
@given(case=schedule_cases(), i=st.integers(0, 10**6))
def test_scheduled_sampling(case, i):
    arguments, name = case
    callback = run(lambda: ScheduledSampling(**arguments), name)
    if callback is not None:
        value = callback.schedule(i)
        assert np.isfinite(value) and 0.0 <= value <= 1.0


@st.composite
def monitor_cases(draw):
    arguments = {
        "log_every_n_steps": draw(positive()),
        "norm_type": draw(st.sampled_from([1, 2, np.inf, np.int64(2)])),
        "per_layer": draw(scalars(st.booleans())),
        "on_nonfinite": draw(st.sampled_from(["warn", "stop", "raise"])),
        "warn_above": draw(st.one_of(st.none(), scalars(st.floats(0, 1e6)))),
        "patience": draw(positive()),
    }
    wrong = {
        "log_every_n_steps": WRONG_SIZES[:-1],
        "norm_type": [3, "2", True, NAN],
        "per_layer": WRONG_FLAGS,
        "on_nonfinite": ["crash", 1],
        "warn_above": [-1.0, NAN, INF, "10"],
        "patience": WRONG_SIZES[:-1],
    }
    return draw(spoiled(arguments, wrong))


@SETTINGS
@given(case=monitor_cases())
def test_gradient_norm_monitor(case):
    arguments, name = case
    monitor = run(lambda: GradientNormMonitor(**arguments), name)
    if monitor is not None:
        assert type(monitor.per_layer) is bool


@pytest.fixture(scope="module")
def decoding_model():
    source = keras.Input((4, 3))
    encoded = keras.layers.Dense(4, activation="tanh")(source)
    decoder = AttentionDecoder(4, 5, output_length=3)
    return keras.Model(source, decoder(encoded))


@st.composite
def decoding_cases(draw):
    arguments = {
        "max_length": draw(st.one_of(st.none(), positive(4))),
        "end_token": draw(st.one_of(st.none(), scalars(st.integers(0, 4)))),
        "beam_width": draw(positive(3)),
        "length_penalty": draw(scalars(st.floats(0, 2))),
        "temperature": draw(scalars(st.floats(0.05, 3))),
        "top_k": draw(st.one_of(st.none(), positive(6))),
        "top_p": draw(st.one_of(st.none(), scalars(st.floats(0.01, 1)))),
        "seed": draw(st.one_of(st.none(), scalars(st.integers(0, 9)))),
    }
    wrong = {
        "max_length": WRONG_SIZES[:-1],
        "end_token": [-1, 5, 1.0],
        "beam_width": WRONG_SIZES[:-1],
        "length_penalty": [-0.5, NAN, INF, "0.6"],
        "temperature": [0, -1.0, NAN, INF],
        "top_k": WRONG_SIZES[:-1],
        "top_p": [0.0, 1.5, NAN],
        "seed": ["1", 1.5],
        "inputs": ["nan"],
    }
    arguments, name = draw(spoiled(arguments, wrong))
    batch = draw(st.integers(1, 3))
    x = np.random.default_rng(batch).normal(size=(batch, 4, 3))
    if name == "inputs":
        x[0, 1] = np.nan
        arguments.pop("inputs")
    return arguments, x.astype("float32"), name


@SETTINGS
@given(case=decoding_cases())
def test_decoding(decoding_model, case):
    arguments, x, name = case
    a = arguments
    decodings = {
        "greedy": (
            lambda: greedy_decode(
                decoding_model, x, a["max_length"], a["end_token"]
            ),
            {"max_length", "end_token", "inputs"},
        ),
        "beam": (
            lambda: beam_search(
                decoding_model,
                x,
                a["beam_width"],
                a["max_length"],
                a["end_token"],
                a["length_penalty"],
            ),
            {"max_length", "end_token", "beam_width", "length_penalty"}
            | {"inputs"},
        ),
        "sample": (
            lambda: sample_decode(
                decoding_model,
                x,
                a["temperature"],
                a["top_k"],
                a["top_p"],
                a["seed"],
                a["max_length"],
                a["end_token"],
            ),
            {"temperature", "top_k", "top_p", "seed", "max_length"}
            | {"end_token", "inputs"},
        ),
    }
    for decode, takes in decodings.values():
        result = run(decode, name if name in takes else None)
        if result is None:
            continue
        sequences, scores, weights = result
        steps = a["max_length"] or 3
        assert sequences.shape == (len(x), steps)
        assert scores.shape == (len(x),) and np.all(np.isfinite(scores))
        assert weights.shape == (len(x), steps, 4)
        assert_finite(weights)


@SETTINGS
@given(
    true_shape=st.sampled_from([(2, 3), (2, 3, 4), (2, 1), (1, 3), (2,)]),
    nan_rows=st.integers(0, 2),
)
def test_sequence_accuracy(true_shape, nan_rows):
    rng = np.random.default_rng(0)
    y_pred = rng.random((2, 3, 4)).astype("float32")
    y_pred[:nan_rows] = np.nan
    y_true = rng.integers(0, 4, true_shape)
    metric = SequenceAccuracy()
    fits = true_shape in ((2, 3), (2, 3, 4))
    if run(
        lambda: metric.update_state(y_true, y_pred) or True,
        None if fits else "y_true",
    ):
        result = float(metric.result())
        assert 0.0 <= result <= 1.0 - nan_rows / 2


@st.composite
def dataset_cases(draw):
    arguments = {
        "n_samples": draw(positive()),
        "vocabulary_size": draw(scalars(st.integers(4, 40))),
        "min_length": 1,
        "max_length": draw(positive()),
        "zipf_exponent": draw(scalars(st.floats(0, 2))),
        "seed": draw(st.one_of(st.none(), scalars(st.integers(0, 9)))),
    }
    wrong = {
        "n_samples": WRONG_SIZES[:-1],
        "vocabulary_size": [3, 0, "10", 2.5],
        "max_length": [0, -1, 2.5],
        "zipf_exponent": [-1.0, NAN, INF],
        "seed": ["1", 1.5, [1]],
    }
    return draw(spoiled(arguments, wrong))


@SETTINGS
@given(case=dataset_cases())
def test_datasets(case):
    arguments, name = case
    datasets = keras_seqext.datasets
    result = run(lambda: datasets.synthetic_translation(**arguments), name)
    if result is not None:
        n, length = arguments["n_samples"], arguments["max_length"]
        assert result[0].shape == (n, length)
        assert result[1].shape == (n, length + 1)
    copy_arguments = {
        "n_samples": arguments["n_samples"],
        "n_in": arguments["max_length"],
        "n_out": 1,
        "seed": arguments["seed"],
    }
    copy_name = {"max_length": "n_in"}.get(name, name)
    if copy_name in ("vocabulary_size", "zipf_exponent"):
        copy_name = None
    result = run(lambda: datasets.copy_first(**copy_arguments), copy_name)
    if result is not None:
        assert result[0].shape == (
            copy_arguments["n_samples"],
            copy_arguments["n_in"],
            50,
        )
