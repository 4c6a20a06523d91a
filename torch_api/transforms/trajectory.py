"""Trajectory transforms: TrajCounter, AutoResetTransform (with its env, AutoResetEnv).

Same names, arguments, defaults, keys, specs and outputs as TorchRL 0.14.1
(the docstrings say where they differ).

``TrajCounter`` gives every trajectory an id drawn from one counter. Clones
of a counter share it (as in TorchRL); an ``EnvCreator`` moves it into a
shared-memory block that every env the creator makes, in any process,
draws from, so the sub-envs of a ``SerialEnv`` / ``ParallelEnv`` built from
creators never hand out the same id twice. It also runs on the array path
of the rollout (ids are written by a Numba kernel, :mod:`numbarl.core.traj_count`).

``AutoResetTransform`` serves envs that reset themselves inside ``step``:
the step that ends an episode already carries the first observation of the
next one. The transform keeps those observations, writes fill values (NaN,
-1, False) in their place, and hands them back at the following reset,
which ``AutoResetEnv`` answers without resetting the base env again.

Examples:
    >>> from numbarl.torch_api import GymEnv, TransformedEnv, Compose, StepCounter
    >>> env = TransformedEnv(GymEnv("Pendulum-v1"), Compose(StepCounter(3), TrajCounter()))
    >>> _ = env.set_seed(0)
    >>> td = env.rollout(7, break_when_any_done=False)
    >>> td["next", "traj_count"].squeeze(-1)
    tensor([0, 0, 0, 1, 1, 1, 2])
"""
from __future__ import annotations

import threading

import numpy as np
import torch
from tensordict import TensorDict

from .._attrs import set_plain
from .._device import HOST, launch
from .._keys import key_list, key_tuple, key_of
from ..specs import Bounded
from ._checks import check_bool, check_int
from ._env_chain import container_env, ensure_specs
from .base import Transform
from .transformed_env import TransformedEnv

__all__ = ["TrajCounter", "AutoResetTransform", "AutoResetEnv"]

_INT64_MAX = torch.iinfo(torch.int64).max
_OUTSIDE = "{} can only be called within an environment step or reset."


class _SharedCount:
    """The counter of a ``TrajCounter`` and its clones: an int64 cell, local or in a ``SharedArrays`` block.

    Copies (``copy.deepcopy``, so ``Transform.clone``) are the object itself;
    pickling sends the block's name when the cell is shared (the receiver
    attaches) and the value otherwise (the receiver counts on its own).
    """

    __slots__ = ("block", "cell", "_tlock")

    def __init__(self, value: int = 0, block=None):
        self.block = block
        self.cell = block["traj_count"] if block is not None else np.array([value], dtype=np.int64)
        self._tlock = threading.Lock()

    def _lock(self):
        return self.block.lock() if self.block is not None else self._tlock

    @property
    def value(self) -> int:
        return int(self.cell[0])

    def take(self, n: int) -> int:
        """Reserve ``n`` ids; return the first."""
        with self._lock():
            start = int(self.cell[0])
            self.cell[0] = start + n
        return start

    def set(self, value: int) -> None:
        with self._lock():
            self.cell[0] = value

    def share(self):
        """Move the cell into a new block owned by this process (once); return the block."""
        if self.block is None:
            from ...core.shared import SharedArrays

            block = SharedArrays.create({"traj_count": ((1,), np.int64)})
            with self._tlock:
                block["traj_count"][0] = self.cell[0]
                self.block, self.cell = block, block["traj_count"]
        return self.block

    def attach(self, block) -> None:
        self.block, self.cell = block, block["traj_count"]

    def __deepcopy__(self, memo):
        return self

    def __reduce__(self):
        # the block by name, through a module-level function: cloudpickle (lambdas and closures sent to
        # workers) cannot pickle the block's own reduction (a bound classmethod)
        return _rebuild_count, (self.value, None if self.block is None else self.block.name)


def _rebuild_count(value: int, name):
    if name is None:
        return _SharedCount(value)
    from ...core.shared import SharedArrays

    return _SharedCount(block=SharedArrays.attach(name))


def _reset_keys(done_keys) -> list:
    """TorchRL's reset keys of an env with these done keys: ``"_reset"`` beside each group of done leaves."""
    out = []
    for key in done_keys:
        rk = key_of(key_tuple(key)[:-1] + ("_reset",))
        if rk not in out:
            out.append(rk)
    return out


