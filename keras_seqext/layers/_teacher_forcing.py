"""Teacher forcing in `AttentionDecoder`: the inputs of its loop, with the
coins that choose, step by step, between the true previous output and the
decoder's own, and the probability that weights them."""

import math

import keras
from keras import ops

from keras_seqext._replicas import replica_context


def teacher_forcing_inputs(decoder, sequences, targets):
    """The inputs of `decoder`'s loop, `(batch, T_out, feed_dim + 1)`.

    Step t's input is the fed-back form of `targets[:, t-1]` (the targets
    themselves, or in token mode their embeddings, looked up here once per
    sequence), `y_0` at t = 0, and a last column that is 1 where that
    target is fed instead of the decoder's own previous output. The coins
    are drawn here, before the loop, because random ops cannot run inside a
    JAX recurrence step. Without targets every step feeds back its own
    output, and the inputs are `(batch, T_out, 0)`: only the loop's length.
    """
    batch_size, input_length = ops.shape(sequences)[:2]
    output_length = decoder.output_length or input_length
    dtype = sequences.dtype
    if targets is None:
        return ops.zeros((batch_size, output_length, 0), dtype)
    cell = decoder.cell
    if decoder.embedding_dim is None:
        teacher = ops.cast(targets, dtype)
    else:
        teacher = cell.feed_of_tokens(targets, dtype)
    start = ops.expand_dims(cell.start_feed(batch_size, dtype), 1)
    previous = ops.concatenate([start, teacher[:, :-1]], axis=1)
    draws = _draw_coins(decoder.seed_generator, batch_size, output_length)
    probability = usable_probability(decoder.teacher_forcing_probability)
    use_targets = ops.cast(draws < probability, dtype)
    return ops.concatenate([previous, use_targets], axis=-1)


def _draw_coins(seed_generator, batch_size, output_length):
    """Uniform draws for the teacher-forcing coins, `(batch, T_out, 1)`.

    Under a `tf.distribute` strategy every replica holds a share of the
    global batch and the same seed state, so drawing for its own rows would
    give every replica the same coins. Each draws for the whole global
    batch and keeps the rows of its share instead: the coins one device
    would draw, when the strategy splits the batch into equal, consecutive
    shares, as `MirroredStrategy` does with whole batches.
    """
    context = replica_context()
    replicas = 1 if context is None else context.num_replicas_in_sync
    draws = keras.random.uniform(
        (batch_size * replicas, output_length, 1), seed=seed_generator
    )
    if context is None:
        return draws
    start = context.replica_id_in_sync_group * batch_size
    return ops.slice(draws, (start, 0, 0), (batch_size, output_length, 1))


def usable_probability(probability):
    """The teacher-forcing probability as the step uses it: clipped to
    [0, 1], NaN as 0 (no draw is below NaN either)."""
    probability = ops.convert_to_tensor(probability)
    clipped = ops.clip(probability, 0.0, 1.0)
    return ops.where(ops.isnan(probability), 0.0, clipped)


def loadable_probability(probability):
    """The teacher-forcing probability as a saved config holds it: the
    value the step uses, which the constructor accepts."""
    if math.isnan(probability):
        return 0.0
    return min(max(probability, 0.0), 1.0)
