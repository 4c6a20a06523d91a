"""Reset requests and per-step episode arithmetic on running state.

- ``reset_mask``: a ``"_reset"`` request read out of a tensordict as a NumPy
  bool array of the batch shape, and ``zero_where`` to zero state there.
- Their twins for CUDA data, as torch operations on the device
  (``device_reset_mask``, ``zero_where_tensor``, ``add_into_tensor``,
  ``count_steps_tensor``): the reset mask stays on the device, so nothing is
  read back to the host.

Examples:
    >>> import numpy as np
    >>> state = np.arange(3.0)
    >>> zero_where(state, np.array([True, False, True]))
    >>> state
    array([0., 1., 0.])
"""
from __future__ import annotations

import math

import numpy as np
import torch

from .._arrays import as_array

__all__ = ["reset_mask", "zero_where", "first_leaf", "batch_view", "device_reset_mask", "zero_where_tensor", "add_into_tensor", "count_steps_tensor"]


def reset_mask(tensordict, key, batch_shape):
    """The reset request at ``key`` in ``tensordict`` as a bool array of ``batch_shape``, or None (reset all).

    A request of shape ``[*batch, 1]`` or ``[*batch]`` is accepted.
    """
    if tensordict is None:
        return None
    request = tensordict.get(key, None)
    if request is None:
        return None
    mask = as_array(request).astype(bool, copy=False)
    size = int(np.prod(batch_shape)) if batch_shape else 1
    if mask.size != size:
        raise ValueError(f"the reset request {key!r} has shape {tuple(mask.shape)}, which does not fit the batch "
                         f"shape {tuple(batch_shape)}")
    mask = mask.reshape(tuple(batch_shape))
    if mask.all():
        return None
    return mask


def zero_where(state: np.ndarray, mask) -> None:
    """Set ``state`` to 0 where ``mask`` (batch shape, leading dims of ``state``) holds; everywhere when None."""
    if mask is None:
        state[...] = 0
    elif mask.ndim == 0:
        if mask:
            state[...] = 0
    else:
        state[mask] = 0


def first_leaf(tensordict):
    """The first tensor of ``tensordict`` (nested entries included), or None; it tells the device of the data."""
    for value in tensordict.values(True, True):
        if isinstance(value, torch.Tensor):
            return value
    return None


def batch_view(mask: torch.Tensor, ndim: int) -> torch.Tensor:
    """``mask`` (of the batch shape) with size-1 dims appended up to ``ndim`` dims, to broadcast over a state."""
    extra = ndim - mask.ndim
    return mask if extra <= 0 else mask.reshape(tuple(mask.shape) + (1,) * extra)


def device_reset_mask(tensordict, key, batch_shape, device):
    """The reset request at ``key`` as a bool tensor of ``batch_shape`` on ``device``, or None when there is none.

    The twin of :func:`reset_mask` for CUDA data: the request stays on the
    device, so a request that resets every sub-env is not told apart from a
    partial one (the masked updates of the callers give the same result for
    both). A request of shape ``[*batch, 1]`` or ``[*batch]`` is accepted.

    Raises:
        ValueError: a request whose size does not fit ``batch_shape``.
    """
    if tensordict is None:
        return None
    request = tensordict.get(key, None)
    if request is None:
        return None
    size = math.prod(batch_shape) if batch_shape else 1
    if request.numel() != size:
        raise ValueError(f"the reset request {key!r} has shape {tuple(request.shape)}, which does not fit the batch "
                         f"shape {tuple(batch_shape)}")
    return request.to(device=device, dtype=torch.bool).reshape(tuple(batch_shape))


def zero_where_tensor(state: torch.Tensor, mask) -> None:
    """:func:`zero_where` for a tensor and a bool tensor mask (or None: everywhere), on the state's device."""
    if mask is None:
        state.zero_()
    else:
        state.masked_fill_(batch_view(mask, state.ndim), 0)


def add_into_tensor(total: torch.Tensor, value: torch.Tensor) -> None:
    """``total += value`` in place in ``total``'s dtype, as :func:`numbarl.core.episode.add_into` does on arrays.

    Raises:
        ValueError: different shapes.
    """
    if value.shape != total.shape:
        raise ValueError(f"value must have shape {tuple(total.shape)}, got {tuple(value.shape)}")
    if value.dtype == total.dtype:
        total.add_(value)
    else:
        total.copy_(total + value)


def count_steps_tensor(count: torch.Tensor, done=None, truncated=None, max_steps=None, update_done=True):
    """Add one to every step count in place; with ``max_steps``, return ``(done_out, trunc_out)``.

    The twin of :func:`numbarl.core.episode.count_steps` for tensors:
    ``trunc_out = (count >= max_steps) | truncated`` and, when
    ``update_done``, ``done_out = done | (count >= max_steps)`` (else None),
    after the increment. Returns ``(None, None)`` without ``max_steps``.

    Raises:
        TypeError: ``count`` not int64, or ``done`` / ``truncated`` not bool.
        ValueError: flags of another shape than ``count``.
    """
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
