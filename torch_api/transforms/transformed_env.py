"""``TransformedEnv``: an env seen through a transform (usually a ``Compose``).

Examples:
    >>> import torch
    >>> from numbarl.torch_api import GymEnv, Transform
    >>> class Scale(Transform):
    ...     def _apply_transform(self, obs):
    ...         return obs * 10
    >>> env = TransformedEnv(GymEnv("Pendulum-v1"))
    >>> len(env.transform)
    0
    >>> _ = env.append_transform(Scale(in_keys=["observation"], out_keys=["big"]))
    >>> _ = env.set_seed(0)
    >>> td = env.rollout(4)
    >>> torch.equal(td["next", "big"], td["next", "observation"] * 10)
    True
"""
from __future__ import annotations

from tensordict import TensorDict
from torch import nn

from .._attrs import set_plain
from ..envs.common import EnvBase
from .base import Compose, Transform, as_transform

__all__ = ["TransformedEnv"]


def _env_batch_size(transform, batch_size):
    """The batch size seen through ``transform``: each transform's ``transform_env_batch_size`` hook, in order."""
    if isinstance(transform, Compose):
        for t in transform.transforms:
            batch_size = _env_batch_size(t, batch_size)
        return batch_size
    hook = getattr(transform, "transform_env_batch_size", None)
    return batch_size if hook is None else hook(batch_size)


def _env_device(transform, device):
    """The device seen through ``transform``: each transform's ``transform_env_device`` hook, in order."""
    if isinstance(transform, Compose):
        for t in transform.transforms:
            device = _env_device(t, device)
        return device
    hook = getattr(transform, "transform_env_device", None)
    return device if hook is None else hook(device)


_LEGACY_PREFIXES = ("transform.", "base_env.")


def _legacy_split(env, state_dict):
    """``(transform entries, base-env entries)`` of an old ``transform.``-prefixed checkpoint, or None.

    A checkpoint is old when some key starts with ``transform.`` or
    ``base_env.`` while none of the transform's own keys do.
    """
    if not any(k.startswith(_LEGACY_PREFIXES) for k in state_dict):
        return None
    if any(k.startswith(_LEGACY_PREFIXES) for k in env.transform.state_dict()):
        return None
    own, base = {}, {}
    for key, value in state_dict.items():
        if key.startswith("transform."):
            own[key[len("transform."):]] = value
        elif key.startswith("base_env."):
            base[key[len("base_env."):]] = value
        else:
            own[key] = value  # left for the transform's loader to report
    return own, base


