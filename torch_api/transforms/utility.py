"""Utility transforms: ``TensorDictPrimer``, ``BatchSizeTransform``, ``BurnInTransform``.

Same arguments, keys and specs as TorchRL 0.14.1. They work on TensorDicts
only (no array path): a primer's entries may be changed by the policy, a
batch-size change reshapes whole tensordicts, and burn-in runs modules over
stored sequences.

Examples:
    >>> import torch
    >>> from numbarl.torch_api import GymEnv, TransformedEnv, Unbounded
    >>> env = TransformedEnv(GymEnv("Pendulum-v1"), TensorDictPrimer(hidden=Unbounded((2,))))
    >>> env.reset()["hidden"]
    tensor([0., 0.])
"""
from __future__ import annotations

from typing import Callable

import torch
from tensordict import TensorDict, TensorDictBase

from .._attrs import set_plain
from ..specs import Composite, TensorSpec
from .base import Transform
from ._checks import CompatValueError, check_bool, check_int
from ._env_chain import container_env
from .keys import one_key

__all__ = ["TensorDictPrimer", "BatchSizeTransform", "BurnInTransform"]


# ------------------------------------------------------------------ TensorDictPrimer
def _callable_name(value):
    return "Callable" if callable(value) else value


class TensorDictPrimer(Transform):
    """Add entries (e.g. recurrent states) to the env's data, filled at every reset.

    Each primer entry is added to the observation and state specs. At reset
    it is filled with ``default_value`` (0 by default) or, with
    ``random=True``, drawn from its spec; on a partial reset (``"_reset"``
    set for some sub-envs) only those sub-envs get new values and the others
    keep theirs. At each step the current value is carried into ``"next"``
    unless the env (or an earlier transform) wrote it; a step input without
    the entry gets the reset value. Called on a
    tensordict outside an env, the transform writes the entries there.

    A primer Composite whose batch shape differs from the env's batch size is
    expanded to it when ``expand_specs=True`` and refused otherwise (as in
    TorchRL); called on a tensordict, the transform always expands them
    (TorchRL refuses). With ``call_before_env_reset=True`` the values are
    written into the tensordict the base env's reset receives, so the env can
    read them, and they are in the reset output too (TorchRL 0.14.1 leaves
    them out of it, although its observation spec lists them).

    Args:
        primers: a dict of key -> spec, or a ``Composite``.
        random: draw the values from the specs (default False).
        default_value: a number, a callable returning a tensor, or a dict of those per key.
        reset_key: the partial-reset key (default ``"_reset"``).
        expand_specs: expand the primers to the env's batch size.
        single_default_value: ``default_value`` is one callable that returns a
            tensordict of every entry; it gets ``reset=`` the partial-reset mask.
        call_before_env_reset: write the values before the base env's reset (see above).
        **kwargs: key=spec entries (instead of ``primers``).

    Raises:
        TypeError: a primer is not a TensorSpec, ``primers`` is not a dict or Composite,
            a key is not a str or tuple of str, or a flag is not a bool.
        ValueError: both ``primers`` and keyword specs, ``random`` with a ``default_value``,
            a ``default_value`` dict whose keys differ from the primers', or primers whose
            batch shape does not fit the env's batch size.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> from numbarl.torch_api import Unbounded
        >>> t = TensorDictPrimer(h=Unbounded((3,)), default_value=1.0)
        >>> t(TensorDict({}, [2]))["h"]
        tensor([[1., 1., 1.],
                [1., 1., 1.]])
    """

    def __init__(self, primers=None, random: bool | None = None, default_value=None, reset_key=None,
                 expand_specs: bool | None = None, single_default_value: bool = False,
                 call_before_env_reset: bool = False, **kwargs):
        owner = "TensorDictPrimer"
        if primers is not None and kwargs:
            raise ValueError(f"TensorDictPrimer takes primers or keyword specs, not both; got primers and "
                             f"{sorted(kwargs)}")
        source = kwargs if primers is None else primers
        if not isinstance(source, (dict, Composite)):
            raise TypeError(f"TensorDictPrimer requires primers to be a dict or a Composite, got "
                            f"{type(source).__name__}")
        if isinstance(source, Composite):
            spec = source.clone()
        else:
            spec = Composite()
            for key, value in source.items():
                key = one_key(key, owner, "a primer key")
                if not isinstance(value, TensorSpec):
                    raise TypeError(f"TensorDictPrimer requires TensorSpec primers, got {type(value).__name__} "
                                    f"for key {key!r}")
                spec[key] = value
        for name, flag in (("random", random), ("expand_specs", expand_specs)):
            if flag is not None:
                check_bool(flag, owner, name)
        check_bool(single_default_value, owner, "single_default_value")
        check_bool(call_before_env_reset, owner, "call_before_env_reset")
        # TorchRL counts a zero or an empty dict as no default_value (its check is a truth test)
        no_default = default_value is None or (isinstance(default_value, dict) and not default_value) or (
            isinstance(default_value, (int, float)) and not isinstance(default_value, bool) and default_value == 0)
        if random and not no_default:
            raise ValueError("TensorDictPrimer: setting random to True and providing a default_value are "
                             f"incompatible, got default_value={default_value!r}")
        if random:
            default_value = None
        keys = list(spec.keys(True, True))
        if single_default_value:
            if not callable(default_value):
                raise TypeError(f"TensorDictPrimer with single_default_value=True requires a callable "
                                f"default_value, got {default_value!r}")
            defaults = default_value
        elif isinstance(default_value, dict):
            defaults = {one_key(k, owner, "a default_value key"): v for k, v in default_value.items()}
            if set(defaults) != set(keys):
                raise ValueError(f"TensorDictPrimer requires default_value keys to match the primers, got "
                                 f"{sorted(map(str, defaults))} and {sorted(map(str, keys))}")
        else:
            value = 0.0 if default_value is None else default_value
            if not callable(value) and not isinstance(value, (int, float, bool, torch.Tensor)):
                raise TypeError(f"TensorDictPrimer requires default_value to be a number, a callable or a dict, "
                                f"got {default_value!r}")
            defaults = {k: value for k in keys}
        reset_key = "_reset" if reset_key is None else one_key(reset_key, owner, "reset_key")
        super().__init__()
        set_plain(self, "primers", spec)
        set_plain(self, "random", random)
        set_plain(self, "default_value", defaults)
        set_plain(self, "reset_key", reset_key)
        set_plain(self, "expand_specs", expand_specs)
        set_plain(self, "single_default_value", single_default_value)
        set_plain(self, "call_before_env_reset", call_before_env_reset)
        set_plain(self, "_env_primers", None)

    def set_container(self, container) -> None:
        super().set_container(container)
        set_plain(self, "_env_primers", None)

    # ------------------------------------------------------------ values
    def _fit(self, batch_size, expand=None):
        """The primers with batch shape ``batch_size`` (expanded when allowed)."""
        spec = self.primers
        batch_size = torch.Size(batch_size)
        if spec.shape == batch_size:
            return spec
        expand = self.expand_specs if expand is None else expand
        if not expand or len(spec.shape) > len(batch_size) or \
                batch_size[len(batch_size) - len(spec.shape):] != spec.shape:
            hint = "" if expand else "; pass expand_specs=True to expand them"
            raise CompatValueError(f"TensorDictPrimer primers have batch shape {tuple(spec.shape)}, which does not fit "
                                   f"the batch size {tuple(batch_size)}{hint}")
        return spec.expand(batch_size)

    def _specs(self):
        spec = self._env_primers
        if spec is None:
            env = container_env(self)
            if env is not None:
                env.output_spec  # noqa: B018 - computing the specs expands the primers
                spec = self._env_primers
        return self.primers if spec is None else spec

    def _value(self, key, spec, data=None):
        if data is not None:
            value = data.get(key)
            return value if value.shape == spec.shape else value.expand(spec.shape)
        if self.random:
            return spec.rand()
        default = self.default_value[key]
        if callable(default):
            value = torch.as_tensor(default(), device=spec.device).to(spec.dtype)
            return value if value.shape == spec.shape else value.expand(spec.shape).clone()
        return torch.full(spec.shape, default, dtype=spec.dtype, device=spec.device)

    def _fill(self, target, specs, mask=None, previous=None, skip_present=False):
        data = None
        if self.single_default_value:
            data = self.default_value(reset=mask) if mask is not None else self.default_value()
        present = set(target.keys(True, True)) if skip_present else ()
        for key, spec in specs.items(True, True):
            if key in present:
                continue
            if data is not None and mask is not None:
                old = previous.get(key, None) if previous is not None else None
                value = old.clone() if old is not None else spec.zero()
                value[mask] = data.get(key).to(value.dtype)
            else:
                value = self._value(key, spec, data)
                if mask is not None and previous is not None:
                    old = previous.get(key, None)
                    if old is not None:
                        m = mask.reshape(mask.shape + (1,) * (value.ndim - mask.ndim))
                        value = torch.where(m, value, old)
            target.set(key, value)
        return target

    def forward(self, tensordict):
        return self._fill(tensordict, self._fit(tensordict.batch_size, expand=True))

    def _call(self, next_tensordict):
        return next_tensordict

    def _reset_mask(self, tensordict, specs):
        """The sub-envs a partial reset of ``tensordict`` resets, as a bool tensor; None when it resets all."""
        if tensordict is None:
            return None
        request = tensordict.get(self.reset_key, None)
        if request is None or not len(specs.shape):
            return None
        mask = request.reshape(tuple(specs.shape)).bool()
        return None if bool(mask.all()) else mask

    def _reset_env_preprocess(self, tensordict):
        """With ``call_before_env_reset``: the reset input (a shallow copy) with the primed entries set.

        The base env's reset then reads them; after a partial reset the
        sub-envs not reset keep the values they had in ``tensordict``.
        """
        if not self.call_before_env_reset:
            return tensordict
        specs = self._specs()
        if tensordict is None:
            target = TensorDict(batch_size=specs.shape, device=specs.device)
        else:
            target = tensordict.clone(False)
        return self._fill(target, specs, self._reset_mask(tensordict, specs), tensordict)

    def _reset(self, tensordict, tensordict_reset):
        specs = self._specs()
        if self.call_before_env_reset and tensordict is not None:
            # the values primed before the base reset, unless the env wrote its own
            present = set(tensordict_reset.keys(True, True))
            for key in specs.keys(True, True):
                value = tensordict.get(key, None)
                if key not in present and value is not None:
                    tensordict_reset.set(key, value)
        mask = self._reset_mask(tensordict, specs)
        return self._fill(tensordict_reset, specs, mask, tensordict, skip_present=True)

    def _step(self, tensordict, next_tensordict):
        present = set(next_tensordict.keys(True, True))
        missing = None
        for key in self.primers.keys(True, True):
            if key not in present:
                value = tensordict.get(key, None)
                if value is None:  # an input without the entry (e.g. a bare action): the reset value
                    if missing is None:
                        missing = self._fill(TensorDict(batch_size=next_tensordict.batch_size), self._specs())
                    value = missing.get(key)
                next_tensordict.set(key, value.clone())
        return next_tensordict

    # ------------------------------------------------------------ specs
    def transform_observation_spec(self, observation_spec):
        specs = self._fit(observation_spec.shape)
        if observation_spec.device is not None:
            specs = specs.to(observation_spec.device)
        set_plain(self, "_env_primers", specs)
        for key, spec in specs.items(True, True):
            observation_spec[key] = spec.clone()
        return observation_spec

    def transform_state_spec(self, state_spec):
        specs = self._fit(state_spec.shape)
        if state_spec.device is not None:
            specs = specs.to(state_spec.device)
        for key, spec in specs.items(True, True):
            state_spec[key] = spec.clone()
        return state_spec

    def _apply(self, fn, *args, **kwargs):
        out = super()._apply(fn, *args, **kwargs)
        device = fn(torch.zeros(())).device  # where .to() / .cuda() / .cpu() send tensors
        if any(s.device != device for s in self.primers.values(True, True)):
            set_plain(self, "primers", self.primers.to(device))
            set_plain(self, "_env_primers", None)
        return out

    def __repr__(self) -> str:
        if self.single_default_value:
            default = "Callable"
        else:
            default = {k: _callable_name(v) for k, v in self.default_value.items()}
        return f"TensorDictPrimer(primers={self.primers}, default_value={default}, random={self.random})"


