"""Benchmarks of n-step returns (``MultiStepTransform``).

Implementations side by side, on a stored batch of ``B`` trajectories of
``T`` steps (observation of 4 floats, float32 rewards, episodes of 150 to
250 steps, n_steps = 3, gamma = 0.99):

* ``numbarl``: :func:`numbarl.core.nstep.n_step_returns` (the kernel alone).
* ``numbarl_transform``: ``numbarl.torch_api.MultiStepTransform.inv`` on a
  TensorDict (kernel plus the gather of the ``"next"`` entries).
* ``torchrl_transform``: ``torchrl.envs.MultiStepTransform.inv`` on the same
  TensorDict.

The transforms are called again and again on the same batch: each call
prepends the ``n_steps`` steps kept from the previous one, as in a replay
buffer fed by a collector.

Run as a script for a one-off side-by-side measurement (medians of repeats,
nanoseconds per step, and the ratios):

    python asv_bench/benchmarks/bench_nstep.py
"""
import numpy as np

try:
    from ._timing import median_seconds
except ImportError:  # run as a script from this folder
    from _timing import median_seconds

N_STEPS = 3
GAMMA = 0.99
CASES = {"B1xT1e3": (1, 10**3), "B16xT1e3": (16, 10**3), "B64xT1e4": (64, 10**4)}
IMPLS = ["numbarl", "numbarl_transform", "torchrl_transform"]


def make_case(case, seed=0):
    """Rewards, dones ``[B, T, 1]`` and observations ``[B, T, 4]`` of a benchmark case."""
    n_batch, n_steps = CASES[case]
    rng = np.random.default_rng(seed)
    reward = rng.standard_normal((n_batch, n_steps, 1)).astype(np.float32)
    obs = rng.standard_normal((n_batch, n_steps, 4)).astype(np.float32)
    done = np.zeros((n_batch, n_steps, 1), dtype=bool)
    for b in range(n_batch):
        ends = np.cumsum(rng.integers(150, 251, size=n_steps // 150 + 1)) - 1
        done[b, ends[ends < n_steps], 0] = True
    return reward, done, obs


def make_runner(impl, reward, done, obs):
    """A no-argument callable computing the n-step returns with ``impl``.

    Raises NotImplementedError when the implementation is not installed.
    """
    if impl == "numbarl":
        from numbarl.core.nstep import n_step_returns

        flags = done[..., 0]
        out = np.empty_like(reward)
        steps = np.empty(flags.shape, np.int64)
        nxt = np.empty(flags.shape, np.int64)
        return lambda: n_step_returns(flags, N_STEPS, GAMMA, reward=reward, steps_out=steps, next_out=nxt,
                                      reward_out=out)
    try:
        import torch
        from tensordict import TensorDict
    except ImportError:
        raise NotImplementedError("torch / tensordict are not installed") from None
    if impl == "numbarl_transform":
        from numbarl.torch_api import MultiStepTransform
    elif impl == "torchrl_transform":
        try:
            from torchrl.envs import MultiStepTransform
        except ImportError:
            raise NotImplementedError("torchrl is not installed") from None
    else:
        raise ValueError(f"unknown impl {impl!r}")
    done_t = torch.from_numpy(done)
    td = TensorDict({"observation": torch.from_numpy(obs), "next": {
        "observation": torch.from_numpy(obs), "reward": torch.from_numpy(reward), "done": done_t,
        "terminated": done_t.clone(), "truncated": torch.zeros_like(done_t)}}, batch_size=reward.shape[:2])
    transform = MultiStepTransform(N_STEPS, GAMMA)
    transform.inv(td)
    return lambda: transform.inv(td)


class NStep:
    """n-step returns on the CPU, per implementation."""

    params = (list(CASES), IMPLS)
    param_names = ["case", "impl"]
    timeout = 300

    def setup(self, case, impl):
        self.run = make_runner(impl, *make_case(case))
        self.run()  # compile / warm up

    def time_n_step(self, case, impl):
        self.run()


def main():
    """Measure every implementation side by side; print ns per step and ratios."""
    import os
    import platform

    print(f"machine: {platform.machine()}, {os.cpu_count()} cpus; medians of repeats")
    repeats = {"numbarl": 21, "numbarl_transform": 21, "torchrl_transform": 7}
    per_step = {case: {} for case in CASES}
    for impl in IMPLS:
        for case in CASES:
            reward, done, obs = make_case(case)
            try:
                run = make_runner(impl, reward, done, obs)
            except NotImplementedError as skip:
                print(f"{case:9s} {impl:18s} skipped: {skip}")
                continue
            run()
            per_step[case][impl] = median_seconds(run, repeats[impl]) / reward.size * 1e9
            print(f"{case:9s} {impl:18s} {per_step[case][impl]:10.2f} ns/step")
    for case in CASES:
        base = per_step[case].get("numbarl_transform")
        theirs = per_step[case].get("torchrl_transform")
        if base and theirs:
            print(f"{case:9s} torchrl_transform / numbarl_transform = {theirs / base:.1f}x")


if __name__ == "__main__":
    main()
