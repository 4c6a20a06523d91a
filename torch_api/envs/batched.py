"""``SerialEnv`` and ``ParallelEnv``: ``num_workers`` copies of an env behind one batched env.

Both follow TorchRL 0.14.1: the batch dim comes first (``batch_size ==
[num_workers]``, specs expanded to it), ``reset`` takes a ``"_reset"`` mask
for partial resets, ``set_seed(seed)`` seeds worker 0 with ``seed`` and each
next worker with the seed the previous one returned (``seed_generator``
chained), returning the last, and ``rollout(T)`` gives data of shape
``[num_workers, T]`` with done sub-envs reset on the fly when
``break_when_any_done=False``.

Both implement the array protocol (``_np_reset(mask)``, ``_np_step(action)``,
``_np_current()``) over the whole batch, so ``rollout`` and a
``TransformedEnv`` over them take the preallocated array path. Sub-envs
that implement the protocol themselves (``GymEnv``, ``TransformedEnv`` of
one with array transforms) are stepped through it and write straight into
the batch arrays; others go through their TensorDict API.

Public attributes of the sub-envs that the batched env lacks are forwarded
as in TorchRL: ``serial.attr`` is the list of the sub-envs' values (methods
give a :class:`SubEnvMethod` returning one result per sub-env), and
``parallel.attr(...)`` runs in the workers and returns that list.

State inputs: every key of the sub-envs' ``full_state_spec`` (RNN hidden
states, ``action_mask``...) that the tensordict holds is handed to each
sub-env with its action, and with a ``reset(td)`` that carries it (not with
the resets of ``step_and_maybe_reset`` / ``rollout``, as TorchRL). On the
array path (``rollout``, the collectors) state inputs that the sub-envs also
output (``step_count``, a returned RNN state) go with the action as the
current values, as ``step_mdp`` carries them on the TensorDict path; a
sub-env with the array protocol that outputs all its state inputs keeps them
itself and is stepped through that protocol after a full array reset.

Sub-envs that are themselves batched (``SerialEnv(k, ...)``, an env of
batch size ``[k]``) give the batch ``[num_workers, k]``, as in TorchRL:
``ParallelEnv(n, lambda: SerialEnv(k, make))`` runs ``k`` envs in each of
``n`` worker processes, on the array path, and a ``"_reset"`` mask of shape
``[n, k, 1]`` resets single members.

Where numbarl differs from TorchRL: after a partial reset, the sub-envs that
were not reset report their current observations and done flags (TorchRL
returns zeros there), so ``reset(td)`` can be used as is; ``close()`` twice
does nothing (TorchRL raises); sub-envs must share one set of specs and one
batch size (TorchRL stacks differing specs lazily); a name the
sub-envs lack raises AttributeError at once and an error inside a forwarded
call leaves the workers up (TorchRL's workers die); names starting with
``_`` are not forwarded.
"""
from __future__ import annotations

import atexit
import multiprocessing
import os
import pickle
import weakref
from collections.abc import Callable, Sequence

import numpy as np
import torch

from .._attrs import set_plain
from .._arrays import as_array
from ._array_env import ArrayEnvBase
from ._worker import (OP_RESET, OP_RESET_ALL, OP_STEP, EnvWorkerError, SubEnvs, WorkerPool, allocate,
                      check_env_layout, check_worker_env, control_layout, make_layout)

__all__ = ["EnvWorkerError", "ParallelEnv", "SerialEnv"]


