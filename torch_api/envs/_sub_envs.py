"""The batch arrays of ``SerialEnv`` / ``ParallelEnv`` / ``AsyncEnvPool`` and the sub-envs that fill their rows.

Batch arrays: every key a sub-env reads or writes has one array of shape
``[num_workers, *sub_batch, *leaf_shape]`` (the *layout*, built from the
first sub-env's specs; ``sub_batch`` is the sub-env's own batch size, empty
for a plain env and e.g. ``[3]`` for ``SerialEnv(3, ...)``, which gives the
nested batch ``[num_workers, 3]`` as in TorchRL):

- ``"action"`` entries (written by the parent),
- ``"state"`` entries: the other inputs of the sub-envs (every key of their
  ``full_state_spec``: RNN hidden states, ``action_mask``...), written by
  the parent from the tensordict it is given and handed to each sub-env with
  its action (and with a reset when the reset tensordict carried them),
- ``"root"`` entries (observations and done flags after a reset),
- ``"next"`` entries (observations, rewards and done flags after a step),
- ``"mask"`` of shape ``[num_workers, *sub_batch]`` flagging what to reset,
  ``"state_at_reset"`` (one flag: the parent wrote state rows for the
  reset that follows) and ``"np_synced"`` (one flag: the parent is on the
  array path since a full array reset, so its state rows are the values
  the sub-envs last output).

:class:`SubEnvs` steps a contiguous slice of sub-envs and writes their rows:
through the array protocol (``_np_step`` / ``_np_reset``) when a sub-env has
it and needs no state input, or when every state input is one of its own
outputs (``step_count`` of a ``StepCounter``) and ``np_synced`` is set: the
sub-env then holds its state itself and the rows carry the same values;
else through the TensorDict API with its state rows. Plain
``GymEnv`` sub-envs (one Box observation, a Box action, no frame skip, no
pixels) are stepped as a group: the gymnasium envs are called directly and
their outputs written with one assignment per key, which is the same data
with less work per env.
"""
from __future__ import annotations

import numpy as np
import torch
from tensordict import TensorDict

from .._arrays import numpy_dtype

__all__ = []

GROUPS = ("action", "state", "root", "next")


def _array_ready(env) -> bool:
    ready = getattr(env, "_array_path_ready", None)
    return bool(ready is not None and ready() and hasattr(env, "_np_step") and hasattr(env, "_np_reset"))


def make_layout(env, num_workers: int) -> dict:
    """The batch layout for ``num_workers`` copies of ``env``.

    Returns a dict with, for each group, a list of ``(name, key, shape, numpy dtype)``
    (``shape`` includes the sub-env's batch dims), ``"sub_batch"`` (the sub-env's
    batch size) and ``"shm"``, the ``SharedArrays`` layout (name -> (shape, dtype)).
    """
    sub_batch = tuple(env.batch_size)
    obs = list(env.full_observation_spec.keys(True, True))
    done = list(env.full_done_spec.keys(True, True))
    reward = list(env.full_reward_spec.keys(True, True))
    action_keys = list(env.full_action_spec.keys(True, True))
    state_spec = env.full_state_spec
    state = [k for k in state_spec.keys(True, True) if k not in action_keys]
    specs = {
        "action": [(k, env.full_action_spec[k]) for k in action_keys],
        "state": [(k, state_spec[k]) for k in state],
        "root": [(k, env.full_observation_spec[k]) for k in obs] + [(k, env.full_done_spec[k]) for k in done],
        "next": ([(k, env.full_observation_spec[k]) for k in obs] + [(k, env.full_reward_spec[k]) for k in reward]
                 + [(k, env.full_done_spec[k]) for k in done]),
    }
    layout = {"num_workers": num_workers, "sub_batch": sub_batch,
              "shm": {"mask": ((num_workers, *sub_batch), np.bool_), "state_at_reset": ((1,), np.bool_),
                      "np_synced": ((1,), np.bool_)}}
    for group in GROUPS:
        entries = []
        for i, (key, spec) in enumerate(specs[group]):
            name = f"{group}{i}"
            shape, dtype = tuple(spec.shape), numpy_dtype(spec.dtype)
            entries.append((name, key, shape, dtype))
            layout["shm"][name] = ((num_workers, *shape), dtype)
        layout[group] = entries
    return layout


