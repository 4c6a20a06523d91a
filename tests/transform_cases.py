"""Registry of one configured case per exported transform class, for the conformance suite.

``CASES`` maps a class name to a :class:`Case`: either an env factory and a
transform factory (the transform is checked in a ``TransformedEnv``), or, for
transforms TorchRL refuses in an env, an offline check (a transform factory,
a data factory and the call to make: ``forward`` or ``inv``). Factories are
module-level functions so that transforms and envs can be pickled.

The small gymnasium envs used here (and by the differential tests) are fast,
deterministic given their seed, and cover what the transforms need: a tiny
image (uint8 HWC and float CHW), float64 entries, a matrix action, bounded
actions with unequal bounds, and a legal-action mask.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

import gymnasium as gym
import numpy as np
import torch
from tensordict import TensorDict
from torch import nn

__all__ = ["CASES", "Case", "TinyImageEnv", "DoubleEnv", "MatrixActionEnv", "BoxActionEnv", "make_masked_env",
           "make_env"]


# ------------------------------------------------------------------ gymnasium envs
class _Base(gym.Env):
    """A deterministic env whose observations follow the actions; episodes last ``horizon`` steps."""

    horizon = 50

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self._t = 0
        self._state = self.np_random.uniform(-1, 1, size=3)
        return self._obs(), {}

    def step(self, action):
        self._t += 1
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        self._state = np.tanh(self._state + 0.1 * a.sum() + 0.05 * np.arange(3))
        reward = float(self._state[0] - 0.1 * (a ** 2).sum())
        return self._obs(), reward, bool(self._state[1] > 0.99), self._t >= self.horizon, {}


class TinyImageEnv(_Base):
    """Dict observation: ``pixels`` (uint8, 8x8x3), ``image`` (float32, 3x8x8), ``observation`` (2,), ``velocity`` (1,)."""

    def __init__(self):
        self.observation_space = gym.spaces.Dict(
            pixels=gym.spaces.Box(0, 255, (8, 8, 3), np.uint8),
            image=gym.spaces.Box(0.0, 1.0, (3, 8, 8), np.float32),
            observation=gym.spaces.Box(-1.0, 1.0, (2,), np.float32),
            velocity=gym.spaces.Box(-1.0, 1.0, (1,), np.float32),
        )
        self.action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def _obs(self):
        s = self._state
        grid = np.add.outer(np.arange(8), np.arange(8)) / 14.0
        image = np.stack([np.clip(grid * (0.5 + 0.5 * v), 0, 1) for v in s]).astype(np.float32)
        return {"pixels": (image.transpose(1, 2, 0) * 255).astype(np.uint8), "image": image,
                "observation": s[:2].astype(np.float32), "velocity": s[2:].astype(np.float32)}


class DoubleEnv(_Base):
    """float64 observation ``obs`` (3,), uint8 ``pix`` (4x4x3), float64 action (2,)."""

    def __init__(self):
        self.observation_space = gym.spaces.Dict(obs=gym.spaces.Box(-1.0, 1.0, (3,), np.float64),
                                                 pix=gym.spaces.Box(0, 255, (4, 4, 3), np.uint8))
        self.action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float64)

    def _obs(self):
        return {"obs": self._state.copy(), "pix": np.full((4, 4, 3), int(127 * (1 + self._state[0])), np.uint8)}


class MatrixActionEnv(_Base):
    """float32 observation (3,) = the sum of the action's rows, action of shape (2, 3)."""

    def __init__(self):
        self.observation_space = gym.spaces.Box(-2.0, 2.0, (3,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (2, 3), np.float32)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        return self._obs(), {}

    def step(self, action):
        obs, reward, term, trunc, info = super().step(action)
        self._last = np.asarray(action, np.float32).sum(0)
        return self._last.copy(), reward, term, trunc, info

    def _obs(self):
        return self._state.astype(np.float32)


class BoxActionEnv(_Base):
    """float32 observation = the last action (``len(low)`` entries); action in ``[low, high]``."""

    def __init__(self, low=(-1.3, 0.1, -7.1, 0.2), high=(2.9, 3.7, 1.7, 0.9)):
        low, high = np.asarray(low, np.float32), np.asarray(high, np.float32)
        self.observation_space = gym.spaces.Box(-10.0, 10.0, low.shape, np.float32)
        self.action_space = gym.spaces.Box(low, high, low.shape, np.float32)
        self._last = np.zeros(low.shape, np.float32)

    def reset(self, seed=None, options=None):
        self._last = np.zeros_like(self._last)
        return super().reset(seed=seed)

    def _obs(self):
        return self._last.copy()

    def step(self, action):
        _, reward, term, trunc, info = super().step(action)
        self._last = np.asarray(action, np.float32).copy()
        return self._obs(), reward, term, trunc, info


# ------------------------------------------------------------------ env factories
def make_env(name: str):
    """A numbarl env by short name: pendulum, cartpole, image, double, matrix, box, masked."""
    from numbarl.torch_api import GymEnv, GymWrapper

    if name == "pendulum":
        return GymEnv("Pendulum-v1")
    if name == "cartpole":
        return GymEnv("CartPole-v1")
    if name == "masked":
        return make_masked_env()
    if name == "breakout":
        return GymEnv("ALE/Breakout-v5", obs_type="ram")
    wrapped = {"image": TinyImageEnv, "double": DoubleEnv, "matrix": MatrixActionEnv, "box": BoxActionEnv}[name]
    return GymWrapper(wrapped())


def make_masked_env():
    """A numbarl env with a Categorical(4) action and a legal-action mask; each action can be played once."""
    from numbarl.torch_api import Binary, Categorical, Composite, EnvBase, Unbounded

    class MaskedEnv(EnvBase):
        def __init__(self):
            super().__init__()
            self.action_spec = Categorical(4)
            self.observation_spec = Composite(obs=Unbounded((3,)), action_mask=Binary(4, dtype=torch.bool))
            self.reward_spec = Unbounded((1,))

        def _reset(self, tensordict=None, **kwargs):
            self.mask = torch.ones(4, dtype=torch.bool)
            return TensorDict({"obs": torch.zeros(3), "action_mask": self.mask.clone()}, [])

        def _step(self, tensordict):
            action = tensordict["action"]
            if not bool(self.mask[action]):
                raise AssertionError(f"illegal action {action} with mask {self.mask}")
            self.mask[action] = False
            obs = torch.full((3,), float(action))
            return TensorDict({"obs": obs, "action_mask": self.mask.clone(), "reward": torch.ones(1),
                               "done": (~self.mask.any()).view(1)}, [])

        def _set_seed(self, seed):
            pass

    return MaskedEnv()


# ------------------------------------------------------------------ helpers for the transform factories
class _Hidden(nn.Module):
    """``("next", "hidden") = hidden + w * x``: a per-step module for BurnInTransform."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.full((1,), 0.5))

    def forward(self, hidden, x):
        return hidden + self.w * x


def _sequences():
    g = torch.Generator().manual_seed(0)
    return TensorDict({"x": torch.randn(2, 6, 1, generator=g), "hidden": torch.randn(2, 6, 1, generator=g)}, [2, 6])


def _trajectories():
    done = torch.zeros(2, 6, 1, dtype=torch.bool)
    done[:, 2] = True
    done[:, -1] = True
    g = torch.Generator().manual_seed(1)
    return TensorDict({"next": TensorDict({"reward": torch.randn(2, 6, 1, generator=g), "done": done,
                                           "truncated": torch.zeros_like(done)}, [2, 6])}, [2, 6])


def _stop_high(td):
    return td["observation"][..., 2] > 7.5


def _to_one_one(td):
    return td.reshape(1, 1)


def _row_norm(value):
    return value.norm(dim=-1)


def _hash_text(value):
    import numbarl.torch_api as api

    return api.Hash.reproducible_hash(str(value.tolist()))


def _stack_with_copy():
    import numbarl.torch_api as api

    return api.Compose(api.RenameTransform(["observation"], ["obs_copy"], create_copy=True),
                       api.Stack(["observation", "obs_copy"], "stacked", dim=-2))


def _t(name, *args, **kwargs):
    """A factory of ``numbarl.torch_api.<name>(*args, **kwargs)``, picklable."""
    return functools.partial(_build, name, args, kwargs)


def _build(name, args, kwargs):
    import numbarl.torch_api as api

    return getattr(api, name)(*args, **kwargs)


def _primer():
    import numbarl.torch_api as api

    return api.TensorDictPrimer(hidden=api.Unbounded((2,)), default_value=0.5)


def _compose(*factories):
    import numbarl.torch_api as api

    return api.Compose(*[f() for f in factories])


def _burn_in():
    from tensordict.nn import TensorDictModule

    import numbarl.torch_api as api

    return api.BurnInTransform([TensorDictModule(_Hidden(), in_keys=["hidden", "x"], out_keys=[("next", "hidden")])],
                               burn_in=2)


class _SteppedClock:
    """A clock that advances by 0.5 at each reading: Timer's intervals become exact and repeatable."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        self.now += 0.5
        return self.now


def _timer():
    import numbarl.torch_api as api

    t = api.Timer()
    t._clock = _SteppedClock()
    return t


# ------------------------------------------------------------------ the registry
@dataclass
class Case:
    """How to check one transform class.

    ``env`` names an env of :func:`make_env` and ``transform`` builds the
    configured transform. ``offline`` cases instead give ``data`` (a
    tensordict factory) and ``call`` (``"forward"`` or ``"inv"``).
    ``serial_skip`` is a reason to skip the check inside a ``SerialEnv``;
    ``fixed_actions=False`` lets rollouts draw their own actions (for envs
    whose legal actions change).
    ``skip`` is a reason to skip every env check (a transform that cannot run here).
    """

    transform: Callable
    env: str | None = None
    offline: bool = False
    data: Callable | None = None
    call: str = "forward"
    serial_skip: str | None = None
    fixed_actions: bool = True
    skip: str | None = None

    def make_env(self):
        return make_env(self.env)


_IMG = {"in_keys": ["image"]}

CASES: dict[str, Case] = {
    # action
    "ActionDiscretizer": Case(_t("ActionDiscretizer", 5), "pendulum"),
    "ActionMask": Case(_t("ActionMask"), "masked", fixed_actions=False,
                       serial_skip="the mask lives in each sub-env's spec while SerialEnv samples from its own: "
                                   "ActionMask goes over the batched env (tested in test_action.py)"),
    "ActionScaling": Case(_t("ActionScaling"), "box"),
    "FlattenAction": Case(_t("FlattenAction"), "matrix"),
    # keys
    "RenameTransform": Case(_t("RenameTransform", ["observation"], ["stuff"], create_copy=True), "pendulum"),
    "SelectTransform": Case(_t("SelectTransform", "observation"), "pendulum"),
    "ExcludeTransform": Case(_t("ExcludeTransform", "truncated"), "pendulum"),
    "CatTensors": Case(_t("CatTensors", ["observation", "velocity"], "vec"), "image"),
    "ExpandAs": Case(_t("ExpandAs", "done", "observation", "done3"), "pendulum"),
    # dtype
    "DTypeCastTransform": Case(_t("DTypeCastTransform", torch.float64, torch.float32), "double"),
    "DoubleToFloat": Case(_t("DoubleToFloat"), "double"),
    "DeviceCastTransform": Case(_t("DeviceCastTransform", "cpu"), "pendulum"),
    "ClipTransform": Case(_t("ClipTransform", in_keys=["observation", "reward"], low=-0.5, high=0.5), "pendulum"),
    "SignTransform": Case(_t("SignTransform", in_keys=["observation"]), "pendulum"),
    # utility
    "TensorDictPrimer": Case(_primer, "pendulum"),
    "BatchSizeTransform": Case(_t("BatchSizeTransform", reshape_fn=_to_one_one), "cartpole",
                               serial_skip="SerialEnv takes sub-envs with an empty batch_size"),
    "BurnInTransform": Case(_burn_in, offline=True, data=_sequences),
    # base
    "Compose": Case(functools.partial(_compose, _t("DoubleToFloat"), _t("SignTransform", in_keys=["obs"])),
                    "double"),
    # reward
    "RewardScaling": Case(_t("RewardScaling", loc=1.0, scale=0.5), "pendulum"),
    "RewardClipping": Case(_t("RewardClipping", -1.0, 1.0), "pendulum"),
    "RewardSum": Case(_t("RewardSum"), "cartpole"),
    "BinarizeReward": Case(_t("BinarizeReward"), "pendulum"),
    "Reward2GoTransform": Case(_t("Reward2GoTransform", gamma=0.9), offline=True, data=_trajectories, call="inv"),
    # episode
    "StepCounter": Case(_t("StepCounter", max_steps=5), "cartpole"),
    "InitTracker": Case(_t("InitTracker"), "pendulum"),
    "FrameSkipTransform": Case(_t("FrameSkipTransform", 2), "pendulum"),
    "NoopResetEnv": Case(_t("NoopResetEnv", 3), "pendulum"),
    "TerminateTransform": Case(_t("TerminateTransform", _stop_high), "pendulum"),
    "NextObservationDelta": Case(_t("NextObservationDelta", in_keys=["observation"]), "pendulum",
                                 serial_skip="refused in a batched env's worker, as in TorchRL (the RuntimeError is "
                                             "tested in test_episode.py)"),
    # normalization
    "ObservationNorm": Case(_t("ObservationNorm", loc=0.5, scale=2.0, in_keys=["observation"]), "pendulum"),
    "VecNorm": Case(_t("VecNorm", in_keys=["observation"]), "pendulum"),
    "VecNormV2": Case(_t("VecNormV2", in_keys=["observation"]), "pendulum"),
    # image and shape
    "ToTensorImage": Case(_t("ToTensorImage", in_keys=["pixels"]), "image"),
    "GrayScale": Case(_t("GrayScale", **_IMG), "image"),
    "Resize": Case(_t("Resize", 4, 4, **_IMG), "image"),
    "CenterCrop": Case(_t("CenterCrop", 4, **_IMG), "image"),
    "Crop": Case(_t("Crop", 4, 4, 1, 2, **_IMG), "image"),
    "PermuteTransform": Case(_t("PermuteTransform", (-2, -1, -3), **_IMG), "image"),
    "FlattenObservation": Case(_t("FlattenObservation", -2, -1, **_IMG), "image"),
    "UnsqueezeTransform": Case(_t("UnsqueezeTransform", -1, in_keys=["observation"]), "pendulum"),
    "SqueezeTransform": Case(_t("SqueezeTransform", -1, in_keys=["velocity"]), "image"),
    "CatFrames": Case(_t("CatFrames", 3, -1, in_keys=["observation"]), "pendulum"),
    "TimeMaxPool": Case(_t("TimeMaxPool", in_keys=["observation"], out_keys=["pooled"], T=3), "pendulum"),
    "MultiStepTransform": Case(_t("MultiStepTransform", 2, 0.9), offline=True, data=_trajectories, call="inv"),
    "Timer": Case(_timer, "pendulum"),
    "PinMemoryTransform": Case(_t("PinMemoryTransform"), "pendulum",
                               skip=None if torch.cuda.is_available() else "pinning memory needs an accelerator"),
    "EndOfLifeTransform": Case(_t("EndOfLifeTransform"), "breakout"),
    "LineariseRewards": Case(_t("LineariseRewards", in_keys=["reward"], out_keys=["scalar"], weights=[-2.0]),
                             "pendulum"),
    "TargetReturn": Case(_t("TargetReturn", 10.0), "cartpole"),
    "TrajCounter": Case(_t("TrajCounter"), "cartpole"),
    "Stack": Case(_stack_with_copy, "pendulum"),
    "UnaryTransform": Case(_t("UnaryTransform", ["observation"], ["obs_norm"], fn=_row_norm), "pendulum"),
    "Hash": Case(_t("Hash", ["observation"], ["obs_hash"], hash_fn=_hash_text), "pendulum"),
}


# ------------------------------------------------------------------ trajectory
from numbarl.torch_api import GymEnv as _GymEnv  # noqa: E402


class SelfResettingCartPole(_GymEnv):
    """CartPole that resets itself inside ``step`` (the env an ``AutoResetEnv`` wraps)."""

    def __init__(self, **kwargs):
        super().__init__("CartPole-v1", **kwargs)

    def _step(self, td):
        out = super()._step(td)
        if out["done"].any():
            out.update(super()._reset(None).exclude(*self.done_keys))
        return out

    def _reset(self, td=None, **kwargs):
        if td is not None and "_reset" in td.keys():
            return td.copy()
        return super()._reset(td, **kwargs)


def _auto_reset_env():
    import numbarl.torch_api as api

    # replace=False: filled (NaN) observations would not fit CartPole's bounded spec in check_env_specs
    return api.AutoResetEnv(SelfResettingCartPole(), api.AutoResetTransform(replace=False))


@dataclass
class _EnvFactoryCase(Case):
    """A case whose env comes from a factory rather than a :func:`make_env` name (the transform needs its own env)."""

    factory: Callable | None = None

    def make_env(self):
        return self.factory()


# AutoResetTransform runs only as the transform of an AutoResetEnv: the case checks that env, with an empty Compose.
CASES["AutoResetTransform"] = _EnvFactoryCase(_t("Compose"), factory=_auto_reset_env)
