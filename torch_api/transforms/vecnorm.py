"""Running normalization: ``VecNorm`` and ``VecNormV2`` (TorchRL 0.14.1 API).

Both keep running statistics (float64 mean and centred second moment per
key, see ``numbarl.core.moments``) in the moments state of
:mod:`numbarl.torch_api.transforms.moments_state`, through the engine they
share (``_vecnorm_base._VecNormBase``); every call updates the statistics
with the new data first and then normalizes that data with the updated
statistics, in one fused kernel call. ``VecNorm`` is TorchRL's legacy API
(``VecNorm(new_api=True)`` returns a ``VecNormV2``), ``VecNormV2`` its new
one. CUDA data stays on its device: the statistics move there and the CUDA
twins of the moment kernels run on the tensors' memory.

Examples:
    >>> import torch
    >>> from numbarl.torch_api import GymEnv, TransformedEnv
    >>> env = TransformedEnv(GymEnv("Pendulum-v1"), VecNorm(in_keys=["observation"], out_keys=["obs_norm"],
    ...                      decay=1.0))
    >>> _ = env.set_seed(0)
    >>> td = env.rollout(200)
    >>> seen = torch.cat([td["observation"][:1], td["next", "observation"]])  # reset, then every step
    >>> on = env.transform.to_observation_norm()
    >>> torch.allclose(on.loc, seen.mean(0)), torch.allclose(on.scale, seen.std(0, correction=0))
    (True, True)
    >>> last = (td["next", "observation"][-1] - seen.mean(0)) / seen.std(0, correction=0)
    >>> torch.allclose(td["next", "obs_norm"][-1], last)  # normalized by the statistics of all 201
    True
"""
from __future__ import annotations

import math
import secrets
from collections import OrderedDict

import torch
from tensordict import TensorDict, TensorDictBase

from numbarl.core.moments import NonFiniteError

from .._attrs import set_plain
from .._device import cuda_device, ops_for
from ..specs import Unbounded
from ._checks import check_bool, check_choice, check_keys, check_lock, check_number
from ._env_chain import container_env
from ._reset_masks import first_leaf
from ._vecnorm_base import _VecNormBase, float_dtype
from .moments_state import field_name, key_parts, state_to_torchrl_legacy, state_to_torchrl_v2

__all__ = ["VecNorm", "VecNormV2"]

_DEFAULT_KEYS = ["observation", "reward"]


