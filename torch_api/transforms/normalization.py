"""Normalization transforms: ``VecNorm``, ``VecNormV2`` and ``ObservationNorm`` (TorchRL 0.14.1 API).

``VecNorm`` / ``VecNormV2`` keep running statistics (float64 mean and
centred second moment per key, see ``numbarl.core.moments``); every call
updates them with the new data first and then normalizes that data with the
updated statistics, in one fused kernel call. ``ObservationNorm`` applies a
fixed affine map and can estimate it from rollouts of its parent env
(``init_stats``, through the same moment kernels).

CUDA data stays on its device: the CUDA twins of the moment kernels
(``numbarl.core.cuda.moments``) run on the tensors' memory, VecNorm
statistics move to the data's device, and ObservationNorm's affine map runs
there with its loc and scale on that device.

Examples:
    >>> import torch
    >>> from numbarl.torch_api import GymEnv, TransformedEnv
    >>> env = TransformedEnv(GymEnv("Pendulum-v1"), VecNorm(in_keys=["observation"], out_keys=["obs_norm"],
    ...                      decay=1.0))
    >>> _ = env.set_seed(0)
    >>> td = env.rollout(200)
    >>> seen = torch.cat([td["observation"][:1], td["next", "observation"]])  # reset, then every step
    >>> on = env.transform.to_observation_norm()
    >>> torch.allclose(on.loc, seen.mean(0)), torch.allclose(on.scale, seen.std(0, correction=0))
    (True, True)
    >>> last = (td["next", "observation"][-1] - seen.mean(0)) / seen.std(0, correction=0)
    >>> torch.allclose(td["next", "obs_norm"][-1], last)  # normalized by the statistics of all 201
    True
"""
from __future__ import annotations

import math
import numbers
from collections import OrderedDict

import numpy as np
import torch
from tensordict import TensorDict, TensorDictBase

from numbarl.core.moments import moments_init

from .._arrays import as_array, is_cuda
from .._device import launch
from ..specs import Bounded
from ._state import BufferMirrors
from ._checks import check_choice, check_keys, check_lock, check_number
from ._vecnorm_base import _VecNormBase
from ._vecnorm_stats import field_name, key_parts, state_to_torchrl_legacy
from ._vecnorm_v2 import VecNormV2
from .base import Transform

__all__ = ["ObservationNorm", "VecNorm", "VecNormV2"]

_DEFAULT_KEYS = ["observation", "reward"]


