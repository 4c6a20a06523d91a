"""``ObservationNorm``: a fixed affine normalization (TorchRL 0.14.1 API).

``ObservationNorm`` applies a fixed affine map and can estimate it from
rollouts of its parent env (``init_stats``, through the moment kernels of
``numbarl.core.moments`` and the moments state of :mod:`.moments_state`).
CUDA data stays on its device: the affine map runs there with its loc and
scale on that device. The running normalizations ``VecNorm`` and
``VecNormV2`` live in :mod:`.vecnorm` (still importable from here).


Examples:
    >>> import torch
    >>> from tensordict import TensorDict
    >>> t = ObservationNorm(loc=1.0, scale=2.0, in_keys=["obs"])
    >>> t(TensorDict({"obs": torch.tensor([3.0])}, []))["obs"]
    tensor([7.])
"""
from __future__ import annotations

import numbers

import numpy as np
import torch

from numbarl.core.moments import NonFiniteError, moments_init

from .._attrs import set_plain
from .._arrays import as_array
from .._device import cuda_device, launch
from ..specs import Bounded, Composite
from .running_state import BufferMirrors
from ._checks import check_keys, check_number
from .base import Transform
from .moments_state import TensorMoments

__all__ = ["ObservationNorm"]


def __getattr__(name):
    # VecNorm and VecNormV2 moved to .vecnorm; this import path keeps working
    # (looked up on use, as .vecnorm's engine converts to ObservationNorm).
    if name in ("VecNorm", "VecNormV2"):
        from . import vecnorm

        return getattr(vecnorm, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

class _UninitializedError(RuntimeError, ValueError):
    """ObservationNorm used before loc and scale exist (a RuntimeError, as in TorchRL, and a ValueError)."""


class _NoParentError(RuntimeError, ValueError):
    """init_stats outside an env (a RuntimeError, as in TorchRL, and a ValueError)."""


_UNINIT = ("Loc/Scale have not been initialized. Either pass in values in the constructor or call the "
           "init_stats method")


class _NonFiniteStatsError(NonFiniteError, RuntimeError):
    """init_stats data holds NaN or inf (TorchRL raises RuntimeError there; here also a ValueError)."""


def _check_cat_dim(owner, reduce_dim, cat_dim) -> None:
    """ValueError, as TorchRL, when ``cat_dim`` is missing for a tuple ``reduce_dim`` or not among its dims."""
    if cat_dim is None:
        if not isinstance(reduce_dim, int):
            raise ValueError(f"{owner}: cat_dim must be specified if reduce_dim is not an integer, got reduce_dim="
                             f"{reduce_dim!r}")
        return
    if (isinstance(reduce_dim, tuple) and cat_dim not in reduce_dim) or (
            isinstance(reduce_dim, int) and cat_dim != reduce_dim):
        raise ValueError(f"{owner} requires cat_dim to be part of or equal to reduce_dim (cat_dim must be part of or "
                         f"equal to reduce_dim), got cat_dim={cat_dim!r}, reduce_dim={reduce_dim!r}")


def _as_stat(owner, name, value):
    if value is None:
        return value
    if not isinstance(value, torch.Tensor):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"{owner} requires {name} as a float, a tensor or None, got {type(value).__name__}")
        value = torch.tensor(float(value), dtype=torch.get_default_dtype())
    return _check_stat(owner, name, name, value)


