"""Rollout into a preallocated TensorDict through array views.

Used by ``EnvBase.rollout`` and by the collectors for envs that implement the
array protocol:

- ``_np_reset(mask=None) -> dict``: root keys (observations and done flags)
  after a reset of every sub-env, or of those where ``mask`` (shape
  ``batch_size``) is true; the arrays hold the whole batch.
- ``_np_step(action) -> dict``: the "next" keys (observations, reward, done
  flags) after one step with ``action`` (an array of the action spec's shape).

The returned arrays belong to the env and are overwritten by its next call,
so each one is copied into the output once. The output is allocated once
with the shape ``[*batch_size, steps, ...]``; the root observations of step
``t + 1`` are the "next" observations of step ``t`` except where a sub-env
was reset, and are filled in bulk after the loop.

The policy-driven path: :class:`ArrayRunner` keeps one root TensorDict,
allocated once, whose leaves are the policy's inputs. Each step copies the
env's output (or the reset values) into those leaves, calls the policy on
that same TensorDict, and copies its outputs (the action, and any other key
the policy writes, e.g. ``loc``/``scale``/``sample_log_prob``) into the
preallocated output. No TensorDict is built per step; a batched env gives
one batched TensorDict to the policy per step.
"""
from __future__ import annotations

import numpy as np
import torch
from tensordict import TensorDict

from .._arrays import as_array
from .._spec_leaves import Unbounded

__all__ = ["array_rollout", "ArrayRunner"]


def _is_next(key) -> bool:
    return isinstance(key, tuple) and key[0] == "next"


def _to_next(key) -> tuple:
    return ("next",) + (key if isinstance(key, tuple) else (key,))


def _unnest(key):
    return key[1] if len(key) == 2 else key[1:]


def _array_of(value) -> np.ndarray:
    """The array of a policy output (a CPU tensor, maybe requiring grad); one cheap call on the common path."""
    try:
        return value.numpy()
    except (RuntimeError, TypeError, AttributeError):
        return as_array(torch.as_tensor(value).detach().cpu())