def check_env_layout(env, layout: dict, where: str) -> None:
    """Raise ValueError unless ``env`` has the batch size, keys, shapes and dtypes of ``layout``."""
    sub_batch = tuple(layout.get("sub_batch", ()))
    if tuple(env.batch_size) != sub_batch:
        raise ValueError(f"{where}: every sub-env must have the batch_size of the first one, "
                         f"{sub_batch}; got {tuple(env.batch_size)}")
    other = make_layout(env, layout["num_workers"])
    for group in GROUPS:
        mine = [(k, s, np.dtype(d)) for _, k, s, d in layout.get(group, [])]
        theirs = [(k, s, np.dtype(d)) for _, k, s, d in other[group]]
        if mine != theirs:
            raise ValueError(f"{where}: every sub-env must have the specs of the first one; {group} keys "
                             f"(key, shape, dtype) differ: first env {mine}, this env {theirs}")


def check_worker_env(env) -> None:
    """Let each transform of ``env`` (and of its transformed base envs) refuse to run in a batched-env worker.

    ``SerialEnv`` and ``ParallelEnv`` call it on their sub-envs when they are
    built; a transform whose work needs the outer env's
    ``step_and_maybe_reset`` (``NextObservationDelta``) raises RuntimeError.
    """
    while env is not None:
        modules = env.__dict__.get("_modules", {})
        transform = modules.get("transform")
        if transform is not None:
            transform._check_batched_worker_compat()
        env = modules.get("base_env")


def allocate(layout: dict) -> dict:
    """Process-local zero-filled batch arrays for ``layout`` (the ``SerialEnv`` storage)."""
    return {name: np.zeros(shape, dtype=dtype) for name, (shape, dtype) in layout["shm"].items()}


def _plain_gym(env) -> bool:
    """A ``GymEnv`` / ``GymWrapper`` (exactly) with one Box observation, a Box action, no frame skip, no pixels."""
    from .gym import GymEnv, GymWrapper

    if type(env) not in (GymEnv, GymWrapper) or env.frame_skip != 1 or env.from_pixels:
        return False
    from gymnasium import spaces

    return (list(env._obs_buffers) == ["observation"] and len(env._readers) == 1
            and isinstance(env._env.observation_space, spaces.Box)
            and isinstance(env._env.action_space, spaces.Box)
            and np.dtype(env._env.action_space.dtype) == np.dtype(numpy_dtype(env.action_spec.dtype)))


