"""Helpers shared by the environments: ``step_mdp``, ``seed_generator``, ``check_env_specs``.

Examples:
    >>> import torch
    >>> from tensordict import TensorDict
    >>> td = TensorDict({"observation": torch.zeros(2), "action": torch.ones(1),
    ...                  "next": {"observation": torch.ones(2), "reward": torch.ones(1),
    ...                           "done": torch.zeros(1, dtype=torch.bool)}}, [])
    >>> sorted(step_mdp(td).keys())
    ['done', 'observation']
    >>> step_mdp(td)["observation"]
    tensor([1., 1.])
"""
from __future__ import annotations

import numpy as np
from tensordict import LazyStackedTensorDict, TensorDict, TensorDictBase, is_non_tensor
from tensordict.nn import InteractionType, set_interaction_type

from .._keys import key_list, unravel_key

__all__ = ["step_mdp", "seed_generator", "check_env_specs", "unravel_key", "key_list", "ExplorationType",
           "set_exploration_type"]

# TorchRL's names for tensordict's interaction types, importable where TorchRL users import them.
ExplorationType = InteractionType
set_exploration_type = set_interaction_type

_MAX_SEED = 2**32 - 1


def seed_generator(seed: int) -> int:
    """The seed that follows ``seed``, as TorchRL derives it (used for worker seeds too)."""
    rng = np.random.default_rng(seed)
    return int.from_bytes(rng.bytes(8), "big") % _MAX_SEED


def step_mdp(
    tensordict: TensorDictBase,
    next_tensordict: TensorDictBase | None = None,
    keep_other: bool = True,
    exclude_reward: bool = True,
    exclude_done: bool = False,
    exclude_action: bool = True,
    reward_keys="reward",
    done_keys="done",
    action_keys="action",
) -> TensorDictBase:
    """The tensordict of the next step: the content of ``"next"`` moved to the root.

    As in TorchRL: the result is an empty copy of ``tensordict["next"]`` (its
    batch size and device); with ``keep_other`` the root entries other than
    ``"next"`` are copied first, then the entries of ``"next"`` over them.
    Reward keys are left out when ``exclude_reward``, done keys when
    ``exclude_done``, action keys when ``exclude_action`` (with
    ``keep_other=False`` the action is still copied when
    ``exclude_action=False``). Nested tensordicts keep their own batch size
    (e.g. an agent dimension); one left with no entry is dropped. A lazy
    stack is handled one stacked tensordict at a time. With
    ``next_tensordict`` the result is written into it and it is returned.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> agents = TensorDict({"obs": torch.zeros(4, 3, 2)}, [4, 3])
        >>> td = TensorDict({"agents": agents, "next": {"agents": agents + 1}}, [4])
        >>> step_mdp(td)["agents"].batch_size
        torch.Size([4, 3])
    """
    if not isinstance(tensordict, TensorDictBase):
        raise TypeError(f"step_mdp requires tensordict to be a TensorDictBase, got {type(tensordict).__name__}")
    reward_keys = key_list(reward_keys, "reward_keys")
    done_keys = key_list(done_keys, "done_keys")
    action_keys = key_list(action_keys, "action_keys")
    if isinstance(tensordict, LazyStackedTensorDict):
        parts = [None] * len(tensordict.tensordicts) if next_tensordict is None else \
            next_tensordict.unbind(tensordict.stack_dim)
        out = LazyStackedTensorDict.lazy_stack(
            [step_mdp(td, part, keep_other, exclude_reward, exclude_done, exclude_action, reward_keys, done_keys,
                      action_keys) for td, part in zip(tensordict.tensordicts, parts)],
            tensordict.stack_dim)
        return out if next_tensordict is None else next_tensordict.update(out)
    excluded = set()
    for flag, keys in ((exclude_reward, reward_keys), (exclude_done, done_keys), (exclude_action, action_keys)):
        if flag:
            excluded.update(_as_tuple(k) for k in keys)
    nxt = tensordict.get("next", None)
    if nxt is None:
        raise KeyError(f"step_mdp requires a 'next' entry, got keys {sorted(map(str, tensordict.keys()))}")
    out = nxt.empty()
    if keep_other:
        for key in tensordict.keys():
            if key != "next":
                _copy_entry(tensordict, out, key, (), excluded)
    elif not exclude_action:
        for key in action_keys:
            _copy_entry(tensordict, out, _as_tuple(key), (), set(), path_only=True)
    for key in nxt.keys():
        _copy_entry(nxt, out, key, (), excluded)
    return out if next_tensordict is None else next_tensordict.update(out)