def _check_args(cls_name: str, num_workers, create_env_fn, create_env_kwargs):
    """Validated ``(fns, kwargs)``, one entry per worker."""
    if not isinstance(num_workers, (int, np.integer)) or isinstance(num_workers, bool):
        raise TypeError(f"{cls_name} requires num_workers to be an int, got {type(num_workers).__name__}")
    num_workers = int(num_workers)
    if num_workers < 1:
        raise ValueError(f"{cls_name} requires num_workers >= 1, got {num_workers}")
    if callable(create_env_fn):
        fns = [create_env_fn] * num_workers
    elif isinstance(create_env_fn, Sequence) and not isinstance(create_env_fn, (str, bytes)):
        fns = list(create_env_fn)
        if len(fns) != num_workers:
            raise ValueError(f"{cls_name} requires create_env_fn to hold num_workers={num_workers} callables, "
                             f"got {len(fns)}")
        bad = [i for i, f in enumerate(fns) if not callable(f)]
        if bad:
            raise TypeError(f"{cls_name} requires create_env_fn to hold callables, got "
                            f"{type(fns[bad[0]]).__name__} at position {bad[0]}")
    else:
        raise TypeError(f"{cls_name} requires create_env_fn to be a callable or a list of callables, "
                        f"got {type(create_env_fn).__name__}")
    if create_env_kwargs is None:
        kwargs = [{} for _ in range(num_workers)]
    elif isinstance(create_env_kwargs, dict):
        kwargs = [dict(create_env_kwargs) for _ in range(num_workers)]
    elif isinstance(create_env_kwargs, Sequence) and not isinstance(create_env_kwargs, (str, bytes)):
        kwargs = list(create_env_kwargs)
        if len(kwargs) != num_workers:
            raise ValueError(f"{cls_name} requires create_env_kwargs to hold num_workers={num_workers} dicts, "
                             f"got {len(kwargs)}")
        bad = [i for i, k in enumerate(kwargs) if not isinstance(k, dict)]
        if bad:
            raise TypeError(f"{cls_name} requires create_env_kwargs to hold dicts, got "
                            f"{type(kwargs[bad[0]]).__name__} at position {bad[0]}")
        kwargs = [dict(k) for k in kwargs]
    else:
        raise TypeError(f"{cls_name} requires create_env_kwargs to be a dict or a list of dicts, "
                        f"got {type(create_env_kwargs).__name__}")
    return num_workers, fns, kwargs


def _sub_device(device, sub_env):
    """The batched env's device: ``device`` when given, else the sub-envs' when it is a CPU device (as
    TorchRL takes the sub-envs' device), else None."""
    if device is not None:
        return device
    sub = getattr(sub_env, "device", None)
    return sub if sub is not None and sub.type == "cpu" else None


def _check_device(cls_name: str, device):
    if device is not None and torch.device(device).type != "cpu":
        raise ValueError(f"{cls_name} runs on the CPU; device must be None or 'cpu', got {device!r}")
    return None if device is None else torch.device(device)


class SubEnvMethod:
    """Attribute ``name`` of every sub-env of a batched env: calling it calls (or reads) it in each, in order.

    What ``SerialEnv.<method>`` and ``ParallelEnv.<attribute>`` return for
    attributes of the sub-envs that the batched env does not have itself (as
    TorchRL 0.14.1's dispatchers do). The call returns a list with one result
    per sub-env; a non-callable attribute is read (``penv.frame_skip()``).
    """

    def __init__(self, env, name: str):
        self._env = env
        self._name = name

    def __call__(self, *args, **kwargs) -> list:
        return self._env._query_sub_envs(self._name, True, args, kwargs)

    def __repr__(self) -> str:
        return f"SubEnvMethod({self._name!r} of {type(self._env).__name__} with {self._env.num_workers} sub-envs)"


def _forwardable(env, name: str) -> bool:
    """Whether ``name`` may be looked up on the sub-envs: public names, once the batched env is built."""
    return not name.startswith("_") and ("_subs" in env.__dict__ or "_pool" in env.__dict__)


def _missing(env, name: str, where: str) -> AttributeError:
    return AttributeError(f"{type(env).__name__} has no attribute {name!r}, and {where}")


_QUERY_ERRORS = {cls.__name__: cls for cls in (AttributeError, TypeError, ValueError, KeyError, IndexError,
                                                NotImplementedError, RuntimeError)}


