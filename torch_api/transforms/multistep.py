"""``MultiStepTransform``: n-step returns of data written to a replay buffer (TorchRL 0.14.1 API).

The look-ahead lengths, target indices and discounted n-step sums come from
:func:`numbarl.core.nstep.n_step_returns` (one O(T) pass per trajectory) on
array views of the tensors; the ``"next"`` entries are then gathered with one
``torch.gather`` per entry. Data on another device than the CPU has its done
flags and rewards scanned on the CPU and the results moved back.

Examples:
    >>> import torch
    >>> from tensordict import TensorDict
    >>> done = torch.tensor([[False, False, True, False, False, False]]).unsqueeze(-1)
    >>> td = TensorDict({"next": {"obs": torch.arange(6.0).view(1, 6, 1), "reward": torch.ones(1, 6, 1),
    ...                           "done": done}}, [1, 6])
    >>> out = MultiStepTransform(n_steps=2, gamma=0.5).inv(td)
    >>> out["steps_to_next_obs"], out["next", "obs"].squeeze(-1), out["next", "reward"].squeeze(-1)
    (tensor([[2, 2, 1, 2]]), tensor([[1., 2., 2., 4.]]), tensor([[1.5000, 1.5000, 1.0000, 1.5000]]))
"""
from __future__ import annotations

import numbers

import numpy as np
import torch
from tensordict import TensorDictBase

from .._attrs import set_plain
from .._device import launch
from .._keys import key_list, key_tuple, unravel_key
from ._env_chain import env_above
from .base import Transform

__all__ = ["MultiStepTransform"]

_DEFAULT_DONE_KEYS = ("done", "truncated", "terminated")


def _next(key) -> tuple:
    return ("next",) + key_tuple(key)


