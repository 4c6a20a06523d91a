"""``Collector``: TorchRL 0.14.1's collector API for numbarl envs, stepping on the array path."""
from __future__ import annotations

import math
import warnings
from collections import OrderedDict
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
from tensordict import TensorDict, TensorDictBase

from ..envs.common import EnvBase
from ..envs.utils import ExplorationType, set_exploration_type
from . import _checks
from ._policy import resolve_policy
from ._runner import make_runner
from ._trajs import TrajPool, assign_traj_ids, split_trajectories

__all__ = ["Collector"]

_BACKENDS = ("direct", "process", "ray")


def make_env(owner: str, create_env_fn, create_env_kwargs) -> tuple[EnvBase, bool]:
    """The env of ``create_env_fn`` (an env, or a callable making one) and whether the collector made it."""
    if isinstance(create_env_fn, EnvBase):
        if create_env_kwargs:
            raise ValueError(f"{owner}: create_env_kwargs is only used with a callable create_env_fn, "
                             f"got an env and {create_env_kwargs!r}")
        return create_env_fn, False
    if not callable(create_env_fn):
        raise TypeError(f"{owner} requires create_env_fn to be a numbarl env or a callable returning one, "
                        f"got {type(create_env_fn).__name__}")
    if create_env_kwargs is not None and not isinstance(create_env_kwargs, dict):
        raise TypeError(f"{owner} requires create_env_kwargs to be a dict or None, got "
                        f"{type(create_env_kwargs).__name__}")
    try:
        env = create_env_fn(**(create_env_kwargs or {}))
    except Exception as err:
        raise RuntimeError(f"{owner}: create_env_fn {create_env_fn!r} raised {type(err).__name__}: {err}") from err
    if not isinstance(env, EnvBase):
        if hasattr(env, "close"):
            env.close()
        raise TypeError(f"{owner} requires create_env_fn to return a numbarl env (numbarl.torch_api.EnvBase), "
                        f"got {type(env).__module__}.{type(env).__name__}")
    return env, True


