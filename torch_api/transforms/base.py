"""``Transform`` and ``Compose``: the base of every environment transform.

A transform written against TorchRL 0.14.1's base class works unchanged:
override ``_apply_transform`` (and ``_inv_apply_transform``), or ``_call`` /
``_inv_call`` / ``_step`` / ``_reset`` for more control, and the
``transform_*_spec`` hooks for the specs.

Kernel-backed transforms also implement the array path used by the
preallocated rollout: ``_np_step(arrays)``, ``_np_reset(arrays, mask)`` and
``_np_inv(arrays)`` work on a dict of NumPy arrays (one step, whole batch)
and return it with their outputs set; ``_np_supported`` says whether the path
is available. A transform without it makes the rollout use TensorDicts.

Examples:
    >>> import torch
    >>> from tensordict import TensorDict
    >>> class Double(Transform):
    ...     def _apply_transform(self, obs):
    ...         return obs * 2
    >>> t = Compose(Double(in_keys=["x"]), Double(in_keys=["x"], out_keys=["y"]))
    >>> out = t(TensorDict({"x": torch.ones(2)}, []))
    >>> out["x"], out["y"]
    (tensor([2., 2.]), tensor([4., 4.]))
    >>> len(t), type(t[0]).__name__
    (2, 'Double')
"""
from __future__ import annotations

import copy
from typing import Iterator

from tensordict import TensorDictBase
from torch import nn

from .._attrs import set_plain
from .._keys import key_list

__all__ = ["Transform", "Compose", "as_transform"]

# Fusers: callables ``fuser(transforms, i) -> (step, n) | None`` that replace the
# ``n`` transforms starting at ``transforms[i]`` by one fused ``step``. Modules
# of fusable transforms register theirs; Compose knows no concrete transform.
_FUSERS: list = []


def register_fuser(fuser):
    """Register ``fuser(transforms, i) -> (step, n) | None`` for :meth:`Compose` plans; returns ``fuser``.

    A fused step has the methods Compose calls on its members (``_call``,
    ``_step``, ``_reset``, ``forward`` / ``__call__``, ``_np_step``,
    ``_np_reset``) and gives the output of the ``n`` transforms it replaces.

    Examples:
        >>> def never(transforms, i):
        ...     return None
        >>> register_fuser(never) is never
        True
        >>> unregister_fuser(never)
    """
    if not callable(fuser):
        raise TypeError(f"register_fuser requires a callable, got {type(fuser).__name__}: {fuser!r}")
    if fuser not in _FUSERS:
        _FUSERS.append(fuser)
    return fuser


def unregister_fuser(fuser) -> None:
    """Remove a fuser added with :func:`register_fuser` (nothing when it is not registered)."""
    if fuser in _FUSERS:
        _FUSERS.remove(fuser)


def plan_steps(transforms, fusers=None) -> list:
    """The steps that run ``transforms`` in order, runs merged by ``fusers`` (default: the registered ones).

    The first fuser that matches at a position wins.

    Examples:
        >>> plan_steps([])
        []
    """
    transforms = list(transforms)
    steps, i = [], 0
    while i < len(transforms):
        for fuser in _FUSERS if fusers is None else fusers:
            fused = fuser(transforms, i)
            if fused is not None:
                step, n = fused
                steps.append(step)
                i += n
                break
        else:
            steps.append(transforms[i])
            i += 1
    return steps


