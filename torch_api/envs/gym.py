"""``GymEnv`` and ``GymWrapper``: gymnasium environments behind the TorchRL env API.

Spaces map to specs as TorchRL 0.14.1 maps them: ``Box`` gives ``Bounded``
(``Unbounded`` when it spans the whole range of its dtype), ``Discrete`` gives
``OneHot`` (``Categorical`` with ``categorical_action_encoding=True``),
``MultiDiscrete`` gives ``MultiOneHot`` / ``MultiCategorical`` (the encoding applies to
observations too, as in TorchRL), ``MultiBinary``
gives ``Binary``, ``Dict`` gives a ``Composite`` with the same keys. A
``Tuple`` of equal spaces gives their spec stacked along a new first dim; a
``Tuple`` of different spaces gives a ``Composite`` keyed ``"0"``, ``"1"``, ...
(TorchRL refuses those). Terminated and truncated stay apart; ``done`` is
their union.

Examples:
    >>> env = GymEnv("Pendulum-v1")
    >>> _ = env.set_seed(0)
    >>> td = env.rollout(3)
    >>> td["next", "observation"].shape, td["next", "reward"].dtype
    (torch.Size([3, 3]), torch.float32)
    >>> env.close()
"""
from __future__ import annotations

import numpy as np
import torch

from ..specs import (Binary, Bounded, Categorical, Composite, MultiCategorical, MultiOneHot, OneHot,
                     Unbounded)
from ._array_env import ArrayEnvBase

__all__ = ["GymEnv", "GymWrapper", "gym_space_to_spec"]

_TORCH_DTYPE = {
    np.dtype(np.float16): torch.float16, np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64,
    np.dtype(np.uint8): torch.uint8, np.dtype(np.int8): torch.int8, np.dtype(np.int16): torch.int16,
    np.dtype(np.int32): torch.int32, np.dtype(np.int64): torch.int64, np.dtype(np.bool_): torch.bool,
}


def _torch_dtype(dtype) -> torch.dtype:
    try:
        return _TORCH_DTYPE[np.dtype(dtype)]
    except KeyError:
        raise TypeError(f"gymnasium space dtype {dtype} has no torch counterpart") from None


def _box_spec(space):
    dtype = _torch_dtype(space.dtype)
    low, high = np.asarray(space.low), np.asarray(space.high)
    shape = tuple(space.shape)
    if np.issubdtype(space.dtype, np.floating):
        unbounded = bool(np.all(np.isneginf(low)) and np.all(np.isposinf(high)))
    else:
        info = np.iinfo(space.dtype) if np.issubdtype(space.dtype, np.integer) else None
        unbounded = info is not None and bool(np.all(low == info.min) and np.all(high == info.max))
    if unbounded:
        return Unbounded(shape=shape, dtype=dtype)
    return Bounded(low=torch.as_tensor(low, dtype=dtype), high=torch.as_tensor(high, dtype=dtype),
                   shape=shape, dtype=dtype)


def gym_space_to_spec(space, categorical_action_encoding: bool = False):
    """The numbarl spec of a gymnasium space (see the module docstring for the mapping)."""
    from gymnasium import spaces

    if isinstance(space, spaces.Box):
        return _box_spec(space)
    if isinstance(space, spaces.Discrete):
        if categorical_action_encoding:
            return Categorical(int(space.n), shape=(), dtype=torch.int64)
        return OneHot(int(space.n), dtype=torch.int64)
    if isinstance(space, spaces.MultiDiscrete):
        nvec = [int(n) for n in np.asarray(space.nvec).reshape(-1)]
        if len(set(nvec)) == 1:  # equal sizes: one spec with a shape, as TorchRL does
            shape = tuple(np.asarray(space.nvec).shape)
            if categorical_action_encoding:
                return Categorical(nvec[0], shape=shape, dtype=torch.int64)
            return OneHot(nvec[0], shape=(*shape, nvec[0]), dtype=torch.int64)
        if categorical_action_encoding:
            return MultiCategorical(nvec, shape=(len(nvec),), dtype=torch.int64)
        return MultiOneHot(nvec, dtype=torch.int64)
    if isinstance(space, spaces.MultiBinary):
        n = int(np.prod(space.shape))
        return Binary(n, shape=tuple(space.shape), dtype=torch.int8)
    if isinstance(space, spaces.Dict):
        return Composite({k: gym_space_to_spec(s, categorical_action_encoding) for k, s in space.spaces.items()})
    if isinstance(space, spaces.Tuple):
        specs = [gym_space_to_spec(s, categorical_action_encoding) for s in space.spaces]
        if all(s == specs[0] for s in specs[1:]) and not isinstance(specs[0], Composite):
            return specs[0].expand(len(specs), *specs[0].shape)
        return Composite({str(i): s for i, s in enumerate(specs)})
    raise TypeError(f"gymnasium space {type(space).__name__} is not supported; allowed: Box, Discrete, "
                    "MultiDiscrete, MultiBinary, Dict, Tuple")


