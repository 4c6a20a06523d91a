"""The device seam: where a transform's computation meets the data's device.

A transform states its computation once, as calls of ``numbarl.core``
functions on the data it is given; this module decides everything that
depends on the device:

- :func:`launch` is the ONE function through which torch_api calls a kernel
  function of ``numbarl.core`` (CPU) or ``numbarl.core.cuda`` (CUDA): it
  picks the module for the data's device (:func:`~._arrays.kernels_for`),
  turns every tensor argument into an array view (:func:`~._arrays.as_array`)
  and adds the keyword that orders the call on torch's current stream
  (:func:`~._arrays.stream_kwargs`). Per-call host work on CUDA (device-array
  views and stream wrappers, cached per (storage, stream)) belongs here and
  nowhere else, and tests that count kernel launches and array conversions
  per transform call do it by wrapping this function.
- :func:`map_on_device` is the template of a tensor -> new tensor map: it
  allocates the output on the data's device and fills it with the
  transform's one ``compute(x, out)``; CPU tensors are handed over as NumPy
  views, CUDA tensors stay tensors on their device, and tensors on any other
  device go through the CPU path and come back.
- :func:`as_torch` gives a zero-copy tensor of an array or a tensor, for the
  few computations that fall back to torch operations where no kernel takes
  the data (a dtype the kernels lack): written once, they run on both
  devices.

Examples:
    >>> import numpy as np, torch
    >>> out = np.empty((1, 1, 1), dtype=np.float32)
    >>> _ = launch(out, "pixels", "grayscale", np.ones((3, 1, 1), np.float32), out=out)
    >>> out.round(3).tolist()
    [[[1.0]]]
    >>> map_on_device(torch.arange(3.0), lambda x: (x.shape, x.dtype), lambda x, o: np.negative(x, out=o))
    tensor([-0., -1., -2.])
"""
from __future__ import annotations

import importlib

import numpy as np
import torch

from ._arrays import as_array, device_view, is_cuda, kernels_for, numpy_dtype, stream_kwargs, torch_dtype

__all__ = ["launch", "device_array", "clear_view_cache", "kernel_module", "map_on_device", "as_torch", "np_dtype", "torch_dtype"]

_CPU_MODULES = {}

def _cpu_module(name: str):
    module = _CPU_MODULES.get(name)
    if module is None:
        module = _CPU_MODULES[name] = importlib.import_module("numbarl.core." + name)
    return module


def kernel_module(ref, module: str):
    """``numbarl.core.<module>`` for CPU data, its ``numbarl.core.cuda`` twin for CUDA data (:func:`kernels_for`)."""
    return kernels_for(ref, module) if is_cuda(ref) else _cpu_module(module)


_NDARRAY = np.ndarray
_TENSOR = torch.Tensor


def _arg(value):
    return as_array(value) if isinstance(value, torch.Tensor) else value


# Device-array views of CUDA tensors, made once per (pointer, shape, strides, dtype, device): making
# one costs about as much as a kernel launch. The key holds the whole layout, so memory freed and
# reused with another shape or dtype gets a view of its own; a view is served only for a live tensor
# with that pointer and layout, which is why the views need not (and do not) keep their tensors alive.
_VIEWS = {}
_MAX_VIEWS = 256


def device_array(tensor: torch.Tensor):
    """The device-array view of CUDA ``tensor`` that kernels take, from the view cache (made on a miss).

    A non-contiguous tensor is copied to a contiguous one first, as
    :func:`~._arrays.as_array` does, and its view is not cached (the copy
    is new on every call). At most 256 views are kept; the oldest goes first.
    """
    if not tensor.is_contiguous():
        return as_array(tensor)
    key = (tensor.data_ptr(), tensor.shape, tensor.stride(), tensor.dtype, tensor.device)
    view = _VIEWS.get(key)
    if view is None:
        # on a CUDA device an owner-less view; anything else that counts as CUDA (a simulated device)
        # takes as_array's view
        view = device_view(tensor) if tensor.device.type == "cuda" else as_array(tensor)
        if len(_VIEWS) >= _MAX_VIEWS:
            del _VIEWS[next(iter(_VIEWS))]
        _VIEWS[key] = view
    return view


def clear_view_cache() -> None:
    """Forget every cached device-array view (they are remade on the next launch)."""
    _VIEWS.clear()


