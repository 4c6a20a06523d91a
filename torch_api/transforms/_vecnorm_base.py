"""The engine shared by ``VecNorm`` (legacy) and ``VecNormV2``.

Both keep one running-moment state per in_key (see ``moments_state``) and,
per call, update it with the new data and then normalize that data with the
updated statistics, in one fused ``numbarl.core.moments`` kernel call on
zero-copy array views. The TensorDict path (``_call``, ``_step``,
``_reset``, ``forward``) and the array path (``_np_step``, ``_np_reset``)
run the same function on the same arrays, so they give identical results.

CUDA tensors run the twins in ``numbarl.core.cuda.moments`` on the tensors'
memory, and the statistics move to that device (``TensorMoments``; carried
over from the host, and back when CPU data comes; ``Module.to`` moves them
too). Nothing is read back to the host on that path, reset masks included,
so a call cannot raise for bad data there: a batch that the CPU would refuse
(NaN or inf with ``nonfinite="raise"``, or an overflow) is rejected on the
device, the statistics are left unchanged and that key's output is all NaN;
``check_rejected()`` raises for such batches later, when reading back is
fine. Statistics in shared memory stay on the host and refuse CUDA data.
Tensors on other devices go through the CPU kernels (copied there and back).

A subclass says where the batch ends (``_feature_shape``), how the
standard deviation is floored (``_eps_std``), whether a call updates the
statistics (``_updating``) and how its state dict is named (``_style``).

Examples:
    >>> import torch
    >>> from tensordict import TensorDict
    >>> from numbarl.torch_api import VecNormV2
    >>> t = VecNormV2(in_keys=["x"], decay=1.0)
    >>> out = t(TensorDict({"x": torch.tensor([1.0, 3.0])}, []))
    >>> out = t(TensorDict({"x": torch.tensor([3.0, 3.0])}, []))
    >>> out["x"]
    tensor([1., 0.])
"""
from __future__ import annotations


import numpy as np
import torch
from tensordict import TensorDict

from numbarl.core.moments import NonFiniteError

from .._attrs import set_plain
from .._arrays import as_array
from .._device import cuda_device, kernel_module, launch, on_device
from ..specs import Unbounded
from .base import Compose, Transform
from .normalization import ObservationNorm
from ._checks import CompatValueError
from ._env_chain import container_env
from ._reset_masks import batch_view
from .moments_state import TensorMoments, _Stats

__all__ = []

_F32, _F64 = np.dtype(np.float32), np.dtype(np.float64)
_NONFINITE = ("raise", "skip")


# ------------------------------------------------------------------ validation
def float_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype of normalized values: float32/64 kept, other floats computed in float32, ints to the default."""
    if dtype in (torch.float32, torch.float64):
        return dtype
    return torch.float32 if dtype.is_floating_point else torch.get_default_dtype()


def _np_float(dtype: np.dtype) -> np.dtype:
    """NumPy twin of ``float_dtype`` for arrays that are not float32/64."""
    if dtype.kind == "f":
        return _F32
    return _F64 if torch.get_default_dtype() == torch.float64 else _F32


def float_unbounded(spec):
    """An Unbounded float spec of ``spec``'s shape and device."""
    return Unbounded(shape=spec.shape, device=spec.device, dtype=float_dtype(spec.dtype))