class _BatchedEnv(ArrayEnvBase):
    """Common logic of ``SerialEnv`` and ``ParallelEnv``: specs, batch arrays, the array protocol."""

    def _set_specs(self, meta) -> None:
        shape = tuple(self.batch_size)
        self.full_observation_spec = meta.full_observation_spec.expand(*shape)
        self.full_reward_spec = meta.full_reward_spec.expand(*shape)
        self.full_done_spec = meta.full_done_spec.expand(*shape)
        self.full_action_spec = meta.full_action_spec.expand(*shape)
        self.full_state_spec = meta.full_state_spec.expand(*shape)
        set_plain(self, "_meta_repr", repr(meta))

    def _set_arrays(self, layout: dict, arrays) -> None:
        d = self.__dict__
        d["_layout"] = layout
        d["_arrays"] = arrays
        d["_root_views"] = {key: arrays[name] for name, key, _, _ in layout["root"]}
        d["_next_views"] = {key: arrays[name] for name, key, _, _ in layout["next"]}
        d["_current_views"] = {key: d["_next_views"][key] for key in d["_root_views"]}
        d["_carry"] = [(d["_root_views"][key], d["_next_views"][key]) for key in d["_root_views"]]
        d["_action_arrays"] = [(key, arrays[name]) for name, key, _, _ in layout["action"]]
        d["_state_arrays"] = [(key, arrays[name]) for name, key, _, _ in layout["state"]]
        d["_state_at_reset"] = arrays["state_at_reset"]
        d["_np_synced"] = arrays["np_synced"]
        # state inputs that are also outputs (step_count, an RNN state the env returns): the array
        # path hands each step the current values, as step_mdp does on the TensorDict path; a state
        # spec whose shape disagrees with the output of the same name (TorchRL's Stack can give one) is
        # not carried
        d["_state_carry"] = [(key, dst) for key, dst in d["_state_arrays"]
                             if key in d["_root_views"] and d["_root_views"][key].shape == dst.shape]
        d["_mask"] = arrays["mask"]
        d["_after_step"] = False

    def _drop_arrays(self) -> None:
        """Forget every view of the batch arrays (so that a closed env holds no mapping of its block)."""
        d = self.__dict__
        for name in ("_arrays", "_root_views", "_next_views", "_current_views", "_carry", "_action_arrays",
                     "_state_arrays", "_state_at_reset", "_np_synced", "_state_carry", "_mask"):
            d.pop(name, None)

    @property
    def num_workers(self) -> int:
        return self.batch_size[0]

    # ------------------------------------------------------------ array path
    def _array_path_ready(self) -> bool:
        if self.is_closed:
            return False
        return len(self._action_arrays) == 1 and super()._array_path_ready()

    def _check_open(self) -> None:
        if self.is_closed:
            raise RuntimeError(f"{type(self).__name__} is closed; make a new one")

    def _np_step(self, action) -> dict:
        self._check_open()
        dst = self._action_arrays[0][1]
        if action is not dst:
            dst[...] = action
        if self._state_carry:
            current = self._np_current()
            for key, state in self._state_carry:
                state[...] = current[key]
        self._run_step()
        set_plain(self, "_after_step", True)
        return self._next_views

    def _np_reset(self, mask=None) -> dict:
        self._check_open()
        if mask is None:
            self._mask[...] = True
        else:
            mask = np.asarray(mask, dtype=bool).reshape(tuple(self.batch_size))
            if self._after_step:  # sub-envs not reset keep their current values
                keep = ~mask
                for root, nxt in self._carry:
                    root[keep] = nxt[keep]
            self._mask[...] = mask
        if self.__dict__.get("_td_call", False):
            self._np_synced[0] = False
        elif mask is None:
            self._np_synced[0] = True  # every sub-env starts from its own reset values
        self._run_reset(mask is None)
        set_plain(self, "_after_step", False)
        return self._root_views

    def _np_current(self) -> dict:
        return self._current_views if self._after_step else self._root_views

    def _write_inputs(self, tensordict, entries) -> bool:
        """Copy the ``entries`` keys that ``tensordict`` holds into their batch arrays; whether any was there."""
        found = False
        for key, dst in entries:
            value = tensordict.get(key, None)
            if value is not None:
                dst[...] = as_array(value).reshape(dst.shape)
                found = True
        return found

    def _step(self, tensordict):
        self._check_open()
        self._np_synced[0] = False  # the state rows now hold whatever the tensordict carries
        for key, dst in self._action_arrays:
            dst[...] = as_array(tensordict.get(key))
        self._write_inputs(tensordict, self._state_arrays)  # state inputs (RNN states, masks...) go with the action
        self._run_step()
        set_plain(self, "_after_step", True)
        return self._to_td(self._next_views)

    def maybe_reset(self, tensordict):
        """As ``EnvBase.maybe_reset``; the sub-envs' resets see only the reset keys (TorchRL's ``select_reset_only``).

        A state input left in the tensordict by the step (an RNN state, say)
        is not handed to the reset, so a done sub-env starts afresh.
        """
        set_plain(self, "_reset_only", True)
        try:
            return super().maybe_reset(tensordict)
        finally:
            set_plain(self, "_reset_only", False)

    def _reset(self, tensordict=None, **kwargs):
        self._check_open()
        flag = self._state_at_reset
        flag[0] = (tensordict is not None and not self.__dict__.get("_reset_only", False)
                   and self._write_inputs(tensordict, self._state_arrays))
        set_plain(self, "_td_call", True)
        try:
            return super()._reset(tensordict, **kwargs)
        finally:
            flag[0] = False
            set_plain(self, "_td_call", False)

    def _set_seed(self, seed):
        self.set_seed(seed)

    def __getattr__(self, name):
        try:
            return super().__getattr__(name)
        except AttributeError:
            pass
        if not _forwardable(self, name):
            raise _missing(self, name, "private names are not looked up on the sub-envs")
        return self._sub_env_attribute(name)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(\n    env={self._meta_repr},\n    batch_size={self.batch_size})"


