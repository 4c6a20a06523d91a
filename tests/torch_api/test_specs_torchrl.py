"""Differential tests of numbarl.torch_api.specs against TorchRL 0.14.1's specs."""

import numpy as np
import pytest
import torch
from compare import assert_spec_matches_torchrl, assert_td_equal
from tensordict import TensorDict

import numbarl.torch_api.specs as S

MASK4 = torch.tensor([True, False, True, False])

# =====================================================================================================
# differential tests against TorchRL 0.14.1
# =====================================================================================================
DIFF_CASES = {
    "bounded_f32": lambda L: L.Bounded(-1.0, 2.0, shape=(3,)),
    "bounded_tensor_f64": lambda L: L.Bounded(torch.tensor([0.0, -1.0, 2.0], dtype=torch.float64),
                                              torch.tensor([1.0, 1.0, 5.0], dtype=torch.float64), dtype=torch.float64),
    "bounded_int": lambda L: L.Bounded(0, 5, shape=(2, 3), dtype=torch.int64),
    "bounded_uint8": lambda L: L.Bounded(0, 255, shape=(4, 4, 3), dtype=torch.uint8),
    "bounded_trunc": lambda L: L.Bounded(-2.5, 2.7, shape=(2,), dtype=torch.int32),
    "bounded_np": lambda L: L.Bounded(np.zeros(3), np.ones(3)),
    "unbounded": lambda L: L.Unbounded(shape=(3,)),
    "unbounded_default": lambda L: L.Unbounded(),
    "unbounded_int": lambda L: L.Unbounded(shape=(2,), dtype=torch.int32),
    "categorical": lambda L: L.Categorical(4),
    "categorical_shape": lambda L: L.Categorical(5, shape=(2, 3), dtype=torch.int32),
    "categorical_mask": lambda L: L.Categorical(4, mask=torch.tensor([True, False, True, False])),
    "onehot": lambda L: L.OneHot(4),
    "onehot_batch": lambda L: L.OneHot(3, shape=(2, 3)),
    "onehot_mask": lambda L: L.OneHot(4, mask=torch.tensor([False, True, True, False])),
    "binary": lambda L: L.Binary(3),
    "binary_shape": lambda L: L.Binary(shape=(2, 4)),
    "multicategorical": lambda L: L.MultiCategorical([2, 3]),
    "multicategorical_shape": lambda L: L.MultiCategorical([2, 3], shape=(4, 2)),
    "multionehot": lambda L: L.MultiOneHot([2, 3]),
}


@pytest.fixture
def trl(torchrl):
    """torchrl.data, or a skip when torchrl is not installed."""
    import torchrl.data
    return torchrl.data


def _pair(trl, name):
    return DIFF_CASES[name](S), DIFF_CASES[name](trl)


def _out_of_space(spec, nan=True):
    """Values of the spec's shape and dtype that should not be in it (none for Unbounded)."""
    z = spec.zero()
    name = type(spec).__name__
    if name.startswith("Bounded"):
        out = []
        if spec.dtype.is_floating_point:
            return [spec.high + 1, spec.low - 1] + ([torch.full_like(z, float("nan"))] if nan else [])
        info = torch.iinfo(spec.dtype)
        if int(spec.high.max()) < info.max:
            out.append(spec.high + 1)
        if int(spec.low.min()) > info.min:
            out.append(spec.low - 1)
        return out
    if name in ("Categorical",):
        return [z + spec.n, z - 1]
    if name == "Binary":
        return [z + 2]
    if name == "MultiCategorical":
        return [spec.nvec.to(spec.dtype)]
    if name in ("OneHot", "MultiOneHot"):
        return [z, spec.one()]
    return []


@pytest.mark.torchrl
@pytest.mark.parametrize("name", sorted(DIFF_CASES))
def test_diff_construct_and_repr(trl, name):
    ours, theirs = _pair(trl, name)
    assert_spec_matches_torchrl(ours, theirs)
    assert ours.device == theirs.device and ours.domain == theirs.domain and ours.ndim == theirs.ndim
    assert isinstance(ours, getattr(S, type(theirs).__mro__[1].__name__))
    if name != "multicategorical_shape":
        assert repr(ours) == repr(theirs)
    assert repr(ours.space) == repr(theirs.space) or name == "multicategorical_shape"


@pytest.mark.torchrl
@pytest.mark.parametrize("name", sorted(DIFF_CASES))
def test_diff_zero_one_rand(trl, name):
    ours, theirs = _pair(trl, name)
    for extra in (None, (2,), (2, 3)):
        a, b = ours.zero(extra), theirs.zero(extra)
        assert a.dtype == b.dtype and torch.equal(a, b)
        a, b = ours.one(extra), theirs.one(extra)
        assert a.dtype == b.dtype and torch.equal(a, b)
        a, b = ours.rand(extra), theirs.rand(extra)
        assert a.shape == b.shape and a.dtype == b.dtype


