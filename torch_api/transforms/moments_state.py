"""Statistics of ``VecNorm`` / ``VecNormV2``: per-key running moments, local or shared.

Each normalized key owns one running-moment state (float64 ``loc`` and
``m2``, float64 ``weight``, int64 ``count``). The four arrays live in one of
four places:

- local NumPy arrays (the default; a :class:`numbarl.core.moments.MomentState`);
- torch tensors on a CUDA device (a :class:`TensorMoments`), once CUDA data
  came in or the transform was moved there with ``.to``; the CUDA kernels of
  :mod:`numbarl.core.cuda.moments` update them in place through
  ``as_array`` views, so nothing goes through the host;
- a :class:`numbarl.core.shared.SharedArrays` block (``make_shared`` /
  ``attach``), whose cross-process lock is taken around every update; pickling
  sends the block's name, not the data;
- the tensors of a TensorDict in torch shared memory (``shared_td`` of the
  legacy ``VecNorm``), locked by the ``lock`` the user passes.

The last two are host memory shared with other processes: they cannot follow
CUDA data (``place`` raises ValueError), and statistics on a device cannot be
shared. Moving between the host and a device (``place``) carries the
statistics over. A deep copy (``Transform.clone``) is always a local,
independent snapshot on the same device; pickling keeps the device.

Conversions from and to TorchRL 0.14.1 checkpoints are here too. TorchRL's
``VecNormV2`` stores ``loc`` (an exponential average started at zero) and
``var`` (the same average of ``x**2``, not a variance) and a sample count
``c``; it normalizes with ``loc / (1 - d**c)`` and ``(var - loc**2) / (1 -
d**c)`` (``d < 1``) or ``loc`` and ``var - loc**2`` (``d == 1``). Its legacy
``VecNorm`` stores decayed sums ``sum``, ``ssq`` (of ``x**2``) and ``count``
and normalizes with ``sum / count`` and ``ssq / count - (sum / count)**2``.
Loading computes exactly those mean and variance (in float64) and stores them
as ``loc`` and ``m2 = var * weight``; exporting inverts the same formulas, so
TorchRL normalizes with our mean and variance.

Examples:
    >>> import numpy as np
    >>> from numbarl.core.moments import moments_update
    >>> stats = _Stats(["x"])
    >>> stats.init_key(0, (2,))
    >>> _ = moments_update(np.array([[1.0, 2.0], [3.0, 2.0]]), *stats.states[0].arrays)
    >>> sd = stats.extra_state("v2")
    >>> sorted(sd)
    ['count.-|-.x', 'loc.-|-.x', 'm2.-|-.x', 'weight.-|-.x']
    >>> L, V, c = state_to_torchrl_v2(stats.states[0], 1.0)
    >>> L, V, c
    (array([2., 2.]), array([5., 4.]), 2)
    >>> torchrl_v2_to_state(L, V, c, 1.0).var
    array([1., 0.])
"""
from __future__ import annotations

import contextlib
from collections.abc import Mapping

import numpy as np
import torch

from numbarl.core.moments import MomentState, moments_init
from numbarl.core.shared import SharedArrays

from .._arrays import as_array
from .._device import launch

__all__ = []
_NAN_STATUS = -1  # status of a batch rejected for NaN / inf (numbarl.core.cuda.moments.STATUS_NONFINITE)

_NULL = contextlib.nullcontext()
_FIELDS = ("loc", "m2", "weight", "count")
V2_SEP = ".-|-."
LEGACY_SEP = "-<.>-"


def key_parts(key) -> tuple:
    return (key,) if isinstance(key, str) else tuple(key)


def key_name(key, style: str) -> str:
    """The name of ``key`` in a state dict: TorchRL's separators for nested keys."""
    return (V2_SEP if style == "v2" else LEGACY_SEP).join(key_parts(key))


def field_name(field: str, key, style: str) -> str:
    name = key_name(key, style)
    return f"{field}{V2_SEP}{name}" if style == "v2" else f"{name}_{field}"


# ----------------------------------------------------------------- conversions
def _f64(value) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().to(torch.float64).numpy()
    return np.array(value, dtype=np.float64)


