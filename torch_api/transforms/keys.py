"""Transforms that move, copy, select, drop, join or broadcast entries by key.

``RenameTransform``, ``SelectTransform``, ``ExcludeTransform``, ``CatTensors``
and ``ExpandAs``, with TorchRL 0.14.1's arguments, keys and specs. Each one
also has the array path used by the preallocated rollout, where it only
rearranges the step's dict of arrays (``CatTensors`` writes the
concatenation into a buffer it owns).

Examples:
    >>> import torch
    >>> from tensordict import TensorDict
    >>> td = TensorDict({"a": torch.zeros(2), "b": torch.ones(1)}, [])
    >>> td = CatTensors(["a", "b"], "ab")(td)
    >>> td["ab"], sorted(td.keys())
    (tensor([0., 0., 1.]), ['ab'])
"""
from __future__ import annotations

import numpy as np
import torch
from tensordict.utils import expand_as_right

from .._attrs import set_plain
from .._arrays import numpy_dtype
from .._keys import key_list, unravel_key
from ..specs import Composite, Unbounded
from ._checks import check_bool, check_unique
from ._env_chain import container_env
from .base import Transform

__all__ = ["RenameTransform", "SelectTransform", "ExcludeTransform", "CatTensors", "ExpandAs"]

OUTPUT_PARTS = ("full_observation_spec", "full_reward_spec", "full_done_spec")
INPUT_PARTS = ("full_action_spec", "full_state_spec")


# ------------------------------------------------------------------ helpers shared by the transform modules
def part_of(spec, key, parts):
    """The name of the sub-Composite of ``spec`` (an output or input spec) holding ``key``, or None."""
    names = spec.keys()
    for part in parts:
        if part in names and key in spec[part]:
            return part
    return None


def spec_key_error(owner, key, spec, parts):
    """KeyError naming ``key`` and the keys the spec holds."""
    present = sorted(str(k) for p in parts if p in spec.keys() for k in spec[p].keys(True, True))
    return KeyError(f"{owner}: key {key!r} not found in the env specs; keys present: {present}")


def one_key(value, owner, name):
    """``value`` as an unravelled nested key; TypeError naming the argument otherwise."""
    try:
        return unravel_key(value)
    except (TypeError, IndexError):
        raise TypeError(f"{owner} requires {name} to be a key (a str or a tuple of str), got {value!r}") from None
    except ValueError as err:
        raise ValueError(f"{owner} requires {name} to be a non-empty key: {err}") from None


def key_matches(key, prefixes) -> bool:
    """Whether ``key`` is one of ``prefixes`` or nested under one of them."""
    kt = key if isinstance(key, tuple) else (key,)
    for p in prefixes:
        pt = p if isinstance(p, tuple) else (p,)
        if kt[:len(pt)] == pt:
            return True
    return False


class _NoBuffersOnCopy:
    """Array buffers are per process and per env: copies and pickles start without them."""

    def __getstate__(self):
        state = super().__getstate__()
        state["_np_bufs"] = {}
        return state