# ------------------------------------------------------------------ BatchSizeTransform
def _reshape_spec(spec, old, new, expand):
    """``spec`` (batch shape ``old``) with batch shape ``new``: expanded, or reshaped."""
    nb = len(old)
    if isinstance(spec, Composite):
        out = Composite(shape=new, device=spec.device)
        for key, child in spec.items():
            out[key] = None if child is None else _reshape_spec(child, old, new, expand)
        return out
    feature = spec.shape[nb:]
    if expand:
        return spec.expand(tuple(new) + tuple(feature))
    return spec._derive(tuple(new) + tuple(feature), lambda t: t.reshape(tuple(new) + tuple(t.shape[nb:])))


class BatchSizeTransform(Transform):
    """Give the env another batch size: expand it (``batch_size``) or reshape it (``reshape_fn``).

    ``reshape_fn`` maps a tensordict of the base env's batch size to the new
    one (``reshape``, ``unsqueeze``, ``flatten``, ...): outputs and specs
    are reshaped the same way and inputs are reshaped back. ``batch_size``
    expands the base env's batch to the new size; inputs go back to the base
    batch size when it has as many elements (a batch-locked env), and as they
    are otherwise (an env that takes any batch size). ``reset_func(tensordict,
    tensordict_reset[, env=env])`` may build the reset output instead.

    Args:
        batch_size: the new batch size (keyword-only; exclusive with ``reshape_fn``).
        reshape_fn: a callable on tensordicts (keyword-only).
        reset_func: a callable making the reset output (keyword-only).
        env_kwarg: pass the transformed env to ``reset_func`` as ``env=``.

    Raises:
        TypeError: ``batch_size`` is not a size, ``reshape_fn`` / ``reset_func`` is not
            callable, or ``env_kwarg`` is not a bool.
        ValueError: not exactly one of ``batch_size`` and ``reshape_fn``, ``env_kwarg``
            without ``reset_func``, or a batch size the base env's cannot become.

    Examples:
        >>> from numbarl.torch_api import GymEnv, TransformedEnv
        >>> env = TransformedEnv(GymEnv("CartPole-v1"), BatchSizeTransform(batch_size=[1]))
        >>> env.batch_size, env.rollout(3)["observation"].shape
        (torch.Size([1]), torch.Size([1, 3, 4]))
    """

    def __init__(self, *, batch_size=None, reshape_fn: Callable | None = None,
                 reset_func: Callable | None = None, env_kwarg: bool = False):
        if (batch_size is None) == (reshape_fn is None):
            raise ValueError("BatchSizeTransform requires exactly one of batch_size and reshape_fn, got "
                             f"batch_size={batch_size!r} and reshape_fn={reshape_fn!r}")
        if batch_size is not None:
            try:
                batch_size = torch.Size([batch_size] if isinstance(batch_size, int) else batch_size)
            except TypeError:
                raise TypeError(f"BatchSizeTransform requires batch_size to be a torch.Size or a sequence of "
                                f"ints, got {batch_size!r}") from None
            if any(s < 0 for s in batch_size):
                raise ValueError(f"BatchSizeTransform requires non-negative sizes, got {tuple(batch_size)}")
        if reshape_fn is not None and not callable(reshape_fn):
            raise TypeError(f"BatchSizeTransform requires reshape_fn to be callable, got {reshape_fn!r}")
        if reset_func is not None and not callable(reset_func):
            raise TypeError(f"BatchSizeTransform requires reset_func to be callable, got {reset_func!r}")
        check_bool(env_kwarg, "BatchSizeTransform", "env_kwarg")
        if env_kwarg and reset_func is None:
            raise ValueError("BatchSizeTransform requires reset_func when env_kwarg=True")
        super().__init__()
        set_plain(self, "batch_size", batch_size)
        set_plain(self, "reshape_fn", reshape_fn)
        set_plain(self, "reset_func", reset_func)
        set_plain(self, "env_kwarg", env_kwarg)
        set_plain(self, "_base", None)

    def transform_env_batch_size(self, batch_size):
        """The env's batch size as seen through this transform."""
        batch_size = torch.Size(batch_size)
        set_plain(self, "_base", batch_size)
        if self.batch_size is not None:
            new = self.batch_size
            if not _expandable(batch_size, new) and batch_size.numel() != new.numel():
                raise ValueError(f"BatchSizeTransform cannot turn the env batch size {tuple(batch_size)} into "
                                 f"batch_size={tuple(new)}")
            return new
        return self.reshape_fn(TensorDict(batch_size=batch_size)).batch_size

    def _outward(self, tensordict):
        if self.reshape_fn is not None:
            return self.reshape_fn(tensordict)
        if tensordict.batch_size == self.batch_size:
            return tensordict
        if _expandable(tensordict.batch_size, self.batch_size):
            return tensordict.expand(self.batch_size).clone()
        return tensordict.reshape(self.batch_size)

    def _call(self, next_tensordict):
        return self._outward(next_tensordict)

    def forward(self, tensordict):
        return tensordict if self.reshape_fn is None else self.reshape_fn(tensordict)

    def _reset(self, tensordict, tensordict_reset):
        if self.reset_func is not None:
            kwargs = {"env": container_env(self)} if self.env_kwarg else {}
            return self.reset_func(tensordict, tensordict_reset, **kwargs)
        return self._outward(tensordict_reset)

    def _inv_call(self, tensordict):
        base = self._base
        if base is None or tensordict.batch_size == base:
            return tensordict
        if tensordict.batch_size.numel() == base.numel():
            return tensordict.reshape(base)
        return tensordict

    def _reshape(self, spec):
        old = spec.shape
        new = self.transform_env_batch_size(old)
        return _reshape_spec(spec, old, new, self.reshape_fn is None and _expandable(old, new))

    def transform_output_spec(self, output_spec):
        return self._reshape(output_spec)

    def transform_input_spec(self, input_spec):
        return self._reshape(input_spec)

    def __repr__(self) -> str:
        return f"BatchSizeTransform(batch_size={self.batch_size}, reshape_fn={self.reshape_fn})"


