"""Action transforms: ``ActionScaling``, ``FlattenAction``, ``ActionDiscretizer``, ``ActionMask``.

Same arguments, keys and specs as TorchRL 0.14.1. The first three change the
action the policy writes before the base env sees it (the inverse pass) and
change the action spec accordingly; they have the array path of the
preallocated rollout. ``ActionMask`` restricts the action spec to the legal
actions the env reports, so ``rand_action`` only draws legal ones.

Examples:
    >>> import torch
    >>> from tensordict import TensorDict
    >>> t = ActionScaling(loc=1.0, scale=2.0)
    >>> t.inv(TensorDict({"action": torch.tensor([0.5])}, []))["action"]
    tensor([2.])
"""
from __future__ import annotations

import enum
import numbers

import numpy as np
import torch
import torch.nn.functional as F

from .._attrs import set_plain
from .._keys import key_list
from ..specs import (Binary, Bounded, Categorical, MultiCategorical, MultiOneHot, OneHot, Unbounded)
from .base import Transform
from ._checks import CompatTypeError, CompatValueError, check_bool
from ._env_chain import container_env
from .keys import INPUT_PARTS, _NoBuffersOnCopy, one_key, part_of, spec_key_error

__all__ = ["ActionScaling", "FlattenAction", "ActionDiscretizer", "ActionMask"]


class _LazyBuffers:
    """Buffers set once the env's specs are known: ``load_state_dict`` also fills them before that."""

    _lazy_buffers: tuple = ()

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        for name in self._lazy_buffers:
            value = state_dict.get(prefix + name)
            if value is not None and self._buffers.get(name) is None:
                self._buffers[name] = torch.empty_like(value)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)

    def _ensure_specs(self):
        env = container_env(self)
        if env is not None:
            env.input_spec  # noqa: B018 - computing the input spec initialises the transform


def _action_spec(input_spec, key, owner):
    part = part_of(input_spec, key, ("full_action_spec",))
    if part is None:
        raise spec_key_error(owner, key, input_spec, ("full_action_spec",))
    return input_spec[part]


# ------------------------------------------------------------------ ActionScaling
def _affine_arg(value, name):
    if value is None:
        return None
    try:
        t = torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"ActionScaling requires {name} to be a number or a tensor, got {value!r}") from None
    if t.dtype == torch.bool or t.is_complex():
        raise TypeError(f"ActionScaling requires {name} to be real, got dtype {t.dtype}")
    if not t.is_floating_point():
        t = t.to(torch.get_default_dtype())
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"ActionScaling requires a finite {name}, got {t}")
    return t.clone()