class VecNorm(_VecNormBase):
    """Running mean / standard deviation normalization (TorchRL 0.14.1's legacy ``VecNorm``).

    Each call merges the data into the running statistics of each in_key and
    then normalizes it with the updated statistics: ``(x - mean) /
    sqrt(max(var, eps))`` (the variance is floored at ``eps``, as TorchRL's
    VecNorm does). The dims of the tensordict's batch (or, with ``shapes``,
    all dims before the given shape) are merged into the statistics, so a
    batch of N sub-envs updates one set of statistics per step.

    ``VecNorm(..., new_api=True)`` returns a :class:`VecNormV2` instead
    (``__new__`` picks the class; ``shapes`` is not taken then).

    Statistics are float64 mean and centred second moment (nothing cancels).
    TorchRL keeps decayed float32 sums of ``x`` and ``x**2`` and forms
    ``ssq / count - mean**2``, which cancels when the mean is large compared
    to the std; where that does not bite both agree to float32 rounding
    (the decayed weights are the same: ``decay`` is applied once per update).
    Unlike TorchRL 0.14.1, which keeps updating, a VecNorm in ``eval()``
    mode does not update its statistics, as TorchRL's documentation says.

    ``get_extra_state`` returns plain tensors (``{key}_loc``, ``_m2``,
    ``_weight``, ``_count``); ``set_extra_state`` / ``load_state_dict`` also
    take TorchRL's ``{key}_sum`` / ``_ssq`` / ``_count`` (E[x**2] sums,
    converted to the mean and variance TorchRL normalizes with);
    ``to_torchrl_state_dict()`` writes TorchRL's format. NaN or inf raises
    ``NonFiniteError`` naming the key unless ``nonfinite="skip"``.

    CUDA data is normalized on its device (``numbarl.core.cuda.moments``)
    and the statistics move there with it (or with ``.to(device)``); nothing
    is read back per call. There, a batch that would raise on the CPU (NaN
    or inf with ``nonfinite="raise"``, overflow) is rejected instead: the
    statistics are unchanged, that key's output is all NaN, and
    :meth:`check_rejected` raises for it later. Statistics in ``shared_td``
    (host shared memory) refuse CUDA data with a ValueError.

    Args:
        in_keys: keys to normalize. Default ``["observation", "reward"]``.
        out_keys: destination keys (default: ``in_keys``); same length.
        shared_td: a TensorDict from :meth:`build_td_for_shared_vecnorm`
            (in shared memory) that holds the statistics.
        lock: context manager taken around updates (e.g. a
            ``multiprocessing.Lock`` shared with the other processes).
        decay: in (0, 1]. Default 0.9999.
        eps: floor of the variance, > 0. Default 1e-4.
        shapes: the feature shape of each in_key (trailing dims).
        new_api: True returns a :class:`VecNormV2`.
        nonfinite: "raise" (default) or "skip".

    Raises:
        TypeError: wrong key, number, lock, shapes or shared_td type.
        ValueError: out_keys or shapes of another length than in_keys,
            decay outside (0, 1], eps <= 0, bad nonfinite.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> t = VecNorm(in_keys=["x"], decay=1.0)
        >>> _ = t(TensorDict({"x": torch.tensor([[0.0], [2.0]])}, [2]))
        >>> t(TensorDict({"x": torch.tensor([[1.0], [4.0]])}, [2]))["x"]
        tensor([[-0.5071],
                [ 1.5213]])
        >>> type(VecNorm(in_keys=["x"], new_api=True)).__name__
        'VecNormV2'
    """

    _style = "legacy"

    def __new__(cls, in_keys=None, out_keys=None, shared_td=None, lock=None, decay=0.9999, eps=1e-4, shapes=None,
                new_api=None, nonfinite="raise"):
        if new_api is not None and not isinstance(new_api, bool):
            raise TypeError(f"VecNorm requires new_api as a bool or None, got {type(new_api).__name__}: {new_api!r}")
        if new_api:
            if shapes is not None:
                raise ValueError("VecNorm(new_api=True) takes no shapes (VecNormV2 infers them), got "
                                 f"{shapes!r}")
            return VecNormV2(_DEFAULT_KEYS if in_keys is None else in_keys, out_keys, lock=lock, decay=decay,
                             eps=eps, shared_data=shared_td, nonfinite=nonfinite)
        return super().__new__(cls)

    def __init__(self, in_keys=None, out_keys=None, shared_td=None, lock=None, decay: float = 0.9999,
                 eps: float = 1e-4, shapes=None, new_api=None, nonfinite: str = "raise"):
        owner = "VecNorm"
        in_keys, out_keys = check_keys(owner, list(_DEFAULT_KEYS) if in_keys is None else in_keys, out_keys)
        decay = check_number(decay, owner, "decay", 0.0, 1.0)
        eps = check_number(eps, owner, "eps", 0.0, float("inf"))
        nonfinite = check_choice(nonfinite, owner, "nonfinite", ("raise", "skip"))
        lock = check_lock(lock, owner)
        if shared_td is not None and not isinstance(shared_td, TensorDictBase):
            raise TypeError(f"{owner} requires shared_td as a TensorDict or None, got {type(shared_td).__name__}")
        shapes = _check_shapes(owner, shapes, len(in_keys))
        super().__init__(in_keys=in_keys, out_keys=out_keys)
        self._init_stats_state(decay, eps, nonfinite, lock)
        self.__dict__["shapes"] = shapes
        if shared_td is not None:
            self._stats.use_td(shared_td, owner)

    def _feature_shape(self, i, shape, batch_ndim):
        if self.shapes is None:
            return shape[batch_ndim:]
        want = self.shapes[i]
        if len(shape) < len(want) or (want and shape[len(shape) - len(want):] != want):
            raise ValueError(f"VecNorm: key {self.in_keys[i]!r} has shape {shape}, which does not end with "
                             f"shapes[{i}] = {want}")
        return want

    def _known_shape(self, i):
        return None if self.shapes is None else self.shapes[i]

    def _eps_std(self) -> float:
        return math.sqrt(self.eps)

    def _updating(self) -> bool:
        return self.training

    @staticmethod
    def build_td_for_shared_vecnorm(env, keys=None, memmap: bool = False) -> TensorDictBase:
        """A TensorDict in shared memory (or memory-mapped) to hold the statistics of ``keys`` of ``env``.

        Pass it as ``shared_td`` to a VecNorm with the same ``in_keys`` in each
        process (with a shared ``lock``). It holds ``loc``, ``m2``,
        ``weight`` and ``count`` per key, the feature shape taken from the env
        specs (without the env batch dims).

        Args:
            env: an env whose observation or reward spec holds every key.
            keys: the keys. Default ``["observation", "reward"]``.
            memmap: memory-map the tensors instead of placing them in shared memory.

        Raises:
            KeyError: a key is in no observation or reward spec of ``env``.

        Examples:
            >>> from numbarl.torch_api import GymEnv
            >>> td = VecNorm.build_td_for_shared_vecnorm(GymEnv("Pendulum-v1"), ["observation", "reward"])
            >>> td.is_shared(), td["loc", "observation"].shape, td["count", "reward"].dtype
            (True, torch.Size([3]), torch.int64)
        """
        keys = check_keys("VecNorm.build_td_for_shared_vecnorm", list(_DEFAULT_KEYS) if keys is None else keys,
                          None)[0]
        specs = (env.full_observation_spec, env.full_reward_spec)
        bnd = len(env.batch_size)
        td = TensorDict(batch_size=[])
        for key in keys:
            spec = next((c.get(key) for c in specs if c.get(key) is not None), None)
            if spec is None:
                raise KeyError(f"VecNorm.build_td_for_shared_vecnorm: key {key!r} is in no observation or reward "
                               f"spec; observation keys: {sorted(map(str, specs[0].keys(True, True)))}")
            shape = tuple(spec.shape[bnd:])
            parts = key_parts(key)
            td.set(("loc",) + parts, torch.zeros(shape, dtype=torch.float64))
            td.set(("m2",) + parts, torch.zeros(shape, dtype=torch.float64))
            td.set(("weight",) + parts, torch.zeros(1, dtype=torch.float64))
            td.set(("count",) + parts, torch.zeros(1, dtype=torch.int64))
        return td.memmap_() if memmap else td.share_memory_()

    def to_observation_norm(self):
        """An ``ObservationNorm`` (a ``Compose`` of one per key if several) with the current mean and scale.

        Raises:
            ValueError: no data seen yet for a key.

        Examples:
            >>> import torch
            >>> from tensordict import TensorDict
            >>> t = VecNorm(in_keys=["x"], decay=1.0)
            >>> _ = t(TensorDict({"x": torch.tensor([[1.0], [3.0]])}, [2]))
            >>> on = t.to_observation_norm()
            >>> on.loc, on.scale
            (tensor([2.]), tensor([1.]))
        """
        return self._observation_norms()

    def to_torchrl_state_dict(self, dtype: torch.dtype = torch.float32) -> OrderedDict:
        """A state dict that TorchRL 0.14.1's legacy VecNorm (same keys) loads: ``{key}_sum``, ``_ssq``, ``_count``.

        Args:
            dtype: floating dtype of the exported sums.

        Raises:
            ValueError: no data seen yet for a key.

        Examples:
            >>> import torch
            >>> from tensordict import TensorDict
            >>> t = VecNorm(in_keys=["x"], decay=1.0)
            >>> _ = t(TensorDict({"x": torch.tensor([[1.0], [3.0]])}, [2]))
            >>> t.to_torchrl_state_dict()["_extra_state"]
            {'x_sum': tensor([4.]), 'x_ssq': tensor([10.]), 'x_count': tensor([2.])}
        """
        extra = {}
        for i, (key, s) in enumerate(zip(self.in_keys, self._stats.states)):
            if s is None:
                raise ValueError(f"VecNorm.to_torchrl_state_dict: no statistics for {key!r} yet")
            with self._stats.locked():
                arrays = state_to_torchrl_legacy(self._stats.host_copy(i))
            for field, a in zip(("sum", "ssq", "count"), arrays):
                extra[field_name(field, key, "legacy")] = torch.from_numpy(a).to(dtype)
        return OrderedDict(_extra_state=extra)

    def __repr__(self) -> str:
        return (f"VecNorm(decay={self.decay:4.4f},eps={self.eps:4.4f}, in_keys={self.in_keys}, "
                f"out_keys={self.out_keys})")