def _state_from_moments(mean, var, weight, count) -> MomentState:
    mean = np.ascontiguousarray(mean, dtype=np.float64)
    state = moments_init(mean.shape if mean.ndim else ())
    if weight > 0.0:
        state.loc[...] = mean
        state.m2[...] = np.maximum(var, 0.0) * weight
        state.weight[0] = weight
        state.count[0] = count
    return state


def torchrl_v2_to_state(loc, var, count, decay: float) -> MomentState:
    """A MomentState from TorchRL VecNormV2's ``loc``, ``var`` (E[x**2]) and ``count``.

    The mean and variance are those TorchRL normalizes with; the weight is
    that of ``count`` single-sample updates at ``decay``.
    """
    L, V = _f64(loc), _f64(var)
    c = int(torch.as_tensor(count).reshape(-1)[0]) if isinstance(count, torch.Tensor) else int(count)
    if c <= 0:
        return _state_from_moments(np.zeros_like(L), 0.0, 0.0, 0)
    if decay == 1.0:
        return _state_from_moments(L, V - L * L, float(c), c)
    bias = 1.0 - decay ** c
    return _state_from_moments(L / bias, (V - L * L) / bias, bias / (1.0 - decay), c)


def state_to_torchrl_v2(state: MomentState, decay: float):
    """``(loc, var, count)`` in TorchRL VecNormV2's convention (float64 arrays, int)."""
    c = int(state.count[0])
    mean, var = state.loc.copy(), state.var
    if c == 0:
        return np.zeros_like(mean), np.zeros_like(mean), 0
    if decay == 1.0:
        return mean, var + mean * mean, c
    bias = 1.0 - decay ** c
    L = mean * bias
    return L, var * bias + L * L, c


def torchrl_legacy_to_state(sum_, ssq, count) -> MomentState:
    """A MomentState from TorchRL's legacy VecNorm ``sum``, ``ssq`` and decayed ``count``.

    ``count`` is a decayed weight there; the number of samples is taken as its
    rounded value (exact for ``decay == 1``).
    """
    S, Q = _f64(sum_), _f64(ssq)
    W = float(_f64(count).reshape(-1)[0])
    if W <= 0.0:
        return _state_from_moments(np.zeros_like(S), 0.0, 0.0, 0)
    mean = S / W
    return _state_from_moments(mean, Q / W - mean * mean, W, int(round(W)))


def state_to_torchrl_legacy(state: MomentState):
    """``(sum, ssq, count)`` in TorchRL's legacy VecNorm convention (float64 arrays)."""
    W = float(state.weight[0])
    mean = state.loc
    return mean * W, state.m2 + mean * mean * W, np.array([W])


def legacy_entries(loc, m2, weight, dtype):
    """TorchRL's legacy VecNorm ``(sum, ssq, count)`` of float64 moments (tensors, on their device).

    ``sum`` and ``ssq`` in ``dtype`` (TorchRL's sums have the data's dtype),
    ``count`` (the decayed weight) in float32, as TorchRL keeps them.
    """
    w = weight.reshape(())
    return (loc * w).to(dtype), (m2 + loc * loc * w).to(dtype), weight.to(torch.float32)


def _legacy_entries_agree(state, ours, theirs) -> bool:
    """Whether TorchRL's entries of ``state`` are those computed from its exact moments (nothing changed them)."""
    loc, m2, weight = (torch.as_tensor(state[n]).detach().cpu().to(torch.float64) for n in ours[:3])
    saved = [torch.as_tensor(state[n]).detach().cpu() for n in theirs]
    if not saved[0].dtype.is_floating_point:
        return False
    try:
        expected = legacy_entries(loc, m2, weight, saved[0].dtype)
    except RuntimeError:  # shapes that do not broadcast
        return False
    for e, a in zip(expected, saved):
        tol = 4 * torch.finfo(a.dtype).eps if a.dtype.is_floating_point else 0.0
        if e.shape != a.shape or not torch.allclose(e.to(torch.float64), a.to(torch.float64), rtol=tol, atol=0.0):
            return False
    return True


