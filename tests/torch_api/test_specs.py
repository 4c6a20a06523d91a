"""Tests of numbarl.torch_api.specs: behaviour, bad input, properties, and differences to TorchRL 0.14.1."""
import pickle

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from numbarl.torch_api.specs import (
    Binary, Bounded, BoundedContinuous, BoundedDiscrete, Categorical, MultiCategorical, MultiOneHot,
    NonTensor, OneHot, TensorSpec, Unbounded, UnboundedContinuous, UnboundedDiscrete,
)

MASK4 = torch.tensor([True, False, True, False])


# =====================================================================================================
# construction and class dispatch
# =====================================================================================================
@pytest.mark.parametrize("dtype, cls", [
    (torch.float32, BoundedContinuous), (torch.float64, BoundedContinuous), (torch.float16, BoundedContinuous),
    (torch.int64, BoundedDiscrete), (torch.uint8, BoundedDiscrete), (torch.bool, BoundedDiscrete),
])
def test_bounded_dispatches_on_dtype(dtype, cls):
    spec = Bounded(0, 1, shape=(2,), dtype=dtype)
    assert type(spec) is cls
    assert isinstance(spec, Bounded) and isinstance(spec, TensorSpec)
    assert repr(spec).startswith(cls.__name__ + "(")
    assert spec.domain == ("continuous" if dtype.is_floating_point else "discrete")


def test_bounded_domain_argument_overrides_dtype():
    assert type(Bounded(0, 1, (3,), domain="discrete")) is BoundedDiscrete
    spec = Bounded(0, 1, (3,), dtype=torch.int64, domain="continuous")
    assert type(spec) is BoundedContinuous and spec.domain == "continuous"


def test_unbounded_dispatches_on_dtype():
    assert type(Unbounded(shape=(3,))) is UnboundedContinuous
    assert type(Unbounded(shape=(3,), dtype=torch.int32)) is UnboundedDiscrete
    assert type(UnboundedContinuous(shape=(3,), dtype=torch.int64)) is UnboundedDiscrete
    assert UnboundedDiscrete(shape=(2,)).dtype == torch.int64
    assert Unbounded().shape == torch.Size([1])
    assert Unbounded(3).shape == torch.Size([3])
    assert isinstance(Unbounded(3), Unbounded) and not isinstance(Unbounded(3), Bounded)


def test_bounded_low_high_broadcast_and_shape_inference():
    spec = Bounded(low=torch.tensor([0.0, -1.0, 2.0]), high=5.0)
    assert spec.shape == torch.Size([3])
    assert torch.equal(spec.high, torch.full((3,), 5.0))
    assert spec.space.low is spec.low and spec.space.high is spec.high
    spec = Bounded(low=torch.zeros(3), high=torch.ones(3), shape=(2, 3))
    assert spec.low.shape == (2, 3) and spec.low.is_contiguous()
    spec = Bounded(low=np.zeros(3), high=np.ones(3))
    assert spec.dtype == torch.get_default_dtype() and spec.shape == (3,)


def test_bounded_copies_its_bounds():
    low = torch.zeros(3)
    spec = Bounded(low, 1.0)
    low += 5
    assert torch.equal(spec.low, torch.zeros(3))


def test_dtype_and_device_spellings():
    assert Bounded(0, 1, (3,), dtype="float64").dtype == torch.float64
    assert Bounded(0, 1, (3,), dtype="torch.int32").dtype == torch.int32
    assert Bounded(0, 1, (3,), dtype=np.float64).dtype == torch.float64
    assert Categorical(3, device="cpu").device == torch.device("cpu")
    assert Categorical(3, device=torch.device("cpu")).device == torch.device("cpu")
    assert Categorical(3).device == torch.device("cpu")


def test_categorical_n_accepts_integer_like():
    assert Categorical(torch.tensor(4)).n == 4
    assert Categorical(np.int64(3)).n == 3
    assert Categorical(4).space.n == 4