@pytest.mark.torchrl
@pytest.mark.parametrize("name", sorted(DIFF_CASES))
def test_diff_is_in(trl, name):
    ours, theirs = _pair(trl, name)
    values = [theirs.rand(), ours.rand(), theirs.rand((3,)), ours.rand((2, 2)), theirs.zero()]
    if "mask" not in name:
        values += [v.to(torch.float64 if ours.dtype != torch.float64 else torch.float32) for v in values[:2]]
        values += _out_of_space(theirs)
    else:
        # TorchRL's masked is_in skips the dtype and one-hot checks and fails out of range: compare
        # in-range values that the mask forbids.
        values += [torch.tensor(1)] if name == "categorical_mask" else [torch.tensor([True, False, False, False])]
    for v in values:
        assert ours.is_in(v) == bool(theirs.is_in(v)), v
    assert any(not ours.is_in(v) for v in values)


@pytest.mark.torchrl
@pytest.mark.parametrize("name", sorted(DIFF_CASES))
def test_diff_project(trl, name):
    # Out-of-space values are compared only where TorchRL's projection is deterministic: its OneHot
    # and masked projections draw a random legal value (numbarl takes the argmax / nearest legal
    # value) and its MultiOneHot projection mixes up groups.
    ours, theirs = _pair(trl, name)
    values = [theirs.rand(), theirs.rand()]
    if "mask" not in name and "onehot" not in name:
        values += _out_of_space(theirs, nan=False)
    if ours.dtype.is_floating_point:
        values.append(torch.randn(ours.shape, dtype=ours.dtype) * 10)
    for v in values:
        a, b = ours.project(v.clone()), theirs.project(v.clone())
        assert a.dtype == b.dtype and torch.equal(a, b), (v, a, b)
        assert ours.is_in(a)


@pytest.mark.torchrl
@pytest.mark.parametrize("name", sorted(DIFF_CASES))
def test_diff_encode_and_to_numpy(trl, name):
    ours, theirs = _pair(trl, name)
    x = theirs.rand()
    arr_theirs = theirs.to_numpy(x)
    arr_ours = ours.to_numpy(x)
    assert arr_ours.dtype == arr_theirs.dtype and np.array_equal(arr_ours, arr_theirs)
    a, b = ours.encode(arr_theirs), theirs.encode(arr_theirs)
    assert a.dtype == b.dtype and torch.equal(a, b)
    if ours.ndim:
        a, b = ours.encode(arr_theirs.tolist()), theirs.encode(arr_theirs.tolist())
        assert a.dtype == b.dtype and torch.equal(a, b)


@pytest.mark.torchrl
@pytest.mark.parametrize("name", sorted(DIFF_CASES))
def test_diff_expand_and_index(trl, name):
    ours, theirs = _pair(trl, name)
    a, b = ours.expand(5, *ours.shape), theirs.expand(5, *theirs.shape)
    assert_spec_matches_torchrl(a, b)
    assert torch.equal(a.zero(), b.zero())
    if "mask" not in name:  # TorchRL's expand drops the mask
        assert a.is_in(b.rand()) and bool(b.is_in(a.rand()))
    assert_spec_matches_torchrl(a[0], b[0])
    assert_spec_matches_torchrl(a[1:3], b[1:3])
    assert_spec_matches_torchrl(ours.unsqueeze(0), theirs.unsqueeze(0))
    assert [s.shape for s in a.unbind(0)] == [s.shape for s in b.unbind(0)]


@pytest.mark.torchrl
@pytest.mark.parametrize("name", ["categorical", "onehot", "onehot_batch", "multicategorical", "multionehot"])
def test_diff_conversions(trl, name):
    ours, theirs = _pair(trl, name)
    x = theirs.rand((3,))
    assert torch.equal(ours.to_one_hot(x), theirs.to_one_hot(x))
    assert_spec_matches_torchrl(ours.to_one_hot_spec(), theirs.to_one_hot_spec())
    assert torch.equal(ours.to_categorical(x), theirs.to_categorical(x))
    assert_spec_matches_torchrl(ours.to_categorical_spec(), theirs.to_categorical_spec())
    y = theirs.to_one_hot(x)
    assert torch.equal(ours.to_one_hot_spec().to_categorical(y), theirs.to_one_hot_spec().to_categorical(y))


@pytest.mark.torchrl
def test_diff_mask_sampling(trl):
    mask = torch.tensor([[True, False, False, True], [False, True, False, False]])
    for lib in (S, trl):
        spec = lib.Categorical(4, shape=(2,))
        spec.update_mask(mask)
        draws = spec.rand((300,))
        assert set(draws[:, 0].unique().tolist()) == {0, 3} and draws[:, 1].unique().tolist() == [1]
        assert not bool(spec.is_in(torch.tensor([1, 1])))


