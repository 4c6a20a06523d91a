"""Running statistics merged across the ranks of a ``torch.distributed`` process group.

``VecNorm`` / ``VecNormV2`` (stateful), ``ObservationNorm`` (after
``init_stats``) and ``EnvCreator`` have ``all_reduce_stats(group=None)``,
which ends here: :func:`all_reduce_moments` merges the running moments of
every rank into identical moments on all ranks with Chan's formula in
float64 (the arithmetic is :func:`numbarl.core.distributed.moments_merge_ranks`;
this module only runs ``torch.distributed.all_reduce``).

When to call it: wherever the ranks must agree, e.g. once per collected
batch before the update of a multi-node PPO run (each rank collects with its
own transform, then all call ``all_reduce_stats()``). It is a collective:
every rank of the group calls it, with the same keys.

Cost per call, whatever the data seen: three all-reduces, one of 2 x 6
int64 values (the ranks check that they hold the same keys and shapes) and
two of ``sum(F + 2)`` and ``sum(F)`` float64 values over the keys (F: the
feature size of a key), i.e. ``2F + 2`` values per key in all. Statistics
in shared memory (``EnvCreator`` / ``ParallelEnv``) are merged under their
lock, so the node's workers wait for the all-reduces to finish.

``decay == 1``: the result is the statistics of one transform that saw the
data of every rank, exact up to rounding; a later call merges only what each
rank saw since (each rank keeps the merged statistics as a base and sends
the difference), so calling once per batch counts every sample once.
``decay < 1``: the decayed weights are merged as they are and the merged
weight is divided by the number of ranks (the mean and variance are those
of the union; statistics merged before keep their weight instead of being
counted once per rank).

Backends: gloo merges host statistics in place (the all-reduce reads NumPy
arrays through zero-copy tensors); nccl merges CUDA statistics on their
device (nothing goes through the host) and host statistics through a CUDA
copy of the two buffers.

Examples:
    >>> import tempfile, torch, torch.distributed as dist
    >>> from tensordict import TensorDict
    >>> from numbarl.torch_api import VecNorm
    >>> path = tempfile.mktemp()
    >>> dist.init_process_group("gloo", init_method=f"file://{path}", rank=0, world_size=1)
    >>> t = VecNorm(in_keys=["x"], decay=1.0)
    >>> _ = t(TensorDict({"x": torch.tensor([[1.0], [3.0]])}, [2]))
    >>> t.all_reduce_stats()  # a group of one rank: unchanged
    >>> t.to_observation_norm().loc
    tensor([2.])
    >>> dist.destroy_process_group()
"""
from __future__ import annotations

import zlib

import numpy as np
import torch

from numbarl.core.distributed import moments_merge_ranks

from ._attrs import set_plain
from .transforms.moments_state import TensorMoments

__all__ = ["all_reduce_moments", "all_reduce_observation_norm", "all_reduce_transform"]


def _dist(owner: str):
    import torch.distributed as dist

    if not dist.is_available():
        raise RuntimeError(f"{owner}.all_reduce_stats needs torch.distributed, which this torch build lacks")
    if not dist.is_initialized():
        raise RuntimeError(f"{owner}.all_reduce_stats needs an initialised torch.distributed process group: call "
                           "torch.distributed.init_process_group(backend, ...) on every rank first")
    return dist


def _stage(dist, group, device):
    """``reduce(tensor)``: an in-place SUM/MAX all-reduce on ``group``, through ``device`` when the backend needs it."""
    nccl = dist.get_backend(group) == "nccl"

    def reduce(tensor: torch.Tensor, op) -> None:
        if nccl and tensor.device.type != "cuda":
            staged = tensor.to(device if device is not None else torch.device("cuda", torch.cuda.current_device()))
            dist.all_reduce(staged, op=op, group=group)
            tensor.copy_(staged)
        else:
            dist.all_reduce(tensor, op=op, group=group)

    return reduce


def _signature(keys, states, token) -> list:
    """Six int64 values the ranks must agree on (the base token may differ: then no base is used)."""
    missing = sum(s is None for s in states)
    shapes = ";".join(f"{k!r}:{'-' if s is None else tuple(s.loc.shape)}" for k, s in zip(keys, states))
    total = sum(int(np.prod(tuple(s.loc.shape))) for s in states if s is not None)
    return [len(keys), missing, total, zlib.crc32(shapes.encode()), token[0], token[1]]


def _base_token(states, base, decay):
    """(generation, merged count) of a base this rank can take out of its statistics, or (-1, -1)."""
    if base is None or decay != 1.0 or base["n"] != len(states):
        return (-1, -1)
    for s, (_, _, bw, bc) in zip(states, base["states"]):
        w, c = (float(s.weight[0]), int(s.count[0])) if not isinstance(s, TensorMoments) else \
            (float(s.weight.reshape(-1)[0]), int(s.count.reshape(-1)[0]))
        if w < float(bw[0]) or c < int(bc[0]):  # statistics replaced (loaded, reset) since the merge
            return (-1, -1)
    return (base["gen"], base["count"])


