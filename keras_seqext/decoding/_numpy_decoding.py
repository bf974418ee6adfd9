"""The decoding searches, and an exported decoder to run them on, in NumPy
alone.

Greedy search, beam search and sampling over a decoder given as one
function, `step(tokens, states) -> (log_probs, weights, states)`: the
log-probabilities `(n, vocabulary)` and attention weights `(n, T_in)` of
the next token for each of `n` rows, fed `tokens` (`(n,)` ids, or None at
the first step, where the decoder reads its own start), and its new states.
What the states are is the step's business: backend tensors when a Keras
model steps, NumPy arrays when an exported one does. Beam search reorders
them through a second function, `select(states, rows)`.

This module imports nothing but NumPy (and, to run exported artifacts,
their runtime: onnxruntime or LiteRT), so that a process serving them runs
the same searches without Keras: `export_for_serving` writes it beside the
artifacts as `seq2seq_serving.py`, where `ServedDecoder` runs them.

A sequence's score is the sum of the natural logarithms of its tokens'
probabilities; beam search ranks by it divided by the length penalty of
Wu et al. (2016), `((5 + length) / 6) ** alpha`.
"""

import numpy as np


def greedy_search(step, states, batch_size, max_length, end_token=None):
    """The most probable token at each step.

    Returns:
        `(sequences, scores, weights)`: int32 `(batch, max_length)`,
        float32 `(batch,)` and float32 `(batch, max_length, T_in)`.
    """
    return _search_one_path(
        step, states, batch_size, max_length, end_token, np.argmax
    )


def sample_search(
    step,
    states,
    batch_size,
    max_length,
    end_token=None,
    temperature=1.0,
    top_k=None,
    top_p=None,
    rng=None,
):
    """A token drawn at each step from the model's distribution, divided by
    `temperature` and kept to the `top_k` most probable tokens and to the
    smallest set of them whose probability reaches `top_p`.

    Returns:
        As `greedy_search`, the scores being the model's own
        log-probabilities of the drawn tokens.
    """
    rng = np.random.default_rng() if rng is None else rng

    def choose(log_probs, axis):
        probabilities = filtered_probabilities(
            log_probs, temperature, top_k, top_p
        )
        # Inverse transform: the first token whose cumulative probability
        # passes a uniform draw.
        cumulative = np.cumsum(probabilities, axis=axis)
        draws = rng.random((len(log_probs), 1)) * cumulative[:, -1:]
        return np.minimum(
            (cumulative <= draws).sum(axis=axis), log_probs.shape[-1] - 1
        )

    return _search_one_path(
        step, states, batch_size, max_length, end_token, choose
    )


def filtered_probabilities(log_probs, temperature=1.0, top_k=None, top_p=None):
    """The sampling distribution of each row of `log_probs` `(n, V)`:
    `softmax(log_probs / temperature)`, zero outside the `top_k` most
    probable tokens and outside the smallest set of most probable tokens
    whose probability reaches `top_p`, renormalised. Ties are broken by
    the lower id, as `argmax` breaks them."""
    logits = log_probs.astype("float64") / temperature
    # A stable sort of the negated logits ranks equal ones by id.
    order = np.argsort(-logits, axis=-1, kind="stable")
    ranked = np.take_along_axis(logits, order, axis=-1)
    ranked = np.exp(ranked - ranked[:, :1])
    ranked /= ranked.sum(axis=-1, keepdims=True)
    keep = np.ones_like(ranked, bool)
    if top_k is not None:
        keep[:, top_k:] = False
    if top_p is not None:
        # A token is kept while the tokens before it hold less than top_p.
        before = np.cumsum(ranked, axis=-1) - ranked
        keep &= before < top_p
    ranked = np.where(keep, ranked, 0.0)
    probabilities = np.zeros_like(ranked)
    np.put_along_axis(probabilities, order, ranked, axis=-1)
    return probabilities / probabilities.sum(axis=-1, keepdims=True)


def _search_one_path(step, states, batch_size, max_length, end_token, choose):
    """One hypothesis per sequence, `choose(log_probs, axis=-1)` picking
    each step's tokens."""
    examples = np.arange(batch_size)
    scores = np.zeros(batch_size, "float32")
    finished = np.zeros(batch_size, bool)
    step_tokens = None
    tokens, weights = [], []
    for _ in range(max_length):
        log_probs, step_weights, states = step(step_tokens, states)
        log_probs = _end_finished(log_probs, finished, end_token)
        step_tokens = choose(log_probs, axis=-1)
        scores = scores + log_probs[examples, step_tokens]
        tokens.append(step_tokens)
        weights.append(np.where(finished[:, None], 0.0, step_weights))
        finished = _update_finished(finished, step_tokens, end_token)
        if _all_finished(finished, end_token):
            break
    sequences, weights = _stack_steps(tokens, weights, max_length, end_token)
    return sequences, scores, weights


