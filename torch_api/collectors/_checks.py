"""Argument checks shared by the collectors: one message style, the argument and the value named."""
from __future__ import annotations

import warnings

import torch

__all__ = []

# TorchRL arguments numbarl's collectors do not implement: (name, value that means "off").
UNSUPPORTED = {
    "interruptor": None,
    "compile_policy": None,
    "cudagraph_policy": None,
    "weight_updater": None,
    "weight_sync_schemes": None,
    "weight_recv_schemes": None,
    "track_policy_version": False,
    "trajs_per_write": None,
    "compact_obs": False,
    "auto_register_policy_transforms": None,
    "preemptive_threshold": None,
    "collector_class": None,
    "init_fn": None,
}
# Accepted and without effect on the data: TorchRL's performance or device-sync knobs.
NO_EFFECT = ("use_buffers", "trust_policy", "no_cuda_sync", "num_threads", "update_at_each_batch")


def reject_unsupported(owner: str, kwargs: dict) -> dict:
    """Raise for TorchRL arguments that are set to something numbarl does not do; return the rest."""
    rest = dict(kwargs)
    for name, off in UNSUPPORTED.items():
        if name in rest:
            value = rest.pop(name)
            if value is not off and value != off and not (off is None and value is False):
                raise NotImplementedError(
                    f"{owner} does not support {name}={value!r} (TorchRL 0.14.1 argument not implemented by "
                    f"numbarl); leave it at {off!r}")
    for name in NO_EFFECT:
        rest.pop(name, None)
    if rest:
        raise TypeError(f"{owner} got unexpected keyword arguments {sorted(rest)}")
    return rest


def positive_int(owner: str, name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{owner} requires {name} to be an int, got {type(value).__name__}: {value!r}")
    if value <= 0:
        raise ValueError(f"{owner} requires {name} > 0, got {value}")
    return value


def total_frames_of(owner: str, total_frames, frames_per_batch: int):
    """TorchRL's rule: -1 / None / negative is endless; a non-multiple collects whole batches (warned)."""
    if total_frames is None:
        return float("inf")
    if isinstance(total_frames, bool) or not isinstance(total_frames, int):
        raise TypeError(f"{owner} requires total_frames to be an int (-1: endless), got {total_frames!r}")
    if total_frames < 0:
        return float("inf")
    if total_frames == 0:
        raise ValueError(f"{owner} requires total_frames > 0 or -1 (endless), got 0")
    remainder = total_frames % frames_per_batch
    if remainder:
        warnings.warn(
            f"{owner}: total_frames ({total_frames}) is not exactly divisible by frames_per_batch "
            f"({frames_per_batch}); {frames_per_batch - remainder} additional frames will be collected",
            UserWarning, stacklevel=3)
    return total_frames


def cpu_device(owner: str, name: str, value):
    """Devices: CPU (or None) only in this version."""
    if value is None:
        return None
    try:
        device = torch.device(value)
    except (TypeError, RuntimeError):
        raise TypeError(f"{owner} requires {name} to be a torch.device, a device string or None, got {value!r}") \
            from None
    if device.type != "cpu":
        raise NotImplementedError(f"{owner}: {name}={value!r} is not supported yet; numbarl collectors run on "
                                  "the CPU (pass None or 'cpu', then move the batches)")
    return device
