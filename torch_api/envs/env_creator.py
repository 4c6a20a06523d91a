"""``EnvCreator``: a picklable env factory whose envs share their statistics.

A module of the env (usually a transform such as ``VecNorm``) shares its
statistics by implementing three methods:

- ``_make_shared()``: move its statistics into a shared-memory block owned
  by this process;
- ``_shared_handle()``: a picklable handle of that block (or ``None``);
- ``_attach_shared(handle)``: use the block of ``handle`` from now on.

``EnvCreator`` builds the env once, in the process that makes the creator
(the *template*), calls ``_make_shared`` on every module that has it, and
keeps the handles by module name (``named_modules()``). Every env it makes
afterwards, in this process or in a worker that received the creator by
pickle, attaches its modules of the same names to those blocks, so every
copy updates and reads one set of statistics. The template owns the blocks:
they are unlinked when the creator (and so the template) is collected or
:meth:`EnvCreator.close` is called.
"""
from __future__ import annotations

import pickle
from collections.abc import Callable

__all__ = ["EnvCreator"]


def _shareable(module) -> bool:
    return all(callable(getattr(module, m, None)) for m in ("_make_shared", "_shared_handle", "_attach_shared"))


def _dump_fn(fn):
    """``fn`` as is when pickle takes it, else its cloudpickle bytes (lambdas, closures) when cloudpickle exists."""
    try:
        pickle.dumps(fn)
        return fn, False
    except (pickle.PicklingError, AttributeError, TypeError):
        try:
            import cloudpickle
        except ImportError:
            return fn, False  # pickling the creator will raise the usual error
        return cloudpickle.dumps(fn), True


def _owned_blocks(module, handle) -> list:
    """The ``SharedArrays`` blocks ``module`` made and owns: its handle itself, or those among its attributes."""
    from ...core.shared import SharedArrays

    found = [handle] if isinstance(handle, SharedArrays) else []
    found += [v for v in vars(module).values() if isinstance(v, SharedArrays) and v is not handle]
    return [b for b in found if b.owner]


def _rebuild(fn, packed: bool, kwargs: dict, handles: dict) -> EnvCreator:
    creator = EnvCreator.__new__(EnvCreator)
    creator.create_env_fn = pickle.loads(fn) if packed else fn
    creator.create_env_kwargs = kwargs
    creator._handles = handles
    creator._template_env = None
    creator._blocks = []
    return creator


