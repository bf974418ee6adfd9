"""The tutorials' sequence tasks as seeded NumPy arrays, the dates task as
strings with its character vocabularies, and a synthetic translation task
of any vocabulary size as token ids."""

from keras_seqext.datasets.synthetic import copy_first
from keras_seqext.datasets.synthetic import echo_sequence
from keras_seqext.datasets.synthetic import reverse_sequence
from keras_seqext.datasets.synthetic_translation import END_TOKEN
from keras_seqext.datasets.synthetic_translation import PAD_TOKEN
from keras_seqext.datasets.synthetic_translation import START_TOKEN
from keras_seqext.datasets.synthetic_translation import synthetic_translation
from keras_seqext.datasets.vocabulary import CharacterVocabulary
from keras_seqext.datasets.written_dates import DATE_VOCABULARY
from keras_seqext.datasets.written_dates import FIRST_DATE
from keras_seqext.datasets.written_dates import ISO_LENGTH
from keras_seqext.datasets.written_dates import ISO_VOCABULARY
from keras_seqext.datasets.written_dates import LAST_DATE
from keras_seqext.datasets.written_dates import MAX_DATE_LENGTH
from keras_seqext.datasets.written_dates import dates

__all__ = [
    "CharacterVocabulary",
    "DATE_VOCABULARY",
    "END_TOKEN",
    "FIRST_DATE",
    "ISO_LENGTH",
    "ISO_VOCABULARY",
    "LAST_DATE",
    "MAX_DATE_LENGTH",
    "PAD_TOKEN",
    "START_TOKEN",
    "copy_first",
    "dates",
    "echo_sequence",
    "reverse_sequence",
    "synthetic_translation",
]
