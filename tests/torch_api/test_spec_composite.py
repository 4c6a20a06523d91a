"""Tests of numbarl.torch_api.specs.Composite: nested keys, shapes, sampling, validation."""
import pickle

import numpy as np
import pytest
import torch
from tensordict import TensorDict

import numbarl.torch_api.specs as S
from numbarl.torch_api.specs import (
    Bounded, Categorical, Composite, NonTensor, Unbounded,
)

MASK4 = torch.tensor([True, False, True, False])

# =====================================================================================================
# Composite
# =====================================================================================================
def make_composite():
    spec = Composite(obs=Bounded(-1.0, 1.0, shape=(2, 3)), shape=(2,))
    spec["agent", "action"] = Categorical(4, shape=(2,))
    spec["agent", "info", "x"] = Unbounded(shape=(2, 1))
    spec["reward"] = Unbounded(shape=(2, 1))
    return spec


def test_composite_nested_keys_and_order():
    spec = make_composite()
    assert list(spec.keys()) == ["obs", "agent", "reward"]
    assert list(spec.keys(True)) == ["obs", ("agent", "action"), ("agent", "info", "x"), ("agent", "info"),
                                     "agent", "reward"]
    assert list(spec.keys(True, True)) == ["obs", ("agent", "action"), ("agent", "info", "x"), "reward"]
    assert list(spec.keys(False, True)) == ["obs", "reward"]
    is_comp = lambda cls: issubclass(cls, Composite)  # noqa: E731
    assert list(spec.keys(True, True, is_leaf=is_comp)) == [("agent", "info"), "agent"]
    assert list(spec.keys(True, True, is_leaf=lambda cls: False)) == []
    assert len(spec.keys(True)) == 6 and len(spec) == 3 and list(spec) == ["obs", "agent", "reward"]
    assert [k for k, _ in spec.items(True, True)] == list(spec.keys(True, True))
    assert [type(v).__name__ for v in spec.values()] == ["BoundedContinuous", "Composite", "UnboundedContinuous"]
    assert ("agent", "action") in spec.keys(True) and ("agent", "action") not in spec.keys()
    assert isinstance(spec["agent"], Composite) and spec["agent"].shape == (2,)
    assert spec["agent", "info", "x"] is spec["agent"]["info"]["x"]
    assert spec[("agent",)] is spec["agent"] and spec[()] is spec


def test_composite_contains_get_pop_del():
    spec = make_composite()
    assert "obs" in spec and ("agent", "action") in spec and ("agent",) in spec
    assert ("agent", "nope") not in spec and "x" not in spec and 3 not in spec and ("obs", "x") not in spec
    assert spec.get("nope") is None and spec.get("nope", 3) == 3
    assert spec.get(("agent", "action")).n == 4
    popped = spec.pop(("agent", "action"))
    assert popped.n == 4 and ("agent", "action") not in spec
    assert spec.pop("nope", 5) == 5
    with pytest.raises(KeyError, match=r"key 'nope' not found in Composite; existing keys: \['obs'"):
        spec.pop("nope")
    del spec["agent", "info"]
    assert list(spec.keys(True)) == ["obs", "agent", "reward"]
    with pytest.raises(KeyError, match="key 'zzz' not found"):
        del spec["zzz"]


def test_composite_missing_key_message_lists_keys():
    spec = Composite(a=Unbounded(1), b=Composite(c=Unbounded(1)))
    with pytest.raises(KeyError, match=r"key 'z' not found in Composite; existing keys: \['a', \('b', 'c'\), 'b'\]"):
        spec["z"]
    with pytest.raises(KeyError, match=r"key \('b', 'z'\) not found"):
        spec["b", "z"]
    with pytest.raises(KeyError, match=r"key \('a', 'z'\) not found"):
        spec["a", "z"]


def test_composite_set_validation():
    spec = Composite(shape=(2,))
    with pytest.raises(ValueError, match=r"key 'x': the spec shape \(3,\) must start with the Composite shape \(2,\)$"):
        spec["x"] = Unbounded((3,))
    with pytest.raises(ValueError, match=r"key \('n', 'x'\).*shape \(3,\)"):
        spec["n", "x"] = Unbounded((3,))
    assert "n" not in spec
    with pytest.raises(TypeError, match="keys must be a str or a non-empty tuple of str, got 0"):
        spec[0] = Unbounded((2,))
    with pytest.raises(TypeError, match="values must be TensorSpec, a mapping of specs or None, got int"):
        spec["q"] = 3
    spec["leaf"] = Unbounded((2,))
    with pytest.raises(ValueError, match="'leaf' holds a UnboundedContinuous, not a Composite"):
        spec["leaf", "x"] = Unbounded((2,))
    with pytest.raises(TypeError, match="at most one positional mapping, got 2"):
        Composite({}, {})
    with pytest.raises(TypeError, match="mapping of specs"):
        Composite([1, 2])
    with pytest.raises(ValueError, match=r"spec is on device meta but the Composite is on cpu"):
        Composite(a=Unbounded(3, device="meta"), device="cpu")


