"""Reset requests and running state, for the transforms that keep state across steps.

The per-device work (a ``"_reset"`` request read out of a tensordict as a
mask, state zeroed, counted or summed where it says) is done by the
executors of the device seam (:func:`numbarl.torch_api._device.ops_for`);
this module keeps the host forms that the array path of the rollout calls
directly, and two small helpers.

- ``reset_mask``: a ``"_reset"`` request as a NumPy bool array of the batch
  shape (None: every sub-env), and ``zero_where`` to zero state there.
- ``first_leaf``: the first tensor of a tensordict (it tells the device).
- ``batch_view``: a mask of the batch shape made to broadcast over a state.

Examples:
    >>> import numpy as np
    >>> state = np.arange(3.0)
    >>> zero_where(state, np.array([True, False, True]))
    >>> state
    array([0., 1., 0.])
"""
from __future__ import annotations

import torch

from .._device import HOST, _batch_view

__all__ = ["reset_mask", "zero_where", "first_leaf", "batch_view"]

reset_mask = HOST.reset_mask
zero_where = HOST.zero_where


def first_leaf(tensordict):
    """The first tensor of ``tensordict`` (nested entries included), or None; it tells the device of the data."""
    for value in tensordict.values(True, True):
        if isinstance(value, torch.Tensor):
            return value
    return None


def batch_view(mask: torch.Tensor, ndim: int) -> torch.Tensor:
    """``mask`` (of the batch shape) with size-1 dims appended up to ``ndim`` dims, to broadcast over a state."""
    return _batch_view(mask, ndim)