class Transform(nn.Module):
    """Base class of environment transforms.

    Args:
        in_keys: keys read by the forward transform.
        out_keys: keys written by it (default: ``in_keys``); same length as ``in_keys``.
        in_keys_inv: keys written by the inverse transform, as the base env sees them.
        out_keys_inv: keys read by the inverse transform, as the policy writes them
            (default: ``in_keys_inv``).

    Raises:
        TypeError: a key is not a str or a tuple of str.
        ValueError: ``out_keys`` (``out_keys_inv``) and ``in_keys`` (``in_keys_inv``) differ in length;
            an empty key (``""``).
    """

    _np_supported = False

    def __init__(self, in_keys=None, out_keys=None, in_keys_inv=None, out_keys_inv=None):
        super().__init__()
        try:
            in_keys = key_list(in_keys, "in_keys")
            out_keys = key_list(out_keys, "out_keys") if out_keys is not None else list(in_keys)
            in_keys_inv = key_list(in_keys_inv, "in_keys_inv")
            out_keys_inv = key_list(out_keys_inv, "out_keys_inv") if out_keys_inv is not None else list(in_keys_inv)
        except ValueError as err:  # an empty key: name the class too
            raise ValueError(f"{type(self).__name__}: {err}") from None
        if len(out_keys) != len(in_keys):
            raise ValueError(f"out_keys must have the same length as in_keys, got {len(out_keys)} and {len(in_keys)}")
        if len(out_keys_inv) != len(in_keys_inv):
            raise ValueError(f"out_keys_inv must have the same length as in_keys_inv, got {len(out_keys_inv)} "
                             f"and {len(in_keys_inv)}")
        set_plain(self, "in_keys", in_keys)
        set_plain(self, "out_keys", out_keys)
        set_plain(self, "in_keys_inv", in_keys_inv)
        set_plain(self, "out_keys_inv", out_keys_inv)
        set_plain(self, "_container", None)
        set_plain(self, "_missing_tolerance", False)

    # -------------------------------------------------------------- container
    def set_container(self, container) -> None:
        """Attach this transform to the ``Compose`` or ``TransformedEnv`` holding it."""
        set_plain(self, "_container", container)

    def reset_parent(self) -> None:
        """Detach this transform from its container."""
        set_plain(self, "_container", None)

    @property
    def container(self):
        return self.__dict__["_container"]

    def _erase_metadata(self) -> None:
        container = self.container
        if container is not None:
            container._erase_metadata()

    @property
    def parent(self):
        """A ``TransformedEnv`` of the base env with the transforms that come before this one (copies)."""
        from .transformed_env import TransformedEnv

        chain = []
        child, node = self, self.container
        while node is not None:
            if isinstance(node, Compose):
                index = next(i for i, t in enumerate(node.transforms) if t is child)
                chain = [t for t in node.transforms[:index]] + chain
                child, node = node, node.container
            elif isinstance(node, TransformedEnv):
                return TransformedEnv(node.base_env, Compose(*[t.clone() for t in chain]))
            else:
                return None
        return None

    def set_missing_tolerance(self, mode: bool = False) -> None:
        """When true, a missing in_key is skipped instead of raising."""
        set_plain(self, "_missing_tolerance", bool(mode))

    @property
    def missing_tolerance(self) -> bool:
        return self._missing_tolerance

    # ----------------------------------------------------------- tensordicts
    def _apply_transform(self, obs):
        raise NotImplementedError(f"{type(self).__name__} must implement _apply_transform or _call")

    def _inv_apply_transform(self, state):
        return state

    def _missing(self, key, tensordict) -> None:
        if not self._missing_tolerance:
            raise KeyError(f"{type(self).__name__}: key {key!r} not found; keys present: "
                           f"{sorted(map(str, tensordict.keys(True, True)))}")

    def _call(self, next_tensordict: TensorDictBase) -> TensorDictBase:
        for in_key, out_key in zip(self.in_keys, self.out_keys):
            value = next_tensordict.get(in_key, None)
            if value is None:
                self._missing(in_key, next_tensordict)
                continue
            next_tensordict.set(out_key, self._apply_transform(value))
        return next_tensordict

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Apply the transform to data outside an env (e.g. a stored batch)."""
        return self._call(tensordict)

    def _step(self, tensordict: TensorDictBase, next_tensordict: TensorDictBase) -> TensorDictBase:
        return self._call(next_tensordict)

    def _reset_env_preprocess(self, tensordict: TensorDictBase | None) -> TensorDictBase | None:
        """Prepare the tensordict the base env's reset receives (``TransformedEnv`` calls it first).

        The default returns ``tensordict`` unchanged (``None`` included); a
        transform that writes entries returns a shallow copy, never the
        caller's tensordict.
        """
        return tensordict

    def _reset(self, tensordict: TensorDictBase, tensordict_reset: TensorDictBase) -> TensorDictBase:
        # A reset carries no reward: keys absent there are skipped, not errors.
        tolerant = self._missing_tolerance
        set_plain(self, "_missing_tolerance", True)
        try:
            return self._call(tensordict_reset)
        finally:
            set_plain(self, "_missing_tolerance", tolerant)

    def _inv_call(self, tensordict: TensorDictBase) -> TensorDictBase:
        for in_key, out_key in zip(self.in_keys_inv, self.out_keys_inv):
            value = tensordict.get(out_key, None)
            if value is None:
                self._missing(out_key, tensordict)
                continue
            tensordict.set(in_key, self._inv_apply_transform(value))
        return tensordict

    def inv(self, tensordict: TensorDictBase) -> TensorDictBase:
        """The inverse transform (policy side to env side) on a shallow copy of ``tensordict``."""
        return self._inv_call(tensordict.clone(False))

    def _post_step_mdp_hooks(self, tensordict: TensorDictBase,
                             tensordict_: TensorDictBase) -> tuple[TensorDictBase, TensorDictBase]:
        """Adjust ``(tensordict, tensordict_)`` after ``step_mdp`` in ``step_and_maybe_reset`` and ``rollout``.

        ``tensordict`` is the stepped tensordict (with ``"next"``: what a
        rollout or collector stacks), ``tensordict_`` the next root one (what
        the policy reads next). The default changes nothing.
        """
        return tensordict, tensordict_

    def transform_fake_tensordict(self, fake_tensordict: TensorDictBase) -> TensorDictBase:
        """Mirror on ``env.fake_tensordict()`` any key change not told by the specs (default: none)."""
        return fake_tensordict

    def _check_batched_worker_compat(self) -> None:
        """Raise if this transform cannot sit in a ``SerialEnv`` / ``ParallelEnv`` worker (default: it can)."""
        return None

    # ----------------------------------------------------------------- arrays
    def _np_step(self, arrays: dict) -> dict:
        raise NotImplementedError(f"{type(self).__name__} has no array path")

    def _np_reset(self, arrays: dict, mask) -> dict:
        return self._np_step(arrays)

    def _np_inv(self, arrays: dict) -> dict:
        return arrays

    # ------------------------------------------------------------------ specs
    def transform_observation_spec(self, observation_spec):
        return observation_spec

    def transform_reward_spec(self, reward_spec):
        return reward_spec

    def transform_done_spec(self, done_spec):
        return done_spec

    def transform_action_spec(self, action_spec):
        return action_spec

    def transform_state_spec(self, state_spec):
        return state_spec

    def _map_inverse_specs(self, input_spec, fn):
        """``input_spec`` with each inverse key's spec replaced by ``fn(spec, part)`` under its out_key_inv.

        The input spec is keyed as the base env reads it (``in_keys_inv``);
        seen through the transform, the policy writes ``out_keys_inv``, so a
        renamed spec moves there. ``part`` is the Composite holding the key
        (action or state). Keys absent from both parts are skipped. Modifies
        and returns ``input_spec`` (pass a clone).
        """
        for name in ("full_action_spec", "full_state_spec"):
            part = input_spec.get(name)
            if part is None:
                continue
            for in_key, out_key in zip(self.in_keys_inv, self.out_keys_inv):
                spec = part.get(in_key)
                if spec is None:
                    continue
                new = fn(spec, part)
                if out_key != in_key:
                    del part[in_key]
                part[out_key] = new
        return input_spec

    def transform_output_spec(self, output_spec):
        output_spec = output_spec.clone()
        output_spec["full_observation_spec"] = self.transform_observation_spec(output_spec["full_observation_spec"])
        if "full_reward_spec" in output_spec.keys():
            output_spec["full_reward_spec"] = self.transform_reward_spec(output_spec["full_reward_spec"])
        if "full_done_spec" in output_spec.keys():
            output_spec["full_done_spec"] = self.transform_done_spec(output_spec["full_done_spec"])
        return output_spec

    def transform_input_spec(self, input_spec):
        input_spec = input_spec.clone()
        input_spec["full_action_spec"] = self.transform_action_spec(input_spec["full_action_spec"])
        if "full_state_spec" in input_spec.keys():
            input_spec["full_state_spec"] = self.transform_state_spec(input_spec["full_state_spec"])
        return input_spec

    # ----------------------------------------------------------------- copies
    def clone(self) -> "Transform":
        """A deep copy, detached from any container."""
        container = self.__dict__["_container"]
        set_plain(self, "_container", None)
        try:
            return copy.deepcopy(self)
        finally:
            set_plain(self, "_container", container)

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_container"] = None
        return state

    def __repr__(self) -> str:
        return f"{type(self).__name__}(keys={self.in_keys})"


class Compose(Transform):
    """A sequence of transforms applied in order (inverse transforms in reverse order).

    Args:
        *transforms: the transforms; a ``Compose`` may hold another ``Compose``.

    Raises:
        TypeError: an argument is not a ``Transform``.
    """

    def __init__(self, *transforms: Transform, **kwargs):
        # TorchRL's forms: Compose(a, b), Compose([a, b]) and Compose(transforms=[a, b])
        if "transforms" in kwargs:
            if transforms:
                raise TypeError("Compose takes its transforms either positionally or as transforms=, not both")
            transforms = tuple(kwargs.pop("transforms"))
        elif len(transforms) == 1 and isinstance(transforms[0], list):
            transforms = tuple(transforms[0])
        if kwargs:
            raise ValueError(f"Compose: unexpected keyword arguments {sorted(kwargs)}; the only one is transforms=")
        super().__init__()
        transforms = [as_transform(t, f"Compose (position {i})") for i, t in enumerate(transforms)]
        self.transforms = nn.ModuleList(transforms)
        for t in transforms:
            t.set_container(self)

    def set_container(self, container) -> None:
        """Attach to ``container`` and tell every child, so a child can refuse the env it ends up in."""
        super().set_container(container)
        for t in self.transforms:
            t.set_container(self)

    @property
    def in_keys(self):
        return [k for t in self.transforms for k in t.in_keys]

    @property
    def out_keys(self):
        return [k for t in self.transforms for k in t.out_keys]

    @property
    def _np_supported(self) -> bool:
        return all(t._np_supported for t in self.transforms)

    # -------------------------------------------------- fused runs (hook)
    def _plan(self) -> list:
        """The steps the forward methods run: ``self.transforms`` with fusable runs merged.

        The fusers registered with :func:`register_fuser` (e.g. the pixel
        pipeline's, which replaces ``ToTensorImage -> GrayScale -> Resize ->
        CatFrames`` on one key by one fused step with the same output) merge
        runs; every other transform is its own step (:func:`plan_steps`). The
        plan is cached until the list of transforms changes (append, insert,
        item assignment); it holds the transforms, so their ids stay unique.
        """
        ids = tuple(map(id, self.transforms))
        cached = self.__dict__.get("_fused_plan")
        if cached is None or cached[0] != ids:
            cached = (ids, plan_steps(self.transforms))
            set_plain(self, "_fused_plan", cached)  # a cache, not a submodule: kept out of nn.Module's registries
        return cached[1]

    def _call(self, next_tensordict):
        for t in self._plan():
            next_tensordict = t._call(next_tensordict)
        return next_tensordict

    def forward(self, tensordict):
        for t in self._plan():
            tensordict = t(tensordict)
        return tensordict

    def _step(self, tensordict, next_tensordict):
        for t in self._plan():
            next_tensordict = t._step(tensordict, next_tensordict)
        return next_tensordict

    def _reset_env_preprocess(self, tensordict):
        for t in self.transforms:
            tensordict = t._reset_env_preprocess(tensordict)
        return tensordict

    def _reset(self, tensordict, tensordict_reset):
        for t in self._plan():
            tensordict_reset = t._reset(tensordict, tensordict_reset)
        return tensordict_reset

    def _inv_call(self, tensordict):
        for t in reversed(self.transforms):
            tensordict = t._inv_call(tensordict)
        return tensordict

    def _post_step_mdp_hooks(self, tensordict, tensordict_):
        for t in self.transforms:
            tensordict, tensordict_ = t._post_step_mdp_hooks(tensordict, tensordict_)
        return tensordict, tensordict_

    def transform_fake_tensordict(self, fake_tensordict):
        for t in self.transforms:
            fake_tensordict = t.transform_fake_tensordict(fake_tensordict)
        return fake_tensordict

    def _check_batched_worker_compat(self) -> None:
        for t in self.transforms:
            t._check_batched_worker_compat()

    def _np_step(self, arrays):
        for t in self._plan():
            arrays = t._np_step(arrays)
        return arrays

    def _np_reset(self, arrays, mask):
        for t in self._plan():
            arrays = t._np_reset(arrays, mask)
        return arrays

    def _np_inv(self, arrays):
        for t in reversed(self.transforms):
            arrays = t._np_inv(arrays)
        return arrays

    def transform_output_spec(self, output_spec):
        for t in self.transforms:
            output_spec = t.transform_output_spec(output_spec)
        return output_spec

    def transform_input_spec(self, input_spec):
        for t in self.transforms:
            input_spec = t.transform_input_spec(input_spec)
        return input_spec

    def transform_observation_spec(self, observation_spec):
        for t in self.transforms:
            observation_spec = t.transform_observation_spec(observation_spec)
        return observation_spec

    def transform_reward_spec(self, reward_spec):
        for t in self.transforms:
            reward_spec = t.transform_reward_spec(reward_spec)
        return reward_spec

    def transform_done_spec(self, done_spec):
        for t in self.transforms:
            done_spec = t.transform_done_spec(done_spec)
        return done_spec

    def transform_action_spec(self, action_spec):
        for t in self.transforms:
            action_spec = t.transform_action_spec(action_spec)
        return action_spec

    def transform_state_spec(self, state_spec):
        for t in self.transforms:
            state_spec = t.transform_state_spec(state_spec)
        return state_spec

    def __getitem__(self, item):
        if isinstance(item, slice):
            return Compose(*[t.clone() for t in self.transforms[item]])
        if isinstance(item, (list, tuple)):
            return Compose(*[self.transforms[i].clone() for i in item])
        return self.transforms[item]

    def __len__(self) -> int:
        return len(self.transforms)

    def __iter__(self) -> Iterator[Transform]:
        return iter(self.transforms)

    def append(self, transform: Transform) -> None:
        """Add ``transform`` at the end, in ``eval()`` mode as in TorchRL.

        A callable is wrapped in a transform that calls it on each output
        tensordict; the members of a ``Compose`` are appended one by one.
        """
        transform = as_transform(transform, "Compose.append")
        members = list(transform.transforms) if type(transform) is Compose else [transform]
        for t in members:
            t.eval()
            self.transforms.append(t)
            t.set_container(self)
        self._erase_metadata()

    def insert(self, index: int, transform: Transform) -> None:
        """Insert ``transform`` (in ``eval()`` mode) before position ``index`` (negative indices count from the end)."""
        transform = as_transform(transform, "Compose.insert")
        transform.eval()
        n = len(self.transforms)
        if not -n - 1 <= index <= n:
            raise IndexError(f"Compose.insert index must be in [{-n - 1}, {n}], got {index}")
        if index < 0:
            index += n + 1
        items = list(self.transforms)
        items.insert(index, transform)
        self.transforms = nn.ModuleList(items)
        transform.set_container(self)
        self._erase_metadata()

    def pop(self, index: int = -1) -> Transform:
        """Remove the transform at ``index`` (default the last) and return it, detached from this Compose."""
        n = len(self.transforms)
        if not -n <= index < n:
            raise IndexError(f"index {index} is out of range")
        items = list(self.transforms)
        out = items.pop(index)
        self.transforms = nn.ModuleList(items)
        out.set_container(None)
        self._erase_metadata()
        return out

    def clone(self) -> "Compose":
        out = super().clone()
        for t in out.transforms:
            t.set_container(out)
        return out

    def __setstate__(self, state):
        self.__dict__.update(state)
        for t in self.transforms:
            t.set_container(self)

    def __repr__(self) -> str:
        inner = ",\n    ".join(repr(t) for t in self.transforms)
        return f"Compose(\n    {inner})" if inner else "Compose()"



class _CallableTransform(Transform):
    """A plain callable used as a transform: ``func(tensordict)`` on every output (step and reset).

    What TorchRL makes of a function given where a transform goes
    (``TransformedEnv(env, fn)``, ``append_transform(fn)``, ``Compose(fn)``).
    It adds no spec entries; the inverse leaves the input as it is.
    """

    def __init__(self, func):
        super().__init__()
        self.func = func  # a Module (e.g. a TensorDictModule) becomes a child, so .to() and state_dict reach it

    def forward(self, *args, **kwargs):
        return self.func(*args, **kwargs)

    def _call(self, next_tensordict):
        return self.func(next_tensordict)

    def _inv_call(self, tensordict):
        return tensordict

    def _reset(self, tensordict, tensordict_reset):
        return self.func(tensordict_reset)

    def __repr__(self) -> str:
        return f"_CallableTransform({getattr(self.func, '__name__', type(self.func).__name__)})"


def as_transform(obj, where: str) -> Transform:
    """``obj`` when it is a Transform, a callable wrapped as one, else TypeError naming ``where``.

    Examples:
        >>> as_transform(lambda td: td, "TransformedEnv")
        _CallableTransform(<lambda>)
        >>> as_transform(3, "Compose.append")
        Traceback (most recent call last):
        ...
        TypeError: Compose.append requires a Transform or a callable taking a TensorDict, got int
    """
    if isinstance(obj, Transform):
        return obj
    if callable(obj):
        return _CallableTransform(obj)
    raise TypeError(f"{where} requires a Transform or a callable taking a TensorDict, got {type(obj).__name__}")