def test_composite_nested_composite_takes_parent_shape_and_device():
    inner = Composite(b=Unbounded((2, 3)))
    outer = Composite(shape=(2,), device="cpu")
    outer["a"] = inner
    assert outer["a"].shape == (2,) and outer["a"].device == torch.device("cpu")
    assert inner.shape == () and inner.device is None, "the argument is not modified"
    with pytest.raises(ValueError, match=r"key \('a', 'b'\): the spec shape \(3, 3\) must start with the .* \(2,\)"):
        Composite(a=Composite(b=Unbounded((3, 3))), shape=(2,))
    nested = Composite(shape=(2,))
    nested["a", "b"] = Unbounded((2,))
    with pytest.raises(ValueError, match=r"key \('a', 'c'\): the spec shape \(3,\)"):
        nested["a", "c"] = Unbounded((3,))


def test_composite_shape_setter():
    spec = Composite(a=Composite(b=Unbounded((2, 3)), shape=(2,)), shape=(2,))
    spec.shape = ()
    assert spec.shape == () and spec["a"].shape == (2,)
    spec.shape = (2,)
    with pytest.raises(ValueError, match=r"key \('a', 'b'\): the spec shape \(2, 3\) must start with the .* \(3,\)"):
        spec.shape = (3,)
    assert spec.shape == (2,) and spec["a"].shape == (2,)
    d = Composite(a=Composite(b=Unbounded((2, 3))))
    d.shape = (2, 3)
    assert d["a"].shape == (2, 3) and d.batch_size == (2, 3) and d.ndim == 2


def test_composite_rand_zero_one():
    spec = make_composite()
    for fn in (spec.rand, spec.zero, spec.one):
        td = fn()
        assert isinstance(td, TensorDict) and td.batch_size == (2,)
        assert td["agent", "action"].shape == (2,) and td["obs"].shape == (2, 3)
        td = fn((5,))
        assert td.batch_size == (5, 2) and td["agent", "info", "x"].shape == (5, 2, 1)
    assert spec.zero(3).batch_size == (3, 2)
    assert bool((spec.zero()["obs"] == 0).all()) and bool((spec.one()["obs"] == 1).all())
    assert list(spec.zero().keys(True, True)) == list(spec.keys(True, True))
    assert list(Composite(a=Unbounded(1), b=None).rand().keys()) == ["a"]
    assert Composite(a=Unbounded(3), device="cpu").zero().device == torch.device("cpu")
    empty = Composite(a=Composite(), b=Unbounded(1)).zero()
    assert list(empty.keys()) == ["a", "b"]
    nt = Composite(a=NonTensor(shape=(), example_data="x"), b=Unbounded(1)).zero()
    assert nt["a"] == "x"


def test_composite_is_in_project_encode():
    spec = make_composite()
    assert spec.is_in(spec.rand()) and spec.is_in(spec.rand((4,)))
    td = spec.zero()
    td["obs"] = td["obs"] + 5
    assert not spec.is_in(td)
    projected = spec.project(td)
    assert spec.is_in(projected) and bool((projected["obs"] == 1).all())
    assert bool((td["obs"] == 5).all()), "project does not modify its input"
    del td["obs"]
    assert not spec.is_in(td)
    assert spec.is_in({"obs": torch.zeros(2, 3), "agent": {"action": torch.zeros(2, dtype=torch.int64),
                                                           "info": {"x": torch.zeros(2, 1)}},
                       "reward": torch.zeros(2, 1)})
    spec.assert_is_in(spec.zero())
    with pytest.raises(AssertionError, match="not in the Composite space"):
        spec.assert_is_in(td)
    enc = spec.encode({"obs": np.ones((2, 3)), "agent": {"action": [1, 2]}})
    assert enc.batch_size == (2,) and enc["obs"].dtype == torch.float32 and enc["agent", "action"].tolist() == [1, 2]
    enc = spec.encode({"obs": np.ones((5, 2, 3))})
    assert enc.batch_size == (5, 2)
    with pytest.raises(KeyError, match=r"key 'zz' not found in Composite; existing keys"):
        spec.encode({"zz": 1})
    arrays = spec.to_numpy(spec.zero())
    assert isinstance(arrays["agent"]["action"], np.ndarray) and arrays["obs"].shape == (2, 3)


