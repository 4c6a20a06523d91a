"""Rollout into a preallocated TensorDict through array views.

Used by ``EnvBase.rollout`` for envs that implement the array protocol:

- ``_np_reset(mask=None) -> dict``: root keys (observations and done flags)
  after a reset of every sub-env, or of those where ``mask`` (shape
  ``batch_size``) is true; the arrays hold the whole batch.
- ``_np_step(action) -> dict``: the "next" keys (observations, reward, done
  flags) after one step with ``action`` (an array of the action spec's shape).

The returned arrays belong to the env and are overwritten by its next call,
so each one is copied into the output once. The output is allocated once
with the shape ``[*batch_size, max_steps, ...]``; the root observations of
step ``t + 1`` are the "next" observations of step ``t`` except where a
sub-env was reset, and are filled in bulk after the loop. A rollout may also
start from a given root tensordict (``auto_reset=False``) to continue the
episodes of an earlier one.
"""
from __future__ import annotations

import numpy as np
import torch
from tensordict import TensorDict

from .._arrays import as_array

__all__ = ["array_rollout"]


def _allocate(env, max_steps: int):
    fake = env.fake_tensordict()
    bs = tuple(env.batch_size)
    nb = len(bs)
    out = TensorDict(batch_size=(*bs, max_steps), device=env.device)
    views = {}
    for key in fake.keys(True, True):
        leaf = fake.get(key)
        tensor = torch.empty((*bs, max_steps, *leaf.shape[nb:]), dtype=leaf.dtype)
        if key not in ("action",) and not (isinstance(key, tuple) and key[0] == "next"):
            tensor.zero_()  # state keys the env does not write stay at their zero
        out.set(key, tensor)
        views[key] = tensor.numpy()
    return out, views, nb


def array_rollout(env, max_steps: int, policy, actions, break_when_any_done: bool, start=None):
    """Roll ``env`` out through its array protocol; see the module docstring."""
    out, views, nb = _allocate(env, max_steps)
    pre = (slice(None),) * nb
    action_key = env.action_key
    next_keys = [k for k in views if isinstance(k, tuple) and k[0] == "next"]
    next_pairs = [(views[k], k[1] if len(k) == 2 else k[1:]) for k in next_keys]
    root_from_next = [(views[k], views[("next",) + (k if isinstance(k, tuple) else (k,))])
                      for k in views
                      if not (isinstance(k, tuple) and k[0] == "next") and k != action_key
                      and ("next",) + (k if isinstance(k, tuple) else (k,)) in views]
    action_view = views[action_key]
    done_key = "done"

    t0 = pre + (0,)
    if start is None:
        for key, value in env._np_reset().items():
            if key in views:
                views[key][t0] = value
    else:
        for key in views:
            if isinstance(key, tuple) and key[0] == "next" or key == action_key:
                continue
            value = start.get(key, None)
            if value is None:
                raise KeyError(f"rollout: the starting tensordict lacks {key!r}; keys present: "
                               f"{sorted(map(str, start.keys(True, True)))}")
            views[key][t0] = as_array(value)

    if actions is not None:
        for t in range(max_steps):
            action_view[pre + (t,)] = as_array(torch.as_tensor(actions[t]))
    elif policy is None:
        # One draw for the whole rollout gives the same actions as one draw per
        # step; after an early stop the generator is rewound to where per-step
        # draws would have left it.
        rng_state = torch.get_rng_state()
        action_spec = env.full_action_spec[action_key]
        action_view[...] = np.moveaxis(as_array(action_spec.rand((max_steps,))), 0, nb)

    current = None
    if policy is not None:
        current = TensorDict(batch_size=env.batch_size, device=env.device)
        current_views = {}
        for key, view in views.items():
            if isinstance(key, tuple) and key[0] == "next":
                continue
            tensor = torch.zeros(view[t0].shape, dtype=out.get(key).dtype)
            current.set(key, tensor)
            current_views[key] = tensor.numpy()

    resets = []
    steps = max_steps
    for t in range(max_steps):
        idx = pre + (t,)
        if current is not None:
            if t > 0:
                for dst, src in root_from_next:
                    dst[idx] = src[pre + (t - 1,)]
                for key, value in resets[-1][2].items() if resets and resets[-1][0] == t - 1 else ():
                    mask = resets[-1][1]
                    if mask is None:
                        views[key][idx] = value
                    else:
                        views[key][idx][mask] = value[mask]
            for key, arr in current_views.items():
                arr[...] = views[key][idx]
            result = policy(current)
            if result is None:
                result = current
            action_view[idx] = as_array(result.get(action_key))
        nd = env._np_step(action_view[idx])
        for dst, key in next_pairs:
            dst[idx] = nd[key]
        done = nd[done_key]
        if done.any():
            if break_when_any_done:
                steps = t + 1
                break
            if t + 1 < max_steps:
                mask = done.reshape(done.shape[:nb]).copy() if nb else None  # done is overwritten next step
                if mask is not None and mask.all():
                    mask = None
                reset = env._np_reset(mask)
                resets.append((t, mask, {k: np.array(v) for k, v in reset.items() if k in views}))
    if current is None:
        for dst, src in root_from_next:
            dst[pre + (slice(1, steps),)] = src[pre + (slice(0, steps - 1),)]
        for t, mask, values in resets:
            if t + 1 >= steps:
                continue
            idx = pre + (t + 1,)
            for key, value in values.items():
                if mask is None:
                    views[key][idx] = value
                else:
                    views[key][idx][mask] = value[mask]
    if steps < max_steps:
        if policy is None and actions is None:
            torch.set_rng_state(rng_state)
            action_spec.rand((steps,))
        out = out[..., :steps]
    return out