class TrajCounter(Transform):
    """Number the trajectories: ``traj_count`` is the id of the episode each step belongs to.

    Every reset draws new ids from a counter, one per entry being reset
    (in C order over the entries of the done shape), and each step repeats the id
    of the root tensordict under ``"next"``. The entry is an int64
    ``Bounded(0, int64 max)`` observation shaped like the done leaf beside
    ``out_key`` (``("agent", "traj_count")`` follows ``("agent", "done")``).

    Sharing: clones share the counter, as in TorchRL. ``EnvCreator`` moves
    it into a shared-memory block, so that envs made by the creator (and by
    its ``make_variant`` copies, or other creators whose env holds a clone
    of the same counter) draw from one counter in any process: no two
    sub-envs of a ``SerialEnv`` / ``ParallelEnv`` get the same id. Unlike
    TorchRL, pickling a counter that is not shared gives an independent
    copy that goes on from the same value (TorchRL's copy has no counter
    until an ``EnvCreator`` gives it one). ``repeats`` is stored and unused,
    as in TorchRL.

    ``state_dict()`` is ``{"traj_count": n}`` (the next id), as TorchRL's;
    inside a ``Compose`` the entry is saved and loaded too (TorchRL drops it).

    Args:
        out_key: the entry of the ids (default ``"traj_count"``); nested keys follow their done leaf.
        repeats: an int >= 0 or None (kept for compatibility).

    Raises:
        TypeError: ``out_key`` not a key, ``repeats`` not an int.
        ValueError: ``repeats < 0``, more than one out_key.
        KeyError: no done leaf beside ``out_key`` (when the env's specs are built).
        RuntimeError: a step before any reset; called outside an env (as TorchRL); no reset key beside
            ``out_key``.

    Examples:
        >>> from numbarl.torch_api import SerialEnv, GymEnv, TransformedEnv, StepCounter, Compose
        >>> env = TransformedEnv(SerialEnv(2, lambda: GymEnv("Pendulum-v1")), Compose(StepCounter(2), TrajCounter()))
        >>> _ = env.set_seed(0)
        >>> td = env.rollout(4, break_when_any_done=False)
        >>> td["next", "traj_count"].squeeze(-1)
        tensor([[0, 0, 2, 2],
                [1, 1, 3, 3]])
        >>> env.transform[-1].state_dict()
        {'traj_count': 4}
        >>> env.close()
    """

    _np_supported = True

    def __init__(self, out_key="traj_count", *, repeats: int | None = None):
        keys = key_list(out_key, "out_key")
        if len(keys) != 1:
            raise ValueError(f"TrajCounter requires a single out_key, got {out_key!r}")
        repeats = 0 if repeats is None else check_int(repeats, "TrajCounter", "repeats", minimum=0)
        super().__init__()
        set_plain(self, "out_keys", keys)  # no in_keys: the ids come from the counter
        set_plain(self, "repeats", repeats)
        set_plain(self, "_traj_count", _SharedCount())
        set_plain(self, "_initialized", False)
        set_plain(self, "_group", None)  # (reset key or None, done shape) from the env's specs
        set_plain(self, "_ids", None)  # ids of the array path, per entry

    # ---------------------------------------------------------------- sharing
    def _make_shared(self) -> None:
        """Move the counter into a shared-memory block owned by this process (no-op when it is)."""
        self._traj_count.share()

    def _shared_handle(self):
        """The block holding the counter (picklable, sent by name), or None."""
        return self._traj_count.block

    def _attach_shared(self, handle) -> None:
        """Draw from the counter in block ``handle`` from now on (this transform and its clones)."""
        self._traj_count.attach(handle)

    # ---------------------------------------------------------------- specs
    def _find_group(self, done_spec):
        out_key = self.out_keys[0]
        done_keys = list(done_spec.keys(True, True))
        shape = None
        for done_key in done_keys:
            if isinstance(done_key, str) != isinstance(out_key, str):
                continue
            if isinstance(done_key, str) or done_key[:-1] == out_key[:-1]:
                shape = done_spec[done_key].shape
                break
        if shape is None:
            raise KeyError(f"TrajCounter: could not find the root of the traj_count key {out_key!r} in the done "
                           f"keys {done_keys}")
        reset_key = None
        for rk in _reset_keys(done_keys):
            if isinstance(out_key, str) and isinstance(rk, str):
                reset_key = rk
                break
            if not isinstance(out_key, str) and not isinstance(rk, str) and rk[:-1] == out_key[:-1]:
                reset_key = rk
                break
        return reset_key, shape, _reset_keys(done_keys)

    def _add_spec(self, observation_spec, done_spec):
        reset_key, shape, reset_keys = self._find_group(done_spec)
        set_plain(self, "_group", (reset_key, tuple(shape), reset_keys))
        observation_spec[self.out_keys[0]] = Bounded(low=0, high=_INT64_MAX, shape=shape, dtype=torch.int64,
                                                     device=observation_spec.device)
        return observation_spec

    def transform_output_spec(self, output_spec):
        output_spec = output_spec.clone()
        self._add_spec(output_spec["full_observation_spec"], output_spec["full_done_spec"])
        return output_spec

    def transform_observation_spec(self, observation_spec):
        from ..specs import Composite

        if not isinstance(observation_spec, Composite):
            raise ValueError(f"observation_spec was expected to be of type Composite. Got "
                             f"{type(observation_spec).__name__} instead.")
        parent = self.parent
        if parent is None:
            raise RuntimeError("TrajCounter.transform_observation_spec needs the env holding the transform "
                               "(it reads the done spec)")
        return self._add_spec(observation_spec, parent.output_spec["full_done_spec"])

    def _reset_group(self):
        if self._group is None:
            ensure_specs(self)
        if self._group is None:
            raise RuntimeError("TrajCounter must sit in an env: " + _OUTSIDE.format("TrajCounter"))
        return self._group

    # ----------------------------------------------------------- tensordicts
    def _request(self, tensordict, reset_key, shape, like):
        """The entries being reset, a bool tensor of ``shape``."""
        reset = None
        if tensordict is not None:
            reset = tensordict.get(reset_key, None)
            if reset is None and reset_key != "_reset":
                reset = tensordict.get("_reset", None)  # a whole sub-env reset covers its nested entries
        if reset is None:
            return torch.ones(shape, dtype=torch.bool, device=like.device)
        reset = reset.to(device=like.device, dtype=torch.bool)
        if tuple(reset.shape) != tuple(shape):
            nb = len(tensordict.batch_size)
            batch = tuple(tensordict.batch_size)
            if reset.numel() != int(np.prod(batch, dtype=np.int64)):
                raise ValueError(f"TrajCounter: the reset request {reset_key!r} has shape {tuple(reset.shape)}, "
                                 f"which fits neither {tuple(shape)} nor the batch shape {batch}")
            reset = reset.reshape(batch + (1,) * (len(shape) - nb)).expand(shape)
        return reset

    def _reset(self, tensordict, tensordict_reset):
        set_plain(self, "_initialized", True)
        reset_key, shape, reset_keys = self._reset_group()
        if reset_key is None:
            raise RuntimeError(f"Did not find reset key that matched the prefix of the traj counter key. "
                               f"Reset keys: {reset_keys}, traj count: {self.out_keys[0]}")
        like = next(iter(tensordict_reset.values(True, True)), None)
        like = like if isinstance(like, torch.Tensor) else torch.empty(0, device=tensordict_reset.device)
        reset = self._request(tensordict, reset_key, shape, like)
        n = int(reset.sum())
        start = self._traj_count.take(n)
        ids = torch.zeros(shape, dtype=torch.int64, device=reset.device)
        ids.masked_scatter_(reset, torch.arange(start, start + n, device=reset.device))
        tensordict_reset.set(self.out_keys[0], ids)
        self._keep(ids, reset, tensordict)
        return tensordict_reset

    def _keep(self, ids, reset, tensordict) -> None:
        """Keep the ids for the array path and for steps without them: new ones where reset, the root's elsewhere."""
        if ids.device.type != "cpu":
            prev = tensordict.get(self.out_keys[0], None) if tensordict is not None else None
            held = self._ids if isinstance(self._ids, torch.Tensor) else None
            base = prev if prev is not None and prev.shape == ids.shape else held
            set_plain(self, "_ids", ids.clone() if base is None or base.shape != ids.shape
                      else torch.where(reset, ids, base.to(ids.device)))
            return
        prev = tensordict.get(self.out_keys[0], None) if tensordict is not None else None
        held = self._ids
        if prev is not None and tuple(prev.shape) == tuple(ids.shape):
            held = prev.detach().cpu().numpy()
        if held is None or held.shape != tuple(ids.shape):
            held = np.zeros(tuple(ids.shape), dtype=np.int64)
        out = np.where(reset.numpy(), ids.numpy(), held)
        set_plain(self, "_ids", np.ascontiguousarray(out, dtype=np.int64))

    def _step(self, tensordict, next_tensordict):
        if not self._initialized:
            raise RuntimeError("_step was called before _reset was called.")
        key = self.out_keys[0]
        value = tensordict.get(key, None)
        if value is None and self._ids is not None:
            # a batched env steps its sub-envs with the action alone: the ids kept at reset serve
            value = torch.as_tensor(self._ids).clone()
        if value is None:
            raise KeyError(f"TrajCounter: key {key!r} not found in the tensordict given to step; reset the env "
                           f"first and step from its output; keys: {sorted(map(str, tensordict.keys(True, True)))}")
        next_tensordict.set(key, value)
        return next_tensordict

    def _call(self, next_tensordict):
        raise RuntimeError(_OUTSIDE.format(type(self).__name__))

    def forward(self, tensordict):
        raise RuntimeError(_OUTSIDE.format(type(self).__name__))

    # ----------------------------------------------------------------- arrays
    def _np_reset(self, arrays: dict, mask) -> dict:
        set_plain(self, "_initialized", True)
        shape = self._reset_group()[1]
        ids = self._ids
        if type(ids) is not np.ndarray or ids.shape != shape:
            ids = np.zeros(shape, dtype=np.int64)
            set_plain(self, "_ids", ids)
        if mask is not None and mask.ndim == 0:
            mask = None if mask else np.zeros(shape[:0], dtype=np.bool_)
        core = _core()
        start = self._traj_count.take(core.reset_count(ids, mask))
        launch(ids, "traj_count", "assign_ids", ids, mask, start)
        arrays[self.out_keys[0]] = ids
        return arrays

    def _np_step(self, arrays: dict) -> dict:
        if self._ids is None:
            raise RuntimeError("_step was called before _reset was called.")
        arrays[self.out_keys[0]] = self._ids
        return arrays

    # ------------------------------------------------------------ checkpoints
    def state_dict(self, *args, destination=None, prefix="", keep_vars=False):
        if destination is None:
            return {"traj_count": self._traj_count.value}
        destination[prefix + "traj_count"] = self._traj_count.value
        return destination

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        self._traj_count.set(int(state_dict["traj_count"]))

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        value = state_dict.pop(prefix + "traj_count", None)
        if value is not None:
            self._traj_count.set(int(value))

    def __repr__(self) -> str:
        return f"TrajCounter(out_key={self.out_keys[0]!r})"


