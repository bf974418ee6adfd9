"""Luong et al.'s global attention with its four scores."""

import keras
from keras import ops

from keras_seqext._tensor_checks import check_batch_sizes
from keras_seqext._tensor_checks import check_mask
from keras_seqext._validation import check_choice
from keras_seqext._validation import check_dot_sizes
from keras_seqext._validation import check_required_for_score
from keras_seqext._validation import check_size
from keras_seqext._validation import check_source_length
from keras_seqext._validation import shape_error
from keras_seqext._weight_arguments import add_weight_of_kind
from keras_seqext._weight_arguments import set_weight_arguments
from keras_seqext._weight_arguments import weight_arguments_config
from keras_seqext.layers.attention_scores import additive_scores
from keras_seqext.layers.attention_scores import attentional_states
from keras_seqext.layers.attention_scores import context_vectors
from keras_seqext.layers.attention_scores import dot_scores
from keras_seqext.layers.attention_scores import location_scores
from keras_seqext.layers.attention_scores import masked_softmax
from keras_seqext.layers.attention_scores import zero_masked

LUONG_SCORES = ("dot", "general", "concat", "location")


@keras.saving.register_keras_serializable(package="keras_seqext")
class LuongAttention(keras.layers.Layer):
    """Global attention of Luong et al. (2015), called like `Attention`.

    For each query step `h_t` (a decoder state) it scores every value step
    `h_s` (an encoder state), turns the scores into weights with a softmax
    and returns the context vector `c_t = sum_s a_ts h_s`, or, with
    `attentional_units`, the attentional hidden state
    `h~_t = tanh(W_c [c_t; h_t])` that the paper feeds to its output layer.
    The scores:

    - `"dot"`: `h_t . h_s` (query and key sizes must match; no weights).
    - `"general"`: `h_t . W_a h_s`.
    - `"concat"`: `v_a . tanh(W_a [h_t; h_s])`, with `units` rows in `W_a`.
    - `"location"`: `(W_a h_t)_s`, from the query alone: `W_a` has
      `max_source_length` rows, and those beyond the value sequence's
      length are dropped.

    Keras' `Attention` is `"dot"` without the attentional state and
    `AdditiveAttention` is Bahdanau's score without its weights; the math
    here is shared with `AttentionDecoder(score=...)`.

    Shapes: query `(batch, Tq, dq)`, value `(batch, Tv, dv)`, key
    `(batch, Tv, dk)` (the value when not given); the output is
    `(batch, Tq, dv)`, or `(batch, Tq, attentional_units)`, and the weights
    `(batch, Tq, Tv)`.

    Masking: `mask=[query_mask, value_mask]` (Keras fills it in from the
    inputs' masks). Masked value steps get exactly 0 weight, and the
    outputs do not depend on what is under them; masked query steps output
    zeros and have zero weights, and the query mask is the output's mask,
    as in `Attention`.

    Args:
        score: One of `"dot"`, `"general"`, `"concat"`, `"location"`.
            Defaults to `"general"`.
        units: Positive integer, the hidden size of the `"concat"` score
            (required there, unused otherwise). Defaults to `None`.
        attentional_units: Positive integer: return the attentional hidden
            state of this size instead of the context vector; or None.
            Defaults to `None`.
        max_source_length: Positive integer, the longest value sequence the
            `"location"` score serves, or None to take the length of the
            key the layer is built on (which must then be known); unused by
            the other scores. Defaults to `None`.
        kernel_initializer: Initializer of the kernels. Defaults to
            `"glorot_uniform"`.
        kernel_regularizer: Regularizer of the kernels. Defaults to `None`.
        kernel_constraint: Constraint of the kernels. Defaults to `None`.
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: `[query, value]` or `[query, value, key]`.
        mask: `[query_mask, value_mask]`, booleans `(batch, Tq)` and
            `(batch, Tv)`, either None. Defaults to `None`.
        return_attention_scores: Whether to also return the attention
            weights (after the softmax, as `Attention` does). Defaults to
            `False`.
        training: Python boolean; unused, accepted for symmetry. Defaults
            to `None`.

    Returns:
        The context vectors (or attentional states), and with
        `return_attention_scores=True` the tuple `(output, weights)`.

    Raises:
        ValueError: on a bad argument, inputs that are not a list of 2 or 3
            rank-3 tensors, a mask that is not a list of 2 or 3, feature
            sizes other than those the weights were built for, query and
            key sizes that differ under `"dot"`, or a value sequence longer
            than `max_source_length`.

    Example:

    >>> attention = keras_seqext.layers.LuongAttention(
    ...     "general", attentional_units=16)
    >>> decoder_states = np.random.rand(2, 3, 8).astype("float32")
    >>> encoder_states = np.random.rand(2, 5, 8).astype("float32")
    >>> output, weights = attention(
    ...     [decoder_states, encoder_states], return_attention_scores=True)
    >>> tuple(output.shape), tuple(weights.shape)
    ((2, 3, 16), (2, 3, 5))

    Reference:
        Luong, Pham and Manning, "Effective Approaches to Attention-based
        Neural Machine Translation", EMNLP 2015.
    """

    def __init__(
        self,
        score="general",
        units=None,
        attentional_units=None,
        max_source_length=None,
        kernel_initializer="glorot_uniform",
        kernel_regularizer=None,
        kernel_constraint=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        owner = type(self).__name__
        self.score = check_choice(owner, "score", score, LUONG_SCORES)
        self.units = check_required_for_score(
            owner, "units", units, score, "concat"
        )
        self.max_source_length = check_required_for_score(
            owner,
            "max_source_length",
            max_source_length,
            score,
            "location",
            # Without it, the length of the key the layer is built on.
            required=False,
        )
        self.attentional_units = check_size(
            owner, "attentional_units", attentional_units, allow_none=True
        )
        set_weight_arguments(
            self,
            "kernel",
            kernel_initializer,
            kernel_regularizer,
            kernel_constraint,
        )
        self.supports_masking = True
        self._built_sizes = {}
        self.source_length = None

    def build(self, inputs_shape):
        query_shape, value_shape, key_shape = self._check_shapes(inputs_shape)
        query_dim, value_dim = query_shape[-1], value_shape[-1]
        key_dim = key_shape[-1]
        self._built_sizes = self._weighted_sizes(query_dim, value_dim, key_dim)
        if self.score == "general":
            self.score_kernel = self._kernel(
                "score_kernel", (key_dim, query_dim)
            )
        elif self.score == "concat":
            self.score_kernel = self._kernel(
                "score_kernel", (query_dim + key_dim, self.units)
            )
            self.score_vector = self._kernel("score_vector", (self.units,))
        elif self.score == "location":
            self.source_length = self._source_length(key_shape)
            self.score_kernel = self._kernel(
                "score_kernel", (query_dim, self.source_length)
            )
        if self.attentional_units is not None:
            self.attentional_kernel = self._kernel(
                "attentional_kernel",
                (value_dim + query_dim, self.attentional_units),
            )

    def _source_length(self, key_shape):
        """`max_source_length`, or without it the key's length."""
        if self.max_source_length is not None:
            return self.max_source_length
        length = key_shape[1]
        if not isinstance(length, int) or length <= 0:
            raise ValueError(
                f"Invalid value for argument `max_source_length` of "
                f"{type(self).__name__}. Expected a positive integer with "
                "score='location' when the key's length is not known as the "
                "layer is built (it is taken from there otherwise). "
                f"Received: max_source_length=None, a key of shape "
                f"{tuple(key_shape)}"
            )
        return length

    def _kernel(self, name, shape):
        return add_weight_of_kind(self, "kernel", name, shape)

    def _weighted_sizes(self, query_dim, value_dim, key_dim):
        """The feature sizes that the weights' shapes are built on: a later
        call must keep these, and may change the others."""
        sizes = {}
        if self.score != "dot" or self.attentional_units is not None:
            sizes["query"] = query_dim
        if self.score in ("general", "concat"):
            sizes["key"] = key_dim
        if self.attentional_units is not None:
            sizes["value"] = value_dim
        return sizes

    def call(
        self, inputs, mask=None, return_attention_scores=False, training=None
    ):
        self._check_shapes([tuple(t.shape) for t in _as_list(inputs)])
        query_mask, value_mask = self._check_masks(inputs, mask)
        query, value = inputs[0], inputs[1]
        key = inputs[2] if len(inputs) > 2 else value
        # Zeroed under the masks before any product with them.
        query = zero_masked(query, query_mask)
        value = zero_masked(value, value_mask)
        key = zero_masked(key, value_mask)

        scores = self._scores(query, key)
        if value_mask is not None:
            value_mask = ops.expand_dims(value_mask, 1)
        weights = masked_softmax(scores, value_mask)
        output = context_vectors(weights, value)
        if self.attentional_units is not None:
            output = attentional_states(output, query, self.attentional_kernel)
        if query_mask is not None:
            # A masked query step is padding: it outputs zeros and attends
            # nowhere.
            attends = ops.expand_dims(ops.cast(query_mask, "bool"), -1)
            output = ops.where(attends, output, 0.0)
            weights = ops.where(attends, weights, 0.0)
        if return_attention_scores:
            return output, weights
        return output

    def _scores(self, query, key):
        if self.score == "dot":
            return dot_scores(query, key)
        if self.score == "general":
            return dot_scores(query, ops.matmul(key, self.score_kernel))
        if self.score == "concat":
            query_dim = query.shape[-1]
            return additive_scores(
                ops.matmul(query, self.score_kernel[:query_dim]),
                ops.matmul(key, self.score_kernel[query_dim:]),
                self.score_vector,
            )
        return location_scores(
            ops.matmul(query, self.score_kernel), ops.shape(key)[1]
        )

    def compute_mask(self, inputs, mask=None):
        query_mask, _ = self._query_and_value_masks(mask)
        return query_mask

    def _check_masks(self, inputs, mask):
        """The query and value masks, each checked against its tensor."""
        query_mask, value_mask = self._query_and_value_masks(mask)
        owner = type(self).__name__
        shapes = [tuple(t.shape) for t in _as_list(inputs)]
        check_mask(owner, query_mask, shapes[0], "mask[0]", "query")
        check_mask(owner, value_mask, shapes[1], "mask[1]", "value")
        return query_mask, value_mask

    def _query_and_value_masks(self, mask):
        """`mask` as `(query_mask, value_mask)`. A lone tensor is refused,
        as `keras.layers.Attention` refuses it: its rows would be read as
        the two masks."""
        if mask is None:
            return None, None
        if not isinstance(mask, (list, tuple)) or not 2 <= len(mask) <= 3:
            raise ValueError(
                f"Invalid value for argument `mask` of {type(self).__name__}. "
                "Expected a list of 2 or 3 masks (or None), [query_mask, "
                "value_mask] or [query_mask, value_mask, key_mask]. "
                f"Received: mask={_describe(mask)}"
            )
        return mask[0], mask[1]

    def compute_output_shape(self, inputs_shape):
        query_shape, value_shape, _ = self._check_shapes(inputs_shape)
        return (*query_shape[:2], self.attentional_units or value_shape[-1])

    def compute_output_spec(
        self, inputs, mask=None, return_attention_scores=False, training=None
    ):
        shapes = [tuple(t.shape) for t in _as_list(inputs)]
        self._check_masks(inputs, mask)
        output = keras.KerasTensor(
            self.compute_output_shape(shapes), dtype=self.compute_dtype
        )
        if not return_attention_scores:
            return output
        weights_shape = (*shapes[0][:2], shapes[1][1])
        return output, keras.KerasTensor(weights_shape, self.compute_dtype)

    def _check_shapes(self, inputs_shape):
        """Returns the query, value and key shapes, checked."""
        owner = type(self).__name__
        shapes = _as_list(inputs_shape)
        if not 2 <= len(shapes) <= 3 or not all(
            isinstance(shape, (tuple, list)) for shape in shapes
        ):
            raise ValueError(
                f"Invalid value for argument `inputs` of {owner}. Expected a "
                "list of 2 or 3 tensors, [query, value] or "
                f"[query, value, key]. Received: inputs={inputs_shape}"
            )
        query_shape, value_shape = shapes[0], shapes[1]
        key_shape = shapes[2] if len(shapes) > 2 else value_shape
        for name, shape in zip(
            ("query", "value", "key"), (query_shape, value_shape, key_shape)
        ):
            if len(shape) != 3 or shape[-1] is None:
                raise shape_error(
                    owner,
                    name,
                    "a rank-3 tensor (batch, steps, features) with a known "
                    "feature size",
                    shape,
                )
            built_size = self._built_sizes.get(name)
            if built_size is not None and shape[-1] != built_size:
                raise shape_error(
                    owner,
                    name,
                    f"(batch, steps, {built_size}), the feature size the "
                    "layer was built with",
                    shape,
                )
        for name, shape in (("value", value_shape), ("key", key_shape)):
            if isinstance(shape[1], int) and shape[1] == 0:
                raise shape_error(
                    owner, name, "at least one step to attend to", shape
                )
        if key_shape[1] is not None and value_shape[1] is not None:
            if key_shape[1] != value_shape[1]:
                raise shape_error(
                    owner,
                    "key",
                    f"as many steps as the value, {value_shape[1]}",
                    key_shape,
                )
        check_batch_sizes(
            owner,
            {
                "query": query_shape,
                "value": value_shape,
                "key": shapes[2] if len(shapes) > 2 else None,
            },
        )
        if self.score == "dot":
            check_dot_sizes(
                owner,
                query_shape[-1],
                key_shape[-1],
                "the query size",
                "the key size",
            )
        if self.score == "location":
            check_source_length(
                owner,
                "key",
                key_shape,
                self.source_length or self.max_source_length,
            )
        return query_shape, value_shape, key_shape

    def get_config(self):
        config = {
            "score": self.score,
            "units": self.units,
            "attentional_units": self.attentional_units,
            "max_source_length": self.max_source_length,
            **weight_arguments_config(self, ("kernel",)),
        }
        return {**super().get_config(), **config}


def _as_list(inputs):
    return list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]


def _describe(mask):
    """A mask argument for an error: its shape(s), not its values."""
    if isinstance(mask, (list, tuple)):
        return [_describe(m) for m in mask]
    shape = getattr(mask, "shape", None)
    return mask if shape is None else f"a tensor of shape {tuple(shape)}"
