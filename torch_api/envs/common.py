"""``EnvBase``: the environment base class, with TorchRL 0.14.1's semantics.

A subclass sets its specs in ``__init__`` and implements ``_reset``, ``_step``
and ``_set_seed`` exactly as it would for TorchRL. Environments that can step
on NumPy buffers (``GymEnv``, the batched envs, and ``TransformedEnv`` over
them when every transform has an array path) also implement ``_np_reset`` and
``_np_step``; ``rollout`` then preallocates its output and writes every step
into it through array views instead of building a TensorDict per step.

Examples:
    >>> import torch
    >>> from tensordict import TensorDict
    >>> from numbarl.torch_api import Composite, Unbounded
    >>> class Counter(EnvBase):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.observation_spec = Composite(count=Unbounded((1,)))
    ...         self.action_spec = Unbounded((1,))
    ...         self.reward_spec = Unbounded((1,))
    ...     def _reset(self, td):
    ...         self.n = torch.zeros(1)
    ...         return TensorDict({"count": self.n.clone()}, [])
    ...     def _step(self, td):
    ...         self.n += td["action"]
    ...         return TensorDict({"count": self.n.clone(), "reward": self.n.clone(),
    ...                            "done": self.n >= 3}, [])
    ...     def _set_seed(self, seed):
    ...         pass
    >>> env = Counter()
    >>> out = env.rollout(10, actions=[torch.ones(1)] * 10)
    >>> out["next", "count"].squeeze(-1)
    tensor([1., 2., 3.])
    >>> sorted(env.done_keys)
    ['done', 'terminated']
"""
from __future__ import annotations

from typing import Any, Callable, Iterable

import torch
from tensordict import TensorDict, TensorDictBase
from torch import nn

from .._attrs import set_plain
from ..specs import Categorical, Composite, TensorSpec
from .utils import seed_generator, step_mdp

__all__ = ["EnvBase"]


def _as_batch_size(batch_size) -> torch.Size:
    if batch_size is None:
        return torch.Size([])
    if isinstance(batch_size, int):
        return torch.Size([batch_size])
    try:
        size = torch.Size(batch_size)
    except TypeError:
        raise TypeError(f"batch_size must be a torch.Size, a tuple of ints or an int, got {batch_size!r}") from None
    if any(s < 0 for s in size):
        raise ValueError(f"batch_size must hold non-negative sizes, got {tuple(size)}")
    return size


def _empty_output_spec(batch_size, device) -> Composite:
    return Composite(full_observation_spec=Composite(shape=batch_size, device=device),
                     full_reward_spec=Composite(shape=batch_size, device=device),
                     full_done_spec=Composite(shape=batch_size, device=device),
                     shape=batch_size, device=device)


def _empty_input_spec(batch_size, device) -> Composite:
    return Composite(full_state_spec=Composite(shape=batch_size, device=device),
                     full_action_spec=Composite(shape=batch_size, device=device),
                     shape=batch_size, device=device)


def _done_leaf(batch_size, device) -> Categorical:
    return Categorical(2, shape=(*batch_size, 1), dtype=torch.bool, device=device)