def _expandable(old, new) -> bool:
    old, new = tuple(old), tuple(new)
    return len(new) >= len(old) and all(o in (1, n) for o, n in zip(old[::-1], new[::-1]))


# ------------------------------------------------------------------ BurnInTransform
def _module_keys(modules):
    from tensordict.utils import unravel_key

    ins, outs = [], []
    for m in modules:
        for k in getattr(m, "in_keys", []):
            k = unravel_key(k)
            if k not in ins:
                ins.append(k)
        for k in getattr(m, "out_keys", []):
            k = unravel_key(k)
            if isinstance(k, tuple) and k[0] == "next":
                k = k[1] if len(k) == 2 else k[1:]
                if k not in outs:
                    outs.append(k)
    return sorted(ins, key=str), outs


class BurnInTransform(Transform):
    """Run modules over the first ``burn_in`` steps of stored sequences and keep the rest.

    For tensordicts whose last batch dim is time, the modules run (without
    gradients) over steps ``0 .. burn_in - 1``; the ``("next", key)`` outputs
    of the last burnt-in step become ``key`` at the first kept step, and the
    steps from ``burn_in`` on are returned. This refreshes recurrent states
    of sequences sampled from a replay buffer. As in TorchRL, it works on
    stored data only, not inside an env; unlike TorchRL it also takes a
    single sequence (one batch dim).

    Args:
        modules: a ``TensorDictModuleBase`` or a sequence of them, run in order.
        burn_in: the number of steps to burn in (>= 1).
        out_keys: the keys to carry over (default: the modules' ``("next", key)`` outputs).

    Raises:
        TypeError: a module is not a ``TensorDictModuleBase``, ``burn_in`` is not an int, a
            key is not a str or tuple of str, or the transform is put in an env.
        ValueError: ``burn_in < 1``, or sequences not longer than ``burn_in``.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> from tensordict.nn import TensorDictModule
        >>> step = TensorDictModule(lambda h, x: h + x, in_keys=["hidden", "x"], out_keys=[("next", "hidden")])
        >>> t = BurnInTransform([step], burn_in=2)
        >>> td = TensorDict({"x": torch.ones(1, 4, 1), "hidden": torch.zeros(1, 4, 1)}, [1, 4])
        >>> out = t(td)
        >>> out.shape, out["hidden"].squeeze(-1)
        (torch.Size([1, 2]), tensor([[1., 0.]]))
    """

    def __init__(self, modules, burn_in: int, out_keys=None):
        from tensordict.nn import TensorDictModuleBase

        if isinstance(modules, TensorDictModuleBase):
            modules = [modules]
        try:
            modules = list(modules)
        except TypeError:
            raise TypeError(f"BurnInTransform requires modules to be a TensorDictModuleBase or a sequence of them, "
                            f"got {type(modules).__name__}") from None
        for m in modules:
            if not isinstance(m, TensorDictModuleBase):
                raise TypeError(f"BurnInTransform requires TensorDictModuleBase modules, got {type(m).__name__}")
        burn_in = check_int(burn_in, "BurnInTransform", "burn_in", minimum=1)
        ins, outs = _module_keys(modules)
        if out_keys is not None:
            from .._keys import key_list

            outs = key_list(out_keys, "out_keys")
        super().__init__()
        set_plain(self, "in_keys", ins)
        set_plain(self, "out_keys", outs)
        set_plain(self, "modules", modules)  # a plain list, as in TorchRL: the modules' parameters are not this transform's
        set_plain(self, "burn_in", burn_in)

    def set_container(self, container) -> None:
        from .transformed_env import TransformedEnv

        if isinstance(container, TransformedEnv):
            raise TypeError("BurnInTransform works on stored sequences (call it on a tensordict or use it as a "
                            "replay-buffer transform), not inside an env")
        super().set_container(container)

    def _in_env(self, *args):
        raise TypeError("BurnInTransform works on stored sequences (call it on a tensordict or use it as a "
                        "replay-buffer transform), not inside an env")

    _step = _in_env
    _reset = _in_env
    transform_output_spec = _in_env
    transform_input_spec = _in_env

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        single = tensordict.ndim == 1
        if tensordict.ndim == 0:
            raise ValueError("BurnInTransform requires a tensordict whose last batch dim is time, got batch_size "
                             "()")
        if single:
            tensordict = tensordict.unsqueeze(0)
        steps = tensordict.shape[-1]
        if steps <= self.burn_in:
            raise ValueError(f"BurnInTransform requires sequences longer than burn_in={self.burn_in}, got "
                             f"{steps} steps")
        burn = tensordict[..., :self.burn_in].clone()
        with torch.no_grad():
            for module in self.modules:
                burn = module(burn)
        out = tensordict[..., self.burn_in:].clone()
        for key in self.out_keys:
            nested = ("next",) + (key if isinstance(key, tuple) else (key,))
            value = burn.get(nested).select(out.ndim - 1, -1)  # the last burnt-in step
            current = out.get(key, None)
            if current is None:
                current = torch.zeros(out.shape + value.shape[out.ndim - 1:], dtype=value.dtype, device=value.device)
            current = current.clone()
            current.select(out.ndim - 1, 0).copy_(value)
            out.set(key, current)
        return out.squeeze(0) if single else out

    _call = forward

    def __repr__(self) -> str:
        return f"BurnInTransform(burn_in={self.burn_in}, in_keys={self.in_keys}, out_keys={self.out_keys})"
