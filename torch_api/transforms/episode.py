"""Episode transforms: StepCounter, InitTracker, NoopResetEnv, FrameSkipTransform, TerminateTransform,
NextObservationDelta.

Same names, arguments, defaults, keys and spec changes as TorchRL 0.14.1
(the docstrings say where they differ). ``StepCounter``, ``InitTracker`` and
``NextObservationDelta`` also run on the array path of the preallocated
rollout; their running state (step counts, last observations) is kept per
sub-env, reset only where a ``"_reset"`` mask says, and saved in
``state_dict``. The transforms that step the env themselves
(``NoopResetEnv``, ``FrameSkipTransform``) or call user code on a
tensordict (``TerminateTransform``) make the rollout use TensorDicts; they
live in ``stepping`` and are re-exported here.

On CUDA data the running state is a tensor on the data's device, updated
by torch operations there (the twins of :mod:`numbarl.core.episode`, same
results), and the ``"_reset"`` mask stays on the device: nothing is read
back to the host.

Examples:
    >>> from numbarl.torch_api import GymEnv, TransformedEnv, Compose
    >>> env = TransformedEnv(GymEnv("Pendulum-v1"), Compose(StepCounter(max_steps=3), InitTracker()))
    >>> _ = env.set_seed(0)
    >>> td = env.rollout(5, break_when_any_done=False)
    >>> td["next", "step_count"].squeeze(-1), td["is_init"].squeeze(-1)
    (tensor([1, 2, 3, 1, 2]), tensor([ True, False, False,  True, False]))
"""
from __future__ import annotations

import numpy as np
import torch
from tensordict import TensorDictBase, unravel_key


from .._attrs import set_plain
from .._device import HOST, launch, ops_for
from .._keys import key_list, key_of
from ..specs import Bounded, Categorical
from ._checks import CompatTypeValueError, check_bool
from .._keys import key_tuple, with_leaf
from ._checks import check_int, check_str_key
from ._env_chain import container_env, ensure_specs
from ._reset_masks import batch_view, zero_where
from .running_state import RunningState, host_state
from .stepping import FrameSkipTransform, NoopResetEnv, TerminateTransform, _outside_env
from .base import Transform

__all__ = ["StepCounter", "InitTracker", "NoopResetEnv", "FrameSkipTransform", "TerminateTransform",
           "NextObservationDelta"]

_INT64_MAX = torch.iinfo(torch.int64).max


_key = key_of


def _done_groups(done_spec):
    """Prefixes (tuples) of the ``"done"`` leaves of a done spec, root first."""
    return [key_tuple(k)[:-1] for k in done_spec.keys(True, True) if key_tuple(k)[-1] == "done"]


def _tracked_groups(done_spec):
    """TorchRL's rule for per-group state (step counts, init flags): the root group alone when the env has a
    root ``"done"`` (nested groups would need other shapes), else every nested group."""
    groups = _done_groups(done_spec)
    return [()] if () in groups else groups


def _broadcast_batch(flag, like):
    """A root flag ``[*batch, 1]`` viewed so that it broadcasts against a nested group's ``[*batch, *group, 1]``."""
    base = flag.reshape(flag.shape[:-1]) if flag.shape and flag.shape[-1] == 1 else flag
    return base.reshape(tuple(base.shape) + (1,) * (len(like.shape) - len(base.shape)))


def _reset_key(transform, prefix: tuple):
    """The reset key next to ``prefix`` among the env's reset keys (``"_reset"`` at the root)."""
    env = container_env(transform)
    for key in (env.reset_keys if env is not None else ["_reset"]):
        if key_tuple(key)[:-1] == prefix:
            return key
    return _key(prefix + ("_reset",))