def _flatten_obs(space, prefix=()):
    """(key, space) pairs for every leaf of an observation space, keys as in the spec."""
    from gymnasium import spaces

    if isinstance(space, spaces.Dict):
        for name, sub in space.spaces.items():
            yield from _flatten_obs(sub, prefix + (name,))
    elif isinstance(space, spaces.Tuple) and not _tuple_stacks(space):
        for i, sub in enumerate(space.spaces):
            yield from _flatten_obs(sub, prefix + (str(i),))
    else:
        yield (prefix[0] if len(prefix) == 1 else prefix), space


def _tuple_stacks(space) -> bool:
    specs = [gym_space_to_spec(s) for s in space.spaces]
    return all(s == specs[0] for s in specs[1:]) and not isinstance(specs[0], Composite)


def _getter(key):
    """A function that reads the leaf ``key`` out of a (nested dict / tuple) gymnasium observation."""
    if key is None:
        return lambda obs: obs
    parts = key if isinstance(key, tuple) else (key,)

    def get(obs):
        for part in parts:
            obs = obs[int(part)] if isinstance(obs, tuple) else obs[part]
        return obs

    return get


def _copy(buffer, value) -> None:
    buffer[...] = value


def _writer(spec):
    """How a leaf observation is written into its buffer: one-hot specs encode integers."""
    if isinstance(spec, MultiOneHot):
        offsets = np.concatenate([[0], np.cumsum(spec.nvec.tolist())[:-1]]).astype(np.int64)

        def write(buffer, value):
            buffer[...] = 0
            buffer[offsets + np.asarray(value, dtype=np.int64)] = 1

        return write
    if isinstance(spec, OneHot):
        def write(buffer, value):
            buffer[...] = 0
            if buffer.ndim == 1:
                buffer[int(value)] = 1
            else:
                np.put_along_axis(buffer, np.asarray(value, dtype=np.int64)[..., None], 1, axis=-1)

        return write
    return _copy