def test_composite_shape_algebra():
    spec = make_composite()
    big = spec.expand(4, 2)
    assert big.shape == (4, 2) and big["obs"].shape == (4, 2, 3) and big["agent", "info", "x"].shape == (4, 2, 1)
    assert spec.expand((4, 2)) == big and spec.expand(torch.Size([4, 2])) == big
    with pytest.raises(ValueError, match=r"match the spec shape \(2,\)"):
        spec.expand(4, 3)
    assert big[0] == spec and big[1:3].shape == (2, 2)
    assert spec[0].shape == () and spec[0]["obs"].shape == (3,)
    assert spec[..., 1]["obs"].shape == (3,)
    assert spec[torch.tensor([0, 1, 1])]["agent", "action"].shape == (3,)
    parts = spec.unbind(0)
    assert len(parts) == 2 and parts[0] == spec[0]
    up = spec.unsqueeze(-1)
    assert up.shape == (2, 1) and up["obs"].shape == (2, 1, 3)
    assert up.squeeze() == spec and up.squeeze(1) == spec and spec.unsqueeze(0).squeeze(0) == spec
    assert spec.squeeze(0) == spec
    with pytest.raises(ValueError, match=r"unsqueeze requires dim in \[-2, 1\], got 2"):
        spec.unsqueeze(2)


def test_composite_clone_to_eq_empty_lock():
    spec = make_composite()
    twin = spec.clone()
    assert twin == spec and twin is not spec and twin["obs"] is not spec["obs"]
    twin["extra"] = Unbounded((2,))
    assert "extra" not in spec and twin != spec
    assert Composite(a=Unbounded(1), b=Unbounded(2)) == Composite(b=Unbounded(2), a=Unbounded(1))
    assert spec != Composite(obs=spec["obs"])
    assert spec.to(torch.float64)["obs"].dtype == torch.float64
    assert spec.to("cpu").device == torch.device("cpu")
    assert spec.to("cpu")["obs"] == spec["obs"]
    empty = spec.empty()
    assert empty.is_empty() and empty.shape == spec.shape and not spec.is_empty()
    assert not Composite(a=Composite()).is_empty()
    assert spec.dtype is None and Composite(a=Unbounded(1)).dtype == torch.float32
    assert spec.domain == "composite"
    spec.lock_()
    assert spec.locked and spec["agent"].locked
    for change in (lambda: spec.set("z", Unbounded((2,))), lambda: spec.pop("obs"),
                   lambda: spec.__delitem__("obs"), lambda: spec["agent"].set("z", Unbounded((2,)))):
        with pytest.raises(RuntimeError, match="locked Composite; call unlock_"):
            change()
    assert not spec.clone().locked
    spec.unlock_()
    assert not spec.locked and not spec["agent"].locked
    spec["z"] = Unbounded((2,))


def test_composite_update_merges_nested():
    spec = Composite(a=Composite(x=Unbounded(1)))
    out = spec.update({"a": Composite(z=Unbounded(1)), ("d", "e"): Unbounded(1), "f": Unbounded(2)})
    assert out is spec
    assert list(spec.keys(True)) == [("a", "x"), ("a", "z"), "a", ("d", "e"), "d", "f"]
    spec.update(Composite(f=Unbounded(3)))
    assert spec["f"].shape == (3,)


def test_composite_construction_forms_and_none():
    a = Composite({"x": Unbounded(1)}, y=Unbounded(2))
    assert list(a.keys()) == ["x", "y"]
    assert Composite(a, shape=()) == a
    withnone = Composite(x=Unbounded(1), y=None)
    assert list(withnone.keys()) == ["x", "y"] and withnone["y"] is None
    assert withnone.clone()["y"] is None and withnone.expand(3)["y"] is None


def test_composite_repr_and_pickle():
    assert repr(Composite()) == "Composite(device=None, shape=torch.Size([]), data_cls=None)"
    text = repr(Composite(a=Categorical(3)))
    assert text == ("Composite(\n    a: Categorical(\n        shape=torch.Size([]),\n"
                    "        space=CategoricalBox(n=3),\n"
                    "        device=cpu,\n        dtype=torch.int64,\n        domain=discrete),\n    device=None,\n"
                    "    shape=torch.Size([]),\n    data_cls=None)")
    spec = make_composite()
    assert pickle.loads(pickle.dumps(spec)) == spec


def test_public_names_have_docstring_examples():
    for name in S.__all__:
        obj = getattr(S, name)
        assert obj.__doc__ and ">>>" in obj.__doc__, name