class ActionScaling(_LazyBuffers, _NoBuffersOnCopy, Transform):
    """Let the policy act in ``[-1, 1]`` (or ``[0, 1]``) and rescale its actions to the env's bounds.

    With ``loc = (high + low) / 2`` and ``scale = (high - low) / 2`` from the
    env's bounded action spec, the inverse pass (policy to env) is
    ``a * scale + loc`` (``(2 a - 1) * scale + loc`` when ``standard_normal`` is
    False) and the forward pass (env to policy, e.g. on stored data) is its
    inverse; the policy sees a ``Bounded(-1, 1)`` (or ``Bounded(0, 1)``) spec.
    Explicit ``loc`` and ``scale`` are used as given: the spec is then the
    image of the env's bounds (``Unbounded`` if those are not finite).
    ``loc`` / ``scale`` are buffers, set when the env's action spec is first
    read (or loaded with ``load_state_dict``).

    Args:
        in_keys_inv: the action key, as the base env names it (default ``["action"]``);
            ``[]`` gives a forward-only transform, which needs ``loc`` and ``scale``.
        out_keys_inv: the key the policy writes (default ``in_keys_inv``).
        in_keys, out_keys: the forward keys (default ``in_keys_inv``, or ``["action"]``).
        loc, scale: explicit affine map (keyword-only, both or neither).
        standard_normal: normalised range ``[-1, 1]`` (True, default) or ``[0, 1]``.

    Raises:
        TypeError: a key is not a str or tuple of str, ``loc`` / ``scale`` are not real,
            ``standard_normal`` is not a bool, or the env's action spec is not ``Bounded``.
        ValueError: more than one inverse key, only one of ``loc`` / ``scale``, a zero or
            non-finite ``scale``, key lists of different lengths, or an action spec with
            infinite bounds when ``loc`` / ``scale`` come from it.

    Examples:
        >>> from numbarl.torch_api import GymEnv, TransformedEnv
        >>> env = TransformedEnv(GymEnv("Pendulum-v1"), ActionScaling())
        >>> env.action_spec.low, env.action_spec.high
        (tensor([-1.]), tensor([1.]))
        >>> env.transform.scale
        tensor([2.])
    """

    _lazy_buffers = ("loc", "scale")
    _np_supported = True

    def __init__(self, in_keys_inv=None, out_keys_inv=None, in_keys=None, out_keys=None, *, loc=None, scale=None,
                 standard_normal: bool = True):
        in_keys_inv = ["action"] if in_keys_inv is None else key_list(in_keys_inv, "in_keys_inv")
        if len(in_keys_inv) > 1:
            raise ValueError(f"ActionScaling only supports a single action key per instance: it takes at most one "
                             f"key in in_keys_inv, got {in_keys_inv}; compose "
                             "several ActionScaling transforms to scale several actions")
        if (loc is None) != (scale is None):
            raise ValueError(f"ActionScaling requires loc and scale together (or neither), got loc={loc!r} "
                             f"and scale={scale!r}")
        if not in_keys_inv and loc is None:
            raise ValueError("ActionScaling with in_keys_inv=[] (forward-only mode) requires explicit loc and scale: "
                             "there is no action spec to derive them from")
        check_bool(standard_normal, "ActionScaling", "standard_normal")
        loc, scale = _affine_arg(loc, "loc"), _affine_arg(scale, "scale")
        if scale is not None and bool((scale == 0).any()):
            raise ValueError(f"ActionScaling requires a scale without zero entries, got {scale}")
        if out_keys_inv is None:
            out_keys_inv = in_keys_inv
        if in_keys is None:
            in_keys = in_keys_inv if in_keys_inv else ["action"]
        super().__init__(in_keys, out_keys, in_keys_inv, out_keys_inv)
        self.register_buffer("loc", loc)
        self.register_buffer("scale", scale)
        set_plain(self, "standard_normal", standard_normal)
        set_plain(self, "_explicit", loc is not None)
        set_plain(self, "_np_bufs", {})

    @property
    def initialized(self) -> bool:
        """Whether ``loc`` and ``scale`` are known."""
        return self.loc is not None and self.scale is not None

    def _loc_scale(self):
        if not self.initialized:
            self._ensure_specs()
            if not self.initialized:
                raise ValueError("ActionScaling has no loc / scale yet: pass loc and scale, or use it in a "
                                 "TransformedEnv whose action spec is Bounded")
        return self.loc, self.scale

    def normalize(self, action: torch.Tensor) -> torch.Tensor:
        """An env-scale action mapped to the normalised range (the forward map)."""
        loc, scale = self._loc_scale()
        out = (action - loc) / scale
        return out if self.standard_normal else (out + 1) / 2

    def denormalize(self, action: torch.Tensor) -> torch.Tensor:
        """A normalised action mapped back to the env's scale (the inverse map)."""
        loc, scale = self._loc_scale()
        if self.standard_normal:
            return action * scale + loc
        return (2 * action - 1) * scale + loc

    _apply_transform = normalize
    _inv_apply_transform = denormalize

    def _step(self, tensordict, next_tensordict):
        return next_tensordict  # actions are not outputs of a step

    def _reset(self, tensordict, tensordict_reset):
        return tensordict_reset

    def _np_step(self, arrays):
        return arrays

    def _np_inv(self, arrays):
        if not self.in_keys_inv:
            return arrays
        in_key, out_key = self.in_keys_inv[0], self.out_keys_inv[0]
        a = arrays.get(out_key)
        if a is None:
            return arrays
        loc, scale = (t.detach().cpu().numpy() for t in self._loc_scale())
        dtype = np.result_type(a.dtype, scale.dtype)
        buf = self._np_bufs.get("inv")
        if buf is None or buf.shape != a.shape or buf.dtype != dtype:
            buf = self._np_bufs["inv"] = np.empty(a.shape, dtype=dtype)
        if self.standard_normal:
            np.multiply(a, scale, out=buf)
        else:
            np.multiply(a, 2, out=buf)
            np.subtract(buf, 1, out=buf)
            np.multiply(buf, scale, out=buf)
        np.add(buf, loc, out=buf)
        if out_key != in_key:
            arrays.pop(out_key)
        arrays[in_key] = buf
        return arrays

    def transform_input_spec(self, input_spec):
        input_spec = input_spec.clone()
        if not self.in_keys_inv:
            return input_spec
        in_key, out_key = self.in_keys_inv[0], self.out_keys_inv[0]
        family = _action_spec(input_spec, in_key, "ActionScaling")
        spec = family[in_key]
        bounded = isinstance(spec, Bounded)
        finite = bounded and bool(torch.isfinite(spec.low).all() and torch.isfinite(spec.high).all())
        if not self._explicit:
            if not bounded:
                raise CompatTypeError(f"ActionScaling requires a Bounded action spec at {in_key!r} to derive loc "
                                      f"and scale, got {type(spec).__name__}; pass loc and scale explicitly")
            if not finite:
                raise CompatValueError(f"ActionScaling requires finite bounds at {in_key!r} to derive loc and "
                                       f"scale, got low={spec.low} and high={spec.high}")
            if not self.initialized:
                self._buffers["loc"] = (spec.high + spec.low) / 2
                self._buffers["scale"] = (spec.high - spec.low) / 2
            low = 0.0 if not self.standard_normal else -1.0
            new = Bounded(low=low, high=1.0, shape=spec.shape, dtype=spec.dtype, device=spec.device)
        elif finite:
            a, b = self.normalize(spec.low).to(spec.dtype), self.normalize(spec.high).to(spec.dtype)
            new = Bounded(low=torch.minimum(a, b), high=torch.maximum(a, b), shape=spec.shape, dtype=spec.dtype,
                          device=spec.device)
        else:
            new = Unbounded(shape=spec.shape, dtype=spec.dtype, device=spec.device)
        if out_key != in_key:
            del family[in_key]
        family[out_key] = new
        return input_spec

    @classmethod
    def from_stats(cls, *, mean=None, std=None, low=None, high=None, eps: float = 1e-6, **kwargs):
        """An ``ActionScaling`` from dataset statistics: ``mean`` and ``std``, or ``low`` and ``high``.

        ``mean`` / ``std`` give ``loc = mean`` and ``scale = std``; ``low`` /
        ``high`` give the mid-point and half-range. ``scale`` is floored at
        ``eps``. Other keywords go to the constructor.

        Raises:
            ValueError: not exactly one complete pair is given.
        """
        by_moments = mean is not None or std is not None
        by_range = low is not None or high is not None
        if by_moments == by_range or (by_moments and (mean is None or std is None)) or (
                by_range and (low is None or high is None)):
            which = ("mean and std must be provided together" if (mean is None) != (std is None) else
                     "low and high must be provided together" if (low is None) != (high is None) else
                     "provide exactly one of (mean, std) or (low, high)")
            raise ValueError(f"ActionScaling.from_stats: {which}; it requires exactly one pair: mean and std, or low "
                             "and high")
        if by_moments:
            loc, scale = torch.as_tensor(mean), torch.as_tensor(std)
        else:
            low, high = torch.as_tensor(low), torch.as_tensor(high)
            loc, scale = (high + low) / 2, (high - low) / 2
        return cls(loc=loc, scale=scale.clamp_min(eps), **kwargs)

    @classmethod
    def from_metadata(cls, metadata, **kwargs):
        """An ``ActionScaling`` from a dataset's metadata (TorchRL's ``RobotDatasetMetadata`` or any object
        with ``action_key``, ``action_mean`` / ``action_std``, ``action_low`` / ``action_high``).

        Mean and std are used when both are set, otherwise low and high; the
        action key defaults to the metadata's (also as ``in_keys`` when
        ``in_keys_inv=[]`` asks for the forward-only mode).

        Raises:
            ValueError: the metadata holds neither pair.
        """
        key = getattr(metadata, "action_key", "action")
        kwargs.setdefault("in_keys_inv", [key])
        if not kwargs["in_keys_inv"]:
            kwargs.setdefault("in_keys", [key])
        mean, std = getattr(metadata, "action_mean", None), getattr(metadata, "action_std", None)
        if mean is not None and std is not None:
            return cls.from_stats(mean=mean, std=std, **kwargs)
        low, high = getattr(metadata, "action_low", None), getattr(metadata, "action_high", None)
        if low is not None and high is not None:
            return cls.from_stats(low=low, high=high, **kwargs)
        raise ValueError(f"ActionScaling.from_metadata: metadata {getattr(metadata, 'dataset_id', metadata)!r} has "
                         "no action normalization statistics (set action_mean/action_std or "
                         "action_low/action_high)")

    def __repr__(self) -> str:
        show = (lambda t: "<uninitialized>" if t is None else t)  # noqa: E731
        return (f"ActionScaling(loc={show(self.loc)}, scale={show(self.scale)}, "
                f"standard_normal={self.standard_normal}, in_keys_inv={self.in_keys_inv})")


