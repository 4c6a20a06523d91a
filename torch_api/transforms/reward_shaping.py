"""Reward-shaping transforms: LineariseRewards and TargetReturn.

Same names, arguments, defaults, keys, spec changes and errors as TorchRL
0.14.1 (the class docstrings say where they differ). The numerical work runs
in :mod:`numbarl.core.reward_shaping` for float32 / float64 data on the CPU,
on the TensorDict path and on the array path of the preallocated rollout
alike; other dtypes and CUDA tensors fall back to the same computation in
torch operations on the data's device.

Examples:
    >>> import torch
    >>> from tensordict import TensorDict
    >>> t = LineariseRewards(in_keys=["reward"], weights=[1.0, -2.0])
    >>> t(TensorDict({"reward": torch.tensor([[1.0, 0.5], [2.0, 1.0]])}, [2]))["reward"]
    tensor([[0.],
            [0.]])
"""
from __future__ import annotations

import numbers

import numpy as np
import torch
from tensordict import TensorDictBase

from .._arrays import as_array, is_cuda, numpy_dtype, torch_dtype
from .._attrs import set_plain
from .._device import as_torch, launch
from .._keys import key_list, key_tuple, with_leaf
from ..specs import Bounded, Composite, Unbounded
from ._checks import CompatValueError, check_choice, check_unique
from ._env_chain import container_env, ensure_specs
from ._reset_masks import first_leaf
from .base import Transform
from .reward import carried_state_specs

__all__ = ["LineariseRewards", "TargetReturn"]

_KERNEL_DTYPES = (torch.float32, torch.float64)


def _kernel_ready(*tensors) -> bool:
    """Whether the CPU kernels take these tensors (float32 / float64, on the CPU)."""
    return all(t.dtype in _KERNEL_DTYPES and not is_cuda(t) and t.device.type == "cpu" for t in tensors)


def _weights_tensor(weights) -> torch.Tensor:
    """``weights`` (a sequence of numbers, an array or a tensor) as a tensor; TypeError / ValueError for bad ones."""
    if isinstance(weights, (str, bytes, bool, np.bool_)) or isinstance(weights, numbers.Number):
        raise TypeError(f"LineariseRewards requires weights as a sequence of real numbers or a 1-dim tensor, got "
                        f"{type(weights).__name__}: {weights!r}")
    try:
        tensor = weights.detach().clone() if isinstance(weights, torch.Tensor) else torch.tensor(weights)
    except (TypeError, ValueError, RuntimeError) as err:
        raise TypeError(f"LineariseRewards requires weights as a sequence of real numbers or a 1-dim tensor, got "
                        f"{weights!r} ({err})") from None
    if tensor.dtype == torch.bool or tensor.is_complex():
        raise TypeError(f"LineariseRewards requires real-valued weights, got dtype {tensor.dtype}")
    if tensor.ndim >= 2:
        raise ValueError(f"Expected weights to be a unidimensional tensor. Got {tensor.ndim} dimension.")
    if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
        raise ValueError(f"LineariseRewards requires finite weights, got {tensor.tolist()}")
    return tensor


