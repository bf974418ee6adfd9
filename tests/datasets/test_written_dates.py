import datetime
import re

import numpy as np
import pytest

from keras_seqext import datasets
from keras_seqext.datasets import DATE_VOCABULARY
from keras_seqext.datasets import ISO_VOCABULARY
from keras_seqext.datasets import CharacterVocabulary

MONTHS = [
    "jan",
    "feb",
    "mar",
    "apr",
    "may",
    "jun",
    "jul",
    "aug",
    "sep",
    "oct",
    "nov",
    "dec",
]
WEEKDAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
# The days whose ordinal does not end in "th".
ORDINAL_SUFFIXES = {
    1: "st",
    2: "nd",
    3: "rd",
    21: "st",
    22: "nd",
    23: "rd",
    31: "st",
}


def read_date(text):
    """Our own reading of a written date, by the rules `dates` documents:
    a month name gives the month; a 4-digit number is the year; in the
    numeric formats the year first means year-month-day, and with the year
    last a slash means month first, a dot or dash day first. Returns the
    date and the weekday named in the text (or None)."""
    lower = text.lower()
    words = re.findall(r"[a-z]+", lower)
    month_names = [w for w in words if w[:3] in MONTHS]
    weekday_names = [w for w in words if w[:3] in WEEKDAYS]
    numbers = re.findall(r"\d+", lower)
    if len(numbers) == 1:  # compact YYYYMMDD
        year, month, day = numbers[0][:4], numbers[0][4:6], numbers[0][6:]
    elif month_names:
        year = next(n for n in numbers if len(n) == 4)
        (day,) = [n for n in numbers if len(n) != 4]
        month = MONTHS.index(month_names[0][:3]) + 1
    elif len(numbers[0]) == 4:
        year, month, day = numbers
    elif "/" in lower:
        month, day, year = numbers
    else:
        day, month, year = numbers
    weekday = WEEKDAYS.index(weekday_names[0][:3]) if weekday_names else None
    return datetime.date(int(year), int(month), int(day)), weekday


class TestDates:
    def test_seeded(self):
        assert datasets.dates(50, seed=3) == datasets.dates(50, seed=3)
        assert datasets.dates(50, seed=3) != datasets.dates(50, seed=4)

    def test_targets_are_iso_dates_in_range(self):
        _, targets = datasets.dates(500, seed=0)
        for target in targets:
            date = datetime.date.fromisoformat(target)
            assert date.isoformat() == target
            assert datasets.FIRST_DATE <= date <= datasets.LAST_DATE
        years = {int(target[:4]) for target in targets}
        assert min(years) < 1920 and max(years) > 2080

    def test_each_input_reads_as_its_target(self):
        inputs, targets = datasets.dates(2000, seed=1)
        for text, target in zip(inputs, targets):
            lower = text.lower()
            date, weekday = read_date(text)
            assert date.isoformat() == target, text
            if weekday is not None:
                assert weekday == date.weekday(), text
            for number, suffix in re.findall(r"(\d+)(st|nd|rd|th)", lower):
                assert suffix == ORDINAL_SUFFIXES.get(int(number), "th"), text

    def test_formats_vary(self):
        inputs, _ = datasets.dates(2000, seed=2)
        # A format's shape: digits and letters replaced by one symbol each.
        shapes = {
            re.sub(r"[a-zA-Z]+", "a", re.sub(r"\d", "9", t)) for t in inputs
        }
        assert len(shapes) >= 20
        joined = " ".join(inputs)
        for pattern in [
            r"\bSeptember\b",  # long month name
            r"\bSep\b",  # short month name
            r"\bWednesday\b",  # long weekday
            r"\bWed\b",  # short weekday
            r"\b\d+(st|nd|rd|th)\b",  # ordinal day
            r"\b\d{1,2}/\d{1,2}/\d{4}\b",  # month first
            r"\b\d{1,2}\.\d{1,2}\.\d{4}\b",  # day first
            r"\b\d{4}-\d\d-\d\d\b",  # ISO itself
            r"\b\d{8}\b",  # compact
        ]:
            assert re.search(pattern, joined), pattern
        assert any(t.islower() for t in inputs)
        assert any(t.isupper() for t in inputs)
        assert any(t != t.lower() and t != t.upper() for t in inputs)

    def test_inputs_fit_the_vocabulary_and_max_length(self):
        inputs, _ = datasets.dates(2000, seed=3)
        assert max(map(len, inputs)) <= datasets.MAX_DATE_LENGTH
        x = DATE_VOCABULARY.encode(inputs, datasets.MAX_DATE_LENGTH)
        assert x.shape == (2000, datasets.MAX_DATE_LENGTH)

    @pytest.mark.parametrize("n_samples", [0, -1, 2.5, True, None])
    def test_bad_n_samples(self, n_samples):
        with pytest.raises(ValueError, match="`n_samples` of dates"):
            datasets.dates(n_samples)