# ------------------------------------------------------------------ FlattenAction
def _dim_arg(value, name, allow_positive):
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"FlattenAction requires {name} to be an int, got {value!r}")
    if value >= 0 and not allow_positive:
        raise ValueError(f"FlattenAction requires a negative {name} (so batch dims do not matter), got {value}; "
                         "pass allow_positive_dim=True to count from the front")
    return value


def _flat_spec(spec, first, last):
    shape = torch.empty(spec.shape, device="meta").flatten(first, last).shape
    if isinstance(spec, Bounded):
        return Bounded(low=spec.low.flatten(first, last), high=spec.high.flatten(first, last), shape=shape,
                       dtype=spec.dtype, device=spec.device)
    if isinstance(spec, Unbounded):
        return Unbounded(shape=shape, dtype=spec.dtype, device=spec.device)
    if isinstance(spec, Binary):
        return Binary(shape=shape, dtype=spec.dtype, device=spec.device)
    if type(spec) is Categorical and spec.mask is None:
        return Categorical(spec.n, shape=shape, dtype=spec.dtype, device=spec.device)
    raise TypeError(f"FlattenAction supports Bounded, Unbounded, Binary and unmasked Categorical action specs, "
                    f"got {type(spec).__name__}")


class FlattenAction(Transform):
    """Let the policy write a flat action; reshape it back for the env.

    The action dims ``first_dim..last_dim`` (inclusive) of the env's action
    spec become one dim in the spec the policy sees. The inverse pass
    unflattens the policy's action to the env's shape; the forward pass
    (stored env actions) flattens.

    Args:
        first_dim: the first dim to flatten (negative unless ``allow_positive_dim``).
        last_dim: the last dim to flatten (inclusive).
        in_keys_inv: action keys as the base env names them (default ``["action"]``).
        out_keys_inv: the keys the policy writes (default ``in_keys_inv``).
        in_keys, out_keys: the forward keys (default ``in_keys_inv``).
        allow_positive_dim: accept dims counted from the front.
        action_shape: the env-side shape of the flattened dims (keyword-only), for use
            without an env; otherwise read from the env's action spec.

    Raises:
        TypeError: a dim is not an int, ``action_shape`` is not a sequence of ints, a key is
            not a str or tuple of str, or the action spec is of a kind that cannot be flattened.
        ValueError: a non-negative dim without ``allow_positive_dim``, ``first_dim > last_dim``,
            a non-positive entry in ``action_shape`` or one of the wrong length, key lists of
            different lengths, or an action spec with too few dims.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> t = FlattenAction(action_shape=(2, 3))
        >>> t.inv(TensorDict({"action": torch.arange(6.0)}, []))["action"]
        tensor([[0., 1., 2.],
                [3., 4., 5.]])
    """

    _np_supported = True

    def __init__(self, first_dim: int = -2, last_dim: int = -1, in_keys_inv=None, out_keys_inv=None, in_keys=None,
                 out_keys=None, allow_positive_dim: bool = False, *, action_shape=None):
        check_bool(allow_positive_dim, "FlattenAction", "allow_positive_dim")
        first_dim = _dim_arg(first_dim, "first_dim", allow_positive_dim)
        last_dim = _dim_arg(last_dim, "last_dim", allow_positive_dim)
        if (first_dim < 0) == (last_dim < 0) and first_dim > last_dim:
            raise ValueError(f"FlattenAction requires first_dim <= last_dim, got {first_dim} and {last_dim}")
        if action_shape is not None:
            try:
                action_shape = tuple(action_shape)
            except TypeError:
                raise TypeError(f"FlattenAction requires action_shape to be a sequence of ints, got "
                                f"{action_shape!r}") from None
            if any(isinstance(s, bool) or not isinstance(s, int) for s in action_shape):
                raise TypeError(f"FlattenAction requires action_shape to hold ints, got {action_shape!r}")
            if any(s < 1 for s in action_shape):
                raise ValueError(f"FlattenAction requires positive sizes in action_shape, got {action_shape}")
            if (first_dim < 0) == (last_dim < 0) and len(action_shape) != last_dim - first_dim + 1:
                raise ValueError(f"FlattenAction requires action_shape to have last_dim - first_dim + 1 = "
                                 f"{last_dim - first_dim + 1} entries, got {action_shape}")
        in_keys_inv = ["action"] if in_keys_inv is None else in_keys_inv
        out_keys_inv = in_keys_inv if out_keys_inv is None else out_keys_inv
        in_keys = in_keys_inv if in_keys is None else in_keys
        super().__init__(in_keys, out_keys, in_keys_inv, out_keys_inv)
        set_plain(self, "first_dim", first_dim)
        set_plain(self, "last_dim", last_dim)
        set_plain(self, "allow_positive_dim", allow_positive_dim)
        set_plain(self, "action_shape", action_shape)
        set_plain(self, "_shapes", {key: action_shape for key in self.in_keys_inv} if action_shape is not None else {})

    @property
    def _merged_dim(self) -> int:
        return self.last_dim if self.last_dim < 0 else self.first_dim

    def _shape(self, key):
        shape = self._shapes.get(key)
        if shape is None:
            env = container_env(self)
            if env is not None:
                env.input_spec  # noqa: B018 - computing the input spec records the shapes
                shape = self._shapes.get(key)
        if shape is None:
            raise ValueError(f"FlattenAction has no env-side shape for {key!r}: pass action_shape, or use it in a "
                             "TransformedEnv whose action spec holds that key")
        return shape

    def _apply_transform(self, obs):
        return obs.flatten(self.first_dim, self.last_dim)

    def _step(self, tensordict, next_tensordict):
        return next_tensordict

    def _reset(self, tensordict, tensordict_reset):
        return tensordict_reset

    def _inv_call(self, tensordict):
        for in_key, out_key in zip(self.in_keys_inv, self.out_keys_inv):
            value = tensordict.get(out_key, None)
            if value is None:
                self._missing(out_key, tensordict)
                continue
            tensordict.set(in_key, value.unflatten(self._merged_dim, self._shape(in_key)))
        return tensordict

    def _np_step(self, arrays):
        return arrays

    def _np_inv(self, arrays):
        for in_key, out_key in zip(self.in_keys_inv, self.out_keys_inv):
            a = arrays.get(out_key)
            if a is None:
                continue
            axis = self._merged_dim % a.ndim
            arrays[in_key] = a.reshape(a.shape[:axis] + tuple(self._shape(in_key)) + a.shape[axis + 1:])
        return arrays

    def transform_input_spec(self, input_spec):
        input_spec = input_spec.clone()
        for in_key, out_key in zip(self.in_keys_inv, self.out_keys_inv):
            family = _action_spec(input_spec, in_key, "FlattenAction")
            spec = family[in_key]
            nd = spec.ndim
            ok = (-self.first_dim <= nd) if self.first_dim < 0 else (self.last_dim < nd)
            if not ok or (self.first_dim % max(nd, 1)) > (self.last_dim % max(nd, 1)):
                raise ValueError(f"FlattenAction(first_dim={self.first_dim}, last_dim={self.last_dim}) does not fit "
                                 f"the action spec of {in_key!r} with shape {tuple(spec.shape)}")
            self._shapes[in_key] = tuple(spec.shape[self.first_dim:(self.last_dim + 1) or None])
            new = _flat_spec(spec, self.first_dim, self.last_dim)
            if out_key != in_key:
                del family[in_key]
            family[out_key] = new
        return input_spec

    def __repr__(self) -> str:
        return (f"FlattenAction(first_dim={self.first_dim}, last_dim={self.last_dim}, "
                f"in_keys_inv={self.in_keys_inv}, out_keys_inv={self.out_keys_inv})")