class GymWrapper(ArrayEnvBase):
    """A gymnasium env with TorchRL's env API.

    Args:
        env: a ``gymnasium.Env``.
        categorical_action_encoding: ``Discrete`` actions as integers (``Categorical``)
            instead of one-hot vectors (the default, as in TorchRL).
        from_pixels: add a ``"pixels"`` observation from ``env.render()``; the env
            needs ``render_mode="rgb_array"``.
        pixels_only: with ``from_pixels``, drop the env's own observation (an image observation
            is always left out then, as in TorchRL: the frame comes once, as ``"pixels"``).
        frame_skip: repeat each action this many times, summing rewards.
        device, batch_size, allow_done_after_reset: as for ``EnvBase``.

    Raises:
        TypeError: ``env`` is not a gymnasium env, or a space is not supported.
        ValueError: ``frame_skip`` < 1, or ``from_pixels`` without an rgb_array render mode.
    """

    def __init__(self, env=None, categorical_action_encoding: bool = False, from_pixels: bool = False,
                 pixels_only: bool = True, frame_skip: int | None = None, device=None, batch_size=None,
                 allow_done_after_reset: bool = False, convert_actions_to_numpy: bool = True, **kwargs):
        import gymnasium

        if not isinstance(env, gymnasium.Env):
            raise TypeError(f"GymWrapper requires env to be a gymnasium.Env, got {type(env).__name__}")
        if frame_skip is not None and (not isinstance(frame_skip, int) or frame_skip < 1):
            raise ValueError(f"GymWrapper requires frame_skip >= 1, got {frame_skip!r}")
        if from_pixels and getattr(env, "render_mode", None) != "rgb_array":
            raise ValueError("from_pixels=True requires an env made with render_mode='rgb_array', "
                             f"got render_mode={getattr(env, 'render_mode', None)!r}")
        super().__init__(device=device, batch_size=batch_size, allow_done_after_reset=allow_done_after_reset)
        self._env = env
        self.categorical_action_encoding = categorical_action_encoding
        self.from_pixels = from_pixels
        self.pixels_only = pixels_only
        self.frame_skip = frame_skip or 1
        self._make_specs()

    # ----------------------------------------------------------------- specs
    def _make_specs(self) -> None:
        env = self._env
        obs_space = env.observation_space
        obs = {}
        self._readers = []
        leaves = list(_flatten_obs(obs_space))
        image_obs = (len(leaves) == 1 and leaves[0][0] == ()
                     and len(obs_space.shape or ()) == 3 and np.dtype(obs_space.dtype) == np.uint8)
        is_pixel_box = image_obs and not self.from_pixels
        # an env whose observation is itself an image (Atari) gets one "pixels" entry, from_pixels or not,
        # as in TorchRL: pixels_only=False adds no second copy of the frame under "observation"
        keep_own = not (self.from_pixels and (self.pixels_only or image_obs))
        if keep_own:
            for key, space in leaves:
                name = key if key != () else ("pixels" if is_pixel_box else "observation")
                obs[name] = gym_space_to_spec(space, self.categorical_action_encoding)
                self._readers.append((name, _getter(None if key == () else key), _writer(obs[name])))
        if self.from_pixels:
            env.reset()  # rendering needs a state: the frame's shape is read from a first reset
            frame = env.render()
            if not isinstance(frame, np.ndarray):
                raise ValueError(f"from_pixels=True requires env.render() to return an array, got {type(frame).__name__}")
            obs["pixels"] = Unbounded(shape=frame.shape, dtype=torch.uint8)
        composite = Composite(shape=())
        for name, spec in obs.items():
            composite[name] = spec
        # specs are built on the host and moved to the env's device (which may be e.g. "cpu:0")
        on = (lambda spec: spec) if self.device is None else (lambda spec: spec.to(self.device))
        self.observation_spec = on(composite)
        action = gym_space_to_spec(env.action_space, self.categorical_action_encoding)
        self.action_spec = on(action)
        self.reward_spec = on(Unbounded(shape=(1,), dtype=torch.float32))
        done = Categorical(2, shape=(1,), dtype=torch.bool)
        self.full_done_spec = on(Composite(done=done, terminated=done.clone(), truncated=done.clone()))
        self._obs_buffers = {}
        for key in self.full_observation_spec.keys(True, True):
            spec = self.full_observation_spec[key]
            self._obs_buffers[key] = np.zeros(tuple(spec.shape), dtype=_np(spec.dtype))
        self._reward = np.zeros((1,), dtype=np.float32)
        self._done = np.zeros((1,), dtype=np.bool_)
        self._terminated = np.zeros((1,), dtype=np.bool_)
        self._truncated = np.zeros((1,), dtype=np.bool_)
        self._next = dict(self._obs_buffers, reward=self._reward, done=self._done, terminated=self._terminated,
                          truncated=self._truncated)
        self._root = dict(self._obs_buffers, done=self._done, terminated=self._terminated, truncated=self._truncated)
        self._action_to_gym = self._make_action_converter(env.action_space, action)

    def _make_action_converter(self, space, spec):
        from gymnasium import spaces

        if isinstance(space, spaces.Discrete):
            start = int(space.start)
            if isinstance(spec, OneHot):
                return lambda a: int(np.argmax(a)) + start
            return lambda a: int(a) + start
        if isinstance(space, spaces.MultiDiscrete):
            start = np.asarray(space.start) if hasattr(space, "start") else 0
            if isinstance(spec, OneHot) and not isinstance(spec, MultiOneHot):
                return lambda a: np.argmax(np.asarray(a), axis=-1) + start
            if isinstance(spec, MultiOneHot):
                splits = np.cumsum([int(n) for n in np.asarray(space.nvec).reshape(-1)])[:-1]
                return lambda a: np.array([int(np.argmax(p)) for p in np.split(np.asarray(a), splits)]) + start
            return lambda a: np.asarray(a, dtype=np.int64) + start
        if isinstance(space, spaces.Box):
            dtype = space.dtype
            return lambda a: np.asarray(a, dtype=dtype)
        if isinstance(space, spaces.MultiBinary):
            return lambda a: np.asarray(a, dtype=np.int8)
        return lambda a: a

    # ------------------------------------------------------------ array path
    def _write_obs(self, obs) -> None:
        buffers = self._obs_buffers
        for name, read, write in self._readers:
            write(buffers[name], read(obs))
        if self.from_pixels:
            self._obs_buffers["pixels"][...] = self._env.render()

    def _np_reset(self, mask=None):
        obs, _ = self._env.reset()
        self._write_obs(obs)
        self._done[0] = self._terminated[0] = self._truncated[0] = False
        return self._root

    def _np_step(self, action):
        act = self._action_to_gym(action)
        reward = 0.0
        for _ in range(self.frame_skip):
            obs, r, terminated, truncated, _ = self._env.step(act)
            reward += r
            if terminated or truncated:
                break
        self._write_obs(obs)
        self._reward[0] = reward
        self._terminated[0] = terminated
        self._truncated[0] = truncated
        self._done[0] = terminated or truncated
        return self._next

    def _set_seed(self, seed):
        # As TorchRL does: the env is reset with the seed at once, so the
        # episodes that follow (each an unseeded reset) replay exactly.
        self._env.reset(seed=seed)

    def close(self, *, raise_if_closed: bool = True) -> None:
        if not self.is_closed:
            self._env.close()
        super().close()

    @property
    def env(self):
        """The wrapped gymnasium env."""
        return self._env

    def __getattr__(self, name):
        """A public attribute the wrapper lacks is read from the gymnasium env (``env.unwrapped.ale``), as in TorchRL.

        Examples:
            >>> from numbarl.torch_api import GymEnv
            >>> GymEnv("CartPole-v1").unwrapped.__class__.__name__
            'CartPoleEnv'
        """
        try:
            return super().__getattr__(name)
        except AttributeError:
            env = self.__dict__.get("_env")
            if env is None or name.startswith("_"):
                raise
        try:
            return getattr(env, name)
        except AttributeError:
            raise AttributeError(f"{type(self).__name__} has no attribute {name!r}, nor has its gymnasium env "
                                 f"({type(env).__name__})") from None