class StepCounter(RunningState, Transform):
    """Count the steps since the last reset; optionally truncate after ``max_steps``.

    ``step_count`` (int64, shaped like ``done``, spec ``Bounded(0, int64 max)``
    in the observation and state specs as in TorchRL) is 0 at reset and goes
    up by one each step. With ``max_steps``, ``truncated`` is set when the
    count reaches it (OR-ed with the env's own truncation) and, with
    ``update_done``, ``done`` too; a ``truncated`` entry is added to the done
    spec when the env has none. One counter per ``"done"`` leaf of the env
    (``("agent", "step_count")`` next to ``("agent", "done")``), except that,
    as in TorchRL, an env with a root ``"done"`` is counted at the root only:
    its nested done groups get no counter of their own, and with
    ``max_steps`` and ``update_done`` the root's truncation is OR-ed into
    their ``done`` (and into their ``truncated`` when the env has one;
    ``all_done_keys`` / ``all_truncated_keys`` list them).

    The counts are kept in the transform per sub-env (NumPy arrays, saved in
    ``state_dict``): a ``"_reset"`` mask resets only those sub-envs, and the
    array path of the rollout counts on them. On the TensorDict path the
    previous count is read from the root tensordict when it is there, as in
    TorchRL, and from the kept counts otherwise (TorchRL raises TypeError).
    For CUDA data the kept counts are int64 tensors on the data's device,
    counted and compared with ``max_steps`` there.

    Args:
        max_steps: steps before truncation, an int >= 1, or None (count only).
        truncated_key: leaf name of the truncated entries (default ``"truncated"``).
        step_count_key: leaf name of the counts (default ``"step_count"``).
        update_done: also set ``done`` when truncating (default True).

    Raises:
        TypeError: ``max_steps`` not an int, a key not a str, ``update_done`` not a bool.
        ValueError: ``max_steps < 1``.
        NotImplementedError: called on a tensordict outside an env (as TorchRL).

    Examples:
        >>> from numbarl.torch_api import GymEnv, TransformedEnv
        >>> env = TransformedEnv(GymEnv("Pendulum-v1"), StepCounter(max_steps=2))
        >>> _ = env.set_seed(0)
        >>> td = env.rollout(10)
        >>> td["next", "step_count"].squeeze(-1), td["next", "truncated"].squeeze(-1)
        (tensor([1, 2]), tensor([False,  True]))
        >>> StepCounter(max_steps=0)
        Traceback (most recent call last):
        ...
        ValueError: StepCounter requires max_steps >= 1, got 0
    """

    _np_supported = True
    _state_names = ("_counts",)

    def __init__(self, max_steps: int | None = None, truncated_key: str = "truncated",
                 step_count_key: str = "step_count", update_done: bool = True):
        if max_steps is not None:
            max_steps = check_int(max_steps, "StepCounter", "max_steps", minimum=1)
        check_str_key(truncated_key, "StepCounter", "truncated_key")
        check_str_key(step_count_key, "StepCounter", "step_count_key")
        update_done = check_bool(update_done, "StepCounter", "update_done")
        super().__init__()
        set_plain(self, "max_steps", max_steps)
        set_plain(self, "truncated_key", truncated_key)
        set_plain(self, "step_count_key", step_count_key)
        set_plain(self, "update_done", update_done)
        set_plain(self, "_groups", None)  # [(done_key, truncated_key, count_key)] from the env's done spec
        set_plain(self, "_nested", [])  # [(done_key, truncated_key)] of nested groups beside a root done
        set_plain(self, "_bufs", {})
        self._init_state()

    def _group_list(self):
        if self._groups is None:
            ensure_specs(self)
        if self._groups is None:
            return [("done", self.truncated_key, self.step_count_key)]
        return self._groups

    def _count(self, key, like: np.ndarray) -> np.ndarray:
        return HOST.state(self._counts, key, like, np.int64)

    # TorchRL's key lists, one entry per done group of the env (``("agent", "step_count")`` next to
    # ``("agent", "done")``): top-level keys are strings, nested ones tuples.
    def _keys_beside_done(self, leaf: str | None = None, column: int = 0) -> list:
        out = []
        for group in self._group_list():
            key = group[column]
            if leaf is not None:
                key = with_leaf(group[0], leaf)
            out.append(unravel_key(key))
        return out

    @property
    def step_count_keys(self) -> list:
        """The step count entries, one per done group (TorchRL's ``step_count_keys``)."""
        return self._keys_beside_done(column=2)

    @property
    def truncated_keys(self) -> list:
        """The truncated entries the counter sets, one per done group."""
        return self._keys_beside_done(column=1)

    @property
    def done_keys(self) -> list:
        """The done entries the counter follows, one per done group."""
        return self._keys_beside_done()

    @property
    def terminated_keys(self) -> list:
        """The ``terminated`` entries beside each done entry."""
        return self._keys_beside_done("terminated")

    @property
    def reset_keys(self) -> list:
        """The ``_reset`` entries beside each done entry (the partial-reset masks the counter reads)."""
        return self._keys_beside_done("_reset")

    @property
    def all_done_keys(self) -> list:
        """Every done entry the counter writes: its groups' and, with max_steps, the nested groups' beside a root
        done, which get the root's truncation."""
        self._group_list()
        return self.done_keys + [unravel_key(d) for d, _ in self._nested]

    @property
    def all_truncated_keys(self) -> list:
        """Every truncated entry the counter writes (see :attr:`all_done_keys`)."""
        self._group_list()
        return self.truncated_keys + [unravel_key(t) for _, t in self._nested]


    def _buf(self, name, key, like) -> np.ndarray:
        buf = self._bufs.get((name, key))
        if buf is None or buf.shape != like.shape:
            buf = self._bufs[(name, key)] = np.zeros(like.shape, dtype=np.bool_)
        return buf

    def _truncate_nested(self, data) -> None:
        """OR the root truncation into the nested groups' done (and truncated) entries of ``data``.

        ``data`` is the step's arrays (a dict) or its ``"next"`` TensorDict:
        both read with ``get(key, None)`` and write with ``data[key] = value``.
        """
        root = data.get(self._group_list()[0][1], None)
        if root is None:
            return
        for done_key, trunc_key in self._nested:
            done = data.get(done_key, None)
            if done is None:
                continue
            flag = _broadcast_batch(root, done)
            trunc = data.get(trunc_key, None)
            if trunc is not None:
                data[trunc_key] = trunc | flag
            if self.update_done:
                data[done_key] = done | flag

    # -------------------------------------------------------------- arrays
    def _np_reset(self, arrays: dict, mask) -> dict:
        for done_key, trunc_key, count_key in self._group_list():
            done = arrays[done_key]
            count = self._count(count_key, done)
            zero_where(count, mask)
            arrays[count_key] = count
            if self.max_steps is not None and trunc_key not in arrays:
                arrays[trunc_key] = self._buf("zero", trunc_key, done)
        return arrays

    def _np_step(self, arrays: dict) -> dict:
        max_steps, update_done = self.max_steps, self.update_done
        for done_key, trunc_key, count_key in self._group_list():
            done = arrays[done_key]
            count = self._counts.get(count_key)
            if count is None or type(count) is not np.ndarray or count.shape != done.shape:
                count = self._count(count_key, done)
            if max_steps is None:
                launch(count, "episode", "count_steps", count)
            else:
                trunc_out = self._buf("trunc", trunc_key, done)
                done_out = self._buf("done", done_key, done)
                launch(count, "episode", "count_steps", count, done, arrays.get(trunc_key), max_steps, update_done,
                       done_out, trunc_out)
                arrays[trunc_key] = trunc_out
                if update_done:
                    arrays[done_key] = done_out
            arrays[count_key] = count
        if self._nested and max_steps is not None:
            self._truncate_nested(arrays)
        return arrays

    # --------------------------------------------------------- tensordicts
    def _reset(self, tensordict, tensordict_reset):
        batch = tuple(tensordict_reset.batch_size)
        for done_key, trunc_key, count_key in self._group_list():
            done = tensordict_reset.get(done_key, None)
            done_missing = done is None
            if done is None and tensordict is not None:
                done = tensordict.get(done_key, None)  # a reset output without done flags: the input's give the shape
            if done is None:
                raise KeyError(f"StepCounter: {done_key!r} is in neither the reset output nor its input; keys: "
                               f"{sorted(map(str, tensordict_reset.keys(True, True)))}")
            ops = ops_for(done)
            count = ops.state(self._counts, count_key, done, torch.int64)
            mask = ops.reset_mask(tensordict, _reset_key(self, key_tuple(done_key)[:-1]), batch, done)
            if mask is not None and tensordict is not None and tensordict.get(count_key, None) is not None:
                ops.copy_into(count, tensordict.get(count_key))
            ops.zero_where(count, mask)
            tensordict_reset.set(count_key, ops.snapshot(count))
            if self.max_steps is None:
                continue
            truncated = tensordict_reset.get(trunc_key, None)
            if truncated is None:
                truncated = torch.zeros_like(done)
            previous = tensordict.get(trunc_key, None) if (tensordict is not None and mask is not None) else None
            if previous is not None and previous.shape == truncated.shape:
                # Sub-envs left alone by a partial reset keep the truncation this transform set
                # (it differs from the base env's flag when update_done is False).
                truncated = torch.where(batch_view(ops.tensor(mask), truncated.ndim), truncated, previous)
            tensordict_reset.set(trunc_key, truncated)
            if done_missing:  # as TorchRL: a reset output without done flags gets done = truncated
                tensordict_reset.set(done_key, truncated.clone())
        return tensordict_reset

    def _step(self, tensordict, next_tensordict):
        for done_key, trunc_key, count_key in self._group_list():
            done = next_tensordict.get(done_key, None)
            if done is None:
                self._missing(done_key, next_tensordict)
                continue
            ops = ops_for(done)
            count = ops.state(self._counts, count_key, done, torch.int64)
            prev = tensordict.get(count_key, None) if tensordict is not None else None
            if prev is not None:
                ops.copy_into(count, prev)
            truncated = next_tensordict.get(trunc_key, None) if self.max_steps is not None else None
            done_out, trunc_out = ops.count_steps(count, done, truncated, self.max_steps, self.update_done)
            if self.max_steps is not None:
                next_tensordict.set(trunc_key, trunc_out)
                if self.update_done:
                    next_tensordict.set(done_key, done_out)
            next_tensordict.set(count_key, ops.snapshot(count))
        if self._nested and self.max_steps is not None:
            self._truncate_nested(next_tensordict)
        return next_tensordict

    def forward(self, tensordict):
        raise _outside_env("StepCounter")

    # --------------------------------------------------------------- specs
    def transform_output_spec(self, output_spec):
        output_spec = output_spec.clone()
        done_spec = output_spec["full_done_spec"]
        obs = output_spec["full_observation_spec"]
        groups, specs, nested = [], {}, []
        tracked = _tracked_groups(done_spec)
        for prefix in _done_groups(done_spec):
            if prefix in tracked:
                continue
            # a nested group beside a root done: no count of its own; the root's truncation is OR-ed into its
            # done (and into its truncated entry when the env has one; none is added, as in TorchRL)
            nested.append((_key(prefix + ("done",)), _key(prefix + (self.truncated_key,))))
        set_plain(self, "_nested", nested)
        for prefix in tracked:
            done_key = _key(prefix + ("done",))
            trunc_key = _key(prefix + (self.truncated_key,))
            count_key = _key(prefix + (self.step_count_key,))
            leaf = done_spec[done_key]
            if self.max_steps is not None and done_spec.get(trunc_key, None) is None:
                done_spec[trunc_key] = Categorical(2, shape=leaf.shape, device=leaf.device, dtype=torch.bool)
            spec = Bounded(low=0, high=_INT64_MAX, shape=leaf.shape, device=leaf.device, dtype=torch.int64)
            obs[count_key] = spec
            specs[count_key] = spec
            groups.append((done_key, trunc_key, count_key))
        set_plain(self, "_groups", groups)
        set_plain(self, "_count_specs", specs)
        return output_spec

    def transform_input_spec(self, input_spec):
        input_spec = input_spec.clone()
        if self._groups is None:
            ensure_specs(self)
        for key, spec in self.__dict__.get("_count_specs", {}).items():
            input_spec["full_state_spec"][key] = spec.clone()
        return input_spec

    def __repr__(self) -> str:
        return f"StepCounter(max_steps={self.max_steps}, step_count_key={self.step_count_key!r})"


