"""Slow, obvious references for ``numbarl.core.moments``.

Everything here is plain NumPy or pure Python in float64, written for
clarity, not speed. ``locked_update_worker`` and ``attach_and_increment`` are
process workloads of the shared-statistics tests; they live here so that
spawned processes can import them by name (the tests directory is on their
``sys.path``, a test module is not importable there).
"""
import numpy as np


def naive_mean_var(x, feature_ndim):
    """np.mean / np.var over all batch dimensions of x, in float64."""
    x = np.asarray(x, dtype=np.float64)
    batch_axes = tuple(range(x.ndim - feature_ndim))
    return np.mean(x, axis=batch_axes), np.var(x, axis=batch_axes)


def naive_ema(samples, decay):
    """Bias-corrected exponential moving averages, one sample at a time.

    For every sample x (a sequence of floats), in pure Python:
    ``a = decay * a + (1 - decay) * x`` and ``b = decay * b + (1 - decay) * x**2``;
    after t samples the mean is ``a / (1 - decay**t)`` and the variance
    ``b / (1 - decay**t) - mean**2``. With decay == 1 the plain running mean
    of x and of x**2 is used instead. Returns (mean, var) as float64 arrays.
    """
    a = b = None
    t = 0
    for x in samples:
        x = [float(v) for v in np.ravel(x)]
        t += 1
        if a is None:
            a = [0.0] * len(x)
            b = [0.0] * len(x)
        for j, v in enumerate(x):
            if decay == 1.0:
                a[j] += (v - a[j]) / t
                b[j] += (v * v - b[j]) / t
            else:
                a[j] = decay * a[j] + (1.0 - decay) * v
                b[j] = decay * b[j] + (1.0 - decay) * v * v
    corr = 1.0 if decay == 1.0 else 1.0 - decay**t
    mean = [v / corr for v in a]
    var = [bj / corr - mj * mj for bj, mj in zip(b, mean)]
    return np.array(mean), np.array(var)


def naive_weighted(x, weights):
    """Weighted mean and variance over the rows of x (n, F), by definition."""
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    mean = np.sum(w[:, None] * x, axis=0) / np.sum(w)
    var = np.sum(w[:, None] * (x - mean) ** 2, axis=0) / np.sum(w)
    return mean, var


def ema_weights(batch_sizes, decay):
    """Weight of every sample after updates with these batch sizes.

    A sample of update k (of K) has weight ``decay ** (K - 1 - k)``.
    """
    k = len(batch_sizes)
    return np.concatenate([np.full(n, decay ** (k - 1 - i)) for i, n in enumerate(batch_sizes)])


def worker_data(seed, n, features):
    """Samples of one worker: n rows of ``features`` values, mean 5, std 2."""
    return np.random.default_rng(seed).normal(5.0, 2.0, size=(n, features))


def locked_update_worker(name, seed, n, features, barrier=None):
    """Attach the shared block ``name`` and merge worker_data row by row, locked.

    With a ``barrier`` all workers start updating together (after importing
    and warming up), so that their updates overlap.
    """
    from numbarl.core.moments import moments_init, moments_update
    from numbarl.core.shared import SharedArrays

    shared = SharedArrays.attach(name)
    data = worker_data(seed, n, features)
    moments_update(data[:1], *moments_init((features,)).arrays)  # load the kernels
    loc, m2, weight, count = shared["loc"], shared["m2"], shared["weight"], shared["count"]
    if barrier is not None:
        barrier.wait()
    for i in range(n):
        with shared.lock():
            moments_update(data[i : i + 1], loc, m2, weight, count)
    shared.close()


def attach_and_increment(name):
    """Attach ``name``, add one to its "count" and exit without closing."""
    from numbarl.core.shared import SharedArrays

    SharedArrays.attach(name)["count"][0] += 1