# ---------------------------------------------------------------------- engine
class _VecNormBase(Transform):
    """Running normalization of ``in_keys`` into ``out_keys`` (update, then normalize)."""

    _style = "v2"
    _np_supported = True

    def _init_stats_state(self, decay, eps, nonfinite, lock):
        set_plain(self, "decay", decay)
        set_plain(self, "eps", eps)
        set_plain(self, "nonfinite", nonfinite)
        set_plain(self, "_skip", nonfinite == "skip")
        set_plain(self, "_stats", _Stats(self.in_keys, lock))
        set_plain(self, "_bufs", {})
        set_plain(self, "_np_bnd", None)
        set_plain(self, "frozen", False)

    @property
    def lock(self):
        """The lock given at construction (taken around updates of ``shared_td`` statistics), or None."""
        return self._stats.lock

    # --------------------------------------------------------- subclass hooks
    def _feature_shape(self, i: int, shape: tuple, batch_ndim: int) -> tuple:
        raise NotImplementedError

    def _first_shape(self, i: int, shape: tuple, batch_ndim: int) -> tuple:
        """The statistics' shape for key ``i`` from the first data it sees; an empty shape is refused."""
        feature = self._feature_shape(i, shape, batch_ndim)
        if 0 in feature:
            raise ValueError(f"{type(self).__name__}: key {self.in_keys[i]!r}: the first data seen has shape {shape}, "
                             f"which gives statistics of shape {feature} with no elements; send a non-empty batch "
                             "first")
        return feature

    def _eps_std(self) -> float:
        return self.eps

    def _updating(self) -> bool:
        return not self.frozen

    # --------------------------------------------------------- freezing
    def freeze(self):
        """Stop updating the statistics (they still normalize); returns self.

        ``eval()`` does not freeze them, as in TorchRL 0.14.1.

        Examples:
            >>> from numbarl.torch_api import VecNorm
            >>> VecNorm(in_keys=["x"]).freeze().frozen
            True
        """
        set_plain(self, "frozen", True)
        return self

    def unfreeze(self):
        """Update the statistics again; returns self.

        Examples:
            >>> from numbarl.torch_api import VecNormV2
            >>> VecNormV2(in_keys=["x"]).freeze().unfreeze().frozen
            False
        """
        set_plain(self, "frozen", False)
        return self

    def frozen_copy(self):
        """A frozen, independent copy (a snapshot of the statistics, also when they are shared).

        Raises:
            RuntimeError: no data seen yet (also a ValueError), as in TorchRL.

        Examples:
            >>> from numbarl.torch_api import VecNormV2
            >>> import torch
            >>> from tensordict import TensorDict
            >>> t = VecNormV2(in_keys=["x"])
            >>> _ = t(TensorDict({"x": torch.ones(2)}, []))
            >>> c = t.frozen_copy()
            >>> c.frozen, t.frozen
            (True, False)
        """
        if all(state is None for state in self._stats.states):
            raise CompatValueError(f"{type(self).__name__}.frozen_copy requires statistics. Make sure the VecNorm has "
                                   "been initialized (apply it to data first)")
        return self.clone().freeze()

    def _per_env_stats(self) -> bool:
        """Whether the statistics have the env batch dims (then a partial reset does not update them)."""
        return False

    # ------------------------------------------------------------ the kernel
    def _kernel(self, i: int, x: np.ndarray, out: np.ndarray, batch_ndim: int, update: bool, mask) -> None:
        """Update the statistics of key ``i`` with ``x`` (unless ``update`` is false), normalize ``x`` into ``out``."""
        st = self._stats
        state = st.states[i]
        key = self.in_keys[i]
        owner = type(self).__name__
        if st.device is not None:  # host data after device data: the statistics come back
            st.place(None, owner)
            state = st.states[i]
        if state is None:
            st.init_key(i, self._first_shape(i, tuple(x.shape), batch_ndim))
            state = st.states[i]
        loc, m2, weight, count = state.arrays
        eps = self._eps_std()
        # Inputs already in the kernels' form (the usual case) skip the argument checks of numbarl.core.
        plain = (type(x) is np.ndarray and (x.dtype is _F32 or x.dtype is _F64) and out.dtype is x.dtype
                 and out.shape == x.shape and out.flags.c_contiguous and x.ndim >= loc.ndim
                 and x.shape[x.ndim - loc.ndim:] == loc.shape)
        try:
            with st.locked():
                if not update:
                    if plain:
                        launch(x, "moments", "moments_normalize_unchecked", x, loc, m2, weight, eps, out)
                    else:
                        launch(x, "moments", "moments_normalize", x, loc, m2, weight, eps, out)
                elif mask is None:
                    if plain:
                        launch(x, "moments", "moments_update_normalize_unchecked", x, loc, m2, weight, count,
                               self.decay, eps, out, self._skip)
                    else:
                        launch(x, "moments", "moments_update_normalize", x, loc, m2, weight, count, self.decay, eps, out,
                               self.nonfinite)
                else:
                    if not self._per_env_stats():
                        launch(x, "moments", "moments_update", x[mask], loc, m2, weight, count, self.decay, None,
                               self.nonfinite)
                    launch(x, "moments", "moments_normalize", x, loc, m2, weight, eps, out)
        except NonFiniteError:
            raise NonFiniteError(f"{owner}: {key!r} holds NaN or inf; statistics left unchanged "
                                 f"(pass nonfinite='skip' to drop such samples)") from None
        except ValueError as err:
            raise ValueError(f"{owner}: key {key!r}: {err}") from None

    def _apply_tensor(self, i: int, value: torch.Tensor, batch_ndim: int, update: bool, mask=None) -> torch.Tensor:
        """Update key ``i``'s statistics with ``value`` (unless not ``update``) and return it normalized.

        Host data: the CPU kernels on NumPy views (data on other devices goes
        through the host and comes back). CUDA data: :meth:`_apply_tensor_cuda`.
        """
        x = value.detach()
        device, dtype = x.device, x.dtype
        calc = float_dtype(dtype)
        if device.type != "cpu":
            x = x.cpu()
        if dtype != calc:
            x = x.to(calc)
        if self._stats.dtypes[i] is None:
            self._stats.dtypes[i] = calc
        out = torch.empty(x.shape, dtype=calc)
        self._kernel(i, as_array(x), out.numpy(), batch_ndim, update, mask)
        if dtype.is_floating_point and dtype != calc:
            out = out.to(dtype)
        return out if device.type == "cpu" else out.to(device)

    # ------------------------------------------------------------ CUDA path
    def _apply_tensor_cuda(self, i: int, value: torch.Tensor, batch_ndim: int, update: bool, mask=None) -> torch.Tensor:
        """``_apply_tensor`` for CUDA data: the kernels of ``numbarl.core.cuda.moments``, statistics on the device."""
        x = value.detach()
        dtype = x.dtype
        calc = float_dtype(dtype)
        if dtype != calc:
            x = x.to(calc)
        st = self._stats
        if st.dtypes[i] is None:
            st.dtypes[i] = calc
        st.place(x.device, type(self).__name__)
        if st.states[i] is None:
            st.init_key(i, self._first_shape(i, tuple(x.shape), batch_ndim))
        out = torch.empty(x.shape, dtype=calc, device=x.device)
        self._cuda_kernel(i, x, out, update, mask)
        if dtype.is_floating_point and dtype != calc:
            out = out.to(dtype)
        return out

    def _cuda_kernel(self, i: int, x: torch.Tensor, out: torch.Tensor, update: bool, mask) -> None:
        """Update the device statistics of key ``i`` with ``x`` (unless not ``update``), normalize ``x`` into ``out``.

        No call reads anything back: updates run with ``check=False`` and
        their outcome is recorded on the device (``TensorMoments.record``).
        ``mask`` (a bool tensor of the batch shape, from a partial reset)
        limits the update to the reset rows, by making the other rows NaN
        for an update that skips non-finite rows.
        """
        state = self._stats.states[i]
        X, O = x, out
        k = kernel_module(x, "moments")
        loc, m2, weight, count, status = state.views()
        eps = self._eps_std()
        try:
            with self._stats.locked():
                if not update or (mask is not None and self._per_env_stats()):
                    launch(x, k, "moments_normalize", X, loc, m2, weight, eps, out=O)
                    return
                rejected = None
                if mask is None:
                    launch(x, k, "moments_update_normalize", X, loc, m2, weight, count, self.decay, eps, out=O,
                           nonfinite=self.nonfinite, status=status, check=False)
                else:
                    rows, rejected = self._reset_rows(x, mask)
                    launch(x, k, "moments_update", rows, loc, m2, weight, count, self.decay, None, "skip",
                           status=status, check=False)
                    launch(x, k, "moments_normalize", X, loc, m2, weight, eps, out=O)
                state.record(out, rejected)
        except ValueError as err:
            raise ValueError(f"{type(self).__name__}: key {self.in_keys[i]!r}: {err}") from None

    def _reset_rows(self, x: torch.Tensor, mask: torch.Tensor):
        """``(x with NaN outside the reset rows, rejected)`` for a masked update that skips non-finite rows.

        With ``nonfinite="raise"``, a reset row holding NaN or inf rejects
        the whole update, as on the CPU: every row is NaN then (nothing is
        merged) and ``rejected`` (a 0-dim bool tensor) says so; it is None
        with ``"skip"``.
        """
        keep = batch_view(mask, x.ndim)
        rejected = None
        if not self._skip:
            rejected = (~torch.isfinite(x) & keep).any()
            keep = keep & ~rejected
        return x.masked_fill(~keep, float("nan")), rejected

    def check_rejected(self) -> None:
        """Raise for batches the CUDA path rejected since the last check, and forget them.

        On a CUDA device a call does not wait for the GPU, so it cannot raise
        for its data: a batch holding NaN or inf (``nonfinite="raise"``), or
        one whose statistics would overflow, is rejected there instead (the
        statistics are unchanged and that key's output is NaN). This reads
        the record back (it waits for the device) and raises as the CPU path
        would have. The record survives a move of the statistics back to the
        host and copies (``clone``, pickling); calls on host data raise at
        once and add nothing to it.

        Raises:
            NonFiniteError: NaN or inf rejected a batch of some key.
            ValueError: an update of some key would have overflowed float64.

        Examples:
            >>> from numbarl.torch_api import VecNormV2
            >>> VecNormV2(in_keys=["x"]).check_rejected()  # nothing rejected
        """
        taken = self._stats.take_rejections()
        owner = type(self).__name__
        overflow = [self.in_keys[i] for i, w in sorted(taken.items()) if w == -2]
        nonfinite = [self.in_keys[i] for i, w in sorted(taken.items()) if w == -1]
        if overflow:
            raise ValueError(f"{owner}: squared deviations of {overflow} overflowed float64 on the device; those "
                             "batches were rejected (statistics left unchanged, outputs NaN)")
        if nonfinite:
            raise NonFiniteError(f"{owner}: {nonfinite} held NaN or inf on the device; those batches were rejected "
                                 "(statistics left unchanged, outputs NaN; pass nonfinite='skip' to drop such "
                                 "samples instead)")

    def _apply(self, fn, *args, **kwargs):
        result = super()._apply(fn, *args, **kwargs)
        self._follow(fn)
        return result

    def _follow(self, fn) -> None:
        """Move the statistics where ``fn`` (of ``Module.to``, ``cuda``, ``cpu``) moves tensors.

        A CUDA device or the host; other devices, and conversions that keep
        the device (``float()``, ``share_memory()``), leave them where they are.
        """
        st = self._stats
        here = torch.device("cpu") if st.device is None else st.device
        probe = fn(torch.zeros((), dtype=torch.float64, device=here))
        if not isinstance(probe, torch.Tensor):
            return
        if cuda_device(probe) is not None:
            st.place(probe.device, type(self).__name__)
        elif probe.device.type == "cpu":
            st.place(None, type(self).__name__)

    # ------------------------------------------------------- tensordict path
    def _td_apply(self, td, update: bool, at_reset: bool, request=None):
        bnd = td.batch_dims
        masks = {}
        for i, (ik, ok) in enumerate(zip(self.in_keys, self.out_keys)):
            value = td.get(ik, None)
            if value is None:
                if not at_reset:
                    self._missing(ik, td)
                continue
            mask = None if request is None else self._reset_mask(request, value, td.batch_size, masks)
            td.set(ok, on_device(value, self, "_apply_tensor", i, value, bnd, update, mask))
        return td

    @staticmethod
    def _reset_mask(request, value, batch, masks: dict):
        """The reset request as the mask of ``value``'s path, made once per device in ``masks``.

        CPU data: a NumPy bool array of the batch shape, None when every
        sub-env resets. CUDA data: a bool tensor on its device (never read
        back, so a full reset is not told apart: the masked update gives the
        same result).
        """
        where = cuda_device(value)
        if where not in masks:
            if where is not None:
                masks[where] = request.to(device=value.device, dtype=torch.bool).reshape(tuple(batch))
            else:
                m = as_array(request.cpu()).reshape(tuple(batch))
                masks[where] = None if m.all() else m
        return masks[where]

    def _call(self, next_tensordict):
        return self._td_apply(next_tensordict, self._updating(), False)

    def forward(self, tensordict):
        """Update the statistics with ``tensordict``'s in_keys, then write the normalized values to out_keys.

        The dims of ``tensordict.batch_size`` are batch dims of the data (see
        the class for which of them the statistics merge).

        Args:
            tensordict: holds every in_key; it is updated in place and returned.

        Raises:
            KeyError: an in_key is missing (unless missing keys are tolerated).
            NonFiniteError: NaN or inf in an input with ``nonfinite="raise"``.
            ValueError: data whose shape does not fit the statistics.

        Examples:
            >>> import torch
            >>> from tensordict import TensorDict
            >>> from numbarl.torch_api import VecNorm
            >>> t = VecNorm(in_keys=["x"], out_keys=["y"], decay=1.0)
            >>> t(TensorDict({"x": torch.tensor([[0.0], [2.0]])}, [2]))["y"]
            tensor([[-1.],
                    [ 1.]])
        """
        return self._call(tensordict)

    def _step(self, tensordict, next_tensordict):
        return self._call(next_tensordict)

    def _reset(self, tensordict, tensordict_reset):
        request = None
        if tensordict is not None and tensordict_reset.batch_dims:
            request = tensordict.get("_reset", None)
        return self._td_apply(tensordict_reset, self._updating(), True, request)

    # ------------------------------------------------------------ array path
    def _np_batch_ndim(self) -> int:
        bnd = self._np_bnd
        if bnd is None:
            env = container_env(self)
            bnd = len(getattr(env, "batch_size", ()) or ())
            set_plain(self, "_np_bnd", bnd)
        return bnd

    def _np_apply(self, arrays: dict, mask, at_reset: bool) -> dict:
        bnd = self._np_batch_ndim()
        update = self._updating()
        bufs = self._bufs
        for i, (ik, ok) in enumerate(zip(self.in_keys, self.out_keys)):
            x = arrays.get(ik)
            if x is None:
                if not at_reset and not self._missing_tolerance:
                    raise KeyError(f"{type(self).__name__}: key {ik!r} not found; keys present: "
                                   f"{sorted(map(str, arrays))}")
                continue
            if x.dtype != _F32 and x.dtype != _F64:
                x = x.astype(_np_float(x.dtype))
            buf = bufs.get(i)
            if buf is None or buf.shape != x.shape or buf.dtype != x.dtype:
                buf = bufs[i] = np.empty(x.shape, dtype=x.dtype)
            if self._stats.dtypes[i] is None:
                self._stats.dtypes[i] = torch.float32 if x.dtype == _F32 else torch.float64
            self._kernel(i, x, buf, bnd, update, mask)
            arrays[ok] = buf
        return arrays

    def _np_step(self, arrays: dict) -> dict:
        return self._np_apply(arrays, None, False)

    def _np_reset(self, arrays: dict, mask) -> dict:
        set_plain(self, "_np_bnd", None)
        return self._np_apply(arrays, mask, True)

    # ----------------------------------------------------------------- specs
    def transform_observation_spec(self, observation_spec):
        """Set the out_keys of in_keys found in ``observation_spec`` to Unbounded float specs (in place).

        Args:
            observation_spec: a Composite.

        Returns:
            observation_spec, with int / Bounded inputs' outputs Unbounded float.

        Examples:
            >>> import torch
            >>> from numbarl.torch_api import Bounded, Composite, VecNormV2
            >>> t = VecNormV2(in_keys=["obs"], out_keys=["obs_n"])
            >>> spec = t.transform_observation_spec(Composite(obs=Bounded(0, 9, shape=(2,), dtype=torch.int64)))
            >>> type(spec["obs_n"]).__name__, spec["obs_n"].dtype
            ('UnboundedContinuous', torch.float32)
        """
        for ik, ok in zip(self.in_keys, self.out_keys):
            spec = observation_spec.get(ik)
            if spec is not None:
                observation_spec[ok] = float_unbounded(spec)
        return observation_spec

    def transform_reward_spec(self, reward_spec, observation_spec=None):
        """Set the out_keys of in_keys found in ``reward_spec`` to Unbounded float specs (in place).

        Args:
            reward_spec: a Composite (the env's full reward spec).
            observation_spec: unused; TorchRL's signature.

        Returns:
            reward_spec.

        Examples:
            >>> from numbarl.torch_api import Composite, Unbounded, VecNormV2
            >>> t = VecNormV2(in_keys=["reward"], out_keys=["reward_norm"])
            >>> sorted(t.transform_reward_spec(Composite(reward=Unbounded((1,)))).keys())
            ['reward', 'reward_norm']
        """
        for ik, ok in zip(self.in_keys, self.out_keys):
            spec = reward_spec.get(ik)
            if spec is not None:
                reward_spec[ok] = float_unbounded(spec)
        return reward_spec

    # ------------------------------------------------------------ statistics
    def _loc_scale(self, i: int):
        """(mean, max(std, eps floor)) of key ``i`` as tensors of the data dtype, on the statistics' device."""
        s = self._stats.states[i]
        if s is None:
            raise ValueError(f"{type(self).__name__} has no statistics for {self.in_keys[i]!r} yet: "
                             "apply it to data (or roll out its env) first")
        dtype = self._stats.dtypes[i] or torch.get_default_dtype()
        with self._stats.locked():
            if isinstance(s, TensorMoments):
                loc, std = s.loc_std(self._eps_std())
                return loc.to(dtype), std.to(dtype)
            loc, std = s.loc.copy(), s.std(self._eps_std())
        return torch.from_numpy(loc).to(dtype), torch.from_numpy(std).to(dtype)

    def _stats_td(self, which: int) -> TensorDict:
        out = TensorDict(batch_size=[])
        for i, key in enumerate(self.in_keys):
            out.set(key, self._loc_scale(i)[which])
        return out

    @property
    def loc(self) -> TensorDict:
        """The running mean of each in_key (a TensorDict keyed by in_keys, in the data dtype).

        Raises:
            ValueError: stateless mode, or no data seen yet.

        Examples:
            >>> import torch
            >>> from tensordict import TensorDict
            >>> from numbarl.torch_api import VecNormV2
            >>> t = VecNormV2(in_keys=["x"], decay=1.0)
            >>> _ = t(TensorDict({"x": torch.tensor([[1.0], [3.0]])}, [2]))
            >>> t.loc["x"]
            tensor([[1.],
                    [3.]])
        """
        return self._stats_td(0)

    @property
    def scale(self) -> TensorDict:
        """The standard deviation each in_key is divided by (floored as the class says), keyed by in_keys.

        Raises:
            ValueError: stateless mode, or no data seen yet.

        Examples:
            >>> import torch
            >>> from tensordict import TensorDict
            >>> from numbarl.torch_api import VecNormV2
            >>> t = VecNormV2(in_keys=["x"], decay=1.0, reduce_batch_dims=True)
            >>> _ = t(TensorDict({"x": torch.tensor([[1.0], [3.0]])}, [2]))
            >>> t.loc["x"], t.scale["x"]
            (tensor([2.]), tensor([1.]))
        """
        return self._stats_td(1)

    def denorm(self, tensordict):
        """Undo the normalization: read each out_key, write ``value * scale + loc`` to its in_key.

        Returns a shallow copy of ``tensordict``; out_keys it lacks are left
        out, as in TorchRL.

        Raises:
            RuntimeError: no data seen yet (also a ValueError).

        Examples:
            >>> import torch
            >>> from tensordict import TensorDict
            >>> from numbarl.torch_api import VecNorm
            >>> t = VecNorm(in_keys=["x"], decay=1.0)
            >>> td = TensorDict({"x": torch.tensor([[1.0], [3.0]])}, [2])
            >>> t.denorm(t(td.clone()))["x"]
            tensor([[1.],
                    [3.]])
        """
        if all(state is None for state in self._stats.states):
            raise CompatValueError(f"{type(self).__name__} must be initialized before calling denorm: apply it to "
                                   "data (or roll out its env) first")
        out = tensordict.copy()
        for i, (in_key, out_key) in enumerate(zip(self.in_keys, self.out_keys)):
            value = tensordict.get(out_key, None)
            if value is None:
                continue
            loc, scale = self._loc_scale(i)
            out.set(in_key, value * scale.to(value.device) + loc.to(value.device))
        return out

    def _observation_norms(self):
        norms = []
        for i, (ik, ok) in enumerate(zip(self.in_keys, self.out_keys)):
            loc, scale = self._loc_scale(i)
            norms.append(ObservationNorm(loc=loc, scale=scale, in_keys=[ik], out_keys=[ok], standard_normal=True))
        return norms[0] if len(norms) == 1 else Compose(*norms)

    def get_extra_state(self) -> dict:
        """The statistics as a dict of plain tensors (copies), saved by ``state_dict()``.

        Per in_key: ``loc`` (mean), ``m2`` (weighted centred sum of squares),
        ``weight`` (sum of sample weights), float64, and the int64 number of
        samples accepted; named ``loc.-|-.{key}`` / ... / ``count.-|-.{key}``
        by VecNormV2 (TorchRL's separators for nested keys), ``{key}_loc`` /
        ... / ``{key}_samples`` by VecNorm, which also writes TorchRL's
        legacy entries ``{key}_sum`` / ``_ssq`` (data dtype) and ``_count``
        (float32 decayed weight) so that TorchRL loads them. Keys without data
        yet are left out. The copies are on the statistics' device (CPU
        tensors, or CUDA tensors once the statistics followed CUDA data), as
        a module's buffers would be; nothing is read back.

        Examples:
            >>> import torch
            >>> from tensordict import TensorDict
            >>> from numbarl.torch_api import VecNorm
            >>> t = VecNorm(in_keys=["x"], decay=1.0)
            >>> _ = t(TensorDict({"x": torch.tensor([[1.0], [3.0]])}, [2]))
            >>> t.get_extra_state()
            {'x_sum': tensor([4.]), 'x_ssq': tensor([10.]), 'x_count': tensor([2.]),
             'x_loc': tensor([2.], dtype=torch.float64), 'x_m2': tensor([2.], dtype=torch.float64),
             'x_weight': tensor([2.], dtype=torch.float64), 'x_samples': tensor([2])}
        """
        return self._stats.extra_state(self._style)

    def set_extra_state(self, state) -> None:
        """Load statistics saved by ``get_extra_state`` or by TorchRL 0.14.1 (called by ``load_state_dict``).

        TorchRL's entries (VecNormV2: ``loc`` / ``var`` (E[x**2]) / ``count``;
        VecNorm: ``sum`` / ``ssq`` / ``count``) are converted to the mean and
        variance TorchRL normalizes with. Statistics held in shared memory are
        overwritten in place, under their lock; statistics on a CUDA device
        are overwritten in place there (the entries may be on any device).

        Args:
            state: dict of tensors.

        Raises:
            TypeError: ``state`` is not a mapping.
            ValueError: entries for keys that are not in_keys, or of the wrong shape; loaded statistics
                that cannot be moments (non-finite loc or m2, m2 < 0, weight or count < 0, one of weight
                and count zero and the other not): the message names the entry.
            RuntimeError: the state holds no entries for a key that has statistics here (e.g. the empty
                checkpoint of an untrained instance loaded onto trained statistics), as in TorchRL.

        Examples:
            >>> import torch
            >>> from numbarl.torch_api import VecNorm
            >>> t = VecNorm(in_keys=["x"], decay=1.0)
            >>> t.set_extra_state({"x_sum": torch.tensor([4.0]), "x_ssq": torch.tensor([10.0]),
            ...                    "x_count": torch.tensor([2.0])})  # TorchRL's legacy format
            >>> t.to_observation_norm().loc, t.to_observation_norm().scale
            (tensor([2.]), tensor([1.]))
        """
        self._stats.load_extra_state(state, self._style, self.decay, type(self).__name__)

    # --------------------------------------------------------- shared memory
    def _known_shape(self, i: int):
        """The feature shape of key ``i`` given at construction, or None."""
        return None

    def _init_from_spec(self) -> None:
        st = self._stats
        for i in range(len(self.in_keys)):
            shape = self._known_shape(i) if st.states[i] is None else None
            if shape is not None:
                st.init_key(i, shape)
        if st.ready():
            return
        env = container_env(self)
        missing = [k for k, s in zip(self.in_keys, st.states) if s is None]
        if env is None:
            raise ValueError(f"{type(self).__name__} cannot share statistics of unknown shape for {missing}: apply it "
                             "to data once, or put it in a TransformedEnv so that the env specs give the shapes")
        parent = self.parent
        bnd = len(parent.batch_size)
        specs = (parent.full_observation_spec, parent.full_reward_spec)
        for i, key in enumerate(self.in_keys):
            if st.states[i] is not None:
                continue
            spec = next((c.get(key) for c in specs if c.get(key) is not None), None)
            if spec is None:
                raise KeyError(f"{type(self).__name__}: key {key!r} is in no observation or reward spec of the env; "
                               f"observation keys: {sorted(map(str, specs[0].keys(True, True)))}")
            st.init_key(i, self._feature_shape(i, tuple(spec.shape), bnd))
            st.dtypes[i] = float_dtype(spec.dtype)

    def _make_shared(self) -> None:
        """Move the statistics into a ``SharedArrays`` block owned by this process (no-op if shared or stateless)."""
        if not getattr(self, "stateful", True):
            return
        if not self._stats.ready():
            self._init_from_spec()
        self._stats.make_shared(type(self).__name__)

    def _shared_handle(self):
        """The ``SharedArrays`` block holding the statistics (picklable, sent by name), or None."""
        return self._stats.shared

    def _attach_shared(self, handle) -> None:
        """Use the block ``handle`` (from ``_shared_handle`` of a twin transform) as the statistics."""
        self._stats.attach(handle, type(self).__name__)

    def __getstate__(self):
        state = super().__getstate__()
        state["_bufs"] = {}
        state["_np_bnd"] = None
        return state

    def extra_repr(self) -> str:
        return ""

    # ------------------------------------------------------------ across ranks
    def all_reduce_stats(self, group=None) -> None:
        """Merge the statistics of every rank of a ``torch.distributed`` group into the same statistics on all.

        A collective (every rank calls it, e.g. once per collected batch):
        Chan's formula in float64, two all-reduces of ``2F + 2`` float64
        values per key (F: feature size) plus one small shape check. With
        ``decay == 1`` the result is the statistics of one transform that saw
        every rank's data, and later calls add only what each rank saw since;
        with ``decay < 1`` the decayed weights are merged as they are (see
        :mod:`numbarl.torch_api.distributed`). Shared statistics (EnvCreator,
        ParallelEnv) are merged under their lock; CUDA statistics stay on
        their device (nccl).

        Args:
            group: the process group, or None for the default one.

        Raises:
            RuntimeError: no process group is initialised.
            ValueError: stateless mode; the ranks hold other keys or shapes, or
                some rank has no statistics for a key (raised on every rank).

        Examples:
            >>> from numbarl.torch_api import VecNormV2
            >>> VecNormV2(in_keys=["x"]).all_reduce_stats()  # doctest: +ELLIPSIS
            Traceback (most recent call last):
            ...
            RuntimeError: VecNormV2.all_reduce_stats needs an initialised torch.distributed process group: ...
        """
        from ..distributed import all_reduce_transform

        all_reduce_transform(self, group)
