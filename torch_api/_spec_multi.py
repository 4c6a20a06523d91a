"""Multi-categorical leaf specs: several categorical variables in one tensor (index or one-hot form)."""
from __future__ import annotations


import torch
import torch.nn.functional as F

from ._spec_base import (
    BoxList, CategoricalBox, _as_device, _as_dtype, _as_shape, _Groups,
    _lead, _masked_contains, _masked_nearest, _masked_sample, _short,
)
from ._spec_leaves import Categorical, OneHot, _as_mask, _as_n

__all__ = ["MultiCategorical", "MultiOneHot"]

class MultiCategorical(Categorical):
    """Tensor whose last dim holds one category per entry, entry ``i`` in ``0..nvec[i]-1``.

    ``nvec`` (int, list or tensor) is broadcast to ``shape`` and kept as an
    int64 tensor. ``mask`` has shape ``shape[:-1] + (sum(nvec),)``: the legal
    values of each entry, concatenated. ``remove_singleton`` is accepted for
    compatibility; samples always have the spec's shape.

    >>> spec = MultiCategorical([2, 3], mask=torch.tensor([True, False, False, False, True]))
    >>> spec.rand(), spec.is_in(torch.tensor([0, 1])), spec.nvec
    (tensor([0, 2]), False, tensor([2, 3]))
    """

    _aux = ("nvec", "mask", "_pmask")
    _eq_attrs = ()
    _feature_ndim = 1

    def __init__(self, nvec, shape=None, device=None, dtype=torch.int64, mask=None, remove_singleton=True):
        owner = type(self).__name__
        self.device = _as_device(device, owner)
        self.dtype = _as_dtype(dtype, owner, torch.int64)
        try:
            nv = torch.as_tensor(nvec, device=self.device)
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(f"{owner} requires nvec to be an int, a sequence of ints or a tensor, "
                            f"got {nvec!r}") from None
        if nv.is_floating_point() or nv.dtype == torch.bool:
            raise TypeError(f"{owner} requires integer nvec, got dtype {nv.dtype}")
        if nv.ndim == 0:
            nv = nv.unsqueeze(0)
        if nv.numel() == 0 or bool((nv < 1).any()):
            raise ValueError(f"{owner} requires every nvec entry >= 1, got {_short(nv)}")
        shape = _as_shape(shape, owner, nv.shape)
        if len(shape) == 0 or shape[-1] != nv.shape[-1]:
            raise ValueError(f"{owner} requires shape[-1] == nvec.shape[-1], got nvec shape "
                             f"{tuple(nv.shape)} and shape {tuple(shape)}")
        try:
            self.nvec = nv.long().expand(shape).clone()
        except RuntimeError:
            raise ValueError(f"{owner} requires nvec to broadcast to shape {tuple(shape)}, "
                             f"got nvec shape {tuple(nv.shape)}") from None
        self.shape, self.domain, self.remove_singleton = shape, "discrete", remove_singleton
        self.mask = self._pmask = None
        self._refresh()
        if mask is not None:
            self.update_mask(mask)

    def _refresh(self):
        self._groups = self._top = None

    def _row(self):
        """The nvec of one row as a list, or None when rows differ."""
        nv = self.nvec
        if nv.numel() == 0:
            return None
        row = nv.reshape(-1, nv.shape[-1])[0]
        return row.tolist() if bool((nv == row).all()) else None

    def _layout(self):
        if self._groups is None:
            row = self._row()
            if row is None:
                raise ValueError(f"{type(self).__name__} masks and one-hot conversion require the same "
                                 f"nvec in every row, got nvec={_short(self.nvec)}")
            self._groups = _Groups(row, self.device)
        return self._groups

    @property
    def space(self):
        row = self._row()
        return BoxList([CategoricalBox(n) for n in (row if row is not None else self.nvec.reshape(-1).tolist())])

    def update_mask(self, mask):
        """Set the legal values (bool, ``shape[:-1] + (sum(nvec),)``), or clear them with None."""
        if mask is None:
            self.mask = self._pmask = None
            return
        groups = self._layout()
        self.mask = _as_mask(mask, self.shape[:-1] + (groups.total,), self.device, type(self).__name__)
        self._pmask = groups.pad(self.mask, False)

    def rand(self, shape=None):
        lead = _lead(shape)
        if self._pmask is not None:
            return _masked_sample(self._pmask, lead).to(self.dtype)
        if self._top is None:
            self._top = self.nvec - 1
        out = torch.minimum(torch.rand(lead + self.shape, device=self.device).mul_(self.nvec).long(), self._top)
        return out if self.dtype == torch.int64 else out.to(self.dtype)

    def _values_in(self, val):
        if not bool(((val >= 0) & (val < self.nvec)).all()):
            return False
        return self._pmask is None or _masked_contains(self._pmask, val)

    def project(self, val):
        val = torch.as_tensor(val, device=self.device)
        if val.is_floating_point():
            val = val.round()
        val = torch.minimum(val.clamp_min(0), (self.nvec - 1).to(val.dtype))
        if self._pmask is not None:
            val = _masked_nearest(self._pmask, val)
        return val.to(self.dtype)

    def to_one_hot(self, val, safe=None):
        """Concatenated one-hot bool encoding of the entries."""
        if safe:
            self.assert_is_in(val)
        groups = self._layout()
        return groups.unpad(F.one_hot(val.long(), groups.width)).bool()

    def to_one_hot_spec(self):
        """The :class:`MultiOneHot` spec of the one-hot encoding, mask included."""
        groups = self._layout()
        return MultiOneHot(groups.nvec, self.shape[:-1] + (groups.total,), self.device, torch.bool,
                           mask=self.mask)