class InitTracker(Transform):
    """Flag the first step of each episode: ``is_init`` is True at reset and False after each step.

    ``is_init`` (bool, shaped like ``done``) goes into the observation spec, as
    in TorchRL; one flag per ``"done"`` leaf, or the root's alone when the env
    has a root ``"done"`` (TorchRL's rule). After a partial reset it is True
    only for the sub-envs that were reset. For CUDA data the flags are made
    on the device from the (device) reset mask.

    Args:
        init_key: leaf name of the flag (default ``"is_init"``).

    Raises:
        TypeError: ``init_key`` not a str (a ValueError too, TorchRL's type).
        NotImplementedError: called on a tensordict outside an env (as TorchRL).

    Examples:
        >>> from numbarl.torch_api import GymEnv, TransformedEnv
        >>> env = TransformedEnv(GymEnv("Pendulum-v1"), InitTracker())
        >>> _ = env.set_seed(0)
        >>> td = env.rollout(3)
        >>> td["is_init"].squeeze(-1), td["next", "is_init"].squeeze(-1)
        (tensor([ True, False, False]), tensor([False, False, False]))
    """

    _np_supported = True

    def __init__(self, init_key: str = "is_init"):
        if not isinstance(init_key, str):  # TorchRL's words and ValueError, a TypeError too
            raise CompatTypeValueError(f"InitTracker requires a str init_key: init_key can only be of type str (a "
                                       f"leaf name, placed beside each done), got {type(init_key).__name__}: "
                                       f"{init_key!r}")
        check_str_key(init_key, "InitTracker", "init_key")
        super().__init__()
        set_plain(self, "init_key", init_key)
        set_plain(self, "_groups", None)  # [(done_key, init_key)]
        set_plain(self, "_bufs", {})

    def _group_list(self):
        if self._groups is None:
            ensure_specs(self)
        return self._groups if self._groups is not None else [("done", self.init_key)]

    @property
    def init_keys(self) -> list:
        """The flag's key under each done group of the env (TorchRL's ``init_keys``); needs an env."""
        if self.parent is None:
            raise NotImplementedError("InitTracker.init_keys needs the transform to be in an env (its done keys "
                                      "decide where the flags go)")
        return [init_key for _, init_key in self._group_list()]

    def _buf(self, name, key, like) -> np.ndarray:
        buf = self._bufs.get((name, key))
        if buf is None or buf.shape != like.shape:
            buf = self._bufs[(name, key)] = np.zeros(like.shape, dtype=np.bool_)
        return buf

    def _np_reset(self, arrays: dict, mask) -> dict:
        for done_key, init_key in self._group_list():
            buf = self._buf("init", init_key, arrays[done_key])
            HOST.put_mask(buf, mask)
            arrays[init_key] = buf
        return arrays

    def _np_step(self, arrays: dict) -> dict:
        for done_key, init_key in self._group_list():
            arrays[init_key] = self._buf("false", init_key, arrays[done_key])
        return arrays

    def _reset(self, tensordict, tensordict_reset):
        batch = tuple(tensordict_reset.batch_size)
        for done_key, init_key in self._group_list():
            done = tensordict_reset.get(done_key)
            ops = ops_for(done)  # the flags are the reset mask itself
            value = ops.empty(done.shape, torch.bool, done)
            ops.put_mask(ops.view(value), ops.reset_mask(tensordict, _reset_key(self, key_tuple(done_key)[:-1]),
                                                         batch, done))
            tensordict_reset.set(init_key, value)
        return tensordict_reset

    def _step(self, tensordict, next_tensordict):
        for done_key, init_key in self._group_list():
            done = next_tensordict.get(done_key)
            next_tensordict.set(init_key, torch.zeros(done.shape, dtype=torch.bool, device=done.device))
        return next_tensordict

    def forward(self, tensordict):
        raise _outside_env("InitTracker")

    def transform_output_spec(self, output_spec):
        output_spec = output_spec.clone()
        done_spec = output_spec["full_done_spec"]
        groups = []
        for prefix in _tracked_groups(done_spec):
            done_key, init_key = _key(prefix + ("done",)), _key(prefix + (self.init_key,))
            leaf = done_spec[done_key]
            output_spec["full_observation_spec"][init_key] = Categorical(2, shape=leaf.shape, device=leaf.device,
                                                                         dtype=torch.bool)
            groups.append((done_key, init_key))
        set_plain(self, "_groups", groups)
        return output_spec

    def __repr__(self) -> str:
        return f"InitTracker(init_key={self.init_key!r})"


