"""VecNorm and VecNormV2 load only statistics that can be moments, and never drop them silently.

A checkpoint is data from outside: an untrained instance's empty state loaded
onto trained statistics raises (TorchRL 0.14.1 raises RuntimeError there), and
non-finite or negative moments are refused on load with the entry named,
instead of giving NaN scales later.
"""
import warnings

import pytest
import torch
from tensordict import TensorDict

from numbarl.torch_api import VecNorm, VecNormV2

warnings.filterwarnings("ignore", category=FutureWarning)
CLASSES = [VecNorm, VecNormV2]


def trained(cls):
    t = cls(in_keys=["x"], decay=1.0)
    for seed in range(3):
        g = torch.Generator().manual_seed(seed)
        t(TensorDict({"x": torch.randn(4, 2, generator=g)}, [4]))
    return t


def entry(state, field):
    if field == "count" and any(n.endswith("_samples") for n in state):
        field = "samples"  # VecNorm's sample count (its "_count" is TorchRL's decayed weight)
    return next(n for n in state if n.startswith(field) or n.endswith("_" + field))


@pytest.mark.parametrize("cls", CLASSES)
def test_untrained_checkpoint_onto_trained_statistics_raises(cls):
    t = trained(cls)
    before = {k: v.clone() for k, v in t.get_extra_state().items()}
    empty = cls(in_keys=["x"], decay=1.0).state_dict()
    with pytest.raises(RuntimeError, match=rf"{cls.__name__}\.set_extra_state.*no statistics for key 'x'"):
        t.load_state_dict(empty)
    with pytest.raises(RuntimeError, match=rf"{cls.__name__}\.set_extra_state.*'x'.*count"):
        t.set_extra_state({})
    for k, v in t.get_extra_state().items():
        assert torch.equal(v, before[k]), k


@pytest.mark.parametrize("cls", CLASSES)
def test_untrained_checkpoint_onto_untrained_loads(cls):
    t = cls(in_keys=["x"], decay=1.0)
    t.load_state_dict(cls(in_keys=["x"], decay=1.0).state_dict())
    t.set_extra_state({})
    assert t.get_extra_state() == {}


def test_torchrl_raises_runtimeerror_on_a_void_state(torchrl):
    from torchrl.envs.transforms import VecNormV2 as TrlV2

    t = TrlV2(in_keys=["x"], decay=1.0)
    td = TensorDict({"x": torch.randn(4, 2)}, [4])
    t._step(td, td.clone())
    with pytest.raises(RuntimeError):
        t.set_extra_state({})


BAD = [
    ("loc", lambda v: torch.full_like(v, float("nan")), "finite"),
    ("m2", lambda v: -v - 1.0, r">= 0"),
    ("m2", lambda v: torch.full_like(v, float("inf")), "finite"),
    ("weight", lambda v: torch.zeros_like(v), "both zero"),
    ("weight", lambda v: -v, ">= 0"),
    ("weight", lambda v: torch.full_like(v, float("nan")), "finite"),
    ("count", lambda v: -v, ">= 0"),
    ("count", lambda v: torch.zeros_like(v), "both zero"),
]


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("field,corrupt,rule", BAD, ids=[f"{f}-{r}" for f, _, r in BAD])
def test_corrupt_statistics_refused_on_load_naming_the_entry(cls, field, corrupt, rule):
    src = trained(cls)
    state = src.get_extra_state()
    name = entry(state, field)
    state[name] = corrupt(state[name])
    dst = trained(cls)
    before = {k: v.clone() for k, v in dst.get_extra_state().items()}
    with pytest.raises(ValueError, match=rf"{cls.__name__}: loaded state entr.*{name.replace('|', '[|]')}.*{rule}"):
        dst.set_extra_state(state)
    for k, v in dst.get_extra_state().items():
        assert torch.equal(v, before[k]), k
    fresh = cls(in_keys=["x"], decay=1.0)
    with pytest.raises(ValueError, match=rule):
        fresh.set_extra_state(state)
    assert fresh.get_extra_state() == {}


@pytest.mark.parametrize("cls,names", [(VecNorm, ("x_sum", "x_ssq", "x_count")),
                                       (VecNormV2, ("loc.-|-.x", "var.-|-.x", "count.-|-.x"))])
@pytest.mark.parametrize("which,value", [(0, float("nan")), (1, float("inf")), (2, -3.0)])
def test_corrupt_torchrl_format_refused(cls, names, which, value):
    good = [torch.tensor([1.0, 2.0]), torch.tensor([5.0, 9.0]), torch.tensor([2.0])]
    good[which] = torch.full_like(good[which], value)
    t = cls(in_keys=["x"], decay=1.0)
    with pytest.raises(ValueError, match=rf"{cls.__name__}: loaded state entry '{names[which].replace('|', '[|]')}'"):
        t.set_extra_state(dict(zip(names, good)))


def test_valid_state_still_round_trips():
    src = trained(VecNorm)
    dst = VecNorm(in_keys=["x"], decay=1.0)
    dst.load_state_dict(src.state_dict())
    for k, v in src.get_extra_state().items():
        assert torch.equal(dst.get_extra_state()[k], v)