class EnvCreator:
    """A callable that makes envs sharing their statistics with the env built here (see the module docstring).

    Args:
        create_env_fn: a callable returning an env.
        create_env_kwargs: keyword arguments for ``create_env_fn``.
        share_memory: make the template's shareable modules shared (default); when
            false, the envs made are independent.
        **kwargs: more keyword arguments for ``create_env_fn`` (merged into ``create_env_kwargs``).

    Raises:
        TypeError: ``create_env_fn`` is not callable or ``create_env_kwargs`` not a dict.

    Examples:
        >>> import functools, pickle
        >>> from numbarl.torch_api import GymEnv
        >>> creator = EnvCreator(functools.partial(GymEnv, "Pendulum-v1"))
        >>> env = pickle.loads(pickle.dumps(creator))()  # what a worker process does
        >>> env.batch_size, sorted(env.observation_keys)
        (torch.Size([]), ['observation'])
        >>> env.close(); creator.close()
    """

    def __init__(self, create_env_fn: Callable, create_env_kwargs: dict | None = None, share_memory: bool = True,
                 **kwargs):
        if not callable(create_env_fn):
            raise TypeError(f"EnvCreator requires create_env_fn to be callable, got {type(create_env_fn).__name__}")
        if create_env_kwargs is not None and not isinstance(create_env_kwargs, dict):
            raise TypeError(f"EnvCreator requires create_env_kwargs to be a dict or None, "
                            f"got {type(create_env_kwargs).__name__}")
        self.create_env_fn = create_env_fn
        self.create_env_kwargs = {**(create_env_kwargs or {}), **kwargs}
        env = create_env_fn(**self.create_env_kwargs)
        self._template_env = env
        self._handles = {}
        self._blocks = []
        if share_memory and hasattr(env, "named_modules"):
            for name, module in env.named_modules():
                if _shareable(module):
                    module._make_shared()
                    handle = module._shared_handle()
                    if handle is not None:
                        self._handles[name] = handle
                        self._blocks += _owned_blocks(module, handle)

    @property
    def shared_modules(self) -> list:
        """Names (as ``named_modules()`` gives them) of the modules whose statistics are shared."""
        return list(self._handles)

    def __call__(self, **kwargs):
        """A new env from ``create_env_fn``, its shareable modules attached to the template's blocks."""
        env = self.create_env_fn(**{**self.create_env_kwargs, **kwargs})
        if self._handles:
            found = set()
            for name, module in env.named_modules():
                handle = self._handles.get(name)
                if handle is not None and _shareable(module):
                    module._attach_shared(handle)
                    found.add(name)
            missing = sorted(set(self._handles) - found)
            if missing:
                raise ValueError(f"EnvCreator: the env made by create_env_fn lacks the shared modules {missing} "
                                 "that the first env had; create_env_fn must build the same env every time")
        return env

    def close(self) -> None:
        """Close the template env and unlink the shared blocks it owns (in the process that made the creator).

        Envs made earlier keep working on their mappings; envs made after
        ``close()`` (or workers started after it) cannot attach. Calling it
        again does nothing.
        """
        env, self._template_env = self._template_env, None
        blocks, self._blocks = self._blocks, []
        try:
            if env is not None:
                env.close()
        finally:
            for block in blocks:
                block.close()

    def state_dict(self, *args, **kwargs) -> dict:
        """The template env's ``state_dict`` (its shared statistics included), as TorchRL's EnvCreator gives.

        Raises:
            RuntimeError: the creator was closed, or unpickled in another process (it holds no template env).
        """
        if self._template_env is None:
            raise RuntimeError("EnvCreator.state_dict needs the template env, which this creator does not hold "
                               "(closed, or unpickled in another process); call it where the creator was made")
        return self._template_env.state_dict(*args, **kwargs)

    def __reduce__(self):
        fn, packed = _dump_fn(self.create_env_fn)
        return _rebuild, (fn, packed, self.create_env_kwargs, self._handles)

    def __repr__(self) -> str:
        return f"EnvCreator({self.create_env_fn!r}, create_env_kwargs={self.create_env_kwargs})"

    def all_reduce_stats(self, group=None) -> None:
        """Merge this node's shared statistics with those of every rank of a ``torch.distributed`` group.

        Calls ``all_reduce_stats(group)`` of each shared module of the
        template env (e.g. its ``VecNorm``), in ``named_modules()`` order,
        under the module's cross-process lock: every env made by this creator
        (workers of a ``ParallelEnv`` or of a multi-process collector
        included) reads the merged statistics afterwards. A collective: every
        rank calls it, with the same env. Only in the process that made the
        creator (where the template env lives).

        Args:
            group: the process group, or None for the default one.

        Raises:
            RuntimeError: called in a worker (no template env) or without a process group.

        Examples:
            >>> import functools
            >>> from numbarl.torch_api import GymEnv, TransformedEnv, VecNorm
            >>> creator = EnvCreator(lambda: TransformedEnv(GymEnv("Pendulum-v1"), VecNorm(in_keys=["observation"])))
            >>> creator.all_reduce_stats()  # doctest: +ELLIPSIS
            Traceback (most recent call last):
            ...
            RuntimeError: VecNorm.all_reduce_stats needs an initialised torch.distributed process group: ...
            >>> creator.close()
        """
        env = self._template_env
        if env is None:
            raise RuntimeError("EnvCreator.all_reduce_stats runs in the process that made the creator (it merges "
                               "the statistics of its template env); this copy has none")
        for name, module in env.named_modules():
            if name in self._handles and callable(getattr(module, "all_reduce_stats", None)):
                module.all_reduce_stats(group)

    def make_variant(self, **kwargs) -> EnvCreator:
        """A creator of the same env with other keyword arguments, attached to the same shared blocks (TorchRL's).

        The variant builds no template env of its own: its envs share the
        statistics (e.g. a ``TrajCounter``'s counter) of this creator's. The
        blocks stay owned by this creator; ``state_dict`` and
        ``all_reduce_stats`` are this creator's.

        Examples:
            >>> import functools
            >>> from numbarl.torch_api import GymEnv
            >>> creator = EnvCreator(GymEnv, env_name="Pendulum-v1")
            >>> variant = creator.make_variant(env_name="CartPole-v1")
            >>> variant().action_spec.shape, creator().action_spec.shape
            (torch.Size([2]), torch.Size([1]))
            >>> creator.close()
        """
        return _rebuild(self.create_env_fn, False, {**self.create_env_kwargs, **kwargs}, self._handles)