class ArrayRunner:
    """Steps an array-protocol env with a policy (or given/random actions) into preallocated outputs.

    The runner holds the env's current root state (one array per root key,
    including the done flags) between calls to :meth:`run`, so that
    consecutive calls continue the same episodes, as a collector's batches
    do. ``policy`` is called on :attr:`td`, one TensorDict allocated once
    whose leaves are rewritten in place each step.

    Args:
        env: an env with ``_np_reset`` / ``_np_step`` (``env._array_path_ready()``).
        policy: a callable on a TensorDict that writes the action (and maybe other keys); ``None`` for
            random actions from the action spec or actions given to :meth:`run`.

    Examples:
        >>> import torch
        >>> from numbarl.torch_api import GymEnv
        >>> env = GymEnv("Pendulum-v1"); _ = env.set_seed(0)
        >>> runner = ArrayRunner(env, lambda td: td.set("action", torch.zeros(1)))
        >>> runner.reset()
        >>> out = runner.allocate(5)
        >>> runner.run(out, 5)
        5
        >>> out["action"].shape, out["next", "observation"].shape
        (torch.Size([5, 1]), torch.Size([5, 3]))
    """

    def __init__(self, env, policy=None):
        self.env = env
        self.policy = policy
        fake = env.fake_tensordict()
        self.nb = nb = len(env.batch_size)
        self.pre = (slice(None),) * nb
        self.action_key = env.action_key
        self.done_key = "done"
        self.leaves = {key: fake.get(key) for key in fake.keys(True, True)}
        # "next" keys the specs give but the output lacks: dropped after each step by a post-step-mdp hook
        # (NextObservationDelta's ("next", obs)). The env still returns them and the next root values come
        # from them, so they are kept in scratch tensors outside the output.
        spec_fake = env._spec_fake_tensordict()
        self.hidden = {key: spec_fake.get(key) for key in spec_fake.keys(True, True)
                       if _is_next(key) and key not in self.leaves}
        self.leaves.update(self.hidden)
        self._scratch = {}
        self.root_keys = [k for k in self.leaves if not _is_next(k) and k != self.action_key]
        self.next_keys = [k for k in self.leaves if _is_next(k)]
        self.root_from_next = [k for k in self.root_keys if _to_next(k) in self.leaves]
        # The root state: owned arrays, the leaves of the policy's TensorDict.
        self.td = TensorDict(batch_size=env.batch_size, device=env.device)
        self.state = {}
        for key in self.root_keys:
            tensor = torch.zeros_like(self.leaves[key])
            self.td.set(key, tensor)
            self.state[key] = tensor.numpy()
        in_keys = getattr(policy, "in_keys", None)
        if policy is None:
            self.policy_in = []
        elif in_keys is not None and all(k in self.state for k in in_keys):
            self.policy_in = [k for k in self.root_keys if k in set(in_keys)]
        else:
            self.policy_in = list(self.root_keys)
        self.policy_out = None  # keys the policy writes, learnt at its first call
        self.policy_leaves = {}

    # ------------------------------------------------------------ allocation
    def allocate(self, steps: int, extra: dict | None = None) -> TensorDict:
        """A TensorDict of shape ``[*batch_size, steps]`` with every key one step gives."""
        bs = tuple(self.env.batch_size)
        out = TensorDict(batch_size=(*bs, steps), device=self.env.device)
        for key, leaf in self.leaves.items():
            if key in self.hidden:
                continue
            tensor = torch.empty((*bs, steps, *leaf.shape[self.nb:]), dtype=leaf.dtype)
            if not _is_next(key) and key != self.action_key:
                tensor.zero_()  # state keys the env does not write stay at their zero
            out.set(key, tensor)
        for key, leaf in self.policy_leaves.items():
            out.set(key, torch.zeros((*bs, steps, *leaf.shape[self.nb:]), dtype=leaf.dtype))
        return out

    def learn_policy_outputs(self, result) -> None:
        """Record the keys (and leaf shapes) the policy writes besides the env's keys."""
        known = set(self.leaves)
        self.policy_out = [k for k in result.keys(True, True)
                           if k not in known and not _is_next(k) and k != self.action_key
                           and not (isinstance(k, tuple) and k[0] == "collector")]
        self.policy_leaves = {k: result.get(k) for k in self.policy_out}

    def _extra_outputs(self, out: TensorDict, result) -> list:
        """The keys the policy wrote besides the action, allocated in ``out`` when missing."""
        if self.policy_out is None:
            self.learn_policy_outputs(result)
        pairs = []
        bs = tuple(self.env.batch_size)
        steps = out.batch_size[self.nb]
        keys = set(out.keys(True, True))
        for key in self.policy_out:
            if key not in keys:
                value = self.policy_leaves[key]
                out.set(key, torch.zeros((*bs, steps, *value.shape[self.nb:]), dtype=value.dtype))
            pairs.append((key, out.get(key).numpy()))
        return pairs

    def _direct_call(self, policy, action_view, extra):
        """``(module, inputs, output views)`` to call a plain ``TensorDictModule``'s module directly, or None.

        A ``TensorDictModule`` (exactly that class, no hooks, no ``method``,
        writing in place) computes ``module(*td[in_keys])`` and writes the
        results to ``out_keys``: the runner does the same without the
        TensorDict dispatch, on the leaves of its reused TensorDict, and
        copies the results straight into the rollout. Anything else (a
        TensorDictSequential, a probabilistic actor, a subclass, a callable)
        is called as it is.
        """
        from tensordict.nn import TensorDictModule

        if type(policy) is not TensorDictModule or policy._forward_hooks or policy._forward_pre_hooks:
            return None
        if getattr(policy, "method", None) or getattr(policy, "method_kwargs", None) or policy.inplace is not True \
                or getattr(policy, "_get_kwargs", None) or not isinstance(policy.module, torch.nn.Module):
            return None
        in_keys, out_keys = list(policy.in_keys), list(policy.out_keys)
        if not all(k in self.state for k in in_keys) or len(set(out_keys)) != len(out_keys):
            return None
        views = dict(extra)
        views[self.action_key] = action_view
        if not all(k in views for k in out_keys):
            return None
        inputs = [self.td.get(k) for k in in_keys]
        return policy.module, inputs, [views[k] for k in out_keys]

    def _hidden_views(self, length: int) -> dict:
        """Scratch arrays ``[*batch_size, length, ...]`` for the hidden "next" keys, kept between runs."""
        if not self.hidden:
            return {}
        if self._scratch.get("length") != length:
            bs = tuple(self.env.batch_size)
            self._scratch = {"length": length, "views": {
                key: torch.zeros((*bs, length, *leaf.shape[self.nb:]), dtype=leaf.dtype).numpy()
                for key, leaf in self.hidden.items()}}
        return self._scratch["views"]

    # --------------------------------------------------------------- running
    def reset(self) -> None:
        """Reset every sub-env and take its root values as the current state."""
        values = self.env._np_reset()
        for key, arr in self.state.items():
            if key in values:
                arr[...] = values[key]
            else:
                arr[...] = 0

    def set_state(self, start) -> None:
        """Take the root values of the TensorDict ``start`` as the current state."""
        for key, arr in self.state.items():
            value = start.get(key, None)
            if value is None:
                raise KeyError(f"rollout: the starting tensordict lacks {key!r}; keys present: "
                               f"{sorted(map(str, start.keys(True, True)))}")
            arr[...] = as_array(value)

    def reset_done(self) -> None:
        """Reset the sub-envs whose current root done flag is set (all, for an unbatched env)."""
        done = self.state[self.done_key]
        if done.any():
            mask = done.reshape(done.shape[:self.nb]).copy() if self.nb else None
            if mask is not None and mask.all():
                mask = None
            self._apply_reset(mask, self.env._np_reset(mask))

    def _apply_reset(self, mask, values) -> None:
        for key, arr in self.state.items():
            value = values.get(key)
            if value is None:
                continue
            if mask is None:
                arr[...] = value
            else:
                arr[mask] = value[mask]

    def run(self, out: TensorDict, steps: int, *, actions=None, break_when_any_done: bool = False,
            reset_at_end: bool = True, t0: int = 0, random_policy: bool = False) -> int:
        """Fill steps ``t0 .. t0 + steps - 1`` of ``out``; return the number of steps run.

        Done sub-envs are reset after their step (also after the last one when
        ``reset_at_end``, so that the next run starts from the reset values);
        with ``break_when_any_done`` the run stops after the first done step.
        ``random_policy`` draws actions from the action spec even when a
        policy is set (a collector's ``init_random_frames``).
        """
        env = self.env
        pre, nb = self.pre, self.nb
        views = {key: out.get(key).numpy() for key in self.leaves if key not in self.hidden}
        views.update(self._hidden_views(out.batch_size[nb]))
        action_view = views[self.action_key]
        next_pairs = [(views[k], _unnest(k)) for k in self.next_keys]
        for key, arr in self.state.items():
            views[key][pre + (t0,)] = arr
        policy = None if random_policy else self.policy
        per_step = None
        if actions is not None:
            for t in range(steps):
                action_view[pre + (t0 + t,)] = as_array(torch.as_tensor(actions[t]))
        elif policy is None:
            # One draw for the whole run gives the same actions as one draw per
            # step (uniform draws); after an early stop the generator is rewound
            # to where per-step draws would have left it. Normal draws of 16
            # values or more take another sampler, so they are drawn per step.
            spec = env.full_action_spec[self.action_key]
            if isinstance(spec, Unbounded) and spec.dtype.is_floating_point:
                per_step = spec
            else:
                rng_state = torch.get_rng_state()
                action_view[pre + (slice(t0, t0 + steps),)] = np.moveaxis(as_array(spec.rand((steps,))), 0, nb)
        td = self.td
        policy_in = [(self.state[k], k) for k in self.policy_in]
        extra = direct = None
        resets = []
        done_key = self.done_key
        ran = steps
        for i in range(steps):
            t = t0 + i
            idx = pre + (t,)
            if per_step is not None:
                action_view[idx] = as_array(per_step.rand())
            elif direct is not None:
                values = direct_module(*direct_in)
                if not isinstance(values, tuple):
                    values = (values,)
                for view, value in zip(direct_out, values):
                    view[idx] = _array_of(value)
            elif policy is not None:
                result = policy(td)
                if result is None:
                    result = td
                if extra is None:
                    extra = self._extra_outputs(out, result)
                    if self.action_key not in result.keys(True, True):
                        raise KeyError(f"the policy did not write the action key {self.action_key!r}; "
                                       f"its output has {sorted(map(str, result.keys(True, True)))}")
                    direct = self._direct_call(policy, action_view, extra)
                    if direct is not None:
                        direct_module, direct_in, direct_out = direct
                action_view[idx] = _array_of(result.get(self.action_key))
                for key, view in extra:
                    view[idx] = _array_of(result.get(key))
            nd = env._np_step(action_view[idx])
            for dst, key in next_pairs:
                dst[idx] = nd[key]
            if policy is not None:
                for arr, key in policy_in:
                    arr[...] = nd[key]
            done = nd[done_key]
            if done.any():
                if break_when_any_done:
                    ran = i + 1
                    break
                if i + 1 < steps or reset_at_end:
                    mask = done.reshape(done.shape[:nb]).copy() if nb else None  # done is overwritten next step
                    if mask is not None and mask.all():
                        mask = None
                    values = env._np_reset(mask)
                    values = {k: np.array(v) for k, v in values.items() if k in self.state}
                    resets.append((t, mask, values))
                    if policy is not None:
                        for arr, key in policy_in:
                            value = values.get(key)
                            if value is None:
                                continue
                            if mask is None:
                                arr[...] = value
                            else:
                                arr[mask] = value[mask]
        last = t0 + ran - 1
        # Root values of steps t0 + 1 .. last: the "next" values of the step before, then the resets.
        for key in self.root_from_next:
            views[key][pre + (slice(t0 + 1, last + 1),)] = views[_to_next(key)][pre + (slice(t0, last),)]
        for t, mask, values in resets:
            if t + 1 > last:
                continue
            idx = pre + (t + 1,)
            for key, value in values.items():
                if mask is None:
                    views[key][idx] = value
                else:
                    views[key][idx][mask] = value[mask]
        # The state the next run starts from.
        for key in self.root_from_next:
            self.state[key][...] = views[_to_next(key)][pre + (last,)]
        if resets and resets[-1][0] == last:
            self._apply_reset(resets[-1][1], resets[-1][2])
        if ran < steps and policy is None and actions is None and per_step is None:
            torch.set_rng_state(rng_state)
            spec.rand((ran,))
        return ran


def array_rollout(env, max_steps: int, policy, actions, break_when_any_done: bool, start=None):
    """Roll ``env`` out through its array protocol; see the module docstring."""
    runner = ArrayRunner(env, policy)
    if start is None:
        runner.reset()
    else:
        runner.set_state(start)
    out = runner.allocate(max_steps)
    steps = runner.run(out, max_steps, actions=actions, break_when_any_done=break_when_any_done,
                       reset_at_end=False)
    if steps < max_steps:
        out = out[..., :steps]
    return out