class SerialEnv(_BatchedEnv):
    """``num_workers`` envs run one after the other in this process, as one env of batch size ``[num_workers]``.

    Sub-envs with the array protocol (``GymEnv``, ``TransformedEnv`` of one
    with array transforms) are stepped through it, each writing its row of
    the batch arrays; others through their TensorDict API. See the module
    docstring for the semantics and where they differ from TorchRL.

    Args:
        num_workers: the number of sub-envs (the batch size).
        create_env_fn: a callable returning an env, or a list of ``num_workers`` of them.
        create_env_kwargs: keyword arguments for ``create_env_fn``: a dict, or a list of
            ``num_workers`` dicts.
        device: ``None`` or ``"cpu"``.
        pin_memory, share_individual_td, shared_memory, memmap, policy_proof, allow_step_when_done,
            num_threads, num_sub_threads, serial_for_single, non_blocking, mp_start_method,
            use_buffers, metadata_from_workers, consolidate, daemon, shutdown_timeout:
            accepted for compatibility with TorchRL; no effect here.

    Raises:
        TypeError: ``num_workers`` is not an int, ``create_env_fn`` not a callable (or list
            of them), ``create_env_kwargs`` not a dict (or list of them).
        ValueError: ``num_workers < 1``, a list of the wrong length, a device other than
            the CPU, sub-envs whose specs differ or whose batch_size is not empty.

    Examples:
        >>> from numbarl.torch_api import GymEnv
        >>> env = SerialEnv(2, GymEnv, create_env_kwargs={"env_name": "Pendulum-v1"})
        >>> env.batch_size, env.observation_spec["observation"].shape
        (torch.Size([2]), torch.Size([2, 3]))
        >>> env.set_seed(0)
        2841183792
        >>> td = env.rollout(5)
        >>> td.batch_size, td["next", "reward"].shape
        (torch.Size([2, 5]), torch.Size([2, 5, 1]))
        >>> env.close()
    """

    def __init__(self, num_workers: int, create_env_fn: Callable | Sequence[Callable],
                 create_env_kwargs: dict | Sequence[dict] | None = None, *, device=None, **compat):
        name = type(self).__name__
        num_workers, fns, kwargs = _check_args(name, num_workers, create_env_fn, create_env_kwargs)
        device = _check_device(name, device)
        envs = []
        try:
            for fn, kw in zip(fns, kwargs):
                envs.append(fn(**kw))
                check_worker_env(envs[-1])
            layout = make_layout(envs[0], num_workers)
            for i, env in enumerate(envs):
                check_env_layout(env, layout, f"{name}: the env of create_env_fn number {i}")
        except BaseException:
            for env in envs:
                env.close()
            raise
        super().__init__(device=_sub_device(device, envs[0]), batch_size=[num_workers, *layout["sub_batch"]])
        arrays = allocate(layout)
        self._set_specs(envs[0])
        self._set_arrays(layout, arrays)
        set_plain(self, "_subs", SubEnvs(envs, arrays, layout, 0))

    @property
    def envs(self) -> list:
        """The sub-env objects."""
        return list(self._subs.envs)

    def _sub_env_attribute(self, name):
        """Public attributes of the sub-envs: a list of their values, or a :class:`SubEnvMethod` for methods.

        ``env.frame_skip`` gives ``[sub_env.frame_skip for each sub-env]``;
        ``env.get_library_name()``-style methods give a callable whose call
        returns one result per sub-env (TorchRL 0.14.1's SerialEnv does the
        same). Names starting with ``_`` are not forwarded.
        """
        envs = self._subs.envs
        if not envs or not hasattr(envs[0], name):
            raise _missing(self, name, "neither have its sub-envs")
        if callable(getattr(envs[0], name)):
            return SubEnvMethod(self, name)
        return self._query_sub_envs(name, False, (), {})

    def _query_sub_envs(self, name: str, call: bool, args: tuple, kwargs: dict) -> list:
        self._check_open()
        return self._subs.query(name, call, args, kwargs)

    def _run_step(self) -> None:
        self._subs.step()

    def _run_reset(self, every: bool) -> None:
        self._subs.reset(use_mask=not every)

    def set_seed(self, seed: int | None = None, static_seed: bool = False) -> int | None:
        """Seed sub-env 0 with ``seed`` and each next one with the seed the previous returned; return the last."""
        if seed is not None and not isinstance(seed, int):
            raise TypeError(f"seed must be an int or None, got {type(seed).__name__}")
        self._check_open()
        return self._subs.set_seed(seed, static_seed)

    def close(self, *, raise_if_closed: bool = True) -> None:
        """Close every sub-env; closing twice is harmless."""
        if not self.is_closed:
            set_plain(self, "is_closed", True)
            self._subs.close()
        super().close()