# ------------------------------------------------------------------ ActionDiscretizer
class _Sampling(enum.IntEnum):
    """Where in its bin a discrete action lands: the middle, the lower end, the upper end or at random."""

    MEDIAN = 0
    LOW = 1
    HIGH = 2
    RANDOM = 3


class ActionDiscretizer(_LazyBuffers, _NoBuffersOnCopy, Transform):
    """Let the policy pick one of ``num_intervals`` bins per action entry of a ``Bounded`` action.

    Each entry's range ``[low, high]`` is cut into equal bins; the inverse
    pass maps a bin index to a value of that bin: its middle (``MEDIAN``,
    default), its lower end (``LOW``), its upper end (``HIGH``) or a uniform
    draw inside it (``RANDOM``). The policy sees a ``MultiCategorical`` spec
    (``MultiOneHot`` with ``categorical=False``) over the action entries, or a
    ``Categorical`` (``OneHot``) one when the env's action is a scalar. With
    ``out_action_key`` different from ``action_key`` the policy writes the
    bins there, the continuous action moves to the state spec and is written
    next to them at each step. ``intervals`` (and ``nvec``) are buffers set
    when the env's spec is first read; ``RANDOM`` keeps none.

    Args:
        num_intervals: bins per entry: an int, or one int per action entry (a tensor or list).
        action_key: the env's continuous action (default ``"action"``).
        out_action_key: where the policy writes the bins (default ``action_key``).
        sampling: an ``ActionDiscretizer.SamplingStrategy`` (or its int value); default ``MEDIAN``.
        categorical: bin indices (True, default) or one-hot vectors.

    Raises:
        TypeError: ``num_intervals`` is not an int or a sequence of ints, a key is not a str
            or tuple of str, ``categorical`` is not a bool, or the env's action spec is not ``Bounded``.
        ValueError: a bin count below 1, an unknown ``sampling``, a per-entry ``num_intervals``
            whose length differs from the action's last dim, or infinite action bounds.

    Examples:
        >>> import torch
        >>> from numbarl.torch_api import GymEnv, TransformedEnv
        >>> env = TransformedEnv(GymEnv("Pendulum-v1"), ActionDiscretizer(5))
        >>> env.action_spec.nvec
        tensor([5])
        >>> env.transform.intervals
        tensor([[-1.6000, -0.8000,  0.0000,  0.8000,  1.6000]])
    """

    SamplingStrategy = _Sampling
    _lazy_buffers = ("intervals", "nvec", "num_intervals")

    def __init__(self, num_intervals, action_key="action", out_action_key=None, sampling=None,
                 categorical: bool = True):
        if isinstance(num_intervals, bool):
            raise TypeError(f"ActionDiscretizer requires num_intervals to be an int or a sequence of ints, got "
                            f"{num_intervals!r}")
        if isinstance(num_intervals, numbers.Integral):
            if num_intervals < 1:
                raise ValueError(f"ActionDiscretizer requires num_intervals >= 1, got {num_intervals}")
            counts = int(num_intervals)
        else:
            try:
                counts = torch.as_tensor(num_intervals)
            except (TypeError, ValueError, RuntimeError):
                raise TypeError(f"ActionDiscretizer requires num_intervals to be an int or a sequence of ints, "
                                f"got {num_intervals!r}") from None
            if counts.is_floating_point() or counts.dtype == torch.bool or counts.ndim != 1:
                raise TypeError(f"ActionDiscretizer requires num_intervals to be an int or a 1-D sequence of "
                                f"ints, got {num_intervals!r}")
            if counts.numel() == 0 or bool((counts < 1).any()):
                raise ValueError(f"ActionDiscretizer requires every num_intervals entry >= 1, got {counts}")
            counts = counts.long()
        action_key = one_key(action_key, "ActionDiscretizer", "action_key")
        out_action_key = action_key if out_action_key is None else one_key(out_action_key, "ActionDiscretizer",
                                                                           "out_action_key")
        if sampling is None:
            sampling = _Sampling.MEDIAN
        try:
            sampling = _Sampling(sampling)
        except ValueError:
            raise ValueError(f"ActionDiscretizer requires sampling to be one of MEDIAN, LOW, HIGH, RANDOM "
                             f"(0 to 3), got {sampling!r}") from None
        check_bool(categorical, "ActionDiscretizer", "categorical")
        super().__init__(in_keys_inv=[action_key], out_keys_inv=[out_action_key])
        for name in self._lazy_buffers:
            self.register_buffer(name, None)
        if isinstance(counts, torch.Tensor) and sampling != _Sampling.RANDOM:
            self._buffers["num_intervals"] = counts
        set_plain(self, "_counts", counts)
        set_plain(self, "action_key", action_key)
        set_plain(self, "out_action_key", out_action_key)
        set_plain(self, "sampling", sampling)
        set_plain(self, "categorical", categorical)
        set_plain(self, "_table", None)  # (lows, highs or values) per entry and bin
        set_plain(self, "_last", None)
        set_plain(self, "_np_bufs", {})

    @property
    def _np_supported(self) -> bool:
        return (self.sampling != _Sampling.RANDOM and self.out_action_key == self.action_key
                and (self.categorical or isinstance(self._counts, int)))

    def custom_arange(self, nint: int, device=None) -> torch.Tensor:
        """Where the bins of one entry sit in ``[0, 1]``: ``MEDIAN`` / ``LOW`` / ``HIGH`` positions.

        ``RANDOM`` uses the ``LOW`` positions as bin starts. Override to place
        the bins differently.
        """
        start = torch.arange(nint, dtype=torch.float32, device=device) / nint
        if self.sampling in (_Sampling.LOW, _Sampling.RANDOM):
            return start
        end = 1 - start.flip(-1)
        return end if self.sampling == _Sampling.HIGH else (start + end) / 2

    def _init(self, spec, batch_ndim):
        feature = spec.shape[batch_ndim:]
        low, high = spec.low, spec.high
        if not bool(torch.isfinite(low).all() and torch.isfinite(high).all()):
            raise ValueError(f"ActionDiscretizer requires finite action bounds, got low={low} and high={high}")
        if len(feature) == 0:
            low, high = low.unsqueeze(-1), high.unsqueeze(-1)
        d = low.shape[-1]
        counts = self._counts
        if isinstance(counts, int):
            nvec = torch.full((d,), counts, dtype=torch.long)
        else:
            if counts.numel() != d:
                raise ValueError(f"ActionDiscretizer requires one num_intervals entry per action entry ({d}), got "
                                 f"{counts.numel()}")
            nvec = counts
        width = int(nvec.max())

        def rows(fn):  # (d, width): one row of bin positions per action entry, padded with NaN
            out = torch.full((len(nvec), width), float("nan"), device=spec.device)
            for n in nvec.unique().tolist():  # one call per distinct bin count
                out[nvec == n] = F.pad(fn(n), (0, width - n), value=float("nan"))
            return out

        pos = rows(lambda n: self.custom_arange(n, spec.device))
        lo, hi = low.unsqueeze(-1), high.unsqueeze(-1)
        table = (lo + (hi - lo) * pos).to(spec.dtype)
        if self.sampling == _Sampling.RANDOM:
            ends = rows(lambda n: 1 - (torch.arange(n, dtype=torch.float32, device=spec.device) / n).flip(-1))
            set_plain(self, "_table", (table, (lo + (hi - lo) * ends).to(spec.dtype)))
        else:
            set_plain(self, "_table", (table, None))
            self._buffers["nvec"] = nvec.clone()
            if isinstance(counts, int):
                self._buffers["intervals"] = table
        set_plain(self, "_scalar", len(feature) == 0)
        return nvec, feature

    def _indices(self, value):
        """Bin indices (one per action entry) from the policy's action."""
        if self.categorical:
            idx = value.long()
            return idx.unsqueeze(-1) if self._scalar else idx
        group, within = self._groups  # per one-hot column: its action entry and its bin
        hot = value.long() * within.to(value.device)
        out = torch.zeros(value.shape[:-1] + (int(group[-1]) + 1,), dtype=torch.long, device=value.device)
        return out.index_add_(-1, group.to(value.device), hot)

    def _continuous(self, value):
        if self._table is None:
            self._ensure_specs()
            if self._table is None:
                raise ValueError("ActionDiscretizer needs the env's action spec: use it in a TransformedEnv")
        idx = self._indices(value)
        table, ends = self._table
        lead = idx.shape + (table.shape[-1],)
        out = torch.gather(table.expand(lead), -1, idx.unsqueeze(-1)).squeeze(-1)
        if ends is not None:
            top = torch.gather(ends.expand(lead), -1, idx.unsqueeze(-1)).squeeze(-1)
            out = out + (top - out) * torch.rand(out.shape, dtype=out.dtype, device=out.device)
        return out.squeeze(-1) if self._scalar else out

    def _inv_call(self, tensordict):
        value = tensordict.get(self.out_action_key, None)
        if value is None:
            self._missing(self.out_action_key, tensordict)
            return tensordict
        cont = self._continuous(value)
        tensordict.set(self.action_key, cont)
        if self.out_action_key != self.action_key:
            set_plain(self, "_last", cont)
        return tensordict

    def _step(self, tensordict, next_tensordict):
        last = self._last
        if last is not None:
            tensordict.set(self.action_key, last)  # the continuous action, next to the bins
            set_plain(self, "_last", None)
        return next_tensordict

    def _reset(self, tensordict, tensordict_reset):
        return tensordict_reset

    def _np_step(self, arrays):
        return arrays

    def _np_inv(self, arrays):
        a = arrays.get(self.out_action_key)
        if a is None:
            return arrays
        if self._table is None:
            self._continuous(torch.as_tensor(a))  # initialises from the env
        table = self._np_bufs.get("table")
        if table is None:
            table = self._np_bufs["table"] = self._table[0].detach().cpu().numpy()
        if self.categorical:
            idx = a.astype(np.int64, copy=False)
            idx = idx[..., None] if self._scalar else idx
        else:
            n = table.shape[-1]
            idx = a.reshape(a.shape[:-1] + (-1, n)).argmax(-1)
        out = np.take_along_axis(table, idx[..., None], -1)[..., 0]
        arrays[self.action_key] = out[..., 0] if self._scalar else out
        return arrays

    def transform_input_spec(self, input_spec):
        input_spec = input_spec.clone()
        family = _action_spec(input_spec, self.action_key, "ActionDiscretizer")
        spec = family[self.action_key]
        if not isinstance(spec, Bounded):
            raise TypeError(f"ActionDiscretizer requires a Bounded action spec at {self.action_key!r}, got "
                            f"{type(spec).__name__}")
        batch_ndim = len(input_spec.shape)
        nvec, feature = self._init(spec, batch_ndim)
        group = torch.repeat_interleave(torch.arange(len(nvec)), nvec)
        starts = torch.cumsum(nvec, 0) - nvec
        set_plain(self, "_groups", (group, torch.arange(int(nvec.sum())) - starts[group]))
        set_plain(self, "_np_bufs", {})
        if len(feature) == 0:
            n = int(nvec[0])
            new = (Categorical(n, shape=spec.shape, device=spec.device) if self.categorical
                   else OneHot(n, shape=spec.shape + (n,), device=spec.device))
        elif self.categorical:
            new = MultiCategorical(nvec, shape=spec.shape, device=spec.device)
        else:
            new = MultiOneHot(nvec, shape=spec.shape[:-1] + (int(nvec.sum()),), device=spec.device)
        if self.out_action_key != self.action_key:
            del family[self.action_key]
            input_spec["full_state_spec"][self.action_key] = spec
        family[self.out_action_key] = new
        return input_spec

    def __repr__(self) -> str:
        return (f"ActionDiscretizer(\n    num_intervals={self._counts},\n    action_key={self.action_key},\n"
                f"    out_action_key={self.out_action_key},\n    sampling={int(self.sampling)},\n"
                f"    categorical={self.categorical})")


