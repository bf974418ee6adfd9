"""Attention math as small pure functions of tensors and weights.

Every function takes and returns batched tensors and documents their shapes:
`query` is `(batch, Tq, dq)`, `keys` and `values` are `(batch, Tv, dv)`,
scores and weights are `(batch, Tq, Tv)`. Projections (the `W_a s` and
`U_a h + b_a` of Bahdanau et al.) are done by the caller, so that a layer can
compute the keys once per sequence and fuse the query projection with its
other matmuls.
"""

from keras import ops

# A score this low has exp() == 0 exactly in float32, where the softmax runs.
_MASKED_SCORE = -1e9


def additive_scores(query, keys, score_vector):
    """Bahdanau's additive score, `e_ij = v_a . tanh(q_i + k_j)`.

    Args:
        query: projected queries `W_a s`, shape `(batch, Tq, units)`.
        keys: projected keys `U_a h + b_a`, shape `(batch, Tv, units)`.
        score_vector: `v_a`, shape `(units,)`.

    Returns:
        The scores, shape `(batch, Tq, Tv)`.
    """
    hidden = ops.tanh(ops.expand_dims(query, 2) + ops.expand_dims(keys, 1))
    return ops.matmul(hidden, score_vector)


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
        return ops.cast(ops.softmax(logits, axis=-1), scores.dtype)
    mask = ops.cast(mask, "bool")
    logits = ops.where(mask, logits, _MASKED_SCORE)
    weights = ops.where(mask, ops.softmax(logits, axis=-1), 0.0)
    return ops.cast(weights, scores.dtype)


def context_vectors(weights, values):
    """The weighted sums `c_i = sum_j a_ij v_j`.

    Args:
        weights: `(batch, Tq, Tv)`.
        values: `(batch, Tv, dv)`.

    Returns:
        The context vectors, shape `(batch, Tq, dv)`.
    """
    return ops.matmul(weights, values)


def _is_narrow(tensor):
    return ops.dtype(tensor) in ("float16", "bfloat16")
