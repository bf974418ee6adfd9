import keras
import numpy as np
import pytest
from keras import ops

from keras_seqext.layers import LuongAttention
from tests.test_case import TestCase

BATCH, QUERY_STEPS, VALUE_STEPS, FEATURES = 3, 4, 6, 5
QUERY_MASK = np.array(
    [[True, True, True, False], [True, True, True, True], [True] * 4]
)
VALUE_MASK = np.array(
    [
        [True, True, True, True, False, False],
        [False, True, True, True, True, True],
        [True] * 6,
    ]
)
SCORE_KWARGS = {
    "dot": {"score": "dot"},
    "general": {"score": "general"},
    "concat": {"score": "concat", "units": 7},
    "location": {"score": "location", "max_source_length": VALUE_STEPS + 2},
}


def random_inputs(seed=0, key_features=FEATURES):
    rng = np.random.default_rng(seed)
    query = rng.normal(size=(BATCH, QUERY_STEPS, FEATURES))
    value = rng.normal(size=(BATCH, VALUE_STEPS, FEATURES + 1))
    key = rng.normal(size=(BATCH, VALUE_STEPS, key_features))
    return [x.astype("float32") for x in (query, value, key)]


def softmax(x):
    e = np.exp(x - x.max())
    return e / e.sum()


def numpy_luong(layer, query, value, key, query_mask, value_mask):
    """Luong et al.'s global attention, one query step at a time, from the
    paper's formulas with the layer's weights."""
    w = {v.name: ops.convert_to_numpy(v.value) for v in layer.weights}
    w = {name: value.astype("float64") for name, value in w.items()}
    query, value, key = (x.astype("float64") for x in (query, value, key))
    outputs = np.zeros(
        (BATCH, QUERY_STEPS, layer.attentional_units or value.shape[-1])
    )
    weights = np.zeros((BATCH, QUERY_STEPS, VALUE_STEPS))
    for b in range(BATCH):
        attend = (
            np.ones(VALUE_STEPS, bool)
            if value_mask is None
            else (value_mask[b])
        )
        for t in range(QUERY_STEPS):
            h_t, h_s = query[b, t], key[b]
            if layer.score == "dot":
                e = h_s @ h_t
            elif layer.score == "general":  # h_t . W_a h_s, W_a = kernel^T
                e = np.array([h_t @ w["score_kernel"].T @ h for h in h_s])
            elif layer.score == "concat":  # v_a . tanh(W_a [h_t; h_s])
                pairs = [np.concatenate([h_t, h]) for h in h_s]
                e = (
                    np.tanh(np.array(pairs) @ w["score_kernel"])
                    @ (w["score_vector"])
                )
            else:  # location: W_a h_t, the first Tv positions
                e = (h_t @ w["score_kernel"])[:VALUE_STEPS]
            a = np.zeros(VALUE_STEPS)
            a[attend] = softmax(e[attend])
            c = a @ value[b]
            out = c
            if layer.attentional_units:
                out = np.tanh(
                    np.concatenate([c, h_t]) @ w["attentional_kernel"]
                )
            if query_mask is not None and not query_mask[b, t]:
                out, a = np.zeros_like(out), np.zeros_like(a)
            outputs[b, t], weights[b, t] = out, a
    return outputs, weights


class TestLuongAttentionMath(TestCase):
    @pytest.mark.parametrize("score", list(SCORE_KWARGS))
    @pytest.mark.parametrize("masked", [False, True])
    @pytest.mark.parametrize("attentional_units", [None, 3])
    def test_matches_numpy_reference(self, score, masked, attentional_units):
        layer = LuongAttention(
            attentional_units=attentional_units, **SCORE_KWARGS[score]
        )
        query, value, key = random_inputs()
        masks = [QUERY_MASK, VALUE_MASK] if masked else None
        outputs, weights = layer(
            [query, value, key], mask=masks, return_attention_scores=True
        )
        expected_outputs, expected_weights = numpy_luong(
            layer, query, value, key, *(masks or [None, None])
        )
        self.assertAllClose(outputs, expected_outputs, atol=1e-5)
        self.assertAllClose(weights, expected_weights, atol=1e-5)

    def test_dot_closed_form(self):
        """Two keys at scores 0 and 1: weights [1, e] / (1 + e)."""
        query = np.array([[[1.0, 0.0]]], "float32")
        key = np.array([[[0.0, 1.0], [1.0, 0.0]]], "float32")
        value = np.array([[[2.0], [4.0]]], "float32")
        output, weights = LuongAttention("dot")(
            [query, value, key], return_attention_scores=True
        )
        e = np.e
        self.assertAllClose(weights, [[[1 / (1 + e), e / (1 + e)]]])
        self.assertAllClose(output, [[[(2 + 4 * e) / (1 + e)]]])

    def test_value_is_the_key_when_no_key_is_given(self):
        layer = LuongAttention("general")
        query, value, _ = random_inputs()
        self.assertAllClose(layer([query, value]), layer([query, value, value]))


