"""``CatFrames``: the last ``N`` observations concatenated along a dim.

Online (inside an env) each sub-env keeps a ring buffer of its last ``N``
frames (:mod:`numbarl.core.frames`); a reset refills the rings of the
sub-envs it resets (all of them, or those flagged by ``"_reset"``), the
others keep their history. Offline, :meth:`CatFrames.forward` stacks a stored
trajectory ``[*B, T, ...]`` episode by episode, using ``("next", "done")`` to
find where episodes end, as TorchRL 0.14.1's replay-buffer path does.

CUDA tensors stay on their device (nothing is copied to the host): the
kernels are the twins in :mod:`numbarl.core.cuda.frames`, the ring of a key
fed CUDA frames lives on their device, and a ``"_reset"`` mask is handed to
the kernels as a device array. Frames on other devices go through the CPU
kernels and back. A ring lives where its frames were when it was made: a
step or a partial reset with frames on another device raises ValueError
naming both devices, while a reset of every sub-env (no ``"_reset"`` entry)
restarts the ring on the frames' device, as nothing of the old history is
kept by it anyway.

Examples:
    >>> import torch
    >>> from numbarl.torch_api import GymEnv, TransformedEnv
    >>> env = TransformedEnv(GymEnv("CartPole-v1"), CatFrames(N=4, dim=-1, in_keys=["observation"]))
    >>> env.observation_spec["observation"].shape
    torch.Size([16])
    >>> _ = env.set_seed(0)
    >>> env.rollout(3)["next", "observation"].shape
    torch.Size([3, 16])
"""
from __future__ import annotations

import numbers
import warnings
from typing import NamedTuple

import numpy as np
import torch

from .._attrs import set_plain
from .._arrays import as_array, numpy_dtype
from .._device import cuda_device, kernel_module, launch, on_device
from .._keys import unravel_key
from ._checks import check_unique
from .keyed_array import (
    KeyedArrayTransform,
    check_bool,
    check_int,
    copy_view,
    device_bits,
    env_batch_ndim,
    mapped_spec,
)

__all__ = ["CatFrames"]

_PADDINGS = ("same", "constant")
_HOST = torch.device("cpu")
_HOST_REF = np.empty(0)  # the data that makes launch pick the CPU kernels


class _DeviceRing(NamedTuple):
    """The ring of one key fed CUDA frames, made by ``numbarl.core.cuda.frames.frames_state``.

    ``buffer`` and ``pos`` are device arrays on ``device``; ``dtype`` is the
    frames' dtype (float16 frames are kept as their int16 bits).
    """

    buffer: object
    pos: object
    device: torch.device
    dtype: torch.dtype

    def __deepcopy__(self, memo):
        """A copy on the same device (device-to-device), so that ``CatFrames.clone`` keeps the history."""
        from numba import cuda

        copies = []
        for a in (self.buffer, self.pos):
            c = cuda.device_array_like(a)
            c.copy_to_device(a)
            copies.append(c)
        return _DeviceRing(copies[0], copies[1], self.device, self.dtype)


def _to_bt(a, tdim, nbd, nt):
    """NumPy ``[*batch, *rest]`` as ``[B, T, *rest]``, time last among the batch dims (contiguous)."""
    if tdim != nbd - 1:
        a = np.moveaxis(a, tdim, nbd - 1)
    return np.ascontiguousarray(a).reshape((-1, nt) + a.shape[nbd:])


def _to_bt_device(t, tdim, nbd, nt):
    """:func:`_to_bt` for a tensor, on its device."""
    if tdim != nbd - 1:
        t = t.movedim(tdim, nbd - 1)
    return t.contiguous().reshape((-1, nt) + tuple(t.shape[nbd:]))


def _as_key(key, owner, name):
    if key is None:
        return None
    try:
        return unravel_key(key)
    except TypeError:
        raise TypeError(f"{owner} requires {name} to be a str or a tuple of str, got {type(key).__name__}: "
                        f"{key!r}") from None
    except ValueError as err:
        raise ValueError(f"{owner} requires {name} to be a non-empty key: {err}") from None


