"""TorchRL spec API details that TorchRL's own tests rely on.

``expand`` broadcasts size-1 dims as ``torch.Tensor.expand``; a Composite
accepts nested dicts; ``zeros`` / ``ones`` alias ``zero`` / ``one``; children on
other devices are accepted when the Composite has no device, refused (with an
error that is also TorchRL's RuntimeError) when it has one.
"""
import pytest
import torch

from compare import assert_spec_matches_torchrl, assert_td_equal
import numbarl.torch_api.specs as S

EXPAND_CASES = [
    ("unbounded_11", lambda L: L.Unbounded((1, 1)), (6, 1)),
    ("unbounded_1_same_ndim", lambda L: L.Unbounded((1,)), (3,)),
    ("bounded_lead_and_broadcast", lambda L: L.Bounded(-1.0, 1.0, (1, 3)), (4, 2, 3)),
    ("multicat", lambda L: L.MultiCategorical([2, 3], shape=(1, 2)), (4, 2)),
    ("categorical", lambda L: L.Categorical(4, shape=(1,)), (2, 3)),
    ("composite", lambda L: L.Composite(a=L.Unbounded((1, 3)), b=L.Categorical(3, shape=(1,)), shape=(1,)), (5,)),
]


@pytest.mark.parametrize("name,make,shape", EXPAND_CASES, ids=[c[0] for c in EXPAND_CASES])
def test_expand_broadcasts_size_one_dims(name, make, shape):
    spec = make(S).expand(*shape)
    assert tuple(spec.shape) == shape
    assert spec.is_in(spec.rand())
    assert spec.rand((2,)).shape[:1 + len(shape)] == (2, *shape)


def test_expand_minus_one_keeps_the_spec_dim():
    # TorchRL refuses -1 among the spec's own dims; torch (and we) keep the dim
    spec = S.Bounded(-1.0, 1.0, (1, 3)).expand(5, 1, -1)
    assert spec.shape == (5, 1, 3)
    assert spec.is_in(spec.rand())
    assert S.Composite(a=S.Unbounded((1, 3)), shape=(1,)).expand(2, -1)["a"].shape == (2, 1, 3)


@pytest.mark.parametrize("spec,shape", [(S.Unbounded((2,)), (3, 1)), (S.Unbounded((2, 3)), (3,)),
                                         (S.Composite(a=S.Unbounded((2,)), shape=(2,)), (3,))])
def test_expand_refuses_what_torch_refuses(spec, shape):
    with pytest.raises(ValueError, match="expand"):
        spec.expand(*shape)


@pytest.mark.torchrl
@pytest.mark.parametrize("name,make,shape", EXPAND_CASES, ids=[c[0] for c in EXPAND_CASES])
def test_expand_matches_torchrl(torchrl, name, make, shape):
    import torchrl.data as T

    assert_spec_matches_torchrl(make(S).expand(*shape), make(T).expand(*shape))


def test_composite_from_nested_dict():
    spec = S.Composite({"a": {"b": S.Unbounded((4, 2)), "c": {"d": S.Categorical(3, shape=(4,))}}}, shape=(4,))
    assert isinstance(spec["a"], S.Composite) and isinstance(spec["a", "c"], S.Composite)
    assert spec["a"].shape == (4,) and spec["a", "c"].shape == (4,)
    assert spec["a", "c", "d"].n == 3
    spec["e"] = {"f": S.Unbounded((4,))}
    spec["g", "h"] = {"i": S.Unbounded((4, 1))}
    assert spec["g", "h", "i"].shape == (4, 1)
    with pytest.raises(TypeError, match="mapping of specs"):
        spec["bad"] = 3


@pytest.mark.torchrl
def test_composite_from_nested_dict_matches_torchrl(torchrl):
    import torchrl.data as T

    def make(L):
        return L.Composite({"a": {"b": L.Unbounded((4, 2))}, "c": L.Bounded(0.0, 1.0, (4,))}, shape=(4,))
    assert_spec_matches_torchrl(make(S), make(T))


def test_zeros_ones_alias_zero_one():
    spec = S.Composite(a=S.Bounded(-1.0, 1.0, (3,)), b=S.Categorical(4, shape=(2,)))
    assert_td_equal(spec.zeros(), spec.zero())
    assert_td_equal(spec.ones((2,)), spec.one((2,)))
    assert torch.equal(S.Unbounded((3,)).zeros(), torch.zeros(3))
    assert torch.equal(S.Unbounded((3,)).ones((2,)), torch.ones(2, 3))


@pytest.mark.torchrl
def test_zeros_matches_torchrl(torchrl):
    import torchrl.data as T

    def make(L):
        return L.Composite(a=L.Bounded(-1.0, 1.0, (3,)), b=L.Categorical(4, shape=(2,)))
    assert_td_equal(make(S).zeros((2,)), make(T).zeros((2,)))


def test_mixed_devices_accepted_without_a_composite_device():
    spec = S.Composite(a=S.Unbounded(3, device="cpu"), b=S.Unbounded(3, device="meta"))
    assert spec.device is None
    assert spec["b"].device == torch.device("meta")
    assert spec.to("cpu")["b"].device == torch.device("cpu")


def test_child_on_another_device_raises_torchrl_exception_type():
    with pytest.raises(RuntimeError, match="on device meta"):
        S.Composite(a=S.Unbounded(3, device="meta"), device="cpu")
    with pytest.raises(ValueError, match="on device meta"):
        S.Composite(a=S.Unbounded(3, device="meta"), device="cpu")


@pytest.mark.torchrl
def test_mixed_devices_match_torchrl(torchrl):
    import torchrl.data as T

    for L in (S, T):
        spec = L.Composite(a=L.Unbounded(3, device="cpu"), b=L.Unbounded(3, device="meta"))
        assert spec.device is None
        with pytest.raises(RuntimeError):
            L.Composite(a=L.Unbounded(3, device="meta"), device="cpu")
