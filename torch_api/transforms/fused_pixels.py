"""Fused pixel pipeline: ``ToTensorImage -> GrayScale -> Resize [-> CenterCrop] [-> CatFrames]`` in one pass.

:func:`plan_fused` scans the transforms of a ``Compose`` and replaces each
run of consecutive transforms that act on one key,

- ``ToTensorImage`` (float32 output, or uint8 output with
  ``from_int=False``; it may write to another key),
- ``GrayScale``, ``Resize`` and optionally ``CenterCrop``, in place on that key,
- optionally ``CatFrames``, in place on that key,

by a :class:`FusedPixelRun`. ``Compose`` runs the plan instead of its list
(it caches the plan until its list of transforms changes), so users get the
fused path without changing their code.

The fused run computes each frame with
:func:`numbarl.core.pixels.gray_resize`, which forms the luma of
every source pixel exactly as ``GrayScale`` after ``ToTensorImage`` does and
resamples it with ``Resize``'s kernel (only the
centre-cropped outputs when there is a ``CenterCrop``): one pass over the
source frame instead of one pass per transform. With ``CatFrames`` the frame
is written straight into the slot of the frame-stack ring and the stack is
copied out once. The output is identical to running the transforms one by
one, and the ring state is the ``CatFrames`` instance's own, so the fused and
unfused paths can be mixed. With a uint8 ``ToTensorImage`` the run stays
uint8: the luma is truncated as uint8 ``GrayScale`` stores it, the
resampled value rounded as uint8 ``Resize`` rounds it, and the frame stacks
are uint8.

CUDA tensors take the fused path on their device, with
:func:`numbarl.core.cuda.pixels.gray_resize` and the ``CatFrames`` device
ring, and nothing is read back to the host. There the frame goes into a
device array and ``frames_push`` copies it into the ring with the stack: the
slot to write straight into is only known by reading the positions back,
and a batch's slot is not contiguous, which the CUDA kernel requires.

Inputs the kernel does not take (a dtype other than uint8 / float32, or
other than uint8 for a uint8 run, a last
dim other than 3, a 3-dim image with ``unsqueeze=True``, a tensor on a
device other than the CPU or a CUDA GPU, a missing key) and runs whose
members were changed since planning go through the transforms one by one.
Members' module hooks are not called on the fused path.

Examples:
    >>> import torch
    >>> from tensordict import TensorDict
    >>> from numbarl.torch_api import CatFrames, Compose, GrayScale, Resize, ToTensorImage
    >>> t = Compose(ToTensorImage(), GrayScale(), Resize(84, 84), CatFrames(4, dim=-3))
    >>> [type(step).__name__ for step in plan_fused(t.transforms)]
    ['FusedPixelRun']
    >>> td = TensorDict({"pixels": torch.zeros(2, 210, 160, 3, dtype=torch.uint8)}, [2])
    >>> t._call(td)["pixels"].shape
    torch.Size([2, 4, 84, 84])
"""
from __future__ import annotations

import numpy as np
import torch

from .._arrays import as_array
from .._device import cuda_device, launch
from .keyed_array import array_meta
from .base import plan_steps, register_fuser
from .frames import CatFrames
from .image import CenterCrop, GrayScale, Resize, ToTensorImage

__all__ = ["plan_fused", "fuse_pixel_run", "FusedPixelRun"]

_U8, _F32 = np.dtype(np.uint8), np.dtype(np.float32)
_RUN_DTYPES = {torch.float32: _F32, torch.uint8: _U8}


def _one_key(t) -> bool:
    return len(t.in_keys) == 1 and len(t.out_keys) == 1


def _in_place(t, cls, key) -> bool:
    return type(t) is cls and _one_key(t) and t.in_keys[0] == key and t.out_keys[0] == key


def _signature(members) -> tuple:
    """What the fused computation depends on, to notice members changed after planning."""
    sig = []
    for t in members:
        sig.append((tuple(t.in_keys), tuple(t.out_keys)))
        if type(t) is ToTensorImage:
            sig.append((t.from_int, t.unsqueeze, t.dtype, t.shape_tolerant))
        elif type(t) is Resize:
            sig.append((t.w, t.h, t.interpolation))
        elif type(t) is CenterCrop:
            sig.append((t.w, t.h))
        elif type(t) is CatFrames:
            sig.append((t.N, t.dim, t.padding, t.padding_value, t.as_inverse, t.reset_key, t.future, t.mask_key))
    return tuple(sig)