class TestCharacterVocabulary:
    def test_round_trip(self):
        inputs, targets = datasets.dates(200, seed=4)
        x = DATE_VOCABULARY.encode(inputs)
        assert x.dtype == np.int32
        assert DATE_VOCABULARY.decode(x) == inputs
        y = ISO_VOCABULARY.one_hot(targets)
        assert y.shape == (200, datasets.ISO_LENGTH, ISO_VOCABULARY.size)
        assert y.dtype == np.float32
        assert ISO_VOCABULARY.decode(y) == targets

    def test_ids_start_at_one_and_pad_with_zero(self):
        vocabulary = CharacterVocabulary("xyz")
        assert vocabulary.size == 4
        np.testing.assert_array_equal(
            vocabulary.encode(["zx", "y"], length=4),
            [[3, 1, 0, 0], [2, 0, 0, 0]],
        )
        one_hot = vocabulary.one_hot(["y"], length=2)
        np.testing.assert_array_equal(one_hot, [[[0, 0, 1, 0], [1, 0, 0, 0]]])

    def test_every_character_has_its_own_id(self):
        ids = DATE_VOCABULARY.encode([DATE_VOCABULARY.characters])[0]
        np.testing.assert_array_equal(ids, np.arange(1, DATE_VOCABULARY.size))

    def test_decode_takes_the_argmax_and_skips_padding(self):
        vocabulary = CharacterVocabulary("ab")
        scores = np.array([[[0.1, 0.2, 0.7], [0.6, 0.3, 0.1], [0, 1, 0]]])
        assert vocabulary.decode(scores) == ["ba"]

    @pytest.mark.parametrize(
        "strings, length, message",
        [
            (["ab"], 1, "at most length=1"),
            (["a?"], None, "with '\\?'"),
            ("ab", None, "not one string"),
            (["a"], 0, "`length`"),
        ],
    )
    def test_bad_encode_arguments(self, strings, length, message):
        with pytest.raises(ValueError, match=message):
            CharacterVocabulary("ab").encode(strings, length)

    @pytest.mark.parametrize(
        "sequences, message",
        [
            (np.zeros(3, "int32"), r"shape=\(3,\)"),
            (np.zeros((1, 2, 5)), "vocabulary size"),
            (np.array([[1, 3]]), r"ids in \[0, 3\)"),
            (np.array([[-1, 0]]), r"ids in \[0, 3\)"),
            (np.array([[1.0, 2.0]]), "`sequences`.*integer ids"),
            (np.array([["a", "b"]]), "`sequences`.*integer ids"),
        ],
    )
    def test_bad_decode_arguments(self, sequences, message):
        with pytest.raises(ValueError, match=message):
            CharacterVocabulary("ab").decode(sequences)

    @pytest.mark.parametrize("characters", ["", "aba", ["a", "b"]])
    def test_bad_characters(self, characters):
        with pytest.raises(ValueError, match="`characters`"):
            CharacterVocabulary(characters)
