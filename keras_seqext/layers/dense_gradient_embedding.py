"""`keras.layers.Embedding` with a dense gradient, which Keras' optimizers
apply correctly on TensorFlow."""

import keras
from keras import ops

from keras_seqext.layers._embedding_lookup import take_rows


@keras.saving.register_keras_serializable(package="keras_seqext")
class DenseGradientEmbedding(keras.layers.Embedding):
    """`keras.layers.Embedding` whose gradient trains right under Adam on
    TensorFlow.

    On TensorFlow the gradient of `keras.layers.Embedding` is a
    `tf.IndexedSlices` with one row per looked-up token, repeats included,
    and Keras 3's optimizers apply it row by row. Adam (and every optimizer
    whose update is not linear in the gradient: RMSprop, Adagrad, AdamW,
    ...) then squares each repeat apart, so a token that a batch holds `n`
    times takes a step up to `sqrt(n)` times too large. Common tokens take
    the largest steps, and training falls behind the same model's on JAX
    or PyTorch (the translation benchmark on the benchmarks page shows by
    how much).

    This layer is `keras.layers.Embedding` with the same arguments,
    weights, mask and config; its gradient on TensorFlow is instead the
    dense `(input_dim, output_dim)` table of each row's summed gradient, as
    JAX and PyTorch give it. Use it for token embeddings trained on
    TensorFlow; on JAX and PyTorch it is `keras.layers.Embedding`. A dense
    gradient costs an `(input_dim, output_dim)` table per step, which Adam
    reads in full anyway. The embedding table of `AttentionDecoder`'s token
    mode gets a dense gradient already.

    Args:
        input_dim: Integer, the size of the vocabulary, the largest token
            id plus one.
        output_dim: Integer, the size of the embeddings.
        **kwargs: the other arguments of `keras.layers.Embedding`
            (`embeddings_initializer`, `mask_zero`, ...).

    Call arguments:
        inputs: Integer token ids, any shape.

    Returns:
        The embeddings, `inputs.shape + (output_dim,)`.

    Example:

    >>> import numpy as np
    >>> import keras
    >>> from keras_seqext.layers import DenseGradientEmbedding
    >>> embedding = DenseGradientEmbedding(100, 8, mask_zero=True)
    >>> ids = np.array([[5, 5, 7, 0]])
    >>> tuple(embedding(ids).shape)
    (1, 4, 8)
    >>> keras.ops.convert_to_numpy(embedding.compute_mask(ids)).tolist()
    [[True, True, True, False]]
    """

    def call(self, inputs):
        # As keras.layers.Embedding.call, but for the lookup.
        if inputs.dtype != "int32" and inputs.dtype != "int64":
            inputs = ops.cast(inputs, "int32")
        outputs = take_rows(self.embeddings, inputs)
        return ops.cast(outputs, dtype=self.compute_dtype)