class VecNorm(_VecNormBase):
    """Running mean / standard deviation normalization (TorchRL 0.14.1's legacy ``VecNorm``).

    Each call merges the data into the running statistics of each in_key and
    then normalizes it with the updated statistics: ``(x - mean) /
    sqrt(max(var, eps))`` (the variance is floored at ``eps``, as TorchRL's
    VecNorm does). The dims of the tensordict's batch (or, with ``shapes``,
    all dims before the given shape) are merged into the statistics, so a
    batch of N sub-envs updates one set of statistics per step.

    ``VecNorm(..., new_api=True)`` returns a :class:`VecNormV2` instead
    (``__new__`` picks the class; ``shapes`` is not taken then).

    Statistics are float64 mean and centred second moment (nothing cancels).
    TorchRL keeps decayed float32 sums of ``x`` and ``x**2`` and forms
    ``ssq / count - mean**2``, which cancels when the mean is large compared
    to the std; where that does not bite both agree to float32 rounding
    (the decayed weights are the same: ``decay`` is applied once per update).
    As in TorchRL 0.14.1, :meth:`freeze` stops the updates and ``eval()``
    does not (TorchRL's documentation says it does, its code does not, and
    a ``TransformedEnv`` puts its transforms in ``eval()`` mode).

    ``get_extra_state`` returns plain tensors: TorchRL's ``{key}_sum`` /
    ``_ssq`` / ``_count`` (so that TorchRL's VecNorm loads numbarl's
    checkpoints) beside the exact float64 ``{key}_loc`` / ``_m2`` /
    ``_weight`` and the int64 sample count ``{key}_samples`` (which numbarl
    loads back bit for bit, unless TorchRL has updated the sums since);
    ``set_extra_state`` / ``load_state_dict`` also take TorchRL's own
    checkpoints (E[x**2] sums, converted to the mean and variance TorchRL
    normalizes with) and earlier numbarl versions' ``{key}_loc`` / ``_m2`` /
    ``_weight`` / ``_count``; ``to_torchrl_state_dict()`` writes TorchRL's
    entries only. NaN or inf raises
    ``NonFiniteError`` naming the key unless ``nonfinite="skip"``.

    CUDA data is normalized on its device (``numbarl.core.cuda.moments``)
    and the statistics move there with it (or with ``.to(device)``); nothing
    is read back per call. There, a batch that would raise on the CPU (NaN
    or inf with ``nonfinite="raise"``, overflow) is rejected instead: the
    statistics are unchanged, that key's output is all NaN, and
    :meth:`check_rejected` raises for it later. Statistics in ``shared_td``
    (host shared memory) refuse CUDA data with a ValueError.

    Args:
        in_keys: keys to normalize. Default ``["observation", "reward"]``.
        out_keys: destination keys (default: ``in_keys``); same length.
        shared_td: a TensorDict from :meth:`build_td_for_shared_vecnorm`
            (in shared memory) that holds the statistics.
        lock: context manager taken around updates (e.g. a
            ``multiprocessing.Lock`` shared with the other processes).
        decay: in (0, 1]. Default 0.9999.
        eps: floor of the variance, > 0. Default 1e-4.
        shapes: the feature shape of each in_key (trailing dims).
        new_api: True returns a :class:`VecNormV2` (further keywords, e.g. ``stateful``, go to it).
        nonfinite: "raise" (default) or "skip".

    Raises:
        TypeError: wrong key, number, lock, shapes or shared_td type.
        ValueError: out_keys or shapes of another length than in_keys,
            decay outside (0, 1], eps <= 0, bad nonfinite.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> t = VecNorm(in_keys=["x"], decay=1.0)
        >>> _ = t(TensorDict({"x": torch.tensor([[0.0], [2.0]])}, [2]))
        >>> t(TensorDict({"x": torch.tensor([[1.0], [4.0]])}, [2]))["x"]
        tensor([[-0.5071],
                [ 1.5213]])
        >>> type(VecNorm(in_keys=["x"], new_api=True)).__name__
        'VecNormV2'
    """

    _style = "legacy"

    def __new__(cls, in_keys=None, out_keys=None, shared_td=None, lock=None, decay=0.9999, eps=1e-4, shapes=None,
                new_api=None, nonfinite="raise", **v2_kwargs):
        if new_api is not None and not isinstance(new_api, bool):
            raise TypeError(f"VecNorm requires new_api as a bool or None, got {type(new_api).__name__}: {new_api!r}")
        if new_api:
            if shapes is not None:
                raise ValueError("VecNorm(new_api=True) takes no shapes (VecNormV2 infers them), got "
                                 f"{shapes!r}")
            return VecNormV2(_DEFAULT_KEYS if in_keys is None else in_keys, out_keys, lock=lock, decay=decay,
                             eps=eps, shared_data=shared_td, nonfinite=nonfinite, **v2_kwargs)
        if v2_kwargs:
            raise TypeError(f"VecNorm got {sorted(v2_kwargs)}, which only VecNorm(new_api=True) (VecNormV2) takes")
        return super().__new__(cls)

    def __init__(self, in_keys=None, out_keys=None, shared_td=None, lock=None, decay: float = 0.9999,
                 eps: float = 1e-4, shapes=None, new_api=None, nonfinite: str = "raise", **v2_kwargs):
        owner = "VecNorm"
        in_keys, out_keys = check_keys(owner, list(_DEFAULT_KEYS) if in_keys is None else in_keys, out_keys)
        if not in_keys:
            raise ValueError(f"{owner} requires at least one in_key (None means {list(_DEFAULT_KEYS)}), got {in_keys}")
        decay = check_number(decay, owner, "decay", 0.0, 1.0)
        eps = check_number(eps, owner, "eps", 0.0, float("inf"))
        nonfinite = check_choice(nonfinite, owner, "nonfinite", ("raise", "skip"))
        lock = check_lock(lock, owner)
        if shared_td is not None and not isinstance(shared_td, TensorDictBase):
            raise TypeError(f"{owner} requires shared_td as a TensorDict or None, got {type(shared_td).__name__}")
        shapes = _check_shapes(owner, shapes, len(in_keys))
        super().__init__(in_keys=in_keys, out_keys=out_keys)
        self._init_stats_state(decay, eps, nonfinite, lock)
        set_plain(self, "shapes", shapes)
        if shared_td is not None:
            self._stats.use_td(shared_td, owner)

    def _feature_shape(self, i, shape, batch_ndim):
        if self.shapes is None:
            return shape[batch_ndim:]
        want = self.shapes[i]
        if len(shape) < len(want) or (want and shape[len(shape) - len(want):] != want):
            raise ValueError(f"VecNorm: key {self.in_keys[i]!r} has shape {shape}, which does not end with "
                             f"shapes[{i}] = {want}")
        return want

    def _known_shape(self, i):
        return None if self.shapes is None else self.shapes[i]

    def _eps_std(self) -> float:
        return math.sqrt(self.eps)

    @staticmethod
    def build_td_for_shared_vecnorm(env, keys=None, memmap: bool = False) -> TensorDictBase:
        """A TensorDict in shared memory (or memory-mapped) to hold the statistics of ``keys`` of ``env``.

        Pass it as ``shared_td`` to a VecNorm with the same ``in_keys`` in each
        process (with a shared ``lock``). It holds ``loc``, ``m2``,
        ``weight`` and ``count`` per key, the feature shape taken from the env
        specs (without the env batch dims).

        Args:
            env: an env whose observation or reward spec holds every key.
            keys: the keys. Default ``["observation", "reward"]``.
            memmap: memory-map the tensors instead of placing them in shared memory.

        Raises:
            KeyError: a key is in no observation or reward spec of ``env``.

        Examples:
            >>> from numbarl.torch_api import GymEnv
            >>> td = VecNorm.build_td_for_shared_vecnorm(GymEnv("Pendulum-v1"), ["observation", "reward"])
            >>> td.is_shared(), td["loc", "observation"].shape, td["count", "reward"].dtype
            (True, torch.Size([3]), torch.int64)
        """
        keys = check_keys("VecNorm.build_td_for_shared_vecnorm", list(_DEFAULT_KEYS) if keys is None else keys,
                          None)[0]
        specs = (env.full_observation_spec, env.full_reward_spec)
        bnd = len(env.batch_size)
        td = TensorDict(batch_size=[])
        for key in keys:
            spec = next((c.get(key) for c in specs if c.get(key) is not None), None)
            if spec is None:
                raise KeyError(f"VecNorm.build_td_for_shared_vecnorm: key {key!r} is in no observation or reward "
                               f"spec; observation keys: {sorted(map(str, specs[0].keys(True, True)))}")
            shape = tuple(spec.shape[bnd:])
            parts = key_parts(key)
            td.set(("loc",) + parts, torch.zeros(shape, dtype=torch.float64))
            td.set(("m2",) + parts, torch.zeros(shape, dtype=torch.float64))
            td.set(("weight",) + parts, torch.zeros(1, dtype=torch.float64))
            td.set(("count",) + parts, torch.zeros(1, dtype=torch.int64))
        return td.memmap_() if memmap else td.share_memory_()

    def to_observation_norm(self):
        """An ``ObservationNorm`` (a ``Compose`` of one per key if several) with the current mean and scale.

        Raises:
            ValueError: no data seen yet for a key.

        Examples:
            >>> import torch
            >>> from tensordict import TensorDict
            >>> t = VecNorm(in_keys=["x"], decay=1.0)
            >>> _ = t(TensorDict({"x": torch.tensor([[1.0], [3.0]])}, [2]))
            >>> on = t.to_observation_norm()
            >>> on.loc, on.scale
            (tensor([2.]), tensor([1.]))
        """
        return self._observation_norms()

    def to_torchrl_state_dict(self, dtype: torch.dtype = torch.float32) -> OrderedDict:
        """A state dict that TorchRL 0.14.1's legacy VecNorm (same keys) loads: ``{key}_sum``, ``_ssq``, ``_count``.

        Args:
            dtype: floating dtype of the exported sums.

        Raises:
            ValueError: no data seen yet for a key.

        Examples:
            >>> import torch
            >>> from tensordict import TensorDict
            >>> t = VecNorm(in_keys=["x"], decay=1.0)
            >>> _ = t(TensorDict({"x": torch.tensor([[1.0], [3.0]])}, [2]))
            >>> t.to_torchrl_state_dict()["_extra_state"]
            {'x_sum': tensor([4.]), 'x_ssq': tensor([10.]), 'x_count': tensor([2.])}
        """
        extra = {}
        for i, (key, s) in enumerate(zip(self.in_keys, self._stats.states)):
            if s is None:
                raise ValueError(f"VecNorm.to_torchrl_state_dict: no statistics for {key!r} yet")
            with self._stats.locked():
                arrays = state_to_torchrl_legacy(self._stats.host_copy(i))
            for field, a in zip(("sum", "ssq", "count"), arrays):
                extra[field_name(field, key, "legacy")] = torch.from_numpy(a).to(dtype)
        return OrderedDict(_extra_state=extra)

    def __repr__(self) -> str:
        return (f"VecNorm(decay={self.decay:4.4f},eps={self.eps:4.4f}, in_keys={self.in_keys}, "
                f"out_keys={self.out_keys})")


