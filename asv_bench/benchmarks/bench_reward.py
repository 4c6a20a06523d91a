"""Benchmarks of the reward and episode transforms.

* ``EpisodeStatsRollout``: ``RewardSum`` + ``StepCounter(max_steps=100)`` in a
  ``TransformedEnv(GymEnv("Pendulum-v1"))`` rollout of 1000 steps (episodes
  truncated every 100 steps, so resets happen), numbarl (array path) against
  torchrl 0.14.1, and the same rollout without the transforms as a baseline
  (``bare`` cases) to show what the transforms themselves cost.
* ``Reward2Go``: ``Reward2GoTransform(0.99).inv`` on stored trajectories of
  shape [64, 10**4, 1] (dones every 150 to 250 steps plus one at the end),
  numbarl against torchrl 0.14.1.

Run as a script for a one-off side-by-side measurement (medians of repeats):

    python asv_bench/benchmarks/bench_reward.py
"""

import numpy as np

try:
    from ._timing import median_seconds
except ImportError:  # run as a script from this folder
    from _timing import median_seconds

ROLLOUT_STEPS = 1000
IMPLS = ["numbarl", "torchrl"]


def _lib(impl):
    if impl == "numbarl":
        import numbarl.torch_api as lib

        return lib
    try:
        import torchrl.envs as lib
    except ImportError:
        raise NotImplementedError("torchrl is not installed") from None
    return lib


def make_rollout(impl, transforms=True, steps=ROLLOUT_STEPS):
    """A no-argument callable running a Pendulum rollout of ``steps`` steps with fixed actions."""
    import torch

    lib = _lib(impl)
    base = lib.GymEnv("Pendulum-v1")
    if transforms:
        env = lib.TransformedEnv(base, lib.Compose(lib.RewardSum(), lib.StepCounter(max_steps=100)))
    else:
        env = lib.TransformedEnv(base)
    actions = [torch.tensor([float(np.sin(i))]) for i in range(steps)]

    def run():
        env.set_seed(0)
        return env.rollout(steps, actions=actions, break_when_any_done=False)

    return run


def make_trajectories(n_batch=64, n_steps=10**4, seed=0):
    """Rewards and dones ``[B, T, 1]`` as a TensorDict laid out like a collector's batch."""
    import torch
    from tensordict import TensorDict

    rng = np.random.default_rng(seed)
    reward = rng.standard_normal((n_batch, n_steps, 1)).astype(np.float32)
    done = np.zeros((n_batch, n_steps, 1), dtype=bool)
    for b in range(n_batch):
        ends = np.cumsum(rng.integers(150, 251, size=n_steps // 150 + 1)) - 1
        done[b, ends[ends < n_steps], 0] = True
    done[:, -1] = True
    return TensorDict({"next": {"reward": torch.from_numpy(reward), "done": torch.from_numpy(done)}},
                      [n_batch, n_steps])


def make_reward2go(impl, td=None):
    """A no-argument callable computing the reward-to-go of ``td`` with ``impl``'s transform."""
    lib = _lib(impl)
    td = make_trajectories() if td is None else td
    transform = lib.Reward2GoTransform(gamma=0.99, out_keys=["reward_to_go"])
    return lambda: transform.inv(td)


class EpisodeStatsRollout:
    """RewardSum + StepCounter in a 1000-step Pendulum rollout (``bare``: no transforms)."""

    params = (["transforms", "bare"], IMPLS)
    param_names = ["case", "impl"]
    timeout = 300

    def setup(self, case, impl):
        self.run = make_rollout(impl, transforms=case == "transforms")
        self.run()  # warm up (compilation, spec caches)

    def time_rollout(self, case, impl):
        self.run()


class Reward2Go:
    """Reward2GoTransform.inv on [64, 10**4, 1] stored rewards."""

    params = IMPLS
    param_names = ["impl"]
    timeout = 300

    def setup(self, impl):
        self.run = make_reward2go(impl)
        self.run()

    def time_inv(self, impl):
        self.run()


_median_seconds = median_seconds


def main():
    """Measure each case side by side and print medians and ratios."""
    import os
    import platform

    print(f"machine: {platform.machine()}, {os.cpu_count()} cpus; medians of repeats")
    results = {}
    for case in ("transforms", "bare"):
        for impl in IMPLS:
            run = make_rollout(impl, transforms=case == "transforms")
            run()
            results[(case, impl)] = _median_seconds(run, 7)
            per_step = results[(case, impl)] / ROLLOUT_STEPS * 1e6
            print(f"rollout {case:10s} {impl:8s} {results[(case, impl)] * 1e3:9.2f} ms  ({per_step:.1f} us/step)")
        ratio = results[(case, "torchrl")] / results[(case, "numbarl")]
        print(f"rollout {case:10s} torchrl / numbarl = {ratio:.1f}x")
    cost = {impl: (results[("transforms", impl)] - results[("bare", impl)]) / ROLLOUT_STEPS * 1e6 for impl in IMPLS}
    print(f"transforms' own cost per step: numbarl {cost['numbarl']:.1f} us, torchrl {cost['torchrl']:.1f} us")
    td = make_trajectories()
    r2g = {}
    for impl in IMPLS:
        run = make_reward2go(impl, td)
        run()
        r2g[impl] = _median_seconds(run, 7)
        print(f"reward2go [64, 1e4] {impl:8s} {r2g[impl] * 1e3:9.2f} ms  ({r2g[impl] / td.numel() * 1e9:.1f} ns/step)")
    print(f"reward2go torchrl / numbarl = {r2g['torchrl'] / r2g['numbarl']:.1f}x")


if __name__ == "__main__":
    main()
