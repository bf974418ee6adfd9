"""The tutorials' sequence tasks as seeded NumPy arrays."""

from keras_seqext.datasets.synthetic import copy_first
from keras_seqext.datasets.synthetic import echo_sequence
from keras_seqext.datasets.synthetic import reverse_sequence