class TestLuongAttentionMasking(TestCase):
    @pytest.mark.parametrize("score", list(SCORE_KWARGS))
    def test_values_under_the_mask_change_nothing(self, score):
        layer = LuongAttention(attentional_units=3, **SCORE_KWARGS[score])
        query, value, key = random_inputs()
        masks = [QUERY_MASK, VALUE_MASK]
        before, weights = layer(
            [query, value, key], mask=masks, return_attention_scores=True
        )
        changed_value, changed_key = value.copy(), key.copy()
        _, noise_value, noise_key = random_inputs(seed=9)
        changed_value[~VALUE_MASK] = noise_value[~VALUE_MASK] * 100
        changed_key[~VALUE_MASK] = noise_key[~VALUE_MASK] * 100
        after = layer([query, changed_value, changed_key], mask=masks)
        self.assertAllClose(after, before, atol=1e-6)
        weights = ops.convert_to_numpy(weights)
        assert np.all(weights >= 0)
        # Rows sum to 1, but for masked queries, which attend nowhere.
        self.assertAllClose(weights.sum(-1), QUERY_MASK.astype("float32"))
        assert np.all(weights.transpose(1, 0, 2)[:, ~VALUE_MASK] == 0)
        # An unmasked change does move the output: the check can fail.
        changed_value[0, 0] += 1.0
        moved = layer([query, changed_value, changed_key], mask=masks)
        self.assertNotAllClose(moved, before)

    def test_output_mask_is_the_query_mask(self):
        query_tokens = keras.Input((QUERY_STEPS,), dtype="int32")
        value_tokens = keras.Input((VALUE_STEPS,), dtype="int32")
        embedding = keras.layers.Embedding(9, FEATURES, mask_zero=True)
        layer = LuongAttention("dot")
        query, value = embedding(query_tokens), embedding(value_tokens)
        output = layer([query, value])
        # The mask reaches the next layer: GlobalAveragePooling1D uses it.
        pooled = keras.layers.GlobalAveragePooling1D()(output)
        model = keras.Model([query_tokens, value_tokens], [output, pooled])
        tokens = [np.where(QUERY_MASK, 2, 0), np.where(VALUE_MASK, 3, 0)]
        outputs, pooled = model.predict(tokens, verbose=0)
        assert np.all(outputs[~QUERY_MASK] == 0)
        expected = outputs.sum(1) / QUERY_MASK.sum(1, keepdims=True)
        self.assertAllClose(pooled, expected, atol=1e-6)
        mask = layer.compute_mask([query, value], [QUERY_MASK, VALUE_MASK])
        assert np.array_equal(ops.convert_to_numpy(mask), QUERY_MASK)


class TestLuongAttentionKerasConventions(TestCase):
    @pytest.mark.parametrize(
        "kwargs",
        [
            *SCORE_KWARGS.values(),
            {"score": "general", "attentional_units": 4},
            {"score": "concat", "units": 3, "kernel_regularizer": "l2"},
        ],
    )
    def test_layer(self, kwargs, tmp_path):
        query, value, key = random_inputs()
        inputs = [query, value, key]
        output_size = kwargs.get("attentional_units", value.shape[-1])
        classes = np.arange(BATCH * QUERY_STEPS) % output_size
        targets = np.eye(output_size)[classes].reshape(
            BATCH, QUERY_STEPS, output_size
        )
        self.run_layer_test(
            lambda **extra: LuongAttention(**kwargs, **extra),
            inputs,
            str(tmp_path),
            # `dot` alone has no weights to train.
            targets=None if kwargs == {"score": "dot"} else targets,
            loss="mse",
        )

    def test_symbolic_call_with_scores(self):
        layer = LuongAttention("general")
        query, value, _ = random_inputs()
        output, weights = layer(
            [keras.KerasTensor(query.shape), keras.KerasTensor(value.shape)],
            return_attention_scores=True,
        )
        assert output.shape == (BATCH, QUERY_STEPS, FEATURES + 1)
        assert weights.shape == (BATCH, QUERY_STEPS, VALUE_STEPS)

    def test_location_serves_shorter_sources(self):
        layer = LuongAttention("location", max_source_length=VALUE_STEPS + 2)
        query, value, _ = random_inputs()
        layer([query, value])
        _, weights = layer([query, value[:, :2]], return_attention_scores=True)
        assert weights.shape == (BATCH, QUERY_STEPS, 2)


