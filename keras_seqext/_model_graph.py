"""Reading a built model's layers and the tensors they were called on."""

import keras


def all_layers(model):
    """Every layer of `model`, nested models and layers included."""
    found = []
    for layer in getattr(model, "layers", []):
        found.append(layer)
        found.extend(all_layers(layer))
    return found


def decoder_arguments(decoder):
    """The symbolic tensors a functional or `Sequential` model passes its
    `AttentionDecoder`: `(memory, others)`.

    Keras records positional arguments first and keyword ones sorted by
    name, so the memory (`encoder_sequence`) is the first rank-3 tensor
    either way; the others are `targets` (rank 3), `initial_state` and a
    mask (rank 2).

    Raises:
        AttributeError or ValueError: the decoder was not called on
            symbolic tensors, or was called more than once.
    """
    tensors = keras.tree.flatten(decoder.input)
    memory = next(t for t in tensors if len(t.shape) == 3)
    return memory, [t for t in tensors if t is not memory]