_EXCLUDED_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64, torch.bool)


def _check_float_dtype(name: str, value) -> None:
    if not isinstance(value, torch.dtype):
        raise TypeError(f"NextObservationDelta requires {name} to be a torch.dtype, got {type(value).__name__}: "
                        f"{value!r}")
    if not value.is_floating_point:
        raise ValueError(f"NextObservationDelta requires {name} to be a floating-point dtype, got {value}")


class NextObservationDelta(RunningState, Transform):
    """Store each step's next observation as a low-precision change ``next_obs - obs``, and rebuild it from that.

    Env side: for each in_key ``k`` a step writes
    ``("next", "delta", k) = (next_obs - obs).to(delta_dtype)``; after
    ``step_mdp`` has carried the full ``("next", k)`` to the root (so the
    policy reads it in full precision), ``step_and_maybe_reset`` and
    ``rollout`` drop ``("next", k)`` from the stepped tensordict: rollouts
    and collector batches hold ``k`` at the root and only the delta under
    ``"next"`` (``env.step`` alone keeps both). The specs are unchanged;
    ``env.fake_tensordict()`` shows the delta instead of ``("next", k)``.
    Replay-buffer side (``forward``): ``("next", k) = obs + delta`` in
    ``restore_dtype`` (``"root"``: the dtype of ``obs``), then the delta entry
    is removed (``drop_delta``); keys without both parts are skipped, and
    without in_keys (no env to choose them from) nothing is done. Keys,
    arguments, the choice of in_keys (every floating observation leaf not in
    ``excluded_dtypes``, read from the env when first needed) and the layout
    are TorchRL 0.14.1's.

    The transform must sit outside batched envs
    (``TransformedEnv(SerialEnv(...), NextObservationDelta())``): building a
    ``SerialEnv`` / ``ParallelEnv`` whose sub-env holds one raises
    RuntimeError, as in TorchRL. The last observation of each sub-env is kept
    in the transform (saved in ``state_dict``) so that the array path of the
    rollout can take the difference; for CUDA data it is kept on the data's
    device. Unlike TorchRL, a transformed base env's key drop also shows in
    the outer env's ``fake_tensordict()``.

    Args:
        in_keys: observation keys (default: chosen from the env's spec).
        delta_dtype: floating dtype of the stored delta (default float16).
        restore_dtype: floating dtype of the rebuilt observation, or ``"root"``.
        drop_delta: remove the delta entries after rebuilding (default True).
        excluded_dtypes: dtypes left out when choosing in_keys.

    Raises:
        TypeError: ``delta_dtype`` not a ``torch.dtype`` (TorchRL: AttributeError), ``drop_delta`` not a
            bool, ``excluded_dtypes`` holding something else than dtypes, or a bad key.
        ValueError: a non-floating ``delta_dtype``; a ``restore_dtype`` that is neither a floating dtype nor
            ``"root"``.
        KeyError: an explicit in_key that is not in the observation spec (when the env's specs are built).
        RuntimeError: inside a ``SerialEnv`` / ``ParallelEnv`` sub-env.

    Examples:
        >>> import torch
        >>> from numbarl.torch_api import GymEnv, TransformedEnv
        >>> env = TransformedEnv(GymEnv("Pendulum-v1"), NextObservationDelta())
        >>> env.transform.in_keys
        ['observation']
        >>> _ = env.set_seed(0)
        >>> td = env.rollout(3)
        >>> td["next", "delta", "observation"].dtype, ("next", "observation") in td.keys(True, True)
        (torch.float16, False)
        >>> rebuilt = NextObservationDelta(in_keys=["observation"])(td.clone())
        >>> bool((rebuilt["next", "observation"][:-1] - td["observation"][1:]).abs().max() < 1e-2)
        True
    """

    _state_names = ("_last",)

    def __init__(self, in_keys=None, *, delta_dtype: torch.dtype = torch.float16, restore_dtype="root",
                 drop_delta: bool = True, excluded_dtypes: tuple = _EXCLUDED_DTYPES):
        _check_float_dtype("delta_dtype", delta_dtype)
        if not (isinstance(restore_dtype, str) and restore_dtype == "root") and not (
                isinstance(restore_dtype, torch.dtype) and restore_dtype.is_floating_point):
            raise ValueError(f"NextObservationDelta requires restore_dtype to be a floating-point torch.dtype or "
                             f"'root', got {restore_dtype!r}")
        drop_delta = check_bool(drop_delta, "NextObservationDelta", "drop_delta")
        excluded_dtypes = tuple(excluded_dtypes)
        if not all(isinstance(d, torch.dtype) for d in excluded_dtypes):
            raise TypeError(f"NextObservationDelta requires excluded_dtypes to hold torch.dtype values, got "
                            f"{excluded_dtypes!r}")
        keys = None if in_keys is None else key_list(in_keys, "in_keys")
        super().__init__(in_keys=keys or [])
        set_plain(self, "_auto_keys", keys is None)
        set_plain(self, "delta_dtype", delta_dtype)
        set_plain(self, "restore_dtype", restore_dtype)
        set_plain(self, "drop_delta", drop_delta)
        set_plain(self, "excluded_dtypes", excluded_dtypes)
        set_plain(self, "_bufs", {})
        self._init_state()

    # ------------------------------------------------------------------ keys
    @property
    def in_keys(self):
        """The observation keys; chosen from the env's observation spec when none were given (None outside an env)."""
        if self.__dict__["_auto_keys"]:
            if not self.__dict__.get("_choosing", False):
                set_plain(self, "_choosing", True)
                try:
                    ensure_specs(self)  # runs transform_output_spec, which chooses them
                finally:
                    set_plain(self, "_choosing", False)
            if self.__dict__["_auto_keys"]:
                return None
        return self.__dict__["in_keys"]

    @in_keys.setter
    def in_keys(self, value) -> None:
        keys = None if value is None else key_list(value, "in_keys")
        set_plain(self, "in_keys", keys or [])
        set_plain(self, "out_keys", list(keys or []))
        set_plain(self, "_auto_keys", keys is None)
        self._erase_metadata()

    @property
    def out_keys(self):
        keys = self.in_keys
        return None if keys is None else list(keys)

    @out_keys.setter
    def out_keys(self, value) -> None:
        set_plain(self, "out_keys", value)

    def _pairs(self):
        """``[(key, ("delta", *key))]`` for the in_keys (none when they cannot be chosen)."""
        return [(k, _key(("delta",) + key_tuple(k))) for k in (self.in_keys or ())]

    @property
    def _np_supported(self) -> bool:
        return self.delta_dtype != torch.bfloat16

    def _buf(self, key, shape) -> np.ndarray:
        buf = self._bufs.get(key)
        if buf is None or buf.shape != shape:
            from .._arrays import numpy_dtype

            buf = self._bufs[key] = np.zeros(shape, dtype=numpy_dtype(self.delta_dtype))
        return buf

    # -------------------------------------------------------------- arrays
    def _np_reset(self, arrays: dict, mask) -> dict:
        for key, _ in self._pairs():
            HOST.keep(self._last, key, arrays[key], mask)
        return arrays

    def _np_step(self, arrays: dict) -> dict:
        for key, delta_key in self._pairs():
            obs = arrays[key]
            last = host_state(self._last, key)
            if last is None:
                raise KeyError(f"NextObservationDelta: no previous {key!r}; reset the env first")
            delta = self._buf(delta_key, obs.shape)
            np.subtract(obs, last, out=delta)
            last[...] = obs
            arrays[delta_key] = delta
        return arrays

    # --------------------------------------------------------- tensordicts
    def _reset(self, tensordict, tensordict_reset):
        batch = tuple(tensordict_reset.batch_size)
        for key, _ in self._pairs():
            obs = tensordict_reset.get(key, None)
            if obs is None:
                continue
            ops = ops_for(obs)
            mask = ops.reset_mask(tensordict, _reset_key(self, ()), batch, obs)
            ops.keep(self._last, key, ops.view(obs), mask)
        return tensordict_reset

    def _step(self, tensordict, next_tensordict):
        for key, delta_key in self._pairs():
            obs, nxt = tensordict.get(key, None), next_tensordict.get(key, None)
            if obs is None or nxt is None:
                continue
            next_tensordict.set(delta_key, (nxt - obs).to(self.delta_dtype))
            ops = ops_for(nxt)
            ops.keep(self._last, key, ops.view(nxt), None)
        return next_tensordict

    def _post_step_mdp_hooks(self, tensordict, tensordict_):
        """Drop the full ``("next", k)`` from the stepped tensordict once ``step_mdp`` has carried it to the root."""
        nxt = tensordict.get("next", None)
        if nxt is None:
            return tensordict, tensordict_
        obs_keys = self.__dict__.get("_obs_keys", ())
        for key, delta_key in self._pairs():
            if nxt.get(key, None) is not None:
                nxt.pop(key)
            # step_mdp carries every "next" entry to the root, TorchRL's only the spec's keys: the delta stays put
            if delta_key not in obs_keys and tensordict_.get(delta_key, None) is not None:
                tensordict_.pop(delta_key)
        holder = tensordict_.get("delta", None)
        if isinstance(holder, TensorDictBase) and holder.is_empty():
            tensordict_.pop("delta")
        return tensordict, tensordict_

    def transform_fake_tensordict(self, fake_tensordict):
        nxt = fake_tensordict.get("next", None)
        if nxt is not None:
            for key, delta_key in self._pairs():
                leaf = nxt.get(key, None)
                if leaf is not None:
                    nxt.set(delta_key, leaf.to(self.delta_dtype))
                    nxt.pop(key)
        return fake_tensordict

    def _check_batched_worker_compat(self) -> None:
        raise RuntimeError(
            "NextObservationDelta cannot live inside a SerialEnv/ParallelEnv worker: it drops (\"next\", obs) "
            "in the step_and_maybe_reset of the env holding it, which a batched env does not call on its "
            "sub-envs. Put it outside the batched env: TransformedEnv(ParallelEnv(n, make_env), "
            "NextObservationDelta(...))")

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Rebuild ``("next", k)`` from ``k`` and ``("next", "delta", k)`` (replay-buffer side); skip missing keys."""
        for key, delta_key in self._pairs():
            next_delta = ("next",) + key_tuple(delta_key)
            obs, delta = tensordict.get(key, None), tensordict.get(next_delta, None)
            if obs is None or delta is None:
                continue
            dtype = obs.dtype if self.restore_dtype == "root" else self.restore_dtype
            tensordict.set(("next",) + key_tuple(key), obs.to(dtype) + delta.to(dtype))
            if self.drop_delta:
                tensordict.pop(next_delta)
        return tensordict

    def transform_output_spec(self, output_spec):
        obs = output_spec["full_observation_spec"]
        if self._auto_keys:
            keys = [unravel_key(k) for k in obs.keys(True, True)
                    if obs[k].dtype is not None and obs[k].dtype not in self.excluded_dtypes
                    and obs[k].dtype.is_floating_point]
            set_plain(self, "in_keys", keys)
            set_plain(self, "out_keys", list(keys))
            set_plain(self, "_auto_keys", False)
        set_plain(self, "_obs_keys", frozenset(unravel_key(k) for k in obs.keys(True, True)))
        for key in self.__dict__["in_keys"]:
            if obs.get(key, None) is None:
                raise KeyError(f"NextObservationDelta: in_key {key!r} is not in the observation spec; keys: "
                               f"{sorted(map(str, obs.keys(True, True)))}")
        return output_spec

    def __repr__(self) -> str:
        keys = None if self.__dict__["_auto_keys"] else self.__dict__["in_keys"]
        return f"NextObservationDelta(in_keys={keys}, delta_dtype={self.delta_dtype})"