def all_reduce_moments(owner: str, keys, states, decay: float = 1.0, group=None, base=None, missing_hint=None):
    """Merge ``states`` (one per key; MomentState or TensorMoments) with every rank of ``group``, in place.

    A collective: every rank calls it. The caller holds the statistics' lock.

    Args:
        owner: the class name, for messages.
        keys: the keys of ``states`` (compared across ranks).
        states: list of MomentState / TensorMoments, or None for a key without statistics.
        decay: the transforms' decay (1: exact merge; < 1: see the module docstring).
        group: a ``torch.distributed`` process group, or None for the default group.
        base: what the previous call returned on this rank, or None.
        missing_hint: what to do about a key without statistics (for the message).

    Returns:
        The new base (keep it for the next call).

    Raises:
        RuntimeError: no process group is initialised.
        ValueError: the ranks hold other keys or shapes, or some rank has no
            statistics yet for a key (raised on every rank).
    """
    dist = _dist(owner)
    if not isinstance(decay, float):
        raise TypeError(f"{owner}.all_reduce_stats requires decay as a float, got {type(decay).__name__}")
    device = next((s.device for s in states if isinstance(s, TensorMoments)), None)
    reduce = _stage(dist, group, device)
    token = _base_token(states, base, decay)
    sig = torch.tensor(_signature(keys, states, token), dtype=torch.int64, device=device)
    both = torch.cat([sig, -sig])
    reduce(both, dist.ReduceOp.MAX)
    high, low = both[:6].tolist(), (-both[6:]).tolist()
    shapes = [None if s is None else tuple(s.loc.shape) for s in states]
    if high[1] > 0:
        raise ValueError(f"{owner}.all_reduce_stats: some rank has no statistics yet for some of {list(keys)} "
                         f"(this rank: {dict(zip(map(str, keys), shapes))}); "
                         f"{missing_hint or 'apply the transform to data on every rank first'}")
    if high[:4] != low[:4]:
        raise ValueError(f"{owner}.all_reduce_stats: the ranks hold statistics of different keys or shapes (this "
                         f"rank: {dict(zip(map(str, keys), shapes))}); every rank must normalize the same keys with "
                         "the same feature shapes")
    use_base = high[4:] == low[4:] and high[4] >= 0
    rank = dist.get_rank(group)
    arrays = [s.arrays for s in states]
    if device is None:
        zeros = np.zeros

        def reduce_sum(buf):
            reduce(torch.from_numpy(buf), dist.ReduceOp.SUM)
    else:
        def zeros(n):
            return torch.zeros(n, dtype=torch.float64, device=device)

        def reduce_sum(buf):
            reduce(buf, dist.ReduceOp.SUM)

    taken = base["states"] if use_base and rank != 0 else None
    moments_merge_ranks(arrays, reduce_sum, zeros, base=taken, average=decay != 1.0,
                        n_ranks=dist.get_world_size(group))
    merged = [tuple(a.clone() if isinstance(a, torch.Tensor) else a.copy() for a in s) for s in arrays]
    gen = high[4] + 1  # the same on every rank
    count = sum(int(a[3].reshape(-1)[0]) for a in arrays)
    return {"gen": gen, "count": count, "n": len(states), "states": merged}


def all_reduce_transform(transform, group=None) -> None:
    """``VecNorm`` / ``VecNormV2``: merge the statistics of every in_key across ``group`` (see the module docstring).

    Keys without statistics yet get them from the env specs when the
    transform is in an env (a rank that saw no data takes part with weight
    0); otherwise every rank must have seen data.
    """
    owner = type(transform).__name__
    if not getattr(transform, "stateful", True):
        raise ValueError(f"{owner}.all_reduce_stats needs stateful=True: stateless statistics travel with the data")
    _dist(owner)
    st = transform._stats
    if not st.ready():
        try:
            transform._init_from_spec()
        except (KeyError, ValueError):
            pass  # reported on every rank by all_reduce_moments (a key without statistics)
    with st.locked():
        base = transform.__dict__.get("_rank_base")
        new = all_reduce_moments(owner, transform.in_keys, list(st.states), float(transform.decay), group, base)
        set_plain(transform, "_rank_base", new)


def all_reduce_observation_norm(transform, group=None) -> None:
    """``ObservationNorm``: merge the moments kept by ``init_stats`` across ``group``; loc and scale from the result."""
    owner = "ObservationNorm"
    _dist(owner)
    kept = transform.__dict__.get("_init_moments")
    key, state, shape, dtype = (transform.in_keys[0], None, None, None) if kept is None else kept
    base = transform.__dict__.get("_rank_base")
    new = all_reduce_moments(owner, [key], [state], 1.0, group, base,
                             missing_hint="call init_stats on every rank first (loc and scale given or loaded "
                                          "carry no moments to merge)")
    set_plain(transform, "_rank_base", new)
    from .transforms.normalization import _host_loc_std

    eps = 1e-6 if transform.eps is None else transform.eps
    if isinstance(state, TensorMoments):
        loc, std = state.affine_loc_scale(eps, transform._host_value("standard_normal"))
    else:
        loc, std = _host_loc_std(state, eps, transform.standard_normal)
    transform.loc = loc.reshape(shape).to(dtype)
    transform.scale = std.reshape(shape).to(dtype)
    transform._erase_metadata()
