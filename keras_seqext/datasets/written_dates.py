"""Dates as people write them, paired with their ISO form.

The showcase task of the attention decoder: read "Saturday 9 May 2018" or
"05/09/2018" character by character and write "2018-05-09". `dates()` makes
the strings; `DATE_VOCABULARY` and `ISO_VOCABULARY` turn them into the
integer and one-hot arrays a model reads and writes, and its predictions
back into strings.
"""

import datetime
import string

import numpy as np

from keras_seqext._validation import check_positive_int
from keras_seqext._validation import check_seed
from keras_seqext.datasets.vocabulary import CharacterVocabulary

FIRST_DATE = datetime.date(1900, 1, 1)
LAST_DATE = datetime.date(2099, 12, 31)

# Spelled out rather than taken from `calendar`, whose names follow the
# locale: the dataset must not change with the machine it is made on.
_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_WEEKDAYS = (
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
)

# The all-numeric formats with the year last follow one rule, so that every
# string has a single reading: a slash puts the month first (05/09/2018 is
# May 9), a dot or a dash puts the day first (09.05.2018 is also May 9).
_FORMATS = (
    "{year}-{month2}-{day2}",
    "{year}/{month2}/{day2}",
    "{year}.{month}.{day}",
    "{year}{month2}{day2}",
    "{day2}.{month2}.{year}",
    "{day}.{month}.{year}",
    "{day2}-{month2}-{year}",
    "{month2}/{day2}/{year}",
    "{month}/{day}/{year}",
    "{day} {month_name} {year}",
    "{day2} {month_abbr} {year}",
    "{day}-{month_abbr}-{year}",
    "{day} {month_abbr}, {year}",
    "{day_ordinal} {month_name} {year}",
    "the {day_ordinal} of {month_name} {year}",
    "{day_ordinal} of {month_abbr} {year}",
    "{month_name} {day}, {year}",
    "{month_abbr} {day} {year}",
    "{month_name} {day_ordinal}, {year}",
    "{month_abbr} {day_ordinal} {year}",
    "{year} {month_name} {day}",
    "{weekday} {day} {month_name} {year}",
    "{weekday}, {month_name} {day_ordinal}, {year}",
    "{weekday_abbr} {day2} {month_abbr} {year}",
    "{weekday_abbr}, {day_ordinal} {month_abbr} {year}",
    "{weekday}, {day}.{month}.{year}",
    "{weekday_abbr} {month}/{day}/{year}",
)
# Most strings keep their capitals; the rest are all lower or all upper case.
_CASES = (str, str.lower, str.upper)
_CASE_PROBABILITIES = (0.7, 0.15, 0.15)

# The widest value of each field, which bounds the length of every string.
_WIDEST_FIELDS = {
    "year": "2099",
    "month": "12",
    "month2": "12",
    "month_name": max(_MONTHS, key=len),
    "month_abbr": "Jan",
    "day": "31",
    "day2": "31",
    "day_ordinal": "22nd",
    "weekday": max(_WEEKDAYS, key=len),
    "weekday_abbr": "Mon",
}
MAX_DATE_LENGTH = max(len(f.format(**_WIDEST_FIELDS)) for f in _FORMATS)
ISO_LENGTH = len("YYYY-MM-DD")


DATE_VOCABULARY = CharacterVocabulary(
    " ,-./" + string.digits + string.ascii_letters
)
ISO_VOCABULARY = CharacterVocabulary(string.digits + "-")


def dates(n_samples, seed=None):
    """Random dates as people write them, and the same dates in ISO form.

    Each date is drawn uniformly from `FIRST_DATE` (1900-01-01) to
    `LAST_DATE` (2099-12-31) and written in one of 27 formats, drawn
    uniformly: numeric ones ("2018-05-09", "9.5.2018", "05/09/2018"), with
    long or short month names ("9 May 2018", "May 9, 2018", "09 May 2018"),
    ordinal days ("the 9th of May 2018"), and weekdays ("Saturday 9 May
    2018", "Sat, 9th May 2018"). About 15% of the strings are all lower
    case and 15% all upper case. Years always have four digits. In the
    numeric formats with the year last, a slash means month first (US) and a
    dot or a dash means day first, so that every string has one reading.

    Encode the strings with `DATE_VOCABULARY.encode` (integer ids, 0 for
    padding, at most `MAX_DATE_LENGTH` characters) and the targets with
    `ISO_VOCABULARY.one_hot` (`ISO_LENGTH` = 10 steps); turn predictions
    back into strings with `ISO_VOCABULARY.decode`.

    Args:
        n_samples: Positive integer, the number of dates.
        seed: Integer seed of the generator, or None for fresh randomness.
            Defaults to `None`.

    Returns:
        `(inputs, targets)`: two lists of `n_samples` strings, the written
        dates and their "YYYY-MM-DD" forms.

    Raises:
        ValueError: when `n_samples` is not a positive integer.

    Example:

    >>> datasets = keras_seqext.datasets
    >>> inputs, targets = datasets.dates(2, seed=0)
    >>> all(len(target) == datasets.ISO_LENGTH for target in targets)
    True
    >>> x = datasets.DATE_VOCABULARY.encode(inputs, datasets.MAX_DATE_LENGTH)
    >>> y = datasets.ISO_VOCABULARY.one_hot(targets)
    >>> x.shape, y.shape
    ((2, 31), (2, 10, 12))
    >>> datasets.ISO_VOCABULARY.decode(y) == targets
    True
    """
    n_samples = check_positive_int("dates", "n_samples", n_samples)
    rng = np.random.default_rng(check_seed("dates", "seed", seed))
    days = (LAST_DATE - FIRST_DATE).days + 1
    offsets = rng.integers(0, days, n_samples)
    formats = rng.integers(0, len(_FORMATS), n_samples)
    cases = rng.choice(len(_CASES), n_samples, p=_CASE_PROBABILITIES)
    inputs, targets = [], []
    for offset, format_index, case_index in zip(offsets, formats, cases):
        date = FIRST_DATE + datetime.timedelta(days=int(offset))
        written = _FORMATS[format_index].format(**_fields(date))
        inputs.append(_CASES[case_index](written))
        targets.append(date.isoformat())
    return inputs, targets


def _fields(date):
    """The values of the format fields for `date`."""
    month_name = _MONTHS[date.month - 1]
    weekday = _WEEKDAYS[date.weekday()]
    return {
        "year": f"{date.year:04d}",
        "month": str(date.month),
        "month2": f"{date.month:02d}",
        "month_name": month_name,
        "month_abbr": month_name[:3],
        "day": str(date.day),
        "day2": f"{date.day:02d}",
        "day_ordinal": _ordinal(date.day),
        "weekday": weekday,
        "weekday_abbr": weekday[:3],
    }


def _ordinal(day):
    """1st, 2nd, 3rd, 4th, ..., 11th, 12th, 13th, ..., 21st, 22nd, ..."""
    if day % 10 in (1, 2, 3) and day not in (11, 12, 13):
        return f"{day}{('st', 'nd', 'rd')[day % 10 - 1]}"
    return f"{day}th"
