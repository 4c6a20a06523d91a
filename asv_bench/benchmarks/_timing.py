"""The one timing helper of the benchmark scripts' ``main()`` side-by-side runs (asv times the classes itself).

Examples:
    >>> median_seconds(lambda: None, 3) >= 0.0
    True
    >>> sorted(interleaved_medians({"a": lambda: None, "b": lambda: None}, 3))
    ['a', 'b']
"""
import statistics
import time

__all__ = ["median_seconds", "interleaved_medians"]


def median_seconds(fn, repeats: int, timer=time.perf_counter, warmup: bool = False) -> float:
    """Median duration of ``repeats`` calls of ``fn`` (after one untimed call with ``warmup``), in seconds."""
    if warmup:
        fn()
    times = []
    for _ in range(repeats):
        start = timer()
        fn()
        times.append(timer() - start)
    return float(statistics.median(times))


def interleaved_medians(runs: dict, repeats: int, timer=time.perf_counter) -> dict:
    """``{name: median seconds}`` of the callables in ``runs``, sampled in turn so that load hits every one alike."""
    times = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = timer()
            run()
            times[name].append(timer() - start)
    return {name: float(statistics.median(t)) for name, t in times.items()}
