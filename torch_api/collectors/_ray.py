"""``RayCollector``: TorchRL 0.14.1's Ray collector, each Ray actor running a numbarl ``Collector``.

Ray is imported only when a ``RayCollector`` is built; install it with
``pip install "numbarl[ray]"``.
"""
from __future__ import annotations

import time
from collections import OrderedDict
from typing import Iterator, Sequence

import torch
from tensordict import TensorDict, TensorDictBase

from ..envs.utils import ExplorationType
from . import _checks
from ._trajs import split_trajectories

__all__ = ["RayCollector"]

DEFAULT_REMOTE_CONFIG = {"num_cpus": 1}
_INSTALL = 'RayCollector needs ray: pip install "numbarl[ray]"'


def _import_ray():
    try:
        import ray
    except ImportError as err:
        raise ImportError(_INSTALL) from err
    return ray


class _RemoteCollector:
    """Body of one Ray actor: a direct numbarl ``Collector`` that hands out one batch per call."""

    def __init__(self, create_env_fn, policy, kwargs):
        from .collector import Collector

        self.collector = Collector(create_env_fn, policy, **kwargs)
        self.iterator = self.collector.iterator()

    def ready(self) -> bool:
        return True

    def next(self):
        return next(self.iterator)

    def update_weights(self, weights) -> None:
        self.collector.update_policy_weights_(weights)

    def set_seed(self, seed: int, static_seed: bool = False) -> int:
        return self.collector.set_seed(seed, static_seed)

    def state_dict(self):
        return self.collector.state_dict()

    def load_state_dict(self, state_dict) -> None:
        self.collector.load_state_dict(state_dict)

    def shutdown(self) -> None:
        self.collector.shutdown()