def launch(ref, module, name: str, *args, check=None, **kwargs):
    """Call ``numbarl.core[.cuda].<module>.<name>`` for ``ref``'s device; tensors become array views.

    CPU data takes the short path: NumPy views of the tensors (cheap) and the
    call. CUDA data takes device-array views from a cache kept per (pointer,
    shape, strides, dtype, device) (:func:`device_array`) and the Numba
    wrapper of torch's current stream, made once per stream
    (:func:`~._arrays.cuda_stream`); nothing is read back to the host here.

    Args:
        ref: the data that decides the device and the stream.
        module: the core module (``"pixels"``, ``"frames"``, ``"moments"``,
            ``"returns"``, or a CPU-only one such as ``"episode"``), or the
            module :func:`kernel_module` chose for ``ref`` (a transform that
            launches several kernels in one call picks it once).
        name: the function.
        *args, **kwargs: its arguments; ``torch.Tensor`` values are replaced
            by their array views, anything else is passed as it is.
        check: ``False`` asks the CUDA functions that take it not to read a
            status back (see :func:`~._arrays.stream_kwargs`).

    Returns:
        what the function returns.
    """
    if ref.__class__ is _NDARRAY or not is_cuda(ref):
        if module.__class__ is str:
            module = _CPU_MODULES.get(module) or _cpu_module(module)
        for value in args:  # the array path hands NumPy arrays only: nothing to convert
            if isinstance(value, _TENSOR):
                args = tuple(map(_arg, args))
                break
        for key, value in kwargs.items():
            if isinstance(value, _TENSOR):
                kwargs[key] = as_array(value)
        return getattr(module, name)(*args, **kwargs)
    fn = getattr(kernels_for(ref, module) if module.__class__ is str else module, name)
    args = tuple(device_array(a) if isinstance(a, torch.Tensor) else a for a in args)
    for key, value in kwargs.items():
        if isinstance(value, torch.Tensor):
            kwargs[key] = device_array(value)
    kwargs.update(stream_kwargs(ref, check))
    return fn(*args, **kwargs)


def map_on_device(value: torch.Tensor, out_meta, compute) -> torch.Tensor:
    """A new tensor on ``value``'s device: ``compute(x, out)`` with the output allocated there.

    ``out_meta(x) -> (shape, dtype)`` (NumPy or torch dtype) gives the
    output. CPU tensors reach ``compute`` as NumPy views, CUDA tensors as
    (detached) tensors on their device, and tensors on another device (e.g.
    ``meta``-less accelerators without kernels) go through the CPU path, the
    result being moved back to their device.
    """
    if is_cuda(value):
        x = value.detach()
        shape, dtype = out_meta(x)
        out = torch.empty(shape, dtype=torch_dtype(dtype), device=x.device)
        compute(x, out)
        return out
    device = value.device
    x = as_array(value if device.type == "cpu" else value.cpu())
    shape, dtype = out_meta(x)
    out = torch.empty(shape, dtype=torch_dtype(dtype))
    compute(x, out.numpy())
    return out if device.type == "cpu" else out.to(device)


def as_torch(a) -> torch.Tensor:
    """``a`` as a tensor sharing its memory: NumPy arrays through ``torch.from_numpy``, tensors as they are."""
    if isinstance(a, torch.Tensor):
        return a
    if isinstance(a, np.ndarray):
        return torch.from_numpy(a)
    raise TypeError(f"as_torch requires a torch.Tensor or a numpy.ndarray, got {type(a).__name__}")


def np_dtype(a) -> np.dtype:
    """The NumPy dtype of an array or a tensor."""
    return np.dtype(numpy_dtype(a.dtype)) if isinstance(a, torch.Tensor) else a.dtype


# ============================================================================
# Per-device executors.
#
# Running state (step counts, episode returns, last observations), reset
# masks and element-wise maps are written once by a transform against an
# executor; :func:`ops_for` picks it from the data, once per call: ``HOST``
# (NumPy views and the CPU kernels, for CPU data and any device without
# kernels) or ``CUDA`` (torch operations on the data's device, where no
# mask or state is read back). :func:`on_device` runs the ``<name>_cuda``
# hook of a transform with a genuinely different CUDA algorithm.
# ============================================================================
import math  # noqa: E402  (kept with the block that uses it)

__all__ += ["HostOps", "CudaOps", "HOST", "CUDA", "ops_for", "on_device", "cuda_device"]


def _batch_view(mask, ndim: int):
    """``mask`` (of the batch shape) with size-1 dims appended up to ``ndim`` dims."""
    extra = ndim - mask.ndim
    return mask if extra <= 0 else mask.reshape(tuple(mask.shape) + (1,) * extra)