class EnvBase(nn.Module):
    """Base class of every environment; see the module docstring for an example.

    Args:
        device: where the env's tensors live (``None``: wherever they are made).
        batch_size: the env's batch size (``torch.Size([])`` for a single env).
        run_type_checks: check every step's output against the specs.
        allow_done_after_reset: accept a reset that returns ``done=True``.
        spec_locked: accepted for compatibility; specs are replaced, not mutated.
        auto_reset: accepted for compatibility.
    """

    _np_path = False  # subclasses that implement _np_reset / _np_step set this

    def __init__(self, *, device=None, batch_size=None, run_type_checks: bool = False,
                 allow_done_after_reset: bool = False, spec_locked: bool = True, auto_reset: bool = False):
        super().__init__()
        device = torch.device(device) if device is not None else None
        batch_size = _as_batch_size(batch_size)
        d = self.__dict__
        d["_device"] = device
        d["_batch_size"] = batch_size
        d["_output_spec"] = self._initial_spec("_output_spec", _empty_output_spec(batch_size, device))
        d["_input_spec"] = self._initial_spec("_input_spec", _empty_input_spec(batch_size, device))
        d["run_type_checks"] = bool(run_type_checks)
        d["_allow_done_after_reset"] = bool(allow_done_after_reset)
        d["is_closed"] = False

    # ------------------------------------------------- TorchRL env-level API
    def __new__(cls, *args, _inplace_update: bool = False, _batch_locked: bool = True, **kwargs):
        """Accept TorchRL's construction protocol.

        As in TorchRL, a subclass may set ``_input_spec`` / ``_output_spec`` on
        the class (in its own ``__new__``) before calling ``super().__new__``:
        they are moved onto the instance (cloned), and ``__init__`` keeps them.
        """
        env = super().__new__(cls)
        d = env.__dict__
        d["_batch_locked"] = bool(_batch_locked)
        # specs may be set before __init__ (as TorchRL allows): start with empty ones of batch size ()
        d["_batch_size"], d["_device"] = torch.Size([]), None
        for name, empty in (("_input_spec", _empty_input_spec), ("_output_spec", _empty_output_spec)):
            if name in cls.__dict__:
                d[name] = d["_class" + name] = cls.__dict__[name].clone()
                delattr(cls, name)
            else:
                d[name] = d["_preinit" + name] = empty(torch.Size([]), None)
        return env

    _supports_set_state = False  # TorchRL's flag: reset(set_state=True) is not honoured by default

    def _initial_spec(self, name: str, fresh: Composite) -> Composite:
        """The spec ``__init__`` starts from: class-level specs, else specs set before ``__init__``, else ``fresh``."""
        d = self.__dict__
        given = d.pop("_class" + name, None)
        if given is not None:
            return given
        early = d.pop("_preinit" + name, None)
        if early is None or not list(early.keys(True, True, is_leaf=lambda s: not isinstance(s, Composite))):
            return fresh
        if early.shape != fresh.shape:
            early.shape = fresh.shape
        if fresh.device is not None:
            early.device = fresh.device
        return early

    @property
    def batch_locked(self) -> bool:
        """Whether the env only accepts inputs of its own ``batch_size`` (TorchRL's flag).

        A transformed env reports its base env's flag.

        >>> from numbarl.torch_api import GymEnv
        >>> GymEnv("CartPole-v1").batch_locked
        True
        """
        base = self.__dict__.get("_modules", {}).get("base_env")
        if base is not None:
            return base.batch_locked
        return self.__dict__.get("_batch_locked", True)

    @batch_locked.setter
    def batch_locked(self, value: bool) -> None:
        raise RuntimeError("batch_locked is a read-only property: an env class sets self._batch_locked in its "
                           "__init__, or passes _batch_locked=False to EnvBase.__new__, as in TorchRL")

    @property
    def specs(self) -> Composite:
        """All specs in one locked ``Composite``: ``output_spec`` and ``input_spec``, as TorchRL's ``env.specs``.

        >>> from numbarl.torch_api import GymEnv
        >>> sorted(GymEnv("CartPole-v1").specs.keys())
        ['input_spec', 'output_spec']
        """
        return Composite(output_spec=self.output_spec.clone(), input_spec=self.input_spec.clone(),
                         shape=self.batch_size).lock_()

    def check_env_specs(self, *args, **kwargs) -> None:
        """``check_env_specs(self, ...)``: a short rollout checked against the specs (see ``envs.utils``).

        >>> from numbarl.torch_api import GymEnv
        >>> GymEnv("CartPole-v1").check_env_specs()
        """
        from .utils import check_env_specs
        check_env_specs(self, *args, **kwargs)

    def _unbatched_property(name, settable=True):  # noqa: N805 - a class-body helper, deleted below
        def fget(self):
            spec = getattr(self, name)
            return spec[(0,) * self.batch_dims] if self.batch_dims else spec

        def fset(self, spec):
            setattr(self, name, spec.expand(self.batch_size + spec.shape))

        doc = (f"``{name}`` without the env's batch dims (as TorchRL); setting it expands the value to the "
               f"batch size and sets ``{name}``.")
        return property(fget, fset if settable else None, doc=doc)

    full_action_spec_unbatched = _unbatched_property("full_action_spec")
    action_spec_unbatched = _unbatched_property("action_spec")
    full_observation_spec_unbatched = _unbatched_property("full_observation_spec")
    observation_spec_unbatched = _unbatched_property("observation_spec")
    full_reward_spec_unbatched = _unbatched_property("full_reward_spec")
    reward_spec_unbatched = _unbatched_property("reward_spec")
    full_done_spec_unbatched = _unbatched_property("full_done_spec")
    done_spec_unbatched = _unbatched_property("done_spec")
    full_state_spec_unbatched = _unbatched_property("full_state_spec")
    state_spec_unbatched = _unbatched_property("state_spec")
    output_spec_unbatched = _unbatched_property("output_spec", settable=False)
    input_spec_unbatched = _unbatched_property("input_spec", settable=False)
    del _unbatched_property

    # ------------------------------------------------------------------ sizes
    @property
    def batch_size(self) -> torch.Size:
        return self._batch_size

    @batch_size.setter
    def batch_size(self, value) -> None:
        value = _as_batch_size(value)
        set_plain(self, "_batch_size", value)
        self.__dict__["_output_spec"].shape = value  # the specs live in __dict__ (see set_plain)
        self.__dict__["_input_spec"].shape = value

    @property
    def device(self):
        return self._device

    @property
    def batch_dims(self) -> int:
        return len(self.batch_size)

    @property
    def shape(self) -> torch.Size:
        """The env's batch size (TorchRL's ``EnvBase.shape``)."""
        return self.batch_size

    # ------------------------------------------------------------------ specs
    @property
    def output_spec(self) -> Composite:
        spec = self._output_spec
        done = spec["full_done_spec"]
        if done.is_empty():
            done["done"] = _done_leaf(self.batch_size, self.device)
            done["terminated"] = _done_leaf(self.batch_size, self.device)
        return spec

    @property
    def input_spec(self) -> Composite:
        return self._input_spec

    def _check_spec(self, name: str, value, composite_only: bool = False) -> None:
        if not isinstance(value, TensorSpec):
            raise TypeError(f"{name} must be a TensorSpec, got {type(value).__name__}")
        if composite_only and not isinstance(value, Composite):
            raise TypeError(f"{name} must be a Composite, got {type(value).__name__}")
        bs = self.batch_size
        if tuple(value.shape[: len(bs)]) != tuple(bs):
            raise ValueError(
                f"{name} must have a shape starting with the env batch_size {tuple(bs)}, got {tuple(value.shape)}"
            )

    def _wrap(self, name: str, key: str, value) -> Composite:
        self._check_spec(name, value)
        if isinstance(value, Composite):
            return value
        return Composite({key: value}, shape=self.batch_size, device=self.device)

    def _set_output(self, part: str, value: Composite) -> None:
        if value.shape != self.batch_size:
            value = value.clone()
            value.shape = self.batch_size
        self._output_spec[part] = value

    def _set_input(self, part: str, value: Composite) -> None:
        if value.shape != self.batch_size:
            value = value.clone()
            value.shape = self.batch_size
        self._input_spec[part] = value

    @property
    def full_observation_spec(self) -> Composite:
        return self.output_spec["full_observation_spec"]

    @full_observation_spec.setter
    def full_observation_spec(self, value) -> None:
        self._check_spec("full_observation_spec", value, composite_only=True)
        self._set_output("full_observation_spec", value)

    observation_spec = full_observation_spec

    @property
    def full_reward_spec(self) -> Composite:
        return self.output_spec["full_reward_spec"]

    @full_reward_spec.setter
    def full_reward_spec(self, value) -> None:
        self._check_spec("full_reward_spec", value, composite_only=True)
        self._set_output("full_reward_spec", value)

    @property
    def reward_spec(self):
        return self._single("full_reward_spec", self.full_reward_spec)

    @reward_spec.setter
    def reward_spec(self, value) -> None:
        self._set_output("full_reward_spec", self._wrap("reward_spec", "reward", value))

    @property
    def full_done_spec(self) -> Composite:
        return self.output_spec["full_done_spec"]

    @full_done_spec.setter
    def full_done_spec(self, value) -> None:
        self._check_spec("full_done_spec", value, composite_only=True)
        self._set_output("full_done_spec", value)

    @property
    def done_spec(self):
        return self._single("full_done_spec", self.full_done_spec)

    @done_spec.setter
    def done_spec(self, value) -> None:
        if not isinstance(value, Composite):
            self._check_spec("done_spec", value)
            value = Composite(done=value, terminated=value.clone(), shape=self.batch_size, device=self.device)
        self.full_done_spec = value

    @property
    def full_action_spec(self) -> Composite:
        return self.input_spec["full_action_spec"]

    @full_action_spec.setter
    def full_action_spec(self, value) -> None:
        self._check_spec("full_action_spec", value, composite_only=True)
        self._set_input("full_action_spec", value)

    @property
    def action_spec(self):
        return self._single("full_action_spec", self.full_action_spec)

    @action_spec.setter
    def action_spec(self, value) -> None:
        self._set_input("full_action_spec", self._wrap("action_spec", "action", value))

    @property
    def full_state_spec(self) -> Composite:
        return self.input_spec["full_state_spec"]

    @full_state_spec.setter
    def full_state_spec(self, value) -> None:
        self._check_spec("full_state_spec", value, composite_only=True)
        self._set_input("full_state_spec", value)

    state_spec = full_state_spec

    @staticmethod
    def _single(name, composite: Composite):
        keys = list(composite.keys(True, True))
        if len(keys) == 1:
            return composite[keys[0]]
        return composite

    @property
    def action_keys(self) -> list:
        return list(self.full_action_spec.keys(True, True))

    @property
    def action_key(self):
        keys = self.action_keys
        if not keys:
            raise KeyError("this env has no action key; set env.action_spec first")
        return keys[0]

    @property
    def reward_keys(self) -> list:
        return list(self.full_reward_spec.keys(True, True))

    @property
    def reward_key(self):
        keys = self.reward_keys
        if not keys:
            raise KeyError("this env has no reward key; set env.reward_spec first")
        return keys[0]

    @property
    def done_keys(self) -> list:
        return list(self.full_done_spec.keys(True, True))

    @property
    def done_keys_groups(self) -> list:
        """The done keys grouped by the (sub-)tensordict holding them, in ``done_keys`` order (TorchRL's):
        e.g. ``[["done", "terminated"], [("agents", "done"), ("agents", "terminated")]]``."""
        groups = {}
        for key in self.done_keys:
            root = key[:-1] if isinstance(key, tuple) else ()
            groups.setdefault(root, []).append(key)
        return list(groups.values())

    @property
    def observation_keys(self) -> list:
        return list(self.full_observation_spec.keys(True, True))

    @property
    def reset_keys(self) -> list:
        return ["_reset"]

    # ------------------------------------------------------------ subclassing
    def _reset(self, tensordict: TensorDictBase | None, **kwargs) -> TensorDictBase:
        raise NotImplementedError(f"{type(self).__name__} must implement _reset(tensordict)")

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        raise NotImplementedError(f"{type(self).__name__} must implement _step(tensordict)")

    def _set_seed(self, seed: int | None):
        raise NotImplementedError(f"{type(self).__name__} must implement _set_seed(seed)")

    # ---------------------------------------------------------------- running
    def _complete_done(self, td: TensorDictBase, at_reset: bool) -> TensorDictBase:
        """Fill done keys the env left out: done = terminated | truncated, terminated = done, others False."""
        present = set(td.keys(True, True))
        spec = self.full_done_spec
        keys = list(spec.keys(True, True))
        missing = []
        lead = tuple(td.batch_size[:td.batch_dims - spec.ndim] if spec.ndim else td.batch_size)
        for key in keys:
            if key not in present:
                missing.append(key)
                continue
            value = td.get(key)
            want = lead + tuple(spec[key].shape)
            if value.shape != want:
                # an env may give a flag as a scalar or flat entry; TorchRL reshapes it to the spec's shape
                td.set(key, value.reshape(want))
        if not missing:
            return td
        for key in missing:
            name = key[-1] if isinstance(key, tuple) else key
            prefix = key[:-1] if isinstance(key, tuple) else ()
            if at_reset:
                value = spec[key].zero()
            elif name == "done":
                parts = [td.get(prefix + (n,) if prefix else n) for n in ("terminated", "truncated")
                         if (prefix + (n,) if prefix else n) in present]
                value = parts[0].clone() if parts else spec[key].zero()
                for p in parts[1:]:
                    value = value | p
            elif name == "terminated":
                done = prefix + ("done",) if prefix else "done"
                value = td.get(done).clone() if done in present else spec[key].zero()
            else:
                value = spec[key].zero()
            td.set(key, value)
        return td

    def reset(self, tensordict: TensorDictBase | None = None, **kwargs) -> TensorDictBase:
        """Reset the env (or the sub-envs flagged by ``tensordict["_reset"]``) and return the first observation.

        Without ``tensordict``, the result is a new tensordict. With one, as in
        TorchRL, ``tensordict`` itself is updated with the reset data and
        returned, its reset keys (``"_reset"``) removed: after a partial reset
        the sub-envs not reset keep the values ``tensordict`` holds (whatever
        the env's ``_reset`` wrote for them), and entries only the env gives
        take the env's values.

        Examples:
            >>> import torch
            >>> from numbarl.torch_api import SerialEnv, GymEnv
            >>> env = SerialEnv(2, lambda: GymEnv("Pendulum-v1"))
            >>> td = env.reset()
            >>> td["_reset"] = torch.tensor([[True], [False]])
            >>> kept = td["observation"][1].clone()
            >>> out = env.reset(td)
            >>> out is td, "_reset" in out.keys(), bool((out["observation"][1] == kept).all())
            (True, False, True)
            >>> env.close()
        """
        td = self._reset_output(tensordict, **kwargs)
        if tensordict is None:
            return td
        return self._update_after_reset(tensordict, td)

    def _reset_mask(self, tensordict: TensorDictBase):
        """The partial-reset mask of ``tensordict`` (batch shape), or None when it resets everything."""
        nb = len(self.batch_size)
        request = tensordict.get("_reset", None)
        if request is None or not nb:
            return None
        mask = request.reshape(*self.batch_size, -1).any(-1)
        return None if bool(mask.all()) else mask

    def _update_after_reset(self, tensordict: TensorDictBase, reset: TensorDictBase) -> TensorDictBase:
        """Write ``reset`` into ``tensordict``; sub-envs a partial reset leaves alone keep ``tensordict``'s values."""
        mask = self._reset_mask(tensordict)
        nb = len(self.batch_size)
        for key in reset.keys(True, True):
            value = reset.get(key)
            if mask is not None:
                current = tensordict.get(key, None)
                if current is not None and current.shape == value.shape:
                    value = torch.where(mask.reshape(*mask.shape, *(1,) * (value.dim() - nb)), value, current)
            tensordict.set(key, value)
        for key in self.reset_keys:
            if key in tensordict.keys(True):
                del tensordict[key]
        return tensordict

    def _reset_output(self, tensordict: TensorDictBase | None = None, **kwargs) -> TensorDictBase:
        """What the env's reset gives, checked and with its done entries completed (``tensordict`` unchanged)."""
        td = self._reset(tensordict, **kwargs)
        if td.batch_size != self.batch_size:
            raise ValueError(
                f"{type(self).__name__}._reset returned batch_size {tuple(td.batch_size)}, "
                f"expected the env batch_size {tuple(self.batch_size)}"
            )
        td = self._complete_done(td, at_reset=True)
        if not self._allow_done_after_reset:
            done = td.get("done", None)
            if done is not None and done.any() and tensordict is None:
                raise RuntimeError(
                    f"{type(self).__name__}.reset() returned done=True; pass allow_done_after_reset=True "
                    "to accept envs that can be done right after a reset"
                )
        return td

    def step(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Run one step with the action in ``tensordict``; the result goes under ``"next"``."""
        next_td = self._step(tensordict)
        next_td = self._complete_done(next_td, at_reset=False)
        if self.run_type_checks:
            for key in self.full_observation_spec.keys(True, True):
                spec = self.full_observation_spec[key]
                if not spec.is_in(next_td.get(key)):
                    raise ValueError(f"step output {key!r} does not fit its spec {spec}")
        tensordict.set("next", next_td)
        return tensordict

    def _any_done(self, tensordict: TensorDictBase) -> bool:
        for key in self.done_keys:
            value = tensordict.get(key, None)
            if value is not None and value.any():
                return True
        return False

    def maybe_reset(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Reset the sub-envs whose done flag is set in ``tensordict``; others keep their data."""
        done = tensordict.get("done", None)
        if done is None or not done.any():
            return tensordict
        request = tensordict.clone(False)
        nb = len(self.batch_size)
        if nb:
            request.set("_reset", done.reshape(*self.batch_size, -1).any(-1).unsqueeze(-1))
        reset = self._reset_output(request)
        return tensordict.update(self._update_after_reset(request, reset))

    def _mdp_reward_keys(self) -> list:
        """Reward keys dropped by ``step_mdp``: those that are not also state or observation keys."""
        kept = set(self.full_state_spec.keys(True, True)) | set(self.full_observation_spec.keys(True, True))
        return [k for k in self.reward_keys if k not in kept]

    def step_and_maybe_reset(self, tensordict: TensorDictBase) -> tuple[TensorDictBase, TensorDictBase]:
        """``step``, then the next root tensordict with done sub-envs reset: ``(tensordict, tensordict_)``."""
        tensordict = self.step(tensordict)
        nxt = self._step_mdp(tensordict)
        if self._post_step_mdp_hooks is not None:
            tensordict, nxt = self._post_step_mdp_hooks(tensordict, nxt)
        nxt = self.maybe_reset(nxt)
        return tensordict, nxt

    # A callable ``(tensordict, tensordict_) -> (tensordict, tensordict_)`` run after ``step_mdp`` in
    # ``step_and_maybe_reset`` and ``rollout`` (as TorchRL's): ``TransformedEnv`` runs its transforms' hooks.
    _post_step_mdp_hooks = None

    def _step_mdp(self, tensordict: TensorDictBase) -> TensorDictBase:
        """The next root tensordict; as TorchRL's env-bound step_mdp, it keeps the action."""
        return step_mdp(tensordict, reward_keys=self._mdp_reward_keys(), done_keys=self.done_keys,
                        action_keys=self.action_keys, exclude_action=False)

    def rand_action(self, tensordict: TensorDictBase | None = None) -> TensorDictBase:
        """Write a random action from the action spec into ``tensordict``."""
        if tensordict is None:
            tensordict = TensorDict(batch_size=self.batch_size, device=self.device)
        tensordict.update(self.full_action_spec.rand())
        return tensordict

    def rand_step(self, tensordict: TensorDictBase | None = None) -> TensorDictBase:
        """A step with a random action."""
        return self.step(self.rand_action(tensordict))

    def fake_tensordict(self) -> TensorDictBase:
        """A tensordict of zeros with every key, shape and dtype one step of this env produces."""
        return self._spec_fake_tensordict()

    def _spec_fake_tensordict(self) -> TensorDictBase:
        """``fake_tensordict`` as the specs alone give it (every observation key also under ``"next"``)."""
        obs = self.full_observation_spec.zero()
        done = self.full_done_spec.zero()
        root = TensorDict(batch_size=self.batch_size, device=self.device)
        root.update(self.full_state_spec.zero())
        # clones: update() merges nested groups into the sub-tensordict it was given, so an action nested
        # beside observations (("agents", "action")) would otherwise also land under "next"
        root.update(obs.clone())
        root.update(done.clone())
        root.update(self.full_action_spec.zero())
        nxt = TensorDict(batch_size=self.batch_size, device=self.device)
        nxt.update(obs.clone())
        nxt.update(self.full_reward_spec.zero())
        nxt.update(done.clone())
        root.set("next", nxt)
        return root

    def set_seed(self, seed: int | None = None, static_seed: bool = False) -> int | None:
        """Seed the env; returns the seed for the next env (``seed_generator(seed)``) unless static."""
        if seed is not None and not isinstance(seed, int):
            raise TypeError(f"seed must be an int or None, got {type(seed).__name__}")
        self._set_seed(seed)
        if seed is not None and not static_seed:
            return seed_generator(seed)
        return seed

    def rollout(self, max_steps: int, policy: Callable | None = None, callback: Callable | None = None, *,
                actions: Iterable[Any] | None = None, auto_reset: bool = True, auto_cast_to_device: bool = False,
                break_when_any_done: bool | None = None, break_when_all_done: bool | None = None,
                return_contiguous: bool | None = False, tensordict: TensorDictBase | None = None,
                set_truncated: bool = False, out=None, trust_policy: bool = False, storing_device=None,
                set_state: bool | None = None) -> TensorDictBase:
        """Run up to ``max_steps`` steps and return them stacked along a time dim after the batch dims.

        ``policy`` (a callable on the root tensordict that writes the action) or
        ``actions`` (one action per step) choose the actions; with neither,
        actions are drawn from the action spec. ``break_when_any_done`` (the
        default) stops after the first step where a done flag is set;
        otherwise done sub-envs are reset and the rollout goes on.
        """
        if not isinstance(max_steps, int) or isinstance(max_steps, bool) or max_steps < 1:
            raise ValueError(f"rollout requires max_steps to be an int >= 1, got {max_steps!r}")
        if policy is not None and actions is not None:
            raise ValueError("rollout takes a policy or actions, not both")
        if break_when_any_done is None:
            break_when_any_done = not break_when_all_done
        if actions is not None:
            actions = list(actions)
            if len(actions) < max_steps:
                raise ValueError(f"rollout got {len(actions)} actions for max_steps={max_steps}")
        if not auto_reset and tensordict is None:
            raise ValueError("rollout with auto_reset=False needs a tensordict to start from")
        if (self._array_path_ready() and callback is None and out is None and auto_reset == (tensordict is None)
                and not break_when_all_done and not set_truncated):
            from ._array_rollout import array_rollout

            return array_rollout(self, max_steps, policy, actions, break_when_any_done, start=tensordict)
        return self._td_rollout(max_steps, policy, callback, actions, auto_reset, break_when_any_done,
                                break_when_all_done, tensordict, set_truncated)

    def _array_path_ready(self) -> bool:
        return self._np_path and (self.device is None or self.device.type == "cpu")

    def _td_rollout(self, max_steps, policy, callback, actions, auto_reset, break_when_any_done,
                    break_when_all_done, tensordict, set_truncated):
        td = self.reset(tensordict) if auto_reset else tensordict
        steps = []
        ever_done = None
        for i in range(max_steps):
            if actions is not None:
                td.set(self.action_key, torch.as_tensor(actions[i]))
            elif policy is not None:
                result = policy(td)
                if result is not None:
                    td = result
            else:
                td = self.rand_action(td)
            if set_truncated and i == max_steps - 1:
                td = self.step(td)
                nxt = td.get("next")
                if "truncated" in nxt.keys():
                    nxt.set("truncated", torch.ones_like(nxt.get("truncated")))
                    nxt.set("done", torch.ones_like(nxt.get("done")))
            if break_when_any_done:
                if not (set_truncated and i == max_steps - 1):
                    td = self.step(td)
                nxt = self._step_mdp(td)
                if self._post_step_mdp_hooks is not None:
                    td, nxt = self._post_step_mdp_hooks(td, nxt)
                steps.append(td.clone(False))
                if self._any_done(td.get("next")):
                    break
                td = nxt
            else:
                if not (set_truncated and i == max_steps - 1):
                    td, nxt = self.step_and_maybe_reset(td)
                else:
                    nxt = self._step_mdp(td)
                    if self._post_step_mdp_hooks is not None:
                        td, nxt = self._post_step_mdp_hooks(td, nxt)
                steps.append(td)
                done = td.get(("next", "done"), None)
                if break_when_all_done and done is not None:
                    ever_done = done.clone() if ever_done is None else ever_done | done
                    if ever_done.all():
                        break
                td = nxt
            if callback is not None:
                callback(self, td)
        return torch.stack(steps, dim=len(self.batch_size))

    # ----------------------------------------------------------------- others
    def append_transform(self, transform) -> "EnvBase":
        """A ``TransformedEnv`` of this env with ``transform`` appended."""
        from ..transforms.transformed_env import TransformedEnv

        return TransformedEnv(self, transform)

    def close(self, *, raise_if_closed: bool = True) -> None:
        """Release the env's resources; closing twice is harmless."""
        set_plain(self, "is_closed", True)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def empty_cache(self) -> None:
        """Drop cached specs (nothing is cached on a plain env)."""

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(batch_size={tuple(self.batch_size)}, device={self.device}, "
                f"observation_keys={self.observation_keys}, action_keys={self.action_keys})")
