"""Beam-search decoding."""

from keras_seqext._validation import check_finite
from keras_seqext._validation import check_positive_int
from keras_seqext.decoding._decoder_model import DecoderModel
from keras_seqext.decoding._numpy_decoding import beam_search as search


def beam_search(
    model,
    inputs,
    beam_width,
    max_length=None,
    end_token=None,
    length_penalty=0.0,
):
    """Decodes each sequence by beam search, keeping its `beam_width` best
    hypotheses at each step.

    Each step extends every hypothesis by every token, ranks the extensions
    by `log P / ((5 + length) / 6) ** length_penalty` (Wu et al., 2016;
    `length` counts the tokens up to and including `end_token`), and keeps
    the best `beam_width`. A hypothesis that emits `end_token` is finished:
    it keeps its score and length and still competes for a place in the
    beam. The search stops after `max_length` steps or when every kept
    hypothesis is finished, and returns the best one of each sequence.

    `beam_width=1` gives the greedy decode (with `length_penalty=0.0` the
    same scores too); a beam of `output_dim ** (max_length - 1)` keeps every
    hypothesis and finds the best sequence. In between, a wider beam usually
    scores higher, but beam search does not promise it.

    Args:
        model: A functional or `Sequential` model whose output layer is an
            `AttentionDecoder` with a softmax or linear output (see
            `keras_seqext.decoding`).
        inputs: The model's inputs, as `predict` takes them (`None` for an
            optional `targets` input).
        beam_width: Positive integer, the hypotheses kept per sequence.
        max_length: Positive integer, the number of steps to decode, or None
            for the decoder's `output_length` (the memory's length if that
            is None too). Defaults to `None`.
        end_token: Integer id of the token that ends a sequence, or None to
            decode `max_length` tokens always. Defaults to `None`.
        length_penalty: Finite non-negative number, the exponent `alpha` of
            the length penalty; 0 ranks by log-probability alone, higher
            values favour longer sequences. It only changes the ranking when
            `end_token` makes lengths differ. Defaults to `0.0`.

    Returns:
        A tuple of NumPy arrays `(sequences, scores, attention_weights)` for
        the best hypothesis of each sequence: the token ids, int32
        `(batch, max_length)`, padded with `end_token` after it; the sums of
        log-probabilities divided by the length penalty, float32 `(batch,)`;
        the attention weights of each step, float32
        `(batch, max_length, T_in)`, zeros after `end_token`.

    Raises:
        ValueError: on a bad argument value, or a model that is not as
            `model` says.

    Example:

    >>> from keras_seqext.decoding import beam_search
    >>> model = keras.Sequential([
    ...     keras.Input((5, 8)),
    ...     keras.layers.LSTM(16, return_sequences=True),
    ...     keras_seqext.AttentionDecoder(16, 10, output_length=4),
    ... ])
    >>> x = np.random.rand(2, 5, 8).astype("float32")
    >>> sequences, scores, weights = beam_search(
    ...     model, x, beam_width=3, end_token=0, length_penalty=0.6)
    >>> sequences.shape, scores.shape, weights.shape
    ((2, 4), (2,), (2, 4, 5))

    Reference:
        Wu et al., "Google's Neural Machine Translation System: Bridging
        the Gap between Human and Machine Translation", arXiv:1609.08144,
        2016.
    """
    owner = "beam_search"
    beam_width = check_positive_int(owner, "beam_width", beam_width)
    length_penalty = check_finite(
        owner,
        "length_penalty",
        length_penalty,
        "a finite non-negative number",
        lambda alpha: alpha >= 0,
    )
    decoding = DecoderModel(owner, model, inputs, max_length, end_token)
    return search(
        decoding.step,
        decoding.select,
        decoding.repeated(beam_width),
        decoding.batch_size,
        beam_width,
        decoding.max_length,
        decoding.end_token,
        length_penalty,
    )
