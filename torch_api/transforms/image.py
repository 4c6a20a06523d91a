"""Image transforms: ``ToTensorImage``, ``GrayScale``, ``Resize``, ``CenterCrop``, ``Crop``, ``PermuteTransform``.

Same constructors, defaults and spec transforms as TorchRL 0.14.1. The
pixel work runs in :mod:`numbarl.core.pixels` (Numba) on both the array path
of rollouts and the TensorDict path, with no torchvision dependency. CUDA
tensors run the CUDA twins in :mod:`numbarl.core.cuda.pixels` on their own
memory, into outputs allocated on their device; dtypes those kernels do not
take are computed with torch operations on the device, with the values of
the CPU path. Nothing is copied to the host on the CUDA path.
Transformed specs keep the class (and domain) of the input spec; a
``Bounded`` spec's ``low`` and ``high`` go through the same computation as
the data, as in TorchRL.

In a ``Compose``, a run ``ToTensorImage -> GrayScale -> Resize
[-> CenterCrop] [-> CatFrames]`` on one key runs as one fused pass per frame
(see ``fused_pixels``), with the same output.

Examples:
    >>> import torch
    >>> from tensordict import TensorDict
    >>> from numbarl.torch_api import Compose
    >>> t = Compose(ToTensorImage(), GrayScale(), Resize(84, 84))
    >>> td = TensorDict({"pixels": torch.zeros(2, 210, 160, 3, dtype=torch.uint8)}, [2])
    >>> t(td)["pixels"].shape
    torch.Size([2, 1, 84, 84])
"""
from __future__ import annotations

import numpy as np
import torch

from .._device import as_torch, launch, map_on_device, np_dtype
from .keyed_array import (
    KeyedArrayTransform,
    check_bool,
    check_int,
    kernel_bits,
    mapped_spec,
)

__all__ = ["ToTensorImage", "GrayScale", "Resize", "CenterCrop", "Crop", "PermuteTransform"]

_U8, _F16, _F32, _F64 = (np.dtype(t) for t in (np.uint8, np.float16, np.float32, np.float64))
_CORE_IN = (_U8, _F32)
_FLOAT_OUT = {torch.float16: _F16, torch.float32: _F32, torch.float64: _F64}
_INT_OUT = {torch.uint8: _U8, torch.int8: np.dtype(np.int8), torch.int16: np.dtype(np.int16),
            torch.int32: np.dtype(np.int32), torch.int64: np.dtype(np.int64)}
_HWC_TO_CHW = (-1, -3, -2)
_GRAY_WEIGHTS = (0.2989, 0.587, 0.114)


def _check_ndim(x, owner, ndim, layout):
    if x.ndim < ndim:
        raise ValueError(f"{owner} requires images with at least {ndim} dims {layout}, got shape {x.shape}")




def _window(in_hw, out_hw, top, left):
    """``(dst, src)`` index tuples of the part of a ``(top, left)`` window inside the image, or None."""
    (h, w), (n_h, n_w) = out_hw, in_hw
    y0, y1 = max(top, 0), min(top + h, n_h)
    x0, x1 = max(left, 0), min(left + w, n_w)
    if y0 >= y1 or x0 >= x1:
        return None
    return (..., slice(y0 - top, y1 - top), slice(x0 - left, x1 - left)), (..., slice(y0, y1), slice(x0, x1))