def _check_shapes(owner, shapes, n):
    if shapes is None:
        return None
    if not isinstance(shapes, (list, tuple)):
        raise TypeError(f"{owner} requires shapes as a list of torch.Size (one per in_key), "
                        f"got {type(shapes).__name__}")
    if len(shapes) != n:
        raise ValueError(f"{owner} requires shapes of the same length as in_keys ({n}), got {len(shapes)}")
    out = []
    for s in shapes:
        if isinstance(s, int) and not isinstance(s, bool):
            s = (s,)
        if not isinstance(s, (tuple, list, torch.Size)) or not all(isinstance(d, int) and d > 0 for d in s):
            raise TypeError(f"{owner} requires each of shapes as a torch.Size of positive ints, got {s!r}")
        out.append(tuple(int(d) for d in s))
    return out


class _UninitializedError(RuntimeError, ValueError):
    """ObservationNorm used before loc and scale exist (a RuntimeError, as in TorchRL, and a ValueError)."""


_UNINIT = ("Loc/Scale have not been initialized. Either pass in values in the constructor or call the "
           "init_stats method")


def _as_stat(owner, name, value):
    if value is None or isinstance(value, torch.Tensor):
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{owner} requires {name} as a float, a tensor or None, got {type(value).__name__}")
    return torch.tensor(float(value), dtype=torch.get_default_dtype())


