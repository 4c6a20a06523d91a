"""The send / receive half of ``AsyncEnvPool`` (TorchRL 0.14.1's ``async_*_send`` / ``async_*_recv``).

A send writes the inputs of the envs it names into their rows of the batch
arrays, flags their requests and wakes their workers; it returns at once. A
receive waits until at least ``min_get`` of the envs in flight are ready and
returns their results, sorted by env index, with an ``"env_index"`` entry.
Python work per call is O(number of keys): rows are gathered with one
fancy-indexing per key.
"""
from __future__ import annotations

import time

import numpy as np
import torch
from tensordict import TensorDict

from .._attrs import set_plain
from .._arrays import as_array
from ._worker import REQ_RESET, REQ_STEP, REQ_STEP_RESET
from .utils import step_mdp

__all__ = []

_NAMES = {REQ_STEP: "step", REQ_RESET: "reset", REQ_STEP_RESET: "step_and_maybe_reset"}


def _env_indices(cls_name: str, tensordict, env_index, num_envs: int) -> np.ndarray:
    """The env indices a send refers to: ``env_index``, else ``tensordict["env_index"]``, else every env."""
    if env_index is None:
        if tensordict is None:
            return np.arange(num_envs)
        env_index = tensordict.get("env_index", None)
        if env_index is None:
            raise KeyError(f"{cls_name}: the tensordict has no 'env_index' entry and no env_index was given; "
                           f"its keys are {sorted(map(str, tensordict.keys()))}")
        if hasattr(env_index, "tolist"):
            env_index = env_index.tolist()
    if isinstance(env_index, (int, np.integer)) and not isinstance(env_index, bool):
        env_index = [int(env_index)]
    idx = np.asarray(env_index, dtype=np.int64).reshape(-1)
    if idx.size and (idx.min() < 0 or idx.max() >= num_envs):
        raise IndexError(f"{cls_name}: env_index must be in 0..{num_envs - 1}, got {idx.tolist()}")
    if len(np.unique(idx)) != idx.size:
        raise ValueError(f"{cls_name}: env_index holds duplicates: {idx.tolist()}")
    return idx


def _single(td, env_index):
    """One env's result without the pool dim when one env was asked for by an int index (as TorchRL)."""
    if isinstance(env_index, (int, np.integer)) and not isinstance(env_index, bool):
        return td[0]
    return td


