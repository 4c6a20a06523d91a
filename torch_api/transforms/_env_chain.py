"""The one home of the enclosing-env lookup: the env a transform sits in, and the transforms before it.

A transform's ``container`` is a ``Compose`` or a ``TransformedEnv``;
:func:`env_above` walks up such a chain to the first env, and every other
helper here is built on it: :func:`container_env` (the env holding a
transform), :func:`env_batch_ndim`, :func:`ensure_specs`, and
:func:`parent_chain` with :func:`chain_step` / :func:`chain_reset` to step
the env from inside a transform, through the transforms before it.

Examples:
    >>> from numbarl.torch_api import Compose, StepCounter
    >>> t = StepCounter()
    >>> container_env(t) is None, env_batch_ndim(t, default=-1)
    (True, -1)
    >>> c = Compose(t)
    >>> env_above(c) is None
    True
"""
from __future__ import annotations


__all__ = ["env_batch_ndim", "env_above", "container_env", "parent_chain", "chain_step", "chain_reset", "ensure_specs"]


def env_above(node):
    """The env at the top of a chain of containers starting at ``node`` (a Compose or an env), or None."""
    from ..envs.common import EnvBase

    while node is not None and not isinstance(node, EnvBase):
        node = node.container
    return node


def container_env(transform):
    """The ``TransformedEnv`` holding ``transform`` (through any ``Compose``), or None."""
    return env_above(transform.container)


def parent_chain(transform):
    """``(env, base_env, preceding)``: the env holding ``transform``, its base env, and the transforms before it.

    The transforms are the live instances (not copies), in order. Returns
    None when ``transform`` is not inside an env.
    """
    from ..envs.common import EnvBase

    preceding = []
    child, node = transform, transform.container
    while node is not None:
        if isinstance(node, EnvBase):
            return node, node.base_env, preceding
        index = next(i for i, t in enumerate(node.transforms) if t is child)
        preceding = list(node.transforms[:index]) + preceding
        child, node = node, node.container
    return None


def chain_step(base_env, preceding, tensordict):
    """One step of ``base_env`` seen through ``preceding`` transforms: the "next" tensordict."""
    inner = tensordict.clone(False)
    for t in reversed(preceding):
        inner = t._inv_call(inner)
    next_td = base_env._complete_done(base_env._step(inner), at_reset=False)
    for t in preceding:
        next_td = t._step(tensordict, next_td)
    return next_td


def chain_reset(base_env, preceding, tensordict):
    """A reset of ``base_env`` seen through ``preceding`` transforms."""
    reset = base_env._reset_output(tensordict)
    for t in preceding:
        reset = t._reset(tensordict, reset)
    return reset


def ensure_specs(transform) -> None:
    """Make the env holding ``transform`` (if any) compute its transformed specs, which runs the spec hooks."""
    env = container_env(transform)
    if env is not None:
        env.output_spec


def env_batch_ndim(transform, default=0):
    """Number of batch dims of the env this transform is attached to (``default`` when it is not in an env)."""
    env = container_env(transform)
    return default if env is None else len(env.batch_size)