_POOLS = weakref.WeakSet()  # the live worker pools of this process
_EXIT_HOOK = []


def _at_exit() -> None:
    """At interpreter exit: end every live pool, then stop the fork server so that this process reaps it."""
    for pool in list(_POOLS):
        try:
            pool.shutdown()
        except Exception:  # noqa: BLE001 - the others must still end, or the fork server below waits forever
            pool.shutdown(graceful=False)
    from multiprocessing import forkserver

    server = getattr(forkserver, "_forkserver", None)
    if getattr(server, "_forkserver_pid", None) is not None and hasattr(server, "_stop"):
        try:
            server._stop()
        except OSError:
            pass


def _start_method(name: str, method):
    if not _EXIT_HOOK:
        atexit.register(_at_exit)
        _EXIT_HOOK.append(True)
    methods = multiprocessing.get_all_start_methods()
    if method is None:
        method = "forkserver" if "forkserver" in methods else "spawn"
    if method not in methods:
        raise ValueError(f"{name} requires mp_start_method to be one of {methods}, got {method!r}")
    ctx = multiprocessing.get_context(method)
    if method == "forkserver":
        from multiprocessing import forkserver

        current = list(getattr(getattr(forkserver, "_forkserver", None), "_preload_modules", ["__main__"]))
        wanted = [m for m in ("numbarl.torch_api.envs._worker", "gymnasium") if m not in current]
        if wanted:
            ctx.set_forkserver_preload(current + wanted)
    return method, ctx


def _payload(name: str, obj, method: str):
    """What a worker receives: the objects themselves under fork, else their pickle (cloudpickle if needed)."""
    if method == "fork":
        return obj
    try:
        return pickle.dumps(obj)
    except (pickle.PicklingError, AttributeError, TypeError) as err:
        first = err
    try:
        import cloudpickle

        return cloudpickle.dumps(obj)
    except Exception as err:  # noqa: BLE001 - ImportError or cloudpickle's own failure: one message for both
        raise TypeError(
            f"{name} with mp_start_method={method!r} requires create_env_fn and create_env_kwargs to be "
            f"picklable ({first}; cloudpickle: {err}); use a module-level function, functools.partial or "
            "EnvCreator, or pass mp_start_method='fork'") from None


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _check_seconds(cls_name: str, arg: str, value, allow_none: bool):
    """A positive number of seconds; ``inf`` (and ``None`` where allowed) means no limit, given back as ``None``."""
    import math

    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        allowed = "a positive number of seconds" + (", inf or None" if allow_none else "")
        raise TypeError(f"{cls_name} requires {arg} to be {allowed}, got {type(value).__name__}")
    value = float(value)
    if math.isnan(value) or value <= 0:
        raise ValueError(f"{cls_name} requires {arg} to be a positive number of seconds"
                         f"{' (inf or None: no limit)' if allow_none else ''}, got {value!r}")
    if math.isinf(value):
        if not allow_none:
            raise ValueError(f"{cls_name} requires {arg} to be a finite number of seconds, got {value!r}")
        return None
    return value