class AsyncIO:
    """Mixin of ``AsyncEnvPool``: the asynchronous API over ``self._runner`` and the batch arrays."""

    def _send(self, tensordict, env_index, code: int) -> None:
        self._check_open()
        name = type(self).__name__
        idx = _env_indices(name, tensordict, env_index, self.num_envs)
        busy = idx[self._inflight[idx] != 0]
        if busy.size:
            raise RuntimeError(f"{name}: envs {busy.tolist()} have a request in flight; receive its result "
                               "before sending another")
        sub_batch = tuple(self.batch_size[1:])
        if tensordict is not None:
            if tuple(tensordict.batch_size) == sub_batch and idx.size == 1:
                tensordict = tensordict.unsqueeze(0)  # one env's data without the pool dim
            if tensordict.batch_size[0] != idx.size:
                raise ValueError(f"{name}: the tensordict has batch size {tuple(tensordict.batch_size)} for "
                                 f"{idx.size} env indices {idx.tolist()}")
            entries = list(self._state_arrays) + (list(self._action_arrays) if code != REQ_RESET else [])
            for key, dst in entries:
                value = tensordict.get(key, None)
                if value is not None:
                    dst[idx] = as_array(value).reshape(idx.size, *dst.shape[1:])
                elif code != REQ_RESET and (key, dst) in self._action_arrays:
                    raise KeyError(f"{name}.async_{_NAMES[code]}_send: the tensordict has no {key!r} entry")
        if code != REQ_RESET:
            self.__dict__.setdefault("_chunks", []).append((idx, tensordict))
        self._inflight[idx] = code
        self._counts["sent"] += int(idx.size)
        self._runner.post(idx, code)

    def _recv(self, code: int, min_get, env_index, max_get, timeout) -> tuple:
        self._check_open()
        name = type(self).__name__
        pending = np.flatnonzero(self._inflight == code)
        if env_index is not None:
            wanted = _env_indices(name, None, env_index, self.num_envs)
            missing = wanted[self._inflight[wanted] != code]
            if missing.size:
                raise RuntimeError(f"{name}.async_{_NAMES[code]}_recv: envs {missing.tolist()} have no "
                                   f"{_NAMES[code]} request in flight")
            pending, min_get, max_get, timeout = np.sort(wanted), wanted.size, None, None
        if not pending.size:
            raise RuntimeError(f"{name}.async_{_NAMES[code]}_recv: no {_NAMES[code]} request is in flight")
        min_get = min(self.min_get if min_get is None else int(min_get), pending.size)
        deadline = None if timeout is None else time.monotonic() + float(timeout)
        ready = self._runner.wait_ready(pending, min_get, deadline)
        if ready.size < min_get:
            raise TimeoutError(f"{name}.async_{_NAMES[code]}_recv: {ready.size} of the {min_get} results asked "
                               f"for were ready within {timeout} s; the results stay available")
        if max_get is not None:
            ready = ready[: int(max_get)]
        self._runner.release(ready)
        self._inflight[ready] = 0
        self._counts["received"] += int(ready.size)
        return ready, self._rows(ready, self._next_views if code != REQ_RESET else self._root_views)

    def _rows(self, idx, views) -> TensorDict:
        td = TensorDict(batch_size=[idx.size, *self.batch_size[1:]], device=self.device)
        for key, arr in views.items():
            td.set(key, torch.from_numpy(arr[idx]))
        return td

    def _roots(self, idx) -> TensorDict:
        """The rows ``idx`` of the tensordicts sent with their step requests (dropped from the record)."""
        chunks, kept, parts = self.__dict__.get("_chunks", []), [], []
        for cidx, td in chunks:
            hit = np.isin(cidx, idx)
            if hit.all():
                parts.append((cidx, td))
            elif hit.any():
                parts.append((cidx[hit], td[torch.from_numpy(np.flatnonzero(hit))]))
                kept.append((cidx[~hit], td[torch.from_numpy(np.flatnonzero(~hit))]))
            else:
                kept.append((cidx, td))
        set_plain(self, "_chunks", kept)
        if len(parts) == 1:
            order, td = parts[0]
        else:
            order = np.concatenate([p[0] for p in parts])
            td = torch.cat([p[1] for p in parts], 0)
        sort = np.argsort(order, kind="stable")
        if (sort != np.arange(sort.size)).any():
            td = td[torch.from_numpy(sort)]
        return td.exclude("next", "env_index")

    def _step_result(self, ready, nxt) -> TensorDict:
        out = self._roots(ready).clone(False)
        out.set("next", nxt)
        out.set("env_index", torch.from_numpy(ready))
        return out

    # ------------------------------------------------------------ the public API
    def async_step_send(self, tensordict, env_index=None) -> None:
        """Start a step of the envs of ``tensordict["env_index"]`` (or ``env_index``); return at once.

        ``tensordict`` holds their actions (and state inputs), one row per env
        in the order of the indices. While they step, this process is free:
        a collector can run its policy on other envs and receive these with
        :meth:`async_step_recv` afterwards (EnvPool's model).
        """
        self._send(tensordict, env_index, REQ_STEP)

    def async_step_recv(self, min_get: int | None = None, env_index=None, *, max_get: int | None = None,
                        timeout: float | None = None) -> TensorDict:
        """Results of steps in flight: at least ``min_get`` (default ``min_get`` attribute, 1), sorted by env.

        ``env_index``: wait for exactly these envs (an int: that env's result,
        without the pool dim, as TorchRL returns it). ``max_get``: at most that
        many. ``timeout``: seconds for the whole call; TimeoutError if fewer
        than ``min_get`` are ready by then (those stay available).
        """
        ready, nxt = self._recv(REQ_STEP, min_get, env_index, max_get, timeout)
        return _single(self._step_result(ready, nxt), env_index)

    def async_step_and_maybe_reset_send(self, tensordict, env_index=None) -> None:
        """As :meth:`async_step_send`; envs that are done after the step are reset in the worker."""
        self._send(tensordict, env_index, REQ_STEP_RESET)

    def async_step_and_maybe_reset_recv(self, min_get: int | None = None, env_index=None, *,
                                        max_get: int | None = None, timeout: float | None = None) -> tuple:
        """``(step results, next roots)``: the roots of done envs are their reset data."""
        ready, nxt = self._recv(REQ_STEP_RESET, min_get, env_index, max_get, timeout)
        out = self._step_result(ready, nxt)
        root = step_mdp(out, reward_keys=self._mdp_reward_keys(), done_keys=self.done_keys,
                        action_keys=self.action_keys)
        done = nxt.get("done")
        nb = 1 + len(self.batch_size[1:])
        reset_rows = done.reshape(*done.shape[:nb], -1).any(-1)
        if reset_rows.any():
            for key, arr in self._root_views.items():
                fresh = torch.from_numpy(arr[ready])
                m = reset_rows.reshape(*reset_rows.shape, *(1,) * (fresh.dim() - nb))
                root.set(key, torch.where(m, fresh, root.get(key)))
        root.set("env_index", torch.from_numpy(ready))
        return _single(out, env_index), _single(root, env_index)

    def async_reset_send(self, tensordict=None, env_index=None) -> None:
        """Start a reset of the envs named (every env when neither ``tensordict`` nor ``env_index`` names some)."""
        self._send(tensordict, env_index, REQ_RESET)

    def async_reset_recv(self, min_get: int | None = None, env_index=None, *, max_get: int | None = None,
                         timeout: float | None = None) -> TensorDict:
        """Results of resets in flight (as :meth:`async_step_recv`), with ``"env_index"``."""
        ready, root = self._recv(REQ_RESET, min_get, env_index, max_get, timeout)
        root.set("env_index", torch.from_numpy(ready))
        return _single(root, env_index)