class TestLuongAttentionErrors:
    def test_location_score_takes_the_built_key_length(self):
        attention = LuongAttention("location")
        query = np.random.rand(2, 3, 4).astype("float32")
        value = np.random.rand(2, 5, 4).astype("float32")
        assert tuple(attention([query, value]).shape) == (2, 3, 4)
        assert attention.source_length == 5
        assert attention.get_config()["max_source_length"] is None
        with pytest.raises(ValueError, match="`key`.*at most"):
            attention([query, np.zeros((2, 6, 4), "float32")])
        with pytest.raises(ValueError, match="`max_source_length`.*not known"):
            LuongAttention("location")(
                [keras.Input((3, 4)), keras.Input((None, 4))]
            )

    @pytest.mark.parametrize(
        "kwargs, argument",
        [
            ({"score": "cosine"}, "score"),
            ({"score": "additive"}, "score"),
            ({"score": "concat"}, "units"),
            ({"score": "concat", "units": 0}, "units"),
            ({"score": "concat", "units": -3}, "units.*positive integer of"),
            ({"score": "location", "max_source_length": -2}, "max_source"),
            ({"attentional_units": 1.5}, "attentional_units"),
            # Arguments that the chosen score has no use for.
            ({"score": "general", "units": 4}, "units"),
            ({"score": "dot", "max_source_length": 4}, "max_source_length"),
        ],
    )
    def test_bad_argument(self, kwargs, argument):
        with pytest.raises(ValueError, match=f"`{argument}"):
            LuongAttention(**kwargs)

    def test_location_source_longer_than_max_source_length(self):
        layer = LuongAttention("location", max_source_length=VALUE_STEPS - 1)
        query, value, _ = random_inputs()
        with pytest.raises(ValueError, match="`key`.*max_source_length=5"):
            layer([query, value])

    def test_dot_sizes_must_match(self):
        query, value, key = random_inputs(key_features=FEATURES + 2)
        with pytest.raises(
            ValueError, match="dot.*the query size 5, the key size 7"
        ):
            LuongAttention("dot")([query, value, key])

    @pytest.mark.parametrize("count", [1, 4])
    def test_inputs_not_a_list_of_two_or_three(self, count):
        query, value, key = random_inputs()
        inputs = [query, value, key, query][:count]
        with pytest.raises(ValueError, match="`inputs`.*list of 2 or 3"):
            LuongAttention()(inputs)
        with pytest.raises(ValueError, match="`inputs`.*list of 2 or 3"):
            LuongAttention()(query)

    def test_rank_other_than_three(self):
        query, value, _ = random_inputs()
        with pytest.raises(ValueError, match="`value`.*rank-3"):
            LuongAttention()([query, value[:, 0]])

    @pytest.mark.parametrize(
        "mask",
        [
            VALUE_MASK[:, :QUERY_STEPS],  # a lone tensor, not a list
            [VALUE_MASK],
            [QUERY_MASK, VALUE_MASK, VALUE_MASK, VALUE_MASK],
        ],
    )
    def test_mask_not_a_list_of_two_or_three(self, mask):
        # Self-attention, so that a lone mask's rows would broadcast.
        query, _, _ = random_inputs()
        with pytest.raises(ValueError, match="`mask`.*list of 2 or 3"):
            LuongAttention("dot")([query, query], mask=mask)

    @pytest.mark.parametrize(
        "kwargs, changed, argument",
        [
            ({"score": "general"}, 0, "query"),
            ({"score": "general"}, 2, "key"),
            ({"score": "concat", "units": 7}, 0, "query"),
            ({"score": "location", "max_source_length": 8}, 0, "query"),
            ({"score": "dot", "attentional_units": 3}, 1, "value"),
        ],
    )
    def test_feature_size_other_than_built(self, kwargs, changed, argument):
        layer = LuongAttention(**kwargs)
        inputs = random_inputs()
        layer(inputs)
        inputs[changed] = np.concatenate([inputs[changed]] * 2, axis=-1)
        with pytest.raises(
            ValueError, match=f"`{argument}`.*the layer was built with"
        ):
            layer(inputs)
        with pytest.raises(ValueError, match=f"`{argument}`"):
            layer.compute_output_shape([x.shape for x in inputs])

    def test_sizes_without_weights_may_change(self):
        """`dot` without the attentional state has no weights: like
        `Attention`, it takes other feature sizes in a later call."""
        layer = LuongAttention("dot")
        query, value, key = random_inputs()
        layer([query, value, key])
        output = layer([query, value[..., :2], key])
        assert output.shape == (BATCH, QUERY_STEPS, 2)