class Collector:
    """Collect batches of ``frames_per_batch`` frames from an env with a policy, as TorchRL 0.14.1's ``Collector``.

    The env steps on numbarl's array path: the policy is called on one root
    TensorDict allocated once and reused (a batched env gives it one batched
    TensorDict per step), and each batch is written into a preallocated
    TensorDict of shape ``[*env.batch_size, frames_per_batch // env.numel()]``
    with the keys TorchRL's collector yields, ``("collector", "traj_ids")``
    included. Envs without the array path are stepped through the TensorDict
    API with the same results.

    ``Collector(...)`` is TorchRL's generic constructor: ``backend="direct"``
    (the default) collects in this process; ``backend="process"`` (or
    ``num_collectors=n``) returns a :class:`MultiAsyncCollector` (or, with
    ``sync=True``, a :class:`MultiSyncCollector`) over worker processes;
    ``backend="ray"`` runs ``num_collectors`` Ray actors (see ``RayCollector``;
    ``backend_options`` takes ``ray_init_config`` and ``remote_configs``).

    Differences from TorchRL 0.14.1:

    - CPU only for now: ``device``, ``storing_device``, ``env_device`` and
      ``policy_device`` accept ``None`` or ``"cpu"``.
    - The policy given is used as it is (not copied), so its weights are
      always current; ``update_policy_weights_(weights)`` copies weights in.
    - ``interruptor``, ``compile_policy``, ``cudagraph_policy``,
      ``weight_updater``, ``weight_sync_schemes``, ``weight_recv_schemes``,
      ``track_policy_version``, ``trajs_per_write``, ``compact_obs`` and
      ``auto_register_policy_transforms`` are not implemented: setting them
      raises NotImplementedError. ``use_buffers``, ``trust_policy`` and
      ``no_cuda_sync`` are accepted and do not change the data.
    - ``create_env_fn`` must make a numbarl env (a TorchRL env raises TypeError).

    Args:
        create_env_fn: a numbarl env, a callable returning one (``EnvCreator``
            included), or a list holding one of these.
        policy: a ``TensorDictModule``, a callable on a TensorDict, a plain
            ``nn.Module`` (mapped from the observation keys to the action keys),
            or ``None`` for random actions from the action spec.
        policy_factory: a callable returning the policy (exclusive with ``policy``).
        frames_per_batch: frames per batch (rounded up to a multiple of the env's batch numel, warned).
        total_frames: frames to collect; ``-1`` collects forever. A total that is
            not a multiple of ``frames_per_batch`` collects whole batches (warned, as TorchRL).
        max_frames_per_traj: append a ``StepCounter(max_steps=...)`` (trajectories truncated there).
        init_random_frames: the first batches until this many frames use random actions.
        reset_at_each_iter: reset every env (fresh trajectory ids) before each batch.
        reset_when_done: must stay True (TorchRL raises on False too).
        postproc: a callable applied to each batch (after ``split_trajs``).
        split_trajs: yield ``[num_trajs, max_len]`` zero-padded trajectories with ``("collector", "mask")``.
        track_traj_ids: write ``("collector", "traj_ids")``.
        exploration_type: the ``tensordict.nn`` exploration type set while the policy runs.
        return_same_td: yield the same TensorDict each batch, overwritten by the next one.
        device, storing_device, env_device, policy_device: ``None`` or ``"cpu"``.
        create_env_kwargs: keyword arguments of ``create_env_fn``.
        set_truncated: mark the last step of each batch as truncated (and done).
        replay_buffer: any object with ``extend`` (and ``add``); batches go there and the iterator yields ``None``.
        extend_buffer: ``True``: one ``extend`` per batch; ``False``: one ``add`` per step, as TorchRL.
        trajs_per_batch: yield batches of this many complete trajectories (``traj_format`` ``"padded"``
            by default, or ``"cat"``).
        pre_collect_hook, post_collect_hook: called before each batch / on each batch.
        worker_idx: stored as ``worker_idx``.

    Raises:
        TypeError: a wrong type (policy, create_env_fn, frames_per_batch, ...), or an unknown keyword.
        ValueError: ``frames_per_batch <= 0``, ``reset_when_done=False``, ``split_trajs`` without
            ``track_traj_ids``, an unknown backend, a ``max_frames_per_traj`` with a step_count already there.
        KeyError: the policy's output lacks the env's action key.
        RuntimeError: ``create_env_fn`` raised (the error is chained).
        NotImplementedError: an argument numbarl does not implement is set (see above).

    Examples:
        >>> import torch
        >>> from tensordict.nn import TensorDictModule
        >>> from numbarl.torch_api import GymEnv
        >>> policy = TensorDictModule(torch.nn.Linear(3, 1), ["observation"], ["action"])
        >>> collector = Collector(lambda: GymEnv("Pendulum-v1"), policy, frames_per_batch=50, total_frames=100)
        >>> for batch in collector:
        ...     print(batch.batch_size, batch["collector", "traj_ids"].unique().tolist())
        torch.Size([50]) [0]
        torch.Size([50]) [0]
        >>> collector.shutdown()
    """

    def __new__(cls, *args, backend=None, num_collectors=None, sync=None, backend_options=None, **kwargs):
        if cls is not Collector:
            return super().__new__(cls)
        if num_collectors is not None and (isinstance(num_collectors, bool) or not isinstance(num_collectors, int)
                                           or num_collectors < 1):
            raise ValueError(f"Collector requires num_collectors to be a positive int, got {num_collectors!r}")
        if backend is None:
            backend = "process" if num_collectors is not None else "direct"
        if backend not in _BACKENDS:
            raise ValueError(f"Collector does not support backend={backend!r}; expected one of {list(_BACKENDS)}")
        if backend == "ray":
            from ._ray import RayCollector

            options = dict(backend_options or {})
            dup = options.keys() & kwargs.keys()
            if dup:
                raise ValueError(f"Collector: backend_options duplicate top-level arguments {sorted(dup)}")
            kwargs.update(options)
            return RayCollector(*args, num_collectors=num_collectors, sync=bool(sync), **kwargs)
        if backend == "direct":
            if num_collectors not in (None, 1):
                raise ValueError(f"Collector(backend='direct') supports one collector, got num_collectors={num_collectors}")
            if sync is not None:
                raise ValueError("Collector: sync is only valid for backend='process'")
            if backend_options:
                raise ValueError("Collector: backend_options are only valid for backend='process'")
            return super().__new__(cls)
        from .multi import MultiAsyncCollector, MultiSyncCollector

        if sync is not None and not isinstance(sync, bool):
            raise TypeError(f"Collector requires sync to be a bool or None, got {sync!r}")
        options = dict(backend_options or {})
        dup = options.keys() & kwargs.keys()
        if dup:
            raise ValueError(f"Collector: backend_options duplicate top-level arguments {sorted(dup)}")
        kwargs.update(options)
        create_env_fn = args[0] if args else kwargs.pop("create_env_fn")
        args = args[1:]
        if isinstance(create_env_fn, Sequence) and not isinstance(create_env_fn, (str, bytes)):
            create_env_fn = list(create_env_fn)
            if num_collectors is not None and num_collectors != len(create_env_fn):
                raise ValueError(f"Collector: num_collectors={num_collectors} does not match the "
                                 f"{len(create_env_fn)} env constructors of create_env_fn")
        else:
            create_env_fn = [create_env_fn] * (num_collectors or 1)
        multi = MultiSyncCollector if sync else MultiAsyncCollector
        return multi(create_env_fn, *args, **kwargs)

    def __init__(self, create_env_fn, policy=None, *, policy_factory=None, backend=None, backend_options=None,
                 num_collectors=None, sync=None, frames_per_batch: int, total_frames: int = -1, device=None,
                 storing_device=None, policy_device=None, env_device=None, create_env_kwargs=None,
                 max_frames_per_traj: int | None = None, init_random_frames: int | None = None,
                 reset_at_each_iter: bool = False, postproc: Callable | None = None, split_trajs: bool | None = None,
                 track_traj_ids: bool = True, exploration_type=ExplorationType.RANDOM, return_same_td: bool = False,
                 reset_when_done: bool = True, set_truncated: bool = False, replay_buffer=None,
                 extend_buffer: bool = True, worker_idx: int | None = None, trajs_per_batch: int | None = None,
                 traj_format: str | None = None, pre_collect_hook=None, post_collect_hook=None,
                 traj_pool: TrajPool | None = None, **kwargs):
        owner = type(self).__name__
        self.closed = True
        _checks.reject_unsupported(owner, kwargs)
        frames_per_batch = _checks.positive_int(owner, "frames_per_batch", frames_per_batch)
        for name, value in (("device", device), ("storing_device", storing_device),
                            ("policy_device", policy_device), ("env_device", env_device)):
            _checks.cpu_device(owner, name, value)
        if not reset_when_done:
            raise ValueError(f"{owner}: reset_when_done=False is not supported (deprecated in TorchRL, which raises)")
        if split_trajs and not track_traj_ids:
            raise ValueError(f"{owner}: split_trajs=True requires track_traj_ids=True")
        if max_frames_per_traj is not None and (isinstance(max_frames_per_traj, bool)
                                                or not isinstance(max_frames_per_traj, int)):
            raise TypeError(f"{owner} requires max_frames_per_traj to be an int or None, got {max_frames_per_traj!r}")
        if init_random_frames is not None and (isinstance(init_random_frames, bool)
                                               or not isinstance(init_random_frames, int)):
            raise TypeError(f"{owner} requires init_random_frames to be an int or None, got {init_random_frames!r}")
        if postproc is not None and not callable(postproc):
            raise TypeError(f"{owner} requires postproc to be callable or None, got {type(postproc).__name__}")
        if replay_buffer is not None and not hasattr(replay_buffer, "extend"):
            raise TypeError(f"{owner} requires replay_buffer to have an extend method, got "
                            f"{type(replay_buffer).__name__}")
        if replay_buffer is not None and return_same_td:
            raise TypeError(f"{owner}: return_same_td must be False when a replay_buffer is passed")
        if trajs_per_batch is not None:
            _checks.positive_int(owner, "trajs_per_batch", trajs_per_batch)
        if traj_format not in (None, "padded", "cat"):
            raise ValueError(f"{owner} requires traj_format in (None, 'padded', 'cat'), got {traj_format!r}")
        if traj_format is not None and trajs_per_batch is None:
            raise ValueError(f"{owner}: traj_format={traj_format!r} needs trajs_per_batch")
        if isinstance(create_env_fn, Sequence) and not isinstance(create_env_fn, (str, bytes)):
            if len(create_env_fn) != 1:
                raise ValueError(f"{owner} (backend='direct') requires exactly one env constructor, "
                                 f"got {len(create_env_fn)}")
            create_env_fn = create_env_fn[0]

        env, made = make_env(owner, create_env_fn, create_env_kwargs)
        try:
            if max_frames_per_traj is not None and max_frames_per_traj > 0:
                for key in env.output_spec.keys(True, True):
                    if "step_count" in (key if isinstance(key, tuple) else (key,)):
                        raise ValueError(f"{owner}: max_frames_per_traj={max_frames_per_traj} would add a "
                                         "StepCounter but the env already has a 'step_count' key")
                from ..transforms import StepCounter, TransformedEnv

                env = TransformedEnv(env, StepCounter(max_steps=max_frames_per_traj))
            self.env = env
            self.policy = resolve_policy(policy, policy_factory, env, owner)
            self.n_env = max(1, int(np.prod(tuple(env.batch_size))))
            if frames_per_batch % self.n_env:
                warnings.warn(f"{owner}: frames_per_batch ({frames_per_batch}) is not divisible by the number of "
                              f"batched envs ({self.n_env}); each batch holds "
                              f"{-(-frames_per_batch // self.n_env) * self.n_env} frames", UserWarning, stacklevel=2)
            self.frames_per_batch = -(-frames_per_batch // self.n_env)
            self.requested_frames_per_batch = self.frames_per_batch * self.n_env
            self.total_frames = _checks.total_frames_of(owner, total_frames, frames_per_batch)
            self.init_random_frames = int(init_random_frames) if init_random_frames not in (None, -1) else 0
            self.max_frames_per_traj = max_frames_per_traj or 0
            self.reset_at_each_iter = bool(reset_at_each_iter)
            self.reset_when_done = True
            self.postproc = postproc
            self.split_trajs = bool(split_trajs)
            self.track_traj_ids = bool(track_traj_ids)
            self.exploration_type = exploration_type if exploration_type else ExplorationType.RANDOM
            self.return_same_td = bool(return_same_td)
            self.set_truncated = bool(set_truncated)
            self.replay_buffer = replay_buffer
            self.extend_buffer = bool(extend_buffer)
            self.trajs_per_batch = trajs_per_batch
            self.traj_format = traj_format or "padded"
            self.pre_collect_hook = pre_collect_hook
            self.post_collect_hook = post_collect_hook
            self.worker_idx = worker_idx
            self.storing_device = self.env_device = self.policy_device = None
            if set_truncated and not any((k if isinstance(k, str) else k[-1]) == "truncated" for k in env.done_keys):
                raise RuntimeError(f"{owner}: set_truncated=True but the env has no truncated key")
            self._runner = make_runner(env, self.policy)
            self._traj_pool = traj_pool if traj_pool is not None else TrajPool()
            self._runner.reset()
            self._traj_current = self._traj_pool.take(self.n_env)
            self._check_policy_output(owner)
        except BaseException:
            if made:
                env.close()
            raise
        self._made_env = made
        self._frames = 0
        self._iter = -1
        self._iterator = None
        self._same_td = None
        self._held = {}  # trajectories in flight / done but not yielded (trajs_per_batch)
        self.closed = False

    # ------------------------------------------------------------- policy
    def _check_policy_output(self, owner: str) -> None:
        if self.policy is None:
            return
        runner = self._runner
        probe = (runner.td if runner.td is not None else self.env.reset()).clone()
        with torch.no_grad(), set_exploration_type(self.exploration_type):
            result = self.policy(probe)
        result = probe if result is None else result
        if not isinstance(result, TensorDictBase):
            raise TypeError(f"{owner}: the policy must return a TensorDict (or None after writing in place), "
                            f"got {type(result).__name__}")
        keys = set(result.keys(True, True))
        if self.env.action_key not in keys:
            raise KeyError(f"{owner}: the output of policy lacks the env's action key {self.env.action_key!r}; "
                           f"it has {sorted(map(str, keys))}")
        if hasattr(runner, "learn_policy_outputs"):
            runner.learn_policy_outputs(result)

    # ------------------------------------------------------------ batches
    def _allocate(self):
        if self.return_same_td:
            if self._same_td is None:
                self._same_td = self._runner.allocate(self.frames_per_batch)
            return self._same_td
        return self._runner.allocate(self.frames_per_batch)

    @torch.no_grad()
    def rollout(self, random: bool | None = None) -> TensorDictBase:
        """Collect one batch (without post-processing) and return it.

        ``random`` forces random actions (``True``) or the policy (``False``);
        by default random actions are used while fewer than
        ``init_random_frames`` frames have been collected.
        """
        if self.closed:
            raise RuntimeError(f"{type(self).__name__} is shut down; make a new one")
        if self.pre_collect_hook is not None:
            self.pre_collect_hook()
        if self.reset_at_each_iter:
            self._runner.reset()
            self._traj_current = self._traj_pool.take(self.n_env)
        if random is None:
            random = self._frames < self.init_random_frames
        out = self._allocate()
        with set_exploration_type(self.exploration_type):
            if out is None:
                out = self._runner.run(None, self.frames_per_batch, random_policy=random)
            else:
                self._runner.run(out, self.frames_per_batch, random_policy=random, reset_at_end=True)
        if self.track_traj_ids:
            ends = None
            for key in self.env.done_keys:
                flag = out.get(("next",) + (key if isinstance(key, tuple) else (key,)))
                flag = flag.reshape(self.n_env, self.frames_per_batch, -1).any(-1)
                ends = flag if ends is None else ends | flag
            ids, self._traj_current = assign_traj_ids(self._traj_current, ends.numpy(), self._traj_pool)
            out.set(("collector", "traj_ids"), torch.from_numpy(ids).reshape(out.batch_size))
        if self.set_truncated:
            for key in self.env.done_keys:
                name = key if isinstance(key, str) else key[-1]
                if name != "truncated":
                    continue
                prefix = () if isinstance(key, str) else key[:-1]
                last = (Ellipsis, -1, slice(None))
                out.get(("next",) + prefix + ("truncated",))[last] = True
                out.get(("next",) + prefix + ("done",))[last] = True
        return out

    def _postproc(self, out: TensorDictBase) -> TensorDictBase:
        if self.split_trajs:
            out = split_trajectories(out, prefix="collector")
        if self.postproc is not None:
            out = self.postproc(out)
        return out

    def iterator(self) -> Iterator[TensorDictBase]:
        """Yield batches (``None`` when they go to ``replay_buffer``) until ``total_frames`` are collected."""
        while self._frames < self.total_frames:
            self._iter += 1
            out = self.rollout()
            self._frames += out.numel()
            if self.trajs_per_batch is not None:
                yield from self._trajectories(out)
            else:
                out = self._postproc(out)
                if self.post_collect_hook is not None:
                    self.post_collect_hook(out)
                if self.replay_buffer is not None:
                    self._to_buffer(out)
                    yield None
                else:
                    yield out
            if self._frames >= self.total_frames:
                self.env.close()

    __iter__ = iterator

    def _to_buffer(self, out: TensorDictBase) -> None:
        if self.extend_buffer:
            self.replay_buffer.extend(out)
        else:
            for t in range(out.shape[-1]):
                self.replay_buffer.add(out[..., t])

    def _trajectories(self, out: TensorDictBase):
        """Complete trajectories of the batches so far, ``trajs_per_batch`` at a time."""
        from ._trajs import complete_trajectories

        done, self._held = complete_trajectories(out, self._held, self.env.done_keys)
        self._ready = getattr(self, "_ready", []) + done
        while len(self._ready) >= self.trajs_per_batch:
            group, self._ready = self._ready[:self.trajs_per_batch], self._ready[self.trajs_per_batch:]
            if self.replay_buffer is not None:
                for traj in group:
                    self.replay_buffer.extend(traj)
                yield None
                continue
            if self.traj_format == "cat":
                batch = torch.cat(group, 0)
            else:
                longest = max(t.shape[0] for t in group)
                rows = []
                for traj in group:
                    traj = traj.copy()
                    traj.set(("collector", "mask"), torch.ones(traj.shape, dtype=torch.bool))
                    if traj.shape[0] < longest:
                        pad = traj.new_zeros(longest - traj.shape[0])  # zero-filled, same keys
                        traj = torch.cat([traj, pad], 0)
                    rows.append(traj)
                batch = torch.stack(rows, 0)
            if self.postproc is not None:
                batch = self.postproc(batch)
            if self.post_collect_hook is not None:
                self.post_collect_hook(batch)
            yield batch

    def next(self):
        """The next batch of the collector's own iterator, or ``None`` when it is exhausted."""
        if self._iterator is None:
            self._iterator = iter(self)
        try:
            return next(self._iterator)
        except StopIteration:
            return None

    def __len__(self) -> int:
        if self.total_frames == float("inf"):
            raise RuntimeError("a collector with total_frames=-1 has no length")
        return math.ceil(self.total_frames / self.requested_frames_per_batch)

    # --------------------------------------------------------------- state
    def set_seed(self, seed: int, static_seed: bool = False) -> int:
        """Seed the env (as ``env.set_seed``); return the seed for the next env."""
        return self.env.set_seed(seed, static_seed=static_seed)

    def reset(self, index=None, **kwargs) -> None:
        """Reset every env (or those at ``index`` of a batched env); they start new trajectories."""
        runner = self._runner
        if index is None:
            runner.reset()
            self._traj_current = self._traj_pool.take(self.n_env)
            self._held = {}
            self._ready = []
            return
        if not len(self.env.batch_size):
            raise RuntimeError("resetting an unbatched env with an index is not permitted")
        mask = np.zeros(tuple(self.env.batch_size), dtype=bool)
        mask[index] = True
        if not hasattr(runner, "_apply_reset"):
            raise NotImplementedError("partial resets need an env with the array path")
        runner._apply_reset(mask, self.env._np_reset(mask))
        flat = mask.reshape(-1)
        self._traj_current = self._traj_current.copy()
        self._traj_current[flat] = self._traj_pool.take(int(flat.sum()))

    def state_dict(self) -> OrderedDict:
        """The env's and the policy's state dicts, the frame count and the trajectory-id pool."""
        state = OrderedDict()
        state["env_state_dict"] = self.env.state_dict()
        if isinstance(self.policy, torch.nn.Module):
            state["policy_state_dict"] = self.policy.state_dict()
        state["frames"] = self._frames
        state["iter"] = self._iter
        state["traj_pool"] = self._traj_pool.state_dict()
        return state

    def load_state_dict(self, state_dict: dict, **kwargs) -> None:
        """Restore what :meth:`state_dict` saved."""
        if "env_state_dict" in state_dict:
            self.env.load_state_dict(state_dict["env_state_dict"], **kwargs)
        if "policy_state_dict" in state_dict and isinstance(self.policy, torch.nn.Module):
            self.policy.load_state_dict(state_dict["policy_state_dict"], **kwargs)
        self._frames = int(state_dict.get("frames", self._frames))
        self._iter = int(state_dict.get("iter", self._iter))
        if "traj_pool" in state_dict:
            self._traj_pool.load_state_dict(state_dict["traj_pool"])

    def update_policy_weights_(self, policy_or_weights=None, *, worker_ids=None, **kwargs) -> None:
        """Copy ``policy_or_weights`` (a module, TensorDict or dict of weights) into the policy.

        With no argument there is nothing to do: this collector runs the
        policy object it was given, whose weights are always current.
        """
        if policy_or_weights is None or self.policy is None:
            return
        if not isinstance(self.policy, torch.nn.Module):
            raise TypeError("update_policy_weights_ needs a policy that is a torch.nn.Module")
        if isinstance(policy_or_weights, torch.nn.Module):
            weights = TensorDict.from_module(policy_or_weights)
        elif isinstance(policy_or_weights, TensorDictBase):
            weights = policy_or_weights
        elif isinstance(policy_or_weights, dict):
            weights = TensorDict(policy_or_weights).unflatten_keys(".")
        else:
            raise TypeError(f"update_policy_weights_ takes a module, a TensorDict or a dict of weights, got "
                            f"{type(policy_or_weights).__name__}")
        TensorDict.from_module(self.policy).data.update_(weights.data)

    def shutdown(self, timeout: float | None = None, close_env: bool = True, raise_on_error: bool = True) -> None:
        """Stop collecting and close the env (``close_env``). Calling it again does nothing."""
        if self.closed:
            return
        self.closed = True
        if close_env and not self.env.is_closed:
            self.env.close()

    def __del__(self):
        try:
            if not self.closed and self._made_env:
                self.shutdown()
        except Exception:  # noqa: BLE001 - interpreter teardown
            pass

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(env={type(self.env).__name__}, frames_per_batch="
                f"{self.requested_frames_per_batch}, total_frames={self.total_frames}, "
                f"exploration={self.exploration_type})")
