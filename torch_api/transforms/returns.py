"""``Reward2GoTransform``: discounted reward-to-go of stored trajectories (TorchRL 0.14.1 API).

Re-exported by :mod:`numbarl.torch_api.transforms.reward`. The scan is
:func:`numbarl.core.returns.reward_to_go` on array views of the tensors, or
its CUDA twin :func:`numbarl.core.cuda.returns.reward_to_go` on the memory of
CUDA tensors (done flags merged there by torch, output allocated there).

Examples:
    >>> import torch
    >>> from tensordict import TensorDict
    >>> done = torch.tensor([[True, False, True]]).unsqueeze(-1)
    >>> td = TensorDict({"next": {"reward": torch.ones(1, 3, 1), "done": done}}, [1, 3])
    >>> Reward2GoTransform(gamma=0.9).inv(td)["next", "reward"].squeeze(-1)
    tensor([[1.0000, 1.9000, 1.0000]])
"""
from __future__ import annotations

import numbers

import numpy as np
import torch
from tensordict import TensorDictBase

from .._attrs import set_plain
from .._arrays import as_array
from .._device import cuda_device, launch, on_device
from .._keys import key_list
from .._keys import key_tuple
from ._env_chain import env_above
from .running_state import BufferMirrors
from .base import Transform

__all__ = ["Reward2GoTransform"]