def _dims(owner, name, value, ndim):
    items = (value,) if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(items, (tuple, list)) or not all(isinstance(d, int) and not isinstance(d, bool) for d in items):
        raise TypeError(f"{owner} requires {name} as an int or a tuple of ints, got {value!r}")
    out = []
    for d in items:
        if not -ndim <= d < ndim:
            raise ValueError(f"{owner} requires {name} within the {ndim} dims of the data, got {value!r}")
        out.append(d % ndim)
    return out


class ObservationNorm(BufferMirrors, Transform):
    """Affine normalization with fixed ``loc`` and ``scale`` (TorchRL 0.14.1's ``ObservationNorm``).

    ``obs * scale + loc``, or ``(obs - loc) / scale`` with
    ``standard_normal=True``; the inverse transform (``in_keys_inv``) undoes
    it. ``init_stats`` estimates ``loc`` and ``scale`` (mean and unbiased
    std, floored at ``eps``) from random rollouts of the parent env through
    the moment kernels of ``numbarl.core``; without ``standard_normal`` it
    stores ``-mean / std`` and ``1 / std``. Before loc and scale exist, any
    use raises the error TorchRL raises (a RuntimeError, here also a
    ValueError). The affine map itself is two elementwise operations (torch
    on tensors, NumPy with ``out=`` on the array path), in the same dtype as
    TorchRL's. A Bounded spec gets the elementwise min / max of its mapped
    bounds (TorchRL 0.14.1 gives low == high == loc for a negative scale).
    In-keys absent at reset (a reward) are skipped there, as in TorchRL.

    CUDA data is mapped on its device by the same torch operations, with
    loc and scale on that device (the buffers themselves when they are
    there, e.g. after ``.to(device)`` or ``init_stats`` on CUDA data, else
    copies made once); ``standard_normal`` is read on the host once, not per
    call. ``init_stats`` on CUDA rollouts uses ``numbarl.core.cuda.moments``
    and leaves loc and scale on the data's device; it reads nothing back, so
    a rollout holding NaN or inf makes loc and scale NaN instead of raising.

    Args:
        loc, scale: float or tensor, or None to set them with ``init_stats``.
        in_keys: keys to normalize (required).
        out_keys: destination keys (default ``in_keys``).
        in_keys_inv: keys the inverse transform writes (env side).
        out_keys_inv: keys it reads (policy side; default ``in_keys_inv``).
        standard_normal: use ``(obs - loc) / scale``.
        eps: floor of the std estimated by ``init_stats``. Default 1e-6.

    Raises:
        TypeError: in_keys missing, wrong key/loc/scale/eps types.
        ValueError: out_keys of another length, eps <= 0.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> t = ObservationNorm(loc=1.0, scale=2.0, in_keys=["obs"], in_keys_inv=["act"])
        >>> t(TensorDict({"obs": torch.tensor([1.0, 2.0])}, []))["obs"]
        tensor([3., 5.])
        >>> t.inv(TensorDict({"act": torch.tensor([3.0])}, []))["act"]
        tensor([1.])
        >>> ObservationNorm(in_keys=["obs"])(TensorDict({"obs": torch.ones(1)}, []))
        Traceback (most recent call last):
        ...
        numbarl...._UninitializedError: ObservationNorm: Loc/Scale have not been initialized. Either pass in values ...
    """

    _np_supported = True
    _host_buffers = {"standard_normal": bool}

    def __init__(self, loc=None, scale=None, in_keys=None, out_keys=None, in_keys_inv=None, out_keys_inv=None,
                 standard_normal: bool = False, eps: float | None = None):
        owner = "ObservationNorm"
        if in_keys is None:
            raise TypeError(f"{owner} requires in_keys (a key or a list of keys), got None")
        in_keys, out_keys = check_keys(owner, in_keys, out_keys)
        loc, scale = _as_stat(owner, "loc", loc), _as_stat(owner, "scale", scale)
        if not isinstance(standard_normal, bool):
            raise TypeError(f"{owner} requires standard_normal as a bool, got {type(standard_normal).__name__}")
        eps = check_number(eps, owner, "eps", 0.0, float("inf"), allow_none=True)
        super().__init__(in_keys, out_keys, in_keys_inv, out_keys_inv)
        self.register_buffer("standard_normal", torch.tensor(standard_normal))
        self.register_buffer("loc", loc)
        self.register_buffer("scale", scale)
        self.__dict__["eps"] = eps
        self.__dict__["_np_cache"] = {}
        self._prime_host_values()

    @property
    def initialized(self) -> bool:
        """Whether loc and scale exist.

        Examples:
            >>> ObservationNorm(in_keys=["x"]).initialized, ObservationNorm(0.0, 1.0, in_keys=["x"]).initialized
            (False, True)
        """
        return self.loc is not None and self.scale is not None

    def _check_ready(self):
        if not self.initialized:
            raise _UninitializedError(f"ObservationNorm: {_UNINIT}")

    def _apply_transform(self, obs):
        if is_cuda(obs):
            return self._device_affine(obs, inverse=False)
        self._check_ready()
        if self.standard_normal:
            return (obs - self.loc) / self.scale
        return obs * self.scale + self.loc

    def _inv_apply_transform(self, state):
        if is_cuda(state):
            return self._device_affine(state, inverse=True)
        self._check_ready()
        if self.standard_normal:
            return state * self.scale + self.loc
        return (state - self.loc) / self.scale

    def _device_affine(self, x, inverse: bool):
        """The affine map (or its inverse) of CUDA data, on its device: the CPU path's torch operations."""
        self._check_ready()
        loc, scale = self._buffer_on("loc", x.device), self._buffer_on("scale", x.device)
        if self._host_value("standard_normal") != inverse:
            return (x - loc) / scale
        return x * scale + loc

    def _reset(self, tensordict, tensordict_reset):
        """Normalize the in_keys present at reset (a reward key, absent there, is skipped as in TorchRL)."""
        for ik, ok in zip(self.in_keys, self.out_keys):
            value = tensordict_reset.get(ik, None)
            if value is not None:
                tensordict_reset.set(ok, self._apply_transform(value))
        return tensordict_reset

    # ------------------------------------------------------------ array path
    def _np_params(self, dtype):
        """(result dtype, loc, scale) as NumPy arrays for inputs of ``dtype``, by torch's promotion rules."""
        cache = self._np_cache
        key = ("dtype", dtype, self.loc.dtype, self.scale.dtype)
        rt = cache.get(key)
        if rt is None:
            probe = torch.empty(1, dtype=torch.from_numpy(np.empty(0, dtype)).dtype)
            rt = cache[key] = torch.result_type(torch.empty(1, dtype=torch.result_type(probe, self.loc)), self.scale)
        loc, scale = self.loc.detach(), self.scale.detach()
        loc = loc if loc.dtype == rt else loc.to(rt)
        return rt, as_array(loc), as_array(scale if scale.dtype == rt else scale.to(rt))

    def _np_affine(self, x, buf_key, inverse):
        self._check_ready()
        rt, loc, scale = self._np_params(x.dtype)
        shape = np.broadcast_shapes(x.shape, loc.shape, scale.shape)
        buf = self._np_cache.get(buf_key)
        if buf is None or buf.shape != shape or buf.dtype != loc.dtype:
            buf = self._np_cache[buf_key] = np.empty(shape, dtype=loc.dtype)
        np.copyto(buf, x, casting="unsafe")
        if bool(self.standard_normal) != inverse:
            np.subtract(buf, loc, out=buf)
            np.divide(buf, scale, out=buf)
        else:
            np.multiply(buf, scale, out=buf)
            np.add(buf, loc, out=buf)
        return buf

    def _np_step(self, arrays, at_reset=False):
        for ik, ok in zip(self.in_keys, self.out_keys):
            x = arrays.get(ik)
            if x is None:
                if not at_reset and not self._missing_tolerance:
                    raise KeyError(f"ObservationNorm: key {ik!r} not found; keys present: {sorted(map(str, arrays))}")
                continue
            arrays[ok] = self._np_affine(x, ("out", ok), False)
        return arrays

    def _np_reset(self, arrays, mask):
        return self._np_step(arrays, True)

    def _np_inv(self, arrays):
        for ik, ok in zip(self.in_keys_inv, self.out_keys_inv):
            x = arrays.get(ok)
            if x is not None:
                arrays[ik] = self._np_affine(x, ("inv", ik), True)
        return arrays

    # ----------------------------------------------------------------- specs
    def _bounded(self, spec, fn):
        if not isinstance(spec, Bounded):
            return spec.clone()
        self._check_ready()
        a, b = fn(spec.low), fn(spec.high)
        return Bounded(low=torch.minimum(a, b), high=torch.maximum(a, b), shape=spec.shape, device=spec.device,
                       dtype=a.dtype)

    def transform_observation_spec(self, observation_spec):
        """Bounded specs of in_keys get the transformed bounds (under out_keys); others are copied.

        Args:
            observation_spec: a Composite, changed in place and returned.

        Raises:
            RuntimeError: a Bounded spec before loc and scale exist (as TorchRL).

        Examples:
            >>> from numbarl.torch_api import Bounded, Composite
            >>> t = ObservationNorm(loc=1.0, scale=2.0, in_keys=["obs"])
            >>> spec = t.transform_observation_spec(Composite(obs=Bounded(-1.0, 1.0, shape=(1,))))
            >>> spec["obs"].low, spec["obs"].high
            (tensor([-1.]), tensor([3.]))
        """
        for ik, ok in zip(self.in_keys, self.out_keys):
            spec = observation_spec.get(ik)
            if spec is not None:
                observation_spec[ok] = self._bounded(spec, self._apply_transform)
        return observation_spec

    def transform_input_spec(self, input_spec):
        """The specs of in_keys_inv (action or state) as the policy sees them, under out_keys_inv.

        The policy writes ``out_keys_inv`` in the normalized space: their
        Bounded specs get the forward-mapped bounds, and a renamed key
        replaces the env's key.

        Args:
            input_spec: the env's input spec (Composite with full_action_spec / full_state_spec).

        Raises:
            RuntimeError: a Bounded spec before loc and scale exist.

        Examples:
            >>> from numbarl.torch_api import GymEnv, TransformedEnv
            >>> env = TransformedEnv(GymEnv("Pendulum-v1"), ObservationNorm(loc=1.0, scale=2.0, in_keys=["observation"],
            ...                      in_keys_inv=["action"], out_keys_inv=["action_n"]))
            >>> spec = env.full_action_spec["action_n"]
            >>> spec.low, spec.high, "action" in env.full_action_spec.keys()
            (tensor([-3.]), tensor([5.]), False)
        """
        return self._map_inverse_specs(super().transform_input_spec(input_spec),
                                       lambda spec, part: self._bounded(spec, self._apply_transform))

    # ------------------------------------------------------------ statistics
    def init_stats(self, num_iter: int, reduce_dim=0, cat_dim=None, key=None, keep_dims=None) -> None:
        """Set loc and scale from the ``key`` data of random rollouts of the parent env.

        Rollouts of ``num_iter`` steps are collected until at least
        ``num_iter`` entries along ``cat_dim`` exist; mean and unbiased std
        are taken over ``reduce_dim`` (float64 running moments, merged per
        rollout). The std is floored at ``eps`` (1e-6 by default), so
        constant data gives finite outputs.

        Args:
            num_iter: number of steps to collect, >= 1.
            reduce_dim: dim or dims of the rollout data to reduce. Default 0.
            cat_dim: dim along which rollouts add up (one of ``reduce_dim``).
            key: the data key (default: the first in_key).
            keep_dims: reduced dims kept with size 1 in loc and scale.

        Raises:
            RuntimeError: loc and scale already exist.
            ValueError: bad num_iter, cat_dim or keep_dims; no parent env.
            TypeError: dims that are not ints.

        Examples:
            >>> import torch
            >>> from numbarl.torch_api import GymEnv, TransformedEnv
            >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
            <torch._C.Generator object at ...>
            >>> env = TransformedEnv(GymEnv("Pendulum-v1"), ObservationNorm(in_keys=["observation"]))
            >>> _ = env.set_seed(0)
            >>> env.transform.init_stats(100)
            >>> env.transform.loc, env.transform.scale
            (tensor([ 1.3752e+01,  6.5087e-03, -2.9293e-03]), tensor([14.9636,  2.5608,  0.6408]))
        """
        owner = "ObservationNorm.init_stats"
        if isinstance(num_iter, bool) or not isinstance(num_iter, int) or num_iter < 1:
            raise ValueError(f"{owner} requires num_iter as an int >= 1, got {num_iter!r}")
        if self.loc is not None and self.scale is not None:
            raise _UninitializedError(f"Loc/Scale are already initialized: ({self.loc}, {self.scale})")
        parent = self.parent
        if parent is None:
            raise ValueError(f"{owner} requires the transform to be in a TransformedEnv (its parent is None)")
        key = self.in_keys[0] if key is None else key
        state, n, shape, device = None, 0, None, None
        while n < num_iter:
            data = parent.rollout(max_steps=num_iter).get(key)
            x = data.detach()
            if shape is None:
                reduce = _dims(owner, "reduce_dim", reduce_dim, x.ndim)
                cat = reduce[0] if cat_dim is None else _dims(owner, "cat_dim", cat_dim, x.ndim)[0]
                if cat not in reduce:
                    raise ValueError(f"{owner} requires cat_dim to be part of or equal to reduce_dim, got cat_dim="
                                     f"{cat_dim!r}, reduce_dim={reduce_dim!r}")
                keep = [] if keep_dims is None else _dims(owner, "keep_dims", keep_dims, x.ndim)
                if any(d not in reduce for d in keep):
                    raise ValueError(f"{owner} requires keep_dims among reduce_dim, got {keep_dims!r}")
                rest = [d for d in range(x.ndim) if d not in reduce]
                shape = [1 if d in keep else x.shape[d] for d in range(x.ndim) if d not in reduce or d in keep]
                feature = tuple(x.shape[d] for d in rest)
                device = x.device if is_cuda(x) else None
                state = moments_init(feature) if device is None else _DeviceMoments(feature, device)
            if device is None:
                x = x.cpu()
            elif x.device != device:
                x = x.to(device)
            if x.dtype in (torch.float16, torch.bfloat16):
                x = x.float()
            rows = x.permute(*reduce, *rest).contiguous()
            if device is None:
                launch(rows, "moments", "moments_update", as_array(rows).reshape((-1,) + state.loc.shape), *state.arrays,
                       decay=1.0)
            else:
                state.update(rows.reshape((-1,) + feature))
            n += x.shape[cat]
        eps = 1e-6 if self.eps is None else self.eps
        if device is None:
            loc, std = _host_loc_std(state, eps, self.standard_normal)
        else:
            loc, std = state.loc_std(eps, self._host_value("standard_normal"))
        dtype = data.dtype if data.dtype.is_floating_point else torch.get_default_dtype()
        self.loc = loc.reshape(shape).to(dtype)
        self.scale = std.reshape(shape).to(dtype)
        self._erase_metadata()

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        for name in ("loc", "scale"):
            value = state_dict.get(prefix + name)
            if getattr(self, name) is None and isinstance(value, torch.Tensor):
                self._buffers[name] = torch.empty_like(value)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)


