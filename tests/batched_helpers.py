"""Envs, transforms and process checks for the batched-env tests.

They live in a plain module (importable as ``batched_helpers`` from the tests
directory, which conftest puts on ``sys.path``) so worker processes can
unpickle them by reference.
"""
from __future__ import annotations

import functools
import gc
import multiprocessing
import os
import time

import numpy as np
import torch
from numbarl.core.shared import SharedArrays
from numbarl.torch_api import Composite, EnvBase, GymEnv, Transform, Unbounded
from tensordict import TensorDict

make_pendulum = functools.partial(GymEnv, "Pendulum-v1")
make_cartpole = functools.partial(GymEnv, "CartPole-v1")


class Tiny(EnvBase):
    """A counter env with only the TensorDict API (no array protocol); done every ``horizon`` steps."""

    def __init__(self, horizon: int = 5, offset: float = 0.0):
        super().__init__()
        self.horizon, self.offset = horizon, offset
        self.observation_spec = Composite(observation=Unbounded((2,), dtype=torch.float64))
        self.action_spec = Unbounded((1,))
        self.reward_spec = Unbounded((1,))
        self.t = 0
        self.seed = None

    def _reset(self, td, **kwargs):
        self.t = 0
        return TensorDict({"observation": torch.tensor([self.offset, 0.0], dtype=torch.float64)}, [])

    def _step(self, td):
        self.t += 1
        a = float(td["action"][0])
        return TensorDict({"observation": torch.tensor([self.offset + self.t, a], dtype=torch.float64),
                           "reward": torch.tensor([a * self.t]),
                           "done": torch.tensor([self.t >= self.horizon])}, [])

    def _set_seed(self, seed):
        self.seed = seed


class FailAfter(GymEnv):
    """Pendulum whose ``fail_at``-th step raises ValueError."""

    def __init__(self, fail_at: int = 3):
        super().__init__("Pendulum-v1")
        self.fail_at, self.n = fail_at, 0

    def _np_step(self, action):
        self.n += 1
        if self.n >= self.fail_at:
            raise ValueError(f"boom at step {self.n}")
        return super()._np_step(action)


class SlowStep(GymEnv):
    """Pendulum whose steps sleep ``delay`` seconds."""

    def __init__(self, delay: float = 5.0):
        super().__init__("Pendulum-v1")
        self.delay = delay

    def _np_step(self, action):
        time.sleep(self.delay)
        return super()._np_step(action)


def fail_to_build():
    raise RuntimeError("cannot build this env")


class SharedCounter(Transform):
    """Counts steps (and the observations' sum) in statistics it can share, with the shared-stats protocol."""

    _np_supported = True

    def __init__(self):
        super().__init__(in_keys=["observation"])
        self.shared = None
        self.local = np.zeros(2, dtype=np.float64)

    @property
    def stats(self) -> np.ndarray:
        return self.local if self.shared is None else self.shared["stats"]

    def _add(self, obs) -> None:
        obs = np.asarray(obs, dtype=np.float64)
        n = obs.shape[0] if obs.ndim > 1 else 1
        if self.shared is None:
            self.local += (n, obs.sum())
            return
        with self.shared.lock():
            self.shared["stats"][:] += (n, obs.sum())

    def _step(self, td, next_td):
        self._add(next_td["observation"].numpy())
        return next_td

    def _reset(self, td, reset):
        return reset

    def _np_step(self, arrays):
        self._add(arrays["observation"])
        return arrays

    def _np_reset(self, arrays, mask):
        return arrays

    def _make_shared(self):
        self.shared = SharedArrays.create({"stats": ((2,), np.float64)})
        self.shared["stats"][:] = self.local

    def _shared_handle(self):
        return None if self.shared is None else self.shared.name

    def _attach_shared(self, handle):
        self.shared = SharedArrays.attach(handle)


def make_counted_pendulum():
    from numbarl.torch_api import TransformedEnv

    return TransformedEnv(GymEnv("Pendulum-v1"), SharedCounter())


# ------------------------------------------------------------------ process checks
def _ppid(pid: str):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def python_children() -> list:
    """(pid, command line) of the python processes whose parent is this process."""
    me = os.getpid()
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and _ppid(entry) == me:
            cmd = _cmdline(int(entry))
            if "python" in cmd:
                out.append((int(entry), cmd))
    return out


def numbarl_blocks() -> set:
    return {name for name in os.listdir("/dev/shm") if name.startswith("numbarl_")}


class track_blocks:
    """Context manager recording the name of every ``SharedArrays`` block this process creates.

    Other processes on the machine may create ``numbarl_`` blocks at the same
    time, so leak checks look at these names rather than at all of /dev/shm.
    """

    def __enter__(self):
        self.names = []
        self._original = SharedArrays.__dict__["create"]
        create = self._original.__func__
        names = self.names

        def recording(cls, layout):
            block = create(cls, layout)
            names.append(block.name)
            return block

        SharedArrays.create = classmethod(recording)
        return self

    def __exit__(self, *exc):
        SharedArrays.create = self._original
        return False


def stop_forkserver() -> None:
    """Stop this process's multiprocessing fork server, if it runs (it is a python child of this process)."""
    from multiprocessing import forkserver

    server = getattr(forkserver, "_forkserver", None)
    if server is not None and getattr(server, "_forkserver_pid", None) is not None and hasattr(server, "_stop"):
        server._stop()


def snapshot() -> tuple:
    """The live multiprocessing children and python child processes of this process, before a test module."""
    return set(multiprocessing.active_children()), {pid for pid, _ in python_children()}


def leftovers(created: list, before: tuple = (set(), set())) -> list:
    """What this process left behind since ``before`` (from :func:`snapshot`): live children, and those of
    the ``created`` blocks still in /dev/shm."""
    gc.collect()
    problems = []
    deadline = time.monotonic() + 10
    while set(multiprocessing.active_children()) - before[0] and time.monotonic() < deadline:
        time.sleep(0.1)
    active = set(multiprocessing.active_children()) - before[0]
    if active:
        problems.append(f"active children {sorted(active, key=str)}")
    stop_forkserver()
    from multiprocessing import resource_tracker

    tracker = getattr(getattr(resource_tracker, "_resource_tracker", None), "_pid", None)
    stray = [c for c in python_children() if c[0] != tracker and c[0] not in before[1]]
    if stray:
        problems.append(f"python children {stray}")
    blocks = sorted(set(created) & numbarl_blocks())
    if blocks:
        problems.append(f"shared blocks {blocks}")
    return problems
