"""``PinMemoryTransform``: the env's outputs in page-locked (pinned) host memory.

Same behaviour as TorchRL 0.14.1's: every step and reset output goes
through ``TensorDict.pin_memory()``, so that copies to a CUDA device can be
asynchronous (``non_blocking=True``). Pinning needs an accelerator: on a
machine without one, torch refuses with ``RuntimeError`` ("Cannot access
accelerator device when none is available.") at the first reset or step, as
with TorchRL; building the transform and the env's specs works anywhere.

Examples:
    >>> import torch
    >>> from tensordict import TensorDict
    >>> t = PinMemoryTransform()
    >>> t.in_keys, t.out_keys
    ([], [])
    >>> td = TensorDict({"obs": torch.zeros(3)}, [])
    >>> torch.cuda.is_available() is False or t(td)["obs"].is_pinned()
    True
"""
from __future__ import annotations

from tensordict import TensorDictBase

from .base import Transform

__all__ = ["PinMemoryTransform"]


class PinMemoryTransform(Transform):
    """Put every output of the env (steps and resets) in pinned host memory, to speed up copies to CUDA.

    It adds no key and changes no spec. Called on a tensordict (``forward``)
    it returns a pinned copy of it.

    Raises:
        RuntimeError: at a step, reset or call, when torch cannot pin memory (no
            accelerator: "Cannot access accelerator device when none is
            available."), or when a tensor is not a dense CPU tensor ("cannot pin
            'torch.cuda.FloatTensor' only dense CPU tensors can be pinned"), as in TorchRL.

    Examples:
        >>> from numbarl.torch_api import GymEnv, TransformedEnv
        >>> env = TransformedEnv(GymEnv("Pendulum-v1"), PinMemoryTransform())
        >>> env.observation_spec["observation"].shape
        torch.Size([3])
    """

    def __init__(self):
        super().__init__()

    def _call(self, next_tensordict: TensorDictBase) -> TensorDictBase:
        return next_tensordict.pin_memory()

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        return self._call(tensordict)

    def _reset(self, tensordict: TensorDictBase, tensordict_reset: TensorDictBase) -> TensorDictBase:
        return self._call(tensordict_reset)

    def __repr__(self) -> str:
        return "PinMemoryTransform()"
