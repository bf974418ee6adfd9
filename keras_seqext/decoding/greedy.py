"""Greedy decoding: the most probable token at each step."""

from keras_seqext.decoding._decoder_model import DecoderModel
from keras_seqext.decoding._numpy_decoding import greedy_search


def greedy_decode(model, inputs, max_length=None, end_token=None):
    """Decodes each sequence by taking its most probable token at each step.

    Each step feeds the decoder the token chosen at the step before. With
    `feedback="one_hot"` that is what the decoder does in `predict`, so
    without `end_token` the sequences are the argmax of its predictions. A
    sequence that emits `end_token` is finished: its score stays, and its
    later steps are `end_token` with zero attention weights.

    Args:
        model: A functional or `Sequential` model whose output layer is an
            `AttentionDecoder` with a softmax or linear output (see
            `keras_seqext.decoding`).
        inputs: The model's inputs, as `predict` takes them (`None` for an
            optional `targets` input).
        max_length: Positive integer, the number of steps to decode, or None
            for the decoder's `output_length` (the memory's length if that
            is None too). Defaults to `None`.
        end_token: Integer id of the token that ends a sequence, or None to
            decode `max_length` tokens always. Defaults to `None`.

    Returns:
        A tuple of NumPy arrays `(sequences, scores, attention_weights)`:
        the token ids, int32 `(batch, max_length)`; each sequence's sum of
        log-probabilities, float32 `(batch,)`; the attention weights of each
        step, float32 `(batch, max_length, T_in)`.

    Raises:
        ValueError: on a bad argument value, or a model that is not as
            `model` says.

    Example:

    >>> from keras_seqext.decoding import greedy_decode
    >>> model = keras.Sequential([
    ...     keras.Input((5, 8)),
    ...     keras.layers.LSTM(16, return_sequences=True),
    ...     keras_seqext.AttentionDecoder(16, 10, output_length=3),
    ... ])
    >>> x = np.random.rand(6, 5, 8).astype("float32")
    >>> sequences, scores, weights = greedy_decode(model, x)
    >>> sequences.shape, scores.shape, weights.shape
    ((6, 3), (6,), (6, 3, 5))
    """
    decoding = DecoderModel(
        "greedy_decode", model, inputs, max_length, end_token
    )
    return greedy_search(
        decoding.step,
        decoding.states,
        decoding.batch_size,
        decoding.max_length,
        decoding.end_token,
    )