def _check_affinity(cls_name: str, worker_affinity, num_processes: int):
    """One set of CPU ids per worker process (or None), from a list of masks or a callable of the worker index."""
    if worker_affinity is None:
        return None
    if callable(worker_affinity):
        masks = [worker_affinity(w) for w in range(num_processes)]
    elif isinstance(worker_affinity, Sequence) and not isinstance(worker_affinity, (str, bytes)):
        masks = list(worker_affinity)
        if len(masks) != num_processes:
            raise ValueError(f"{cls_name} requires worker_affinity to hold one CPU set per worker process "
                             f"({num_processes}), got {len(masks)}")
    else:
        raise TypeError(f"{cls_name} requires worker_affinity to be a list of CPU sets or a callable, "
                        f"got {type(worker_affinity).__name__}")
    allowed = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set(range(os.cpu_count() or 1))
    out = []
    for w, mask in enumerate(masks):
        if isinstance(mask, (int, np.integer)) and not isinstance(mask, bool):
            mask = [mask]
        if not isinstance(mask, (Sequence, set, frozenset)) or isinstance(mask, (str, bytes)) or not mask:
            raise ValueError(f"{cls_name} requires worker_affinity[{w}] to be a non-empty set of CPU ids, "
                             f"got {mask!r}")
        cpus = set()
        for c in mask:
            if isinstance(c, bool) or not isinstance(c, (int, np.integer)):
                raise TypeError(f"{cls_name} requires worker_affinity[{w}] to hold int CPU ids, got {c!r}")
            if int(c) not in allowed:
                raise ValueError(f"{cls_name}: worker_affinity[{w}] names CPU {int(c)}, which this process "
                                 f"may not use; allowed CPUs: {sorted(allowed)}")
            cpus.add(int(c))
        out.append(sorted(cpus))
    return out