def _host_loc_std(state, eps: float, standard_normal: bool):
    """(loc, scale) tensors from host moments: mean and unbiased std floored at ``eps`` (or their inverse map)."""
    count = int(state.count[0])
    std = np.sqrt(state.m2 / (count - 1)) if count > 1 else np.zeros_like(state.m2)
    std = np.maximum(std, eps)
    loc = state.loc
    if not standard_normal:
        loc, std = -loc / std, 1.0 / std
    return torch.from_numpy(np.ascontiguousarray(loc)), torch.from_numpy(np.ascontiguousarray(std))


class _DeviceMoments:
    """Running moments of ``init_stats`` on a CUDA device: torch tensors updated by ``numbarl.core.cuda.moments``.

    Nothing is read back: each update's status goes to ``worst`` on the
    device, and a rejected rollout (NaN or inf) makes the result NaN.
    """

    def __init__(self, feature, device):
        f64 = {"dtype": torch.float64, "device": device}
        self.loc = torch.zeros(feature, **f64)
        self.m2 = torch.zeros(feature, **f64)
        self.weight = torch.zeros(1, **f64)
        self.count = torch.zeros(1, dtype=torch.int64, device=device)
        self.status = torch.zeros(1, dtype=torch.int64, device=device)
        self.worst = torch.zeros(1, dtype=torch.int64, device=device)

    def update(self, rows: torch.Tensor) -> None:
        launch(rows, "moments", "moments_update", rows, self.loc, self.m2, self.weight, self.count, decay=1.0,
               status=self.status, check=False)
        torch.minimum(self.worst, self.status, out=self.worst)

    def loc_std(self, eps: float, standard_normal: bool):
        """As ``_host_loc_std``, in float64 on the device (NaN after a rejected rollout)."""
        count = self.count.reshape(())
        unbiased = (self.m2 / (count - 1).clamp_min(1).to(torch.float64)).sqrt()
        std = torch.where(count > 1, unbiased, torch.zeros_like(self.m2)).clamp_min(eps)
        loc = self.loc
        if not standard_normal:
            loc, std = -loc / std, std.reciprocal()
        bad = self.worst.reshape(()).lt(0)
        return loc.masked_fill(bad, float("nan")), std.masked_fill(bad, float("nan"))