def _match(transforms, i):
    """The fusable run starting at ``transforms[i]``, or None."""
    first = transforms[i]
    if type(first) is not ToTensorImage or not _one_key(first) or first.dtype not in _RUN_DTYPES:
        return None
    if first.dtype == torch.uint8 and first.from_int is not False:
        return None
    key = first.out_keys[0]
    run = [first]
    rest = list(transforms[i + 1:i + 5])
    for cls in (GrayScale, Resize):
        if not rest or not _in_place(rest[0], cls, key):
            return None
        run.append(rest.pop(0))
    resize = run[-1]
    if rest and _in_place(rest[0], CenterCrop, key) and rest[0].w <= resize.w and rest[0].h <= resize.h:
        run.append(rest.pop(0))
    if (rest and _in_place(rest[0], CatFrames, key) and not rest[0].as_inverse and not rest[0].future
            and rest[0].mask_key is None):
        run.append(rest.pop(0))
    return run


def plan_fused(transforms) -> list:
    """The steps that run ``transforms`` in order, fusable runs merged into :class:`FusedPixelRun`.

    Args:
        transforms: a sequence of transforms (e.g. a ``Compose``'s ``transforms``).

    Returns:
        A list of the transforms themselves and ``FusedPixelRun`` objects;
        the list equals ``list(transforms)`` when nothing fuses.
    """
    return plan_steps(transforms, (fuse_pixel_run,))


def fuse_pixel_run(transforms, i):
    """The fuser of pixel runs (registered with ``Compose``): ``(FusedPixelRun, length)`` at ``i``, or None."""
    run = _match(transforms, i)
    return None if run is None else (FusedPixelRun(run), len(run))