def beam_search(
    step,
    select,
    states,
    batch_size,
    beam_width,
    max_length,
    end_token=None,
    length_penalty=0.0,
):
    """The best of `beam_width` hypotheses kept per sequence at each step.

    Each step extends every hypothesis by every token, ranks the extensions
    by `log P / ((5 + length) / 6) ** length_penalty` (`length` counting the
    tokens up to and including `end_token`), and keeps the best
    `beam_width`. A finished hypothesis keeps its score and length and
    still competes for a place in the beam.

    Args:
        step: the decoder's step, as in the module's docstring, over
            `batch_size * beam_width` rows: hypothesis `k` of sequence `b`
            is row `b * beam_width + k`.
        select: `select(states, rows)`, the states of those rows.
        states: the initial states of every row.
        batch_size: the number of sequences.
        beam_width: the hypotheses kept per sequence.
        max_length: the number of steps.
        end_token: the id that ends a hypothesis, or None.
        length_penalty: the exponent `alpha`.

    Returns:
        `(sequences, scores, weights)` of each sequence's best hypothesis,
        as `greedy_search` returns them, the scores divided by the length
        penalty.
    """
    shape = (batch_size, beam_width)
    # Every hypothesis starts empty; only the first may grow, or the first
    # step would fill the beam with copies of the same tokens.
    scores = np.full(shape, -np.inf, "float32")
    scores[:, 0] = 0.0
    lengths = np.zeros(shape, "float32")
    finished = np.zeros(shape, bool)
    examples = np.arange(batch_size)[:, None]
    feedback = None
    steps = []
    for _ in range(max_length):
        log_probs, weights, states = step(feedback, states)
        vocabulary = log_probs.shape[-1]
        log_probs = log_probs.reshape(*shape, vocabulary)
        log_probs = _end_finished(log_probs, finished, end_token)
        candidates = (scores[..., None] + log_probs).reshape(batch_size, -1)
        lengths = lengths + ~finished
        penalties = length_penalty_of(lengths, length_penalty)
        ranking = candidates / np.repeat(penalties, vocabulary, axis=1)
        # A stable sort keeps the first of equal candidates, as argmax does,
        # so that a beam of width 1 is the greedy search even on ties.
        best = np.argsort(-ranking, axis=1, kind="stable")[:, :beam_width]
        parents, step_tokens = np.divmod(best, vocabulary)
        ranking = np.take_along_axis(ranking, best, axis=1)
        scores = np.take_along_axis(candidates, best, axis=1)
        lengths = lengths[examples, parents]
        parent_finished = finished[examples, parents]
        weights = weights.reshape(*shape, -1)[examples, parents]
        weights = np.where(parent_finished[..., None], 0.0, weights)
        steps.append((step_tokens, parents, weights))
        states = select(states, (examples * beam_width + parents).reshape(-1))
        feedback = step_tokens.reshape(-1)
        finished = _update_finished(parent_finished, step_tokens, end_token)
        if _all_finished(finished, end_token):
            break
    tokens, weights = _backtrack(steps)
    sequences, weights = _stack_steps(tokens, weights, max_length, end_token)
    # Sorted: hypothesis 0 is the best.
    return sequences, ranking[:, 0], weights


