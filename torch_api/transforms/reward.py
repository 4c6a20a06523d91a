"""Reward transforms: RewardScaling, RewardClipping, BinarizeReward, RewardSum, Reward2GoTransform.

Same names, arguments, defaults, keys and spec changes as TorchRL 0.14.1.
The step-wise transforms also run on the array path of the preallocated
rollout (one NumPy ufunc call per key and step, into buffers they own); the
TensorDict path calls the same NumPy code on views of the tensors, so both
paths give the same bits. ``Reward2GoTransform`` (in ``returns``)
runs the exact O(T) scan of :func:`numbarl.core.returns.reward_to_go`.

CUDA tensors stay on their device: the maps run as torch operations there
(in the result dtype, one rounding per operation, as the NumPy code), the
running sums of ``RewardSum`` are tensors on that device updated by torch
(the twins of :mod:`numbarl.core.episode`), reset masks are never read
back, and the scans run on :mod:`numbarl.core.cuda.returns`.

Examples:
    >>> import torch
    >>> from numbarl.torch_api import GymEnv, TransformedEnv, Compose
    >>> env = TransformedEnv(GymEnv("CartPole-v1"), Compose(RewardClipping(-0.5, 0.5), RewardSum()))
    >>> _ = env.set_seed(0)
    >>> td = env.rollout(3)
    >>> td["next", "reward"].squeeze(-1), td["next", "episode_reward"].squeeze(-1)
    (tensor([0.5000, 0.5000, 0.5000]), tensor([0.5000, 1.0000, 1.5000]))
"""
from __future__ import annotations

import numbers

import numpy as np
import torch
from tensordict import TensorDictBase


from .._attrs import set_plain
from .._arrays import as_array, numpy_dtype, torch_dtype
from .._device import HOST, launch, map_on_device, on_device, ops_for
from .._keys import key_list
from ..specs import Binary, Bounded, Composite, Unbounded
from .returns import Reward2GoTransform
from ._checks import check_bool, check_unique
from .._keys import key_tuple, with_leaf
from ._env_chain import container_env, ensure_specs
from ._reset_masks import first_leaf, zero_where
from .running_state import BufferMirrors, RunningState
from .base import Transform

__all__ = ["RewardScaling", "RewardClipping", "BinarizeReward", "RewardSum", "Reward2GoTransform"]



def _real_tensor(owner: str, name: str, value) -> torch.Tensor:
    """``value`` (a real number, array or tensor) as a tensor; TypeError otherwise, ValueError for NaN."""
    if isinstance(value, (bool, np.bool_, str)) or value is None:
        raise TypeError(f"{owner} requires {name} to be a real number or a tensor, got {type(value).__name__}: "
                        f"{value!r}")
    if isinstance(value, numbers.Real):
        tensor = torch.as_tensor(value)
    elif isinstance(value, (torch.Tensor, np.ndarray)):
        tensor = torch.as_tensor(value).detach().clone()
    else:
        raise TypeError(f"{owner} requires {name} to be a real number or a tensor, got {type(value).__name__}")
    if tensor.dtype == torch.bool or tensor.is_complex():
        raise TypeError(f"{owner} requires {name} to hold real numbers, got dtype {tensor.dtype}")
    if tensor.is_floating_point() and bool(torch.isnan(tensor).any()):
        raise ValueError(f"{owner} requires {name} without NaN, got {value!r}")
    return tensor


def _meta(tensor):
    """A data-less tensor of ``tensor``'s shape and dtype (or None), to work out result dtypes."""
    return None if tensor is None else torch.empty(tensor.shape, dtype=tensor.dtype, device="meta")