def check_loaded_moments(state: MomentState, names, owner: str) -> None:
    """ValueError naming the entry when loaded moments cannot be statistics.

    ``names`` are the state-dict entries of (loc, m2, weight, count). Loaded
    statistics must have a finite ``loc``, a finite ``m2 >= 0``, a finite
    ``weight >= 0``, a ``count >= 0``, and weight and count both zero or
    both positive; anything else would give NaN or inf scales later.
    """
    loc, m2, weight, count = state.arrays
    w, c = float(weight[0]), int(count[0])
    for name, bad, rule in ((names[0], not np.isfinite(loc).all(), "finite values"),
                            (names[1], not np.isfinite(m2).all(), "finite values"),
                            (names[1], bool((m2 < 0).any()), "values >= 0 (a sum of squares)"),
                            (names[2], not (np.isfinite(w) and w >= 0.0), "a finite value >= 0"),
                            (names[3], c < 0, "a value >= 0")):
        if bad:
            got = {names[0]: loc, names[1]: m2, names[2]: weight, names[3]: count}[name]
            raise ValueError(f"{owner}: loaded state entry {name!r} requires {rule}, got {got}")
    if (w > 0.0) != (c > 0):
        raise ValueError(f"{owner}: loaded state entries {names[2]!r} ({w}) and {names[3]!r} ({c}) must be both "
                         f"zero (no data) or both positive")


def _check_torchrl_entries(arrays, names, style: str, owner: str) -> None:
    """ValueError naming the entry when TorchRL-format statistics are not finite or have a negative count."""
    for a, name in zip(arrays, names):
        if not np.isfinite(a).all():
            raise ValueError(f"{owner}: loaded state entry {name!r} requires finite values, got {a}")
    if (arrays[2] < 0).any():
        raise ValueError(f"{owner}: loaded state entry {names[2]!r} requires a value >= 0, got {arrays[2]}")
    if style != "v2" and (arrays[1] < 0).any():
        raise ValueError(f"{owner}: loaded state entry {names[1]!r} requires values >= 0 (a sum of squares), "
                         f"got {arrays[1]}")


