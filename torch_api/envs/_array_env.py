"""``ArrayEnvBase``: an env whose steps are written into NumPy buffers.

A subclass implements ``_np_reset(mask=None)`` and ``_np_step(action)``
(see ``_array_rollout``); this class derives TorchRL's ``_reset`` and
``_step`` from them, so the TensorDict API and the array rollout share one
implementation of the env's logic.
"""
from __future__ import annotations

import numpy as np
import torch
from tensordict import TensorDict

from .._arrays import as_array
from .common import EnvBase

__all__ = ["ArrayEnvBase"]


class ArrayEnvBase(EnvBase):
    """Base of envs that implement the array protocol (``_np_reset`` / ``_np_step``)."""

    _np_path = True

    def _np_reset(self, mask=None) -> dict:
        raise NotImplementedError(f"{type(self).__name__} must implement _np_reset(mask)")

    def _np_step(self, action) -> dict:
        raise NotImplementedError(f"{type(self).__name__} must implement _np_step(action)")

    def _to_td(self, arrays: dict) -> TensorDict:
        td = TensorDict(batch_size=self.batch_size, device=self.device)
        for key, value in arrays.items():
            td.set(key, torch.from_numpy(np.array(value, copy=True)))
        return td

    def _reset(self, tensordict=None, **kwargs):
        mask = None
        if tensordict is not None and self.batch_size:
            request = tensordict.get("_reset", None)
            if request is not None:
                mask = as_array(request).reshape(tuple(self.batch_size))
                if not mask.any():
                    mask = np.zeros(tuple(self.batch_size), dtype=bool)
        if mask is not None and not mask.any():
            values = self._np_current()
        else:
            values = self._np_reset(None if mask is None or mask.all() else mask)
        return self._to_td(values)

    def _np_current(self) -> dict:
        """Root values without resetting anything (batched envs override this)."""
        raise NotImplementedError

    def _step(self, tensordict):
        action = as_array(tensordict.get(self.action_key))
        return self._to_td(self._np_step(action))
