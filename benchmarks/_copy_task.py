"""The benchmarked task and model sizes, in NumPy alone.

Both sides of the comparison import this module: the Keras model
(`attention_decoder.py`) and the PyTorch reference (`torch_reference.py`).
So they train and score on the same samples, drawn by the same code from
the same seeds, and neither imports the other's framework. The draws are
those of `keras_seqext.datasets.copy_first`, which the tutorial uses.
"""

import numpy as np

CARDINALITY = 50  # integers in [0, 50), one-hot encoded
UNITS = 150  # encoder and decoder units, as in the tutorial
TUTORIAL_LENGTH = 5  # input and output steps of the tutorial's task
TUTORIAL_COPIED = 2  # the first 2 are copied, the rest of the target is 0
TRAIN_SAMPLES = 5000
TEST_SAMPLES = 1000
LEARNING_RATE = 1e-3
# Keras' Adam default; PyTorch's is 1e-8, so the reference sets it.
ADAM_EPSILON = 1e-7
# Backpropagation through a matmul costs two matmuls of the same size (the
# gradients of both operands), so a training step is about three forward
# passes.
FORWARD_PASSES_PER_TRAINING_STEP = 3


def copy_task(n_samples, length, seed):
    """The tutorial's task at length 5; at other lengths, copy everything.

    Args:
        n_samples: the number of sequences.
        length: the input and output length `T`.
        seed: the seed of NumPy's generator. The benchmarks train on
            `seed` and score on `seed + 1`.

    Returns:
        `(inputs, classes)`: the one-hot float32 inputs,
        `(n_samples, T, CARDINALITY)`, and the target classes, integers of
        shape `(n_samples, T)`.
    """
    rng = np.random.default_rng(seed)
    sequences = rng.integers(0, CARDINALITY, size=(n_samples, length))
    copied = TUTORIAL_COPIED if length == TUTORIAL_LENGTH else length
    classes = np.zeros_like(sequences)
    classes[:, :copied] = sequences[:, :copied]
    return one_hot(sequences), classes


def one_hot(classes):
    """`(..., CARDINALITY)` float32 one-hot vectors of integer `classes`."""
    return np.eye(CARDINALITY, dtype="float32")[classes]


def exact_match(predicted_classes, classes):
    """The fraction of sequences whose classes are right at every step.

    Args:
        predicted_classes: integers, `(n_samples, T)`.
        classes: the targets' integers, `(n_samples, T)`.

    Returns:
        A Python float in [0, 1].
    """
    return float((predicted_classes == classes).all(axis=1).mean())


def training_flop_per_sample(length, features=CARDINALITY, units=UNITS):
    """The floating-point operations of one training sample of the model.

    Counts matmuls only, at 2 FLOP per multiply-add; the element-wise work
    (activations, the additive score's sums, softmax, the loss and the
    optimizer) is left out. With `T = length` input and output steps, `F`
    one-hot features (also the decoder's output size) and `U` units for the
    encoder, the decoder and so the memory, the forward pass of one sample
    is:

    ```
    encoder LSTM, T steps of [x, h] (F + U) x 4U:    T * 8U(F + U)
    decoder keys U_a h (T rows) and s_0 = W_s h_0:   2U^2 (T + 1)
    decoder, T steps of
        s  x [W_a | U_r | U_z | U_o]  U x (3U + F):  2U(3U + F)
        [y, c] x the gate and output blocks:         2(F + U)(3U + F)
        (r * s) x U_p                 U x U:         2U^2
        v_a . tanh(...) and the context sum:         2T * 2U
    ```

    and training is `FORWARD_PASSES_PER_TRAINING_STEP` forward passes. The
    attention terms grow as `T^2`, the others as `T`.

    Args:
        length: the input and output length `T`.
        features: the one-hot size `F`. Defaults to `CARDINALITY`.
        units: the units `U`. Defaults to `UNITS`.

    Returns:
        The FLOP of one training sample, an integer.
    """
    encoder = length * 8 * units * (features + units)
    keys_and_initial_state = 2 * units * units * (length + 1)
    gates_dim = 3 * units + features
    decoder_step = (
        2 * units * gates_dim
        + 2 * (features + units) * gates_dim
        + 2 * units * units
        + 2 * length * 2 * units
    )
    forward = encoder + keys_and_initial_state + length * decoder_step
    return FORWARD_PASSES_PER_TRAINING_STEP * forward