def _check_stat(owner, what, name, value):
    """``value`` when it can be a loc (finite) or a scale (finite and > 0); ValueError naming ``what`` otherwise.

    A scale of 0 would give inf outputs, a negative one flips the data (and
    its spec bounds), NaN / inf poison every output: none is a normalization.
    """
    if not isinstance(value, torch.Tensor) or value.is_complex():
        return value
    v = value.detach()
    bad = ~torch.isfinite(v) if name == "loc" else ~(torch.isfinite(v) & (v > 0))
    if bool(bad.any()):
        rule = "finite values" if name == "loc" else "finite values > 0"
        shown = v.flatten()[bad.flatten()][:4].tolist()
        raise ValueError(f"{owner} requires {what} with {rule}, got {shown if v.ndim else v.item()}"
                         f"{' (first offending values)' if v.ndim else ''}")
    return value


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

    ``scale`` must be finite and > 0 and ``loc`` finite, at construction and
    in a loaded state dict (ValueError naming the argument or entry): TorchRL
    0.14.1 clamps a float scale to ``eps`` (so 0 or -1 becomes 1e-6 and the
    outputs explode) and takes a NaN / inf / negative tensor as is.

    Raises:
        TypeError: in_keys missing, wrong key/loc/scale/eps types.
        ValueError: out_keys of another length or repeated keys, eps <= 0, a scale that is not finite
            and > 0, a loc that is not finite; data whose shape does not broadcast with loc and scale
            (naming the key).

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
        set_plain(self, "eps", eps)
        set_plain(self, "_np_cache", {})
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
        return self._affine(obs, inverse=False)

    def _inv_apply_transform(self, state):
        return self._affine(state, inverse=True)

    def _affine(self, x, inverse: bool, key=None):
        """The affine map (or its inverse) on ``x``'s device, loc and scale copied there once (torch operations)."""
        self._check_ready()
        loc, scale = self._buffer_on("loc", x.device), self._buffer_on("scale", x.device)
        try:
            if self._host_value("standard_normal") != inverse:
                return (x - loc) / scale
            return x * scale + loc
        except RuntimeError:
            raise self._shape_error(x.shape, key) from None

    def _shape_error(self, shape, key=None) -> ValueError:
        """The error for data whose shape does not broadcast with loc and scale, naming the key(s)."""
        where = f"key {key!r}" if key is not None else f"in_keys {self.in_keys}"
        return ValueError(f"ObservationNorm: {where} holds data of shape {tuple(shape)}, which does not broadcast "
                          f"with loc of shape {tuple(self.loc.shape)} and scale of shape {tuple(self.scale.shape)}; "
                          f"give loc and scale the shape of the observation's trailing dims (or a shape that "
                          f"broadcasts to it)")

    def _reset(self, tensordict, tensordict_reset):
        """Normalize the in_keys present at reset (a reward key, absent there, is skipped as in TorchRL)."""
        for ik, ok in zip(self.in_keys, self.out_keys):
            value = tensordict_reset.get(ik, None)
            if value is not None:
                tensordict_reset.set(ok, self._affine(value, False, ik))
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
        try:
            shape = np.broadcast_shapes(x.shape, loc.shape, scale.shape)
        except ValueError:
            raise self._shape_error(x.shape, buf_key[1]) from None
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
            observation_spec: a Composite, changed in place and returned; or
                a leaf spec, mapped as the spec of an in_key and returned.

        Raises:
            RuntimeError: a Bounded spec before loc and scale exist (as TorchRL).

        Examples:
            >>> from numbarl.torch_api import Bounded, Composite
            >>> t = ObservationNorm(loc=1.0, scale=2.0, in_keys=["obs"])
            >>> spec = t.transform_observation_spec(Composite(obs=Bounded(-1.0, 1.0, shape=(1,))))
            >>> spec["obs"].low, spec["obs"].high
            (tensor([-1.]), tensor([3.]))
        """
        if not isinstance(observation_spec, Composite):
            return self._bounded(observation_spec, self._apply_transform)
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
            RuntimeError: loc and scale already exist; the rollout data holds NaN or inf (host data;
                the error is also a ``NonFiniteError``, a ValueError, naming the key).
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
        _check_cat_dim(owner, reduce_dim, cat_dim)
        if self.loc is not None and self.scale is not None:
            raise _UninitializedError(f"Loc/Scale are already initialized: ({self.loc}, {self.scale})")
        if key is None and len(self.in_keys) > 1:
            raise _UninitializedError(f"{owner}: Transform has multiple in_keys but no specific key was passed as an "
                                      f"argument; pass key= one of {self.in_keys}")
        parent = self.parent
        if parent is None:
            raise _NoParentError(f"{owner} requires the transform to be in a TransformedEnv (its parent is None): "
                                      "Cannot initialize the transform if parent env is not defined")
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
                device = cuda_device(x)
                state = moments_init(feature) if device is None else TensorMoments.zeros(feature, device)
            if device is None:
                x = x.cpu()
            elif x.device != device:
                x = x.to(device)
            if x.dtype in (torch.float16, torch.bfloat16):
                x = x.float()
            rows = x.permute(*reduce, *rest).contiguous()
            if device is None:
                try:
                    launch(rows, "moments", "moments_update", as_array(rows).reshape((-1,) + state.loc.shape),
                           *state.arrays, decay=1.0)
                except NonFiniteError:
                    raise _NonFiniteStatsError(f"{owner}: key {key!r} holds NaN or inf in the rollout data; loc and "
                                               f"scale stay unset. Check the env's observations, or set loc and "
                                               f"scale by hand") from None
            else:
                state.accumulate(rows.reshape((-1,) + feature))
            n += x.shape[cat]
        eps = 1e-6 if self.eps is None else self.eps
        if device is None:
            loc, std = _host_loc_std(state, eps, self.standard_normal)
        else:
            loc, std = state.affine_loc_scale(eps, self._host_value("standard_normal"))
        dtype = data.dtype if data.dtype.is_floating_point else torch.get_default_dtype()
        self.loc = loc.reshape(shape).to(dtype)
        self.scale = std.reshape(shape).to(dtype)
        self._erase_metadata()
        set_plain(self, "_init_moments", (key, state, tuple(shape), dtype))  # for all_reduce_stats

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        for name in ("loc", "scale"):
            value = state_dict.get(prefix + name)
            _check_stat("ObservationNorm.load_state_dict", f"state entry {prefix + name!r}", name, value)
            if getattr(self, name) is None and isinstance(value, torch.Tensor):
                self._buffers[name] = torch.empty_like(value)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)

    def all_reduce_stats(self, group=None) -> None:
        """Merge the ``init_stats`` moments of every rank of a ``torch.distributed`` group; set loc and scale from them.

        A collective (every rank calls it after its own ``init_stats``):
        Chan's formula in float64, two all-reduces of ``2F + 2`` float64
        values (F: feature size); loc and scale become those ``init_stats``
        would give on the data of all ranks (see
        :mod:`numbarl.torch_api.distributed`). CUDA moments stay on their
        device (nccl).

        Args:
            group: the process group, or None for the default one.

        Raises:
            RuntimeError: no process group is initialised.
            ValueError: some rank has no ``init_stats`` moments (loc and scale
                given or loaded instead), or the ranks' shapes differ (raised
                on every rank).

        Examples:
            >>> ObservationNorm(in_keys=["x"]).all_reduce_stats()  # doctest: +ELLIPSIS
            Traceback (most recent call last):
            ...
            RuntimeError: ObservationNorm.all_reduce_stats needs an initialised torch.distributed process group: ...
        """
        from ..distributed import all_reduce_observation_norm

        all_reduce_observation_norm(self, group)


def _host_loc_std(state, eps: float, standard_normal: bool):
    """(loc, scale) tensors from host moments: mean and unbiased std floored at ``eps`` (or their inverse map)."""
    count = int(state.count[0])
    std = np.sqrt(state.m2 / (count - 1)) if count > 1 else np.zeros_like(state.m2)
    std = np.maximum(std, eps)
    loc = state.loc
    if not standard_normal:
        loc, std = -loc / std, 1.0 / std
    return torch.from_numpy(np.ascontiguousarray(loc)), torch.from_numpy(np.ascontiguousarray(std))