# ------------------------------------------------------------------ RenameTransform
class RenameTransform(Transform):
    """Rename entries of the step output (and, with the ``*_inv`` keys, of the step input).

    Specs follow the data: a renamed observation, reward or done entry keeps
    its spec and its family under the new name; a renamed input (``in_keys_inv``
    as the base env names it, ``out_keys_inv`` as the policy writes it) moves
    in the action or state spec.

    Args:
        in_keys: the entries to rename.
        out_keys: their new names (same length as ``in_keys``).
        in_keys_inv: input entries as the base env expects them.
        out_keys_inv: the names the policy writes them under (default ``in_keys_inv``).
        create_copy: keep the original entries and add copies under the new names.

    Raises:
        TypeError: a key is not a str or tuple of str, ``in_keys`` / ``out_keys`` are
            missing, or ``create_copy`` is not a bool.
        ValueError: ``out_keys`` (``out_keys_inv``) and ``in_keys`` (``in_keys_inv``)
            differ in length.

    Examples:
        >>> from numbarl.torch_api import GymEnv, TransformedEnv
        >>> env = TransformedEnv(GymEnv("Pendulum-v1"), RenameTransform(["observation"], ["stuff"]))
        >>> td = env.rollout(3)
        >>> "stuff" in td.keys(), "observation" in td.keys(), td["next", "stuff"].shape
        (True, False, torch.Size([3, 3]))
    """

    def __init__(self, in_keys, out_keys, in_keys_inv=None, out_keys_inv=None, create_copy: bool = False):
        if in_keys is None or out_keys is None:
            raise TypeError(f"RenameTransform requires in_keys and out_keys, got in_keys={in_keys!r} "
                            f"and out_keys={out_keys!r}")
        check_bool(create_copy, "RenameTransform", "create_copy")
        if out_keys_inv is None:
            out_keys_inv = in_keys_inv
        for name, keys in (("in_keys", in_keys), ("out_keys", out_keys), ("in_keys_inv", in_keys_inv),
                           ("out_keys_inv", out_keys_inv)):
            try:
                check_unique("RenameTransform", name, key_list(keys, name))
            except ValueError as err:
                raise ValueError(f"RenameTransform: {err}" if "non-empty" in str(err) else str(err)) from None
        super().__init__(in_keys, out_keys, in_keys_inv, out_keys_inv)
        set_plain(self, "create_copy", create_copy)

    @property
    def _np_supported(self) -> bool:
        return self.create_copy or "done" not in self.in_keys

    def _call(self, next_tensordict):
        for in_key, out_key in zip(self.in_keys, self.out_keys):
            value = next_tensordict.get(in_key, None)
            if value is None:
                self._missing(in_key, next_tensordict)
                continue
            if self.create_copy:
                next_tensordict.set(out_key, value.clone())
            else:
                next_tensordict.set(out_key, value)
                next_tensordict.del_(in_key)
        return next_tensordict

    def _reset(self, tensordict, tensordict_reset):
        # the reset output has no reward: rename what is there
        for in_key, out_key in zip(self.in_keys, self.out_keys):
            value = tensordict_reset.get(in_key, None)
            if value is None:
                continue
            tensordict_reset.set(out_key, value.clone() if self.create_copy else value)
            if not self.create_copy:
                tensordict_reset.del_(in_key)
        return tensordict_reset

    def _inv_call(self, tensordict):
        for in_key, out_key in zip(self.in_keys_inv, self.out_keys_inv):
            value = tensordict.get(out_key, None)
            if value is None:
                self._missing(out_key, tensordict)
                continue
            tensordict.set(in_key, value.clone() if self.create_copy else value)
            if not self.create_copy and in_key != out_key:
                tensordict.del_(out_key)
        return tensordict

    def _np_step(self, arrays):
        for in_key, out_key in zip(self.in_keys, self.out_keys):
            if in_key in arrays:
                arrays[out_key] = arrays[in_key] if self.create_copy else arrays.pop(in_key)
        return arrays

    def _np_inv(self, arrays):
        for in_key, out_key in zip(self.in_keys_inv, self.out_keys_inv):
            if out_key in arrays:
                arrays[in_key] = arrays[out_key] if self.create_copy else arrays.pop(out_key)
        return arrays

    def _move(self, spec, pairs, parts):
        for src, dst in pairs:
            part = part_of(spec, src, parts)
            if part is None:
                if self.missing_tolerance:
                    continue
                raise spec_key_error("RenameTransform", src, spec, parts)
            family = spec[part]
            family[dst] = family[src].clone()
            if not self.create_copy and dst != src:
                del family[src]
        return spec

    def transform_output_spec(self, output_spec):
        return self._move(output_spec.clone(), zip(self.in_keys, self.out_keys), OUTPUT_PARTS)

    def transform_input_spec(self, input_spec):
        return self._move(input_spec.clone(), zip(self.in_keys_inv, self.out_keys_inv), INPUT_PARTS)

    def __repr__(self) -> str:
        return (f"RenameTransform(in_keys={self.in_keys}, out_keys={self.out_keys}, in_keys_inv={self.in_keys_inv}, "
                f"out_keys_inv={self.out_keys_inv}, create_copy={self.create_copy})")


