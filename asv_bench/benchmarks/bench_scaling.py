"""Collection that scales with cores: env steps/s of 8, 64 and 256 Pendulum-v1 envs with observation normalization.

``impl`` is the layout:

- ``numbarl`` (the base of the ratios): ``ParallelEnv(w, lambda: SerialEnv(n // w, ...))``, nested,
  with ``w`` = cores;
- ``numbarl_one_per_worker``: ``ParallelEnv(n, ..., num_processes=n)``, one env per worker process;
- ``numbarl_pool``: ``AsyncEnvPool`` (multiprocessing, ``envs_per_worker = n / cores``);
- ``gymnasium``: ``AsyncVectorEnv`` (one process per env) with the vector ``NormalizeObservation``;
- ``torchrl_parallel`` / ``torchrl_pool``: TorchRL 0.14.1's ``ParallelEnv`` (one env per worker)
  and ``AsyncEnvPool`` (skipped: TorchRL 0.14.1's pool does not roll out with a transform appended);
- ``envpool``: EnvPool's ``Pendulum-v1`` (C++ envs, ``num_threads`` = cores), where it installs.

numbarl and TorchRL rows add ``VecNorm`` over the observation and roll out with
random actions from the action spec; gymnasium and EnvPool step precomputed
random actions. Every row resets finished episodes automatically. Layouts
with one process per env are skipped above ``MAX_PROCESS_PER_ENV`` envs (256
processes would take most of the run to start). Peers that cannot be
imported are skipped (NotImplementedError in setup, with the reason).

``limit`` is the number of cores times one core's bare gymnasium rate (one
``gymnasium.make("Pendulum-v1")`` stepped in a Python loop), measured in
the same run. ``asv_bench/scaling.py`` prints the whole table.
"""
from __future__ import annotations

import functools
import os
import time
import warnings

import numpy as np

ENV_ID = "Pendulum-v1"
NUM_ENVS = (8, 64, 256)
IMPLS = ("numbarl", "numbarl_pool", "numbarl_one_per_worker", "gymnasium", "torchrl_parallel", "torchrl_pool",
         "envpool")
