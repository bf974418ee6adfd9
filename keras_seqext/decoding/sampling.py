"""Sampling decoding: temperature, top-k and top-p (nucleus) sampling."""

import numpy as np

from keras_seqext._validation import check_finite
from keras_seqext._validation import check_positive_int
from keras_seqext._validation import check_seed
from keras_seqext.decoding._decoder_model import DecoderModel
from keras_seqext.decoding._numpy_decoding import sample_search


def sample_decode(
    model,
    inputs,
    temperature=1.0,
    top_k=None,
    top_p=None,
    seed=None,
    max_length=None,
    end_token=None,
):
    """Decodes each sequence by drawing each token from the model.

    Each step draws the next token of every sequence from the decoder's
    distribution with its logits divided by `temperature`, then kept to the
    `top_k` most probable tokens and to the smallest set of the most
    probable ones whose probability reaches `top_p` (Holtzman et al.'s
    nucleus), as keras-hub's samplers do for transformers. `top_k=1` is the
    greedy decode. The draws come from a NumPy generator seeded with
    `seed`: the same seed gives the same sequences on every backend, for
    the same model outputs. A sequence that draws `end_token` is finished,
    as in `greedy_decode`.

    Args:
        model: A functional or `Sequential` model whose output layer is an
            `AttentionDecoder` with a softmax or linear output (see
            `keras_seqext.decoding`).
        inputs: The model's inputs, as `predict` takes them (`None` for an
            optional `targets` input).
        temperature: Finite positive number; below 1 sharpens the
            distribution, above 1 flattens it. Defaults to `1.0`.
        top_k: Positive integer, the most probable tokens kept at each
            step, or None to keep all. Defaults to `None`.
        top_p: Number in (0, 1], the probability the kept tokens reach, or
            None to keep all. Defaults to `None`.
        seed: Integer seed of the draws, or None for fresh randomness.
            Defaults to `None`.
        max_length: Positive integer, the number of steps to decode, or None
            for the decoder's `output_length` (the memory's length if that
            is None too). Defaults to `None`.
        end_token: Integer id of the token that ends a sequence, or None to
            decode `max_length` tokens always. Defaults to `None`.

    Returns:
        A tuple of NumPy arrays `(sequences, scores, attention_weights)`, as
        `greedy_decode` returns them; the scores are the model's own
        log-probabilities of the drawn tokens (before `temperature`,
        `top_k` and `top_p`), summed.

    Raises:
        ValueError: on a bad argument value, or a model that is not as
            `model` says.

    Example:

    >>> from keras_seqext.decoding import sample_decode
    >>> model = keras.Sequential([
    ...     keras.Input((5, 8)),
    ...     keras.layers.LSTM(16, return_sequences=True),
    ...     keras_seqext.AttentionDecoder(16, 10, output_length=3),
    ... ])
    >>> x = np.random.rand(4, 5, 8).astype("float32")
    >>> sequences, scores, weights = sample_decode(
    ...     model, x, temperature=0.7, top_k=5, top_p=0.9, seed=1)
    >>> again, *_ = sample_decode(
    ...     model, x, temperature=0.7, top_k=5, top_p=0.9, seed=1)
    >>> sequences.shape, bool((sequences == again).all())
    ((4, 3), True)

    Reference:
        Holtzman et al., "The Curious Case of Neural Text Degeneration",
        ICLR 2020.
    """
    owner = "sample_decode"
    temperature = check_finite(
        owner,
        "temperature",
        temperature,
        "a finite positive number",
        lambda value: value > 0,
    )
    top_k = check_positive_int(owner, "top_k", top_k, allow_none=True)
    if top_p is not None:
        top_p = check_finite(
            owner,
            "top_p",
            top_p,
            "a number in (0, 1], or None",
            lambda value: 0 < value <= 1,
        )
    seed = check_seed(owner, "seed", seed)
    decoding = DecoderModel(owner, model, inputs, max_length, end_token)
    return sample_search(
        decoding.step,
        decoding.states,
        decoding.batch_size,
        decoding.max_length,
        decoding.end_token,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        rng=np.random.default_rng(seed),
    )