class Reward2GoTransform(BufferMirrors, Transform):
    """Discounted reward-to-go of stored trajectories, written by the inverse transform (``inv``).

    As in TorchRL this is an inverse-only transform for replay buffers and
    collector post-processing: ``inv`` (what ``ReplayBuffer.extend`` calls)
    reads ``in_keys`` (default ``("next", "reward")``) and the done entry
    ``("next", done_key)`` and writes the reward-to-go to ``out_keys``;
    ``forward`` returns its input unchanged; stepping it inside an env raises
    ValueError. ``G[t] = r[t] + gamma * G[t + 1]``, restarting at every done
    (and truncated, when that entry is present), along the dim named
    ``"time"`` or else, as in TorchRL, the reward's second-to-last dim (the
    time dim of ``[..., T, 1]`` rewards, also when the tensordict's batch
    size stops before it, e.g. ``[B]`` with ``[B, T, 1]`` rewards).

    Differences from TorchRL, which convolves each episode with a geometric
    kernel cut where ``gamma ** k < 1e-7``: the scan here is exact (error up
    to ``1e-7 * max|r| / (gamma * (1 - gamma))`` in TorchRL), accumulated in
    float64, and accepts gamma = 0.

    CUDA data is scanned on its device by ``numbarl.core.cuda.returns`` (one
    thread per trajectory), with the same results; ``gamma`` is read on the
    host once, not per call. With ``open_end="truncate"`` nothing is read
    back; ``"torchrl"`` and ``"error"`` read back one flag per call to decide
    whether to raise (as TorchRL's own check does), which waits for the GPU.

    A trajectory whose last step is not done is handled as ``open_end`` says:
    ``"torchrl"`` (default, TorchRL 0.14.1's rule) cuts its open tail where
    the data ends (``G[T-1] = r[T-1]``) but raises ValueError when the
    trajectory has no done at all (TorchRL raises RuntimeError);
    ``"truncate"`` always cuts; ``"error"`` raises for any open tail.

    Rewards of another dtype than float32/float64 are computed in float32
    (half types) or float64 (integers) and returned in the reward's dtype
    (integers truncated toward zero). TorchRL casts gamma to an integer
    reward's dtype, so its discount there is 0 for any gamma < 1.

    Args:
        gamma: discount factor in [0, 1] (default 1.0); a buffer, as in TorchRL.
        in_keys: reward keys (default ``[("next", "reward")]``).
        out_keys: where to write (default: ``in_keys``).
        done_key: done entry under ``"next"`` (default ``"done"``).
        truncated_key: truncated entry under ``"next"`` (default ``"truncated"``),
            used when present; None to ignore it.
        open_end: ``"torchrl"``, ``"truncate"`` or ``"error"``, for trajectories
            that end without done (keyword only).

    Raises:
        TypeError: gamma not a real number, a bad key.
        ValueError: gamma outside [0, 1], an unknown ``open_end``, reward and done
            of different shapes, a trajectory without a final done (``"error"``)
            or without any done (``"torchrl"``), or use inside an env.
        KeyError: the reward or done entry is missing.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> done = torch.tensor([False, False, True, False, True]).view(1, 5, 1)
        >>> td = TensorDict({"next": {"reward": torch.ones(1, 5, 1), "done": done}}, [1, 5])
        >>> r2g = Reward2GoTransform(gamma=0.5, out_keys=["reward_to_go"])
        >>> r2g.inv(td)["reward_to_go"].squeeze(-1)
        tensor([[1.7500, 1.5000, 1.0000, 1.5000, 1.0000]])
    """

    def __init__(self, gamma=1.0, in_keys=None, out_keys=None, done_key="done", truncated_key="truncated", *,
                 open_end: str = "torchrl"):
        if isinstance(gamma, torch.Tensor) and gamma.numel() == 1 and gamma.dtype != torch.bool:
            gamma = gamma.item()
        if isinstance(gamma, (bool, np.bool_)) or not isinstance(gamma, numbers.Real):
            raise TypeError(f"Reward2GoTransform requires gamma to be a real number, got {type(gamma).__name__}: "
                            f"{gamma!r}")
        if not 0.0 <= float(gamma) <= 1.0:
            raise ValueError(f"Reward2GoTransform requires gamma in [0, 1], got {gamma!r}")
        if open_end not in ("torchrl", "truncate", "error"):
            raise ValueError(f"Reward2GoTransform requires open_end 'torchrl', 'truncate' or 'error', got "
                             f"{open_end!r}")
        in_keys = key_list([("next", "reward")] if in_keys is None else in_keys, "in_keys")
        done_key = key_list(done_key, "done_key")
        if len(done_key) != 1:
            raise TypeError(f"Reward2GoTransform requires done_key to be one key, got {done_key!r}")
        if truncated_key is not None:
            truncated_key = key_list(truncated_key, "truncated_key")
            if len(truncated_key) != 1:
                raise TypeError(f"Reward2GoTransform requires truncated_key to be one key, got {truncated_key!r}")
            truncated_key = truncated_key[0]
        out_keys = in_keys if out_keys is None else key_list(out_keys, "out_keys")
        if len(out_keys) != len(in_keys):
            raise ValueError(f"Reward2GoTransform requires one out_key per in_key, got in_keys={in_keys} and "
                             f"out_keys={out_keys}")
        super().__init__(in_keys=in_keys, out_keys=in_keys, in_keys_inv=in_keys, out_keys_inv=out_keys)
        set_plain(self, "out_keys", [])
        set_plain(self, "done_key", done_key[0])
        set_plain(self, "truncated_key", truncated_key)
        set_plain(self, "open_end", open_end)
        self.register_buffer("gamma", torch.tensor(float(gamma), dtype=torch.float64))
        self._prime_host_values()

    _host_buffers = {"gamma": float}

    # TorchRL's message (its tests match on ENV_ERR); ours adds where it can go instead
    ENV_ERR = "The Reward2GoTransform is only an inverse transform and can only be applied to the replay buffer."
    _ENV_ERROR = ENV_ERR + " A collector's postproc takes it too; an env does not."

    def set_container(self, container) -> None:
        if env_above(container) is not None:
            # Appended to an env: take it out again so the env stays usable, then refuse.
            transforms = getattr(container, "transforms", None)
            if transforms is not None:
                for i, t in enumerate(transforms):
                    if t is self:
                        del transforms[i]
                        break
            raise ValueError(self._ENV_ERROR)
        super().set_container(container)

    @staticmethod
    def _under_next(key):
        parts = key_tuple(key)
        return parts if parts[0] == "next" else ("next",) + parts

    def _inv_call(self, tensordict: TensorDictBase) -> TensorDictBase:
        done_key = self._under_next(self.done_key)
        done = tensordict.get(done_key, None)
        if done is None:
            raise KeyError(f"Reward2GoTransform: done entry {done_key!r} not found; keys present: "
                           f"{sorted(map(str, tensordict.keys(True, True)))}")
        return on_device(done, self, "_scan", tensordict, done_key, done)

    def _truncated(self, tensordict, done_key, done):
        """The truncated entry that ends trajectories with ``done``, or None."""
        if self.truncated_key is None:
            return None
        truncated = tensordict.get(self._under_next(self.truncated_key), None)
        if truncated is not None and truncated.shape != done.shape:
            raise ValueError(f"Reward2GoTransform requires {done_key!r} and its truncated entry of the same "
                             f"shape, got {tuple(done.shape)} and {tuple(truncated.shape)}")
        return truncated

    @staticmethod
    def _open_trajectories(count: int, total: int, first) -> ValueError:
        return ValueError(f"Reward2GoTransform: {count} of {total} trajectories have no done at all (first at "
                          f"index {tuple(int(i) for i in first)} of the dims other than time); pass "
                          "open_end='truncate' to cut them where the data ends")

    def _scan(self, tensordict, done_key, done):
        """The trajectory ends (done or truncated) merged with NumPy, then one scan kernel call per key."""
        d = as_array(done).astype(bool, copy=False)
        truncated = self._truncated(tensordict, done_key, done)
        if truncated is not None:
            d = d | as_array(truncated).astype(bool, copy=False)
        axis = self._time_axis(tensordict, done)
        if self.open_end == "torchrl" and d.size:
            no_done = ~d.any(axis=axis)
            if no_done.any():
                raise self._open_trajectories(int(no_done.sum()), no_done.size, np.argwhere(no_done)[0])
        return self._write_returns(tensordict, done_key, done, d, axis)

    def _scan_cuda(self, tensordict, done_key, done):
        """:meth:`_scan` for CUDA data: the ends merged with torch operations on the device.

        The host path merges them with NumPy, whose reductions over the time
        dim are much faster on the CPU than torch's. With
        ``open_end="torchrl"`` whether to raise is read back (one flag).
        """
        d = done.to(torch.bool)
        truncated = self._truncated(tensordict, done_key, done)
        if truncated is not None:
            d = d | truncated.to(device=d.device, dtype=torch.bool)
        axis = self._time_axis(tensordict, done)
        if self.open_end == "torchrl" and d.numel():
            no_done = ~d.any(dim=axis)
            if no_done.any():  # the one read-back of this mode: whether to raise
                raise self._open_trajectories(int(no_done.sum()), no_done.numel(), no_done.nonzero()[0].tolist())
        return self._write_returns(tensordict, done_key, done, d, axis)

    def _write_returns(self, tensordict, done_key, done, ends, axis: int):
        """Write every in_key's discounted reward-to-go over ``ends`` to its out_key, on the reward's device."""
        mode = "error" if self.open_end == "error" else "truncate"
        gamma = self._host_value("gamma")
        for in_key, out_key in zip(self.in_keys_inv, self.out_keys_inv):
            reward = tensordict.get(in_key, None)
            if reward is None:
                self._missing(in_key, tensordict)
                continue
            if reward.shape != done.shape:
                raise ValueError(f"Reward2GoTransform requires {in_key!r} and {done_key!r} of the same shape, "
                                 f"got {tuple(reward.shape)} and {tuple(done.shape)}")
            d = ends.to(reward.device) if isinstance(ends, torch.Tensor) else ends
            # The kernels take float32/float64: other dtypes are computed in the nearest of them and the
            # result is given back in the reward's dtype, as TorchRL does.
            calc = reward.dtype if reward.dtype in (torch.float32, torch.float64) else (
                torch.float32 if reward.dtype in (torch.float16, torch.bfloat16) else torch.float64)
            r = reward if calc == reward.dtype else reward.to(calc)
            out = torch.empty(reward.shape, dtype=calc, device=cuda_device(reward))
            launch(r, "returns", "reward_to_go", r, d, gamma, out=out, time_dim=axis, open_end=mode)
            tensordict.set(out_key, out if calc == reward.dtype else out.to(reward.dtype))
        return tensordict

    @staticmethod
    def _time_axis(tensordict, done) -> int:
        """The dim named ``"time"``, else the done entry's second-to-last dim (TorchRL's ``time_dim=-2``)."""
        names = getattr(tensordict, "names", None) or []
        if "time" in names:
            return names.index("time")
        if done.ndim < 2:
            raise ValueError("Reward2GoTransform requires done and reward entries of shape [..., T, 1] (time "
                             f"second-to-last, as in TorchRL) or a dim named 'time', got {tuple(done.shape)}")
        return done.ndim - 2

    def _missing(self, key, tensordict) -> None:
        if not self._missing_tolerance:  # TorchRL's words first ("Could not find")
            raise KeyError(f"Reward2GoTransform: Could not find {key!r}; keys present: "
                           f"{sorted(map(str, tensordict.keys(True, True)))}")

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        return tensordict

    def _call(self, next_tensordict):
        raise ValueError(self._ENV_ERROR)

    def _step(self, tensordict, next_tensordict):
        raise ValueError(self._ENV_ERROR)

    def _reset(self, tensordict, tensordict_reset):
        raise ValueError(self._ENV_ERROR)

    def transform_output_spec(self, output_spec):
        raise ValueError(self._ENV_ERROR)

    def __repr__(self) -> str:
        return (f"Reward2GoTransform(gamma={self._host_value('gamma')}, in_keys={self.in_keys_inv}, "
                f"out_keys={self.out_keys_inv}, done_key={self.done_key!r})")