MAX_PROCESS_PER_ENV = 64
TARGET_STEPS = 40_000  # env steps per timed rollout (fewer batch steps for more envs)


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def batch_steps(n: int) -> int:
    return max(20, TARGET_STEPS // n)


def bare_gymnasium_rate(steps: int = 30_000) -> float:
    """One Pendulum-v1 stepped in a plain loop on one core: env steps per second."""
    import gymnasium

    env = gymnasium.make(ENV_ID)
    env.reset(seed=0)
    actions = np.random.default_rng(0).uniform(-2, 2, size=(steps, 1)).astype(np.float32)
    start = time.perf_counter()
    for a in actions:
        _, _, terminated, truncated, _ = env.step(a)
        if terminated or truncated:
            env.reset()
    rate = steps / (time.perf_counter() - start)
    env.close()
    return rate


def _split(n: int) -> tuple:
    """(workers, envs per worker) with workers <= cores and every worker holding the same number of envs."""
    w = min(cores(), n)
    while n % w:
        w -= 1
    return w, n // w


def _numbarl(impl: str, n: int):
    import numbarl.torch_api as lib

    make = functools.partial(lib.GymEnv, ENV_ID)
    if impl == "numbarl_one_per_worker":
        if n > MAX_PROCESS_PER_ENV:
            raise NotImplementedError(f"one process per env: {n} processes (more than {MAX_PROCESS_PER_ENV})")
        env = lib.ParallelEnv(n, make, num_processes=n)
    elif impl == "numbarl":
        w, k = _split(n)
        env = lib.ParallelEnv(w, functools.partial(lib.SerialEnv, k, make))
    else:
        w, k = _split(n)
        env = lib.AsyncEnvPool([make] * n, backend="multiprocessing", envs_per_worker=k)
    return env.append_transform(lib.VecNorm(in_keys=["observation"]))


def _torchrl(impl: str, n: int):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import torchrl.envs as lib
    except ImportError as err:
        raise NotImplementedError(f"torchrl is not installed: {err}") from None
    make = functools.partial(lib.GymEnv, ENV_ID)
    if impl == "torchrl_parallel":
        if n > MAX_PROCESS_PER_ENV:
            raise NotImplementedError(f"one process per env: {n} processes (more than {MAX_PROCESS_PER_ENV})")
        env = lib.ParallelEnv(n, make)
    else:
        # Measured on the 2-core VM: with exchange="shm" and VecNorm appended, TorchRL 0.14.1's rollout
        # raises KeyError('key "reward" not found'); with its default exchange 40,000 steps take about
        # 110 s (430x numbarl) and 8 envs fail with "received 0 items of ancdata".
        raise NotImplementedError("TorchRL 0.14.1's AsyncEnvPool does not roll out with a transform appended "
                                  "(KeyError with exchange='shm'; about 110 s per 40,000 steps and fd-passing "
                                  "errors with its default exchange)")
    return env.append_transform(lib.VecNorm(in_keys=["observation"]))


def _torch_style(impl: str, n: int):
    warnings.filterwarnings("ignore")
    env = _numbarl(impl, n) if impl.startswith("numbarl") else _torchrl(impl, n)
    steps = batch_steps(n)
    env.rollout(3, break_when_any_done=False)
    return env, lambda: env.rollout(steps, break_when_any_done=False), n * steps


def _gymnasium(n: int):
    import gymnasium
    from gymnasium.vector import AsyncVectorEnv
    from gymnasium.wrappers.vector import NormalizeObservation

    if n > MAX_PROCESS_PER_ENV:
        raise NotImplementedError(f"one process per env: {n} processes (more than {MAX_PROCESS_PER_ENV})")
    env = NormalizeObservation(AsyncVectorEnv([functools.partial(gymnasium.make, ENV_ID)] * n))
    env.reset(seed=0)
    steps = batch_steps(n)
    actions = np.random.default_rng(0).uniform(-2, 2, size=(steps, n, 1)).astype(np.float32)

    def run():
        for a in actions:
            env.step(a)

    return env, run, n * steps


def _envpool(n: int):
    try:
        import envpool
    except ImportError as err:
        raise NotImplementedError(f"envpool is not installed ({err}); `pip install envpool` where a wheel "
                                  "exists for this Python") from None
    env = envpool.make_gymnasium(ENV_ID, num_envs=n, num_threads=min(cores(), n), seed=0)
    env.reset()
    steps = batch_steps(n)
    actions = np.random.default_rng(0).uniform(-2, 2, size=(steps, n, 1)).astype(np.float32)
    mean, var, count = np.zeros(3), np.ones(3), 1e-4

    def run():
        nonlocal mean, var, count
        for a in actions:
            obs = env.step(a)[0]
            # the normalization the other rows do (running moments over the batch), in NumPy
            bm, bv, bn = obs.mean(0), obs.var(0), obs.shape[0]
            delta, tot = bm - mean, count + bn
            mean = mean + delta * bn / tot
            var = (var * count + bv * bn + delta**2 * count * bn / tot) / tot
            count = tot
            (obs - mean) / np.sqrt(var + 1e-8)

    return env, run, n * steps


def make(impl: str, n: int):
    """``(env, run, env steps per run)`` for one row; NotImplementedError (with the reason) to skip it."""
    if impl == "gymnasium":
        return _gymnasium(n)
    if impl == "envpool":
        return _envpool(n)
    return _torch_style(impl, n)


class ScalingPendulum:
    params = (list(NUM_ENVS), list(IMPLS))
    param_names = ["num_envs", "impl"]
    timeout = 600

    def setup(self, num_envs, impl):
        self.env, self.run, self.steps = make(impl, num_envs)

    def time_rollout(self, num_envs, impl):
        self.run()

    def track_steps_per_second(self, num_envs, impl):
        start = time.perf_counter()
        self.run()
        return self.steps / (time.perf_counter() - start)

    track_steps_per_second.unit = "steps/s"

    def teardown(self, num_envs, impl):
        self.env.close()


class BareGymnasium:
    """The limit's basis: one core's bare gymnasium Pendulum rate."""

    def track_steps_per_second(self):
        return bare_gymnasium_rate()

    track_steps_per_second.unit = "steps/s"


class CommandRoundTrip:
    """The parent commands a step of every worker and waits until all are done (one Pendulum step each).

    The cost of one batch step beyond the envs' own work: before the command
    words it was a pipe message and reply per worker.
    """

    params = [2, 4]
    param_names = ["workers"]
    timeout = 120

    def setup(self, workers):
        import numbarl.torch_api as lib

        self.env = lib.ParallelEnv(workers, functools.partial(lib.GymEnv, ENV_ID), num_processes=workers)
        self.env.reset()

    def time_round_trip(self, workers):
        self.env._run_step()

    def teardown(self, workers):
        self.env.close()