def _core():
    from ...core import traj_count

    return traj_count


def _check_fill(value, name: str, kinds: tuple, what: str):
    if value is None or (isinstance(value, kinds) and not (bool not in kinds and isinstance(value, bool))):
        return value
    raise TypeError(f"AutoResetTransform requires {name} to be {what} or None, got {type(value).__name__}: {value!r}")


def _filled(value: torch.Tensor, mask: torch.Tensor, fill) -> torch.Tensor:
    """``value`` with ``fill`` where ``mask`` (leading dims of ``value``) holds; a copy of ``value`` when ``fill`` is None."""
    if fill is None:
        return value.clone()
    mask = mask.reshape(tuple(mask.shape) + (1,) * (value.dim() - mask.dim()))
    return torch.where(mask, torch.full_like(value, fill), value)


class AutoResetTransform(Transform):
    """The transform of envs that reset themselves inside ``step`` (see the module docstring).

    At a step where ``done`` is set, every observation of the env (its
    ``full_observation_spec``) is kept and, under ``"next"``, replaced where
    ``done`` holds: floating entries by ``fill_float``, signed integers by
    ``fill_int``, bool and unsigned entries by ``fill_bool``. The next reset
    (``AutoResetEnv``'s, which does not reset the base env when asked for a
    partial reset) returns the kept observations. With nested done leaves
    and no root ``"done"`` / ``"terminated"`` pair the values are filled but,
    as in TorchRL 0.14.1, not handed back at reset.

    As in TorchRL, the transform must be the one transform of an
    ``AutoResetEnv``: ``TransformedEnv(env, AutoResetTransform())`` raises
    RuntimeError at the first reset. ``EnvType(..., auto_reset=True)`` (which
    builds that env in TorchRL) is not supported: build
    ``AutoResetEnv(env, AutoResetTransform())``.

    Args:
        replace: ``False`` writes no fill value (the values stay as the env gave them); overrides the fills.
        fill_float: a number, ``"nan"`` (default) or None (no replacement) for floating entries.
        fill_int: an int (default -1) or None for signed integer entries.
        fill_bool: a bool (default False) or None for bool and unsigned entries.

    Raises:
        TypeError: a fill or ``replace`` of the wrong type.
        ValueError: a ``fill_float`` string other than ``"nan"``.
        RuntimeError: the container is not an ``AutoResetEnv`` (at reset); called outside an env.

    Examples:
        >>> import torch
        >>> from numbarl.torch_api import GymEnv
        >>> class SelfResetting(GymEnv):
        ...     def _step(self, td):
        ...         out = super()._step(td)
        ...         if out["done"].any():
        ...             out.update(super()._reset(None).exclude(*self.done_keys))
        ...         return out
        ...     def _reset(self, td=None, **kwargs):
        ...         if td is not None and "_reset" in td.keys():
        ...             return td.copy()
        ...         return super()._reset(td, **kwargs)
        >>> env = AutoResetEnv(SelfResetting("CartPole-v1"), AutoResetTransform())
        >>> _ = env.set_seed(0)
        >>> push_right = lambda td: td.set("action", torch.tensor([0, 1]))
        >>> td = env.rollout(40, push_right, break_when_any_done=False)
        >>> ends = td["next", "done"].squeeze(-1)
        >>> bool(ends.any()), bool(td["next", "observation"][ends].isnan().all())
        (True, True)
        >>> bool(td["observation"][1:][ends[:-1]].isnan().any())  # the step after an end starts afresh
        False
    """

    def __init__(self, *, replace: bool | None = None, fill_float="nan", fill_int=-1, fill_bool=False):
        if replace is not None:
            check_bool(replace, "AutoResetTransform", "replace")
        if isinstance(fill_float, str):
            if fill_float != "nan":
                raise ValueError(f"AutoResetTransform requires fill_float to be a number, 'nan' or None, got "
                                 f"{fill_float!r}")
            fill_float = float("nan")
        _check_fill(fill_float, "fill_float", (int, float), "a number")
        _check_fill(fill_int, "fill_int", (int,), "an int")
        _check_fill(fill_bool, "fill_bool", (bool,), "a bool")
        super().__init__()
        if replace is False:
            fill_float = fill_int = fill_bool = None
        set_plain(self, "replace", replace)
        set_plain(self, "fill_float", fill_float)
        set_plain(self, "fill_int", fill_int)
        set_plain(self, "fill_bool", fill_bool)
        set_plain(self, "_validated", False)
        set_plain(self, "_saved", None)
        set_plain(self, "_layout", None)  # (simple done, observation keys) of the env before this transform

    def _validate_container(self) -> None:
        if self._validated:
            return
        if type(self.container) is not AutoResetEnv:
            raise RuntimeError(f"The {type(self).__name__} container must be of type AutoResetEnv.")
        set_plain(self, "_validated", True)

    def _env_layout(self):
        if self._layout is None:
            parent = self.parent
            if parent is None:
                raise RuntimeError(_OUTSIDE.format(type(self).__name__))
            done_keys = set(parent.done_keys)
            layout = ("done" in done_keys and "terminated" in done_keys, list(parent.full_observation_spec.keys(True, True)),
                      list(parent.done_keys))
            set_plain(self, "_layout", layout)
        return self._layout

    @property
    def _simple_done(self) -> bool:
        return self._env_layout()[0]

    def _fill_for(self, value: torch.Tensor):
        if value.dtype.is_floating_point:
            return self.fill_float
        if value.dtype.is_signed:
            return self.fill_int
        return self.fill_bool

    def _step(self, tensordict, next_tensordict):
        simple, obs_keys, done_keys = self._env_layout()
        if simple:
            done = next_tensordict.get("done")
            if done.any():
                mask = done.squeeze(-1)
                saved = TensorDict()
                for key in obs_keys:
                    value = next_tensordict.get(key)
                    saved.set(key, value)
                    next_tensordict.set(key, _filled(value, mask, self._fill_for(value)))
                set_plain(self, "_saved", saved)
            return next_tensordict
        saved = None
        for done_key in done_keys:
            if key_tuple(done_key)[-1] != "done":
                continue
            if isinstance(done_key, str):
                raise TypeError("A 'done' key was a string but a tuple was expected.")
            prefix = done_key[:-1]
            done = next_tensordict.get(done_key)
            if not done.any():
                continue
            saved = TensorDict() if saved is None else saved
            mask = done.squeeze(-1)
            for key in obs_keys:
                if isinstance(key, tuple) and key[:len(prefix)] == prefix:
                    value = next_tensordict.get(key)
                    saved.set(key, value)
                    next_tensordict.set(key, _filled(value, mask, self._fill_for(value)))
        if saved is not None:
            set_plain(self, "_saved", saved)
        return next_tensordict

    def _reset(self, tensordict, tensordict_reset):
        self._validate_container()
        saved = self._saved
        if saved is None:
            return tensordict_reset
        if self._simple_done:
            for key, value in saved.items(True, True):
                if key_tuple(key)[-1] != "_reset":
                    tensordict_reset.set(key, value)
        set_plain(self, "_saved", None)
        return tensordict_reset

    def _call(self, next_tensordict):
        raise RuntimeError(_OUTSIDE.format(type(self).__name__))

    def forward(self, tensordict):
        raise RuntimeError(_OUTSIDE.format(type(self).__name__))

    def transform_output_spec(self, output_spec):
        set_plain(self, "_layout", None)
        return output_spec

    def __repr__(self) -> str:
        return (f"AutoResetTransform(fill_float={self.fill_float}, fill_int={self.fill_int}, "
                f"fill_bool={self.fill_bool})")


