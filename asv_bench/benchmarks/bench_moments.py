"""Running moments: update + normalize of a float32 batch (VecNorm's hot path).

``impl`` is the implementation: numbarl, ``numpy_copyto`` (one read and one
write of the batch: the floor), gymnasium's and stable-baselines3's
``RunningMeanStd`` (update, then ``(x - mean) / sqrt(var + eps)``) and
TorchRL's ``VecNorm`` (``_call`` on a TensorDict, torch on one thread like
every other implementation here). Peers that cannot be imported are skipped
(NotImplementedError in setup).

Run as a script for a side-by-side table (timeit, median of repeats)::

    python asv_bench/benchmarks/bench_moments.py
"""
import os

import numpy as np

SHAPES = {"1024x64": (1024, 64), "1x3": (1, 3)}
IMPLS = ["numbarl", "numpy_copyto", "gymnasium", "sb3", "torchrl"]
EPS = 1e-8


def _data(shape):
    return np.random.default_rng(0).normal(3.0, 2.0, size=SHAPES[shape]).astype(np.float32)


def _numbarl(x):
    from numbarl.core.moments import moments_init, moments_update_normalize

    state = moments_init(x.shape[1:])
    loc, m2, weight, count = state.arrays
    out = np.empty_like(x)
    return lambda: moments_update_normalize(x, loc, m2, weight, count, 1.0, EPS, out)


def _numpy_copyto(x):
    out = np.empty_like(x)
    return lambda: np.copyto(out, x)


def _rms_peer(rms, x):
    def run():
        rms.update(x)
        return (x - rms.mean) / np.sqrt(rms.var + EPS)

    return run


def _gymnasium(x):
    try:
        from gymnasium.wrappers.utils import RunningMeanStd
    except ImportError as err:
        raise NotImplementedError(f"gymnasium is not installed: {err}") from None
    return _rms_peer(RunningMeanStd(shape=x.shape[1:]), x)


def _sb3(x):
    try:
        from stable_baselines3.common.running_mean_std import RunningMeanStd
    except ImportError as err:
        raise NotImplementedError(f"stable-baselines3 is not installed: {err}") from None
    return _rms_peer(RunningMeanStd(shape=x.shape[1:]), x)


def _torchrl(x):
    try:
        import warnings

        import torch
        from tensordict import TensorDict
        from torchrl.envs import VecNorm
    except ImportError as err:
        raise NotImplementedError(f"torchrl is not installed: {err}") from None
    torch.set_num_threads(1)  # every peer here runs on one thread
    obs = torch.from_numpy(x)
    td = TensorDict({"obs": obs}, batch_size=[x.shape[0]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        vecnorm = VecNorm(in_keys=["obs"], decay=1.0, eps=EPS)
    # _call replaces "obs" by the normalized tensor: put the raw batch back
    return lambda: vecnorm._call(td.set("obs", obs))


_MAKERS = {
    "numbarl": _numbarl,
    "numpy_copyto": _numpy_copyto,
    "gymnasium": _gymnasium,
    "sb3": _sb3,
    "torchrl": _torchrl,
}


class TimeUpdateNormalize:
    """One update + normalize of a [batch, features] float32 array."""

    params = (IMPLS, list(SHAPES))
    param_names = ["impl", "shape"]

    def setup(self, impl, shape):
        self.run = _MAKERS[impl](_data(shape))
        self.run()  # compile or load kernels, allocate lazily built state

    def time_update_normalize(self, impl, shape):
        self.run()


class TimeMomentKernels:
    """numbarl's public moments functions one by one."""

    params = (list(SHAPES),)
    param_names = ["shape"]

    def setup(self, shape):
        from numbarl.core import moments

        self.m = moments
        self.x = _data(shape)
        self.out = np.empty_like(self.x)
        self.state = moments.moments_init(self.x.shape[1:])
        self.other = moments.moments_init(self.x.shape[1:])
        moments.moments_update(self.x, *self.other.arrays)
        for method in (self.time_update, self.time_normalize, self.time_update_normalize_unchecked,
                       self.time_merge):
            method(shape)  # compile or load the kernels outside the timing

    def time_update(self, shape):
        self.m.moments_update(self.x, *self.state.arrays)

    def time_normalize(self, shape):
        s = self.state
        self.m.moments_normalize(self.x, s.loc, s.m2, s.weight, EPS, self.out)

    def time_update_normalize_unchecked(self, shape):
        self.m.moments_update_normalize_unchecked(self.x, *self.state.arrays, 1.0, EPS, self.out)

    def time_merge(self, shape):
        self.m.moments_merge(*self.state.arrays, *self.other.arrays)


def _side_by_side(repeat=101, sample_s=1e-3):
    """Print median times and ratios to numpy_copyto, all measured in this run.

    Samples are short (about ``sample_s`` each) and interleaved across the
    implementations, so that on a shared machine most of them run undisturbed
    and a change of load hits every implementation alike.
    """
    import platform
    import timeit

    print(f"machine: {platform.machine()}, {os.cpu_count()} cpus, load {os.getloadavg()[0]:.1f}, python {platform.python_version()}")
    for shape in SHAPES:
        runs = {}
        for impl in IMPLS:
            try:
                runs[impl] = _MAKERS[impl](_data(shape))
                runs[impl]()
            except NotImplementedError as err:
                print(f"{shape:8s} {impl:13s} skipped: {err}")
        number = {}
        for name, run in runs.items():
            once = min(timeit.repeat(run, number=5, repeat=5)) / 5
            number[name] = max(1, int(sample_s / max(once, 1e-8)))
        times = {name: [] for name in runs}
        for _ in range(repeat):
            for name, run in runs.items():
                times[name].append(timeit.timeit(run, number=number[name]) / number[name])
        floor = float(np.median(times["numpy_copyto"]))
        for name, t in times.items():
            med = float(np.median(t))
            print(f"{shape:8s} {name:13s} {med * 1e6:10.2f} us   {med / floor:7.2f} x copyto")


if __name__ == "__main__":
    _side_by_side()
