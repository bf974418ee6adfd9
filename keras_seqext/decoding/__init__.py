"""Decoding with a trained `AttentionDecoder` model: greedy, beam search and
sampling.

Each function runs the model's encoder once, up to the decoder's memory and
its mask, then steps the decoder's cell one token at a time in a Python
loop, feeding back the chosen token in its fed-back form (one-hot, or its
embedding in token mode), as teacher forcing does in training, whatever the
decoder's `feedback`. The cell runs on the backend; the search (scores,
ranking, finished sequences) runs in NumPy. A sequence's score is the sum of
the natural logarithms of its tokens' probabilities.

The model must be functional or `Sequential`, with one `AttentionDecoder`
among its layers, called once with the memory as its first argument, and
its outputs must be that decoder's (no layer after it), with a softmax
output or logits (`output_activation=None`). The decoder's `initial_state`
and mask, when the model gives it any, are used; its `targets` are not. The
whole batch is decoded at once, eagerly.
"""

from keras_seqext.decoding.beam import beam_search
from keras_seqext.decoding.greedy import greedy_decode
from keras_seqext.decoding.sampling import sample_decode
from keras_seqext.decoding.serving import export_for_serving

__all__ = [
    "beam_search",
    "export_for_serving",
    "greedy_decode",
    "sample_decode",
]