def _np(dtype):
    from .._arrays import numpy_dtype

    return numpy_dtype(dtype)


class GymEnv(GymWrapper):
    """``gymnasium.make(env_name, **kwargs)`` wrapped as a ``GymWrapper``.

    TorchRL's keywords (``categorical_action_encoding``, ``from_pixels``,
    ``pixels_only``, ``frame_skip``, ``device``, ``batch_size``,
    ``allow_done_after_reset``) are taken here; every other keyword goes to
    ``gymnasium.make``. ALE ids (``"ALE/Pong-v5"``) work once ``ale_py`` is
    installed; their frames come as ``"pixels"`` (uint8, HWC) and, as in
    TorchRL, ALE itself skips ``frame_skip`` frames (1 by default, not
    gymnasium's 4) unless ``frameskip`` is passed.

    Raises:
        TypeError: ``env_name`` is not a str.
        ValueError: gymnasium does not know ``env_name`` (the message lists close ids).
    """

    _WRAPPER_KEYS = ("categorical_action_encoding", "from_pixels", "pixels_only", "frame_skip", "device",
                     "batch_size", "allow_done_after_reset", "convert_actions_to_numpy")

    def __init__(self, env_name: str, **kwargs):
        import gymnasium

        if not isinstance(env_name, str):
            raise TypeError(f"GymEnv requires env_name to be a str, got {type(env_name).__name__}")
        wrapper_kwargs = {k: kwargs.pop(k) for k in self._WRAPPER_KEYS if k in kwargs}
        if wrapper_kwargs.get("from_pixels") and "render_mode" not in kwargs:
            kwargs["render_mode"] = "rgb_array"
        native_skip = None
        if env_name.startswith("ALE/"):
            try:
                import ale_py

                gymnasium.register_envs(ale_py)
            except ImportError:
                raise ValueError(f"GymEnv({env_name!r}) needs the ale-py package: pip install ale-py") from None
            # As TorchRL: ALE skips frames itself (frameskip=frame_skip, 1 by default
            # instead of gymnasium's 4), and the wrapper does not repeat actions again.
            if "frameskip" not in kwargs:
                kwargs["frameskip"] = wrapper_kwargs.get("frame_skip") or 1
                native_skip = wrapper_kwargs.pop("frame_skip", None)
        try:
            env = gymnasium.make(env_name, **kwargs)
        except gymnasium.error.Error as err:
            raise ValueError(f"GymEnv could not make env_name={env_name!r}: {err}") from None
        super().__init__(env, **wrapper_kwargs)
        self.env_name = env_name
        if native_skip is not None:
            self.frame_skip_native = native_skip

    def __repr__(self) -> str:
        return f"GymEnv(env={self.env_name}, batch_size={tuple(self.batch_size)}, device={self.device})"
