"""``UnaryTransform`` (apply a function to entries) and ``Hash`` (write a hash of entries).

TorchRL 0.14.1's arguments, keys and specs. The function is the user's, so
the output specs are found as TorchRL finds them: the function runs once on
a zero value of each input spec (with the env's batch dims) and the spec of
what it returns (``Unbounded`` for a tensor, ``NonTensor`` for anything
else) goes under the out_key. Neither transform has an array path: the
function takes tensors (or the Python objects inside non-tensor entries).

Examples:
    >>> import torch
    >>> from tensordict import TensorDict
    >>> t = UnaryTransform(["x"], ["y"], fn=lambda v: v.sum(-1))
    >>> t(TensorDict({"x": torch.ones(3)}, []))["y"]
    tensor(3.)
"""
from __future__ import annotations

import hashlib
from copy import copy

import torch
from tensordict import NonTensorData, NonTensorStack

from .._attrs import set_plain
from ..envs.utils import make_composite_from_td
from ..specs import Composite
from ._checks import CompatValueError, check_bool
from .base import Transform

__all__ = ["UnaryTransform", "Hash"]


def _unwrap(value):
    """The Python data inside a non-tensor entry (a list for a stack), or ``value`` itself."""
    if isinstance(value, NonTensorData):
        return value.get("data") if value.dim() == 0 else value.tolist()
    if isinstance(value, NonTensorStack):
        return value.tolist()
    return value


