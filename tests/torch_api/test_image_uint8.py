"""The uint8 image chain ``ToTensorImage(from_int=False, dtype=torch.uint8) -> GrayScale -> Resize -> CatFrames``.

Frames stay uint8 end to end. References: TorchRL where it runs
(``ToTensorImage``, ``GrayScale``; its ``Resize`` needs torchvision), the
torchvision formulas written with torch operations, and the unfused chain
for the fused run (bit for bit).
"""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from compare import assert_spec_matches_torchrl, assert_td_equal
from numbarl.torch_api import (
    Bounded,
    CatFrames,
    CenterCrop,
    Compose,
    Composite,
    GrayScale,
    GymEnv,
    Resize,
    ToTensorImage,
    TransformedEnv,
    check_env_specs,
)
from numbarl.torch_api.transforms.fused_pixels import FusedPixelRun, plan_fused
from tensordict import TensorDict

GEN = torch.Generator().manual_seed(1)


def _u8(*shape):
    return torch.randint(0, 256, shape, dtype=torch.uint8, generator=GEN)


def _both_paths(t, value, batch):
    td = t(TensorDict({"pixels": value.clone()}, batch))["pixels"]
    arr = t._np_step({"pixels": value.clone().numpy()})["pixels"]
    return td, torch.from_numpy(np.array(arr))


def _tv_grayscale(x):
    """torchvision's (and TorchRL's) rgb_to_grayscale: float32 luma, ``.to(img.dtype)`` truncates."""
    r, g, b = x.unbind(-3)
    return (0.2989 * r + 0.587 * g + 0.114 * b).to(x.dtype).unsqueeze(-3)


def _tv_resize(x, size):
    """torchvision's tensor resize of uint8: float32 interpolate, ``torch.round``, cast."""
    lead = x.shape[:-3]
    y = F.interpolate(x.reshape(-1, *x.shape[-3:]).float(), size=size, mode="bilinear", antialias=True,
                      align_corners=False)
    return y.round().to(torch.uint8).reshape(*lead, *y.shape[-3:])


def _u8_interpolate(x, size):
    lead = x.shape[:-3]
    y = F.interpolate(x.reshape(-1, *x.shape[-3:]), size=size, mode="bilinear", antialias=True, align_corners=False)
    return y.reshape(*lead, *y.shape[-3:])


# ------------------------------------------------------------- ToTensorImage
@pytest.mark.torchrl
@pytest.mark.parametrize("dtype", [torch.uint8, torch.int16, torch.int64])
@pytest.mark.parametrize("value", [lambda: _u8(2, 6, 5, 3), lambda: torch.rand(2, 6, 5, 3, generator=GEN) * 255,
                                   lambda: _u8(6, 5, 3), lambda: _u8(2, 6, 5, 2)])
def test_integer_to_tensor_image_matches_torchrl(torchrl, dtype, value):
    from torchrl.envs import ToTensorImage as RLToTensorImage

    x = value()
    batch = [2] if x.ndim == 4 else []
    kwargs = {"from_int": False, "dtype": dtype, "shape_tolerant": x.shape[-1] != 3}
    ours, arr = _both_paths(ToTensorImage(**kwargs), x, batch)
    theirs = RLToTensorImage(in_keys=["pixels"], **kwargs)(TensorDict({"pixels": x.clone()}, batch))["pixels"]
    assert ours.dtype == theirs.dtype == dtype and ours.shape == theirs.shape
    assert torch.equal(ours, theirs) and torch.equal(arr, theirs)


@pytest.mark.torchrl
@pytest.mark.parametrize("make", [lambda: Bounded(0, 255, shape=(6, 5, 3), dtype=torch.uint8),
                                  lambda: Bounded(0, 255, shape=(2, 6, 5, 3), dtype=torch.uint8)])