class _RewardMap(BufferMirrors, Transform):
    """Element-wise map of each in_key into its out_key (reward, or observation entries such as returns).

    Subclasses give ``_result_dtype(torch_dtype, ndim)``, ``_meta_result(probe)``
    (the result of the map on a meta tensor, for its dtype),
    ``_dtype_signature()`` (what that dtype depends on), ``_map_spec(spec)``
    and ``_compute(x, out)``, written once with the executor of the data's
    device (``ops_for(out)``: NumPy ufuncs on host arrays, torch operations on
    CUDA tensors; ``out`` of the result dtype).
    """

    _np_supported = True

    def _setup_buffers(self) -> None:
        set_plain(self, "_out", {})
        set_plain(self, "_dtypes", {})

    def _result_np_dtype(self, np_dtype, ndim):
        cache = self._dtypes
        key = (np_dtype, ndim)
        out = cache.get(key)
        if out is None:
            try:
                dtype = torch_dtype(np_dtype)
            except TypeError:
                raise TypeError(f"{type(self).__name__} takes float, integer or bool tensors, got {np_dtype}") from None
            out = cache[key] = np.dtype(numpy_dtype(self._result_dtype(dtype, ndim)))
        return out

    def _buffer(self, key, shape, dtype) -> np.ndarray:
        buf = self._out.get(key)
        if buf is None or buf.shape != shape or buf.dtype != dtype:
            buf = self._out[key] = np.empty(shape, dtype=dtype)
        return buf

    # -------------------------------------------------------------- arrays
    def _np_step(self, arrays: dict) -> dict:
        for in_key, out_key in zip(self.in_keys, self.out_keys):
            x = arrays.get(in_key)
            if x is None:
                if not self._missing_tolerance:
                    raise KeyError(f"{type(self).__name__}: key {in_key!r} not found; keys present: "
                                   f"{sorted(map(str, arrays))}")
                continue
            out = self._buffer(out_key, x.shape, self._result_np_dtype(x.dtype, x.ndim))
            self._compute(x, out)
            arrays[out_key] = out
        return arrays

    def _np_reset(self, arrays: dict, mask) -> dict:
        for in_key, out_key in zip(self.in_keys, self.out_keys):
            x = arrays.get(in_key)
            if x is not None:  # rewards are not part of a reset; observation entries are
                out = self._buffer(out_key, x.shape, self._result_np_dtype(x.dtype, x.ndim))
                self._compute(x, out)
                arrays[out_key] = out
        return arrays

    # --------------------------------------------------------- tensordicts
    def _apply_transform(self, value: torch.Tensor) -> torch.Tensor:
        return map_on_device(value, lambda x: (x.shape, self._out_dtype(value.dtype, value.ndim)), self._compute)

    def _out_dtype(self, dtype, ndim):
        """``_result_dtype`` worked out on meta tensors (no data, no device), cached."""
        key = ("torch", dtype, ndim) + self._dtype_signature()
        out = self._dtypes.get(key)
        if out is None:
            out = self._dtypes[key] = self._meta_result(torch.empty((1,) * ndim, dtype=dtype, device="meta")).dtype
        return out

    def _dtype_signature(self) -> tuple:
        return ()

    def _reset(self, tensordict, tensordict_reset):
        for in_key, out_key in zip(self.in_keys, self.out_keys):
            value = tensordict_reset.get(in_key, None)
            if value is not None:
                tensordict_reset.set(out_key, self._apply_transform(value))
        return tensordict_reset

    # --------------------------------------------------------------- specs
    def transform_output_spec(self, output_spec):
        output_spec = output_spec.clone()
        for part in ("full_reward_spec", "full_observation_spec"):
            sub = output_spec[part]
            for in_key, out_key in zip(self.in_keys, self.out_keys):
                spec = sub.get(in_key, None)
                if spec is not None:
                    sub[out_key] = self._map_spec(in_key, spec)
        return output_spec

    def transform_reward_spec(self, reward_spec):
        if not isinstance(reward_spec, Composite):  # a leaf spec is mapped as the spec of the first in_key
            return self._map_spec(self.in_keys[0], reward_spec)
        reward_spec = reward_spec.clone()
        for in_key, out_key in zip(self.in_keys, self.out_keys):
            spec = reward_spec.get(in_key, None)
            if spec is not None:
                reward_spec[out_key] = self._map_spec(in_key, spec)
        return reward_spec

    def _check_spec(self, in_key, spec) -> None:
        if not isinstance(spec, (Bounded, Unbounded)):
            raise TypeError(f"{type(self).__name__} requires an Unbounded or Bounded spec at {in_key!r}, got "
                            f"{type(spec).__name__}")