class FusedPixelRun:
    """A run of pixel transforms executed as one pass per frame (see the module docstring).

    It has the methods ``Compose`` calls on its members: ``_call``,
    ``_step``, ``_reset``, ``forward`` (and calling it), ``_np_step`` and
    ``_np_reset``.

    Args:
        members: the transforms of the run, as :func:`plan_fused` finds them.

    Raises:
        Nothing of its own: bad input raises what the members raise.

    Examples:
        >>> import numpy as np
        >>> from numbarl.torch_api import GrayScale, Resize, ToTensorImage
        >>> run = FusedPixelRun([ToTensorImage(), GrayScale(), Resize(2, 3)])
        >>> run._np_step({"pixels": np.zeros((4, 4, 3), np.uint8)})["pixels"].shape
        (1, 2, 3)
    """

    def __init__(self, members):
        self.members = tuple(members)
        self.to_tensor, _, self.resize = self.members[:3]
        self.crop = next((t for t in self.members[3:] if type(t) is CenterCrop), None)
        self.cat = next((t for t in self.members[3:] if type(t) is CatFrames), None)
        self.src = self.to_tensor.in_keys[0]
        self.key = self.to_tensor.out_keys[0]
        self._sig = _signature(self.members)
        self._bufs = {}
        self.dtype = _RUN_DTYPES[self.to_tensor.dtype]  # of the frames and stacks
        self._torch_dtype = self.to_tensor.dtype

    def __repr__(self) -> str:
        return f"FusedPixelRun({', '.join(type(t).__name__ for t in self.members)}, key={self.key!r})"

    # --------------------------------------------------------------- helpers
    def _fusable(self, x) -> bool:
        dtypes = (_U8,) if self.dtype == _U8 else (_U8, _F32)
        return (x.dtype in dtypes and x.ndim >= 3 and x.shape[-1] == 3
                and not (self.to_tensor.unsqueeze and x.ndim == 3) and _signature(self.members) == self._sig)

    def _out_hw(self):
        if self.crop is not None:
            return self.crop.w, self.crop.h
        return self.resize.w, self.resize.h

    def _frame_shape(self, x) -> tuple:
        return x.shape[:-3] + (1,) + self._out_hw()

    def _gray(self, x, out) -> None:
        """The fused frames of ``x`` into ``out`` (arrays, or tensors on ``x``'s device) by ``gray_resize``."""
        r = self.resize
        crop = None if self.crop is None else (self.crop.w, self.crop.h)
        launch(x, "pixels", "gray_resize", x, r.w, r.h, antialias=r.interpolation == "bilinear", out=out,
               mode=r.interpolation, crop=crop, from_int=self.to_tensor.from_int, dtype=self.dtype)

    def _gray_device(self, x) -> torch.Tensor:
        """The fused frames of CUDA tensor ``x``, in a new tensor on its device."""
        out = torch.empty(self._frame_shape(x), dtype=self._torch_dtype, device=x.device)
        self._gray(x, out)
        return out

    def _buf(self, name, shape) -> np.ndarray:
        out = self._bufs.get(name)
        if out is None or out.shape != tuple(shape):
            out = self._bufs[name] = np.empty(shape, dtype=self.dtype)
        return out

    def _push(self, x, nb, out) -> None:
        """Compute the frames of ``x`` into the ring of ``CatFrames`` and write the stacks into ``out``."""
        cat = self.cat
        shape = self._frame_shape(x)
        cat.check_frame(shape[nb:])
        buffer, pos = cat.ring(cat.in_keys[0], shape[:nb], shape[nb:], self.dtype)
        if pos.size == 0:
            return
        if pos.size == 1 or bool((pos == pos.flat[0]).all()):
            # every sub-env writes the same slot: compute the frames there directly
            self._gray(x, launch(x, "frames", "frames_next_slot", buffer, pos))
            launch(x, "frames", "frames_push", buffer, pos, None, out=out, dim=cat.dim)
        else:
            frame = self._buf("frame", shape)
            self._gray(x, frame)
            launch(x, "frames", "frames_push", buffer, pos, frame, out=out, dim=cat.dim)

    def _restart(self, x, nb, mask, out) -> None:
        cat = self.cat
        frame = self._buf("frame", self._frame_shape(x))
        self._gray(x, frame)
        cat.check_frame(frame.shape[nb:])
        cat.restart_ring(cat.in_keys[0], frame, out, nb, mask)

    # ---------------------------------------------------------------- arrays
    def _np_apply(self, arrays, mask, reset):
        x = arrays.get(self.src)
        if x is None or not self._fusable(np.asarray(x)):
            for t in self.members:
                arrays = t._np_reset(arrays, mask) if reset else t._np_step(arrays)
            return arrays
        x = np.asarray(x)
        if self.cat is None:
            out = self._buf("out", self._frame_shape(x))
            self._gray(x, out)
        else:
            nb = self.cat.array_batch_ndim(mask)
            cat = self.cat
            out = cat.out_buffer(cat.out_keys[0], cat.stack_shape(self._frame_shape(x)), self.dtype)
            if reset:
                self._restart(x, nb, mask, out)
            else:
                self._push(x, nb, out)
        arrays[self.key] = out
        return arrays

    def _np_step(self, arrays: dict) -> dict:
        return self._np_apply(arrays, None, False)

    def _np_reset(self, arrays: dict, mask) -> dict:
        return self._np_apply(arrays, mask, True)

    # ----------------------------------------------------------- tensordicts
    def _source(self, td):
        """The source frames: a NumPy view of a CPU tensor, a CUDA tensor itself, or None when not fusable."""
        value = td.get(self.src, None)
        if value is None:
            return None
        if cuda_device(value) is not None:
            return value.detach() if self._fusable(array_meta(value)) else None
        if value.device.type != "cpu":
            return None
        x = as_array(value)
        return x if self._fusable(x) else None

    def _td_apply_device(self, td, x, request, reset):
        """The fused run on CUDA tensor ``x``: frames and stacks on its device."""
        frame = self._gray_device(x)
        out = frame
        if self.cat is not None:
            mask = None if request is None else self.cat.device_mask(request, td.batch_size, x.device)
            out = self.cat.device_stack(self.cat.in_keys[0], frame, td.batch_dims, mask, reset)
        td.set(self.key, out)
        return td

    def _td_apply(self, td, x, request, reset):
        if isinstance(x, torch.Tensor):
            return self._td_apply_device(td, x, request, reset)
        mask = None if request is None else self.cat.host_mask(request, td.batch_size)
        shape = self._frame_shape(x)
        if self.cat is None:
            out = torch.empty(shape, dtype=self._torch_dtype)
            self._gray(x, out.numpy())
        else:
            nb = td.batch_dims
            out = torch.empty(self.cat.stack_shape(shape), dtype=self._torch_dtype)
            if reset:
                self._restart(x, nb, mask, out.numpy())
            else:
                self._push(x, nb, out.numpy())
        td.set(self.key, out)
        return td

    def _call(self, next_tensordict):
        x = self._source(next_tensordict)
        if x is None:
            for t in self.members:
                next_tensordict = t._call(next_tensordict)
            return next_tensordict
        return self._td_apply(next_tensordict, x, None, False)

    def _step(self, tensordict, next_tensordict):
        x = self._source(next_tensordict)
        if x is None:
            for t in self.members:
                next_tensordict = t._step(tensordict, next_tensordict)
            return next_tensordict
        return self._td_apply(next_tensordict, x, None, False)

    def _reset(self, tensordict, tensordict_reset):
        x = self._source(tensordict_reset)
        if x is None:
            for t in self.members:
                tensordict_reset = t._reset(tensordict, tensordict_reset)
            return tensordict_reset
        request = None if self.cat is None else self.cat.reset_request(tensordict, tensordict_reset.batch_size)
        return self._td_apply(tensordict_reset, x, request, True)

    def forward(self, tensordict):
        """The offline path: the fused frames for the whole batch, then ``CatFrames.forward`` if present."""
        x = self._source(tensordict)
        if x is None:
            for t in self.members:
                tensordict = t(tensordict)
            return tensordict
        if isinstance(x, torch.Tensor):
            out = self._gray_device(x)
        else:
            out = torch.empty(self._frame_shape(x), dtype=self._torch_dtype)
            self._gray(x, out.numpy())
        tensordict.set(self.key, out)
        if self.cat is not None:
            tensordict = self.cat(tensordict)
        return tensordict

    __call__ = forward


register_fuser(fuse_pixel_run)