def test_uint8_to_tensor_image_spec_matches_torchrl(torchrl, make):
    from torchrl import data as rl_data
    from torchrl.envs import ToTensorImage as RLToTensorImage

    spec = make()
    kwargs = {"from_int": False, "dtype": torch.uint8}
    ours = ToTensorImage(**kwargs).transform_observation_spec(Composite(pixels=spec))
    rl_spec = rl_data.Bounded(spec.space.low.clone(), spec.space.high.clone(), shape=spec.shape, dtype=spec.dtype)
    theirs = RLToTensorImage(in_keys=["pixels"], **kwargs).transform_observation_spec(rl_data.Composite(pixels=rl_spec))
    assert_spec_matches_torchrl(ours, theirs)
    assert ours["pixels"].dtype == torch.uint8 and ours["pixels"].space.high.max() == 255


@pytest.mark.parametrize("from_int", [True, None])
def test_integer_dtype_with_scaling_is_refused(from_int):
    # TorchRL returns x / 255 cast to uint8 here: 0 everywhere but 1 where x == 255
    with pytest.raises(ValueError, match=rf"integer dtype \(torch.uint8\) requires from_int=False.*{from_int}"):
        ToTensorImage(from_int=from_int, dtype=torch.uint8)


# ------------------------------------------------------------ GrayScale, Resize
@pytest.mark.torchrl
def test_uint8_grayscale_matches_torchrl_and_the_torchvision_formula(torchrl):
    from torchrl.envs import GrayScale as RLGrayScale

    x = torch.cat([_u8(2, 3, 40, 30), torch.full((1, 3, 40, 30), 255, dtype=torch.uint8)])
    ours, arr = _both_paths(GrayScale(), x, [3])
    theirs = RLGrayScale()(TensorDict({"pixels": x.clone()}, [3]))["pixels"]
    assert ours.dtype == torch.uint8
    assert torch.equal(ours, theirs) and torch.equal(arr, theirs) and torch.equal(ours, _tv_grayscale(x))
    assert int(ours[2].max()) == 254  # white truncates: 0.2989 + 0.587 + 0.114 < 1 in float32


@pytest.mark.parametrize("size", [(84, 84), (64, 100), (105, 80), (5, 3), (300, 200)])
def test_uint8_resize_matches_torchvision_and_interpolate(size):
    x = _u8(4, 1, 210, 160)
    ours, arr = _both_paths(Resize(*size), x, [4])
    assert ours.dtype == torch.uint8 and ours.shape == (4, 1, *size) and torch.equal(arr, ours)
    tv = (ours.int() - _tv_resize(x, size).int()).abs()
    assert tv.max() <= 1 and (tv > 0).float().mean() < 1e-3  # only float32 near-ties of .5 round apart
    assert (ours.int() - _u8_interpolate(x, size).int()).abs().max() <= 1  # torch's fixed-point uint8 path


def test_uint8_resize_rounds_ties_half_to_even():
    x = torch.tensor([0, 1, 2, 5, 6, 7, 254, 255], dtype=torch.uint8).reshape(1, 1, 8)
    ours = Resize(1, 4, interpolation="bilinear")(TensorDict({"pixels": x}, []))["pixels"]
    # Resize antialiases a 2x shrink over 4 taps: compare with torchvision's computation
    assert torch.equal(ours, _tv_resize(x.unsqueeze(0), (1, 4))[0])


# ------------------------------------------------------------- the uint8 chain
def _chain(crop=False):
    ts = [ToTensorImage(from_int=False, dtype=torch.uint8), GrayScale(), Resize(84, 84)]
    if crop:
        ts.append(CenterCrop(80, 70))
    return ts + [CatFrames(4, dim=-3)]


def test_the_uint8_chain_is_planned_as_one_fused_run():
    assert [type(s) for s in plan_fused(_chain())] == [FusedPixelRun]
    assert [type(s) for s in plan_fused(_chain(crop=True))] == [FusedPixelRun]
    run = plan_fused(_chain())[0]
    assert run.dtype == np.uint8


