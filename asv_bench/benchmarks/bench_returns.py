"""Benchmarks of discounted reward-to-go.

Implementations side by side:

* ``numbarl``: :func:`numbarl.core.returns.reward_to_go` (Numba CPU kernel).
* ``torchrl``: ``torchrl.objectives.value.functional.reward2go`` (what
  ``Reward2GoTransform`` calls), on CPU tensors. The script below also times
  ``Reward2GoTransform.inv`` on a TensorDict (``torchrl_transform``).
* ``numpy_lfilter``: ``scipy.signal.lfilter`` over each episode reversed, the
  usual NumPy way to get a discounted cumulative sum. (A pure Python loop is
  left out: at ~100 ns per step it would only slow the suite down.)

Cases: one trajectory of 10**3, 10**5 and 10**6 steps, and a batch of 64
trajectories of 10**4 steps; float32 rewards, dones every 150 to 250 steps
plus one at the last step, gamma = 0.99.

Run as a script for a one-off side-by-side measurement (medians of repeats,
nanoseconds per step, and the ratios):

    python asv_bench/benchmarks/bench_returns.py
"""
import os

import numpy as np

try:
    from ._timing import median_seconds
except ImportError:  # run as a script from this folder
    from _timing import median_seconds

GAMMA = 0.99
CASES = {"T1e3": (1, 10**3), "T1e5": (1, 10**5), "T1e6": (1, 10**6), "B64xT1e4": (64, 10**4)}
IMPLS = ["numbarl", "torchrl", "numpy_lfilter"]