# ------------------------------------------------------------------ ActionMask
_MASKABLE = (Categorical, OneHot)


class ActionMask(Transform):
    """Restrict the env's discrete action spec to the legal actions the env reports.

    After every reset and step the mask entry (``mask_key``) of the output is
    given to the action spec's ``update_mask``, so ``rand_action`` and
    ``is_in`` only accept legal actions. Works with ``Categorical``,
    ``OneHot``, ``MultiCategorical`` and ``MultiOneHot`` action specs. The
    mask lives in the env's (cached) action spec, so the transform needs an env.

    Args:
        action_key: the action entry (default ``"action"``).
        mask_key: the entry holding the bool mask (default ``"action_mask"``).

    Raises:
        TypeError: a key is not a str or a tuple of str, or the action spec is not discrete.
        ValueError: the transform is used without an env.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> from numbarl.torch_api import Binary, Categorical, Composite, EnvBase, TransformedEnv, Unbounded
        >>> class Env(EnvBase):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.action_spec = Categorical(4)
        ...         self.observation_spec = Composite(action_mask=Binary(4, dtype=torch.bool))
        ...         self.reward_spec = Unbounded(1)
        ...     def _reset(self, td):
        ...         self.mask = torch.ones(4, dtype=torch.bool)
        ...         return TensorDict({"action_mask": self.mask.clone()}, [])
        ...     def _step(self, td):
        ...         self.mask[td["action"]] = False
        ...         return TensorDict({"action_mask": self.mask.clone(), "reward": torch.zeros(1),
        ...                            "done": (~self.mask.any()).view(1)}, [])
        ...     def _set_seed(self, seed):
        ...         pass
        >>> env = TransformedEnv(Env(), ActionMask())
        >>> td = env.rollout(10)
        >>> td["action"].sort().values
        tensor([0, 1, 2, 3])
    """

    def __init__(self, action_key="action", mask_key="action_mask"):
        action_key = one_key(action_key, "ActionMask", "action_key")
        mask_key = one_key(mask_key, "ActionMask", "mask_key")
        super().__init__()
        set_plain(self, "in_keys", [action_key, mask_key])
        set_plain(self, "action_key", action_key)
        set_plain(self, "mask_key", mask_key)

    def _call(self, next_tensordict):
        env = container_env(self)
        if env is None:
            raise ValueError("ActionMask needs an env: use it in a TransformedEnv")
        mask = next_tensordict.get(self.mask_key, None)
        if mask is None:
            self._missing(self.mask_key, next_tensordict)
            return next_tensordict
        spec = env.full_action_spec[self.action_key]
        if not isinstance(spec, _MASKABLE):
            raise TypeError(f"ActionMask requires a Categorical, OneHot, MultiCategorical or MultiOneHot action "
                            f"spec at {self.action_key!r}, got {type(spec).__name__}")
        spec.update_mask(mask.clone())
        return next_tensordict

    def transform_input_spec(self, input_spec):
        part = part_of(input_spec, self.action_key, INPUT_PARTS)
        if part is not None and not isinstance(input_spec[part][self.action_key], _MASKABLE):
            raise TypeError(f"ActionMask requires a Categorical, OneHot, MultiCategorical or MultiOneHot action "
                            f"spec at {self.action_key!r}, got {type(input_spec[part][self.action_key]).__name__}")
        return input_spec

    def __repr__(self) -> str:
        return f"ActionMask(action_key={self.action_key}, mask_key={self.mask_key})"