def test_the_uint8_chain_equals_torch_ops():
    x = _u8(2, 210, 160, 3)
    t = Compose(*_chain()[:3])
    assert [type(s) for s in t._plan()] == [FusedPixelRun]
    out = t(TensorDict({"pixels": x.clone()}, [2]))["pixels"]
    expected = _tv_resize(_tv_grayscale(x.permute(0, 3, 1, 2)), (84, 84))
    diff = (out.int() - expected.int()).abs()
    assert out.dtype == torch.uint8 and diff.max() <= 1 and (diff > 0).float().mean() < 1e-3


@pytest.mark.parametrize("crop", [False, True])
def test_fused_uint8_equals_unfused_every_path(crop):
    fused, unfused = Compose(*_chain(crop)), Compose(*[Compose(t) for t in _chain(crop)])
    frames = [_u8(3, 210, 160, 3) for _ in range(6)]

    def both(method, *args):
        a = getattr(fused, method)(*[x.clone() if hasattr(x, "clone") else x for x in args])
        b = getattr(unfused, method)(*[x.clone() if hasattr(x, "clone") else x for x in args])
        assert a["pixels"].dtype == torch.uint8
        assert_td_equal(a, b)

    both("_reset", TensorDict({}, [3]), TensorDict({"pixels": frames[0]}, [3]))
    a, b = fused._np_step({"pixels": frames[1].numpy()}), unfused._np_step({"pixels": frames[1].numpy()})
    assert a["pixels"].dtype == np.uint8 and np.array_equal(a["pixels"], b["pixels"])  # the array path
    for x in frames[2:4]:
        both("_step", TensorDict({}, [3]), TensorDict({"pixels": x}, [3]))
    mask = TensorDict({"_reset": torch.tensor([[True], [False], [True]])}, [3])
    both("_reset", mask, TensorDict({"pixels": frames[4]}, [3]))
    both("_call", TensorDict({"pixels": frames[5]}, [3]))
    for cat in (fused.transforms[-1], unfused.transforms[-1].transforms[0]):
        (_, pos), = cat.__dict__["_rings"].values()
        pos[...] = [0, 2, 1]  # unequal ring positions: the general branch
    both("_call", TensorDict({"pixels": frames[0]}, [3]))
    done = torch.zeros(2, 5, 1, dtype=torch.bool)
    done[1, 3] = True
    td = TensorDict({"pixels": _u8(2, 5, 60, 50, 3), ("next", "done"): done}, [2, 5]).refine_names(None, "time")
    assert_td_equal(fused(td.clone()), unfused(td.clone()))  # offline forward


def test_float_frames_into_a_uint8_run_go_member_by_member():
    fused, unfused = Compose(*_chain()), Compose(*[Compose(t) for t in _chain()])
    x = TensorDict({"pixels": torch.rand(2, 50, 40, 3, generator=GEN) * 255}, [2])
    a, b = fused._call(x.clone()), unfused._call(x.clone())
    assert a["pixels"].dtype == torch.uint8
    assert_td_equal(a, b)


def test_pong_uint8_chain_specs_and_rollout_paths():
    pytest.importorskip("ale_py", reason="ALE frames need the ale-py package")
    results = []
    for make in (lambda ts: Compose(*ts), lambda ts: Compose(*[Compose(t) for t in ts])):
        env = TransformedEnv(GymEnv("ALE/Pong-v5"), make(_chain()))
        spec = env.observation_spec["pixels"]
        assert spec.shape == (4, 84, 84) and spec.dtype == torch.uint8
        env.set_seed(0)
        actions = [torch.nn.functional.one_hot(torch.tensor(i % 6), 6) for i in range(10)]
        results.append(env.rollout(10, actions=actions, break_when_any_done=False))  # array path
        env.set_seed(0)
        results.append(env._td_rollout(10, None, None, actions, True, False, False, None, False))
        check_env_specs(env, seed=0)
        env.close()
    assert results[0]["next", "pixels"].dtype == torch.uint8 and results[0]["pixels"].shape == (10, 4, 84, 84)
    for other in results[1:]:
        assert_td_equal(results[0], other)