# ------------------------------------------------------------------ SelectTransform / ExcludeTransform
def _keys_arg(owner, keys, name):
    return [one_key(k, owner, f"each of {name}") for k in keys]


class SelectTransform(Transform):
    """Keep only the selected entries of the step and reset outputs.

    Rewards and done flags are kept unless ``keep_rewards`` / ``keep_dones``
    is False; the env's input entries (actions and state) are always kept.
    The observation spec keeps only the selected entries (as in TorchRL).
    Missing selected keys are ignored.

    Args:
        *selected_keys: the keys to keep (str or tuple of str).
        keep_rewards: keep every reward entry (default True).
        keep_dones: keep every done entry (default True).

    Raises:
        TypeError: a key is not a str or a tuple of str, or a flag is not a bool.

    Examples:
        >>> from numbarl.torch_api import GymEnv, TransformedEnv
        >>> env = TransformedEnv(GymEnv("Pendulum-v1"), SelectTransform("observation", keep_dones=False))
        >>> sorted(env.rollout(2)["next"].keys())
        ['observation', 'reward']
    """

    def __init__(self, *selected_keys, keep_rewards: bool = True, keep_dones: bool = True):
        keys = _keys_arg("SelectTransform", selected_keys, "selected_keys")
        check_bool(keep_rewards, "SelectTransform", "keep_rewards")
        check_bool(keep_dones, "SelectTransform", "keep_dones")
        super().__init__()
        set_plain(self, "selected_keys", keys)
        set_plain(self, "keep_rewards", keep_rewards)
        set_plain(self, "keep_dones", keep_dones)
        set_plain(self, "_env_keys", None)  # (reward keys, done keys, input keys) as this transform sees them

    def set_container(self, container) -> None:
        super().set_container(container)
        set_plain(self, "_env_keys", None)

    @property
    def _np_supported(self) -> bool:
        return self.keep_dones or "done" in self.selected_keys

    def _known(self):
        keys = self._env_keys
        if keys is None:
            env = container_env(self)
            if env is not None:
                env.output_spec, env.input_spec  # noqa: B018 - computing the specs records the keys
                keys = self._env_keys
        return keys

    def _keep(self):
        keys = self._known()
        rewards, dones, inputs = (["reward"], ["done"], []) if keys is None else keys
        keep = list(self.selected_keys) + list(inputs or [])
        if self.keep_rewards:
            keep += rewards
        if self.keep_dones:
            keep += dones
        return keep

    def _call(self, next_tensordict):
        return next_tensordict.select(*self._keep(), strict=False)

    def _np_step(self, arrays):
        keep = self._keep()
        return {k: v for k, v in arrays.items() if key_matches(k, keep)}

    def transform_output_spec(self, output_spec):
        output_spec = output_spec.clone()
        rewards = list(output_spec["full_reward_spec"].keys(True, True)) if "full_reward_spec" in output_spec.keys() else []
        dones = list(output_spec["full_done_spec"].keys(True, True)) if "full_done_spec" in output_spec.keys() else []
        old = self._env_keys
        set_plain(self, "_env_keys", (rewards, dones, old[2] if old else None))
        for part, keep_all in (("full_observation_spec", False), ("full_reward_spec", self.keep_rewards),
                               ("full_done_spec", self.keep_dones)):
            if keep_all or part not in output_spec.keys():
                continue
            family = output_spec[part]
            for key in list(family.keys(True, True)):
                if not key_matches(key, self.selected_keys):
                    del family[key]
            for key in list(family.keys()):
                sub = family[key]
                if hasattr(sub, "is_empty") and sub.is_empty() and not key_matches(key, self.selected_keys):
                    del family[key]
        return output_spec

    def transform_input_spec(self, input_spec):
        inputs = [k for p in INPUT_PARTS if p in input_spec.keys() for k in input_spec[p].keys(True, True)]
        old = self._env_keys
        set_plain(self, "_env_keys", (old[0], old[1], inputs) if old else (["reward"], ["done"], inputs))
        return input_spec

    def __repr__(self) -> str:
        return (f"SelectTransform(selected_keys={self.selected_keys}, keep_rewards={self.keep_rewards}, "
                f"keep_dones={self.keep_dones})")