class RayCollector:
    """Collect with ``num_collectors`` Ray actors, each running a numbarl ``Collector``.

    ``sync=True``: every iteration asks each actor for ``frames_per_batch // num_collectors``
    frames and stacks the replies (TorchRL's layout: ``[num_collectors, frames]``).
    ``sync=False`` (default): each actor collects ``frames_per_batch`` frames and the first
    ready batch is yielded. ``update_policy_weights_()`` puts the weights in Ray's object
    store once and every actor loads them. An actor that fails raises RuntimeError with its
    error text. ``shutdown()`` kills every actor, and shuts Ray down only if this collector
    started it (or ``shutdown_ray=True``).

    Not implemented (NotImplementedError when set): ``collector_class``, ``replay_buffer``,
    ``weight_updater``, ``weight_sync_schemes``, ``num_workers_per_collector > 1``,
    non-CPU devices.

    Example:
        >>> import torch
        >>> from tensordict.nn import TensorDictModule
        >>> from numbarl.torch_api import GymEnv
        >>> from numbarl.torch_api.collectors import RayCollector
        >>> from functools import partial
        >>> policy = TensorDictModule(torch.nn.Linear(3, 1), ["observation"], ["action"])
        >>> collector = RayCollector(partial(GymEnv, "Pendulum-v1"), policy, frames_per_batch=40,
        ...                          total_frames=80, num_collectors=2, sync=True,
        ...                          ray_init_config={"num_cpus": 2, "include_dashboard": False})  # doctest: +SKIP
        >>> [batch.batch_size for batch in collector]  # doctest: +SKIP
        [torch.Size([2, 20]), torch.Size([2, 20])]
        >>> collector.shutdown()  # doctest: +SKIP
    """

    def __init__(self, create_env_fn, policy=None, *, policy_factory=None, frames_per_batch: int,
                 total_frames: int = -1, device=None, storing_device=None, env_device=None, policy_device=None,
                 max_frames_per_traj=-1, init_random_frames=-1, reset_at_each_iter: bool = False, postproc=None,
                 split_trajs: bool = False, exploration_type=ExplorationType.RANDOM, collector_class=None,
                 collector_kwargs=None, num_workers_per_collector: int = 1, sync: bool = False,
                 ray_init_config: dict | None = None, remote_configs=None, num_collectors: int | None = None,
                 update_after_each_batch: bool = False, max_weight_update_interval: int = -1,
                 replay_buffer=None, use_env_creator: bool = False, trajs_per_batch: int | None = None,
                 pre_collect_hook=None, post_collect_hook=None, **kwargs):
        owner = "RayCollector"
        self._actors = []
        self._started_ray = False
        self.closed = True
        _checks.reject_unsupported(owner, dict(kwargs, collector_class=collector_class))
        if replay_buffer is not None:
            raise NotImplementedError(f"{owner} does not support replay_buffer (TorchRL 0.14.1 argument not "
                                      "implemented by numbarl); leave it at None")
        if num_workers_per_collector != 1:
            raise NotImplementedError(f"{owner} supports num_workers_per_collector=1 only, got "
                                      f"{num_workers_per_collector!r}")
        for name, value in (("device", device), ("storing_device", storing_device),
                            ("policy_device", policy_device), ("env_device", env_device)):
            _checks.cpu_device(owner, name, value)
        if not isinstance(sync, bool):
            raise TypeError(f"{owner} requires sync to be a bool, got {sync!r}")
        frames_per_batch = _checks.positive_int(owner, "frames_per_batch", frames_per_batch)
        if isinstance(create_env_fn, Sequence) and not isinstance(create_env_fn, (str, bytes)):
            env_fns = list(create_env_fn)
            if num_collectors is not None and num_collectors != len(env_fns):
                raise ValueError(f"{owner}: num_collectors={num_collectors} does not match the "
                                 f"{len(env_fns)} env constructors of create_env_fn")
        else:
            n = 1 if num_collectors is None else _checks.positive_int(owner, "num_collectors", num_collectors)
            env_fns = [create_env_fn] * n
        n = len(env_fns)
        if sync and frames_per_batch % n:
            raise RuntimeError(f"{owner}: cannot dispatch frames_per_batch={frames_per_batch} across {n} "
                               "collectors; use a multiple of num_collectors")
        remote_configs = DEFAULT_REMOTE_CONFIG if remote_configs is None else remote_configs
        if isinstance(remote_configs, dict):
            remote_configs = [remote_configs] * n
        elif not isinstance(remote_configs, (list, tuple)) or len(remote_configs) != n:
            raise ValueError(f"{owner} requires remote_configs to be a dict or a list of {n} dicts, "
                             f"got {remote_configs!r}")
        if collector_kwargs is None or isinstance(collector_kwargs, dict):
            collector_kwargs = [dict(collector_kwargs or {}) for _ in range(n)]
        elif len(collector_kwargs) != n:
            raise ValueError(f"{owner} requires collector_kwargs to be a dict or a list of {n} dicts, "
                             f"got {len(collector_kwargs)}")
        if ray_init_config is not None and not isinstance(ray_init_config, dict):
            raise TypeError(f"{owner} requires ray_init_config to be a dict or None, got {ray_init_config!r}")

        self.frames_per_batch = frames_per_batch
        self.total_frames = _checks.total_frames_of(owner, total_frames, frames_per_batch)
        self.num_collectors = n
        self.split_trajs = bool(split_trajs)
        self.postproc = postproc
        self.update_after_each_batch = bool(update_after_each_batch)
        self.max_weight_update_interval = max_weight_update_interval
        self.policy = policy
        self.collected_frames = 0
        self._sync = sync
        per_actor = frames_per_batch // n if sync else frames_per_batch
        common = dict(frames_per_batch=per_actor, total_frames=-1, policy_factory=policy_factory,
                      max_frames_per_traj=None if max_frames_per_traj in (None, -1) else max_frames_per_traj,
                      init_random_frames=None if init_random_frames in (None, -1) else init_random_frames,
                      reset_at_each_iter=reset_at_each_iter, exploration_type=exploration_type,
                      trajs_per_batch=trajs_per_batch, pre_collect_hook=pre_collect_hook,
                      post_collect_hook=post_collect_hook)

        ray = _import_ray()
        if not ray.is_initialized():
            ray.init(**(ray_init_config or {}))
            self._started_ray = True
        self._ray = ray
        actor_cls = ray.remote(_RemoteCollector)
        self.closed = False
        try:
            for i, (env_fn, config, extra) in enumerate(zip(env_fns, remote_configs, collector_kwargs)):
                kw = dict(common, worker_idx=i)
                kw.update(extra)
                self._actors.append(actor_cls.options(**config).remote(env_fn, policy, kw))
            self._get([a.ready.remote() for a in self._actors], list(range(n)))
        except BaseException:
            self.shutdown()
            raise

    # ------------------------------------------------------------- remote calls
    def _get(self, refs, ids):
        """``ray.get`` that turns an actor's failure into RuntimeError with the actor's error text."""
        out = []
        for ref, i in zip(refs, ids):
            try:
                out.append(self._ray.get(ref))
            except self._ray.exceptions.RayError as err:
                raise RuntimeError(f"RayCollector: remote collector {i} failed: {err}") from err
        return out

    def _check_open(self) -> None:
        if self.closed:
            raise RuntimeError("RayCollector is shut down")

    @property
    def remote_collectors(self) -> list:
        return list(self._actors)

    @property
    def num_workers(self) -> int:
        return self.num_collectors

    # ------------------------------------------------------------- iteration
    def _proc(self, data: TensorDictBase) -> TensorDictBase:
        if self.split_trajs:
            data = split_trajectories(data)
        if self.postproc is not None:
            data = self.postproc(data)
        return data

    def iterator(self) -> Iterator[TensorDictBase]:
        self._check_open()
        inner = self._sync_iterator() if self._sync else self._async_iterator()
        for data in inner:
            yield self._proc(data)

    def __iter__(self) -> Iterator[TensorDictBase]:
        return self.iterator()

    def _sync_iterator(self):
        ids = list(range(self.num_collectors))
        while self.collected_frames < self.total_frames:
            if self.update_after_each_batch or self.max_weight_update_interval > -1:
                self.update_policy_weights_()
            parts = self._get([a.next.remote() for a in self._actors], ids)
            out = torch.stack(parts) if len(parts[0].batch_size) else torch.cat(parts)
            self.collected_frames += out.numel()
            yield out
        self.shutdown()

    def _async_iterator(self):
        pending = {a.next.remote(): i for i, a in enumerate(self._actors)}
        while self.collected_frames < self.total_frames:
            (ref,), _ = self._ray.wait(list(pending))
            i = pending.pop(ref)
            (out,) = self._get([ref], [i])
            self.collected_frames += out.numel()
            yield out
            if self.update_after_each_batch or self.max_weight_update_interval > -1:
                self.update_policy_weights_(worker_ids=i)
            pending[self._actors[i].next.remote()] = i
        self.shutdown()

    def next(self):
        if not hasattr(self, "_iterator") or self._iterator is None:
            self._iterator = self.iterator()
        try:
            return next(self._iterator)
        except StopIteration:
            return None

    def __len__(self) -> int:
        if self.total_frames == float("inf"):
            raise RuntimeError("RayCollector: an endless collector (total_frames=-1) has no length")
        return -(-int(self.total_frames) // self.frames_per_batch)

    # ------------------------------------------------------------- weights and state
    def _worker_list(self, worker_ids):
        if worker_ids is None:
            return list(range(self.num_collectors))
        ids = [worker_ids] if isinstance(worker_ids, int) else list(worker_ids)
        for i in ids:
            if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < self.num_collectors:
                raise ValueError(f"RayCollector: worker_ids must be ints in [0, {self.num_collectors}), got {i!r}")
        return ids

    def update_policy_weights_(self, policy_or_weights=None, *, worker_ids=None, **kwargs) -> None:
        """Send weights (default: the local policy's) to the actors: one ``ray.put``, every actor loads them."""
        self._check_open()
        source = self.policy if policy_or_weights is None else policy_or_weights
        if source is None:
            return
        if isinstance(source, torch.nn.Module):
            weights = TensorDict.from_module(source).data.clone()
        elif isinstance(source, TensorDictBase):
            weights = source.data.clone()
        elif isinstance(source, dict):
            weights = TensorDict(source).unflatten_keys(".")
        else:
            raise TypeError(f"update_policy_weights_ takes a module, a TensorDict or a dict of weights, got "
                            f"{type(source).__name__}")
        ids = self._worker_list(worker_ids)
        ref = self._ray.put(weights)
        self._get([self._actors[i].update_weights.remote(ref) for i in ids], ids)

    def set_seed(self, seed: int, static_seed: bool = False) -> int:
        self._check_open()
        for i, actor in enumerate(self._actors):
            (seed,) = self._get([actor.set_seed.remote(seed, static_seed)], [i])
        return seed

    def state_dict(self) -> list:
        self._check_open()
        ids = list(range(self.num_collectors))
        return self._get([a.state_dict.remote() for a in self._actors], ids)

    def load_state_dict(self, state_dict) -> None:
        self._check_open()
        states = [state_dict] if isinstance(state_dict, (dict, OrderedDict)) else list(state_dict)
        if len(states) == 1:
            states = states * self.num_collectors
        if len(states) != self.num_collectors:
            raise ValueError(f"RayCollector: expected one state dict or {self.num_collectors}, got {len(states)}")
        ids = list(range(self.num_collectors))
        self._get([a.load_state_dict.remote(s) for a, s in zip(self._actors, states)], ids)

    # ------------------------------------------------------------- shutdown
    def shutdown(self, timeout: float | None = None, shutdown_ray: bool = False) -> None:
        """Kill every actor and wait until Ray reports each one dead (at most ``timeout`` s, default 30).

        ``ray.kill`` only sends the kill; waiting means the actors' CPUs are free again when
        this returns, so a next collector asking for them does not queue behind dead ones.
        Shuts Ray down if this collector started it or ``shutdown_ray``.
        """
        if self.closed and not self._actors:
            return
        self.closed = True
        killed = []
        while self._actors:
            actor = self._actors.pop()
            try:
                self._ray.kill(actor, no_restart=True)
                killed.append(actor)
            except Exception:
                pass
        self._wait_dead(killed, 30.0 if timeout is None else float(timeout))
        if (shutdown_ray or self._started_ray) and self._ray.is_initialized():
            self._ray.shutdown()
        self._started_ray = False

    def _wait_dead(self, actors, timeout: float) -> None:
        """Probe each killed actor until its calls fail with RayActorError, or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        for actor in actors:
            while time.monotonic() < deadline:
                try:
                    self._ray.get(actor.ready.remote(), timeout=max(0.1, deadline - time.monotonic()))
                except self._ray.exceptions.RayActorError:
                    break
                except Exception:  # GetTimeoutError or Ray going down: stop waiting
                    return
                time.sleep(0.05)

    def __del__(self):
        try:
            if self._actors:
                self.shutdown()
        except Exception:
            pass

    def __repr__(self) -> str:
        return (f"RayCollector(num_collectors={self.num_collectors}, sync={self._sync}, "
                f"frames_per_batch={self.frames_per_batch}, total_frames={self.total_frames})")