class UnaryTransform(Transform):
    """Write ``fn(value)`` for each entry of ``in_keys`` under the matching ``out_keys``.

    ``fn`` may return a tensor or any Python object (stored as non-tensor
    data). Its output spec is that of ``fn`` applied to the zero value of the
    input spec. The inverse (``in_keys_inv`` / ``out_keys_inv``) applies
    ``inv_fn`` (``fn`` when not given) to the entries the policy writes under
    ``out_keys_inv`` and hands the results to the base env under
    ``in_keys_inv``; the input spec seen from outside is the spec of ``fn``
    applied to the base env's input.

    Args:
        in_keys: the entries to read.
        out_keys: where to write the results (same length).
        in_keys_inv: inverse: entries as the base env reads them.
        out_keys_inv: inverse: entries as the policy writes them.
        fn: the function (keyword only, required). Non-tensor inputs are unwrapped
            to their Python data first; a function given non-tensor data must accept ``None``.
        inv_fn: the inverse function (default ``fn``).
        use_raw_nontensor: give ``fn`` the ``NonTensorData`` / ``NonTensorStack`` itself (default False).

    Raises:
        TypeError: ``fn`` (or ``inv_fn``) is not callable, a key is not a str or tuple of str,
            or ``use_raw_nontensor`` is not a bool.
        ValueError: ``out_keys`` and ``in_keys`` (or their inverse) differ in length.

    Examples:
        >>> from numbarl.torch_api import GymEnv, TransformedEnv
        >>> env = TransformedEnv(GymEnv("Pendulum-v1"),
        ...                      UnaryTransform(["observation"], ["norm"], fn=lambda v: v.norm(dim=-1)))
        >>> env.observation_spec["norm"].shape, env.rollout(3)["next", "norm"].shape
        (torch.Size([]), torch.Size([3]))
    """

    enable_inv_on_reset = True

    def __init__(self, in_keys, out_keys, in_keys_inv=None, out_keys_inv=None, *, fn, inv_fn=None,
                 use_raw_nontensor: bool = False):
        owner = type(self).__name__
        if not callable(fn):
            raise TypeError(f"{owner} requires fn to be callable, got {type(fn).__name__}: {fn!r}")
        if inv_fn is not None and not callable(inv_fn):
            raise TypeError(f"{owner} requires inv_fn to be callable or None, got {type(inv_fn).__name__}: "
                            f"{inv_fn!r}")
        check_bool(use_raw_nontensor, owner, "use_raw_nontensor")
        if in_keys is None or out_keys is None:
            raise TypeError(f"{owner} requires in_keys and out_keys, got in_keys={in_keys!r} and "
                            f"out_keys={out_keys!r}")
        super().__init__(in_keys=in_keys, out_keys=out_keys, in_keys_inv=in_keys_inv, out_keys_inv=out_keys_inv)
        set_plain(self, "_fn", fn)
        set_plain(self, "_inv_fn", inv_fn)
        set_plain(self, "_use_raw_nontensor", use_raw_nontensor)

    def _apply_transform(self, value):
        return self._fn(value if self._use_raw_nontensor else _unwrap(value))

    def _inv_apply_transform(self, state):
        if not self._use_raw_nontensor:
            state = _unwrap(state)
        return (self._fn if self._inv_fn is None else self._inv_fn)(state)

    # ------------------------------------------------------------------ specs
    def _set_specs(self, part, probe, pairs):
        if not isinstance(part, Composite):
            raise TypeError(f"{self}: only Composite specs can be transformed, got {type(part).__name__}")
        for in_key, out_key in pairs:
            if in_key in part:
                part[out_key] = probe[out_key]
        return part

    def transform_output_spec(self, output_spec):
        output_spec = output_spec.clone()
        names = [n for n in ("full_observation_spec", "full_reward_spec", "full_done_spec")
                 if n in output_spec.keys()]
        zero = output_spec.zero()
        data = zero[names[0]]
        for name in names[1:]:
            data = data.update(zero[name])
        probe = make_composite_from_td(self.forward(data), unsqueeze_null_shapes=False)
        for name in names:
            output_spec[name] = self._set_specs(output_spec[name], probe, list(zip(self.in_keys, self.out_keys)))
        return output_spec

    def transform_input_spec(self, input_spec):
        input_spec = input_spec.clone()
        names = [n for n in ("full_action_spec", "full_state_spec") if n in input_spec.keys()]
        zero = input_spec.zero()
        data = zero[names[0]]
        for name in names[1:]:
            data = data.update(zero[name])
        pairs = list(zip(self.in_keys_inv, self.out_keys_inv))
        # the forward function maps the base env's input spec to the one seen from outside
        for in_key, out_key in pairs:
            value = data.get(in_key, None)
            if value is None:
                self._missing(in_key, data)
                continue
            data.set(out_key, self._apply_transform(value))
        probe = make_composite_from_td(data, unsqueeze_null_shapes=False)
        for name in names:
            input_spec[name] = self._set_specs(input_spec[name], probe, pairs)
        return input_spec