# --------------------------------------------------------------- device state
class TensorMoments:
    """Running moments of one key as torch tensors on a CUDA device.

    The arrays of :class:`numbarl.core.moments.MomentState` (``loc``, ``m2``
    float64 of the feature shape, ``weight`` float64 ``(1,)``, ``count``
    int64 ``(1,)``), allocated by torch on the data's device, so they follow
    torch's allocator, ``.to``, pickling and ``clone``. Two int64 ``(1,)``
    tensors more: ``status``, written by each update (rows skipped, or -1 /
    -2 for a batch rejected for NaN or inf / for overflow, see
    :mod:`numbarl.core.cuda.moments`), and ``worst``, the lowest status since
    the last check, kept on the device so that no update waits for the GPU.
    """

    __slots__ = ("loc", "m2", "weight", "count", "status", "worst", "_views")

    def __init__(self, loc, m2, weight, count, worst=None):
        self.loc, self.m2, self.weight, self.count = loc, m2, weight, count
        device = loc.device
        self.status = torch.zeros(1, dtype=torch.int64, device=device)
        self.worst = torch.zeros(1, dtype=torch.int64, device=device) if worst is None else worst
        self._views = None

    @classmethod
    def zeros(cls, shape, device) -> "TensorMoments":
        shape = tuple(shape)
        f64 = {"dtype": torch.float64, "device": device}
        return cls(torch.zeros(shape, **f64), torch.zeros(shape, **f64), torch.zeros(1, **f64),
                   torch.zeros(1, dtype=torch.int64, device=device))

    @classmethod
    def from_host(cls, state: MomentState, device) -> "TensorMoments":
        """Copies of a MomentState's arrays on ``device``."""
        return cls(*(torch.tensor(a, device=device) for a in state.arrays))

    @property
    def device(self) -> torch.device:
        return self.loc.device

    @property
    def arrays(self) -> tuple:
        """(loc, m2, weight, count), the tensors."""
        return self.loc, self.m2, self.weight, self.count

    def views(self) -> tuple:
        """Array views (``as_array``) of loc, m2, weight, count and status, made once, for the CUDA kernels."""
        if self._views is None:
            self._views = tuple(as_array(t) for t in (*self.arrays, self.status))
        return self._views

    def to(self, device) -> "TensorMoments":
        return TensorMoments(*(t.to(device) for t in self.arrays), worst=self.worst.to(device))

    def copy(self) -> "TensorMoments":
        return TensorMoments(*(t.clone() for t in self.arrays), worst=self.worst.clone())

    def to_host(self) -> MomentState:
        """A MomentState holding host copies (waits for the device)."""
        return MomentState(*(t.detach().cpu().numpy().copy() for t in self.arrays))

    def loc_std(self, eps: float):
        """(mean, max(std, eps)) as float64 tensors on the device (the std of an empty state is 1)."""
        w = self.weight.reshape(())
        var = torch.where(w > 0, self.m2 / w, torch.ones_like(self.m2))
        return self.loc.clone(), var.sqrt().clamp_min(eps)

    def accumulate(self, rows: torch.Tensor) -> None:
        """Merge ``rows`` (``[n, *feature]``) with equal weights (decay 1); the outcome goes to ``worst``, unread.

        What ``ObservationNorm.init_stats`` does with CUDA rollouts: nothing is
        read back, and a rejected batch (NaN or inf) makes
        :meth:`affine_loc_scale` NaN.
        """
        launch(rows, "moments", "moments_update", rows, self.loc, self.m2, self.weight, self.count, decay=1.0,
               status=self.status, check=False)
        torch.minimum(self.worst, self.status, out=self.worst)

    def affine_loc_scale(self, eps: float, standard_normal: bool):
        """``ObservationNorm``'s (loc, scale) on the device: mean and unbiased std floored at ``eps``.

        With ``standard_normal=False``, the inverse map ``(-mean / std, 1 / std)``.
        Both are NaN after a rejected batch.
        """
        count = self.count.reshape(())
        unbiased = (self.m2 / (count - 1).clamp_min(1).to(torch.float64)).sqrt()
        std = torch.where(count > 1, unbiased, torch.zeros_like(self.m2)).clamp_min(eps)
        loc = self.loc
        if not standard_normal:
            loc, std = -loc / std, std.reciprocal()
        bad = self.worst.reshape(()).lt(0)
        return loc.masked_fill(bad, float("nan")), std.masked_fill(bad, float("nan"))

    def record(self, out: torch.Tensor, rejected=None) -> None:
        """Note the outcome of the last update, on the device.

        A rejected batch (status < 0; ``rejected``, a 0-dim bool tensor, marks
        one rejected by the caller) lowers ``worst`` and fills ``out`` with
        NaN, since the kernels leave it unwritten or normalized by statistics
        that did not take the batch.
        """
        status = self.status if rejected is None else self.status.masked_fill(rejected, _NAN_STATUS)
        torch.minimum(self.worst, status, out=self.worst)
        out.masked_fill_(status.lt(0).reshape((1,) * out.ndim), float("nan"))

    def __repr__(self):
        return f"TensorMoments(feature_shape={tuple(self.loc.shape)}, device={self.device})"