class CatFrames(KeyedArrayTransform):
    """Concatenate the last ``N`` frames of each observation along ``dim``.

    Before the first reset every slot holds ``padding_value``. A reset fills
    the history of the sub-envs it resets with the reset frame
    (``padding="same"``) or with ``padding_value`` and the reset frame last
    (``"constant"``); each step drops the oldest frame and appends the new
    one. When the frame shape, dtype or batch size changes the history
    restarts (TorchRL mixes old and new frames there).

    ``forward`` is the offline path: on a trajectory ``[*B, T, ...]`` (the
    time dim is the one named ``"time"``, else the last batch dim) each
    step's window holds the steps of its own episode, padded before the
    episode's first step. For a ``("next", key)`` entry whose root ``key`` is
    also in ``in_keys``, the root observation of the episode's first step
    comes first in the window, so the stacks equal those an env produces.
    Such a pair stacks along any ``dim`` and for ``N=1`` (TorchRL 0.14.1
    raises there unless ``dim`` is the frame's leading dim and ``N > 1``).
    ``unfolding`` is the same stacking whatever ``as_inverse`` says. CUDA
    tensors are stacked by device kernels, without a host round trip.

    Args:
        N: number of frames, an int >= 1.
        dim: negative dim of the frame to concatenate along.
        in_keys: default ``["pixels"]``. out_keys: default ``in_keys``.
        padding: ``"same"`` (default) or ``"constant"``.
        padding_value: the fill of ``"constant"`` padding (default 0), cast
            to the frames' dtype.
        as_inverse: apply the offline stacking in the inverse transform
            (``inv``, e.g. in a replay buffer) instead of ``forward``; such a
            transform cannot be used inside an env.
        reset_key: entry of the reset request that flags the sub-envs to
            reset (default ``"_reset"``).
        done_key: done entry read under ``"next"`` by ``forward`` (default ``"done"``).
        future: offline only: each step's window holds the ``N`` upcoming
            steps of its episode (``t .. t + N - 1``), padded after the
            episode's last step; ``("next", done_key)`` is then optional
            (absent: each row is one trajectory).
        mask_key: offline only: where to write a bool ``[*B, T, N]`` mask,
            true at the window slots filled with padding.

    Raises:
        TypeError: ``N`` / ``dim`` not ints, ``padding`` not a str,
            ``padding_value`` not a number, ``as_inverse`` not a bool, bad keys.
        ValueError: ``N < 1``, ``dim >= 0``, unknown ``padding``; at run
            time, a ``dim`` outside the frame, ``forward`` on data without a
            time dim or without ``("next", done_key)`` (KeyError),
            ``as_inverse`` in an env.
        RuntimeError: ``future`` or ``mask_key`` in an env (offline only).
        NotImplementedError: ``future`` with both ``key`` and ``("next", key)``.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> t = CatFrames(N=3, dim=-1, in_keys=["obs"])
        >>> done = torch.tensor([False, True, False, False]).unsqueeze(-1)
        >>> td = TensorDict({"obs": torch.arange(1.0, 5.0).unsqueeze(-1), ("next", "done"): done}, [4])
        >>> t(td)["obs"]
        tensor([[1., 1., 1.],
                [1., 1., 2.],
                [3., 3., 3.],
                [3., 3., 4.]])
    """

    def __init__(self, N: int, dim: int, in_keys=None, out_keys=None, padding: str = "same", padding_value=0,
                 as_inverse: bool = False, reset_key=None, done_key=None, future: bool = False, mask_key=None):
        owner = "CatFrames"
        N = check_int(N, owner, "N", above=0)
        dim = check_int(dim, owner, "dim")
        if dim >= 0:
            raise ValueError(f"{owner} requires dim < 0, got {dim} (dim must be < 0 to accommodate for tensordicts "
                             "of different batch sizes)")
        if not isinstance(padding, str):
            raise TypeError(f"{owner} requires padding to be a str, got {type(padding).__name__}: {padding!r}")
        if padding not in _PADDINGS:
            raise ValueError(f"{owner} requires padding 'same' or 'constant', got {padding!r}")
        if isinstance(padding_value, (bool, np.bool_)) or not isinstance(padding_value, numbers.Real):
            raise TypeError(f"{owner} requires padding_value to be a number, got {type(padding_value).__name__}: "
                            f"{padding_value!r}")
        as_inverse = check_bool(as_inverse, owner, "as_inverse")
        future = check_bool(future, owner, "future")
        mask_key = _as_key(mask_key, owner, "mask_key")
        reset_key = _as_key(reset_key, owner, "reset_key")
        done_key = _as_key(done_key, owner, "done_key")
        super().__init__(in_keys=["pixels"] if in_keys is None else in_keys, out_keys=out_keys)
        check_unique(owner, "in_keys", self.in_keys)
        check_unique(owner, "out_keys", self.out_keys)
        self.N = N
        self.dim = dim
        self.padding = padding
        self.padding_value = padding_value
        self.as_inverse = as_inverse
        self._reset_key = reset_key
        self._done_key = done_key
        self.future = future
        self.mask_key = mask_key
        set_plain(self, "_rings", {})

    @property
    def reset_key(self):
        return "_reset" if self._reset_key is None else self._reset_key

    @property
    def done_key(self):
        return "done" if self._done_key is None else self._done_key

    @property
    def _np_supported(self) -> bool:
        return not self.as_inverse

    # ------------------------------------------------------------ ring state
    # ------------------------------------------------ ring API (fused pipelines)
    # check_frame, stack_shape, ring, restart_ring, device_stack, reset_request,
    # host_mask, device_mask, array_batch_ndim and out_buffer are the public
    # ring API that a fused pipeline (``fused_pixels.FusedPixelRun``) drives:
    # the ring state stays this instance's own, so fused and unfused steps mix.
    def out_buffer(self, key, shape, dtype) -> np.ndarray:
        """The array-path output buffer of ``key`` (allocated once per shape and dtype)."""
        return self._np_out(key, shape, dtype)

    def check_frame(self, frame_shape) -> None:
        """ValueError when frames of ``frame_shape`` cannot be concatenated along ``dim``."""
        if -self.dim > len(frame_shape):
            raise ValueError(f"CatFrames cannot concatenate along dim {self.dim} frames of shape "
                             f"{tuple(frame_shape)} (allowed: {-len(frame_shape)} to -1)")

    def stack_shape(self, shape) -> tuple:
        """The shape of the stack of frames of ``shape`` (``dim`` times ``N``)."""
        shape = list(shape)
        shape[len(shape) + self.dim] *= self.N
        return tuple(shape)

    def ring(self, key, batch, frame_shape, dtype, full_reset=False):
        """``(buffer, pos)`` of ``key``, restarted when the batch, frame shape or dtype changes."""
        rings = self.__dict__["_rings"]
        ring = rings.get(key)
        if isinstance(ring, _DeviceRing):
            self._check_device(key, ring.device, _HOST, full_reset)
            ring = None
        shape = tuple(batch) + (self.N,) + tuple(frame_shape)
        if ring is None or ring[0].shape != shape or ring[1].shape != tuple(batch) or ring[0].dtype != dtype:
            if ring is not None and not full_reset and ring[1].shape == tuple(batch):
                self._refuse_changed_frames(key, ring, tuple(batch), tuple(frame_shape), dtype)
            self.check_frame(frame_shape)
            buffer, pos = launch(_HOST_REF, "frames", "frames_state", tuple(batch), self.N, tuple(frame_shape), dtype)
            buffer[...] = np.array(self.padding_value).astype(dtype)
            ring = rings[key] = (buffer, pos)
        return ring

    def _refuse_changed_frames(self, key, ring, batch, frame_shape, dtype) -> None:
        """ValueError when the frames of ``key`` change batch, shape or dtype without a reset of every sub-env.

        Restarting the history there would silently mix padding into an
        episode that is still running.
        """
        held = ring[1].shape
        raise ValueError(f"CatFrames keeps the frame history of {key!r} for batch {tuple(held)}, frames of shape "
                         f"{tuple(ring[0].shape[len(held) + 1:])} and dtype {ring[0].dtype}, but got batch {batch}, "
                         f"frames of shape {frame_shape} and dtype {np.dtype(dtype)} in the middle of an episode; "
                         f"keep the frames' shape and dtype, or reset every sub-env (a reset without "
                         f"{self.reset_key!r}) to restart the history")

    def _pad_value(self, dtype):
        """``padding_value`` in ``dtype``, as the copy kernels see it (float16 as its int16 bits)."""
        value = np.array(self.padding_value).astype(dtype)
        return value.view(np.int16)[()] if value.dtype == np.float16 else value[()]

    def _check_device(self, key, held, device, full_reset) -> None:
        """ValueError when the ring of ``key`` (on ``held``) gets frames on ``device``, unless every sub-env resets."""
        if full_reset:
            return
        raise ValueError(f"CatFrames keeps the frame history of {key!r} on {held} but got frames on {device}; pass "
                         f"the frames on {held}, or reset every sub-env (a reset without {self.reset_key!r}) to "
                         f"restart the history on {device}")

    def _push(self, key, frame, out, nb) -> None:
        buffer, pos = self.ring(key, frame.shape[:nb], frame.shape[nb:], frame.dtype)
        launch(frame, "frames", "frames_push", copy_view(buffer), pos, copy_view(frame), out=copy_view(out), dim=self.dim)

    def restart_ring(self, key, frame, out, nb, mask) -> None:
        """Restart the host ring of ``key`` with ``frame`` where ``mask`` says (None: everywhere); stacks into ``out``."""
        buffer, pos = self.ring(key, frame.shape[:nb], frame.shape[nb:], frame.dtype, full_reset=mask is None)
        launch(frame, "frames", "frames_reset", copy_view(buffer), pos, copy_view(frame), mask=mask,
               padding=self.padding, padding_value=self._pad_value(frame.dtype), out=copy_view(out), dim=self.dim)

    # ------------------------------------------------------------- CUDA ring
    def _device_ring(self, key, frame, nb, full_reset, k) -> _DeviceRing:
        """The device ring of ``key`` for CUDA ``frame``, made (or restarted) as :meth:`_ring` makes host rings."""
        ring = self.__dict__["_rings"].get(key)
        if ring is not None and (not isinstance(ring, _DeviceRing) or ring.device != frame.device):
            self._check_device(key, ring.device if isinstance(ring, _DeviceRing) else _HOST, frame.device,
                               full_reset)
            ring = None
        batch, frame_shape = tuple(frame.shape[:nb]), tuple(frame.shape[nb:])
        if (ring is None or ring.dtype != frame.dtype or tuple(ring.pos.shape) != batch
                or tuple(ring.buffer.shape) != batch + (self.N,) + frame_shape):
            if ring is not None and not full_reset and tuple(ring.pos.shape) == batch:
                self._refuse_changed_frames(key, (ring.buffer, ring.pos), batch, frame_shape,
                                            numpy_dtype(frame.dtype))
            ring = self.__dict__["_rings"][key] = self._new_device_ring(frame, nb, k)
        return ring

    def _new_device_ring(self, frame, nb, k) -> _DeviceRing:
        """A device ring for ``frame``'s batch and shape, every slot holding ``padding_value``."""
        bits = device_bits(frame)
        batch, frame_shape = tuple(frame.shape[:nb]), tuple(frame.shape[nb:])
        buffer, pos = launch(frame, k, "frames_state", batch, self.N, frame_shape, numpy_dtype(bits.dtype))
        pad = self._pad_value(np.dtype(numpy_dtype(frame.dtype))).item()
        fill = torch.full(tuple(frame.shape), pad, dtype=bits.dtype, device=frame.device)
        # a reset with "same" padding copies the frame into every slot
        launch(frame, k, "frames_reset", buffer, pos, fill, check=False)
        return _DeviceRing(buffer, pos, frame.device, frame.dtype)

    def device_stack(self, key, frame, nb, mask, reset) -> torch.Tensor:
        """The stack of CUDA ``frame`` after a push (or a reset), computed on its device.

        ``mask`` is a bool device array of the batch shape, or None for
        every sub-env. Nothing is read back: the kernels run unchecked.
        """
        self.check_frame(frame.shape[nb:])
        k = kernel_module(frame, "frames")
        ring = self._device_ring(key, frame, nb, reset and mask is None, k)
        out = torch.empty(self.stack_shape(frame.shape), dtype=frame.dtype, device=frame.device)
        src, dst = device_bits(frame), device_bits(out)
        if reset:
            launch(frame, k, "frames_reset", ring.buffer, ring.pos, src, mask=mask, padding=self.padding,
                   padding_value=self._pad_value(np.dtype(numpy_dtype(frame.dtype))), out=dst, dim=self.dim,
                   check=False)
        else:
            launch(frame, k, "frames_push", ring.buffer, ring.pos, src, out=dst, dim=self.dim, check=False)
        return out

    # ------------------------------------------------------------ reset masks
    def reset_request(self, tensordict, batch_size):
        """The reset request tensor of ``tensordict``, checked against ``batch_size`` (None: every sub-env)."""
        if tensordict is None:
            return None
        request = tensordict.get(self.reset_key, None)
        if request is None:
            return None
        batch = tuple(batch_size)
        if request.numel() != int(np.prod(batch, dtype=np.int64)):
            raise ValueError(f"CatFrames requires {self.reset_key!r} of the batch shape {batch} (optionally with a "
                             f"trailing 1), got shape {tuple(request.shape)}")
        return request

    @staticmethod
    def host_mask(request, batch):
        """``request`` as a bool NumPy array of shape ``batch``."""
        return as_array(request.cpu()).astype(np.bool_, copy=False).reshape(tuple(batch))

    @staticmethod
    def device_mask(request, batch, device):
        """``request`` as a bool device array of shape ``batch`` on ``device`` (no host copy)."""
        mask = request.detach().to(device=device, dtype=torch.bool).reshape(tuple(batch)).contiguous()
        return as_array(mask)

    def _mask_for(self, request, batch, value, masks):
        """The mask of ``request`` for frames ``value`` (host or device), converted once per kind into ``masks``."""
        if request is None:
            return None
        where = cuda_device(value)
        mask = masks.get(where)
        if mask is None:
            mask = masks[where] = (self.host_mask(request, batch) if where is None
                                   else self.device_mask(request, batch, where))
        return mask

    def _not_in_env(self):
        if self.future:
            raise RuntimeError("CatFrames(future=True) cannot run on the environment step path: windows of upcoming "
                               "frames need the whole trajectory and are only available offline (forward / "
                               "unfolding, e.g. in a replay buffer)")
        if self.mask_key is not None:
            raise RuntimeError("CatFrames(mask_key=...) is only available offline (forward / unfolding): the env "
                               "step path writes no padding masks")
        if self.as_inverse:
            raise ValueError("CatFrames as inverse is not supported as a transform for environments, only for replay "
                             "buffers: CatFrames(as_inverse=True) stacks stored data in its inverse; it cannot run "
                             "inside an env")

    # ----------------------------------------------------------------- arrays
    def array_batch_ndim(self, mask) -> int:
        """Batch dims of the arrays: the env's; outside an env, those of the last reset mask (else 0)."""
        nb = env_batch_ndim(self, None)
        if nb is None:
            if mask is not None:
                set_plain(self, "_np_nb", np.ndim(mask))
            nb = self.__dict__.get("_np_nb", 0)
        return nb

    def _np_apply(self, arrays, mask, reset):
        self._not_in_env()
        nb = self.array_batch_ndim(mask)
        for in_key, out_key in zip(self.in_keys, self.out_keys):
            frame = arrays.get(in_key)
            if frame is None:
                if not reset:  # a reset may not carry every key, as TorchRL allows
                    self._np_missing(in_key, arrays)
                continue
            frame = np.asarray(frame)
            self.check_frame(frame.shape[nb:])
            out = self._np_out(out_key, self.stack_shape(frame.shape), frame.dtype)
            if reset:
                self.restart_ring(in_key, frame, out, nb, mask)
            else:
                self._push(in_key, frame, out, nb)
            arrays[out_key] = out
        return arrays

    def _np_step(self, arrays: dict) -> dict:
        return self._np_apply(arrays, None, False)

    def _np_reset(self, arrays: dict, mask) -> dict:
        return self._np_apply(arrays, mask, True)

    # ----------------------------------------------------------- tensordicts
    def _td_apply(self, td, request, reset):
        nb = td.batch_dims
        masks = {}
        for in_key, out_key in zip(self.in_keys, self.out_keys):
            value = td.get(in_key, None)
            if value is None:
                if not reset:  # a reset may not carry every key, as TorchRL allows
                    self._missing(in_key, td)
                continue
            mask = self._mask_for(request, td.batch_size, value, masks)
            td.set(out_key, on_device(value, self, "_stack_frames", in_key, value, nb, mask, reset))
        return td

    def _stack_frames(self, key, value, nb, mask, reset) -> torch.Tensor:
        """The stack of ``value`` after a push into ``key``'s ring (or a reset), by the CPU kernels."""
        device = value.device
        frame = as_array(value.cpu() if device.type != "cpu" else value)
        self.check_frame(frame.shape[nb:])
        out = torch.empty(self.stack_shape(frame.shape), dtype=value.dtype)
        if reset:
            self.restart_ring(key, frame, out.numpy(), nb, mask)
        else:
            self._push(key, frame, out.numpy(), nb)
        return out if device.type == "cpu" else out.to(device)

    def _stack_frames_cuda(self, key, value, nb, mask, reset) -> torch.Tensor:
        """:meth:`_stack_frames` for CUDA frames: the ring lives on their device (:meth:`device_stack`)."""
        return self.device_stack(key, value.detach(), nb, mask, reset)

    def _call(self, next_tensordict):
        self._not_in_env()
        return self._td_apply(next_tensordict, None, False)

    def _reset(self, tensordict, tensordict_reset):
        self._not_in_env()
        request = self.reset_request(tensordict, tensordict_reset.batch_size)
        return self._td_apply(tensordict_reset, request, True)

    def forward(self, tensordict):
        """Stack a stored trajectory offline (see the class docstring); identity when ``as_inverse``."""
        if self.as_inverse:
            return tensordict
        return self._unfold(tensordict)

    def _inv_call(self, tensordict):
        if self.as_inverse:
            return self._unfold(tensordict)
        return tensordict

    # ---------------------------------------------------------------- offline
    def _time_dim(self, td) -> int:
        try:
            names = list(td.names)
        except (AttributeError, RuntimeError, ValueError):
            names = []
        if "time" in names:
            return names.index("time")
        warnings.warn("CatFrames stacks along the last batch dim as the time dim: name it 'time' (e.g. "
                      "`tensordict.refine_names(..., 'time')`) to choose it and silence this warning",
                      UserWarning, stacklevel=3)
        return td.batch_dims - 1

    def make_rb_transform_and_sampler(self, batch_size: int, **sampler_kwargs):
        """A replay-buffer transform and sampler that stack frames at sampling time instead of storing stacks.

        The sampler is TorchRL's ``SliceSampler`` drawing slices of ``N``
        steps (``sampler_kwargs`` go to it); the transform, a TorchRL
        ``Compose``, views a sample as ``[-1, N]`` slices, stacks them with a
        copy of this CatFrames (its keys and their ``("next", ...)`` twins),
        keeps each slice's last step, and drops the stacked keys from what is
        written to the buffer. Both sides belong to TorchRL's replay buffers,
        so this needs the ``torchrl`` package (ImportError naming it otherwise).

        Args:
            batch_size: the sampler's batch size, an int >= 1.
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, int):
            raise TypeError(f"CatFrames.make_rb_transform_and_sampler requires batch_size to be an int, got "
                            f"{type(batch_size).__name__}")
        if batch_size < 1:
            raise ValueError(f"CatFrames.make_rb_transform_and_sampler requires batch_size >= 1, got {batch_size}")
        try:
            from torchrl.data.replay_buffers import SliceSampler
            from torchrl.envs import Compose as _RBCompose
            from torchrl.envs import ExcludeTransform as _RBExclude
        except ImportError as err:
            raise ImportError("CatFrames.make_rb_transform_and_sampler requires the torchrl package for its "
                              f"replay-buffer transform and SliceSampler: {err}") from None
        in_keys = list(self.in_keys) + [unravel_key(("next", k)) for k in self.in_keys]
        out_keys = list(self.out_keys) + [unravel_key(("next", k)) for k in self.out_keys]
        stack = type(self)(N=self.N, dim=self.dim, in_keys=in_keys, out_keys=out_keys, padding=self.padding,
                           padding_value=self.padding_value, reset_key=self.reset_key, done_key=self.done_key,
                           future=self.future, mask_key=self.mask_key)
        n = self.N
        sampler = SliceSampler(slice_len=n, **sampler_kwargs)
        sampler._batch_size_multiplier = n
        transform = _RBCompose(lambda td: td.reshape(-1, n), stack.unfolding, lambda td: td[:, -1],
                               _RBExclude(*out_keys, inverse=True))
        return transform, sampler

    def unfolding(self, tensordict):
        """Stack a stored trajectory ``[*B, T, ...]`` offline, whatever ``as_inverse`` says (see the class docstring)."""
        return self._unfold(tensordict)

    def _unfold(self, td):
        if td.batch_dims < 1:
            raise ValueError("CatFrames cannot process unbatched tensordict instances: it requires a trajectory "
                             f"with a time dim (batch_size [..., T]), got batch_size {list(td.batch_size)}")
        done_key = ("next",) + (self.done_key if isinstance(self.done_key, tuple) else (self.done_key,))
        done = td.get(done_key, None)
        if done is None and not self.future:
            raise KeyError(f"CatFrames requires the {done_key!r} entry to delimit trajectories (or future=True, "
                           f"where each row is one trajectory); keys present: "
                           f"{sorted(map(str, td.keys(True, True)))}")
        if self.future:
            self._refuse_future_next(td)
        batch = tuple(td.batch_size)
        if done is None:
            done = torch.zeros(batch, dtype=torch.bool)
        if done.numel() != int(np.prod(batch, dtype=np.int64)):
            raise ValueError(f"CatFrames.forward requires {done_key!r} of shape {list(batch)} (+ a trailing 1), "
                             f"got {list(done.shape)}")
        inputs = {}
        for in_key in self.in_keys:
            value = td.get(in_key, None)
            if value is None:
                self._missing(in_key, td)
                continue
            inputs[in_key] = value
        tdim = self._time_dim(td)
        if self.mask_key is not None:
            td.set(self.mask_key, self._window_mask(done, batch, tdim))
        host_done = {}
        results = []
        for in_key, out_key in zip(self.in_keys, self.out_keys):
            value = inputs.get(in_key)
            if value is None:
                continue
            root = self._root_of(in_key, value, inputs)
            results.append((out_key, on_device(value, self, "_unfold_stacks", value, root, done, batch, tdim, host_done)))
        for out_key, out in results:
            td.set(out_key, out)
        return td

    def _refuse_future_next(self, td) -> None:
        """NotImplementedError for future windows of a ``("next", key)`` entry whose ``key`` is stacked too."""
        for in_key in self.in_keys:
            if isinstance(in_key, tuple) and in_key[0] == "next" and unravel_key(in_key[1:]) in self.in_keys:
                raise NotImplementedError(f"CatFrames(future=True) cannot stack {in_key!r} together with "
                                          f"{unravel_key(in_key[1:])!r}: the next-observation window fix-up is "
                                          "defined for history (past) windows only")

    def _window_mask(self, done, batch, tdim):
        """The ``[*batch, N]`` padding mask of the windows (on ``done``'s device)."""
        nbd, nt = len(batch), batch[tdim]
        moved = batch[:tdim] + batch[tdim + 1:] + (nt,)
        out = on_device(done, self, "_bt_window_mask", done, batch, tdim).reshape(moved + (self.N,))
        if tdim != nbd - 1:
            out = out.movedim(nbd - 1, tdim).contiguous()
        return out.to(done.device)

    def _bt_window_mask(self, done, batch, tdim) -> torch.Tensor:
        """The ``[B, T, N]`` window mask of host ``done`` by the CPU kernel."""
        nbd, nt = len(batch), batch[tdim]
        d = _to_bt(as_array(done.cpu()).astype(np.bool_, copy=False).reshape(batch), tdim, nbd, nt)
        return torch.from_numpy(launch(d, "frames", "frames_window_mask", d, self.N, future=self.future))

    def _bt_window_mask_cuda(self, done, batch, tdim) -> torch.Tensor:
        """:meth:`_bt_window_mask` for CUDA ``done``, on its device."""
        nbd, nt = len(batch), batch[tdim]
        d = _to_bt_device(done.detach().to(dtype=torch.bool).reshape(batch), tdim, nbd, nt)
        out = torch.empty(d.shape + (self.N,), dtype=torch.bool, device=done.device)
        launch(done, "frames", "frames_window_mask", d, self.N, future=self.future, out=out)
        return out

    @staticmethod
    def _root_of(in_key, value, inputs):
        """For a ``("next", key)`` entry, the root ``key`` entry of the same shape and dtype (else None)."""
        if not (isinstance(in_key, tuple) and in_key[0] == "next"):
            return None
        root = inputs.get(unravel_key(in_key[1:]))
        if root is not None and tuple(root.shape) == tuple(value.shape) and root.dtype == value.dtype:
            return root
        return None

    def _unfold_stacks(self, value, root, done, batch, tdim, host_done: dict):
        """The offline stacks of host ``value``; the ``[B, T]`` done flags are converted once per call into
        ``host_done`` and shared by every key."""
        if not host_done:
            d = as_array(done.cpu()).astype(np.bool_, copy=False).reshape(batch)
            host_done["d"] = _to_bt(d, tdim, len(batch), batch[tdim])
        return self._unfold_host(value, root, host_done["d"], batch, tdim)

    def _unfold_stacks_cuda(self, value, root, done, batch, tdim, host_done: dict):
        """:meth:`_unfold_stacks` for CUDA ``value``: the CUDA kernel on its device (nothing converted on the host)."""
        return self._unfold_device(value.detach(), root, done, batch, tdim)

    def _unfold_host(self, value, root, d, batch, tdim):
        """The offline stacks of ``value`` by the CPU kernel (``d``: the ``[B, T]`` done flags).

        NumPy's moves and copies are much faster on the CPU than torch's here,
        so the host path does not share :meth:`_unfold_device`'s torch code.
        """
        nbd, nt = len(batch), batch[tdim]
        x = as_array(value.cpu())
        self.check_frame(x.shape[nbd:])
        initial = None if root is None else _to_bt(as_array(root.cpu()), tdim, nbd, nt)
        stacked = launch(x, "frames", "frames_stack_offline", copy_view(_to_bt(x, tdim, nbd, nt)), d, self.N,
                         dim=self.dim, padding=self.padding, padding_value=self._pad_value(x.dtype),
                         initial=None if initial is None else copy_view(initial), future=self.future)
        stacked = stacked.view(x.dtype)
        moved = batch[:tdim] + batch[tdim + 1:] + (nt,)
        stacked = stacked.reshape(moved + stacked.shape[2:])
        if tdim != nbd - 1:
            stacked = np.ascontiguousarray(np.moveaxis(stacked, nbd - 1, tdim))
        return torch.from_numpy(stacked).to(value.device)

    def _unfold_device(self, x, root, done, batch, tdim):
        """The offline stacks of CUDA tensor ``x`` by the CUDA kernel, on its device."""
        nbd, nt = len(batch), batch[tdim]
        self.check_frame(x.shape[nbd:])
        d = _to_bt_device(done.detach().to(device=x.device, dtype=torch.bool).reshape(batch), tdim, nbd, nt)
        xbt = _to_bt_device(device_bits(x), tdim, nbd, nt)
        initial = None
        if root is not None:
            initial = _to_bt_device(device_bits(root.detach().to(x.device)), tdim, nbd, nt)
        out = torch.empty(self.stack_shape(xbt.shape), dtype=xbt.dtype, device=x.device)
        launch(x, "frames", "frames_stack_offline", xbt, d, self.N, dim=self.dim, padding=self.padding,
               padding_value=self._pad_value(np.dtype(numpy_dtype(x.dtype))), out=out, initial=initial,
               future=self.future)
        moved = batch[:tdim] + batch[tdim + 1:] + (nt,)
        out = out.view(x.dtype).reshape(moved + tuple(out.shape[2:]))
        if tdim != nbd - 1:
            out = out.movedim(nbd - 1, tdim).contiguous()
        return out

    # ------------------------------------------------------------------ specs
    def _spec(self, spec, composite):
        if -self.dim > spec.ndim:
            raise ValueError(f"CatFrames cannot concatenate along dim {self.dim} a spec of shape {tuple(spec.shape)}")
        pos = spec.ndim + self.dim
        n = self.N
        return mapped_spec(spec, self.stack_shape(spec.shape), lambda t: torch.cat([t] * n, dim=pos), "CatFrames")

    def transform_observation_spec(self, observation_spec):
        if self.future:
            raise RuntimeError("CatFrames(future=True) cannot be attached to an environment: windows of upcoming "
                               "frames need the whole trajectory and are only available offline (forward / "
                               "unfolding, e.g. in a replay buffer)")
        if self.as_inverse:
            return observation_spec
        return super().transform_observation_spec(observation_spec)

    def __repr__(self) -> str:
        return (f"CatFrames(N={self.N}, dim={self.dim}, keys={self.in_keys}, padding={self.padding!r}, "
                f"padding_value={self.padding_value})")