class MultiOneHot(OneHot):
    """Concatenation of one-hot groups of sizes ``nvec`` along the last dim.

    ``nvec`` stays a list of ints; the last dim of ``shape`` is ``sum(nvec)``.
    ``mask`` has shape ``shape``. ``encode`` takes per-group indices (or a bool
    array as is); ``to_categorical`` gives them back.

    >>> spec = MultiOneHot([2, 3])
    >>> spec.encode([1, 0])
    tensor([False,  True,  True, False, False])
    >>> spec.project(torch.tensor([0.1, 0.4, 0.5, 0.1, 0.9]))
    tensor([False,  True, False, False,  True])
    """

    _aux = ("mask", "_pmask")
    _eq_attrs = ("nvec",)

    def __init__(self, nvec, shape=None, device=None, dtype=torch.bool, use_register=False, mask=None):
        owner = type(self).__name__
        if isinstance(nvec, torch.Tensor):
            nvec = nvec.tolist()
        if isinstance(nvec, (str, bytes)) or not hasattr(nvec, "__iter__"):
            raise TypeError(f"{owner} requires nvec to be a sequence of ints, got {nvec!r}")
        self.nvec = [_as_n(n, owner, "every nvec entry") for n in nvec]
        if not self.nvec:
            raise ValueError(f"{owner} requires a non-empty nvec, got {nvec!r}")
        total = sum(self.nvec)
        self.shape = _as_shape(shape, owner, torch.Size([total]))
        if len(self.shape) == 0 or self.shape[-1] != total:
            raise ValueError(f"{owner} requires shape[-1] == sum(nvec) == {total}, got shape {tuple(self.shape)}")
        self.device = _as_device(device, owner)
        self.dtype = _as_dtype(dtype, owner, torch.bool)
        self.use_register, self.domain = use_register, "discrete"
        self.mask = self._pmask = None
        self._refresh()
        if mask is not None:
            self.update_mask(mask)

    def _refresh(self):
        self._groups = None

    @property
    def n(self):
        raise AttributeError("MultiOneHot has no single n; see nvec")

    def _layout(self):
        if self._groups is None:
            self._groups = _Groups(self.nvec, self.device)
        return self._groups

    @property
    def space(self):
        return BoxList([CategoricalBox(n) for n in self.nvec])

    def update_mask(self, mask):
        """Set the legal values (bool, broadcastable to ``shape``), or clear them with None."""
        if mask is None:
            self.mask = self._pmask = None
            return
        self.mask = _as_mask(mask, self.shape, self.device, type(self).__name__)
        self._pmask = self._layout().pad(self.mask, False)

    def _one_hot(self, idx):
        g = self._layout()
        return g.unpad(F.one_hot(idx, g.width)).to(self.dtype)

    def rand(self, shape=None):
        lead, g = _lead(shape), self._layout()
        if self._pmask is not None:
            return self._one_hot(_masked_sample(self._pmask, lead))
        nv = torch.tensor(g.nvec, device=self.device)
        idx = torch.rand(lead + self.shape[:-1] + (g.count,), device=self.device).mul_(nv).floor_().long()
        return self._one_hot(torch.minimum(idx, nv - 1))

    def _values_in(self, val):
        g = self._layout()
        if val.dtype != torch.bool and not bool(((val == 0) | (val == 1)).all()):
            return False
        b = val.bool()
        if not bool((g.pad(b.long(), 0).sum(-1) == 1).all()):
            return False
        return self.mask is None or not bool((b & ~self.mask).any())

    def project(self, val):
        val = torch.as_tensor(val, device=self.device)
        g = self._layout()
        score = g.pad(val.float(), float("-inf"))
        if self._pmask is not None:
            score = score.masked_fill(~self._pmask, float("-inf"))
        return self._one_hot(score.argmax(-1))

    def encode(self, val, *, ignore_device=False):
        t = torch.as_tensor(val, device=None if ignore_device else self.device)
        if t.dtype == torch.bool:
            return self._fit(t.to(self.dtype))
        g = self._layout()
        t = t.long()
        if t.shape[-1:] != (g.count,) or bool(((t < 0) | (t >= torch.tensor(g.nvec, device=t.device))).any()):
            raise ValueError(f"{type(self).__name__}.encode requires {g.count} indices per row within "
                             f"nvec={g.nvec}, got {_short(t)}")
        return self._fit(self._one_hot(t))

    def to_categorical(self, val, safe=None):
        """Per-group indices (int64) of concatenated one-hot values."""
        if safe:
            self.assert_is_in(val)
        return self._layout().pad(val.float(), float("-inf")).argmax(-1)

    def to_numpy(self, val, safe=None):
        return self.to_categorical(val, safe).detach().cpu().numpy()

    def to_categorical_spec(self):
        """The :class:`MultiCategorical` spec of the per-group indices, mask included."""
        return MultiCategorical(self.nvec, self.shape[:-1] + (len(self.nvec),), self.device,
                                torch.int64, mask=self.mask)


# ----------------------------------------------------------------- non-tensor