class Hash(UnaryTransform):
    """Write a hash of each entry of ``in_keys`` (by default a 32-byte SHA-256 of its text).

    With a ``repertoire`` (a dict, kept by reference), or when inverse keys
    are given, every hashed input is remembered under its hash, and the
    inverse maps a hash back to that input.

    Args:
        in_keys: the entries to hash.
        out_keys: where to write the hashes.
        in_keys_inv: inverse: entries the base env reads (the original inputs).
        out_keys_inv: inverse: the hash entries the policy writes.
        hash_fn: ``hash_fn(value)`` (or ``hash_fn(value, seed)`` when ``seed`` is given),
            returning a tensor; default :meth:`reproducible_hash`.
        seed: passed to ``hash_fn`` when not None.
        use_raw_nontensor: give ``hash_fn`` the non-tensor entries themselves (default False).
        repertoire: dict filled with ``hash -> input`` (default: a new one when inverse keys are given).

    Raises:
        TypeError: ``hash_fn`` is not callable, or a key or flag has the wrong type.
        ValueError: (when called) ``hash_fn`` does not return a tensor.

    Examples:
        >>> from tensordict import TensorDict
        >>> t = Hash(["text"], ["hash"])
        >>> out = t(TensorDict({"text": "abc"}, []))["hash"]
        >>> out.dtype, out.shape, out[:4].tolist()
        (torch.uint8, torch.Size([32]), [186, 120, 22, 191])
    """

    def __init__(self, in_keys, out_keys, in_keys_inv=None, out_keys_inv=None, *, hash_fn=None, seed=None,
                 use_raw_nontensor: bool = False, repertoire=None):
        if hash_fn is None:
            hash_fn = Hash.reproducible_hash
        if not callable(hash_fn):
            raise TypeError(f"Hash requires hash_fn to be callable, got {type(hash_fn).__name__}: {hash_fn!r}")
        if repertoire is not None and not isinstance(repertoire, dict):
            raise TypeError(f"Hash requires repertoire to be a dict or None, got {type(repertoire).__name__}")
        if repertoire is None and in_keys_inv is not None and len(in_keys_inv) > 0:
            repertoire = {}
        super().__init__(in_keys=in_keys, out_keys=out_keys, in_keys_inv=in_keys_inv, out_keys_inv=out_keys_inv,
                         fn=self.call_hash_fn, inv_fn=self.get_input_from_hash,
                         use_raw_nontensor=use_raw_nontensor)
        set_plain(self, "_repertoire", repertoire)
        set_plain(self, "_seed", seed)
        set_plain(self, "_hash_fn", hash_fn)

    def state_dict(self, *args, destination=None, prefix="", keep_vars=False):
        """``{"_repertoire": repertoire}`` (as in TorchRL)."""
        return {"_repertoire": self._repertoire}

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """Restore the repertoire saved by :meth:`state_dict`."""
        extra = set(state_dict) - {"_repertoire"}
        if strict and extra:
            raise KeyError(f"Hash.load_state_dict: unexpected keys {sorted(extra)}; expected only '_repertoire'")
        if "_repertoire" in state_dict:
            set_plain(self, "_repertoire", state_dict["_repertoire"])

    @classmethod
    def hash_to_repertoire_key(cls, hash_tensor):
        """A hashable key for ``hash_tensor``: nested tuples of its values (a scalar for a 0-dim tensor)."""
        if isinstance(hash_tensor, torch.Tensor):
            return hash_tensor.item() if hash_tensor.dim() == 0 else cls.hash_to_repertoire_key(hash_tensor.tolist())
        if isinstance(hash_tensor, list):
            return tuple(cls.hash_to_repertoire_key(t) for t in hash_tensor)
        return hash_tensor

    def get_input_from_hash(self, hash_tensor):
        """The input that gave ``hash_tensor``; needs a repertoire (KeyError for a hash never seen)."""
        if self._repertoire is None:
            raise CompatValueError("Hash.get_input_from_hash requires a repertoire: pass repertoire={} (or "
                                   "in_keys_inv / out_keys_inv) when building the transform")
        key = self.hash_to_repertoire_key(hash_tensor)
        if key not in self._repertoire:
            raise KeyError(f"Hash.get_input_from_hash: hash {key!r} was never produced by this transform")
        return self._repertoire[key]

    def call_hash_fn(self, value):
        """``hash_fn(value[, seed])``, recorded in the repertoire when there is one."""
        out = self._hash_fn(value) if self._seed is None else self._hash_fn(value, self._seed)
        if not torch.is_tensor(out):
            raise ValueError(f"Hash requires hash_fn to return a tensor, got {type(out).__name__}")
        if self._repertoire is not None:
            self._repertoire[self.hash_to_repertoire_key(out)] = copy(value)
        return out

    @classmethod
    def reproducible_hash(cls, string, seed=None):
        """The SHA-256 of ``seed + string`` (``str(string)`` without a seed; ``""`` for None) as 32 uint8.

        Examples:
            >>> Hash.reproducible_hash("abc")[:4]
            tensor([186, 120,  22, 191], dtype=torch.uint8)
        """
        if string is None:
            string = ""
        text = str(string) if seed is None else seed + string
        return torch.frombuffer(bytearray(hashlib.sha256(text.encode("utf-8")).digest()), dtype=torch.uint8)