class HostOps:
    """The executor of data off CUDA: states and masks are NumPy arrays, work runs in NumPy and the CPU kernels.

    Examples:
        >>> import numpy as np
        >>> state = np.arange(3.0)
        >>> HOST.zero_where(state, np.array([True, False, True]))
        >>> state
        array([0., 1., 0.])
    """

    cuda = False

    # ------------------------------------------------------------ arrays
    @staticmethod
    def view(value):
        """The working form of a tensor: a NumPy view (tensors on other devices are copied to the host)."""
        if isinstance(value, torch.Tensor):
            return as_array(value if value.device.type == "cpu" else value.cpu())
        return value

    @staticmethod
    def tensor(a):
        """A working-form array (or None) as a CPU tensor sharing its memory."""
        return None if a is None else torch.from_numpy(np.asarray(a))

    @staticmethod
    def snapshot(state) -> torch.Tensor:
        """A copy of a kept state, as a tensor."""
        return torch.from_numpy(state.copy())

    @staticmethod
    def empty(shape, dtype, like=None) -> torch.Tensor:
        """A new (CPU) tensor of ``shape`` and torch ``dtype``, for results."""
        return torch.empty(tuple(shape), dtype=dtype)

    @staticmethod
    def zeros(shape, dtype, like=None):
        """Zeros of ``shape`` and (torch or NumPy) ``dtype``."""
        return np.zeros(tuple(shape), dtype=np.dtype(numpy_dtype(dtype)) if isinstance(dtype, torch.dtype) else dtype)

    # ------------------------------------------------------------- masks
    @staticmethod
    def mask_of(request, batch_shape, like=None, collapse=True):
        """A reset request tensor as a bool array of ``batch_shape``; None when ``collapse`` and every entry is set."""
        mask = as_array(request.cpu()).astype(np.bool_, copy=False).reshape(tuple(batch_shape))
        return None if collapse and mask.all() else mask

    @staticmethod
    def reset_mask(tensordict, key, batch_shape, like=None):
        """The reset request at ``key`` in ``tensordict`` as a bool array of ``batch_shape``, or None (reset all).

        A request of shape ``[*batch, 1]`` or ``[*batch]`` is accepted.

        Raises:
            ValueError: a request whose size does not fit ``batch_shape``.
        """
        if tensordict is None:
            return None
        request = tensordict.get(key, None)
        if request is None:
            return None
        mask = as_array(request).astype(bool, copy=False)
        size = int(np.prod(batch_shape)) if batch_shape else 1
        if mask.size != size:
            raise ValueError(f"the reset request {key!r} has shape {tuple(mask.shape)}, which does not fit the "
                             f"batch shape {tuple(batch_shape)}")
        mask = mask.reshape(tuple(batch_shape))
        if mask.all():
            return None
        return mask

    # ------------------------------------------------------------- state
    @staticmethod
    def held(store: dict, key, like=None):
        """``store[key]`` as a NumPy array (a state kept on a device is copied back once and replaced), or None."""
        state = store.get(key)
        if state is not None and type(state) is not np.ndarray:
            state = store[key] = state.detach().cpu().numpy()
        return state

    def state(self, store: dict, key, like, dtype):
        """``store[key]`` shaped like ``like``; zeros of ``dtype`` replace a missing state or one of another shape."""
        state = store.get(key)
        if state is None or type(state) is not np.ndarray or state.shape != tuple(like.shape):
            state = self.held(store, key)
            if state is None or state.shape != tuple(like.shape):
                state = store[key] = self.zeros(like.shape, dtype)
        return state

    @staticmethod
    def keep(store: dict, key, value, mask) -> None:
        """Keep a copy of ``value`` in ``store[key]``: where ``mask`` holds (None: everywhere)."""
        last = HostOps.held(store, key)
        if last is None or last.shape != value.shape or last.dtype != value.dtype:
            store[key] = np.array(value, copy=True)
        elif mask is None:
            last[...] = value
        else:
            last[mask] = value[mask]

    @staticmethod
    def copy_into(state, value) -> None:
        """``state[...] = value`` (a tensor)."""
        state[...] = as_array(value)

    @staticmethod
    def zero_where(state, mask) -> None:
        """Set ``state`` to 0 where ``mask`` (batch shape, leading dims of ``state``) holds; everywhere when None."""
        if mask is None:
            state[...] = 0
        elif mask.ndim == 0:
            if mask:
                state[...] = 0
        else:
            state[mask] = 0

    @staticmethod
    def put_mask(flags, mask) -> None:
        """``flags`` (bool, batch dims first) True where ``mask`` holds, False elsewhere; all True when None."""
        if mask is None:
            flags[...] = True
        else:
            flags[...] = mask.reshape(mask.shape + (1,) * (flags.ndim - mask.ndim))

    @staticmethod
    def add_into(total, value) -> None:
        """``total += value`` in ``total``'s dtype (:func:`numbarl.core.episode.add_into`)."""
        launch(total, "episode", "add_into", total, value)

    @staticmethod
    def count_steps(count, done, truncated, max_steps, update_done):
        """One step of ``count`` (:func:`numbarl.core.episode.count_steps`); ``(done_out, trunc_out)`` tensors.

        Both are None without ``max_steps``.
        """
        if max_steps is None:
            launch(count, "episode", "count_steps", count)
            return None, None
        trunc_out = torch.empty(count.shape, dtype=torch.bool)
        done_out = torch.empty(count.shape, dtype=torch.bool)
        launch(count, "episode", "count_steps", count, as_array(done), None if truncated is None else as_array(truncated),
               max_steps, update_done, done_out.numpy(), trunc_out.numpy())
        return done_out, trunc_out

    # --------------------------------------------------- element-wise maps
    @staticmethod
    def operand(module, name, out):
        """Buffer ``name`` of ``module`` in ``out``'s dtype (None stays None)."""
        buf = getattr(module, name)
        return None if buf is None else buf.numpy().astype(out.dtype, copy=False)

    @staticmethod
    def subtract(x, y, out):
        np.subtract(x, y, out=out, dtype=out.dtype)

    @staticmethod
    def add(x, y, out):
        np.add(x, y, out=out, dtype=out.dtype)

    @staticmethod
    def multiply(x, y, out):
        np.multiply(x, y, out=out, dtype=out.dtype)

    @staticmethod
    def divide(x, y, out):
        np.divide(x, y, out=out, dtype=out.dtype)

    @staticmethod
    def maximum(x, y, out):
        np.maximum(x, y, out=out, dtype=out.dtype)

    @staticmethod
    def minimum(x, y, out):
        np.minimum(x, y, out=out, dtype=out.dtype)

    @staticmethod
    def positive(x, out):
        """``out`` (int8, same shape) = 1 where ``x > 0``, else 0."""
        np.greater(x, 0, out=out.view(np.bool_))


