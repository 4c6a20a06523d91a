"""Run torch_api transforms on their CUDA path without a GPU, under the Numba CUDA simulator.

The CPU build of torch has no CUDA tensors, so :func:`simulated_cuda` makes
every torch tensor *count* as a CUDA tensor for ``numbarl.torch_api``:

- ``_arrays.is_cuda`` is true for every tensor, so ``kernels_for`` picks the
  ``numbarl.core.cuda`` twins (their names are recorded in
  ``kernel_modules``) and ``stream_kwargs`` adds the stream (0);
- ``_arrays.as_array`` wraps the tensor's memory, without a copy, in the
  simulator's device array, so the CUDA kernels read and write the tensor.

Anything on that path that would move data from the device to the host on a
real GPU fails the test: ``Tensor.cpu``, ``Tensor.numpy``, ``Tensor.item``,
``Tensor.tolist``, truth tests and ``int()`` / ``float()`` of a tensor (each a
device synchronisation and copy), and the simulator's ``copy_to_host`` (what
a kernel launched on a host array, or a read-back of a device array, does).
Each attempt is recorded in ``attempts`` and raises ``AssertionError``.

Use it around the transform calls only, and compare with the CPU path
outside it::

    with simulated_cuda() as sim:
        out = transform(td)
    assert sim.attempts == []

It must run in the simulator's pytest process (tests/cuda): import it after
``skip_unless_simulator()``.
"""
from __future__ import annotations

import contextlib
import sys

import torch
from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray

from numbarl.torch_api import _arrays

__all__ = ["simulated_cuda", "SimulatedCuda"]

_FORBIDDEN = ("cpu", "numpy", "item", "tolist", "__bool__", "__int__", "__float__")
_ORIGINAL_NUMPY = torch.Tensor.numpy
_INHERITED = object()  # marks a method torch.Tensor inherits rather than defines


class SimulatedCuda:
    """The state of one :func:`simulated_cuda` block: ``attempts`` lists the host copies tried."""

    def __init__(self):
        self.attempts = []
        self.kernel_modules = []  # the names of the modules kernels_for handed out, in call order

    def refuse(self, what):
        self.attempts.append(what)
        raise AssertionError(f"device-to-host copy on the CUDA path: {what}")


def _device_view(tensor):
    """A simulator device array sharing ``tensor``'s memory (made contiguous first, as the real path does)."""
    if tensor.device.type == "meta":
        raise AssertionError(f"a tensor of shape {tuple(tensor.shape)} reached a kernel from the default device: "
                             "tensors on the CUDA path must be made with device= of their input")
    if not tensor.is_contiguous():
        tensor = tensor.contiguous()
    if tensor.dtype is torch.bfloat16:
        raise TypeError("numbarl kernels take float16/32/64 and integer tensors, got torch.bfloat16")
    with torch._C.DisableTorchFunction():  # the default-device mode would dispatch to the patched Tensor.numpy
        return FakeCUDAArray(_ORIGINAL_NUMPY(tensor.detach()))


@contextlib.contextmanager
def simulated_cuda(default_device="meta"):
    """Treat every torch tensor as a CUDA tensor in ``numbarl.torch_api``; fail on any device-to-host copy.

    Args:
        default_device: torch's default device inside the block. ``"meta"``
            (the default) makes a tensor created without ``device=`` hold no
            memory, so one that reaches a kernel or a result is caught (on a
            GPU it would be a CPU tensor beside CUDA ones); ``None`` leaves
            the default alone.
    """
    sim = SimulatedCuda()
    original = {"is_cuda": _arrays.is_cuda, "as_array": _arrays.as_array, "cuda_stream": _arrays.cuda_stream,
                "kernels_for": _arrays.kernels_for}

    def is_cuda(tensor):
        return isinstance(tensor, torch.Tensor) or original["is_cuda"](tensor)

    def as_array(tensor):
        if isinstance(tensor, torch.Tensor):
            return _device_view(tensor)
        return original["as_array"](tensor)

    def cuda_stream(device=None):
        return 0

    def kernels_for(tensor, cpu_module_name):
        module = original["kernels_for"](tensor, cpu_module_name)
        sim.kernel_modules.append(module.__name__)
        return module

    replacement = {"is_cuda": is_cuda, "as_array": as_array, "cuda_stream": cuda_stream, "kernels_for": kernels_for}
    patched = []  # (owner, name, old value)
    # modules that imported the functions by name get the replacements too
    for name, module in list(sys.modules.items()):
        if not (name == "numbarl.torch_api" or name.startswith("numbarl.torch_api.")) or module is None:
            continue
        for attr, fn in original.items():
            if getattr(module, attr, None) is fn:
                patched.append((module, attr, fn))
                setattr(module, attr, replacement[attr])

    def forbid(method):
        def refuse(self, *args, **kwargs):
            sim.refuse(f"Tensor.{method} of a tensor of shape {tuple(self.shape)}")
        return refuse

    for method in _FORBIDDEN:
        patched.append((torch.Tensor, method, torch.Tensor.__dict__.get(method, _INHERITED)))
        setattr(torch.Tensor, method, forbid(method))

    def copy_to_host(self, *args, **kwargs):
        sim.refuse(f"copy_to_host of a device array of shape {tuple(self.shape)}")

    patched.append((FakeCUDAArray, "copy_to_host", FakeCUDAArray.__dict__["copy_to_host"]))
    FakeCUDAArray.copy_to_host = copy_to_host
    previous_device = torch.get_default_device()
    try:
        if default_device is not None:
            torch.set_default_device(default_device)
        yield sim
    finally:
        torch.set_default_device(previous_device)
        for owner, attr, old in reversed(patched):
            if old is _INHERITED:
                delattr(owner, attr)
            else:
                setattr(owner, attr, old)
