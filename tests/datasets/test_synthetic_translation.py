import numpy as np
import pytest

from keras_seqext.datasets import END_TOKEN
from keras_seqext.datasets import PAD_TOKEN
from keras_seqext.datasets import START_TOKEN
from keras_seqext.datasets import synthetic_translation
from keras_seqext.datasets.synthetic_translation import FIRST_WORD


def sentences(n=2000, vocabulary=100, seed=0, **kwargs):
    kwargs = {"min_length": 3, "max_length": 9, **kwargs}
    return synthetic_translation(n, vocabulary, seed=seed, **kwargs)


def translation_table(source, target):
    """What each source word becomes, read off pairs whose every word is
    kept (so that the target lines up with the source, reordered)."""
    table = {}
    for words, translated in zip(source, target):
        words = words[words != PAD_TOKEN]
        translated = translated[: np.argmax(translated == END_TOKEN)]
        if len(translated) != len(words):
            continue
        order = np.concatenate(
            [words[i : i + 3][::-1] for i in range(0, len(words), 3)]
        )
        for word, out in zip(order, translated):
            assert table.setdefault(word, out) == out
    return table


class TestSyntheticTranslation:
    def test_shapes_padding_and_end_token(self):
        source, target = sentences(vocabulary=50)
        assert source.shape == (2000, 9) and target.shape == (2000, 10)
        assert source.dtype == target.dtype == np.int32
        lengths = (source != PAD_TOKEN).sum(1)
        assert lengths.min() == 3 and lengths.max() == 9
        # Padding only after the words; words only from FIRST_WORD on.
        assert np.all(np.diff((source != PAD_TOKEN).astype(int), axis=1) <= 0)
        assert source[source != PAD_TOKEN].min() >= FIRST_WORD
        assert source.max() < 50 and target.max() < 50
        # One end token per target, after its words, then padding.
        assert np.all((target == END_TOKEN).sum(1) == 1)
        assert not np.any(target == START_TOKEN)
        ends = np.argmax(target == END_TOKEN, axis=1)
        assert np.all(ends <= lengths)
        after = np.arange(target.shape[1]) > ends[:, None]
        assert np.all(target[after] == PAD_TOKEN)

    def test_one_language_across_seeds_fresh_sentences(self):
        train_source, train_target = sentences(seed=1)
        test_source, test_target = sentences(seed=2)
        assert not np.array_equal(train_source, test_source)
        train = translation_table(train_source, train_target)
        test = translation_table(test_source, test_target)
        shared = train.keys() & test.keys()
        assert len(shared) > 50
        assert all(train[word] == test[word] for word in shared)
        other = translation_table(*sentences(seed=1, language_seed=7))
        assert any(other[word] != train[word] for word in shared & other.keys())

    def test_targets_are_shorter_by_the_dropped_words(self):
        source, target = sentences(vocabulary=1000, n=500)
        kept = np.argmax(target == END_TOKEN, axis=1)
        lengths = (source != PAD_TOKEN).sum(1)
        assert np.all(kept <= lengths) and np.any(kept < lengths)
        # About a tenth of the words translate to nothing.
        assert 0.03 < 1 - kept.sum() / lengths.sum() < 0.25

    def test_word_frequencies_follow_zipf(self):
        source, _ = sentences(n=5000, vocabulary=50)
        counts = np.bincount(source[source != PAD_TOKEN], minlength=50)
        words = counts[FIRST_WORD:]
        # The most frequent word is drawn about rank times as often as the
        # word of that rank; with exponent 0 all are equally likely.
        assert 6 < words[0] / words[9] < 14
        flat, _ = sentences(n=5000, vocabulary=50, zipf_exponent=0.0)
        counts = np.bincount(flat[flat != PAD_TOKEN], minlength=50)
        assert counts[FIRST_WORD:].min() > 0.7 * counts[FIRST_WORD:].max()

    def test_seeded(self):
        first = sentences(seed=4)
        again = sentences(seed=4)
        for a, b in zip(first, again):
            np.testing.assert_array_equal(a, b)

    @pytest.mark.parametrize(
        "kwargs, argument",
        [
            ({"n_samples": 0}, "n_samples"),
            ({"vocabulary_size": 3}, "vocabulary_size"),
            ({"min_length": 0}, "min_length"),
            ({"min_length": 5, "max_length": 4}, "max_length"),
            ({"zipf_exponent": -1.0}, "zipf_exponent"),
            ({"zipf_exponent": float("nan")}, "zipf_exponent"),
            ({"seed": "1"}, "seed"),
            ({"seed": 1.5}, "seed"),
            ({"language_seed": None}, "language_seed"),
        ],
    )
    def test_bad_argument(self, kwargs, argument):
        arguments = {"n_samples": 4, "vocabulary_size": 20, **kwargs}
        with pytest.raises(ValueError, match=f"`{argument}` of synthetic_tr"):
            synthetic_translation(**arguments)