class RewardScaling(_RewardMap):
    """Affine map of the reward: ``reward * scale + loc`` (or ``(reward - loc) / scale``).

    Computed in the result dtype that torch would give (a 0-dim ``loc`` or
    ``scale`` does not promote a float32 reward), with one rounding per
    operation, so results equal TorchRL's bit for bit. ``loc``, ``scale`` and
    ``standard_normal`` are buffers (same ``state_dict`` keys as TorchRL).
    As in TorchRL, a positive ``scale`` is clamped to at least 1e-6; a zero,
    negative or infinite scale raises here (TorchRL silently clamps 0 and
    negative values to 1e-6, which multiplies rewards by 1e6). A ``Bounded`` reward
    spec gets its bounds mapped (TorchRL raises NotImplementedError). CUDA
    rewards are mapped on their device (loc and scale copied there once).

    Args:
        loc: number or tensor broadcastable to the reward.
        scale: number or tensor broadcastable to the reward, finite and > 0.
        in_keys: keys to transform (default ``["reward"]``).
        out_keys: where to write (default: ``in_keys``).
        standard_normal: compute ``(reward - loc) / scale`` instead.

    Raises:
        TypeError: ``loc`` / ``scale`` not real numbers or tensors, ``standard_normal``
            not a bool, a key not a str or tuple of str, or a spec that is neither
            Unbounded nor Bounded.
        ValueError: ``scale`` zero, negative, NaN or inf, ``loc`` NaN, or out_keys and in_keys
            of different lengths.
        KeyError: an in_key is missing from a step.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> t = RewardScaling(loc=1.0, scale=2.0)
        >>> t(TensorDict({"reward": torch.tensor([[0.5], [-1.0]])}, [2]))["reward"]
        tensor([[ 2.],
                [-1.]])
        >>> RewardScaling(1.0, 2.0, standard_normal=True, out_keys=["z"])(
        ...     TensorDict({"reward": torch.tensor([3.0])}, []))["z"]
        tensor([1.])
    """

    def __init__(self, loc, scale, in_keys=None, out_keys=None, standard_normal: bool = False):
        loc = _real_tensor("RewardScaling", "loc", loc)
        scale = _real_tensor("RewardScaling", "scale", scale)
        if not scale.is_floating_point():
            scale = scale.to(torch.get_default_dtype())
        if not bool((torch.isfinite(scale) & (scale > 0)).all()):
            raise ValueError(f"RewardScaling requires scale finite and > 0 (TorchRL clamps 0 to 1e-6, which "
                             f"multiplies rewards by 1e6; positive values below 1e-6 are still clamped to 1e-6 "
                             f"as there), got {scale.tolist()}")
        standard_normal = check_bool(standard_normal, "RewardScaling", "standard_normal")
        super().__init__(in_keys=["reward"] if in_keys is None else in_keys, out_keys=out_keys)
        self.register_buffer("standard_normal", torch.tensor(standard_normal))
        self.register_buffer("loc", loc)
        self.register_buffer("scale", scale.clamp_min(1e-6))
        self._setup_buffers()
        self._prime_host_values()

    _host_buffers = {"standard_normal": bool}

    def _result_dtype(self, dtype, ndim):
        probe = torch.zeros((1,) * ndim, dtype=dtype)
        return ((probe - self.loc) / self.scale if self.standard_normal else probe * self.scale + self.loc).dtype

    def _dtype_signature(self) -> tuple:
        loc, scale = self.loc, self.scale
        return loc.dtype, loc.ndim, scale.dtype, scale.ndim, self._host_value("standard_normal")

    def _meta_result(self, probe):
        loc, scale = _meta(self.loc), _meta(self.scale)
        return (probe - loc) / scale if self._host_value("standard_normal") else probe * scale + loc

    def _compute(self, x, out):
        ops = ops_for(out)
        loc, scale = ops.operand(self, "loc", out), ops.operand(self, "scale", out)
        if self._host_value("standard_normal"):
            ops.subtract(x, loc, out)
            ops.divide(out, scale, out)
        else:
            ops.multiply(x, scale, out)
            ops.add(out, loc, out)

    def _map_spec(self, in_key, spec):
        self._check_spec(in_key, spec)
        dtype = self._result_dtype(spec.dtype, len(spec.shape))
        if isinstance(spec, Bounded):
            low, high = self._apply_transform(spec.low), self._apply_transform(spec.high)
            return Bounded(low=low, high=high, shape=spec.shape, device=spec.device, dtype=dtype)
        return Unbounded(shape=spec.shape, device=spec.device, dtype=dtype)

    def __repr__(self) -> str:
        return (f"RewardScaling(loc={self.loc.tolist()}, scale={self.scale.tolist()}, "
                f"standard_normal={bool(self.standard_normal)}, keys={self.in_keys})")