class MultiStepTransform(Transform):
    """n-step returns for replay buffers: ``"next"`` moved ``n_steps`` ahead, rewards summed with discount.

    An inverse-only transform (``ReplayBuffer.extend`` calls ``inv``), as in
    TorchRL: each call prepends the last ``n_steps`` steps of the previous
    call (kept in ``_buffer``) along the last batch dim (time) and returns all
    but the last ``n_steps`` steps, or None while fewer than ``n_steps + 1``
    steps are at hand; the result therefore does not depend on how the data
    was cut into batches. For step ``t``, with ``k = min(n_steps, steps left
    in its episode)`` (an episode ends at a ``("next", done_key)`` flag):

    - ``("next", reward_key)`` becomes ``sum_{j<k} gamma**j * r[t+j]`` and the
      one-step reward moves to ``("next", "original_reward")`` (with several
      reward keys, TorchRL's rule: the last one's);
    - every other ``"next"`` entry except the ``done_keys`` is taken from step
      ``t + k - 1``;
    - ``"steps_to_next_obs"`` is ``k`` (int64), ``"gamma"`` is ``gamma ** k``
      (float32), ``"nonterminal"`` is ``k != 1`` and False where the
      ``mask_key`` entry (if present) is False.

    A done entry of the batch shape plus one trailing singleton is read
    without it; a done entry with more trailing dims (one flag per agent)
    makes every such index a trajectory of its own, the reward and the
    ``"next"`` entries being indexed the same way (the ``"next"`` tensordict
    then gets the done entry's batch dims, as in TorchRL).

    Differences from TorchRL: the sums are exact up to rounding, accumulated
    in float64 (TorchRL convolves in the reward's dtype); integer and half
    rewards are summed in float64 / float32 and written back in their dtype
    (TorchRL fails on integer rewards); the steps kept for the next call are
    a copy (TorchRL keeps views of the caller's tensors); arguments are
    checked at construction.

    Args:
        n_steps: the look-ahead, an int >= 1; may be changed between calls.
        gamma: discount, a real number in [0, 1].

    Keyword Args:
        reward_keys: reward entries under ``"next"`` (default ``["reward"]``).
        done_key: the entry under ``"next"`` that ends an episode (default ``"done"``).
        done_keys: entries under ``"next"`` left as they are (default
            ``["done", "truncated", "terminated"]``).
        mask_key: root entry marking the valid steps (default ``"mask"``),
            used when present.

    Raises:
        TypeError: a non-int ``n_steps``, a non-real ``gamma``, a bad key.
        ValueError: ``n_steps < 1``, ``gamma`` outside [0, 1]; at call time data
            without a time dim, entries whose shapes do not fit the done
            entry's, or use inside an env.
        KeyError: the done or a reward entry is missing.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> def batch(start):
        ...     steps = torch.arange(start, start + 4).view(1, 4, 1)
        ...     return TensorDict({"steps": steps, "next": {"steps": steps + 1, "reward": torch.ones(1, 4, 1),
        ...                        "done": torch.zeros(1, 4, 1, dtype=torch.bool)}}, [1, 4])
        >>> t = MultiStepTransform(3, gamma=0.9)
        >>> out = t.inv(batch(0))
        >>> out["steps"].flatten(), out["next", "steps"].flatten()
        (tensor([0]), tensor([3]))
        >>> out = t.inv(batch(4))
        >>> out["steps"].flatten(), out["next", "steps"].flatten(), out["next", "reward"].flatten()
        (tensor([1, 2, 3, 4]), tensor([4, 5, 6, 7]), tensor([2.7100, 2.7100, 2.7100, 2.7100]))
    """

    ENV_ERR = ("The MultiStepTransform is only an inverse transform and can be applied exclusively to replay "
               "buffers.")

    def __init__(self, n_steps, gamma, *, reward_keys=None, done_key=None, done_keys=None, mask_key=None):
        super().__init__()
        self.n_steps = n_steps
        self.gamma = gamma
        self.reward_keys = reward_keys
        self.done_key = done_key
        self.done_keys = done_keys
        self.mask_key = mask_key
        set_plain(self, "_buffer", None)

    # ------------------------------------------------------------ settings
    @property
    def n_steps(self) -> int:
        """The look-ahead; it can be changed between calls."""
        return self._n_steps

    @n_steps.setter
    def n_steps(self, value):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
            raise TypeError(f"MultiStepTransform requires n_steps to be an int, got {type(value).__name__}: "
                            f"{value!r}")
        if value < 1:
            raise ValueError(f"MultiStepTransform requires n_steps >= 1, got {value}")
        set_plain(self, "_n_steps", int(value))

    @property
    def gamma(self) -> float:
        return self._gamma

    @gamma.setter
    def gamma(self, value):
        if isinstance(value, torch.Tensor) and value.numel() == 1 and value.dtype != torch.bool:
            value = value.item()
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
            raise TypeError(f"MultiStepTransform requires gamma to be a real number, got {type(value).__name__}: "
                            f"{value!r}")
        if not 0.0 <= float(value) <= 1.0:
            raise ValueError(f"MultiStepTransform requires gamma in [0, 1], got {value!r}")
        set_plain(self, "_gamma", float(value))

    @property
    def reward_keys(self) -> list:
        return self._reward_keys

    @reward_keys.setter
    def reward_keys(self, value):
        set_plain(self, "_reward_keys", key_list(["reward"] if value is None else value, "reward_keys"))

    @property
    def done_keys(self) -> list:
        return self._done_keys

    @done_keys.setter
    def done_keys(self, value):
        set_plain(self, "_done_keys", key_list(list(_DEFAULT_DONE_KEYS) if value is None else value, "done_keys"))

    @property
    def done_key(self):
        return self._done_key

    @done_key.setter
    def done_key(self, value):
        set_plain(self, "_done_key", unravel_key("done" if value is None else value))

    @property
    def mask_key(self):
        return self._mask_key

    @mask_key.setter
    def mask_key(self, value):
        set_plain(self, "_mask_key", unravel_key("mask" if value is None else value))

    # ------------------------------------------------------------ inverse
    def _inv_call(self, tensordict: TensorDictBase) -> TensorDictBase | None:
        if env_above(self.container) is not None:
            raise ValueError(self.ENV_ERR)
        if tensordict.batch_dims < 1:
            raise ValueError("MultiStepTransform requires a tensordict with a time dim (its last batch dim), got "
                             "batch_size []; add one with unsqueeze(-1)")
        n = self.n_steps
        total = tensordict if self._buffer is None else torch.cat([self._buffer, tensordict], -1)
        set_plain(self, "_buffer", total[..., -n:].clone())
        length = total.batch_size[-1]
        if length <= n:
            return None
        return self._n_step(total, length - n)

    def _done(self, total):
        """The done flags, without a trailing singleton dim, and their time dim."""
        key = _next(self.done_key)
        done = total.get(key, None)
        if done is None:
            raise KeyError(f"MultiStepTransform: done entry {key!r} not found; keys present: "
                           f"{sorted(map(str, total.keys(True, True)))}")
        batch = tuple(total.batch_size)
        if tuple(done.shape) == batch + (1,):
            done = done.squeeze(-1)
        elif tuple(done.shape[:len(batch)]) != batch:
            raise ValueError(f"MultiStepTransform requires {key!r} of a shape that starts with the batch shape "
                             f"{batch}, got {tuple(done.shape)}")
        return done, len(batch) - 1

    def _lookahead(self, done, reward, time_dim):
        """``(steps, next_index, reward_sum)`` from the kernel, on the data's device."""
        device = done.device
        if device.type != "cpu":  # no kernel there: scan CPU copies, move the results back
            results = self._lookahead(done.cpu(), None if reward is None else reward.cpu(), time_dim)
            return tuple(None if x is None else x.to(device) for x in results)
        steps = torch.empty(done.shape, dtype=torch.int64)
        nxt = torch.empty(done.shape, dtype=torch.int64)
        if reward is None:
            launch(done, "nstep", "n_step_returns", done, self.n_steps, self.gamma, time_dim=time_dim,
                   steps_out=steps, next_out=nxt)
            return steps, nxt, None
        calc = reward.dtype if reward.dtype in (torch.float32, torch.float64) else (
            torch.float32 if reward.dtype in (torch.float16, torch.bfloat16) else torch.float64)
        r = reward.to(calc) if calc != reward.dtype else reward
        out = torch.empty(r.shape, dtype=calc)
        launch(done, "nstep", "n_step_returns", done, self.n_steps, self.gamma, reward=r, time_dim=time_dim,
               steps_out=steps, next_out=nxt, reward_out=out)
        return steps, nxt, out if calc == reward.dtype else out.to(reward.dtype)

    def _n_step(self, total, keep: int):
        done, time_dim = self._done(total)
        done_shape = tuple(done.shape)
        sums = []
        steps = nxt = None
        for key in self.reward_keys:
            reward = total.get(_next(key), None)
            if reward is None:
                raise KeyError(f"MultiStepTransform: reward entry {_next(key)!r} not found; keys present: "
                               f"{sorted(map(str, total.keys(True, True)))}")
            if tuple(reward.shape[:len(done_shape)]) != done_shape:
                raise ValueError(f"MultiStepTransform requires {_next(key)!r} of a shape that starts with the done "
                                 f"shape {done_shape}, got {tuple(reward.shape)}")
            steps, nxt, reward_sum = self._lookahead(done, reward, time_dim)
            sums.append(reward_sum.narrow(time_dim, 0, keep))
        if steps is None:
            steps, nxt, _ = self._lookahead(done, None, time_dim)
        steps, nxt = steps.narrow(time_dim, 0, keep), nxt.narrow(time_dim, 0, keep)

        out = total[..., :keep]
        skip = {key_tuple(k) for k in (*self.reward_keys, *self.done_keys)}
        source = total.get("next")
        for key in source.keys(True, True):
            parts = key_tuple(key)
            if any(parts[:len(s)] == s for s in skip):
                continue
            value = source.get(key)
            if not isinstance(value, torch.Tensor):
                continue
            if tuple(value.shape[:len(done_shape)]) != done_shape:
                raise ValueError(f"MultiStepTransform requires every 'next' entry to start with the done shape "
                                 f"{done_shape}, got {tuple(value.shape)} for {('next',) + parts!r}")
            index = nxt.reshape(nxt.shape + (1,) * (value.ndim - nxt.ndim)).expand(
                nxt.shape + value.shape[nxt.ndim:]).to(value.device)
            out.set(("next",) + parts, torch.gather(value, time_dim, index))

        if len(done_shape) > out.batch_dims:  # one flag per agent: "next" gets the done's dims, as in TorchRL
            out.get("next").batch_size = steps.shape
        out.set("steps_to_next_obs", steps)
        for key, reward_sum in zip(self.reward_keys, sums):
            out.set(("next", "original_reward"), out.get(_next(key)))
            out.set(_next(key), reward_sum)
        out.set("gamma", self.gamma ** steps)
        nonterminal = steps != 1
        mask = total.get(self.mask_key, None)
        if mask is not None:
            if mask.numel() != done.numel():
                raise ValueError(f"MultiStepTransform requires {self.mask_key!r} with one flag per step "
                                 f"({done_shape}), got shape {tuple(mask.shape)}")
            nonterminal = nonterminal & mask.reshape(done_shape).narrow(time_dim, 0, keep).to(torch.bool)
        out.set("nonterminal", nonterminal)
        return out

    # --------------------------------------------------------- env refusal
    def _np_inv(self, arrays):
        raise ValueError(self.ENV_ERR)

    def __repr__(self) -> str:
        return (f"MultiStepTransform(n_steps={self.n_steps}, gamma={self.gamma}, reward_keys={self.reward_keys}, "
                f"done_key={self.done_key!r}, mask_key={self.mask_key!r})")