class ExcludeTransform(Transform):
    """Drop entries from the step and reset outputs (or, with ``inverse=True``, from the step input).

    The dropped entries leave the observation, reward and done specs (the
    state spec keeps them, as in TorchRL). Missing keys are ignored; a key
    also drops everything nested under it.

    Args:
        *excluded_keys: the keys to drop (str or tuple of str).
        inverse: drop them from the input the base env receives instead.

    Raises:
        TypeError: a key is not a str or a tuple of str, or ``inverse`` is not a bool.

    Examples:
        >>> from numbarl.torch_api import GymEnv, TransformedEnv
        >>> env = TransformedEnv(GymEnv("Pendulum-v1"), ExcludeTransform("truncated"))
        >>> sorted(env.rollout(2)["next"].keys())
        ['done', 'observation', 'reward', 'terminated']
    """

    def __init__(self, *excluded_keys, inverse: bool = False):
        keys = _keys_arg("ExcludeTransform", excluded_keys, "excluded_keys")
        check_bool(inverse, "ExcludeTransform", "inverse")
        super().__init__()
        set_plain(self, "excluded_keys", keys)
        set_plain(self, "inverse", inverse)

    @property
    def _np_supported(self) -> bool:
        return self.inverse or not key_matches("done", self.excluded_keys)

    def _call(self, next_tensordict):
        if self.inverse:
            return next_tensordict
        return next_tensordict.exclude(*self.excluded_keys)

    def _inv_call(self, tensordict):
        if not self.inverse:
            return tensordict
        return tensordict.exclude(*self.excluded_keys)

    def _np_step(self, arrays):
        if self.inverse:
            return arrays
        return {k: v for k, v in arrays.items() if not key_matches(k, self.excluded_keys)}

    def _np_inv(self, arrays):
        if not self.inverse:
            return arrays
        return {k: v for k, v in arrays.items() if not key_matches(k, self.excluded_keys)}

    def transform_output_spec(self, output_spec):
        output_spec = output_spec.clone()
        if self.inverse:
            return output_spec
        for part in OUTPUT_PARTS:
            if part not in output_spec.keys():
                continue
            family = output_spec[part]
            for key in self.excluded_keys:
                if key in family:
                    del family[key]
        return output_spec

    def __repr__(self) -> str:
        return f"ExcludeTransform(excluded_keys={self.excluded_keys}, inverse={self.inverse})"