class LineariseRewards(Transform):
    """Turn a vector (multi-objective) reward into a scalar one: the weighted sum over its last dim.

    Each ``out_key`` gets ``(weights * reward).sum(-1, keepdim=True)``
    (shape ``[..., 1]``); the same weights apply to every in_key. The reward
    spec of each out_key becomes ``Unbounded`` of shape ``[..., 1]`` for an
    unbounded reward, and ``Bounded`` with the bounds the weighted sum can
    reach for a bounded one, as in TorchRL. Differences from TorchRL: the sums
    are accumulated in float64 and rounded once (TorchRL rounds each product
    and each partial sum in the reward dtype); a zero weight on an infinite
    bound contributes 0 to the spec bounds (TorchRL gets NaN); weights that
    are not real numbers or not finite are refused.

    Args:
        in_keys: the keys of the vector rewards.
        out_keys: where to write the scalar rewards (default: ``in_keys``).
        weights: one weight per reward entry (sequence or 1-dim tensor;
            keyword only); default all ones. Kept as the buffer ``weights``.

    Raises:
        TypeError: weights that are not real numbers, or a bad key.
        ValueError: weights with 2 or more dims, or not finite; in_keys and
            out_keys of different lengths; at a step or spec transform, a
            reward whose last dim does not match the number of weights.
        NotImplementedError: a discrete reward spec (as TorchRL).
        KeyError: an in_key is missing from a step.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> from numbarl.torch_api import Bounded
        >>> t = LineariseRewards(in_keys=["reward"], out_keys=["scalar"], weights=[2.0, 1.0])
        >>> t(TensorDict({"reward": torch.tensor([1.0, 3.0])}, []))["scalar"]
        tensor([5.])
        >>> spec = t.transform_reward_spec(Bounded(low=-1.0, high=1.0, shape=(2,)))
        >>> spec.low, spec.high
        (tensor([-3.]), tensor([3.]))
    """

    _np_supported = True

    def __init__(self, in_keys, out_keys=None, *, weights=None) -> None:
        if in_keys is None:
            raise TypeError("LineariseRewards requires in_keys (the keys of the vector rewards), got None")
        super().__init__(in_keys=in_keys, out_keys=out_keys)
        if weights is not None:
            self.register_buffer("weights", _weights_tensor(weights))
        else:
            self.weights = None
        set_plain(self, "_host_weights", (None, None))
        set_plain(self, "_out", {})
        set_plain(self, "_dtypes", {})

    # -------------------------------------------------------------- weights
    def _weights_array(self):
        """The weights as a float64 NumPy array (cached until the buffer is replaced or changed in place)."""
        w = self.weights
        stamp = (id(w), w._version, w.device)
        cached_stamp, array = self._host_weights
        if cached_stamp != stamp:
            array = w.detach().cpu().to(torch.float64).numpy().reshape(-1)
            set_plain(self, "_host_weights", (stamp, array))
        return array

    def _check_count(self, num_rewards: int, period: str = ".") -> None:
        if self.weights is not None and self.weights.numel() != num_rewards:
            raise ValueError(f"The number of rewards and weights should match. Got: {num_rewards} and "
                             f"{self.weights.numel()}{period}")

    def _result_dtype(self, dtype: torch.dtype, ndim: int) -> torch.dtype:
        """The dtype torch gives ``(weights * reward).sum(-1)`` (``reward.sum(-1)`` without weights), cached."""
        w = self.weights
        key = (dtype, ndim) if w is None else (dtype, ndim, w.dtype, w.ndim)
        out = self._dtypes.get(key)
        if out is None:
            probe = torch.empty((1,) * max(ndim, 1), dtype=dtype, device="meta")
            if w is not None:
                probe = torch.empty(w.shape, dtype=w.dtype, device="meta") * probe
            out = self._dtypes[key] = probe.sum(-1).dtype
        return out

    # -------------------------------------------------------------- data
    def _apply_transform(self, reward: torch.Tensor) -> torch.Tensor:
        if reward.ndim == 0:
            raise ValueError("LineariseRewards requires rewards with at least one dim (the rewards to sum), got a "
                             "0-dim tensor")
        self._check_count(reward.shape[-1])
        dtype = self._result_dtype(reward.dtype, reward.ndim)
        if dtype in _KERNEL_DTYPES and _kernel_ready(reward) and (
                self.weights is None or not self.weights.is_complex()):
            out = torch.empty(reward.shape[:-1] + (1,), dtype=dtype)
            weights = None if self.weights is None else self._weights_array()
            launch(out, "reward_shaping", "linearise", as_array(reward), weights, out.numpy())
            return out
        return self._torch_sum(reward)

    def _torch_sum(self, reward) -> torch.Tensor:
        """The same sum in torch operations (CUDA tensors, and dtypes the kernels lack)."""
        reward = as_torch(reward)
        if self.weights is None:
            return reward.sum(dim=-1, keepdim=True)
        return (self.weights.to(reward.device) * reward).sum(dim=-1, keepdim=True)

    def _np_step(self, arrays: dict) -> dict:
        for in_key, out_key in zip(self.in_keys, self.out_keys):
            reward = arrays.get(in_key)
            if reward is None:
                if not self._missing_tolerance:
                    raise KeyError(f"LineariseRewards: key {in_key!r} not found; keys present: "
                                   f"{sorted(map(str, arrays))}")
                continue
            arrays[out_key] = self._np_sum(out_key, reward)
        return arrays

    def _np_sum(self, out_key, reward: np.ndarray) -> np.ndarray:
        if reward.ndim == 0:
            raise ValueError("LineariseRewards requires rewards with at least one dim, got a 0-dim array")
        self._check_count(reward.shape[-1])
        dtype = self._result_dtype(torch_dtype(reward.dtype), reward.ndim)
        if dtype not in _KERNEL_DTYPES or reward.dtype not in (np.float32, np.float64):
            return self._torch_sum(reward).numpy()
        shape = reward.shape[:-1] + (1,)
        np_dtype = np.dtype(numpy_dtype(dtype))
        out = self._out.get(out_key)
        if out is None or out.shape != shape or out.dtype != np_dtype:
            out = self._out[out_key] = np.empty(shape, dtype=np_dtype)
        launch(out, "reward_shaping", "linearise", reward, None if self.weights is None else self._weights_array(), out)
        return out

    def _np_reset(self, arrays: dict, mask) -> dict:
        for in_key, out_key in zip(self.in_keys, self.out_keys):
            reward = arrays.get(in_key)
            if reward is not None:  # rewards are not part of a reset
                arrays[out_key] = self._np_sum(out_key, reward)
        return arrays

    # -------------------------------------------------------------- specs
    def transform_reward_spec(self, reward_spec):
        if not isinstance(reward_spec, Composite):
            return self._linearised_spec(reward_spec)
        reward_spec = reward_spec.clone()
        leaves = set(reward_spec.keys(True, True))
        for in_key, out_key in zip(self.in_keys, self.out_keys):
            if in_key in leaves:
                reward_spec[out_key] = self._linearised_spec(reward_spec[in_key])
        return reward_spec

    def _linearised_spec(self, spec):
        if getattr(spec, "domain", None) != "continuous":
            raise NotImplementedError("Aggregation of rewards that take discrete values is not supported.")
        if not spec.shape:
            raise ValueError(f"LineariseRewards requires reward specs with at least one dim (the rewards to sum), "
                             f"got shape {tuple(spec.shape)}")
        *batch, num_rewards = spec.shape
        self._check_count(num_rewards, period="")
        shape = torch.Size([*batch, 1])
        if isinstance(spec, Unbounded):
            return Unbounded(shape=shape, device=spec.device, dtype=spec.dtype)
        if not isinstance(spec, Bounded):
            raise TypeError(f"LineariseRewards requires an Unbounded or Bounded reward spec, got "
                            f"{type(spec).__name__}")
        if self.weights is None:
            w = torch.ones(num_rewards, dtype=torch.float64, device=spec.device)
        else:
            w = self.weights.detach().to(device=spec.device, dtype=torch.float64).reshape(-1)
        low, high = spec.space.low.to(torch.float64), spec.space.high.to(torch.float64)
        zero = torch.zeros((), dtype=torch.float64, device=spec.device)
        pos, neg = w.clamp(min=0), w.clamp(max=0)
        # a zero weight contributes nothing, even against an infinite bound
        new_low = (torch.where(pos != 0, pos * low, zero) + torch.where(neg != 0, neg * high, zero)).sum(-1, True)
        new_high = (torch.where(pos != 0, pos * high, zero) + torch.where(neg != 0, neg * low, zero)).sum(-1, True)
        return Bounded(low=new_low.to(spec.dtype), high=new_high.to(spec.dtype), shape=shape, device=spec.device,
                       dtype=spec.dtype)

    def __repr__(self) -> str:
        weights = None if self.weights is None else self.weights.tolist()
        return f"LineariseRewards(in_keys={self.in_keys}, out_keys={self.out_keys}, weights={weights})"


