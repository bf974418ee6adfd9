"""Masks and batch sizes are checked, never broadcast: every layer that
takes a mask or several tensors refuses a mismatch with a `ValueError`
naming the argument, eagerly and when a functional model is built."""

import keras
import numpy as np
import pytest

from keras_seqext import AttentionDecoder
from keras_seqext import LSTMAutoencoder
from keras_seqext import LuongAttention
from keras_seqext.layers import LSTMEncoder

BATCH, LENGTH, FEATURES = 2, 5, 4
# Masks that do not fit a (BATCH, LENGTH) tensor: broadcastable or not.
BAD_MASK_SHAPES = [
    (BATCH, 1),
    (1, LENGTH),
    (1, 1),
    (BATCH, LENGTH + 1),
    (BATCH + 1, LENGTH),
    (BATCH,),
    (BATCH, LENGTH, 1),
]

# For each layer: a call taking (tensor, mask) and the argument it names.
LAYERS = {
    "AttentionDecoder": (
        lambda x, mask: AttentionDecoder(3, 6)(x, mask=mask),
        "mask",
    ),
    "AttentionDecoder tokens": (
        lambda x, mask: AttentionDecoder(3, 6, embedding_dim=2)(x, mask=mask),
        "mask",
    ),
    "LuongAttention value": (
        lambda x, mask: LuongAttention()([x, x], mask=[None, mask]),
        r"mask\[1\]",
    ),
    "LuongAttention query": (
        lambda x, mask: LuongAttention()([x, x], mask=[mask, None]),
        r"mask\[0\]",
    ),
    "LSTMAutoencoder": (
        lambda x, mask: LSTMAutoencoder(3)(x, mask=mask),
        "mask",
    ),
    "LSTMEncoder": (lambda x, mask: LSTMEncoder(3)(x, mask=mask), "mask"),
}


def memory():
    return np.random.default_rng(0).normal(size=(BATCH, LENGTH, FEATURES))


@pytest.mark.parametrize("layer", list(LAYERS))
@pytest.mark.parametrize("shape", BAD_MASK_SHAPES, ids=str)
def test_a_mask_of_another_shape_raises(layer, shape):
    call, argument = LAYERS[layer]
    x = memory().astype("float32")
    with pytest.raises(ValueError, match=f"`{argument}` of .*{shape}"):
        call(x, np.ones(shape, bool))


@pytest.mark.parametrize("layer", list(LAYERS))
def test_a_mask_of_another_length_raises_in_a_functional_model(layer):
    call, argument = LAYERS[layer]
    x = keras.Input((LENGTH, FEATURES), batch_size=BATCH)
    mask = keras.Input((LENGTH + 1,), batch_size=BATCH, dtype="bool")
    with pytest.raises(ValueError, match=f"`{argument}` of "):
        call(x, mask)


@pytest.mark.parametrize("layer", list(LAYERS))
def test_a_mask_that_fits_passes(layer):
    call, _ = LAYERS[layer]
    mask = np.ones((BATCH, LENGTH), bool)
    mask[0, -1] = False
    outputs = keras.tree.flatten(call(memory().astype("float32"), mask))
    assert all(
        np.all(np.isfinite(keras.ops.convert_to_numpy(t))) for t in outputs
    )


def batch_of(size, length=LENGTH, features=FEATURES):
    return np.zeros((size, length, features), "float32")


@pytest.mark.parametrize(
    "call, argument",
    [
        (
            lambda: AttentionDecoder(3, 6)(
                batch_of(2), targets=batch_of(1, features=6), training=True
            ),
            "targets",
        ),
        (
            lambda: AttentionDecoder(3, 6, embedding_dim=2)(
                batch_of(2), targets=np.zeros((3, LENGTH), "int32")
            ),
            "targets",
        ),
        (
            lambda: AttentionDecoder(3, 6)(
                batch_of(2), initial_state=np.zeros((1, 3), "float32")
            ),
            "initial_state",
        ),
        (lambda: LuongAttention()([batch_of(2), batch_of(1)]), "value"),
        (
            lambda: LuongAttention()([batch_of(2), batch_of(2), batch_of(3)]),
            "key",
        ),
    ],
    ids=["targets", "token targets", "initial_state", "value", "key"],
)
def test_another_batch_size_raises(call, argument):
    with pytest.raises(ValueError, match=f"`{argument}` of .*batch size"):
        call()


def test_another_batch_size_raises_in_a_functional_model():
    source = keras.Input((LENGTH, FEATURES), batch_size=2)
    state = keras.Input((3,), batch_size=1)
    with pytest.raises(ValueError, match="`initial_state` of .*batch size"):
        AttentionDecoder(3, 6)(source, initial_state=state)
    query = keras.Input((3, FEATURES), batch_size=1)
    with pytest.raises(ValueError, match="`value` of .*batch size"):
        LuongAttention()([query, source])


def test_an_unknown_batch_size_passes_until_it_is_known():
    source = keras.Input((LENGTH, FEATURES))
    targets = keras.Input((LENGTH, 6), optional=True)
    decoder = AttentionDecoder(3, 6)
    model = keras.Model([source, targets], decoder(source, targets=targets))
    assert model.output_shape == (None, LENGTH, 6)


@pytest.mark.parametrize(
    "call, argument",
    [
        (lambda: AttentionDecoder(3, 6)(batch_of(2, length=0)), "encoder_seq"),
        (lambda: LuongAttention()([batch_of(2), batch_of(2, 0)]), "value"),
        (lambda: LSTMAutoencoder(3)(batch_of(2, length=0)), "inputs"),
    ],
    ids=["decoder", "luong", "autoencoder"],
)
def test_an_empty_sequence_raises(call, argument):
    with pytest.raises(ValueError, match=f"`{argument}.* at least one"):
        call()