def _check_shapes(owner, shapes, n):
    if shapes is None:
        return None
    if not isinstance(shapes, (list, tuple)):
        raise TypeError(f"{owner} requires shapes as a list of torch.Size (one per in_key), "
                        f"got {type(shapes).__name__}")
    if len(shapes) != n:
        raise ValueError(f"{owner} requires shapes of the same length as in_keys ({n}), got {len(shapes)}")
    out = []
    for s in shapes:
        if isinstance(s, int) and not isinstance(s, bool):
            s = (s,)
        if not isinstance(s, (tuple, list, torch.Size)) or not all(isinstance(d, int) and d > 0 for d in s):
            raise TypeError(f"{owner} requires each of shapes as a torch.Size of positive ints, got {s!r}")
        out.append(tuple(int(d) for d in s))
    return out


_FIELDS = ("loc", "m2", "weight", "count")


class VecNormV2(_VecNormBase):
    """Running mean / standard deviation normalization of ``in_keys`` (TorchRL 0.14.1's ``VecNormV2``).

    Each call first merges the new data into the running statistics and then
    normalizes it with the updated statistics: ``(x - mean) / max(std, eps)``.
    ``VecNorm(..., new_api=True)`` returns an instance of this class.

    Statistics are kept as float64 running moments (mean and centred second
    moment, merged with Chan's formula; see ``numbarl.core.moments``), so
    nothing cancels. TorchRL 0.14.1 instead keeps an average of ``x**2`` and
    subtracts ``loc**2`` before dividing by the bias correction ``1 -
    decay**count``, so while ``count`` is small its variance is ``var +
    decay**count * mean**2`` (too large whenever the mean is not 0); with
    ``decay == 1`` it keeps float32 sums whose ``E[x**2] - E[x]**2`` cancels
    at large means (mean 1e4, std 0.1 gives a meaningless scale). Where
    TorchRL is sound both agree to float32 rounding.

    ``decay < 1`` is a bias-corrected exponential average: sample ``k`` steps
    old weighs ``decay**k``. With ``reduce_batch_dims=True`` a whole batch
    is merged in one step, every element of it weighing one sample; one
    VecNormV2 over N sub-envs then has the statistics of the N streams merged.
    Without it the statistics have the full shape of the data (batch dims
    included), as in TorchRL; a partial reset then leaves them unchanged.

    Stateless mode (``stateful=False``) carries the statistics in the
    tensordict under ``prefix`` (``{prefix}_loc``, ``_m2``, ``_weight``,
    ``_count``, float64 / int64, with the data's shape); each instance has its
    own random prefix, so stacked instances never collide. It normalizes each
    element with its own statistics (torch float64 arithmetic) and uses the
    TensorDict path only.

    ``state_dict()`` holds plain tensors only (``_extra_state``: float64
    ``loc`` / ``m2`` / ``weight`` and int64 ``count`` per key), so
    ``torch.load(..., weights_only=True)`` reads it, and a load restores the
    statistics exactly. A TorchRL 0.14.1 VecNormV2 state dict loads too (its
    ``var`` is E[x**2]; it is converted to the mean and variance TorchRL
    normalizes with), and ``to_torchrl_state_dict()`` writes one TorchRL
    loads and normalizes with to float32 rounding.

    NaN or inf in an input raises ``NonFiniteError`` (a ValueError) naming
    the key; ``nonfinite="skip"`` drops those samples (rows of the feature
    shape) from the statistics and writes their output as NaN/inf. Either
    way the statistics are unchanged by them.

    The spec of each out_key is an Unbounded float spec of the input's shape
    (float32/64 kept, integer and bool inputs give the default float dtype),
    in the observation or the reward spec, wherever the in_key is; TorchRL
    0.14.1 keeps e.g. a Categorical class with a float dtype there.

    ``forward`` works on any tensordict (TorchRL's VecNormV2 forward raises).
    The statistics can be moved to shared memory (``_make_shared``) so that
    several processes update them under one lock.

    CUDA data is normalized on its device by the kernels of
    ``numbarl.core.cuda.moments``, and stateful statistics move to that
    device with it (``.to(device)`` moves them too); ``state_dict()`` then
    holds device tensors. Nothing is read back to the host per call, so NaN
    or inf with ``nonfinite="raise"`` cannot raise there: the batch is
    rejected on the device (statistics unchanged, that key's output all
    NaN) and :meth:`check_rejected` raises for it later. Statistics in
    shared memory stay on the host: CUDA data then raises ValueError. The
    stateless mode runs its torch arithmetic on the data's device the same
    way (a rejected batch leaves the carried statistics unchanged and gives
    NaN outputs).

    Args:
        in_keys: keys to normalize (observation or reward keys).
        out_keys: destination keys (default: ``in_keys``); same length.
        lock: a context manager taken around updates of statistics held in
            ``shared_data`` (e.g. ``multiprocessing.Lock()``).
        stateful: keep the statistics in the transform (default) or carry
            them in the tensordict.
        decay: in (0, 1]; 1 weighs every sample the same. Default 0.9999.
        eps: floor of the standard deviation, > 0. Default 1e-4.
        shared_data: a TensorDict from ``VecNorm.build_td_for_shared_vecnorm``
            whose (shared) tensors hold the statistics.
        reduce_batch_dims: merge the batch dims of each input into the
            statistics (stateful mode only).
        nonfinite: "raise" (default) or "skip".

    Raises:
        TypeError: a key of the wrong type, a non-float decay/eps, a lock
            that is not a context manager, shared_data not a TensorDict.
        ValueError: out_keys of another length, decay outside (0, 1],
            eps <= 0, reduce_batch_dims in stateless mode, bad nonfinite.

    Examples:
        >>> import torch
        >>> from numbarl.torch_api import GymEnv, TransformedEnv
        >>> env = TransformedEnv(GymEnv("Pendulum-v1"), VecNormV2(in_keys=["observation", "reward"],
        ...                      out_keys=["observation_norm", "reward_norm"], decay=1.0))
        >>> _ = env.set_seed(0)
        >>> td = env.rollout(100)
        >>> loc, scale = env.transform.loc, env.transform.scale
        >>> obs = torch.cat([td["observation"][:1], td["next", "observation"]])
        >>> std = obs.std(0, correction=0)
        >>> torch.allclose(loc["observation"], obs.mean(0)), torch.allclose(scale["observation"], std)
        (True, True)
        >>> td["next", "reward_norm"].shape, env.reward_spec["reward_norm"].dtype
        (torch.Size([100, 1]), torch.float32)
    """

    def __init__(self, in_keys, out_keys=None, *, lock=None, stateful: bool = True, decay: float = 0.9999,
                 eps: float = 1e-4, shared_data=None, reduce_batch_dims: bool = False, nonfinite: str = "raise"):
        owner = "VecNormV2"
        if in_keys is None:
            raise TypeError(f"{owner} requires in_keys (a key or a list of keys), got None")
        in_keys, out_keys = check_keys(owner, in_keys, out_keys)
        if not in_keys:
            raise ValueError(f"{owner} requires at least one in_key, got {in_keys}")
        decay = check_number(decay, owner, "decay", 0.0, 1.0)
        eps = check_number(eps, owner, "eps", 0.0, float("inf"))
        nonfinite = check_choice(nonfinite, owner, "nonfinite", ("raise", "skip"))
        lock = check_lock(lock, owner)
        stateful = check_bool(stateful, owner, "stateful")
        reduce_batch_dims = check_bool(reduce_batch_dims, owner, "reduce_batch_dims")
        if reduce_batch_dims and not stateful:
            raise ValueError(f"{owner} supports reduce_batch_dims=True only with stateful=True")
        if shared_data is not None:
            from tensordict import TensorDictBase

            if not isinstance(shared_data, TensorDictBase):
                raise TypeError(f"{owner} requires shared_data as a TensorDict or None, "
                                f"got {type(shared_data).__name__}")
            if not stateful:
                raise ValueError(f"{owner} takes shared_data only with stateful=True")
        super().__init__(in_keys=in_keys, out_keys=out_keys)
        self._init_stats_state(decay, eps, nonfinite, lock)
        set_plain(self, "stateful", stateful)
        set_plain(self, "reduce_batch_dims", reduce_batch_dims)
        set_plain(self, "prefix", "_vecnorm_" + secrets.token_hex(4))
        if shared_data is not None:
            self._stats.use_td(shared_data, owner)

    # ------------------------------------------------------------ hooks
    def _feature_shape(self, i, shape, batch_ndim):
        return shape[batch_ndim:] if self.reduce_batch_dims else shape

    def _per_env_stats(self) -> bool:
        return not self.reduce_batch_dims

    @property
    def _np_supported(self) -> bool:
        return self.stateful

    # ---------------------------------------------------------- statistics
    def _stats_td(self, which: int) -> TensorDict:
        if not self.stateful:
            raise ValueError("VecNormV2 in stateless mode holds no statistics: they travel in the tensordict "
                             f"under {self.prefix!r}")
        return super()._stats_td(which)

    @property
    def standard_normal(self) -> bool:
        """True: outputs are (x - loc) / scale.

        Examples:
            >>> VecNormV2(in_keys=["x"]).standard_normal
            True
        """
        return True

    def to_observation_norm(self):
        """A frozen ``ObservationNorm`` (a ``Compose`` of one per key if several) with the current loc and scale.

        Raises:
            ValueError: stateless mode, or no data seen yet.

        Examples:
            >>> import torch
            >>> from tensordict import TensorDict
            >>> t = VecNormV2(in_keys=["x"], decay=1.0, reduce_batch_dims=True)
            >>> _ = t(TensorDict({"x": torch.tensor([[1.0], [3.0]])}, [2]))
            >>> on = t.to_observation_norm()
            >>> on(TensorDict({"x": torch.tensor([5.0])}, []))["x"]
            tensor([3.])
        """
        if not self.stateful:
            raise ValueError("VecNormV2.to_observation_norm needs stateful=True")
        return self._observation_norms()

    def denorm(self, tensordict):
        """Undo the normalization: ``in_key = out_key * scale + loc`` with the current statistics.

        Reads the normalized values at the out_keys (those absent are
        skipped) and writes the values in the data's scale to the in_keys of a
        shallow copy, which is returned; ``tensordict`` is left as it is. The
        statistics are the current ones, so for the batch that last updated
        them this recovers the input.

        Args:
            tensordict: holds normalized values at (some of) the out_keys.

        Raises:
            NotImplementedError: stateless mode (the statistics travel with the data there).
            RuntimeError: no data seen yet for a key present in ``tensordict``.

        Examples:
            >>> import torch
            >>> from tensordict import TensorDict
            >>> t = VecNormV2(in_keys=["x"], out_keys=["x_n"], decay=1.0, reduce_batch_dims=True)
            >>> out = t(TensorDict({"x": torch.tensor([[1.0], [3.0]])}, [2]))
            >>> out["x_n"].flatten(), t.denorm(out.exclude("x"))["x"].flatten()
            (tensor([-1.,  1.]), tensor([1., 3.]))
        """
        if not self.stateful:
            raise NotImplementedError("VecNormV2.denorm needs stateful=True: stateless statistics travel with the "
                                      "data, not in the transform")
        out = tensordict.copy()
        for i, (in_key, out_key) in enumerate(zip(self.in_keys, self.out_keys)):
            value = out.get(out_key, None)
            if value is None:
                continue
            if self._stats.states[i] is None:
                raise RuntimeError(f"VecNormV2.denorm: no statistics for {in_key!r} yet; apply the transform to "
                                   "data (or roll out its env) first")
            loc, scale = self._loc_scale(i)
            out.set(in_key, value * scale.to(value.device) + loc.to(value.device))
        return out

    def to_torchrl_state_dict(self, dtype: torch.dtype = torch.float32) -> OrderedDict:
        """A state dict that TorchRL 0.14.1's VecNormV2 (same keys and decay) loads.

        TorchRL normalizes with ``loc / (1 - decay**count)`` and ``(var -
        loc**2) / (1 - decay**count)`` (``decay < 1``), or ``loc`` and ``var -
        loc**2``; the exported ``loc`` / ``var`` are chosen so that these give
        this transform's mean and variance.

        Args:
            dtype: floating dtype of the exported ``loc`` and ``var``.

        Raises:
            ValueError: stateless mode, or no data seen yet for some key.

        Examples:
            >>> import torch
            >>> from tensordict import TensorDict
            >>> t = VecNormV2(in_keys=["x"], decay=1.0)
            >>> _ = t(TensorDict({"x": torch.tensor([1.0])}, []))
            >>> _ = t(TensorDict({"x": torch.tensor([3.0])}, []))
            >>> sd = t.to_torchrl_state_dict()
            >>> sd["_extra_state"]
            {'loc.-|-.x': tensor([2.]), 'var.-|-.x': tensor([5.]), 'count.-|-.x': tensor(2)}
        """
        if not self.stateful:
            raise ValueError("VecNormV2.to_torchrl_state_dict needs stateful=True")
        extra = {}
        for i, (key, s) in enumerate(zip(self.in_keys, self._stats.states)):
            if s is None:
                raise ValueError(f"VecNormV2.to_torchrl_state_dict: no statistics for {key!r} yet")
            with self._stats.locked():
                L, V, c = state_to_torchrl_v2(self._stats.host_copy(i), self.decay)
            extra[field_name("loc", key, "v2")] = torch.from_numpy(L).to(dtype)
            extra[field_name("var", key, "v2")] = torch.from_numpy(V).to(dtype)
            extra[field_name("count", key, "v2")] = torch.tensor(c)
        return OrderedDict(initialized=torch.tensor(True), _extra_state=extra)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)
        flag = prefix + "initialized"  # written by TorchRL's VecNormV2; nothing to load
        if flag in unexpected_keys:
            unexpected_keys.remove(flag)

    # ------------------------------------------------------------- stateless
    def _stat_key(self, field, key):
        return (f"{self.prefix}_{field}",) + key_parts(key)

    def _stateless(self, src, dst, at_reset: bool, mask=None):
        update = not self.frozen
        for ik, ok in zip(self.in_keys, self.out_keys):
            value = dst.get(ik, None)
            if value is None:
                if not at_reset:
                    self._missing(ik, dst)
                    continue
                shape = self._spec_shape(ik)  # e.g. the reward: carried from the reset on, with zero statistics
                if shape is not None:
                    device = dst.device if dst.device is not None else _cuda_device_of(dst)
                    for field in _FIELDS:
                        dt = torch.int64 if field == "count" else torch.float64
                        dst.set(self._stat_key(field, ik), torch.zeros(shape, dtype=dt, device=device))
                continue
            stats = []
            for field in _FIELDS:
                old = None if src is None or (at_reset and mask is None) else src.get(self._stat_key(field, ik), None)
                dt = torch.int64 if field == "count" else torch.float64
                old = torch.zeros(value.shape, dtype=dt, device=value.device) if old is None else old
                if at_reset and mask is not None:
                    m = mask.reshape(mask.shape + (1,) * (value.ndim - mask.ndim)).to(value.device)
                    old = torch.where(m, torch.zeros((), dtype=dt, device=value.device), old)
                stats.append(old)
            out, stats = _stateless_step(value, stats, self.decay, self.eps, self._skip, update, ik)
            dst.set(ok, out)
            for field, t in zip(_FIELDS, stats):
                dst.set(self._stat_key(field, ik), t)
        return dst

    def _spec_shape(self, key):
        """The env spec shape of ``key`` (batch dims included), or None outside an env."""
        shapes = self.__dict__.setdefault("_spec_shapes", {})
        if key not in shapes:

            shape = None
            if container_env(self) is not None:
                parent = self.parent
                for comp in (parent.full_observation_spec, parent.full_reward_spec):
                    spec = comp.get(key)
                    if spec is not None:
                        shape = tuple(spec.shape)
                        break
            shapes[key] = shape
        return shapes[key]

    def _call(self, next_tensordict):
        if self.stateful:
            return super()._call(next_tensordict)
        return self._stateless(next_tensordict, next_tensordict, False)

    def _step(self, tensordict, next_tensordict):
        if self.stateful:
            return super()._call(next_tensordict)
        return self._stateless(tensordict, next_tensordict, False)

    def _reset(self, tensordict, tensordict_reset):
        if self.stateful:
            return super()._reset(tensordict, tensordict_reset)
        mask = None
        if tensordict is not None and tensordict_reset.batch_dims:
            request = tensordict.get("_reset", None)
            if request is not None:
                mask = request.reshape(tensordict_reset.batch_size).to(torch.bool)
                if not ops_for(mask).cuda:  # on a device the masked reset also covers a full one, unread
                    mask = None if bool(mask.all()) else mask
        return self._stateless(tensordict, tensordict_reset, True, mask)

    def transform_output_spec(self, output_spec):
        """Transform observation and reward specs; in stateless mode add the carried statistics' specs.

        Args:
            output_spec: the env's output spec (full_observation_spec, full_reward_spec, ...).

        Examples:
            >>> from numbarl.torch_api import GymEnv, TransformedEnv
            >>> t = VecNormV2(in_keys=["reward"], stateful=False)
            >>> env = TransformedEnv(GymEnv("Pendulum-v1"), t)
            >>> sorted(k for k in env.observation_spec.keys() if k.startswith(t.prefix))
            ['_vecnorm_..._count', '_vecnorm_..._loc', '_vecnorm_..._m2', '_vecnorm_..._weight']
        """
        output_spec = super().transform_output_spec(output_spec)
        if not self.stateful:
            obs = output_spec["full_observation_spec"]
            rew = output_spec["full_reward_spec"] if "full_reward_spec" in output_spec.keys() else None
            for ik in self.in_keys:
                spec = obs.get(ik)
                if spec is None and rew is not None:
                    spec = rew.get(ik)
                if spec is None:
                    continue
                for field in _FIELDS:
                    dt = torch.int64 if field == "count" else torch.float64
                    obs[self._stat_key(field, ik)] = Unbounded(shape=spec.shape, device=spec.device, dtype=dt)
        return output_spec

    def __repr__(self) -> str:
        return f"VecNormV2(keys={self.in_keys})"