# ----------------------------------------------------------------------- store
class _Stats:
    """Running moments of the keys of one VecNorm (see the module docstring).

    Args:
        keys: the normalized keys, in order.
        lock: a context manager (e.g. ``multiprocessing.Lock()``) taken around
            updates of statistics held in a ``shared_td``, or None.
    """

    def __init__(self, keys, lock=None):
        self.keys = list(keys)
        self.states = [None] * len(self.keys)
        self.dtypes = [None] * len(self.keys)
        self.shared = None
        self.td = None
        self.lock = lock
        self.device = None  # the CUDA device holding the states (TensorMoments), or None: host (MomentState)
        self.rejected = {}  # key index -> lowest status of a batch rejected on a device, unchecked, read at a move

    # ------------------------------------------------------------- queries
    def ready(self) -> bool:
        return all(s is not None for s in self.states)

    def locked(self):
        """The lock to hold around a read-modify-write of the statistics."""
        if self.shared is not None:
            return self.shared.lock()
        if self.lock is not None:
            return self.lock
        return _NULL

    def init_key(self, i: int, shape) -> None:
        if self.device is None:
            self.states[i] = moments_init(tuple(shape))
        else:
            self.states[i] = TensorMoments.zeros(moments_init(tuple(shape)).loc.shape, self.device)

    def host_copy(self, i: int) -> MomentState:
        """The statistics of key ``i`` as host arrays (a copy when they are on a device; a read-back)."""
        s = self.states[i]
        return s.to_host() if isinstance(s, TensorMoments) else s

    # -------------------------------------------------------------- devices
    def place(self, device, owner: str) -> None:
        """Keep the statistics on ``device`` (a CUDA ``torch.device``) or on the host (None), carried over.

        Raises:
            ValueError: statistics in shared memory (SharedArrays or a
                ``shared_td``) asked to move to a device.
        """
        if device == self.device:
            return
        if device is not None and (self.shared is not None or self.td is not None):
            where = "a SharedArrays block (ParallelEnv / EnvCreator)" if self.shared is not None else "shared_td"
            raise ValueError(
                f"{owner}: the statistics are in shared host memory ({where}), which processes update under one "
                f"lock, so they cannot follow data on {device}: a device copy would leave the other processes' "
                "statistics behind. Normalize on the CPU (move the data to the GPU after this transform), or use "
                "statistics that are not shared.")
        with self.locked():
            if device is None:
                self._keep_rejections()
                self.states = [None if s is None else s.to_host() for s in self.states]
            else:
                self.states = [None if s is None else
                               (TensorMoments.from_host(s, device) if isinstance(s, MomentState) else s.to(device))
                               for s in self.states]
        self.device = device

    def _keep_rejections(self) -> None:
        """Move the unchecked rejection records of device states into ``rejected`` (a read-back)."""
        for i, s in enumerate(self.states):
            if isinstance(s, TensorMoments):
                worst = int(s.worst.cpu()[0])
                if worst < 0:
                    self.rejected[i] = min(worst, self.rejected.get(i, 0))

    def take_rejections(self) -> dict:
        """``{key index: lowest status}`` of the batches rejected on a device since the last call (a read-back)."""
        self._keep_rejections()
        for s in self.states:
            if isinstance(s, TensorMoments):
                s.worst.zero_()
        taken, self.rejected = self.rejected, {}
        return taken

    def _refuse_device(self, owner: str, what: str) -> None:
        if self.device is not None:
            raise ValueError(f"{owner}: the statistics are on {self.device}; {what} needs them in host memory: "
                             "move the transform with .to('cpu') first")

    # -------------------------------------------------------------- backing
    def use_td(self, td, owner: str) -> None:
        """Hold the statistics in the tensors of ``td`` (layout of ``build_td_for_shared_vecnorm``)."""
        states = []
        for key in self.keys:
            parts = key_parts(key)
            arrays = []
            for field in _FIELDS:
                tensor = td.get((field,) + parts, None)
                if tensor is None:
                    raise ValueError(
                        f"{owner} requires shared_td to hold {(field,) + parts!r} (as made by "
                        f"VecNorm.build_td_for_shared_vecnorm); it holds {sorted(map(str, td.keys(True, True)))}")
                if not tensor.is_contiguous() or tensor.device.type != "cpu":
                    raise ValueError(f"{owner} requires contiguous CPU tensors in shared_td, got {(field,) + parts!r}")
                arrays.append(as_array(tensor))
            try:
                states.append(MomentState(*arrays))
            except (TypeError, ValueError) as err:
                raise type(err)(f"{owner}: shared_td entries of {key!r} do not form moment statistics: {err}") from None
        self.states = states
        self.td = td

    def _layout(self):
        layout = {}
        for i, s in enumerate(self.states):
            layout[f"{i}.loc"] = (s.loc.shape, np.float64)
            layout[f"{i}.m2"] = (s.m2.shape, np.float64)
            layout[f"{i}.weight"] = ((1,), np.float64)
            layout[f"{i}.count"] = ((1,), np.int64)
        return layout

    def _use_block(self, block) -> None:
        self.states = [MomentState(block[f"{i}.loc"], block[f"{i}.m2"], block[f"{i}.weight"], block[f"{i}.count"])
                       for i in range(len(self.keys))]
        self.shared = block
        self.td = None

    def make_shared(self, owner: str = "VecNorm") -> None:
        """Move the statistics into a new SharedArrays block owned by this process."""
        if self.shared is not None:
            return
        self._refuse_device(owner, "sharing them between processes")
        block = SharedArrays.create(self._layout())
        with self.locked():
            for i, s in enumerate(self.states):
                for field, a in zip(_FIELDS, s.arrays):
                    block[f"{i}.{field}"][...] = a
        self._use_block(block)

    def attach(self, handle, owner: str) -> None:
        """Use the block ``handle`` (a SharedArrays) as the statistics."""
        if not isinstance(handle, SharedArrays):
            raise TypeError(f"{owner}._attach_shared requires a SharedArrays handle, got {type(handle).__name__}")
        self._refuse_device(owner, "attaching shared statistics")
        expected = {f"{i}.{f}" for i in range(len(self.keys)) for f in _FIELDS}
        if set(handle.keys()) != expected:
            raise ValueError(f"{owner}._attach_shared: block {handle.name!r} holds {sorted(handle.keys())}, "
                             f"expected the statistics of {len(self.keys)} keys {self.keys}")
        for i, s in enumerate(self.states):
            shape = handle[f"{i}.loc"].shape
            if s is not None and s.loc.shape != shape:
                raise ValueError(f"{owner}._attach_shared: key {self.keys[i]!r} has statistics of shape "
                                 f"{s.loc.shape}, the block holds {shape}")
        self._use_block(handle)

    # ---------------------------------------------------------- state dicts
    def extra_state(self, style: str) -> dict:
        """Plain tensors, copies of the statistics (on their device).

        ``v2``: float64 ``loc`` / ``m2`` / ``weight`` and int64 ``count`` per key.
        ``legacy``: TorchRL's legacy VecNorm entries ``{key}_sum`` / ``_ssq``
        (the data's float dtype) and ``_count`` (float32, the decayed weight),
        so that TorchRL loads the checkpoint, plus the exact float64
        ``{key}_loc`` / ``_m2`` / ``_weight`` and the int64 sample count
        ``{key}_samples``, which numbarl loads back bit for bit.
        """
        out = {}
        with self.locked():
            for i, (key, s) in enumerate(zip(self.keys, self.states)):
                if s is None:
                    continue
                arrays = [a.clone() if isinstance(a, torch.Tensor) else torch.from_numpy(a.copy()) for a in s.arrays]
                if style == "v2":
                    out.update({field_name(f, key, style): a for f, a in zip(_FIELDS, arrays)})
                    continue
                sum_, ssq, count = legacy_entries(*arrays[:3], self.dtypes[i] or torch.float32)
                out.update({field_name("sum", key, style): sum_, field_name("ssq", key, style): ssq,
                            field_name("count", key, style): count})
                out.update({field_name(f, key, style): a for f, a in zip(("loc", "m2", "weight"), arrays)})
                out[field_name("samples", key, style)] = arrays[3]
        return out

    def load(self, i: int, new: MomentState, owner: str) -> None:
        s = self.states[i]
        if s is None and self.shared is None and self.td is None:
            self.states[i] = new if self.device is None else TensorMoments.from_host(new, self.device)
            return
        if s is None or tuple(s.loc.shape) != new.loc.shape:
            raise ValueError(f"{owner}: state of key {self.keys[i]!r} has shape {new.loc.shape}, "
                             f"the statistics have {None if s is None else tuple(s.loc.shape)}")
        with self.locked():
            for dst, src in zip(s.arrays, new.arrays):
                if isinstance(dst, torch.Tensor):
                    dst.copy_(torch.from_numpy(src))
                else:
                    dst[...] = src

    def load_extra_state(self, state, style: str, decay: float, owner: str) -> None:
        """Load ours or TorchRL's format, chosen per key by the names present.

        Legacy style: this version's entries (exact moments beside TorchRL's
        sums, see :meth:`extra_state`) load the exact moments, unless TorchRL's
        sums no longer agree with them (TorchRL loaded the checkpoint and
        updated the sums since): then the sums are loaded. Earlier versions'
        ``loc`` / ``m2`` / ``weight`` / ``count`` and TorchRL's own entries load too.
        """
        if not isinstance(state, Mapping):
            raise TypeError(f"{owner}.set_extra_state requires a dict of tensors, got {type(state).__name__}")
        used = set()
        theirs = ("loc", "var", "count") if style == "v2" else ("sum", "ssq", "count")
        for i, key in enumerate(self.keys):
            ours = [field_name(f, key, style) for f in _FIELDS]
            other = [field_name(f, key, style) for f in theirs]
            samples = field_name("samples", key, style)
            beside = style != "v2" and samples in state  # this version's legacy format: exact moments and
            if beside:                                   # TorchRL's sums side by side
                ours = ours[:3] + [samples]
            if all(n in state for n in ours):
                arrays = [_f64(state[n]) for n in ours[:3]]
                count = np.array(torch.as_tensor(state[ours[3]]).reshape(-1).tolist(), dtype=np.int64)
                try:
                    new = MomentState(np.ascontiguousarray(arrays[0]), np.ascontiguousarray(arrays[1]),
                                      arrays[2].reshape(1), count.reshape(1))
                except (TypeError, ValueError) as err:
                    raise ValueError(f"{owner}: malformed state of key {key!r}: {err}") from None
                check_loaded_moments(new, ours, owner)
                used.update(ours)
                if beside and all(n in state for n in other):
                    used.update(other)
                    if not _legacy_entries_agree(state, ours, other):
                        # TorchRL loaded this checkpoint and updated its sums since: they are the statistics
                        a, b, c = (state[n] for n in other)
                        _check_torchrl_entries([_f64(a), _f64(b), _f64(c)], other, style, owner)
                        new = torchrl_legacy_to_state(a, b, c)
            elif all(n in state for n in other):
                a, b, c = (state[n] for n in other)
                _check_torchrl_entries([_f64(a), _f64(b), _f64(c)], other, style, owner)
                new = torchrl_v2_to_state(a, b, c, decay) if style == "v2" else torchrl_legacy_to_state(a, b, c)
                used.update(other)
            else:
                self._refuse_void(i, ours, other, owner)
                continue
            self.load(i, new, owner)
        unknown = sorted(set(state) - used)
        if unknown:
            raise ValueError(f"{owner}: state entries {unknown} match none of the in_keys {self.keys}")

    def _refuse_void(self, i: int, ours, theirs, owner: str) -> None:
        """RuntimeError (TorchRL's type) when key ``i`` has statistics and the state holds none for it.

        An untrained instance saves no entries; loading that checkpoint onto
        trained statistics would otherwise keep them silently.
        """
        s = self.states[i]
        if s is None:
            return
        with self.locked():
            count = int(s.count[0])
        if count > 0:
            raise RuntimeError(
                f"{owner}.set_extra_state: the state holds no statistics for key {self.keys[i]!r} (neither "
                f"{ours} nor {list(theirs)}; an untrained checkpoint?) while this {owner} has statistics for it "
                f"(count {count}); loading it would keep them silently. Load a checkpoint that holds them, or "
                f"build a new {owner} to start from scratch")

    # ------------------------------------------------------- copy / pickle
    def __deepcopy__(self, memo):
        new = _Stats(self.keys)
        new.dtypes = list(self.dtypes)
        new.device = self.device
        new.rejected = dict(self.rejected)
        with self.locked():
            new.states = [None if s is None else s.copy() for s in self.states]
        return new

    def __getstate__(self):
        state = {"keys": self.keys, "dtypes": self.dtypes, "lock": self.lock, "shared": self.shared, "td": self.td,
                 "device": self.device, "rejected": self.rejected}
        if self.shared is None and self.td is None:
            state["arrays"] = [None if s is None else
                               (*s.arrays, s.worst) if isinstance(s, TensorMoments) else s.arrays
                               for s in self.states]
        return state

    def __setstate__(self, state):
        self.__init__(state["keys"], state["lock"])
        self.dtypes = list(state["dtypes"])
        self.rejected = dict(state.get("rejected", {}))
        if state["shared"] is not None:
            self._use_block(state["shared"])
        elif state["td"] is not None:
            self.use_td(state["td"], "VecNorm")
        else:
            make = MomentState if state.get("device") is None else TensorMoments
            self.states = [None if a is None else make(*a) for a in state["arrays"]]
            if make is TensorMoments:  # where the tensors came back (a map_location may have moved them)
                self.device = next((s.device for s in self.states if s is not None), state["device"])
