"""The one timing rule the benchmarks share, in the standard library alone,
so that the PyTorch references, which import no Keras, use it too."""

import statistics
import time


def warm_median_seconds(call, repeats):
    """Calls `call()` once to warm up, then `repeats` times, timed.

    Args:
        call: a function of no arguments, such as one `predict` pass.
        repeats: how many timed calls.

    Returns:
        `(result, seconds)`: the last call's result and the median seconds
        of the timed calls.
    """
    result = call()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = call()
        seconds.append(time.perf_counter() - start)
    return result, statistics.median(seconds)