def make_case(case, seed=0):
    """Rewards and dones ``[B, T, 1]`` of a benchmark case."""
    n_batch, n_steps = CASES[case]
    rng = np.random.default_rng(seed)
    reward = rng.standard_normal((n_batch, n_steps, 1)).astype(np.float32)
    done = np.zeros((n_batch, n_steps, 1), dtype=bool)
    for b in range(n_batch):
        # Episode lengths uniform in [150, 250]: torchrl pads every episode to
        # the longest one, so unbounded (geometric) lengths would cost it far
        # more than the typical ~390 ns per step.
        ends = np.cumsum(rng.integers(150, 251, size=n_steps // 150 + 1)) - 1
        done[b, ends[ends < n_steps], 0] = True
    done[:, -1] = True
    return reward, done


def lfilter_reward_to_go(reward, done, gamma):
    """Reward-to-go of ``[B, T, 1]`` arrays with one lfilter call per episode."""
    from scipy.signal import lfilter

    out = np.empty_like(reward)
    denominator = np.array([1.0, -gamma])
    numerator = np.array([1.0])
    for b in range(reward.shape[0]):
        r = reward[b, :, 0]
        o = out[b, :, 0]
        start = 0
        for end in np.flatnonzero(done[b, :, 0]) + 1:
            o[start:end] = lfilter(numerator, denominator, r[start:end][::-1])[::-1]
            start = end
        if start < r.shape[0]:
            o[start:] = lfilter(numerator, denominator, r[start:][::-1])[::-1]
    return out


def make_runner(impl, reward, done, gamma=GAMMA):
    """A no-argument callable computing the reward-to-go with ``impl``.

    Raises NotImplementedError when the implementation is not installed.
    """
    if impl == "numbarl":
        from numbarl.core.returns import reward_to_go

        out = np.empty_like(reward)
        return lambda: reward_to_go(reward, done, gamma, out=out)
    if impl == "numbarl_parallel":
        from numbarl.core import returns

        out = np.empty_like(reward)

        def run():
            threshold = returns.PARALLEL_MIN_STEPS
            returns.PARALLEL_MIN_STEPS = 0
            try:
                returns.reward_to_go(reward, done, gamma, out=out)
            finally:
                returns.PARALLEL_MIN_STEPS = threshold

        return run
    if impl == "torchrl":
        try:
            import torch
            from torchrl.objectives.value.functional import reward2go
        except ImportError:
            raise NotImplementedError("torchrl is not installed") from None
        reward_t = torch.from_numpy(reward)
        done_t = torch.from_numpy(done)
        return lambda: reward2go(reward_t, done_t, gamma)
    if impl == "torchrl_transform":
        try:
            import torch
            from tensordict import TensorDict
            from torchrl.envs import Reward2GoTransform
        except ImportError:
            raise NotImplementedError("torchrl is not installed") from None
        td = TensorDict(
            {"next": {"reward": torch.from_numpy(reward), "done": torch.from_numpy(done)}},
            batch_size=reward.shape[:2],
        )
        transform = Reward2GoTransform(gamma=gamma, out_keys=["reward_to_go"])
        return lambda: transform.inv(td)
    if impl == "numpy_lfilter":
        try:
            import scipy.signal  # noqa: F401
        except ImportError:
            raise NotImplementedError("scipy is not installed") from None
        return lambda: lfilter_reward_to_go(reward, done, gamma)
    raise ValueError(f"unknown impl {impl!r}")


class RewardToGo:
    """Reward-to-go on the CPU, per implementation."""

    params = (list(CASES), IMPLS)
    param_names = ["case", "impl"]
    timeout = 300

    def setup(self, case, impl):
        reward, done = make_case(case)
        self.run = make_runner(impl, reward, done)
        self.run()  # compile / warm up

    def time_reward_to_go(self, case, impl):
        self.run()


def _cuda_or_skip():
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        raise NotImplementedError("the CUDA simulator is not benchmarked")
    try:
        from numba import cuda
    except ImportError:
        raise NotImplementedError("numba.cuda is not installed") from None
    if not cuda.is_available():
        raise NotImplementedError("no CUDA GPU available")
    return cuda


class RewardToGoCUDA:
    """Reward-to-go on the GPU (numba.cuda twin), one thread per trajectory."""

    params = list(CASES)
    param_names = ["case"]
    timeout = 300

    def setup(self, case):
        cuda = _cuda_or_skip()
        from numbarl.core.cuda.returns import reward_to_go

        reward, done = make_case(case)
        self.cuda = cuda
        self.reward = cuda.to_device(reward)
        self.done = cuda.to_device(done)
        self.out = cuda.device_array_like(self.reward)
        self.reward_to_go = reward_to_go
        self.time_reward_to_go(case)

    def time_reward_to_go(self, case):
        self.reward_to_go(self.reward, self.done, GAMMA, out=self.out, open_end="truncate")
        self.cuda.synchronize()


_median_seconds = median_seconds


def main():
    """Measure every implementation side by side; print ns per step and ratios.

    numbarl is measured first for every case: torch's OpenMP threads keep
    spinning for a while after a call and would take the cores from numbarl's
    threads. ``numbarl_parallel`` is the same call with the thread pool forced
    on (``PARALLEL_MIN_STEPS = 0``); it only pays where the cores are free.
    """
    import platform

    print(f"machine: {platform.machine()}, {os.cpu_count()} cpus; medians of repeats")
    impls = ("numbarl", "numbarl_parallel", "numpy_lfilter", "torchrl", "torchrl_transform")
    repeats = {"numbarl": 21, "numbarl_parallel": 21, "numpy_lfilter": 7, "torchrl": 7, "torchrl_transform": 7}
    cases = ("T1e6", "B64xT1e4")
    data = {case: make_case(case) for case in cases}
    per_step = {case: {} for case in cases}
    for impl in impls:
        for case in cases:
            reward, done = data[case]
            try:
                run = make_runner(impl, reward, done)
            except NotImplementedError as skip:
                print(f"{case:9s} {impl:18s} skipped: {skip}")
                continue
            run()
            per_step[case][impl] = _median_seconds(run, repeats[impl]) / reward.size * 1e9
            print(f"{case:9s} {impl:18s} {per_step[case][impl]:10.2f} ns/step")
    for case in cases:
        base = per_step[case].get("numbarl")
        for impl, value in per_step[case].items():
            if base and impl != "numbarl":
                print(f"{case:9s} {impl} / numbarl = {value / base:.0f}x")


if __name__ == "__main__":
    main()