class CudaOps:
    """The executor of CUDA data: states and masks are tensors on the data's device, work is torch operations there.

    Nothing is read back to the host: a reset request that resets every
    sub-env is not told apart from a partial one (the masked updates give
    the same result for both).
    """

    cuda = True

    @staticmethod
    def view(value):
        return value.detach() if isinstance(value, torch.Tensor) else value

    @staticmethod
    def tensor(a):
        return a

    @staticmethod
    def snapshot(state) -> torch.Tensor:
        return state.clone()

    @staticmethod
    def empty(shape, dtype, like) -> torch.Tensor:
        return torch.empty(tuple(shape), dtype=dtype, device=like.device)

    @staticmethod
    def zeros(shape, dtype, like):
        return torch.zeros(tuple(shape), dtype=torch_dtype(dtype), device=like.device)

    @staticmethod
    def mask_of(request, batch_shape, like, collapse=True):
        return request.detach().to(device=like.device, dtype=torch.bool).reshape(tuple(batch_shape)).contiguous()

    @staticmethod
    def reset_mask(tensordict, key, batch_shape, like):
        if tensordict is None:
            return None
        request = tensordict.get(key, None)
        if request is None:
            return None
        size = math.prod(batch_shape) if batch_shape else 1
        if request.numel() != size:
            raise ValueError(f"the reset request {key!r} has shape {tuple(request.shape)}, which does not fit the "
                             f"batch shape {tuple(batch_shape)}")
        return request.to(device=like.device, dtype=torch.bool).reshape(tuple(batch_shape))

    @staticmethod
    def held(store: dict, key, like):
        """``store[key]`` as a tensor on ``like``'s device (moved there once, keeping its dtype), or None."""
        state = store.get(key)
        if state is None or (isinstance(state, torch.Tensor) and state.device == like.device):
            return state
        source = torch.from_numpy(state) if isinstance(state, np.ndarray) else state.detach()
        state = store[key] = source.to(device=like.device, copy=True)
        return state

    def state(self, store: dict, key, like, dtype):
        state = store.get(key)
        if isinstance(state, torch.Tensor) and state.device == like.device and state.shape == like.shape:
            return state
        if state is not None and tuple(state.shape) == tuple(like.shape):
            return self.held(store, key, like)
        state = store[key] = self.zeros(like.shape, dtype, like)
        return state

    @staticmethod
    def keep(store: dict, key, value, mask) -> None:
        last = store.get(key)
        if not (isinstance(last, torch.Tensor) and last.device == value.device and last.shape == value.shape
                and last.dtype == value.dtype):
            store[key] = value.detach().clone()
        elif mask is None:
            last.copy_(value)
        else:
            last.copy_(torch.where(_batch_view(mask, value.ndim), value, last))

    @staticmethod
    def copy_into(state, value) -> None:
        state.copy_(value)

    @staticmethod
    def zero_where(state, mask) -> None:
        if mask is None:
            state.zero_()
        else:
            state.masked_fill_(_batch_view(mask, state.ndim), 0)

    @staticmethod
    def put_mask(flags, mask) -> None:
        if mask is None:
            flags.fill_(True)
        else:
            flags.copy_(_batch_view(mask, flags.ndim).expand(flags.shape))

    @staticmethod
    def add_into(total, value) -> None:
        if value.shape != total.shape:
            raise ValueError(f"value must have shape {tuple(total.shape)}, got {tuple(value.shape)}")
        if value.dtype == total.dtype:
            total.add_(value)
        else:
            total.copy_(total + value)

    @staticmethod
    def count_steps(count, done, truncated, max_steps, update_done):
        if count.dtype != torch.int64:
            raise TypeError(f"count must have dtype int64, got {count.dtype}")
        for name, flag in (("done", done), ("truncated", truncated)):
            if flag is None:
                continue
            if flag.dtype != torch.bool:
                raise TypeError(f"{name} must have dtype bool, got {flag.dtype}")
            if flag.shape != count.shape:
                raise ValueError(f"{name} must have shape {tuple(count.shape)}, got {tuple(flag.shape)}")
        count.add_(1)
        if max_steps is None:
            return None, None
        cut = count >= max_steps
        trunc_out = cut if truncated is None else cut | truncated
        return (done | cut) if update_done else None, trunc_out

    @staticmethod
    def operand(module, name, out):
        """Buffer ``name`` of ``module`` on ``out``'s device and dtype (copied there once, see ``BufferMirrors``)."""
        return module._buffer_on(name, out.device, out.dtype)

    @staticmethod
    def _in(x, out):
        return x if x.dtype == out.dtype else x.to(out.dtype)

    @staticmethod
    def subtract(x, y, out):
        torch.sub(CudaOps._in(x, out), y, out=out)

    @staticmethod
    def add(x, y, out):
        torch.add(CudaOps._in(x, out), y, out=out)

    @staticmethod
    def multiply(x, y, out):
        torch.mul(CudaOps._in(x, out), y, out=out)

    @staticmethod
    def divide(x, y, out):
        torch.div(CudaOps._in(x, out), y, out=out)

    @staticmethod
    def maximum(x, y, out):
        torch.maximum(CudaOps._in(x, out), y, out=out)

    @staticmethod
    def minimum(x, y, out):
        torch.minimum(CudaOps._in(x, out), y, out=out)

    @staticmethod
    def positive(x, out):
        torch.gt(x, 0, out=out.view(torch.bool))