# ------------------------------------------------------------------ CatTensors
class CatTensors(_NoBuffersOnCopy, Transform):
    """Concatenate several observation entries into one along ``dim``.

    The result's spec is an ``Unbounded`` of the concatenated shape and of the
    dtype ``torch.cat`` gives (the promoted dtype of the inputs).

    Args:
        in_keys: the entries to join; None takes every observation entry of the
            env the first time the transform is used.
        out_key: the entry written (default ``"observation_vector"``).
        dim: a negative dim (counted from the end, so batch dims never matter).
        del_keys: drop the joined entries (default True).
        unsqueeze_if_oor: give a new leading dim to entries that have fewer than ``-dim`` dims.
        sort: join the keys in sorted order (default True) rather than as given.

    Raises:
        TypeError: a key is not a str or tuple of str, ``dim`` is not an int, or a flag is not a bool.
        ValueError: ``dim`` is not negative.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> t = CatTensors(["b", "a"], "v", sort=False, del_keys=False)
        >>> t(TensorDict({"a": torch.zeros(1), "b": torch.ones(2)}, []))["v"]
        tensor([1., 1., 0.])
    """

    def __init__(self, in_keys=None, out_key="observation_vector", dim: int = -1, *, del_keys: bool = True,
                 unsqueeze_if_oor: bool = False, sort: bool = True):
        owner = "CatTensors"
        out_key = one_key(out_key, owner, "out_key")
        if isinstance(dim, bool) or not isinstance(dim, int):
            raise TypeError(f"CatTensors requires dim to be an int, got {dim!r}")
        if dim >= 0:
            raise ValueError(f"CatTensors requires a negative dim (counted from the end), got {dim}")
        for name, flag in (("del_keys", del_keys), ("unsqueeze_if_oor", unsqueeze_if_oor), ("sort", sort)):
            check_bool(flag, owner, name)
        keys = None if in_keys is None else check_unique(owner, "in_keys", key_list(in_keys, "in_keys"))
        if keys is not None and sort:
            keys = sorted(keys, key=str)
        super().__init__()
        set_plain(self, "in_keys", keys if keys is not None else [])
        set_plain(self, "out_keys", [out_key])
        set_plain(self, "_auto", keys is None)
        set_plain(self, "dim", dim)
        set_plain(self, "del_keys", del_keys)
        set_plain(self, "unsqueeze_if_oor", unsqueeze_if_oor)
        set_plain(self, "sort", sort)
        set_plain(self, "_np_bufs", {})

    _np_supported = True

    def _resolve(self):
        if self._auto:
            env = container_env(self)
            if env is not None:
                env.output_spec  # noqa: B018 - computing the specs resolves the keys

    def _fit(self, value):
        while self.unsqueeze_if_oor and value.ndim < -self.dim:
            value = value.unsqueeze(0) if isinstance(value, torch.Tensor) else value[None]
        return value

    def _call(self, next_tensordict):
        self._resolve()
        keys = self.in_keys
        values = [next_tensordict.get(k, None) for k in keys]
        missing = [k for k, v in zip(keys, values) if v is None]
        if missing:
            if self.missing_tolerance and len(missing) == len(keys):
                return next_tensordict
            raise KeyError(f"CatTensors: keys {missing} not found; keys present: "
                           f"{sorted(map(str, next_tensordict.keys(True, True)))}")
        next_tensordict.set(self.out_keys[0], torch.cat([self._fit(v) for v in values], self.dim))
        if self.del_keys:
            drop = [k for k in keys if k != self.out_keys[0]]
            next_tensordict = next_tensordict.exclude(*drop)
        return next_tensordict

    def _np_step(self, arrays):
        self._resolve()
        values = [self._fit(arrays[k]) for k in self.in_keys]
        sig = tuple((v.shape, v.dtype) for v in values)
        buf = self._np_bufs.get(sig)
        if buf is None:
            dtype = _promoted([torch.from_numpy(np.empty(0, v.dtype)).dtype for v in values])
            shape = list(values[0].shape)
            shape[self.dim] = sum(v.shape[self.dim] for v in values)
            buf = self._np_bufs[sig] = np.empty(shape, dtype=numpy_dtype(dtype))
        np.concatenate(values, axis=self.dim, out=buf, casting="unsafe")
        if self.del_keys:
            for k in self.in_keys:
                arrays.pop(k, None)
        arrays[self.out_keys[0]] = buf
        return arrays

    def transform_observation_spec(self, observation_spec):
        if not isinstance(observation_spec, Composite):
            # a leaf spec stands for the one in_key (TorchRL's convention): concatenating one entry keeps it
            if len(self.in_keys) != 1:
                raise ValueError(f"CatTensors got a single {type(observation_spec).__name__} observation spec "
                                 f"for {len(self.in_keys)} in_keys; pass a Composite holding {self.in_keys}")
            return observation_spec
        if self._auto and not self.in_keys:
            keys = [k for k in observation_spec.keys(True, True) if k != self.out_keys[0]]
            set_plain(self, "in_keys", sorted(keys, key=str) if self.sort else keys)
        missing = [k for k in self.in_keys if k not in observation_spec]
        if missing:
            raise ValueError(f"CatTensors requires its in_keys in the observation spec; missing {missing}, "
                             f"observation keys: {sorted(map(str, observation_spec.keys(True, True)))}")
        specs = [observation_spec[k] for k in self.in_keys]
        shapes = [list(self._fit(torch.empty(s.shape, device="meta")).shape) for s in specs]
        shape = list(shapes[0])
        shape[self.dim] = sum(s[self.dim] for s in shapes)
        dtype = _promoted([s.dtype for s in specs])
        if self.del_keys:
            for k in self.in_keys:
                if k != self.out_keys[0]:
                    del observation_spec[k]
        observation_spec[self.out_keys[0]] = Unbounded(shape=shape, dtype=dtype, device=specs[0].device)
        return observation_spec

    def __repr__(self) -> str:
        return f"CatTensors(in_keys={self.in_keys}, out_key={self.out_keys[0]}, dim={self.dim})"