def _composite(L):
    spec = L.Composite(obs=L.Bounded(-1.0, 1.0, shape=(2, 3)), shape=(2,))
    spec["agent", "action"] = L.Categorical(4, shape=(2,))
    spec["agent", "onehot"] = L.OneHot(3, shape=(2, 3))
    spec["agent", "info", "x"] = L.Unbounded(shape=(2, 1), dtype=torch.float64)
    spec["done"] = L.Categorical(2, shape=(2, 1), dtype=torch.bool)
    spec.set("reward", L.Unbounded(shape=(2, 1)))
    return spec


@pytest.mark.torchrl
def test_diff_composite(trl):
    ours, theirs = _composite(S), _composite(trl)
    assert_spec_matches_torchrl(ours, theirs)
    for args in ((), (True,), (True, True), (False, True)):
        assert list(ours.keys(*args)) == list(theirs.keys(*args)), args
    assert [k for k, _ in ours.items(True, True)] == [k for k, _ in theirs.items(True, True)]
    assert len(ours) == len(theirs) and list(ours) == list(theirs)
    assert_td_equal(ours.zero(), theirs.zero())
    assert_td_equal(ours.zero((3,)), theirs.zero((3,)))
    # TorchRL's Composite.one() gives int64 for bool entries, unlike its leaves' one(): compare values.
    a, b = ours.one(), theirs.one()
    for key in ours.keys(True, True):
        assert torch.equal(a[key], b[key].to(a[key].dtype)), key
    a, b = ours.rand((4,)), theirs.rand((4,))
    assert a.batch_size == b.batch_size and list(a.keys(True, True)) == list(b.keys(True, True))
    assert ours.is_in(b) and theirs.is_in(a)
    bad = theirs.rand()
    bad["obs"] = bad["obs"] + 3
    assert ours.is_in(bad) == theirs.is_in(bad) is False
    assert_td_equal(ours.project(bad), theirs.project(bad))
    vals = {"obs": np.full((2, 3), 0.5), "agent": {"action": np.array([1, 2]), "info": {"x": np.ones((2, 1))}}}
    assert_td_equal(ours.encode(vals), theirs.encode(vals))
    assert_spec_matches_torchrl(ours.expand(5, 2), theirs.expand(5, 2))
    assert_spec_matches_torchrl(ours[0], theirs[0])
    assert_spec_matches_torchrl(ours.unsqueeze(0), theirs.unsqueeze(0))
    assert_spec_matches_torchrl(ours.unsqueeze(0).squeeze(0), theirs.unsqueeze(0).squeeze(0))
    assert [s.shape for s in ours.unbind(0)] == [s.shape for s in theirs.unbind(0)]
    assert_spec_matches_torchrl(ours.clone(), theirs.clone())
    assert_spec_matches_torchrl(ours.to(torch.float64), theirs.to(torch.float64))
    assert repr(ours) == repr(theirs)


@pytest.mark.torchrl
def test_diff_composite_nested_shape_adoption(trl):
    for lib in (S, trl):
        outer = lib.Composite(shape=(2,))
        outer["a"] = lib.Composite(b=lib.Unbounded((2, 3)))
        assert outer["a"].shape == (2,)
        outer.shape = ()
        assert outer["a"].shape == (2,)
        with pytest.raises(ValueError):
            lib.Composite(a=lib.Unbounded((2, 3)), shape=(3,))


@pytest.mark.torchrl
def test_compare_helpers_report_differences(trl):
    with pytest.raises(AssertionError, match=r"spec \('agent', 'action'\): n 5 != 4"):
        ours = _composite(S)
        ours["agent", "action"] = S.Categorical(5, shape=(2,))
        assert_spec_matches_torchrl(ours, _composite(trl))
    with pytest.raises(AssertionError, match="keys differ"):
        assert_spec_matches_torchrl(S.Composite(a=S.Unbounded(1)), trl.Composite(b=trl.Unbounded(1)))
    with pytest.raises(AssertionError, match="class BoundedDiscrete != BoundedContinuous"):
        assert_spec_matches_torchrl(S.Bounded(0, 1, (2,), dtype=torch.int64), trl.Bounded(0, 1, (2,)))
    a = TensorDict({"x": {"y": torch.zeros(2)}}, batch_size=[])
    b = TensorDict({"x": {"y": torch.zeros(2, dtype=torch.float64)}}, batch_size=[])
    with pytest.raises(AssertionError, match=r"key \('x', 'y'\): dtype torch.float32 != torch.float64"):
        assert_td_equal(a, b)
    with pytest.raises(AssertionError, match=r"keys differ, only in a \['x'\]"):
        assert_td_equal(a, TensorDict({}, batch_size=[]))
    c = TensorDict({"x": {"y": torch.tensor([0.0, 1e-3])}}, batch_size=[])
    with pytest.raises(AssertionError, match=r"key \('x', 'y'\): values differ"):
        assert_td_equal(a, c)
    assert_td_equal(a, c, atol=1e-2)