def _center_offsets(in_hw, h, w):
    """``(top, left)`` of the centre ``h x w`` window of an ``in_hw`` image, as torchvision."""
    n_h, n_w = in_hw
    top = -((h - n_h) // 2) if h > n_h else int(round((n_h - h) / 2.0))
    left = -((w - n_w) // 2) if w > n_w else int(round((n_w - w) / 2.0))
    return top, left


# ---------------------------------------------------------------- ToTensorImage
class ToTensorImage(KeyedArrayTransform):
    """``[..., H, W, C]`` images to ``[..., C, H, W]`` floats, scaled from [0, 255] to [0, 1].

    The value is ``x.div(255)`` (in the input's float dtype, or float32 for
    integer input) cast to ``dtype``, as TorchRL; uint8 and float32 input
    take the Numba kernel of :func:`numbarl.core.pixels.to_tensor_image`.

    With an integer ``dtype`` (``torch.uint8`` keeps Atari frames as bytes,
    4x smaller than float32) and ``from_int=False`` the images are only
    permuted and cast, as TorchRL's ``.to(dtype)``; uint8 to uint8 is a
    plain permuted copy. TorchRL also accepts an integer ``dtype`` with
    scaling, but ``x / 255`` cast to an integer is 0 or 1 (1 only for 255):
    that is refused here.

    Args:
        from_int: ``True`` scales by 1/255, ``False`` does not, ``None``
            (default) scales non-float input only.
        unsqueeze: add a leading dim of size 1 to 3-dim images.
        dtype: output dtype, float16, float32 or float64 (default: torch's
            default dtype), or uint8, int8, int16, int32 or int64 with
            ``from_int=False``.
        in_keys: keyword-only; default ``["pixels"]``. out_keys: default ``in_keys``.
        shape_tolerant: leave images whose last dim is not 3 in their layout
            (they are still scaled and cast).

    Raises:
        TypeError: ``from_int`` not a bool or None, ``unsqueeze`` /
            ``shape_tolerant`` not bools, ``dtype`` not a torch dtype, bad keys.
        ValueError: ``dtype`` not one of the above, an integer ``dtype``
            without ``from_int=False``; at run time, fewer than 3 dims.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> x = torch.tensor([[[0, 51, 255]]], dtype=torch.uint8)  # H=1, W=1, C=3
        >>> ToTensorImage()(TensorDict({"pixels": x}, []))["pixels"].flatten()
        tensor([0.0000, 0.2000, 1.0000])
        >>> t = ToTensorImage(from_int=False, dtype=torch.uint8)
        >>> t(TensorDict({"pixels": x}, []))["pixels"].flatten()
        tensor([  0,  51, 255], dtype=torch.uint8)
    """

    def __init__(self, from_int: bool | None = None, unsqueeze: bool = False, dtype: torch.dtype | None = None, *,
                 in_keys=None, out_keys=None, shape_tolerant: bool = False):
        owner = "ToTensorImage"
        if from_int is not None:
            from_int = check_bool(from_int, owner, "from_int")
        unsqueeze = check_bool(unsqueeze, owner, "unsqueeze")
        shape_tolerant = check_bool(shape_tolerant, owner, "shape_tolerant")
        if dtype is None:
            dtype = torch.get_default_dtype()
        if not isinstance(dtype, torch.dtype):
            raise TypeError(f"{owner} requires dtype to be a torch.dtype, got {type(dtype).__name__}: {dtype!r}")
        if dtype not in _FLOAT_OUT and dtype not in _INT_OUT:
            raise ValueError(f"{owner} requires dtype torch.float16, torch.float32, torch.float64 or (with "
                             f"from_int=False) torch.uint8, int8, int16, int32 or int64, got {dtype}")
        if dtype in _INT_OUT and from_int is not False:
            raise ValueError(f"{owner} with an integer dtype ({dtype}) requires from_int=False: images scaled "
                             f"to [0, 1] and cast to {dtype} are 0 or 1, got from_int={from_int!r}")
        super().__init__(in_keys=["pixels"] if in_keys is None else in_keys, out_keys=out_keys)
        self.from_int = from_int
        self.unsqueeze = unsqueeze
        self.dtype = dtype
        self.shape_tolerant = shape_tolerant
        self._np_dtype = _FLOAT_OUT[dtype] if dtype in _FLOAT_OUT else _INT_OUT[dtype]

    def _permutes(self, x) -> bool:
        return not (self.shape_tolerant and (x.ndim == 0 or x.shape[-1] != 3))

    def _out_meta(self, x):
        if self._permutes(x):
            _check_ndim(x, "ToTensorImage", 3, "[..., H, W, C]")
            shape = x.shape[:-3] + (x.shape[-1], x.shape[-3], x.shape[-2])
        else:
            shape = x.shape
        if self.unsqueeze and len(shape) == 3:
            shape = (1,) + shape
        return shape, self._np_dtype

    def _compute(self, x, out):
        if out.ndim == x.ndim + 1:  # unsqueezed: write the single image
            out = out[0]
        dtype = np_dtype(x)
        scale = self.from_int if self.from_int is not None else not np.issubdtype(dtype, np.floating)
        permute = self._permutes(x)
        if permute and dtype in _CORE_IN and np_dtype(out) in (_F32, _F64):
            launch(x, "pixels", "to_tensor_image", x, out=out, dtype=self._np_dtype, from_int=scale)
            return
        if permute and dtype == _U8 and np_dtype(out) == _U8:  # bytes stay bytes: a permuted copy
            launch(x, "pixels", "permute_last", x, _HWC_TO_CHW, out=out)
            return
        # other dtypes: x.div(255) in the input's float dtype (float32 for integers), then cast
        x, out = as_torch(x), as_torch(out)
        v = x
        if scale:
            v = x.div(255) if x.dtype.is_floating_point else x.to(torch.float32).div(255)
        out.copy_(v.movedim(-1, -3) if permute else v)

    def _spec(self, spec, composite):
        return self._pixel_spec(spec, keep_unbounded_class=True)

    def __repr__(self) -> str:
        return f"ToTensorImage(keys={self.in_keys}, dtype={self.dtype}, from_int={self.from_int})"


# -------------------------------------------------------------------- GrayScale
class GrayScale(KeyedArrayTransform):
    """RGB ``[..., 3, H, W]`` to luma ``[..., 1, H, W]`` with the ITU-R 601 weights.

    ``(0.2989 * r + 0.587 * g) + 0.114 * b`` in float32, as TorchRL; uint8
    results are truncated, as ``Tensor.to(torch.uint8)`` does (white is 254).
    uint8 and float32 images take the Numba kernel; other float dtypes are
    computed in their own precision, other integers in float32.

    Args:
        in_keys: default ``["pixels"]``. out_keys: default ``in_keys``.

    Raises:
        TypeError: bad keys. ValueError: at run time, an image without 3
            channels at dim -3.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> x = torch.tensor([1.0, 0.0, 0.0]).reshape(1, 3, 1, 1)
        >>> GrayScale()(TensorDict({"pixels": x}, [1]))["pixels"]
        tensor([[[[0.2989]]]])
    """

    def __init__(self, in_keys=None, out_keys=None):
        super().__init__(in_keys=["pixels"] if in_keys is None else in_keys, out_keys=out_keys)

    def _out_meta(self, x):
        if x.ndim < 3 or x.shape[-3] != 3:
            raise ValueError(f"GrayScale requires images [..., 3, H, W] with 3 channels at dim -3, got shape {x.shape}")
        return x.shape[:-3] + (1,) + x.shape[-2:], x.dtype

    def _compute(self, x, out):
        if np_dtype(x) in _CORE_IN:
            launch(x, "pixels", "grayscale", x, out=out)
            return
        # weights and arithmetic in the input's float dtype (float32 for integers)
        x, out = as_torch(x), as_torch(out)
        v = x if x.dtype.is_floating_point else x.to(torch.float32)
        wr, wg, wb = (torch.full((), c, dtype=v.dtype, device=v.device) for c in _GRAY_WEIGHTS)
        luma = (wr * v[..., 0, :, :] + wg * v[..., 1, :, :]) + wb * v[..., 2, :, :]
        out[..., 0, :, :].copy_(luma)

    def _spec(self, spec, composite):
        return self._pixel_spec(spec)


# ----------------------------------------------------------------------- Resize
def _interpolation(value, owner):
    name = getattr(value, "value", value)  # torchvision's InterpolationMode carries its name in .value
    if not isinstance(name, str):
        raise TypeError(f"{owner} requires interpolation to be a str, got {type(value).__name__}: {value!r}")
    if name.lower() not in ("bilinear", "nearest"):
        raise ValueError(f"{owner} requires interpolation 'bilinear' or 'nearest', got {value!r}")
    return name.lower()


class Resize(KeyedArrayTransform):
    """Resize ``[..., H, W]`` images (usually ``[..., C, H, W]``).

    As TorchRL 0.14.1, which hands ``[w, h]`` to torchvision's ``resize`` as
    its ``(height, width)``: the output is ``[..., w, h]``, so ``w`` sets the
    number of rows and ``h`` the number of columns. ``"bilinear"`` is
    antialiased when shrinking (torchvision's default, which TorchRL uses)
    and matches ``torch.nn.functional.interpolate(mode="bilinear",
    antialias=True, align_corners=False)`` to 1e-5 for float32; uint8 images
    stay uint8, resampled in float32 and rounded half to even as
    torchvision's tensor ``resize`` does (within 1 of ``interpolate`` on
    uint8 itself); ``"nearest"`` matches interpolate's ``"nearest"`` exactly.
    float16 and float64 images are resized in float32 and cast back.

    Args:
        w: output size along dim -2 (see above), an int > 0.
        h: output size along dim -1 (default: ``w``), an int > 0.
        interpolation: ``"bilinear"`` (default) or ``"nearest"`` (or
            torchvision's ``InterpolationMode`` of those).
        in_keys: default ``["pixels"]``. out_keys: default ``in_keys``.

    Raises:
        TypeError: ``w`` / ``h`` not ints, ``interpolation`` not a str, bad keys;
            at run time, an integer dtype other than uint8.
        ValueError: ``w`` or ``h`` <= 0, another interpolation; at run time,
            fewer than 2 dims.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> x = torch.arange(4.0).reshape(1, 1, 2, 2)
        >>> Resize(1, 1)(TensorDict({"pixels": x}, [1]))["pixels"]
        tensor([[[[1.5000]]]])
        >>> Resize(84, 64)(TensorDict({"pixels": torch.zeros(3, 210, 160)}, []))["pixels"].shape
        torch.Size([3, 84, 64])
    """

    def __init__(self, w: int, h: int | None = None, interpolation: str = "bilinear", in_keys=None, out_keys=None):
        w = check_int(w, "Resize", "w", above=0)
        h = w if h is None else check_int(h, "Resize", "h", above=0)
        interpolation = _interpolation(interpolation, "Resize")
        super().__init__(in_keys=["pixels"] if in_keys is None else in_keys, out_keys=out_keys)
        self.w = w
        self.h = h
        self.interpolation = interpolation

    def _out_meta(self, x):
        _check_ndim(x, "Resize", 2, "[..., H, W]")
        if x.dtype not in (_U8, _F16, _F32, _F64):
            raise TypeError(f"Resize requires images of dtype uint8, float16, float32 or float64, got {x.dtype}")
        return x.shape[:-2] + (self.w, self.h), x.dtype

    def _compute(self, x, out):
        mode = self.interpolation
        if np_dtype(x) in _CORE_IN:
            launch(x, "pixels", "resize", x, self.w, self.h, mode=mode, antialias=mode == "bilinear", out=out)
            return
        # float16 / float64 are resized in float32 and cast back
        out = as_torch(out)
        tmp = torch.empty(tuple(out.shape), dtype=torch.float32, device=out.device)
        launch(x, "pixels", "resize", as_torch(x).to(torch.float32), self.w, self.h, mode=mode,
               antialias=mode == "bilinear", out=tmp)
        out.copy_(tmp)

    def _spec(self, spec, composite):
        return self._pixel_spec(spec)

    def __repr__(self) -> str:
        return f"Resize(w={self.w}, h={self.h}, interpolation={self.interpolation!r}, in_keys={self.in_keys})"


# ------------------------------------------------------------------ crops
def _crop_any(x, top, left, out):
    """Window of ``x`` at ``(top, left)`` into ``out``, zero outside the image (any dtype, either device)."""
    x, out = as_torch(x), as_torch(out)
    out.zero_()
    window = _window(tuple(x.shape[-2:]), tuple(out.shape[-2:]), top, left)
    if window is not None:
        out[window[0]].copy_(x[window[1]])


class CenterCrop(KeyedArrayTransform):
    """The centre window of ``[..., H, W]`` images, zero-padded where it is larger than the image.

    As TorchRL 0.14.1, which hands ``[w, h]`` to torchvision's
    ``center_crop`` as its ``(height, width)``: the output is ``[..., w, h]``.
    The window starts at row ``round((H - w) / 2)`` (Python's round) and
    column ``round((W - h) / 2)``, as torchvision.

    Args:
        w: output size along dim -2, an int > 0. h: along dim -1 (default ``w``).
        in_keys: default ``["pixels"]``. out_keys: default ``in_keys``.

    Raises:
        TypeError: ``w`` / ``h`` not ints, bad keys. ValueError: ``w`` or
            ``h`` <= 0; at run time, fewer than 2 dims.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> x = torch.arange(1.0, 10.0).reshape(1, 3, 3)
        >>> CenterCrop(1)(TensorDict({"pixels": x}, []))["pixels"]
        tensor([[[5.]]])
    """

    def __init__(self, w: int, h: int | None = None, in_keys=None, out_keys=None):
        w = check_int(w, "CenterCrop", "w", above=0)
        h = w if h is None else check_int(h, "CenterCrop", "h", above=0)
        super().__init__(in_keys=["pixels"] if in_keys is None else in_keys, out_keys=out_keys)
        self.w = w
        self.h = h

    def _out_meta(self, x):
        _check_ndim(x, "CenterCrop", 2, "[..., H, W]")
        return x.shape[:-2] + (self.w, self.h), x.dtype

    def _compute(self, x, out):
        if np_dtype(x) in _CORE_IN:
            launch(x, "pixels", "center_crop", x, self.w, self.h, out=out)
            return
        top, left = _center_offsets(tuple(x.shape[-2:]), self.w, self.h)
        _crop_any(x, top, left, out)

    def _spec(self, spec, composite):
        return self._pixel_spec(spec)

    def __repr__(self) -> str:
        return f"CenterCrop(w={self.w}, h={self.h}, in_keys={self.in_keys})"


class Crop(KeyedArrayTransform):
    """The window of ``[..., H, W]`` images starting at ``(top, left)``, zero outside the image.

    As TorchRL 0.14.1, which hands ``w`` to torchvision's ``crop`` as the
    window height and ``h`` as its width: the output is ``[..., w, h]``,
    ``x[..., top:top + w, left:left + h]``. ``top`` and ``left`` may be
    negative and the window may pass the image's edge (zeros there), as in
    torchvision.

    Args:
        w: window rows, an int > 0. h: window columns (default ``w``).
        top: first row (default 0). left: first column (default 0).
        in_keys: default ``["pixels"]``. out_keys: default ``in_keys``.

    Raises:
        TypeError: a size or offset that is not an int, bad keys.
        ValueError: ``w`` or ``h`` <= 0; at run time, fewer than 2 dims.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> x = torch.arange(1.0, 10.0).reshape(1, 3, 3)
        >>> Crop(2, 3, top=1, left=1)(TensorDict({"pixels": x}, []))["pixels"]
        tensor([[[5., 6., 0.],
                 [8., 9., 0.]]])
    """

    def __init__(self, w: int, h: int | None = None, top: int = 0, left: int = 0, in_keys=None, out_keys=None):
        w = check_int(w, "Crop", "w", above=0)
        h = w if h is None else check_int(h, "Crop", "h", above=0)
        top = check_int(top, "Crop", "top")
        left = check_int(left, "Crop", "left")
        super().__init__(in_keys=["pixels"] if in_keys is None else in_keys, out_keys=out_keys)
        self.w = w
        self.h = h
        self.top = top
        self.left = left

    def _out_meta(self, x):
        _check_ndim(x, "Crop", 2, "[..., H, W]")
        return x.shape[:-2] + (self.w, self.h), x.dtype

    def _compute(self, x, out):
        if np_dtype(x) in _CORE_IN:
            launch(x, "pixels", "crop", x, self.top, self.left, self.w, self.h, out=out)
        else:
            _crop_any(x, self.top, self.left, out)

    def _spec(self, spec, composite):
        return self._pixel_spec(spec)

    def __repr__(self) -> str:
        return f"Crop(w={self.w}, h={self.h}, top={self.top}, left={self.left}, in_keys={self.in_keys})"


# ------------------------------------------------------------- PermuteTransform
def _permute(x, perm, out) -> None:
    """``out`` = ``x`` with its trailing dims permuted by ``perm`` (the copy kernel takes any dtype's bits)."""
    launch(x, "pixels", "permute_last", kernel_bits(x), perm, out=kernel_bits(out))


class PermuteTransform(KeyedArrayTransform):
    """Permute the trailing dims of tensors (and, inversely, of actions).

    ``dims`` lists, for each of the last ``k = len(dims)`` output dims, the
    input dim it takes, as negative indices: ``(-1, -3, -2)`` turns
    ``[..., H, W, C]`` into ``[..., C, H, W]``. The output is a contiguous
    copy made by :func:`numbarl.core.pixels.permute_last` (TorchRL returns a
    non-contiguous view with the same values). ``in_keys_inv`` entries get
    the inverse permutation of what the policy writes at ``out_keys_inv``.

    The input spec of an inverse key is the base env's spec with ``dims``
    applied (the layout the policy writes, so that the inverse gives the env
    its own layout). TorchRL 0.14.1 applies the inverse permutation there,
    which is the same only for permutations that are their own inverse.

    Args:
        dims: a permutation of ``[-k, ..., -1]``.
        in_keys, out_keys: forward keys (default: none).
        in_keys_inv, out_keys_inv: inverse keys (default: none; ``out_keys_inv``
            defaults to ``in_keys_inv``).

    Raises:
        TypeError: ``dims`` not a sequence of ints, bad keys.
        ValueError: ``dims`` not a permutation of negative trailing dims; at
            run time, fewer dims than ``len(dims)``.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> t = PermuteTransform((-1, -3, -2), in_keys=["pixels"])
        >>> t(TensorDict({"pixels": torch.zeros(4, 210, 160, 3)}, [4]))["pixels"].shape
        torch.Size([4, 3, 210, 160])
    """

    def __init__(self, dims, in_keys=None, out_keys=None, in_keys_inv=None, out_keys_inv=None):
        owner = "PermuteTransform"
        if isinstance(dims, (str, bytes)) or not hasattr(dims, "__len__"):
            raise TypeError(f"{owner} requires dims to be a sequence of negative ints, got {dims!r}")
        values = [check_int(d, owner, "each entry of dims") for d in dims]
        k = len(values)
        if k == 0 or sorted(values) != list(range(-k, 0)):
            raise ValueError(f"{owner} requires dims to be a permutation of {list(range(-k, 0))}, got {dims!r}. "
                             f"Only tailing dims with negative indices are supported")
        super().__init__(in_keys=in_keys, out_keys=out_keys, in_keys_inv=in_keys_inv, out_keys_inv=out_keys_inv)
        self.dims = dims
        self._perm = tuple(d + k for d in values)
        inverse = [0] * k
        for i, p in enumerate(self._perm):
            inverse[p] = i
        self._inv_perm = tuple(inverse)

    @staticmethod
    def _permuted_shape(shape, perm, owner):
        k = len(perm)
        if len(shape) < k:
            raise ValueError(f"{owner} requires at least {k} dims to permute, got shape {tuple(shape)}")
        lead, core = tuple(shape[:len(shape) - k]), tuple(shape[len(shape) - k:])
        return lead + tuple(core[p] for p in perm)

    def _out_meta(self, x):
        return self._permuted_shape(x.shape, self._perm, "PermuteTransform"), x.dtype

    def _compute(self, x, out):
        _permute(x, self._perm, out)

    def _inv_apply_transform(self, value: torch.Tensor) -> torch.Tensor:
        return map_on_device(value, lambda x: (self._permuted_shape(tuple(x.shape), self._inv_perm, "PermuteTransform"),
                                               x.dtype), lambda x, out: _permute(x, self._inv_perm, out))

    def _np_inv(self, arrays: dict) -> dict:
        for in_key, out_key in zip(self.in_keys_inv, self.out_keys_inv):
            x = arrays.get(out_key)
            if x is None:
                self._np_missing(out_key, arrays)
                continue
            x = np.asarray(x)
            out = self._np_out(("_inv",) + (in_key if isinstance(in_key, tuple) else (in_key,)),
                               self._permuted_shape(x.shape, self._inv_perm, "PermuteTransform"), x.dtype)
            _permute(x, self._inv_perm, out)
            arrays[in_key] = out
        return arrays

    def _spec_permuted(self, spec):
        nd, k = spec.ndim, len(self._perm)
        shape = self._permuted_shape(spec.shape, self._perm, "PermuteTransform")
        order = list(range(nd - k)) + [nd - k + p for p in self._perm]
        return mapped_spec(spec, shape, lambda t: t.permute(*order, *range(nd, t.ndim)), "PermuteTransform")

    def _spec(self, spec, composite):
        return self._spec_permuted(spec)

    def transform_input_spec(self, input_spec):
        return self._map_inverse_specs(input_spec.clone(), lambda spec, part: self._spec_permuted(spec))

    def __repr__(self) -> str:
        return f"PermuteTransform(dims={self.dims}, in_keys={self.in_keys}, in_keys_inv={self.in_keys_inv})"
