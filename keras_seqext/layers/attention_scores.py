"""Attention math as small pure functions of tensors and weights.

Every function takes and returns batched tensors and documents their shapes:
`query` is `(batch, Tq, dq)`, `keys` and `values` are `(batch, Tv, dv)`,
scores and weights are `(batch, Tq, Tv)`. The score functions take
*projected* queries and keys, and the layers do the projections (plain
matmuls), so that a decoder can project its keys once per sequence and fuse
its query projection with its other matmuls. The five scores of Bahdanau et
al. (2015) and Luong et al. (2015), with `s`, `h_t` the query and `h_j`,
`h_s` the keys, and how each is computed here:

- `additive`: `v_a . tanh(W_a s + U_a h_j + b_a)`, Bahdanau's:
  `additive_scores(W_a s, U_a h + b_a, v_a)`.
- `concat`: `v_a . tanh(W_a [h_t; h_s])`, where `W_a = [W_1 | W_2]`, no
  bias: `additive_scores(W_1 h_t, W_2 h_s, v_a)`.
- `dot`: `h_t . h_s`: `dot_scores(h_t, h_s)`.
- `general`: `h_t . W_a h_s`: `dot_scores(h_t, W_a h_s)`.
- `location`: `(W_a h_t)_s`, from the query alone:
  `location_scores(W_a h_t, T_s)`.
"""

import keras
from keras import ops

SCORES = ("additive", "dot", "general", "concat", "location")

# A score this low has exp() == 0 exactly in float32, where the softmax runs.
_MASKED_SCORE = -1e9


def additive_scores(query, keys, score_vector):
    """The additive score `e_ij = v_a . tanh(q_i + k_j)`.

    Bahdanau's score with `q = W_a s`, `k = U_a h + b_a`; Luong's `concat`
    with `q = W_1 h_t`, `k = W_2 h_s`.

    On JAX the backward pass recomputes `tanh(q_i + k_j)` (`keras.remat`)
    instead of keeping it: a decoder scores once per step, and keeping that
    `(batch, Tq, Tv, units)` tensor for every step makes the backward pass
    of a long sequence much slower than recomputing it (see the length
    sweep of the benchmarks page). TensorFlow and torch are faster keeping
    it.

    Args:
        query: projected queries, `(batch, Tq, units)`.
        keys: projected keys, `(batch, Tv, units)`.
        score_vector: `v_a`, `(units,)`.

    Returns:
        The scores, `(batch, Tq, Tv)`.
    """
    if keras.backend.backend() == "jax":
        # remat takes tensors, not variables.
        score_vector = ops.convert_to_tensor(score_vector)
        return keras.remat(_additive_scores)(query, keys, score_vector)
    return _additive_scores(query, keys, score_vector)


def _additive_scores(query, keys, score_vector):
    hidden = ops.tanh(ops.expand_dims(query, 2) + ops.expand_dims(keys, 1))
    # Not matmul(hidden, v_a): XLA on TensorFlow rejects that rank-4 by
    # rank-1 product once the batch size is not fixed (a last partial batch).
    return ops.sum(ops.multiply(hidden, score_vector), axis=-1)


def dot_scores(query, keys):
    """The dot-product score `e_ij = q_i . k_j`.

    Luong's `dot` with the states as they are; `general` with `k = W_a h_s`.

    Args:
        query: `(batch, Tq, d)`.
        keys: `(batch, Tv, d)`.

    Returns:
        The scores, `(batch, Tq, Tv)`.
    """
    return ops.matmul(query, ops.swapaxes(keys, -2, -1))


def location_scores(query, length):
    """Luong's location score: the first `length` entries of `W_a h_t`.

    The score of source position `j` depends on the query alone; positions
    beyond `length` (the value sequence's length) are dropped.

    Args:
        query: projected queries `W_a h_t`, `(batch, Tq, max_source_length)`.
        length: the value sequence's length `Tv`, at most
            `max_source_length`.

    Returns:
        The scores, `(batch, Tq, Tv)`.
    """
    return query[..., :length]


def masked_softmax(scores, mask=None):
    """Softmax over the last axis that gives masked positions exactly 0.

    The softmax runs in float32 (or wider) and is cast back, so that float16
    scores neither overflow nor lose the small weights. A row whose every
    position is masked gets all-zero weights, not NaN.

    Args:
        scores: `(batch, Tq, Tv)`.
        mask: boolean, broadcastable to `scores` (`(batch, 1, Tv)` masks the
            same keys for every query), True where a key may be attended to;
            or None.

    Returns:
        The weights, shape and dtype of `scores`; each unmasked row sums to 1.
    """
    logits = ops.cast(scores, "float32") if _is_narrow(scores) else scores
    if mask is None:
        return ops.cast(_softmax(logits), scores.dtype)
    mask = ops.cast(mask, "bool")
    logits = ops.where(mask, logits, _MASKED_SCORE)
    weights = ops.where(mask, _softmax(logits), 0.0)
    return ops.cast(weights, scores.dtype)


def _softmax(logits):
    """`ops.softmax` over the last axis, without the warning Keras gives
    for a softmax over one position, which a memory of one step is not a
    mistake to warn of. Over one position it is 1 (NaN for a NaN or an
    infinite logit, as softmax gives). A size traced as a tensor (PyTorch's
    ONNX export traces with a length of 1) takes the softmax's formula,
    which serves every size."""
    size = logits.shape[-1]
    if isinstance(size, int) and size == 1:
        return ops.exp(logits - logits)
    if size is None or isinstance(size, int):
        return ops.softmax(logits, axis=-1)
    exponentials = ops.exp(logits - ops.max(logits, axis=-1, keepdims=True))
    return exponentials / ops.sum(exponentials, axis=-1, keepdims=True)


def zero_masked(values, mask=None):
    """`values` with the masked steps set to zero.

    A masked step gets zero attention weight, but a zero weight times a
    NaN or an infinity is NaN: zeroed before any product, what is under
    the mask reaches no output and no gradient.

    Args:
        values: `(batch, T, d)`.
        mask: boolean `(batch, T)`, True on the steps to keep; or None.

    Returns:
        `values`, zero where `mask` is False.
    """
    if mask is None:
        return values
    keep = ops.expand_dims(ops.cast(mask, "bool"), -1)
    return ops.where(keep, values, ops.zeros_like(values))


def context_vectors(weights, values):
    """The weighted sums `c_i = sum_j a_ij v_j`.

    Args:
        weights: `(batch, Tq, Tv)`.
        values: `(batch, Tv, dv)`.

    Returns:
        The context vectors, `(batch, Tq, dv)`.
    """
    return ops.matmul(weights, values)


def attentional_states(contexts, query, kernel):
    """Luong's attentional hidden state `h~_t = tanh(W_c [c_t; h_t])`.

    Args:
        contexts: `(batch, Tq, dv)`.
        query: `(batch, Tq, dq)`.
        kernel: `W_c`, `(dv + dq, units)`.

    Returns:
        The attentional states, `(batch, Tq, units)`.
    """
    return ops.tanh(ops.matmul(ops.concatenate([contexts, query], -1), kernel))


def _is_narrow(tensor):
    return ops.dtype(tensor) in ("float16", "bfloat16")