def log_probabilities(outputs, from_logits):
    """The decoder's step outputs as float32 log-probabilities: the log of
    softmax outputs, or the log-softmax of logits."""
    outputs = np.asarray(outputs, "float64")
    if from_logits:
        shifted = outputs - outputs.max(axis=-1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
    else:
        # A probability of 0 gives -inf: a sequence that cannot be.
        with np.errstate(divide="ignore"):
            log_probs = np.log(outputs)
    return log_probs.astype("float32")


def length_penalty_of(lengths, alpha):
    """GNMT's `((5 + length) / 6) ** alpha`, 1 for `alpha = 0`."""
    return ((5.0 + lengths) / 6.0) ** alpha


def _end_finished(log_probs, finished, end_token):
    """The log-probabilities with which a finished sequence can only go on
    with `end_token`, at no cost; `finished` has their shape but the last
    axis."""
    if end_token is None:
        return log_probs
    only_end = np.full(log_probs.shape[-1], -np.inf, "float32")
    only_end[end_token] = 0.0
    return np.where(finished[..., None], only_end, log_probs)


def _update_finished(finished, tokens, end_token):
    if end_token is None:
        return finished
    return finished | (tokens == end_token)


def _all_finished(finished, end_token):
    return end_token is not None and finished.all()


def _backtrack(steps):
    """The tokens and weights of hypothesis 0 at the last step, one array
    `(batch,)` and `(batch, T_in)` per step, from each step's tokens,
    parents and weights `(batch, beam_width(, T_in))`."""
    examples = np.arange(len(steps[0][0]))
    hypothesis = np.zeros_like(examples)
    tokens, weights = [], []
    for step_tokens, parents, step_weights in reversed(steps):
        tokens.append(step_tokens[examples, hypothesis])
        weights.append(step_weights[examples, hypothesis])
        hypothesis = parents[examples, hypothesis]
    return tokens[::-1], weights[::-1]


def _stack_steps(tokens, weights, max_length, end_token):
    """Stacks the steps' tokens and weights along axis 1 and, if every
    sequence ended before `max_length`, pads them with `end_token` and
    zeros."""
    sequences = np.stack(tokens, axis=1).astype("int32")
    weights = np.stack(weights, axis=1).astype("float32")
    missing = max_length - sequences.shape[1]
    if missing:
        sequences = np.pad(
            sequences, [(0, 0), (0, missing)], constant_values=end_token
        )
        weights = np.pad(weights, [(0, 0), (0, missing), (0, 0)])
    return sequences, weights


class ServedDecoder:
    """A decoder exported by `keras_seqext.decoding.export_for_serving`,
    run by onnxruntime or the LiteRT interpreter, with the searches above.

    Args:
        directory: the folder `export_for_serving` wrote.

    Example, in a process without Keras:

        import seq2seq_serving  # the copy in that folder, on sys.path
        decoder = seq2seq_serving.ServedDecoder("served")
        tokens, scores, weights = decoder.beam_search([x], beam_width=4)
    """

    def __init__(self, directory):
        import json
        import os

        with open(os.path.join(directory, METADATA_FILE)) as file:
            self.metadata = json.load(file)
        run = {"onnx": _onnx_runner, "litert": _litert_runner}
        load = run[self.metadata["format"]]
        extension = self.metadata["extension"]
        self._encode = load(os.path.join(directory, "encoder" + extension))
        self._step = load(os.path.join(directory, "step" + extension))

    def greedy_decode(self, inputs, max_length=None, end_token=None):
        """As `keras_seqext.decoding.greedy_decode`, on `inputs`: the model's
        inputs, a list of arrays in its order (without `targets`)."""
        states, batch_size, max_length = self._start(inputs, max_length)
        return greedy_search(
            self._step_of, states, batch_size, max_length, end_token
        )

    def beam_search(
        self,
        inputs,
        beam_width,
        max_length=None,
        end_token=None,
        length_penalty=0.0,
    ):
        """As `keras_seqext.decoding.beam_search`, on `inputs` (see
        `greedy_decode`)."""
        states, batch_size, max_length = self._start(inputs, max_length)
        rows = np.repeat(np.arange(batch_size), beam_width)
        return beam_search(
            self._step_of,
            _select,
            _select(states, rows),
            batch_size,
            beam_width,
            max_length,
            end_token,
            length_penalty,
        )

    def _start(self, inputs, max_length):
        """The encoder's outputs as the steps' states, the batch size and
        the number of steps."""
        names = self.metadata["inputs"]
        if len(inputs) != len(names):
            raise ValueError(
                "Invalid value for argument `inputs` of ServedDecoder. "
                f"Expected {len(names)} arrays, for the model's inputs "
                f"{names} (without the targets). Received: {len(inputs)}"
            )
        arrays = dict(zip(names, (np.asarray(array) for array in inputs)))
        memory, output, state = self._encode(arrays)
        max_length = (
            max_length or self.metadata["output_length"] or memory.shape[1]
        )
        return [output, state, memory], len(memory), max_length

    def _step_of(self, tokens, states):
        """One exported step, as the searches take it. The attention memory
        rides with the recurrent states, so that beam search reorders it
        too."""
        output, state, memory = states
        rows = len(output)
        if tokens is None:  # the first step reads the decoder's own y_0
            tokens, fed = (
                np.zeros(rows, "int32"),
                np.zeros((rows, 1), "float32"),
            )
        else:
            fed = np.ones((rows, 1), "float32")
        step_output, output, state = self._step(
            {
                "tokens": np.asarray(tokens, "int32"),
                "fed": fed,
                "output": output,
                "state": state,
                "memory": memory,
            }
        )
        output_dim = self.metadata["output_dim"]
        outputs, weights = (
            step_output[:, :output_dim],
            step_output[:, output_dim:],
        )
        finite = np.isfinite(outputs).all(axis=-1)
        if not finite.all():
            raise ValueError(
                "Invalid value for argument `inputs` of ServedDecoder. The "
                "model's outputs are not finite (NaN or infinity) for "
                f"{int((~finite).sum())} rows. Received: inputs with them"
            )
        log_probs = log_probabilities(outputs, self.metadata["from_logits"])
        return log_probs, weights, [output, state, memory]


# The file of `export_for_serving` that describes the artifacts.
METADATA_FILE = "decoder.json"


def _select(states, rows):
    return [state[rows] for state in states]


def _onnx_runner(path):
    """A function from the input arrays, by name, to the list of outputs."""
    import onnxruntime

    session = onnxruntime.InferenceSession(path)
    return lambda arrays: session.run(None, arrays)


def _litert_runner(path):
    """As `_onnx_runner`, with the LiteRT interpreter."""
    from ai_edge_litert.interpreter import Interpreter
    from ai_edge_litert.interpreter import OpResolverType

    # Without XNNPack, LiteRT's default delegate, which fails to resize the
    # step's tensors between calls of other row counts.
    interpreter = Interpreter(
        model_path=path,
        experimental_op_resolver_type=(
            OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        ),
    )

    # The signature resizes the tensors to each call's arrays, and names
    # the outputs in the model's order.
    runner = interpreter.get_signature_runner()

    def run(arrays):
        outputs = runner(**arrays)
        return [outputs[f"output_{i}"] for i in range(len(outputs))]

    return run
