"""Batched envs: 8 Pendulum-v1 envs with observation normalization, stepped as one batch.

``mode`` is ``serial`` (in this process) or ``parallel`` (worker processes);
``impl`` is numbarl (``SerialEnv`` / ``ParallelEnv`` of ``EnvCreator``, with
``VecNorm`` over the batch), TorchRL 0.14.1 (the same classes and
arguments) or gymnasium (``SyncVectorEnv`` / ``AsyncVectorEnv`` with the
vector ``NormalizeObservation`` wrapper). numbarl and TorchRL roll out with
random actions from the action spec, gymnasium steps precomputed random
actions; every implementation resets finished episodes automatically.
``track_steps_per_second`` reports env steps per second (8 per batch step).
Without a ``VecNorm`` in numbarl the rows run without normalization (for
every implementation, so the ratios stay fair). Peers that cannot be
imported are skipped (NotImplementedError in setup).

Run as a script for a side-by-side table (medians of repeats)::

    python asv_bench/benchmarks/bench_batched.py
"""
import functools
import time
import warnings

import numpy as np

NUM_ENVS = 8
STEPS = 500  # batch steps per timed rollout
ENV_ID = "Pendulum-v1"


def _normalize() -> bool:
    import numbarl.torch_api as api

    return hasattr(api, "VecNorm")


def _torch_style(impl, mode):
    warnings.filterwarnings("ignore")
    if impl == "numbarl":
        import numbarl.torch_api as lib
    else:
        try:
            import torchrl.envs as lib
        except ImportError as err:
            raise NotImplementedError(f"torchrl is not installed: {err}") from None
    creator = lib.EnvCreator(functools.partial(lib.GymEnv, ENV_ID))
    cls = lib.SerialEnv if mode == "serial" else lib.ParallelEnv
    env = cls(NUM_ENVS, creator)
    if _normalize():
        env = env.append_transform(lib.VecNorm(in_keys=["observation"]))
    else:
        env = lib.TransformedEnv(env)
    env.set_seed(0)
    env.rollout(10, break_when_any_done=False)
    return env, lambda: env.rollout(STEPS, break_when_any_done=False)


def _gymnasium(mode):
    import gymnasium
    from gymnasium.vector import AsyncVectorEnv, SyncVectorEnv

    cls = SyncVectorEnv if mode == "serial" else AsyncVectorEnv
    env = cls([functools.partial(gymnasium.make, ENV_ID)] * NUM_ENVS)
    if _normalize():
        from gymnasium.wrappers.vector import NormalizeObservation

        env = NormalizeObservation(env)
    env.reset(seed=0)
    actions = np.random.default_rng(0).uniform(-2, 2, size=(STEPS, NUM_ENVS, 1)).astype(np.float32)

    def run():
        for t in range(STEPS):
            env.step(actions[t])

    return env, run


class BatchedPendulum:
    params = (["serial", "parallel"], ["numbarl", "torchrl", "gymnasium"])
    param_names = ["mode", "impl"]
    timeout = 300

    def setup(self, mode, impl):
        self.env, self.run = _gymnasium(mode) if impl == "gymnasium" else _torch_style(impl, mode)

    def time_rollout(self, mode, impl):
        self.run()

    def track_steps_per_second(self, mode, impl):
        start = time.perf_counter()
        self.run()
        return NUM_ENVS * STEPS / (time.perf_counter() - start)

    track_steps_per_second.unit = "steps/s"

    def teardown(self, mode, impl):
        self.env.close()


NESTED = (2, 4)  # ParallelEnv(2, SerialEnv(4, ...)): 8 envs, 4 per worker process


def _nested_step_counter(impl):
    """``ParallelEnv(2, SerialEnv(4, TransformedEnv(GymEnv, StepCounter())))``: sub-envs with a state input."""
    warnings.filterwarnings("ignore")
    if impl == "numbarl":
        import numbarl.torch_api as lib
    else:
        try:
            import torchrl.envs as lib
        except ImportError as err:
            raise NotImplementedError(f"torchrl is not installed: {err}") from None
    outer, inner = NESTED
    make = functools.partial(_counted, impl)
    env = lib.ParallelEnv(outer, functools.partial(lib.SerialEnv, inner, make))
    env.set_seed(0)
    env.rollout(10, break_when_any_done=False)
    return env, lambda: env.rollout(STEPS, break_when_any_done=False)


def _counted(impl):
    if impl == "numbarl":
        import numbarl.torch_api as lib
    else:
        import torchrl.envs as lib
    return lib.TransformedEnv(lib.GymEnv(ENV_ID), lib.StepCounter())


class NestedStepCounter:
    """Sub-envs whose ``step_count`` is a state input, nested ``ParallelEnv(2, SerialEnv(4))``."""

    params = (["numbarl", "torchrl"],)
    param_names = ["impl"]
    timeout = 300

    def setup(self, impl):
        self.env, self.run = _nested_step_counter(impl)

    def time_rollout(self, impl):
        self.run()

    def track_steps_per_second(self, impl):
        start = time.perf_counter()
        self.run()
        return NESTED[0] * NESTED[1] * STEPS / (time.perf_counter() - start)

    track_steps_per_second.unit = "steps/s"

    def teardown(self, impl):
        self.env.close()


def main(repeats: int = 7) -> None:
    """Print env steps per second (median of ``repeats`` rollouts) for every row, side by side.

    The implementations of one mode are set up together and timed in turn,
    repeat after repeat, so that a change in the machine's load hits them alike.
    """
    rows = {}
    for mode in BatchedPendulum.params[0]:
        benches = {}
        for impl in BatchedPendulum.params[1]:
            bench = BatchedPendulum()
            try:
                bench.setup(mode, impl)
            except NotImplementedError as err:
                print(f"{mode:8s} {impl:9s} skipped: {err}")
                continue
            benches[impl] = bench
        try:
            rates = {impl: [] for impl in benches}
            for _ in range(repeats):
                for impl, bench in benches.items():
                    rates[impl].append(bench.track_steps_per_second(mode, impl))
        finally:
            for impl, bench in benches.items():
                bench.teardown(mode, impl)
        for impl, r in rates.items():
            rows[mode, impl] = float(np.median(r))
            print(f"{mode:8s} {impl:9s} {rows[mode, impl]:>10,.0f} steps/s", flush=True)
    print(f"\n{NUM_ENVS} x {ENV_ID}, normalization: {_normalize()}; "
          f"medians of {repeats} rollouts of {STEPS} batch steps")
    for mode in BatchedPendulum.params[0]:
        base = rows.get((mode, "numbarl"))
        for impl in ("torchrl", "gymnasium"):
            if base and rows.get((mode, impl)):
                print(f"{mode}: numbarl / {impl} = {base / rows[mode, impl]:.2f}x")


if __name__ == "__main__":
    main()
