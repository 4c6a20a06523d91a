"""Count what the device seam does per transform call, under the CUDA simulator.

:func:`count_device_calls` wraps, in every ``numbarl.torch_api`` module that
holds them, the seam's ``launch`` (every kernel call of torch_api goes
through it) and ``as_array`` (the only place a tensor becomes a device
array, called by ``launch``'s view cache on a miss and by the few callers
that keep a device array of their own). Enter it inside ``simulated_cuda()``
so that the simulator's ``as_array`` is the one counted::

    with simulated_cuda() as sim, count_device_calls() as calls:
        transform(td)
    calls.launches     # ["pixels.gray_resize", "frames.frames_push"]
    calls.conversions  # the number of tensors turned into device arrays
"""
from __future__ import annotations

import contextlib
import sys

from numbarl.torch_api import _device

__all__ = ["DeviceCalls", "count_device_calls", "patch_torch_api"]


class DeviceCalls:
    """``launches``: ``"<module>.<function>"`` per launch, in order; ``conversions``: tensors made device arrays."""

    def __init__(self):
        self.launches = []
        self.conversions = 0

    def reset(self):
        self.launches, self.conversions = [], 0


def _module_name(module) -> str:
    return (module if isinstance(module, str) else module.__name__).rsplit(".", 1)[-1]


@contextlib.contextmanager
def patch_torch_api(name, replacement):
    """Replace the current value of ``name`` by ``replacement`` in every torch_api module holding it."""
    current = getattr(_device, name)
    patched = []
    for mod_name, module in list(sys.modules.items()):
        if module is None or not (mod_name == "numbarl.torch_api" or mod_name.startswith("numbarl.torch_api.")):
            continue
        if getattr(module, name, None) is current:
            patched.append(module)
            setattr(module, name, replacement)
    try:
        yield current
    finally:
        for module in patched:
            setattr(module, name, current)


@contextlib.contextmanager
def count_device_calls():
    """Count the seam's launches and tensor -> device-array conversions inside the block (see the module doc)."""
    calls = DeviceCalls()
    launch, as_array = _device.launch, _device.as_array

    def counting_launch(ref, module, name, *args, **kwargs):
        calls.launches.append(f"{_module_name(module)}.{name}")
        return launch(ref, module, name, *args, **kwargs)

    def counting_as_array(tensor):
        calls.conversions += 1
        return as_array(tensor)

    with patch_torch_api("launch", counting_launch), patch_torch_api("as_array", counting_as_array):
        yield calls