class AutoResetEnv(TransformedEnv):
    """A ``TransformedEnv`` for envs that reset themselves inside ``step`` (TorchRL's ``AutoResetEnv``).

    A reset asked with a ``"_reset"`` entry (a partial reset, as a rollout
    asks after a done step) does not reset the base env: the transform
    hands back the observations kept at the done step. A reset without one
    resets the base env. For an env without batch dims, whose rollout asks
    for resets without ``"_reset"``, a request whose root ``"done"`` is set
    counts as such a reset too while the transform holds kept observations.
    Transforms cannot be inserted (as in TorchRL; there it raises
    AttributeError through a typo, here RuntimeError).

    Examples:
        >>> from numbarl.torch_api import GymEnv
        >>> env = AutoResetEnv(GymEnv("Pendulum-v1"), AutoResetTransform())
        >>> env.insert_transform(0, AutoResetTransform())
        Traceback (most recent call last):
        ...
        RuntimeError: Cannot insert a transform in AutoResetEnv.
    """

    def _array_path_ready(self) -> bool:
        return False

    def _auto_request(self, tensordict) -> bool:
        if tensordict is None:
            return False
        keys = tensordict.keys(True)
        if any(k in keys for k in self.base_env.reset_keys):
            return True
        if len(self.batch_size) == 0 and self.transform.__dict__.get("_saved") is not None:
            done = tensordict.get("done", None)
            return done is not None and bool(done.any())
        return False

    def _reset(self, tensordict=None, **kwargs):
        auto = self._auto_request(tensordict)
        if tensordict is not None:
            tensordict = tensordict.select(*self.reset_keys, *self.full_state_spec.keys(True, True), strict=False)
        base = self.base_env
        if auto:
            tensordict_reset = tensordict.exclude(*base.reset_keys)
        else:
            tensordict_reset = base._reset(tensordict, **kwargs)
        if tensordict is None:
            tensordict = tensordict_reset.empty()
        tensordict_reset = base._complete_done(tensordict_reset, at_reset=True)
        return self.transform._reset(tensordict, tensordict_reset)

    def insert_transform(self, index: int, transform: Transform):
        raise RuntimeError(f"Cannot insert a transform in {type(self).__name__}.")
