"""terminated_or_truncated and make_composite_from_td, against hand-computed values and TorchRL's helpers."""
import pytest
import torch
from tensordict import NonTensorData, TensorDict

from compare import assert_spec_matches_torchrl, assert_td_equal
from numbarl.torch_api import Categorical, Composite, make_composite_from_td, terminated_or_truncated


def _data():
    return TensorDict({
        "done": torch.tensor([[True], [False], [False]]),
        "truncated": torch.tensor([[False], [False], [True]]),
        "obs": torch.zeros(3, 2),
        "agent": {"done": torch.tensor([[False], [False], [False]]),
                  "terminated": torch.tensor([[False], [True], [False]])},
    }, [3])


def test_terminated_or_truncated_writes_the_or_per_level():
    data = _data()
    assert terminated_or_truncated(data) is True
    assert data["_reset"].squeeze(-1).tolist() == [True, False, True]
    assert data["agent", "_reset"].squeeze(-1).tolist() == [False, True, False]


def test_terminated_or_truncated_nothing_done_removes_the_keys():
    data = _data().apply(torch.zeros_like)
    assert terminated_or_truncated(data) is False
    assert "_reset" not in data.keys() and ("agent", "_reset") not in data.keys(True)
    assert terminated_or_truncated(data, write_full_false=True) is False
    assert not data["_reset"].any()


def test_terminated_or_truncated_with_spec_and_key_none():
    spec = Composite(done=Categorical(2, shape=(3, 1), dtype=torch.bool), shape=(3,))
    data = _data()
    assert terminated_or_truncated(data, full_done_spec=spec, key="end") is True
    # only "done" is in the spec: "truncated" does not count
    assert data["end"].squeeze(-1).tolist() == [True, False, False]
    data = _data()
    assert terminated_or_truncated(data, key=None) is True
    assert "_reset" not in data.keys()
    with pytest.raises(TypeError, match="TensorDict"):
        terminated_or_truncated({"done": True})


@pytest.mark.torchrl
@pytest.mark.parametrize("write_full_false", [False, True])
@pytest.mark.parametrize("zero", [False, True])
def test_terminated_or_truncated_matches_torchrl(torchrl, write_full_false, zero):
    from torchrl.envs.utils import terminated_or_truncated as theirs

    a, b = _data(), _data()
    if zero:
        a, b = a.apply(torch.zeros_like), b.apply(torch.zeros_like)
    ra = terminated_or_truncated(a, write_full_false=write_full_false)
    rb = theirs(b, write_full_false=write_full_false)
    assert ra == bool(rb)
    assert_td_equal(a, b)


def _td():
    return TensorDict({"obs": torch.zeros(4, 3), "count": torch.zeros(4, dtype=torch.int32),
                       "next": {"r": torch.ones(4, 1), "deep": {"x": torch.zeros(4, 2, dtype=torch.float64)}},
                       "txt": NonTensorData("hi", batch_size=[4])}, [4])


def test_make_composite_from_td_shapes_dtypes():
    spec = make_composite_from_td(_td())
    assert spec.shape == (4,) and spec["next"].shape == (4,) and spec["next", "deep"].shape == (4,)
    assert spec["obs"].shape == (4, 3) and spec["count"].dtype == torch.int32
    assert spec["next", "deep", "x"].dtype == torch.float64
    assert type(spec["txt"]).__name__ == "NonTensor"
    scalar = make_composite_from_td(TensorDict({"a": torch.tensor(1.0)}, []))
    assert scalar["a"].shape == (1,)
    assert make_composite_from_td(TensorDict({"a": torch.tensor(1.0)}, []), unsqueeze_null_shapes=False)["a"].shape == ()
    with pytest.raises(TypeError, match="TensorDict"):
        make_composite_from_td({"a": 1})


@pytest.mark.torchrl
@pytest.mark.parametrize("unsqueeze", [True, False])
def test_make_composite_from_td_matches_torchrl(torchrl, unsqueeze):
    from torchrl.envs.utils import make_composite_from_td as theirs

    td = _td().exclude("txt")
    td["s"] = torch.zeros(4)
    assert_spec_matches_torchrl(make_composite_from_td(td, unsqueeze_null_shapes=unsqueeze),
                                theirs(td, unsqueeze_null_shapes=unsqueeze))
    scalar = TensorDict({"a": torch.tensor(1.0)}, [])
    assert_spec_matches_torchrl(make_composite_from_td(scalar, unsqueeze_null_shapes=unsqueeze),
                                theirs(scalar, unsqueeze_null_shapes=unsqueeze))