class ParallelEnv(_BatchedEnv):
    """``num_workers`` envs stepped in worker processes, as one env of batch size ``[num_workers]``.

    Observations, rewards, done flags, actions and reset masks live in one
    shared-memory block (``numbarl.core.shared.SharedArrays``): workers write
    their rows, the parent reads zero-copy views. Steps and resets are
    commanded through words in that block (the parent bumps a sequence word
    and wakes each worker with a futex; a worker spins briefly, then sleeps
    on it), so a batch step costs one wake-up per worker and no pipe
    message; seeding, attribute queries and close use the pipes. Sub-envs are spread over ``num_processes`` processes
    (default: one per CPU core, at most ``num_workers``), each stepping its
    contiguous share in turn, which is faster than one process per sub-env
    when there are more sub-envs than cores; the batch and its semantics are
    TorchRL's whatever the split. Workers keep torch to ``num_sub_threads``
    threads.

    Start method: ``"forkserver"`` by default (``"spawn"`` where it does not
    exist): forking a process in which torch has started its thread pools
    can dead-lock the child, and a fork server, started once and preloaded
    with torch and this module, makes each worker cheaply without that risk.
    Under ``"forkserver"`` and ``"spawn"`` ``create_env_fn`` is pickled
    (cloudpickle, a gymnasium dependency, takes lambdas and closures), and a
    script that makes a ``ParallelEnv`` must do so under
    ``if __name__ == "__main__":``, as for any such multiprocessing program.

    Faults: an exception in a worker, a worker that dies (e.g. SIGKILL) or one
    that gives no reply within ``timeout`` seconds (300 by default) makes the call raise
    :class:`EnvWorkerError` (with the worker's traceback where there is one)
    after every worker has been ended and the shared block unlinked. Waits
    watch the process sentinels, so a dead worker is seen at once.

    Args:
        num_workers: the number of sub-envs (the batch size).
        create_env_fn: a callable returning an env, or a list of ``num_workers`` of them.
        create_env_kwargs: a dict, or a list of ``num_workers`` dicts, for ``create_env_fn``.
        device: ``None`` or ``"cpu"``.
        num_sub_threads: torch threads in each worker (default 1).
        serial_for_single: with ``num_workers == 1``, make a ``SerialEnv`` instead.
        mp_start_method: ``"forkserver"``, ``"spawn"`` or ``"fork"`` (default: see above).
        daemon: make the workers daemon processes.
        shutdown_timeout: seconds ``close()`` waits for workers to exit before ending them.
        num_processes: worker processes (numbarl; default ``min(num_workers, cpu count)``).
        timeout: seconds to wait for a reply to one command (numbarl; default 300, ``None`` or
            ``float("inf")``: no limit, liveness only). Startup waits up to ten times as long.
        worker_affinity: CPUs to pin each worker process to (``os.sched_setaffinity``): a list of
            one CPU set per process, or a callable of the process index (as TorchRL's
            ``AsyncEnvPool``); default None (the scheduler places them).
        pin_memory, share_individual_td, shared_memory, memmap, policy_proof, allow_step_when_done,
            num_threads, non_blocking, use_buffers, metadata_from_workers, consolidate, auto_wrap_envs:
            accepted for compatibility with TorchRL; no effect here.

    Raises:
        TypeError: as for ``SerialEnv``; ``create_env_fn`` cannot be pickled for the start method.
        ValueError: as for ``SerialEnv``; an unknown ``mp_start_method``; ``num_processes``
            outside ``1 .. num_workers``; ``timeout`` or ``shutdown_timeout`` not positive.
        EnvWorkerError: a worker failed to build its sub-envs (sub-envs whose specs differ from
            the first one's included), raised, died or timed out.

    Examples:
        >>> import functools
        >>> from numbarl.torch_api import GymEnv
        >>> env = ParallelEnv(2, functools.partial(GymEnv, "CartPole-v1"))
        >>> env.set_seed(0)
        2841183792
        >>> td = env.rollout(50, break_when_any_done=False)
        >>> td.batch_size, td["next", "done"].dtype
        (torch.Size([2, 50]), torch.bool)
        >>> env.close(); env.close()
    """

    def __new__(cls, num_workers=1, *args, serial_for_single: bool = False, **kwargs):
        if serial_for_single and num_workers == 1:
            return SerialEnv(num_workers, *args, **kwargs)
        return super().__new__(cls)

    def __init__(self, num_workers: int, create_env_fn: Callable | Sequence[Callable],
                 create_env_kwargs: dict | Sequence[dict] | None = None, *, device=None,
                 num_sub_threads: int = 1, serial_for_single: bool = False, mp_start_method: str | None = None,
                 daemon: bool = False, shutdown_timeout: float = 10.0, num_processes: int | None = None,
                 timeout: float | None = 300.0, worker_affinity=None, **compat):
        from ...core.shared import SharedArrays

        name = type(self).__name__
        num_workers, fns, kwargs = _check_args(name, num_workers, create_env_fn, create_env_kwargs)
        device = _check_device(name, device)
        if num_processes is None:
            num_processes = min(num_workers, _cpu_count())
        if (not isinstance(num_processes, int) or isinstance(num_processes, bool)
                or not 1 <= num_processes <= num_workers):
            raise ValueError(f"{name} requires num_processes in 1..num_workers={num_workers}, got {num_processes!r}")
        timeout = _check_seconds(name, "timeout", timeout, allow_none=True)
        shutdown_timeout = _check_seconds(name, "shutdown_timeout", shutdown_timeout, allow_none=False)
        affinity = _check_affinity(name, worker_affinity, num_processes)
        if not isinstance(num_sub_threads, int) or num_sub_threads < 1:
            raise ValueError(f"{name} requires num_sub_threads >= 1, got {num_sub_threads!r}")
        method, ctx = _start_method(name, mp_start_method)

        meta = getattr(fns[0], "_template_env", None)
        made = meta is None
        if made:
            meta = fns[0](**kwargs[0])
        try:
            check_worker_env(meta)
            layout = make_layout(meta, num_workers)
            check_env_layout(meta, layout, f"{name}: the env of create_env_fn")
            super().__init__(device=_sub_device(device, meta), batch_size=[num_workers, *layout["sub_batch"]])
            bounds = np.linspace(0, num_workers, num_processes + 1).round().astype(int)
            slices = [(int(lo), int(hi)) for lo, hi in zip(bounds[:-1], bounds[1:])]
            payloads = [_payload(name, (fns[lo:hi], kwargs[lo:hi]), method) for lo, hi in slices]
            self._set_specs(meta)
            sub_attrs = frozenset(n for n in dir(meta) if not n.startswith("_"))
        finally:
            if made:
                meta.close()
        shared = SharedArrays.create({**layout["shm"], **control_layout(num_processes)})
        spin = 50e-6 if num_processes < _cpu_count() else 0.0  # spinning only pays with a core to spare
        try:
            pool = WorkerPool(ctx, slices, payloads, shared, layout, daemon=daemon, timeout=timeout,
                              startup_timeout=None if timeout is None else 10 * timeout,
                              shutdown_timeout=shutdown_timeout, threads=num_sub_threads, flags=True,
                              affinity=affinity, spin=spin, name=name)
        except BaseException:
            shared.close()
            raise
        self._set_arrays(layout, {k: shared[k] for k in layout["shm"]})
        d = self.__dict__
        d["_sub_attrs"] = sub_attrs
        d["_pool"] = pool
        d["_starts"] = np.array([lo for lo, _ in slices], dtype=np.intp)
        d["_every"] = list(range(num_processes))
        d["_finalizer"] = weakref.finalize(self, pool.shutdown)
        _POOLS.add(pool)
        d["mp_start_method"] = method

    def _sub_env_attribute(self, name):
        """Public attributes of the sub-envs, as a :class:`SubEnvMethod` whose call runs in the workers.

        As in TorchRL 0.14.1, every such attribute is reached by a call:
        ``penv.frame_skip()`` returns ``[frame_skip of each sub-env]`` and
        ``penv.some_method(x)`` calls it in every sub-env and returns the
        results (arguments and results travel pickled). Unlike TorchRL, a
        name the sub-envs lack raises AttributeError here at once, and an
        error inside the call is raised in the parent with the worker's
        traceback while the workers stay up. Names starting with ``_`` are
        not forwarded.
        """
        if name not in self.__dict__["_sub_attrs"]:
            raise _missing(self, name, "neither have its sub-envs")
        return SubEnvMethod(self, name)

    def _query_sub_envs(self, name: str, call: bool, args: tuple, kwargs: dict) -> list:
        self._check_open()
        try:
            request = b"a" + pickle.dumps((name, call, args, kwargs))
        except Exception as err:  # noqa: BLE001 - re-raised with the argument named
            raise TypeError(f"{type(self).__name__}.{name}(): the arguments cannot be sent to the workers "
                            f"(they must pickle): {type(err).__name__}: {err}") from None
        replies = self._pool.command(self._every, request)
        values = []
        for w in self._every:
            reply = replies[w]
            if reply[:1] == b"x":
                kind, text, worker_tb = pickle.loads(reply[1:])
                lo, hi = self._pool.slices[w]
                raise _QUERY_ERRORS.get(kind, RuntimeError)(
                    f"{type(self).__name__}.{name}() in worker {w} (sub-envs {lo}..{hi - 1}): {kind}: {text}\n\n"
                    f"worker traceback:\n{worker_tb}")
            values.extend(pickle.loads(reply))
        return values

    @property
    def num_processes(self) -> int:
        """The number of worker processes."""
        return len(self._pool.procs)

    @property
    def worker_pids(self) -> list:
        """The process ids of the workers."""
        return self._pool.pids

    def _run_step(self) -> None:
        self._pool.run(self._every, OP_STEP)

    def _run_reset(self, every: bool) -> None:
        if every:
            self._pool.run(self._every, OP_RESET_ALL)
            return
        flagged = self._mask.reshape(self.num_workers, -1).any(1)
        workers = np.flatnonzero(np.logical_or.reduceat(flagged, self._starts)).tolist()
        self._pool.run(workers, OP_RESET)

    def _check_open(self) -> None:
        if self.is_closed or self._pool.closed:
            set_plain(self, "is_closed", True)
            raise RuntimeError(f"{type(self).__name__} is closed (by close() or after a worker fault); make a new one")

    def set_seed(self, seed: int | None = None, static_seed: bool = False) -> int | None:
        """Seed sub-env 0 with ``seed`` and each next one with the seed the previous returned; return the last."""
        if seed is not None and not isinstance(seed, int):
            raise TypeError(f"seed must be an int or None, got {type(seed).__name__}")
        self._check_open()
        for w in self._every:
            seed = pickle.loads(self._pool.command([w], b"d" + pickle.dumps((seed, static_seed)))[w])
        return seed

    def close(self, *, raise_if_closed: bool = True) -> None:
        """Stop the workers and unlink the shared block; closing twice is harmless."""
        set_plain(self, "is_closed", True)
        finalizer = self.__dict__.get("_finalizer")
        if finalizer is not None:
            finalizer()
        self._drop_arrays()  # the block is unlinked; holding views would keep its mapping alive
        super().close()