def _as_tuple(key) -> tuple:
    return key if isinstance(key, tuple) else (key,)


def _copy_entry(source, dest, key, prefix: tuple, excluded: set, path_only: bool = False) -> bool:
    """Copy ``source[key]`` into ``dest``, skipping ``excluded`` full keys; True when something was written.

    A nested tensordict is copied as an empty tensordict of its own batch size
    filled entry by entry; with ``path_only`` ``key`` is a tuple path, followed
    down to one entry (which need not exist).
    """
    if path_only:
        head, rest = key[0], key[1:]
        value = source.get(head, None)
        if value is None:
            return False
        if not rest:
            dest.set(head, value)
            return True
        sub = dest.get(head, None)
        if sub is None:
            sub = value.empty()
        if _copy_entry(value, sub, rest, prefix, excluded, path_only=True):
            dest.set(head, sub)
            return True
        return False
    full = prefix + (key,)
    if full in excluded:
        return False
    value = source.get(key)
    if isinstance(value, TensorDictBase) and not is_non_tensor(value):
        sub = dest.get(key, None)
        if sub is None:
            sub = value.empty()
        written = False
        for name in value.keys():
            written = _copy_entry(value, sub, name, full, excluded) or written
        if written:
            dest.set(key, sub)
        return written
    dest.set(key, value)
    return True


def check_env_specs(env, return_contiguous: bool = True, check_dtype: bool = True, seed: int | None = None,
                    tensordict=None, break_when_any_done: bool | str = False) -> None:
    """Check that a short rollout of ``env`` matches its specs, key by key.

    A spec key the env drops from each step on purpose, and so from
    ``fake_tensordict()`` too (``("next", obs)`` under
    ``NextObservationDelta``), is not looked for (TorchRL's check raises
    KeyError there).

    Raises:
        AssertionError: naming the first key whose presence, shape, dtype or
            value does not fit the spec.
    """
    if seed is not None:
        env.set_seed(seed)
    fake = env.fake_tensordict()
    real = env.rollout(3, break_when_any_done=bool(break_when_any_done), tensordict=tensordict,
                       auto_reset=tensordict is None)
    step0 = real[..., 0]
    fake_keys = set(fake.keys(True, True))
    real_keys = set(step0.keys(True, True))
    if fake_keys != real_keys:
        raise AssertionError(
            f"rollout keys and spec keys differ: only in the rollout {sorted(map(str, real_keys - fake_keys))}, "
            f"only in the specs {sorted(map(str, fake_keys - real_keys))}"
        )
    for key in fake_keys:
        a, b = fake.get(key), step0.get(key)
        if a.shape != b.shape:
            raise AssertionError(f"key {key!r}: the specs give shape {tuple(a.shape)}, the rollout {tuple(b.shape)}")
        if check_dtype and a.dtype != b.dtype:
            raise AssertionError(f"key {key!r}: the specs give dtype {a.dtype}, the rollout {b.dtype}")
    specs = {}
    for key in env.observation_spec.keys(True, True):
        specs[key] = env.observation_spec[key]
    for key in env.full_done_spec.keys(True, True):
        specs[key] = env.full_done_spec[key]
    for t in range(real.shape[-1]):
        step = real[..., t]
        for key, spec in specs.items():
            for where in (key, ("next",) + (key if isinstance(key, tuple) else (key,))):
                if where not in fake_keys:
                    continue  # dropped after each step on purpose (NextObservationDelta), in the fake data too
                value = step.get(where)
                if not spec.is_in(value):
                    raise AssertionError(f"key {where!r} at step {t}: value {value} is not in its spec {spec}")


# ------------------------------------------------------------------ TorchRL helpers users import
__all__ += ["terminated_or_truncated", "make_composite_from_td"]