class RewardClipping(_RewardMap):
    """Clip the reward to ``[clamp_min, clamp_max]``.

    ``clamp_min`` and ``clamp_max`` are buffers (TorchRL's ``state_dict``
    keys). Either may be None for a one-sided clip (TorchRL requires both);
    NaN rewards stay NaN. An Unbounded reward spec becomes Bounded with the
    clip bounds (Unbounded when one side is open); a Bounded spec keeps the
    tighter of its bounds and the clip bounds (TorchRL raises there).

    Args:
        clamp_min: lower bound, a number, or None for no lower bound.
        clamp_max: upper bound, a number, or None for no upper bound.
        in_keys: keys to clip (default ``["reward"]``).
        out_keys: where to write (default: ``in_keys``).

    Raises:
        TypeError: a bound that is not a real number (or None), or a bad key.
        ValueError: both bounds None, ``clamp_min > clamp_max``, or a NaN bound.
        KeyError: an in_key is missing from a step.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> t = RewardClipping(-1.0, 1.0)
        >>> t(TensorDict({"reward": torch.tensor([-3.0, 0.5, 4.0])}, []))["reward"]
        tensor([-1.0000,  0.5000,  1.0000])
        >>> RewardClipping(2.0, 1.0)
        Traceback (most recent call last):
        ...
        ValueError: RewardClipping requires clamp_min <= clamp_max, got clamp_min=2.0 and clamp_max=1.0
    """

    def __init__(self, clamp_min=None, clamp_max=None, in_keys=None, out_keys=None):
        if clamp_min is None and clamp_max is None:
            raise ValueError("RewardClipping requires clamp_min or clamp_max (or both), got neither")
        lo = None if clamp_min is None else _real_tensor("RewardClipping", "clamp_min", clamp_min)
        hi = None if clamp_max is None else _real_tensor("RewardClipping", "clamp_max", clamp_max)
        for name, t in (("clamp_min", lo), ("clamp_max", hi)):
            if t is not None and t.ndim:
                raise ValueError(f"RewardClipping requires {name} to be a scalar, got shape {tuple(t.shape)}")
        if lo is not None and hi is not None and bool(lo > hi):
            raise ValueError(f"RewardClipping requires clamp_min <= clamp_max, got clamp_min={clamp_min!r} and "
                             f"clamp_max={clamp_max!r}")
        super().__init__(in_keys=["reward"] if in_keys is None else in_keys, out_keys=out_keys)
        self.register_buffer("clamp_min", lo)
        self.register_buffer("clamp_max", hi)
        self._setup_buffers()

    def _result_dtype(self, dtype, ndim):
        return torch.clamp(torch.zeros((1,) * ndim, dtype=dtype), self.clamp_min, self.clamp_max).dtype

    def _dtype_signature(self) -> tuple:
        return tuple(None if t is None else (t.dtype, t.ndim) for t in (self.clamp_min, self.clamp_max))

    def _meta_result(self, probe):
        return torch.clamp(probe, _meta(self.clamp_min), _meta(self.clamp_max))

    def _compute(self, x, out):
        ops = ops_for(out)
        lo, hi = ops.operand(self, "clamp_min", out), ops.operand(self, "clamp_max", out)
        src = x
        if lo is not None:
            ops.maximum(src, lo, out)
            src = out
        if hi is not None:
            ops.minimum(src, hi, out)

    def _map_spec(self, in_key, spec):
        self._check_spec(in_key, spec)
        dtype = self._result_dtype(spec.dtype, len(spec.shape))
        bounded = isinstance(spec, Bounded)
        if not bounded and (self.clamp_min is None or self.clamp_max is None):
            return Unbounded(shape=spec.shape, device=spec.device, dtype=dtype)
        low = spec.low if bounded else self.clamp_min
        high = spec.high if bounded else self.clamp_max
        if bounded and self.clamp_min is not None:
            low = torch.maximum(low, self.clamp_min.to(low.dtype))
        if bounded and self.clamp_max is not None:
            high = torch.minimum(high, self.clamp_max.to(high.dtype))
        return Bounded(low=low, high=torch.maximum(low, high), shape=spec.shape, device=spec.device, dtype=dtype)

    def __repr__(self) -> str:
        lo = None if self.clamp_min is None else self.clamp_min.item()
        hi = None if self.clamp_max is None else self.clamp_max.item()
        return f"RewardClipping(clamp_min={lo}, clamp_max={hi}, keys={self.in_keys})"