class TargetReturn(Transform):
    """Carry a target return: ``target_return`` starts at a value at reset and, in mode "reduce", loses each reward.

    The target (``"target_return"`` next to each reward key by default) is
    set to ``target_return`` at reset (only for the sub-envs a ``"_reset"``
    mask names, the others keep theirs), and at each step becomes the
    previous target minus the reward (mode "reduce") or stays as it is (mode
    "constant"). Its spec, ``Unbounded`` shaped and typed like the reward,
    goes into the observation and state specs, as in TorchRL; so it rides
    along in rollouts and is read from the root tensordict at each step. On
    the array path of the rollout the targets are kept in the transform.

    Difference from TorchRL: a target made at a first reset is shaped and
    typed like its spec (TorchRL makes ``[*batch, 1]`` float32 whatever the
    reward; both agree for the usual ``[*batch, 1]`` float32 reward).

    Args:
        target_return: the return to aim for (a real number).
        mode: ``"reduce"`` (default) or ``"constant"``.
        in_keys: the reward keys (default: the reward keys of the parent env).
        out_keys: the target keys (default: each in_key with its last element
            replaced by ``"target_return"``; they must be distinct).
        reset_key: the reset key to read partial-reset masks from (default:
            the parent env's, when it has exactly one).

    Raises:
        ValueError: an unknown ``mode``; NaN ``target_return``; default
            out_keys that repeat; a reward and a target of different shapes.
        TypeError: ``target_return`` not a real number, or a bad key.
        ValueError (also a RuntimeError, as TorchRL raises): ``reset_key``
            not given and the env has several.
        KeyError: an in_key missing from the env's specs or from a step, or
            the target missing from the root tensordict at a step.
        NotImplementedError: called on a tensordict outside an env (as TorchRL).

    Examples:
        >>> import torch
        >>> from numbarl.torch_api import GymEnv, TransformedEnv
        >>> env = TransformedEnv(GymEnv("CartPole-v1"), TargetReturn(10.0, mode="reduce"))
        >>> _ = env.set_seed(0)
        >>> env.rollout(4)["next", "target_return"].squeeze(-1)
        tensor([9., 8., 7., 6.])
    """

    MODES = ["reduce", "constant"]
    MODE_ERR = "Mode can only be 'reduce' or 'constant'."
    _np_supported = True

    def __init__(self, target_return: float, mode: str = "reduce", in_keys=None, out_keys=None, reset_key=None):
        if not isinstance(mode, str) or mode not in self.MODES:
            raise ValueError(f"{self.MODE_ERR} TargetReturn requires mode in {self.MODES}, got {mode!r}")
        if isinstance(target_return, (bool, np.bool_)) or not isinstance(target_return, numbers.Real):
            raise TypeError(f"TargetReturn requires target_return to be a real number, got "
                            f"{type(target_return).__name__}: {target_return!r}")
        if np.isnan(float(target_return)):
            raise ValueError("TargetReturn requires target_return to be a number, got nan")
        given_in = None if in_keys is None else key_list(in_keys, "in_keys")
        given_out = None if out_keys is None else key_list(out_keys, "out_keys")
        if given_in is not None and given_out is not None and len(given_in) != len(given_out):
            raise ValueError(f"out_keys must have the same length as in_keys, got {len(given_out)} and "
                             f"{len(given_in)}")
        reset_key = None if reset_key is None else key_list(reset_key, "reset_key")
        if reset_key is not None and len(reset_key) != 1:
            raise ValueError(f"TargetReturn requires one reset_key, got {reset_key!r}")
        super().__init__()
        set_plain(self, "target_return", float(target_return))
        set_plain(self, "mode", mode)
        set_plain(self, "_given_in", given_in)
        set_plain(self, "_given_out", given_out)
        set_plain(self, "_auto_in", None)
        set_plain(self, "_reset_key", None if reset_key is None else reset_key[0])
        set_plain(self, "_out_specs", {})
        set_plain(self, "_targets", {})

    # ------------------------------------------------------------------ keys
    def set_container(self, container) -> None:
        super().set_container(container)
        set_plain(self, "_auto_in", None)  # keys read from another env's specs no longer hold

    @property
    def in_keys(self):
        if self.__dict__.get("_given_in") is not None:
            return self._given_in
        if self._auto_in is None:
            env = container_env(self)
            if env is None:
                raise TypeError("TargetReturn: in_keys were not given and the transform has no parent env; pass "
                                "in_keys=['reward'] when using it outside an env")
            ensure_specs(self)  # transform_output_spec reads them from the specs it is given
            if self._auto_in is None:
                set_plain(self, "_auto_in", list(env.reward_keys))
        return self._auto_in

    @in_keys.setter
    def in_keys(self, value) -> None:
        set_plain(self, "_given_in", None if value is None else key_list(value, "in_keys"))

    @property
    def out_keys(self):
        if self.__dict__.get("_given_out") is not None:
            return self._given_out
        keys = [with_leaf(k, "target_return") for k in self.in_keys]
        if len(set(keys)) < len(keys):
            raise ValueError("Could not infer the target_return because multiple rewards are located at the same "
                             f"level: {self.in_keys}; pass out_keys to TargetReturn")
        return keys

    @out_keys.setter
    def out_keys(self, value) -> None:
        set_plain(self, "_given_out", None if value is None else key_list(value, "out_keys"))

    @property
    def reset_key(self):
        if self._reset_key is not None:
            return self._reset_key
        env = container_env(self)
        if env is None:
            raise TypeError("TargetReturn: reset_key was not given and the transform has no parent env; pass "
                            "reset_key='_reset' when using it outside an env")
        keys = env.reset_keys
        if len(keys) != 1:
            raise CompatValueError(f"Got more than one reset key in env {keys}, cannot infer which one to use. "
                                   "Consider providing the reset key in the TargetReturn constructor.")
        set_plain(self, "_reset_key", keys[0])
        return keys[0]

    @reset_key.setter
    def reset_key(self, value) -> None:
        set_plain(self, "_reset_key", None if value is None else key_list(value, "reset_key")[0])

    # --------------------------------------------------------- tensordicts
    def _fresh(self, out_key, batch, device) -> torch.Tensor:
        """A target at a first reset: shaped and typed like its spec when known, else ``[*batch, 1]`` float32."""
        spec = self._out_specs.get(out_key)
        if spec is None and container_env(self) is not None:
            ensure_specs(self)
            spec = self._out_specs.get(out_key)
        if spec is not None:
            shape, dtype = tuple(spec.shape), spec.dtype
        else:
            shape, dtype = tuple(batch) + (1,), torch.float32
        return torch.full(shape, self.target_return, dtype=dtype, device=device)

    def _reset_mask(self, tensordict, like):
        """The reset request as a bool tensor over the leading dims of ``like``; None when every entry resets."""
        key = self.reset_key
        request = tensordict.get(key, None)
        if request is None:
            return None
        parent = tensordict.get(key[:-1], None) if isinstance(key, tuple) else tensordict
        nb = (parent if isinstance(parent, TensorDictBase) else tensordict).batch_dims
        mask = request.to(torch.bool)
        if mask.ndim > nb:
            mask = mask.flatten(nb, -1).any(-1)
        if tuple(like.shape[:mask.ndim]) != tuple(mask.shape):
            raise ValueError(f"TargetReturn: the reset request {key!r} of shape {tuple(request.shape)} does not fit "
                             f"the target of shape {tuple(like.shape)}")
        return mask

    def _reset(self, tensordict, tensordict_reset):
        leaf = first_leaf(tensordict_reset)
        device = tensordict_reset.device or (leaf.device if leaf is not None else None)
        for out_key in self.out_keys:
            prev = None if tensordict is None else tensordict.get(out_key, None)
            if prev is None:
                tensordict_reset.set(out_key, self._fresh(out_key, tensordict_reset.batch_size, device))
                continue
            mask = self._reset_mask(tensordict, prev)
            if mask is None:
                value = torch.full_like(prev, self.target_return)
            elif _kernel_ready(prev):
                value = torch.empty(prev.shape, dtype=prev.dtype)
                launch(value, "reward_shaping", "target_return_reset", as_array(prev), as_array(mask.cpu()),
                       self.target_return, value.numpy())
            else:
                mask = mask.to(prev.device).reshape(tuple(mask.shape) + (1,) * (prev.ndim - mask.ndim))
                value = torch.where(mask, torch.full_like(prev, self.target_return), prev)
            tensordict_reset.set(out_key, value)
        return tensordict_reset

    def _step(self, tensordict, next_tensordict):
        for out_key in self.out_keys:
            prev = tensordict.get(out_key, None)
            if prev is None:
                raise KeyError(f"TargetReturn: {out_key!r} not found in the root tensordict (it is set at reset); "
                               f"keys present: {sorted(map(str, tensordict.keys(True, True)))}")
            next_tensordict.set(out_key, prev)
        return self._call(next_tensordict)

    def _call(self, next_tensordict):
        for in_key, out_key in zip(self.in_keys, self.out_keys):
            reward = next_tensordict.get(in_key, None)
            if reward is None:
                self._missing(in_key, next_tensordict)
                continue
            target = next_tensordict.get(out_key, None)
            if target is None:
                raise KeyError(f"TargetReturn: {out_key!r} not found; keys present: "
                               f"{sorted(map(str, next_tensordict.keys(True, True)))}")
            next_tensordict.set(out_key, self._apply_transform(reward, target))
        return next_tensordict

    def _apply_transform(self, reward: torch.Tensor, target_return: torch.Tensor) -> torch.Tensor:
        if target_return.shape != reward.shape:
            raise ValueError(f"The shape of the reward ({reward.shape}) and target return ({target_return.shape}) "
                             "must match.")
        if self.mode == "constant":
            return target_return
        if _kernel_ready(reward, target_return):
            out = torch.empty(reward.shape, dtype=torch.promote_types(target_return.dtype, reward.dtype))
            launch(out, "reward_shaping", "target_return_step", as_array(target_return), as_array(reward),
                   out.numpy(), True)
            return out
        return target_return - reward

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        raise NotImplementedError("class TargetReturn cannot be executed without a parent environment: it reads "
                                  "the previous target at each step (use it inside a TransformedEnv)")

    # -------------------------------------------------------------- arrays
    def _np_reset(self, arrays: dict, mask) -> dict:
        for out_key in self.out_keys:
            state = self._targets.get(out_key)
            spec = self._out_specs.get(out_key)
            if spec is None:
                ensure_specs(self)
                spec = self._out_specs[out_key]
            shape = tuple(spec.shape)
            where = mask
            if state is None or state.shape != shape:
                state = self._targets[out_key] = np.empty(shape, dtype=np.dtype(numpy_dtype(spec.dtype)))
                where = None
            if state.dtype in (np.float32, np.float64):
                launch(state, "reward_shaping", "target_return_reset", state, where, self.target_return, state)
            elif where is None:
                state[...] = self.target_return
            else:
                state[where] = self.target_return
            arrays[out_key] = state
        return arrays

    def _np_step(self, arrays: dict) -> dict:
        for in_key, out_key in zip(self.in_keys, self.out_keys):
            reward = arrays.get(in_key)
            state = self._targets.get(out_key)
            if state is None:
                raise KeyError(f"TargetReturn: no target for {out_key!r} before a reset; reset the env first")
            if reward is None:
                if not self._missing_tolerance:
                    raise KeyError(f"TargetReturn: key {in_key!r} not found; keys present: "
                                   f"{sorted(map(str, arrays))}")
            elif self.mode == "reduce":
                if reward.shape != state.shape:
                    raise ValueError(f"The shape of the reward ({reward.shape}) and target return ({state.shape}) "
                                     "must match.")
                if state.dtype in (np.float32, np.float64) and reward.dtype in (np.float32, np.float64):
                    launch(state, "reward_shaping", "target_return_step", state, reward, state, True)
                else:
                    np.subtract(state, reward, out=state, casting="unsafe")
            arrays[out_key] = state
        return arrays

    # --------------------------------------------------------------- specs
    def transform_output_spec(self, output_spec):
        output_spec = output_spec.clone()
        parts = [output_spec[name] for name in ("full_observation_spec", "full_reward_spec", "full_done_spec")
                 if name in output_spec.keys()]
        if self._given_in is None:
            set_plain(self, "_auto_in", list(output_spec["full_reward_spec"].keys(True, True)))
        observation = output_spec["full_observation_spec"]
        out_specs = {}
        for in_key, out_key in zip(self.in_keys, self.out_keys):
            target = None
            for part in parts:
                if in_key in part.keys(True, True):
                    target = part[in_key]
                    break
            if target is None:
                present = sorted(str(k) for part in parts for k in part.keys(True, True))
                raise KeyError(f"TargetReturn: in_key {in_key!r} not found in the env's output specs; keys: {present}")
            spec = Unbounded(shape=target.shape, dtype=target.dtype, device=target.device)
            observation[out_key] = spec
            out_specs[out_key] = spec
        set_plain(self, "_out_specs", out_specs)
        return output_spec

    def transform_input_spec(self, input_spec):
        return carried_state_specs(self, input_spec)

    def __repr__(self) -> str:
        return (f"TargetReturn(target_return={self.target_return}, mode={self.mode!r}, in_keys={self._given_in}, "
                f"out_keys={self._given_out})")