def _eot_aggregate(data, spec, key, written, prefix) -> bool:
    """Aggregate the done leaves of one level into ``data[key]``; recurse into sub-levels."""
    import torch

    found = False
    aggregate = None
    if spec is None:
        children = [(k, data.get(k)) for k in data.keys()]
        leaves = [k for k, _ in children if k in ("done", "terminated", "truncated")]
        subs = [(k, v) for k, v in children if k not in leaves and isinstance(v, TensorDictBase)]
    else:
        leaves = [k for k, v in spec.items() if not hasattr(v, "keys")]
        subs = [(k, data.get(k)) for k, v in spec.items() if hasattr(v, "keys")]
    for name in leaves:
        value = data.get(name, None)
        if value is None:
            value = torch.zeros((*data.shape, 1), dtype=torch.bool, device=data.device)
        aggregate = value if aggregate is None else aggregate | value
    for name, sub in subs:
        sub_spec = None if spec is None else spec[name]
        found = _eot_aggregate(sub, sub_spec, key, written, prefix + (name,)) or found
    if aggregate is not None:
        if key is not None:
            data.set(key, aggregate)
            written.append(prefix + (key,))
        found = bool(aggregate.any()) or found
    return found


def terminated_or_truncated(data: TensorDictBase, full_done_spec=None, key="_reset",
                            write_full_false: bool = False) -> bool:
    """Whether any done leaf of ``data`` is True; writes their per-level "or" under ``key`` (TorchRL's helper).

    The done leaves are those of ``full_done_spec`` when given, else the
    ``"done"`` / ``"terminated"`` / ``"truncated"`` entries found at every
    level. At each level holding such leaves, their element-wise "or" is
    written to ``key`` (in place), unless ``key`` is None. When nothing is
    True and ``write_full_false`` is False, the written entries are removed
    again.

    >>> import torch
    >>> from tensordict import TensorDict
    >>> data = TensorDict({"done": torch.tensor([[True], [False]]), "truncated": torch.tensor([[False], [False]]),
    ...                    "agent": {"done": torch.tensor([[False], [False]])}}, [2])
    >>> terminated_or_truncated(data)
    True
    >>> data["_reset"].squeeze(-1).tolist(), data["agent", "_reset"].squeeze(-1).tolist()
    ([True, False], [False, False])
    """
    if not isinstance(data, TensorDictBase):
        raise TypeError(f"terminated_or_truncated requires a TensorDict, got {type(data).__name__}")
    written = []
    found = _eot_aggregate(data, full_done_spec, key, written, ())
    if not found and not write_full_false and written:
        data.exclude(*written, inplace=True)
    return found


def make_composite_from_td(data: TensorDictBase, *, unsqueeze_null_shapes: bool = True,
                           dynamic_shape: bool = False):
    """A ``Composite`` of ``Unbounded`` specs shaped like ``data`` (``NonTensor`` for non-tensor entries).

    Args:
        data: the TensorDict to describe.
        unsqueeze_null_shapes: give scalar entries the shape ``(1,)``, as TorchRL does by default.
        dynamic_shape: mark the last dim of every entry as dynamic (``-1``).

    >>> import torch
    >>> from tensordict import TensorDict
    >>> spec = make_composite_from_td(TensorDict({"obs": torch.zeros(3), "next": {"r": torch.tensor(1.0)}}, []))
    >>> spec["obs"].shape, spec["next", "r"].shape, spec["next"].shape
    (torch.Size([3]), torch.Size([1]), torch.Size([]))
    """
    from tensordict import is_non_tensor, is_tensor_collection

    from ..specs import Composite, NonTensor, Unbounded

    if not is_tensor_collection(data):
        raise TypeError(f"make_composite_from_td requires a TensorDict, got {type(data).__name__}")

    def shape_of(shape):
        if not shape and unsqueeze_null_shapes:
            return (1,)
        if dynamic_shape and shape:
            return tuple(shape[:-1]) + (-1,)
        return tuple(shape)

    entries = {}
    for key, value in data.items():
        if is_non_tensor(value):
            entries[key] = NonTensor(shape=value.shape, example_data=value.view(-1)[0].data,
                                     device=value.device, feature_dims=len(value.shape) - len(data.shape))
        elif is_tensor_collection(value):
            entries[key] = make_composite_from_td(value, unsqueeze_null_shapes=unsqueeze_null_shapes,
                                                  dynamic_shape=dynamic_shape)
        else:
            entries[key] = Unbounded(shape=shape_of(value.shape), dtype=value.dtype, device=value.device)
    return Composite(entries, shape=data.shape)