class BinarizeReward(_RewardMap):
    """Map the reward to 1 where it is positive and 0 elsewhere (NaN gives 0), as int8.

    The reward spec of each out_key becomes ``Binary`` (int8) of the same
    shape, as in TorchRL.

    Args:
        in_keys: keys to binarize (default ``["reward"]``).
        out_keys: where to write (default: ``in_keys``).

    Raises:
        TypeError: a key that is not a str or tuple of str.
        ValueError: out_keys and in_keys of different lengths.
        KeyError: an in_key is missing from a step.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> BinarizeReward()(TensorDict({"reward": torch.tensor([-3.0, 0.0, 4.0])}, []))["reward"]
        tensor([0, 0, 1], dtype=torch.int8)
    """

    def __init__(self, in_keys=None, out_keys=None):
        super().__init__(in_keys=["reward"] if in_keys is None else in_keys, out_keys=out_keys)
        self._setup_buffers()

    def _result_dtype(self, dtype, ndim):
        return torch.int8

    def _compute(self, x, out):
        ops_for(out).positive(x, out)

    def _meta_result(self, probe):
        return probe.to(torch.int8)

    def _map_spec(self, in_key, spec):
        return Binary(shape=spec.shape, device=spec.device, dtype=torch.int8)


class RewardSum(RunningState, Transform):
    """Running episode return: ``episode_reward`` is 0 at reset and adds each step's reward.

    ``episode_reward`` (``"episode_" + leaf`` for each in_key) goes into the
    observation spec (the reward spec with ``reward_spec=True``) and the state
    spec, shaped and typed like the reward, as in TorchRL, and Unbounded
    (TorchRL copies the reward spec, so a clipped or binarized reward gives
    a return spec that returns soon leave). A reset with a
    ``"_reset"`` mask zeroes only the masked sub-envs. The sums are also kept
    in the transform (NumPy arrays, one per key) and saved in ``state_dict``,
    so a collection resumed from a checkpoint continues its episodes; the array
    path of the rollout runs on them. On the TensorDict path the previous sum is
    read from the root tensordict when it is there (TorchRL's behaviour) and
    from the kept sums otherwise (TorchRL uses 0, losing the returns of the
    sub-envs a partial reset leaves alone). For CUDA rewards the kept sums
    are tensors on the reward's device, summed by torch there; the reset
    mask stays on the device (nothing is read back); ``state_dict`` then
    holds device tensors.

    Called on data (``forward``), it sums the in_key along the dim named
    ``"time"`` and restarts after each step whose sibling ``"done"`` entry is
    true, in float64 then cast to the reward dtype. (TorchRL 0.14.1 sums along
    the dim before the time dim and ignores done.)

    Args:
        in_keys: reward keys (default ``["reward"]``).
        out_keys: one per in_key (default ``"episode_" + leaf`` next to it).
        reset_keys: reset keys to read masks from (default: the env's).
        reward_spec: register the sums in the reward spec instead of the
            observation spec (keyword only).

    Raises:
        TypeError: a bad key, ``reward_spec`` not a bool, or ``reset_keys`` read
            without a parent env or explicit keys.
        ValueError: out_keys and in_keys of different lengths; on data, no dim
            named ``"time"``.
        KeyError: an in_key missing from a step, or from the reward spec.

    Examples:
        >>> import torch
        >>> from numbarl.torch_api import GymEnv, TransformedEnv
        >>> env = TransformedEnv(GymEnv("CartPole-v1"), RewardSum())
        >>> _ = env.set_seed(0)
        >>> env.reset()["episode_reward"]
        tensor([0.])
        >>> env.rollout(3)["next", "episode_reward"].squeeze(-1)
        tensor([1., 2., 3.])
    """

    _np_supported = True
    _state_names = ("_sums",)

    def __init__(self, in_keys=None, out_keys=None, reset_keys=None, *, reward_spec: bool = False):
        in_keys = key_list(["reward"] if in_keys is None else in_keys, "in_keys")
        if out_keys is None:
            out_keys = [with_leaf(k, "episode_" + key_tuple(k)[-1]) for k in in_keys]
        out_keys = key_list(out_keys, "out_keys")
        if len(out_keys) != len(in_keys):
            raise ValueError(f"RewardSum expects the same number of input and output keys: got {len(in_keys)} "
                             f"in_keys and {len(out_keys)} out_keys")
        reset_keys = None if reset_keys is None else key_list(reset_keys, "reset_keys")
        reward_spec = check_bool(reward_spec, "RewardSum", "reward_spec")
        super().__init__(in_keys=in_keys, out_keys=out_keys)
        check_unique("RewardSum", "in_keys", self.in_keys)
        check_unique("RewardSum", "out_keys", self.out_keys)
        set_plain(self, "_reset_keys", reset_keys)
        set_plain(self, "reward_spec", reward_spec)
        set_plain(self, "_out_specs", {})
        self._init_state()

    @property
    def reset_keys(self):
        if self._reset_keys is not None:
            return self._reset_keys
        env = container_env(self)
        if env is None:
            raise TypeError("RewardSum: reset_keys were not given and the transform has no parent env; pass "
                            "reset_keys=['_reset'] when using it outside an env")
        return env.reset_keys

    def _reset_key(self, out_key):
        keys = self._reset_keys or (container_env(self).reset_keys if container_env(self) is not None else None)
        if not keys:
            return "_reset"
        prefix = key_tuple(out_key)[:-1]
        for key in keys:
            if key_tuple(key)[:-1] == prefix:
                return key
        return keys[0]

    # --------------------------------------------------------------- state
    def _state(self, out_key, like=None, ops=HOST, where=None):
        """The kept sums of ``out_key`` for ``ops`` (allocated as zeros, shaped like the spec or ``like``).

        ``where`` (default ``like``) is data on the device of a CUDA state.
        Sums kept elsewhere (NumPy, another device) are carried over.
        """
        where = like if where is None else where
        state = self._sums.get(out_key)
        if state is None or type(state) is not np.ndarray or ops.cuda:
            state = ops.held(self._sums, out_key, where)
        if state is not None and (like is None or tuple(state.shape) == tuple(like.shape)):
            return state
        spec = self._spec_of(out_key, like)
        if like is not None:
            shape, dtype = like.shape, (spec.dtype if spec is not None else like.dtype)
        else:
            shape, dtype = spec.shape, spec.dtype
        state = self._sums[out_key] = ops.zeros(shape, dtype, where)
        return state

    def _spec_of(self, out_key, like):
        """The spec of ``out_key`` (None when ``like`` gives the layout); KeyError when nothing gives it."""
        spec = self._out_specs.get(out_key)
        if spec is None and like is None:
            ensure_specs(self)
            spec = self._out_specs.get(out_key)
            if spec is None:
                raise KeyError(f"RewardSum: the shape of {out_key!r} is unknown before the first step; use the "
                               "transform inside an env or step once first")
        return spec

    # -------------------------------------------------------------- arrays
    def _np_reset(self, arrays: dict, mask) -> dict:
        for out_key in self.out_keys:
            state = self._state(out_key)
            zero_where(state, mask)
            arrays[out_key] = state
        return arrays

    def _np_step(self, arrays: dict) -> dict:
        sums = self._sums
        for in_key, out_key in zip(self.in_keys, self.out_keys):
            try:
                reward = arrays[in_key]
            except KeyError:
                raise KeyError(f"RewardSum: key {in_key!r} not found; keys present: "
                               f"{sorted(map(str, arrays))}") from None
            state = sums.get(out_key)
            if state is None or type(state) is not np.ndarray or state.shape != reward.shape:
                state = self._state(out_key, like=reward)
            launch(state, "episode", "add_into", state, reward)
            arrays[out_key] = state
        return arrays

    # --------------------------------------------------------- tensordicts
    def _reset(self, tensordict, tensordict_reset):
        leaf = first_leaf(tensordict_reset)
        ops = ops_for(leaf)
        batch = tuple(tensordict_reset.batch_size)
        for out_key in self.out_keys:
            mask = ops.reset_mask(tensordict, self._reset_key(out_key), batch, leaf)
            state = self._state(out_key, None, ops, leaf)
            if mask is not None and tensordict is not None:
                prev = tensordict.get(out_key, None)
                if prev is not None:
                    ops.copy_into(state, prev)
            ops.zero_where(state, mask)
            tensordict_reset.set(out_key, ops.snapshot(state))
        return tensordict_reset

    def _step(self, tensordict, next_tensordict):
        for in_key, out_key in zip(self.in_keys, self.out_keys):
            reward = next_tensordict.get(in_key, None)
            if reward is None:
                self._missing(in_key, next_tensordict)
                continue
            ops = ops_for(reward)
            r = ops.view(reward)
            state = self._state(out_key, r, ops)
            prev = tensordict.get(out_key, None) if tensordict is not None else None
            if prev is not None:
                ops.copy_into(state, prev)
            ops.add_into(state, r)
            next_tensordict.set(out_key, ops.snapshot(state))
        return next_tensordict

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Episode returns of stored data: cumulative sums along the ``"time"`` dim, restarting after each done."""
        names = tensordict.names if hasattr(tensordict, "names") else None
        if not names or "time" not in names:
            raise ValueError("At least one dimension of the tensordict must be named 'time' in offline mode "
                             "(RewardSum sums along it); set it with tensordict.refine_names(..., 'time')")
        axis = list(names).index("time")
        for in_key, out_key in zip(self.in_keys, self.out_keys):
            reward = tensordict.get(in_key, None)
            if reward is None:
                self._missing(in_key, tensordict)
                continue
            done = tensordict.get(with_leaf(in_key, "done"), None)
            tensordict.set(out_key, on_device(reward, self, "_episode_sums", reward.detach(), done, axis))
        return tensordict

    @staticmethod
    def _episode_sums(reward: torch.Tensor, done, axis: int) -> torch.Tensor:
        """Cumulative sums of ``reward`` along ``axis`` restarting after each ``done``: flags in NumPy, one scan."""
        r = as_array(reward)
        starts = np.zeros(r.shape, dtype=bool)
        if done is not None:
            d = np.broadcast_to(as_array(done).astype(bool, copy=False), r.shape)
            src = [slice(None)] * r.ndim
            dst = [slice(None)] * r.ndim
            src[axis], dst[axis] = slice(0, -1), slice(1, None)
            starts[tuple(dst)] = d[tuple(src)]
        first = [slice(None)] * r.ndim
        first[axis] = 0
        starts[tuple(first)] = True
        out = torch.empty(reward.shape, dtype=reward.dtype)
        # A forward cumulative sum that restarts at each start is a
        # reward-to-go with gamma = 1 over the reversed sequence.
        launch(r, "returns", "reward_to_go", np.flip(r, axis), np.flip(starts, axis), 1.0,
               out=np.flip(as_array(out), axis), time_dim=axis)
        return out

    @staticmethod
    def _episode_sums_cuda(reward: torch.Tensor, done, axis: int) -> torch.Tensor:
        """``_episode_sums`` for a CUDA reward: the restart flags (torch) and the scan (kernel) on its device.

        The host path builds the flags with NumPy, much faster on the CPU than
        torch's slicing of bool tensors.
        """
        starts = torch.zeros(reward.shape, dtype=torch.bool, device=reward.device)
        if done is not None:
            d = torch.broadcast_to(done.to(device=reward.device, dtype=torch.bool), reward.shape)
            src = [slice(None)] * reward.ndim
            dst = [slice(None)] * reward.ndim
            src[axis], dst[axis] = slice(0, -1), slice(1, None)
            starts[tuple(dst)] = d[tuple(src)]
        first = [slice(None)] * reward.ndim
        first[axis] = 0
        starts[tuple(first)] = True
        out = torch.empty(reward.shape, dtype=reward.dtype, device=reward.device)
        # reversed in time, every trajectory ends at a start, so nothing is left open
        launch(reward, "returns", "reward_to_go", reward.flip(axis), starts.flip(axis), 1.0, out=out, time_dim=axis,
               open_end="truncate")
        return out.flip(axis)

    # --------------------------------------------------------------- specs
    def transform_output_spec(self, output_spec):
        output_spec = output_spec.clone()
        rewards = output_spec["full_reward_spec"]
        target = rewards if self.reward_spec else output_spec["full_observation_spec"]
        for in_key, out_key in zip(self.in_keys, self.out_keys):
            spec = rewards.get(in_key, None)
            if spec is None:
                raise KeyError(f"RewardSum: in_key {in_key!r} is not in the reward spec; reward keys: "
                               f"{sorted(map(str, rewards.keys(True, True)))}")
            out = Unbounded(shape=spec.shape, device=spec.device, dtype=spec.dtype)
            self._out_specs[out_key] = out
            target[out_key] = out.clone()
        return output_spec

    def transform_input_spec(self, input_spec):
        return carried_state_specs(self, input_spec)

    def __repr__(self) -> str:
        return f"RewardSum(in_keys={self.in_keys}, out_keys={self.out_keys})"


def carried_state_specs(transform, input_spec):
    """``input_spec`` with ``transform``'s out_keys in its state spec (running values carried from step to step).

    The specs are those the transform made for its outputs (``_out_specs``,
    filled from the env's output specs on first use).
    """
    input_spec = input_spec.clone()
    if len(transform._out_specs) < len(transform.out_keys):
        ensure_specs(transform)
    state = input_spec["full_state_spec"]
    for out_key in transform.out_keys:
        spec = transform._out_specs.get(out_key)
        if spec is not None:
            state[out_key] = spec.clone()
    return input_spec