def _cuda_device_of(td):
    """The device of ``td``'s data when it is CUDA data, else None (the default device)."""
    leaf = first_leaf(td)
    return None if leaf is None else cuda_device(leaf)


def _stateless_step(value, stats, decay, eps, skip, update, key):
    """One single-sample update per element (own weight each), then normalization.

    CUDA data is never read back: NaN or inf with ``skip`` false rejects the
    whole batch on the device (statistics unchanged, outputs NaN) instead of
    raising.
    """
    x = value.detach().to(torch.float64)
    loc, m2, weight, count = stats
    rejected = None
    if update:
        finite = torch.isfinite(x)
        on_device = ops_for(x).cuda  # nothing is read back from a device
        all_finite = None if on_device else bool(finite.all())
        if all_finite is False and not skip:
            raise NonFiniteError(f"VecNormV2: {key!r} holds NaN or inf; statistics left unchanged "
                                 "(pass nonfinite='skip' to drop such samples)")
        wa = weight * decay
        new_w = wa + 1.0
        delta = x - loc
        new = (loc + delta / new_w, m2 * decay + delta * delta * (wa / new_w), new_w, count + 1)
        if all_finite:
            loc, m2, weight, count = new
        else:
            if on_device and not skip:
                rejected = ~finite.all()
                finite = finite & ~rejected
            loc, m2, weight, count = (torch.where(finite, n, o) for n, o in zip(new, (loc, m2, weight, count)))
    var = torch.where(weight > 0, m2 / weight.clamp_min(1e-300), torch.ones_like(m2))
    out = ((x - loc) / var.sqrt().clamp_min(eps)).to(float_dtype(value.dtype))
    if rejected is not None:
        out = out.masked_fill(rejected, float("nan"))
    if value.dtype.is_floating_point and value.dtype != out.dtype:
        out = out.to(value.dtype)
    return out, (loc, m2, weight, count)