# =====================================================================================================
# bad input
# =====================================================================================================
@pytest.mark.parametrize("make, exc, match", [
    (lambda: Bounded(2, 1, shape=(2,)), ValueError, r"low <= high.*low=\[2\.0, 2\.0\].*high=\[1\.0, 1\.0\]"),
    (lambda: Bounded(torch.tensor([0.0, float("nan")]), 1.0), ValueError, "low <= high"),
    (lambda: Bounded(0, 1), ValueError, "requires shape when low and high are scalars"),
    (lambda: Bounded(torch.zeros(3), torch.ones(3), shape=(4,)), ValueError, r"broadcast to shape \(4,\)"),
    (lambda: Bounded(None, 1, shape=(2,)), TypeError, "requires low to be a number, array or tensor, got None"),
    (lambda: Bounded(0, "x", shape=(2,)), TypeError, "requires high to be a number"),
    (lambda: Bounded(0, 1, shape=(2,), dtype=5), TypeError, "dtype to be a torch.dtype, got 5"),
    (lambda: Bounded(0, 1, shape=(2,), dtype="floaty"), ValueError,
     "dtype to be a torch.dtype or its name, got 'floaty'"),
    (lambda: Bounded(0, 1, shape=(2,), device=3.5), TypeError, "device to be a torch.device"),
    (lambda: Bounded(0, 1, shape=(2,), device="nowhere"), ValueError, "valid device, got 'nowhere'"),
    (lambda: Bounded(0, 1, shape=(2,), minimum=0), TypeError, "'minimum', which has been removed: use 'low'"),
    (lambda: Bounded(0, 1, shape=(2,), foo=1), TypeError, r"unexpected keyword arguments \['foo'\]"),
    (lambda: Bounded(0, 1, shape=(2,), domain="weird"), ValueError, "domain 'continuous' or 'discrete', got 'weird'"),
    (lambda: Bounded(0, 1, shape=(-1,)), ValueError, r"no negative dims, got \(-1,\)"),
    (lambda: Bounded(0, 1, shape="3"), TypeError, "shape to be an int or a sequence of ints, got '3'"),
    (lambda: Bounded(0, 1, shape=(2.0,)), TypeError, "shape to be an int or a sequence of ints"),
    (lambda: Unbounded(shape=(3,), dtype=object()), TypeError, "dtype to be a torch.dtype"),
    (lambda: Categorical(0), ValueError, "n >= 1, got 0"),
    (lambda: Categorical(2.5), TypeError, "n to be an int, got 2.5"),
    (lambda: Categorical(True), TypeError, "n to be an int, got True"),
    (lambda: OneHot(4, shape=(2, 3)), ValueError, r"shape\[-1\] == n, got n=4 and shape=\(2, 3\)"),
    (lambda: Binary(), TypeError, "requires n or shape"),
    (lambda: Binary(3, shape=(2, 4)), ValueError, r"shape\[-1\] == n, got n=3 and shape=\(2, 4\)"),
    (lambda: MultiCategorical([2, 0]), ValueError, r"every nvec entry >= 1, got \[2, 0\]"),
    (lambda: MultiCategorical([2.0, 3.0]), TypeError, "integer nvec"),
    (lambda: MultiCategorical([2, 3], shape=(4, 3)), ValueError, r"shape\[-1\] == nvec.shape\[-1\]"),
    (lambda: MultiOneHot([2, 3], shape=(4, 6)), ValueError, r"sum\(nvec\) == 5, got shape \(4, 6\)"),
    (lambda: MultiOneHot(5), TypeError, "nvec to be a sequence of ints, got 5"),
    (lambda: Categorical(4, mask=torch.ones(3, dtype=torch.bool)), ValueError,
     r"broadcastable to \(4,\), got shape \(3,\)"),
    (lambda: NonTensor(shape=(1,), foo=2), TypeError, "unexpected keyword"),
])
def test_bad_constructor_arguments(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


def test_bad_method_arguments():
    b = Bounded(-1.0, 1.0, shape=(3,))
    with pytest.raises(ValueError, match=r"encode requires a value of shape \(3,\).*got shape \(4,\)"):
        b.encode(np.zeros(4))
    with pytest.raises(ValueError, match=r"match the spec shape \(3,\).*got \(4, 2\)"):
        b.expand(4, 2)
    with pytest.raises(ValueError, match="match the spec shape"):
        b.expand(4)
    with pytest.raises(ValueError, match=r"squeeze requires dim in \[-1, 0\], got 5"):
        b.squeeze(5)
    with pytest.raises(ValueError, match=r"unsqueeze requires dim in \[-2, 1\], got 3"):
        b.unsqueeze(3)
    with pytest.raises(TypeError, match="device to be"):
        b.to(3.5)
    o = OneHot(4)
    with pytest.raises(ValueError, match="before the feature dim, got -1"):
        o.unsqueeze(-1)
    with pytest.raises(ValueError, match="cannot remove the feature dim"):
        OneHot(1).squeeze(-1)
    with pytest.raises(ValueError, match="cannot split the feature dim"):
        o.unbind(0)
    with pytest.raises(IndexError):
        o[0]
    with pytest.raises(ValueError, match=r"category indices in \[0, 4\), got 5"):
        o.encode(5)
    with pytest.raises(ValueError, match="indices per row within"):
        MultiOneHot([2, 3]).encode([2, 0])
    with pytest.raises(ValueError, match="at least one value in every row"):
        Categorical(4, mask=torch.zeros(4, dtype=torch.bool)).rand()
    with pytest.raises(ValueError, match="same nvec in every row"):
        MultiCategorical(torch.tensor([[2, 3], [4, 5]])).to_one_hot_spec()
    with pytest.raises(AssertionError, match="not in the BoundedContinuous space"):
        b.assert_is_in(torch.full((3,), 2.0))


# =====================================================================================================
# leaf behaviour: common interface
# =====================================================================================================
LEAVES = {
    "bounded": lambda: Bounded(-1.0, 2.0, shape=(3,)),
    "bounded_int": lambda: Bounded(torch.tensor([0, 2, 4]), torch.tensor([1, 3, 9]), dtype=torch.int64),
    "bounded_uint8": lambda: Bounded(0, 255, shape=(2, 2), dtype=torch.uint8),
    "bounded_bool": lambda: Bounded(False, True, shape=(2,), dtype=torch.bool),
    "unbounded": lambda: Unbounded(shape=(2, 3)),
    "unbounded_int": lambda: Unbounded(shape=(3,), dtype=torch.int16),
    "categorical": lambda: Categorical(5, shape=(2,)),
    "categorical_mask": lambda: Categorical(4, shape=(2,), mask=MASK4),
    "binary": lambda: Binary(4),
    "onehot": lambda: OneHot(4),
    "onehot_mask": lambda: OneHot(4, shape=(2, 4), mask=MASK4),
    "multicategorical": lambda: MultiCategorical([2, 3, 4]),
    "multicategorical_mask": lambda: MultiCategorical([2, 3], shape=(2, 2), mask=[True, False, True, True, False]),
    "multionehot": lambda: MultiOneHot([2, 3]),
    "multionehot_mask": lambda: MultiOneHot([2, 3], mask=[False, True, True, False, True]),
}


@pytest.fixture(params=sorted(LEAVES))
def leaf(request):
    return LEAVES[request.param]()


def test_rand_zero_one_shapes_and_dtypes(leaf):
    for extra in (None, (), 2, (2,), [2, 3], torch.Size([4])):
        lead = () if extra is None else ((extra,) if isinstance(extra, int) else tuple(extra))
        for fn in (leaf.rand, leaf.zero, leaf.one):
            out = fn(extra)
            assert out.shape == lead + tuple(leaf.shape), (fn.__name__, extra)
            assert out.dtype == leaf.dtype and out.device == leaf.device
    assert torch.equal(leaf.zero(), torch.zeros(leaf.shape, dtype=leaf.dtype))
    assert torch.equal(leaf.one(), torch.ones(leaf.shape, dtype=leaf.dtype))


def test_rand_is_in_and_batched_rand_is_in(leaf):
    assert leaf.is_in(leaf.rand())
    assert leaf.is_in(leaf.rand((5, 2)))
    leaf.assert_is_in(leaf.rand())


def test_sample_is_rand_for_leaves_and_composites(leaf):
    # TorchRL's specs have sample() as an alias of rand(); its tests' mock envs reset with it
    assert leaf.is_in(leaf.sample())
    assert leaf.sample((3,)).shape == (3,) + tuple(leaf.shape)
    from numbarl.torch_api.specs import Composite

    comp = Composite(obs=leaf, shape=())
    td = comp.sample((2,))
    assert td.batch_size == (2,) and td["obs"].shape == (2,) + tuple(leaf.shape)
    assert comp.is_in(comp.sample())


def test_is_in_rejects_wrong_dtype_and_shape(leaf):
    x = leaf.rand()
    other = torch.float64 if leaf.dtype != torch.float64 else torch.float32
    assert leaf.is_in(x.to(other)) is False
    assert leaf.is_in(x.reshape(-1)[:-1]) is False
    assert leaf.is_in(x.unsqueeze(-1)) is False
    assert leaf.is_in(x.numpy()) is False


def test_encode_round_trip_and_to_numpy(leaf):
    x = leaf.rand()
    arr = leaf.to_numpy(x)
    assert isinstance(arr, np.ndarray)
    back = leaf.encode(arr)
    assert back.dtype == leaf.dtype and back.shape == leaf.shape
    assert torch.equal(back, x)


def test_project_lands_in_spec(leaf):
    x = torch.randn((6,) + tuple(leaf.shape), dtype=torch.float64) * 50
    assert leaf.is_in(leaf.project(x))
    assert leaf.is_in(leaf.project(leaf.rand()))
    y = leaf.rand()
    assert torch.equal(leaf.project(y), y)


def test_expand_clone_eq(leaf):
    big = leaf.expand(3, *leaf.shape)
    assert big.shape == (3,) + tuple(leaf.shape)
    assert leaf.expand((3, *leaf.shape)) == big
    assert leaf.expand(torch.Size((3, *leaf.shape))) == big
    assert big.is_in(big.rand()) and big.is_in(big.rand((2,)))
    assert big[0] == leaf
    assert all(s == leaf for s in big.unbind(0))
    assert big[1:3].shape == (2,) + tuple(leaf.shape)
    twin = leaf.clone()
    assert twin == leaf and twin is not leaf
    assert leaf != big
    assert (leaf == 3) is False


def test_unsqueeze_squeeze_round_trip(leaf):
    up = leaf.unsqueeze(0)
    assert up.shape == (1,) + tuple(leaf.shape)
    assert up.is_in(up.rand())
    assert up.squeeze(0) == leaf
    assert up.squeeze() == leaf.squeeze()


def test_pickle_round_trip(leaf):
    again = pickle.loads(pickle.dumps(leaf))
    assert type(again) is type(leaf) and again == leaf
    assert again.is_in(again.rand())


def test_repr_names_class_shape_dtype(leaf):
    text = repr(leaf)
    assert text.startswith(type(leaf).__name__ + "(\n    shape=" + repr(leaf.shape))
    assert f"dtype={leaf.dtype}" in text and f"device={leaf.device}" in text and f"domain={leaf.domain}" in text


def test_to_dtype_and_device(leaf):
    assert leaf.to("cpu") is leaf and leaf.to(torch.device("cpu")) is leaf and leaf.cpu() is leaf
    assert leaf.to(leaf.dtype) is leaf
    if isinstance(leaf, (Bounded, Unbounded)):
        new = leaf.to(torch.float64)
        assert new.dtype == torch.float64 and type(new).__name__.endswith("Continuous")
        assert new.is_in(new.rand())


# =====================================================================================================
# leaf behaviour: specific
# =====================================================================================================
def test_bounded_attributes_and_ndim():
    b = Bounded(-1.0, 1.0, shape=(2, 3))
    assert b.ndim == 2 and b.ndimension() == 2
    assert torch.equal(b.low, -torch.ones(2, 3)) and torch.equal(b.high, torch.ones(2, 3))
    assert b.low.dtype == torch.float32


def test_bounded_is_in_values():
    b = Bounded(-1.0, 1.0, shape=(3,))
    assert b.is_in(torch.tensor([-1.0, 0.0, 1.0])) is True
    assert b.is_in(torch.tensor([-1.0, 0.0, 1.0001])) is False
    assert b.is_in(torch.tensor([float("nan"), 0.0, 0.0])) is False
    assert b.is_in(torch.zeros(4, 3)) is True


def test_bounded_project_clamps_and_casts():
    b = Bounded(-1.0, 1.0, shape=(3,))
    assert torch.equal(b.project(torch.tensor([-3.0, 0.5, 3.0])), torch.tensor([-1.0, 0.5, 1.0]))
    out = b.project(torch.tensor([-3, 0, 3]))
    assert out.dtype == torch.float32 and torch.equal(out, torch.tensor([-1.0, 0.0, 1.0]))
    bi = Bounded(0, 5, shape=(3,), dtype=torch.int8)
    out = bi.project(torch.tensor([-1.6, 2.6, 1e6]))
    assert out.dtype == torch.int8 and out.tolist() == [0, 3, 5]
    out = bi.project(torch.tensor([-1000, 3, 1000]))
    assert out.tolist() == [0, 3, 5]


def test_bounded_int_rand_includes_high():
    spec = Bounded(0, 3, shape=(4,), dtype=torch.int64)
    draws = spec.rand((500,))
    assert set(draws.unique().tolist()) == {0, 1, 2, 3}
    per_elem = Bounded(torch.tensor([0, 10]), torch.tensor([1, 12]), dtype=torch.int32)
    draws = per_elem.rand((500,))
    assert set(draws[:, 0].unique().tolist()) == {0, 1}
    assert set(draws[:, 1].unique().tolist()) == {10, 11, 12}
    u8 = Bounded(250, 255, shape=(3,), dtype=torch.uint8).rand((500,))
    assert int(u8.max()) == 255 and int(u8.min()) == 250


def test_bounded_float_rand_spans_range():
    draws = Bounded(2.0, 4.0, shape=(2,)).rand((2000,))
    assert float(draws.min()) >= 2.0 and float(draws.max()) <= 4.0
    assert float(draws.min()) < 2.1 and float(draws.max()) > 3.9


def test_bounded_infinite_bounds_rand_is_finite_and_in():
    for low, high in ((-float("inf"), float("inf")), (0.0, float("inf")), (-float("inf"), -5.0), (-3e38, 3e38)):
        spec = Bounded(low, high, shape=(50,))
        x = spec.rand()
        assert bool(torch.isfinite(x).all()) and spec.is_in(x), (low, high)


def test_bounded_equality_details():
    b = Bounded(-1.0, 1.0, shape=(3,))
    assert b == Bounded(-1, 1, shape=(3,))
    assert b != Bounded(-1.0, 2.0, shape=(3,))
    assert b != Bounded(-1.0, 1.0, shape=(3,), dtype=torch.float64)
    assert b != Bounded(-1.0, 1.0, shape=(1, 3))
    assert b != Unbounded(shape=(3,))
    with pytest.raises(TypeError):
        hash(b)


def test_bounded_indexing_follows_torch():
    b = Bounded(torch.arange(12.0).reshape(4, 3), 100.0)
    assert torch.equal(b[1].low, torch.tensor([3.0, 4.0, 5.0]))
    assert torch.equal(b[:, 0].low, torch.tensor([0.0, 3.0, 6.0, 9.0]))
    assert b[..., 1].shape == (4,)
    assert b[None].shape == (1, 4, 3)
    assert b[torch.tensor([True, False, True, True])].shape == (3, 3)
    assert b[0, 1].shape == ()
    parts = b.unbind(1)
    assert len(parts) == 3 and torch.equal(parts[2].low, torch.tensor([2.0, 5.0, 8.0, 11.0]))
    assert b.unsqueeze(-1).shape == (4, 3, 1)
    assert Bounded(0.0, 1.0, (1, 3, 1)).squeeze().shape == (3,)
    assert Bounded(0.0, 1.0, (2, 1)).squeeze(0).shape == (2, 1)


def test_encode_accepts_numpy_lists_scalars_tensors():
    b = Bounded(-1.0, 1.0, shape=(3,))
    assert torch.equal(b.encode([0.1, 0.2, 0.3]), torch.tensor([0.1, 0.2, 0.3]))
    out = b.encode(np.array([0.1, 0.2, 0.3]))
    assert out.dtype == torch.float32
    out = b.encode(torch.zeros(3, dtype=torch.float64))
    assert out.dtype == torch.float32
    assert b.encode(np.zeros((5, 3))).shape == (5, 3)
    assert b.encode(np.zeros((3, 1))).shape == (3,)
    assert Unbounded(1).encode(0.5).tolist() == [0.5]
    assert Categorical(3).encode(np.int64(2)).tolist() == 2
    assert Categorical(3).encode(2.7).tolist() == 2
    arr = np.zeros(3, dtype=np.float32)
    shared = b.encode(arr)
    arr[0] = 0.5
    assert float(shared[0]) == 0.5, "encode is zero-copy for arrays of the spec's dtype"
    t = torch.zeros(3)
    assert b.encode(t) is t


def test_unbounded_behaviour():
    u = Unbounded(shape=(3,))
    assert u.is_in(torch.tensor([float("inf"), float("nan"), 0.0])) is True
    assert u.project(torch.zeros(3, dtype=torch.int64)).dtype == torch.float32
    assert torch.equal(u.space.low, torch.full((3,), torch.finfo(torch.float32).min))
    draws = Unbounded(shape=(1000,)).rand()
    assert abs(float(draws.mean())) < 0.2 and 0.8 < float(draws.std()) < 1.2
    ints = Unbounded(shape=(2000,), dtype=torch.int8).rand()
    assert int(ints.min()) >= 0 and int(ints.max()) <= 127
    assert Unbounded(shape=(3,), dtype=torch.bool).space.high.tolist() == [True] * 3


def test_categorical_basics():
    c = Categorical(4)
    assert c.shape == () and c.dtype == torch.int64 and c.domain == "discrete" and c.mask is None
    assert c.is_in(torch.tensor(3)) and not c.is_in(torch.tensor(4)) and not c.is_in(torch.tensor(-1))
    assert c.is_in(torch.tensor([0, 3]))
    assert c.project(torch.tensor(7)).item() == 3 and c.project(torch.tensor(-2)).item() == 0
    assert c.project(torch.tensor(2.7)).item() == 3
    assert repr(c.space) == "CategoricalBox(n=4)"
    assert Categorical(4, dtype=torch.int32).rand().dtype == torch.int32
    assert set(c.rand((400,)).unique().tolist()) == {0, 1, 2, 3}


def test_categorical_mask_rand_is_in_project():
    c = Categorical(4, mask=MASK4)
    assert set(c.rand((200,)).unique().tolist()) == {0, 2}
    assert not c.is_in(torch.tensor(1)) and c.is_in(torch.tensor(2))
    assert c.project(torch.tensor(1)).item() == 0  # nearest legal value, ties go low
    assert c.project(torch.tensor(3)).item() == 2
    assert c != Categorical(4) and c == Categorical(4, mask=MASK4.clone())
    assert c.expand(3).mask.shape == (3, 4)
    assert torch.equal(c.to_one_hot_spec().mask, MASK4)


def test_update_mask_per_row_broadcast_and_clear():
    c = Categorical(4, shape=(2,))
    c.update_mask(torch.tensor([[True, False, False, False], [False, False, False, True]]))
    assert c.rand((5,)).tolist() == [[0, 3]] * 5
    c.update_mask(torch.tensor([1, 1, 0, 0]))
    assert c.mask.dtype == torch.bool and c.mask.shape == (2, 4)
    assert set(c.rand((200,)).unique().tolist()) == {0, 1}
    assert not c.is_in(torch.tensor([0, 3]))
    c.update_mask(None)
    assert c.mask is None and c.is_in(torch.tensor([0, 3]))


def test_categorical_one_hot_conversions():
    c = Categorical(4, shape=(2,))
    assert c.to_one_hot(torch.tensor([2, 1])).tolist() == [[False, False, True, False], [False, True, False, False]]
    spec = c.to_one_hot_spec()
    assert isinstance(spec, OneHot) and spec.shape == (2, 4) and spec.n == 4
    assert spec.to_categorical_spec() == c


def test_binary_behaviour():
    b = Binary(3)
    assert b.n == 2 and b.space.n == 2 and b.shape == (3,) and b.dtype == torch.int8
    assert isinstance(b, Categorical)
    assert Binary(shape=(2, 3)).shape == (2, 3)
    assert not b.is_in(torch.tensor([0, 2, 1], dtype=torch.int8))
    assert b.project(torch.tensor([0.2, 0.7, -1.0])).tolist() == [0, 1, 0]
    assert b.encode([True, False, True]).tolist() == [1, 0, 1]
    assert b.to_one_hot_spec().shape == (3, 2)
    assert b != Categorical(2, shape=(3,), dtype=torch.int8)
    assert Binary(3, dtype=torch.bool).is_in(torch.tensor([True, False, True]))


def test_onehot_behaviour():
    o = OneHot(4)
    assert o.shape == (4,) and o.n == 4 and o.dtype == torch.bool
    assert o.is_in(torch.tensor([False, True, False, False]))
    assert not o.is_in(torch.tensor([True, True, False, False]))
    assert not o.is_in(torch.zeros(4, dtype=torch.bool))
    assert OneHot(4, dtype=torch.int64).is_in(torch.tensor([0, 1, 0, 0]))
    assert not OneHot(4, dtype=torch.int64).is_in(torch.tensor([0, 2, 0, -1]))
    assert o.project(torch.tensor([0.1, 0.7, 0.3, 0.0])).tolist() == [False, True, False, False]
    assert o.encode(2).tolist() == [False, False, True, False]
    assert o.encode(np.array([2, 1])).shape == (2, 4)
    assert o.encode(np.array([False, False, True, False])).tolist() == [False, False, True, False]
    assert o.to_numpy(torch.tensor([False, True, False, False])) == 1
    assert o.to_categorical(torch.tensor([[False, True, False, False]])).tolist() == [1]
    assert o.to_categorical_spec() == Categorical(4)
    assert OneHot(4).expand(3, 4).to_categorical_spec().shape == (3,)


def test_onehot_mask():
    o = OneHot(4, mask=torch.tensor([False, False, True, True]))
    draws = o.rand((200,))
    assert not bool(draws[:, :2].any()) and bool(draws[:, 2].any()) and bool(draws[:, 3].any())
    assert not o.is_in(torch.tensor([True, False, False, False]))
    assert o.project(torch.tensor([0.9, 0.1, 0.3, 0.2])).tolist() == [False, False, True, False]
    o.update_mask(torch.tensor([True, False, False, False]))
    assert o.rand((3,)).tolist() == [[True, False, False, False]] * 3
    assert o.expand(2, 4).mask.shape == (2, 4)


def test_multicategorical_behaviour():
    m = MultiCategorical([2, 3])
    assert m.shape == (2,) and m.nvec.tolist() == [2, 3] and not hasattr(m, "n")
    assert isinstance(m, Categorical)
    assert repr(m.space) == "BoxList(boxes=[CategoricalBox(n=2), CategoricalBox(n=3)])"
    assert m.is_in(torch.tensor([1, 2])) and not m.is_in(torch.tensor([2, 2]))
    assert m.project(torch.tensor([5, -1])).tolist() == [1, 0]
    assert m.to_one_hot(torch.tensor([1, 2])).tolist() == [False, True, False, False, True]
    assert m.to_one_hot_spec() == MultiOneHot([2, 3])
    draws = m.rand((500,))
    assert set(draws[:, 0].unique().tolist()) == {0, 1} and set(draws[:, 1].unique().tolist()) == {0, 1, 2}
    assert MultiCategorical(3).shape == (1,)
    grid = MultiCategorical(torch.tensor([[2, 3], [4, 5]]))
    assert grid.shape == (2, 2) and grid.is_in(grid.rand((7,)))
    assert not grid.is_in(torch.tensor([[0, 0], [4, 0]]))
    assert m.expand(4, 2).nvec.shape == (4, 2) and m.expand(4, 2)[1] == m


def test_multicategorical_mask():
    m = MultiCategorical([2, 3], mask=torch.tensor([True, False, False, True, True]))
    draws = m.rand((300,))
    assert set(draws[:, 0].unique().tolist()) == {0} and set(draws[:, 1].unique().tolist()) == {1, 2}
    assert m.is_in(torch.tensor([0, 1])) and not m.is_in(torch.tensor([1, 1])) and not m.is_in(torch.tensor([0, 0]))
    assert m.project(torch.tensor([1, 0])).tolist() == [0, 1]
    m.update_mask(torch.tensor([False, True, True, False, False]))
    assert m.rand((3,)).tolist() == [[1, 0]] * 3
    assert m.to_one_hot_spec().mask.tolist() == [False, True, True, False, False]
    with pytest.raises(ValueError, match=r"broadcastable to \(5,\), got shape \(4,\)"):
        m.update_mask(torch.tensor([False, True, True, False]))


def test_multionehot_behaviour():
    mo = MultiOneHot([2, 3])
    assert mo.shape == (5,) and mo.nvec == [2, 3] and not hasattr(mo, "n")
    assert isinstance(mo, OneHot)
    assert mo.is_in(torch.tensor([False, True, True, False, False]))
    assert not mo.is_in(torch.tensor([False, True, True, True, False]))
    assert not mo.is_in(torch.tensor([True, True, True, False, False]))
    assert mo.to_categorical(torch.tensor([False, True, True, False, False])).tolist() == [1, 0]
    assert mo.to_categorical_spec() == MultiCategorical([2, 3])
    assert mo.encode([1, 2]).tolist() == [False, True, False, False, True]
    assert mo.project(torch.tensor([0.1, 0.4, 0.5, 0.1, 0.9])).tolist() == [False, True, False, False, True]
    assert mo.to_numpy(torch.tensor([False, True, True, False, False])).tolist() == [1, 0]
    assert mo.expand(3, 5).nvec == [2, 3] and mo.expand(3, 5).shape == (3, 5)
    masked = MultiOneHot([2, 3], mask=torch.tensor([True, False, False, True, True]))
    draws = masked.rand((300,))
    assert not bool(draws[:, 1].any()) and not bool(draws[:, 2].any()) and bool(draws[:, 3].any())


def test_nontensor_behaviour():
    spec = NonTensor(shape=(2,), example_data="hi")
    out = spec.rand((4,))
    assert out.batch_size == (4, 2) and out.data == "hi"
    assert spec.zero().data == "hi" and spec.one().data == "hi"
    assert spec.is_in("other") and not spec.is_in(torch.zeros(2))
    assert spec.encode(5).data == 5 and spec.project(5) == 5
    assert spec.expand(3, 2).shape == (3, 2) and spec[0].shape == ()
    assert spec.clone() == spec and spec != NonTensor(shape=(2,), example_data="other")
    assert NonTensor(example_data=3).shape == (1,) and spec.device is None and spec.dtype is None
    assert "example_data=hi" in repr(spec)


# =====================================================================================================
# property tests
# =====================================================================================================
INT_DTYPES = [torch.int8, torch.uint8, torch.int16, torch.int32, torch.int64]
FLOAT_DTYPES = [torch.float16, torch.float32, torch.float64]
shapes = st.lists(st.integers(1, 3), min_size=0, max_size=3).map(tuple)


@st.composite
def bounded_specs(draw):
    dtype = draw(st.sampled_from(INT_DTYPES + FLOAT_DTYPES))
    shape = draw(shapes)
    if dtype.is_floating_point:
        width = {torch.float16: 16, torch.float32: 32, torch.float64: 64}[dtype]
        lim = 6e4 if dtype == torch.float16 else 2.0 ** 100
        elems = st.floats(-lim, lim, allow_nan=False, allow_subnormal=False, width=width)
    else:
        info = torch.iinfo(dtype)
        elems = st.integers(max(info.min, -2 ** 40), min(info.max, 2 ** 40))
    a = draw(hnp.arrays(np.float64 if dtype.is_floating_point else np.int64, shape, elements=elems))
    b = draw(hnp.arrays(np.float64 if dtype.is_floating_point else np.int64, shape, elements=elems))
    return Bounded(torch.as_tensor(np.minimum(a, b)), torch.as_tensor(np.maximum(a, b)), shape=shape, dtype=dtype)


@st.composite
def discrete_specs(draw):
    kind = draw(st.sampled_from(["cat", "onehot", "multicat", "multionehot", "binary"]))
    lead = draw(st.lists(st.integers(1, 3), max_size=2).map(tuple))
    masked = draw(st.booleans())
    if kind in ("cat", "onehot"):
        n = draw(st.integers(1, 6))
        mask = draw(hnp.arrays(np.bool_, lead + (n,))) if masked else None
        if mask is not None:
            mask[..., draw(st.integers(0, n - 1))] = True
        if kind == "cat":
            return Categorical(n, shape=lead, mask=mask)
        return OneHot(n, shape=lead + (n,), mask=mask)
    if kind == "binary":
        return Binary(shape=lead + (draw(st.integers(1, 4)),))
    nvec = draw(st.lists(st.integers(1, 4), min_size=1, max_size=3))
    mask = draw(hnp.arrays(np.bool_, lead + (sum(nvec),))) if masked else None
    if mask is not None:
        start = 0
        for n in nvec:
            mask[..., start + draw(st.integers(0, n - 1))] = True
            start += n
    if kind == "multicat":
        return MultiCategorical(nvec, shape=lead + (len(nvec),), mask=mask)
    return MultiOneHot(nvec, shape=lead + (sum(nvec),), mask=mask)


@settings(max_examples=60, deadline=None)
@given(spec=bounded_specs(), extra=st.lists(st.integers(1, 3), max_size=2).map(tuple))
def test_bounded_rand_always_in_space(spec, extra):
    assert spec.is_in(spec.rand(extra))


@settings(max_examples=60, deadline=None)
@given(spec=discrete_specs(), extra=st.lists(st.integers(1, 3), max_size=2).map(tuple))
def test_discrete_rand_always_in_space(spec, extra):
    x = spec.rand(extra)
    assert spec.is_in(x), (spec, x)


@settings(max_examples=60, deadline=None)
@given(spec=bounded_specs(), data=st.data())
def test_bounded_project_lands_in_space(spec, data):
    vals = data.draw(hnp.arrays(np.float64, tuple(spec.shape), elements=st.floats(-1e40, 1e40, allow_nan=False)))
    assert spec.is_in(spec.project(torch.as_tensor(vals)))


@settings(max_examples=60, deadline=None)
@given(spec=discrete_specs(), data=st.data())
def test_discrete_project_lands_in_space(spec, data):
    vals = data.draw(hnp.arrays(np.float64, tuple(spec.shape), elements=st.floats(-10, 10, allow_nan=False)))
    assert spec.is_in(spec.project(torch.as_tensor(vals)))


@settings(max_examples=60, deadline=None)
@given(spec=st.one_of(bounded_specs(), discrete_specs()))
def test_encode_round_trips(spec):
    x = spec.rand()
    assert torch.equal(spec.encode(spec.to_numpy(x)), x)
    assert torch.equal(spec.encode(x.tolist()) if spec.ndim else spec.encode(x.item()), spec.encode(spec.to_numpy(x)))