class TransformedEnv(EnvBase):
    """An env whose outputs go through ``transform`` and whose inputs go through its inverse.

    Args:
        env: the base env (may itself be a ``TransformedEnv``).
        transform: a ``Transform`` or a callable taking and returning a TensorDict
            (wrapped as a transform, as in TorchRL); put in ``eval()`` mode.
        cache_specs: keep the transformed specs until a transform is added.

    Raises:
        TypeError: ``env`` is not an ``EnvBase`` or ``transform`` neither a ``Transform`` nor a callable.
    """

    def __init__(self, env: EnvBase, transform: Transform | None = None, cache_specs: bool = True, **kwargs):
        if not isinstance(env, EnvBase):
            raise TypeError(f"TransformedEnv requires env to be an EnvBase, got {type(env).__name__}")
        if transform is not None:
            transform = as_transform(transform, "TransformedEnv")
            transform.eval()  # as in TorchRL: transforms in an env run in eval() mode
        super().__init__(device=env.device, batch_size=env.batch_size)
        set_plain(self, "_cache_specs", cache_specs)
        set_plain(self, "_spec_cache", {})
        self.base_env = env
        self._set_transform(Compose().eval() if transform is None else transform)

    def _set_transform(self, transform: Transform) -> None:
        # As in TorchRL, a single transform stays ``env.transform`` itself until a
        # second one is appended. The per-step array path reads the base env and
        # the transform through ``_fast`` rather than nn.Module's attribute lookup.
        nn.Module.__setattr__(self, "transform", transform)
        transform.set_container(self)
        set_plain(self, "_fast", (self.base_env, transform))
        self._erase_metadata()

    # ------------------------------------------------------------------ specs
    def _erase_metadata(self) -> None:
        set_plain(self, "_spec_cache", {})

    empty_cache = _erase_metadata

    @property
    def batch_size(self):
        cache = self.__dict__.get("_spec_cache")
        size = None if cache is None else cache.get("batch_size")
        if size is None:
            size = _env_batch_size(self.transform, self.base_env.batch_size)
            if cache is not None and self._cache_specs:
                cache["batch_size"] = size
        return size

    @batch_size.setter
    def batch_size(self, value):
        set_plain(self, "_batch_size", value)

    @property
    def device(self):
        """The base env's device as seen through the transforms (``transform_env_device`` hooks, in order)."""
        cache = self.__dict__.get("_spec_cache")
        if cache is not None and "device" in cache:
            return cache["device"]
        device = _env_device(self.transform, self.base_env.device)
        if cache is not None and self._cache_specs:
            cache["device"] = device
        return device

    @property
    def output_spec(self):
        cache = self._spec_cache
        spec = cache.get("output")
        if spec is None:
            spec = self.transform.transform_output_spec(self.base_env.output_spec.clone())
            if self._cache_specs:
                cache["output"] = spec
        return spec

    @property
    def input_spec(self):
        cache = self._spec_cache
        spec = cache.get("input")
        if spec is None:
            spec = self.transform.transform_input_spec(self.base_env.input_spec.clone())
            if self._cache_specs:
                cache["input"] = spec
        return spec

    # ---------------------------------------------------------------- running
    def _reset(self, tensordict=None, **kwargs):
        tensordict = self.transform._reset_env_preprocess(tensordict)
        reset = self.base_env._reset_output(tensordict, **kwargs)
        if tensordict is None:
            tensordict = TensorDict(batch_size=self.batch_size, device=self.device)
        return self.transform._reset(tensordict, reset)

    def _step(self, tensordict):
        inner = self.transform.inv(tensordict)
        next_td = self.base_env._step(inner)
        next_td = self.base_env._complete_done(next_td, at_reset=False)
        return self.transform._step(tensordict, next_td)

    def _post_step_mdp_hooks(self, tensordict, tensordict_):
        """The transforms' post-``step_mdp`` hooks, then the base env's (as TorchRL)."""
        tensordict, tensordict_ = self.transform._post_step_mdp_hooks(tensordict, tensordict_)
        base_hooks = self.base_env._post_step_mdp_hooks
        if base_hooks is not None:
            tensordict, tensordict_ = base_hooks(tensordict, tensordict_)
        return tensordict, tensordict_

    def fake_tensordict(self):
        """The specs' fake tensordict as the transforms (and those of a transformed base env) change it."""
        return self._transform_fake(self._spec_fake_tensordict())

    def _transform_fake(self, fake):
        base = self.base_env
        if isinstance(base, TransformedEnv):
            fake = base._transform_fake(fake)
        return self.transform.transform_fake_tensordict(fake)

    def set_seed(self, seed=None, static_seed: bool = False):
        return self.base_env.set_seed(seed, static_seed=static_seed)

    def _set_seed(self, seed):
        self.base_env._set_seed(seed)

    # ----------------------------------------------------------------- arrays
    def _array_path_ready(self) -> bool:
        return self.base_env._array_path_ready() and self.transform._np_supported

    def _np_reset(self, mask=None):
        base, transform = self._fast
        return transform._np_reset(dict(base._np_reset(mask)), mask)

    def _np_step(self, action):
        base, transform = self._fast
        keys = self._spec_cache.get("np_action_keys")
        if keys is None:
            keys = self._spec_cache["np_action_keys"] = (self.action_key, base.action_key)
        outer, inner = keys
        action = transform._np_inv({outer: action})[inner]
        return transform._np_step(dict(base._np_step(action)))

    # ----------------------------------------------------------- composition
    def append_transform(self, transform: Transform) -> "TransformedEnv":
        """Append ``transform`` to this env's transforms (in place, ``eval()`` mode) and return the env.

        A callable becomes a transform that calls it on each output; the
        members of a ``Compose`` are appended one by one (as in TorchRL).
        """
        self._as_compose().append(as_transform(transform, "append_transform"))
        self._erase_metadata()
        return self

    def insert_transform(self, index: int, transform: Transform) -> "TransformedEnv":
        """Insert ``transform`` at ``index`` in this env's transforms (in place) and return the env."""
        self._as_compose().insert(index, as_transform(transform, "insert_transform"))
        self._erase_metadata()
        return self

    def _as_compose(self) -> Compose:
        if not isinstance(self.transform, Compose):
            self._set_transform(Compose(self.transform))
        return self.transform

    # ------------------------------------------------------------ checkpoints
    def state_dict(self, *args, **kwargs):
        """The transform's ``state_dict`` (no ``transform.`` prefix, no base-env entries), as in TorchRL.

        A checkpoint saved by TorchRL's ``TransformedEnv`` with the same
        transforms loads here, and the reverse (entries whose format differs,
        such as VecNorm's statistics, are documented by the transform).

        Examples:
            >>> from numbarl.torch_api import GymEnv, ObservationNorm
            >>> env = TransformedEnv(GymEnv("Pendulum-v1"), ObservationNorm(loc=1.0, scale=2.0, in_keys=["observation"]))
            >>> list(env.state_dict())
            ['standard_normal', 'loc', 'scale']
        """
        return self.transform.state_dict(*args, **kwargs)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """Load a checkpoint of :meth:`state_dict` (or TorchRL's) into the transform.

        Checkpoints of earlier numbarl versions, whose keys start with
        ``transform.`` (and ``base_env.`` for the base env's entries), load too.

        Examples:
            >>> from numbarl.torch_api import GymEnv, ObservationNorm
            >>> env = TransformedEnv(GymEnv("Pendulum-v1"), ObservationNorm(loc=1.0, scale=2.0, in_keys=["observation"]))
            >>> import torch
            >>> _ = env.load_state_dict({"transform.standard_normal": torch.tensor(False),
            ...                          "transform.loc": torch.tensor(3.0), "transform.scale": torch.tensor(4.0)})
            >>> env.transform.loc
            tensor(3.)
        """
        legacy = _legacy_split(self, state_dict)
        if legacy is None:
            return self.transform.load_state_dict(state_dict, strict=strict, assign=assign)
        own, base = legacy
        if base:
            self.base_env.load_state_dict(base, strict=strict, assign=assign)
        return self.transform.load_state_dict(own, strict=strict, assign=assign)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        # A module holding this env saves the transform's entries under ``<prefix>`` (see state_dict):
        # send them on to the transform child, where nn.Module's loader looks for them.
        for key in [k for k in state_dict if k.startswith(prefix)]:
            head = key[len(prefix):].split(".", 1)[0]
            if head not in self._modules and head not in self._parameters and head not in self._buffers:
                state_dict[prefix + "transform." + key[len(prefix):]] = state_dict.pop(key)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)

    def close(self, *, raise_if_closed: bool = True) -> None:
        if not self.is_closed:
            self.base_env.close()
        super().close()

    def __setattr__(self, name, value):
        if name == "transform":  # ``env.transform = t`` (a callable too) replaces the transforms
            self._set_transform(as_transform(value, "TransformedEnv.transform"))
            return
        if name == "_allow_done_after_reset":
            raise RuntimeError("_allow_done_after_reset is a read-only property for TransformedEnvs: set it on "
                               "the base env")
        super().__setattr__(name, value)

    @property
    def _allow_done_after_reset(self) -> bool:
        return bool(getattr(self.base_env, "_allow_done_after_reset", False))

    def __getattr__(self, name):
        try:
            return super().__getattr__(name)
        except AttributeError:
            pass
        if any(name in klass.__dict__ for klass in type(self).__mro__):
            # a property of this class raised AttributeError in its own code: say so instead of
            # answering with the base env's attribute of the same name
            try:
                object.__getattribute__(self, name)
            except AttributeError as err:
                raise AttributeError(f"{type(self).__name__}.{name} could not be read because an internal error "
                                     f"was raised: {err!r}") from err
        base = self.__dict__.get("_modules", {}).get("base_env")
        if base is None or name.startswith("__"):
            raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")
        return getattr(base, name)

    def __setstate__(self, state):
        super().__setstate__(state)
        self._set_transform(self.transform)

    def __repr__(self) -> str:
        return f"TransformedEnv(\n    env={self.base_env!r},\n    transform={self.transform!r})"
