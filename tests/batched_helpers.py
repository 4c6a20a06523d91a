"""Envs and transforms for the batched-env tests (leak checks are in ``leaks``).

They live in a plain module (importable as ``batched_helpers`` from the tests
directory, which conftest puts on ``sys.path``) so worker processes can
unpickle them by reference.
"""
from __future__ import annotations

import functools
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


def _state_env_class(base, Composite, Unbounded, Categorical):
    """An env whose step reads a state input ``hidden`` and an ``action_mask`` (as an RNN policy's env does).

    The same logic on numbarl's and on TorchRL's ``EnvBase``, for differential tests.
    """

    class StateEnv(base):
        def __init__(self, horizon: int = 4, offset: float = 0.0):
            super().__init__()
            self.horizon, self.offset, self.t = horizon, offset, 0
            self.observation_spec = Composite(observation=Unbounded((2,)), hidden=Unbounded((2,)),
                                              action_mask=Categorical(2, (3,), dtype=torch.bool))
            self.state_spec = Composite(hidden=Unbounded((2,)), action_mask=Categorical(2, (3,), dtype=torch.bool))
            self.action_spec = Unbounded((1,))
            self.reward_spec = Unbounded((1,))

        def _reset(self, td, **kwargs):
            self.t = 0
            hidden = torch.full((2,), self.offset)
            if td is not None and "hidden" in td.keys():
                hidden = hidden + td.get("hidden")  # a state input given at reset is used
            return TensorDict({"observation": hidden.clone(), "hidden": hidden,
                               "action_mask": torch.tensor([True, False, True]),
                               "done": torch.tensor([False]), "terminated": torch.tensor([False])}, [])

        def _step(self, td):
            self.t += 1
            hidden = td.get("hidden") * 0.5 + td.get("action")  # KeyError if the state input was dropped
            mask = td.get("action_mask")
            obs = hidden * 2 + mask.float()[:2]
            done = torch.tensor([self.t >= self.horizon])
            return TensorDict({"observation": obs, "hidden": hidden, "action_mask": mask.roll(1),
                               "reward": hidden.sum(-1, keepdim=True), "done": done, "terminated": done.clone()}, [])

        def _set_seed(self, seed):
            self.offset = float(seed % 7) if seed is not None else 0.0

    return StateEnv


from numbarl.torch_api import Categorical as _Categorical  # noqa: E402

StateEnv = _state_env_class(EnvBase, Composite, Unbounded, _Categorical)
try:  # the same env on TorchRL, for the differential tests
    import warnings as _warnings

    with _warnings.catch_warnings():
        _warnings.simplefilter("ignore")
        from torchrl.data import Categorical as _TCategorical
        from torchrl.data import Composite as _TComposite
        from torchrl.data import Unbounded as _TUnbounded
        from torchrl.envs import EnvBase as _TEnvBase
    TorchRLStateEnv = _state_env_class(_TEnvBase, _TComposite, _TUnbounded, _TCategorical)
    TorchRLStateEnv.__name__ = TorchRLStateEnv.__qualname__ = "TorchRLStateEnv"
except ImportError:
    TorchRLStateEnv = None
StateEnv.__qualname__ = "StateEnv"


def make_serial_pendulums(k: int = 3):
    """``SerialEnv(k, Pendulum)``: a batched sub-env (batch size ``[k]``) for nesting tests."""
    from numbarl.torch_api import SerialEnv

    return SerialEnv(k, make_pendulum)


def make_trl_serial_pendulums(k: int = 3):
    import torchrl.envs as trl

    return trl.SerialEnv(k, functools.partial(trl.GymEnv, "Pendulum-v1"))


def make_pendulum_batch3():
    """A GymEnv-based env of batch size [3] through a SerialEnv, as in ``SerialEnv(2, lambda: Env(batch_size=[3]))``."""
    return make_serial_pendulums(3)


def seeded_pendulum(seed: int = 0):
    """A Pendulum GymEnv seeded with ``seed`` (AsyncEnvPool makers: TorchRL's pool has no set_seed)."""
    env = GymEnv("Pendulum-v1")
    env.set_seed(seed)
    return env


def trl_seeded_pendulum(seed: int = 0):
    import torchrl.envs as trl

    env = trl.GymEnv("Pendulum-v1")
    env.set_seed(seed)
    return env


def make_pooled_cartpole(T: int = 3):
    """CartPole with ``TimeMaxPool(in_keys=["observation"], out_keys=["observation_max"], T=T)``."""
    from numbarl.torch_api import TimeMaxPool, TransformedEnv

    return TransformedEnv(make_cartpole(), TimeMaxPool(in_keys=["observation"], out_keys=["observation_max"], T=T))