def _promoted(dtypes):
    out = dtypes[0]
    for d in dtypes[1:]:
        out = torch.promote_types(out, d)
    return out


# ------------------------------------------------------------------ ExpandAs
def _expand_spec(spec, shape):
    """``spec`` broadcast to the right up to ``shape`` (as ``expand_as_right`` does to values)."""
    shape = torch.Size(shape)
    if getattr(spec, "mask", None) is not None or spec.ndim > len(shape):
        raise ValueError(f"ExpandAs cannot expand a spec of shape {tuple(spec.shape)} to {tuple(shape)}")

    def grow(t):
        extra = len(shape) - spec.ndim
        return t.reshape(t.shape + (1,) * extra).expand(shape).clone() if t.shape == spec.shape else t

    return spec._derive(shape, grow)


class ExpandAs(Transform):
    """Broadcast an entry to the right until it has the shape of a reference entry.

    Uses :func:`tensordict.utils.expand_as_right` (trailing singleton dims are
    added, then expanded). The result's spec is in the family of the input's
    (observation, reward or done), except that a new entry made from a done
    flag is an observation.

    Args:
        in_key: the entry to expand.
        ref_key: the entry whose shape to match.
        out_key: where to write the result (default ``in_key``).

    Raises:
        TypeError: a key is not a str or a tuple of str.

    Examples:
        >>> from numbarl.torch_api import GymEnv, TransformedEnv
        >>> env = TransformedEnv(GymEnv("Pendulum-v1"), ExpandAs("done", "observation", "done3"))
        >>> env.rollout(2)["next", "done3"].shape
        torch.Size([2, 3])
    """

    _np_supported = True

    def __init__(self, in_key, ref_key, out_key=None):
        in_key = one_key(in_key, "ExpandAs", "in_key")
        ref_key = one_key(ref_key, "ExpandAs", "ref_key")
        out_key = in_key if out_key is None else one_key(out_key, "ExpandAs", "out_key")
        super().__init__(in_keys=[in_key], out_keys=[out_key])
        set_plain(self, "ref_key", ref_key)

    def _expand(self, td, strict):
        value, ref = td.get(self.in_keys[0], None), td.get(self.ref_key, None)
        if value is None or ref is None:
            if strict:
                self._missing(self.in_keys[0] if value is None else self.ref_key, td)
            return td
        td.set(self.out_keys[0], expand_as_right(value, ref))
        return td

    def _call(self, next_tensordict):
        return self._expand(next_tensordict, True)

    def _reset(self, tensordict, tensordict_reset):
        return self._expand(tensordict_reset, False)

    def _np_step(self, arrays):
        value, ref = arrays.get(self.in_keys[0]), arrays.get(self.ref_key)
        if value is not None and ref is not None:
            value = value.reshape(value.shape + (1,) * (ref.ndim - value.ndim))
            arrays[self.out_keys[0]] = np.broadcast_to(value, ref.shape)
        return arrays

    def transform_output_spec(self, output_spec):
        output_spec = output_spec.clone()
        in_key, out_key = self.in_keys[0], self.out_keys[0]
        part = part_of(output_spec, in_key, OUTPUT_PARTS)
        ref_part = part_of(output_spec, self.ref_key, OUTPUT_PARTS)
        for key, p in ((in_key, part), (self.ref_key, ref_part)):
            if p is None:
                raise spec_key_error("ExpandAs", key, output_spec, OUTPUT_PARTS)
        new = _expand_spec(output_spec[part][in_key], output_spec[ref_part][self.ref_key].shape)
        # a new entry made from a done flag is an observation (done entries are the env's flags)
        target = "full_observation_spec" if out_key != in_key and part == "full_done_spec" else part
        output_spec[target][out_key] = new
        return output_spec

    def __repr__(self) -> str:
        return f"ExpandAs(in_key={self.in_keys[0]}, ref_key={self.ref_key}, out_key={self.out_keys[0]})"