HOST = HostOps()
CUDA = CudaOps()


def ops_for(ref):
    """The executor of ``ref``'s device: :data:`CUDA` for CUDA data, :data:`HOST` for anything else.

    Examples:
        >>> import torch
        >>> ops_for(torch.zeros(2)) is HOST
        True
    """
    return CUDA if is_cuda(ref) else HOST


def on_device(ref, owner, name: str, *args, **kwargs):
    """``owner.<name>_cuda(*args, **kwargs)`` for CUDA ``ref`` when ``owner`` has that hook, else ``owner.<name>(...)``.

    A transform whose CUDA path is a genuinely different algorithm (state kept
    on the device, nothing read back) writes it as that one hook; this is
    where the choice between the two is made.

    Examples:
        >>> import torch
        >>> class T:
        ...     def double(self, x): return ("host", x * 2)
        ...     def double_cuda(self, x): return ("cuda", x * 2)
        >>> on_device(torch.ones(1), T(), "double", 3)
        ('host', 6)
    """
    if is_cuda(ref):
        hook = getattr(owner, name + "_cuda", None)
        if hook is not None:
            return hook(*args, **kwargs)
    return getattr(owner, name)(*args, **kwargs)


def cuda_device(ref):
    """``ref``'s device when it is CUDA data, else None (the host)."""
    return ref.device if is_cuda(ref) else None