class SubEnvs:
    """Sub-envs ``lo .. lo + len(envs) - 1`` of a batch, stepping into the rows of the batch arrays.

    Args:
        envs: the sub-env objects.
        arrays: mapping from layout names to batch arrays (a dict or a ``SharedArrays``).
        layout: from :func:`make_layout`.
        lo: the batch index of ``envs[0]``.
    """

    def __init__(self, envs, arrays, layout: dict, lo: int = 0):
        self.envs = list(envs)
        self.lo = lo
        hi = lo + len(self.envs)
        self.rows = range(lo, hi)
        self.sub_batch = tuple(layout.get("sub_batch", ()))
        self.action = [(key, arrays[name]) for name, key, _, _ in layout["action"]]
        self.state = [(key, arrays[name]) for name, key, _, _ in layout.get("state", [])]
        self.root = [(key, arrays[name]) for name, key, _, _ in layout["root"]]
        self.next = [(key, arrays[name]) for name, key, _, _ in layout["next"]]
        # (key, batch array, its rows lo..hi with the first two dims merged): one concatenate fills them
        self.next_flat = [(key, dst, dst[lo:hi].reshape(-1, *dst.shape[2:]) if dst.ndim > 1 else None)
                          for key, dst in self.next]
        self.mask = arrays["mask"]
        self.state_at_reset = arrays["state_at_reset"] if "state_at_reset" in arrays else None
        self.np_synced = arrays["np_synced"] if "np_synced" in arrays else None
        carried = {k for k, _ in self.state} <= {k for k, _ in self.next}
        # fast_np: the array protocol on the array path (state inputs the sub-env carries itself);
        # fast: also on the TensorDict path, where state rows may hold any value
        self.fast_np = [len(self.action) == 1 and carried and _array_ready(env) for env in self.envs]
        self.fast = [f and not self.state for f in self.fast_np]
        self.all_fast = all(self.fast)
        self.all_fast_np = all(self.fast_np)
        self.gym = None
        if self.all_fast and not self.sub_batch and self.envs and all(_plain_gym(e) for e in self.envs):
            nxt = dict(self.next)
            if set(nxt) == {"observation", "reward", "done", "terminated", "truncated"}:
                self.gym = ([e._env for e in self.envs], self.action[0][1][lo:hi],
                            *(nxt[k][lo:hi] for k in ("observation", "reward", "done", "terminated", "truncated")))

    def step(self, which=None) -> None:
        """Step every sub-env (or the local indices ``which``) with its ``action``/``state`` rows; write ``next``."""
        if which is None and self.gym is not None:
            self._step_gym()
            return
        synced = self.np_synced is not None and bool(self.np_synced[0])
        fast = self.fast_np if synced else self.fast
        if which is None and (self.all_fast_np if synced else self.all_fast):
            act = self.action[0][1]
            outs = [env._np_step(act[i]) for i, env in zip(self.rows, self.envs)]
            self._gather(outs, self.next_flat)
            return
        nxt = self.next
        for j in range(len(self.envs)) if which is None else which:
            i, env = self.lo + j, self.envs[j]
            if fast[j]:
                out = env._np_step(self.action[0][1][i])
                for key, dst in nxt:
                    dst[i] = out[key]
                continue
            td = self._inputs(i, self.state)
            out = env.step(td).get("next")
            for key, dst in nxt:
                dst[i] = out.get(key).numpy()

    def _step_gym(self) -> None:
        gyms, act, obs, reward, done, term, trunc = self.gym
        results = [e.step(a) for e, a in zip(gyms, act)]
        o, r, te, tr, _ = zip(*results)
        obs[...] = o
        reward[:, 0] = r
        term[:, 0] = te
        trunc[:, 0] = tr
        np.logical_or(term, trunc, out=done)

    def _inputs(self, i: int, state) -> TensorDict:
        td = TensorDict(batch_size=self.sub_batch)
        for key, src in [*self.action, *state]:
            td.set(key, torch.from_numpy(np.array(src[i])))  # np.array: 0-d rows become arrays too
        return td

    def _gather(self, outs: list, triples: list) -> None:
        """Write ``outs[j][key]`` into row ``lo + j`` of each batch array: one concatenate per key."""
        for key, dst, flat in triples:
            parts = [out[key] for out in outs]
            if flat is not None:
                try:
                    np.concatenate(parts, out=flat)
                    continue
                except (ValueError, TypeError):  # 0-d or oddly shaped leaves: one row at a time
                    pass
            for i, part in zip(self.rows, parts):
                dst[i] = part

    def reset(self, use_mask: bool = True, which=None) -> None:
        """Reset the sub-envs flagged in ``mask`` (all of them when not ``use_mask``); write their ``root`` rows.

        With a nested batch, a sub-env's row of ``mask`` resets only the
        flagged members of that sub-env. ``which`` restricts to local indices.
        """
        mask = self.mask
        root = self.root
        with_state = bool(self.state) and self.state_at_reset is not None and bool(self.state_at_reset[0])
        nested = bool(self.sub_batch)
        fast = self.fast_np if self.np_synced is not None and bool(self.np_synced[0]) else self.fast
        for j in range(len(self.envs)) if which is None else which:
            i, env = self.lo + j, self.envs[j]
            part = None
            if use_mask:
                row = mask[i]
                if not row.any():
                    continue
                if nested and not row.all():
                    part = row.copy()
            if fast[j] and not with_state:
                out = env._np_reset(part) if part is not None else env._np_reset()
                for key, dst in root:
                    dst[i] = out[key]
                continue
            td = None
            if with_state or part is not None:
                td = TensorDict(batch_size=self.sub_batch)
                for key, src in self.state if with_state else ():
                    td.set(key, torch.from_numpy(np.array(src[i])))
                if part is not None:
                    td.set("_reset", torch.from_numpy(part).reshape(*self.sub_batch, 1))
            out = env.reset(td)
            for key, dst in root:
                dst[i] = out.get(key).numpy()

    def query(self, name: str, call: bool, args: tuple = (), kwargs: dict | None = None) -> list:
        """``getattr(env, name)`` of every sub-env, called with ``args`` / ``kwargs`` when ``call``, as a list.

        Calling a non-callable attribute reads it (TorchRL's
        ``ParallelEnv.attr()`` convention) and takes no arguments.
        """
        kwargs = kwargs or {}
        out = []
        for env in self.envs:
            value = getattr(env, name)
            if call:
                if callable(value):
                    value = value(*args, **kwargs)
                elif args or kwargs:
                    raise TypeError(f"attribute {name!r} of the sub-envs is a {type(value).__name__}, not callable; "
                                    f"call it without arguments to read it")
            out.append(value)
        return out

    def set_seed(self, seed, static_seed: bool):
        """Seed the sub-envs in order, each with the seed the previous one returned; return the last."""
        for env in self.envs:
            seed = env.set_seed(seed, static_seed=static_seed)
        return seed

    def close(self) -> None:
        """Close every sub-env (errors of one do not stop the others; the first is raised)."""
        first = None
        for env in self.envs:
            try:
                env.close()
            except Exception as err:  # noqa: BLE001 - re-raised below
                first = first or err
        if first is not None:
            raise first
