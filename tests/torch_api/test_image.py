"""Image transforms and the fused pixel path: TorchRL parity, torch references, specs, errors, both paths."""
import pickle

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
    Crop,
    GrayScale,
    GymEnv,
    PermuteTransform,
    Resize,
    ToTensorImage,
    TransformedEnv,
    Unbounded,
    check_env_specs,
)
from numbarl.torch_api.transforms.fused_pixels import FusedPixelRun, plan_fused
from tensordict import TensorDict

GEN = torch.Generator().manual_seed(0)


def _u8(*shape):
    return torch.randint(0, 256, shape, dtype=torch.uint8, generator=GEN)


def _f32(*shape):
    return torch.rand(shape, generator=GEN)


def _luma(x):
    """ITU-R 601 luma of [..., 3, H, W], in the order TorchRL sums it."""
    return (0.2989 * x[..., 0, :, :] + 0.587 * x[..., 1, :, :] + 0.114 * x[..., 2, :, :]).unsqueeze(-3)


def _interp(x, size, antialias, mode="bilinear"):
    lead = x.shape[:-3]
    y = x.reshape(-1, *x.shape[-3:])
    kw = {"align_corners": False, "antialias": antialias} if mode == "bilinear" else {}
    y = F.interpolate(y, size=size, mode=mode, **kw)
    return y.reshape(*lead, *y.shape[-3:])


def _both_paths(t, value, key="pixels", batch=()):
    """Output of the TensorDict path and of the array path for one input."""
    td = t(TensorDict({key: value.clone()}, batch))[t.out_keys[0]]
    arrays = t._np_step({key: value.clone().numpy()})
    return td, torch.from_numpy(np.array(arrays[t.out_keys[0]]))


def _rl_spec(rl_data, spec):
    """The TorchRL twin of a numbarl Bounded / Unbounded leaf spec."""
    if isinstance(spec, Bounded):
        return rl_data.Bounded(spec.low.clone(), spec.high.clone(), shape=spec.shape, dtype=spec.dtype)
    return rl_data.Unbounded(shape=spec.shape, dtype=spec.dtype)


SPECS = [
    lambda: Bounded(0, 255, shape=(6, 5, 3), dtype=torch.uint8),
    lambda: Unbounded(shape=(6, 5, 3), dtype=torch.uint8),
    lambda: Bounded(torch.arange(90, dtype=torch.uint8).reshape(6, 5, 3), 255, dtype=torch.uint8),
    lambda: Bounded(-5.0, 5.0, shape=(2, 6, 5, 3)),
    lambda: Unbounded(shape=(6, 5, 3)),
]


# --------------------------------------------------------------- ToTensorImage
@pytest.mark.torchrl
@pytest.mark.parametrize("kwargs", [{}, {"from_int": True}, {"from_int": False}, {"dtype": torch.float64},
                                    {"dtype": torch.float16}, {"unsqueeze": True}, {"shape_tolerant": True}])
@pytest.mark.parametrize("value", [lambda: _u8(2, 6, 5, 3), lambda: _f32(2, 6, 5, 3) * 255,
                                   lambda: torch.rand(6, 5, 3, dtype=torch.float64, generator=GEN) * 255,
                                   lambda: _u8(6, 5, 2), lambda: torch.randint(0, 255, (2, 6, 5, 3), generator=GEN)])
def test_to_tensor_image_matches_torchrl(torchrl, kwargs, value):
    from torchrl.envs import ToTensorImage as RLToTensorImage

    x = value()
    batch = [2] if x.ndim == 4 else []
    ours, arr = _both_paths(ToTensorImage(**kwargs), x, batch=batch)
    theirs = RLToTensorImage(in_keys=["pixels"], **kwargs)(TensorDict({"pixels": x.clone()}, batch))["pixels"]
    assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
    assert torch.equal(ours, theirs)
    assert torch.equal(arr, theirs)


@pytest.mark.torchrl
@pytest.mark.parametrize("kwargs", [{}, {"from_int": False}, {"from_int": True}, {"dtype": torch.float64},
                                    {"unsqueeze": True}, {"out_keys": ["other"]}])
@pytest.mark.parametrize("make", SPECS)
def test_to_tensor_image_spec_matches_torchrl(torchrl, kwargs, make):
    from torchrl import data as rl_data
    from torchrl.envs import ToTensorImage as RLToTensorImage

    spec = make()
    ours = ToTensorImage(in_keys=["pixels"], **kwargs).transform_observation_spec(Composite(pixels=spec))
    theirs = RLToTensorImage(in_keys=["pixels"], **kwargs).transform_observation_spec(
        rl_data.Composite(pixels=_rl_spec(rl_data, spec)))
    assert_spec_matches_torchrl(ours, theirs)


# ------------------------------------------------------------------ GrayScale
@pytest.mark.torchrl
@pytest.mark.parametrize("value", [lambda: _u8(2, 3, 7, 5), lambda: _f32(2, 3, 7, 5), lambda: _f32(3, 7, 5) * 300,
                                   lambda: torch.rand(2, 3, 7, 5, dtype=torch.float64, generator=GEN)])
def test_grayscale_matches_torchrl_and_formula(torchrl, value):
    from torchrl.envs import GrayScale as RLGrayScale

    x = value()
    batch = [2] if x.ndim == 4 else []
    ours, arr = _both_paths(GrayScale(), x, batch=batch)
    theirs = RLGrayScale()(TensorDict({"pixels": x.clone()}, batch))["pixels"]
    assert torch.equal(ours, theirs) and torch.equal(arr, theirs)
    expected = _luma(x.double()).to(x.dtype) if x.is_floating_point() else _luma(x.float()).to(torch.uint8)
    if x.dtype == torch.float32:
        torch.testing.assert_close(ours, _luma(x), atol=1e-5, rtol=0)
    else:
        assert (ours.double() - expected.double()).abs().max() <= 1


@pytest.mark.torchrl
@pytest.mark.parametrize("make", [lambda: Bounded(0, 255, shape=(3, 6, 5), dtype=torch.uint8),
                                  lambda: Bounded(torch.zeros(3, 6, 5), torch.arange(90.0).reshape(3, 6, 5)),
                                  lambda: Unbounded(shape=(2, 3, 6, 5)),
                                  lambda: Unbounded(shape=(3, 6, 5), dtype=torch.uint8)])
def test_grayscale_spec_matches_torchrl(torchrl, make):
    from torchrl import data as rl_data
    from torchrl.envs import GrayScale as RLGrayScale

    spec = make()
    for kw in ({}, {"out_keys": ["gray"]}):
        ours = GrayScale(**kw).transform_observation_spec(Composite(pixels=spec))
        theirs = RLGrayScale(**kw).transform_observation_spec(rl_data.Composite(pixels=_rl_spec(rl_data, spec)))
        assert_spec_matches_torchrl(ours, theirs)


# --------------------------------------------------------------------- Resize
@pytest.mark.parametrize("w,h", [(84, 84), (64, 100), (5, 3), (300, 200), (210, 160)])
def test_resize_matches_interpolate(w, h):
    x = _f32(2, 3, 210, 160)
    ours, arr = _both_paths(Resize(w, h), x, batch=[2])
    assert ours.shape == (2, 3, w, h)  # TorchRL hands [w, h] to torchvision as (height, width)
    torch.testing.assert_close(ours, _interp(x, (w, h), True), atol=1e-5, rtol=0)
    assert torch.equal(arr, ours)
    x8 = _u8(4, 1, 50, 40)
    ours8, arr8 = _both_paths(Resize(w, h), x8, batch=[4])
    ref8 = _interp(x8.float(), (w, h), True)
    assert ours8.dtype == torch.uint8 and torch.equal(arr8, ours8)
    assert (ours8.float() - ref8).abs().max() <= 1


def test_resize_nearest_and_leading_dims():
    x = _f32(2, 3, 1, 30, 20)
    ours, arr = _both_paths(Resize(12, 7, interpolation="nearest"), x, batch=[2])
    assert torch.equal(ours, _interp(x, (12, 7), False, mode="nearest")) and torch.equal(arr, ours)
    x64 = x.double()
    out = Resize(12, 7)(TensorDict({"pixels": x64}, [2]))["pixels"]
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, _interp(x64, (12, 7), True), atol=1e-5, rtol=0)


def test_resize_spec():
    spec = Bounded(torch.zeros(3, 10, 12), torch.arange(360.0).reshape(3, 10, 12))
    out = Resize(6, 4).transform_observation_spec(Composite(pixels=spec))["pixels"]
    assert type(out).__name__ == "BoundedContinuous" and out.shape == (3, 6, 4) and out.dtype == torch.float32
    torch.testing.assert_close(out.high, _interp(spec.high, (6, 4), True), atol=1e-4, rtol=0)
    u = Resize(6).transform_observation_spec(Composite(pixels=Unbounded((2, 3, 10, 12), dtype=torch.uint8)))
    assert type(u["pixels"]).__name__ == "UnboundedDiscrete" and u["pixels"].shape == (2, 3, 6, 6)


# ---------------------------------------------------------------------- crops
def _crop_ref(x, top, left, h, w):
    out = torch.zeros(*x.shape[:-2], h, w, dtype=x.dtype)
    for i in range(h):
        for j in range(w):
            if 0 <= top + i < x.shape[-2] and 0 <= left + j < x.shape[-1]:
                out[..., i, j] = x[..., top + i, left + j]
    return out


@pytest.mark.parametrize("w,h", [(4, 2), (5, 5), (8, 3), (2, 9)])
@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32, torch.int64])
def test_center_crop(w, h, dtype):
    x = (_f32(2, 3, 5, 6) * 100).to(dtype)
    ours, arr = _both_paths(CenterCrop(w, h), x, batch=[2])
    n_h, n_w = 5, 6
    top = -((w - n_h) // 2) if w > n_h else int(round((n_h - w) / 2.0))
    left = -((h - n_w) // 2) if h > n_w else int(round((n_w - h) / 2.0))
    assert torch.equal(ours, _crop_ref(x, top, left, w, h)) and torch.equal(arr, ours)


@pytest.mark.parametrize("args", [(3, 2, 1, 1), (4, 4, -1, 3), (2, None, 0, 0), (6, 7, 2, -2)])
def test_crop(args):
    w, h, top, left = args
    x = _f32(3, 5, 6)
    ours, arr = _both_paths(Crop(w, h, top, left), x)
    assert torch.equal(ours, _crop_ref(x, top, left, w, w if h is None else h)) and torch.equal(arr, ours)
    spec = Crop(w, h, top, left).transform_observation_spec(Composite(pixels=Bounded(0.0, 1.0, (3, 5, 6))))
    assert spec["pixels"].shape == (3, w, w if h is None else h)


# ------------------------------------------------------------ PermuteTransform
@pytest.mark.torchrl
@pytest.mark.parametrize("dims", [(-1, -3, -2), (-2, -1), (-1, -2, -3), [-3, -1, -2]])
def test_permute_matches_torchrl(torchrl, dims):
    from torchrl import data as rl_data
    from torchrl.envs import PermuteTransform as RLPermute

    x = _f32(2, 2, 3, 4)
    ours, arr = _both_paths(PermuteTransform(dims, in_keys=["pixels"]), x, batch=[2])
    theirs = RLPermute(dims, in_keys=["pixels"])(TensorDict({"pixels": x.clone()}, [2]))["pixels"]
    assert torch.equal(ours, theirs) and torch.equal(arr, theirs)
    spec = Bounded(torch.arange(24.0).reshape(2, 3, 4), torch.arange(24.0).reshape(2, 3, 4) + 100)
    for kw in ({}, {"out_keys": ["q"]}):
        a = PermuteTransform(dims, in_keys=["pixels"], **kw).transform_observation_spec(Composite(pixels=spec))
        b = RLPermute(dims, in_keys=["pixels"], **kw).transform_observation_spec(
            rl_data.Composite(pixels=_rl_spec(rl_data, spec)))
        assert_spec_matches_torchrl(a, b)
    inv = PermuteTransform(dims, in_keys_inv=["action"], out_keys_inv=["act"])
    rl_inv = RLPermute(dims, in_keys_inv=["action"], out_keys_inv=["act"])
    y = TensorDict({"act": x.clone()}, [2])
    assert torch.equal(inv.inv(y.clone())["action"], rl_inv.inv(y.clone())["action"])
    assert torch.equal(torch.from_numpy(inv._np_inv({"act": x.numpy()})["action"]), inv.inv(y)["action"])


def test_permute_inverse_spec_is_consistent():
    # the policy writes the permuted layout; the inverse gives the env its own layout back
    t = PermuteTransform((-1, -3, -2), in_keys_inv=["action"])
    spec = Composite(full_action_spec=Composite(action=Bounded(-1.0, 1.0, (2, 3, 4))), full_state_spec=Composite())
    outer = t.transform_input_spec(spec)["full_action_spec", "action"]
    assert outer.shape == (4, 2, 3)
    assert t.inv(TensorDict({"action": outer.rand()}, []))["action"].shape == (2, 3, 4)


# --------------------------------------------------------------------- errors
@pytest.mark.parametrize("make,exc,match", [
    (lambda: Resize(w=-3), ValueError, "Resize requires w > 0, got -3"),
    (lambda: Resize(84, 0), ValueError, "Resize requires h > 0, got 0"),
    (lambda: Resize(3.5), TypeError, "Resize requires w to be an int, got float"),
    (lambda: Resize(84, interpolation="bicubic"), ValueError, "interpolation 'bilinear' or 'nearest', got 'bicubic'"),
    (lambda: Resize(84, interpolation=3), TypeError, "interpolation to be a str"),
    (lambda: CenterCrop(0), ValueError, "CenterCrop requires w > 0, got 0"),
    (lambda: Crop(4, top=1.5), TypeError, "Crop requires top to be an int"),
    (lambda: GrayScale(in_keys=[1]), TypeError, "in_keys must hold str or tuple-of-str keys, got int"),
    (lambda: ToTensorImage(in_keys=[("a", 2)]), TypeError, "in_keys"),
    (lambda: GrayScale(in_keys=["a", "b"], out_keys=["c"]), ValueError, "out_keys must have the same length"),
    (lambda: ToTensorImage(dtype=torch.bool), ValueError, r"dtype torch.float16, torch.float32, torch.float64 or "
                                                           r"\(with from_int=False\) torch.uint8"),
    (lambda: ToTensorImage(dtype=torch.int64), ValueError, r"integer dtype \(torch.int64\) requires from_int=False"),
    (lambda: ToTensorImage(True, dtype=torch.uint8), ValueError, r"requires from_int=False: .* got from_int=True"),
    (lambda: ToTensorImage(dtype="float32"), TypeError, "ToTensorImage requires dtype to be a torch.dtype"),
    (lambda: ToTensorImage(from_int=1), TypeError, "ToTensorImage requires from_int to be a bool"),
    (lambda: PermuteTransform((0, 1)), ValueError, r"permutation of \[-2, -1\]"),
    (lambda: PermuteTransform((-1, -1)), ValueError, "PermuteTransform requires dims"),
    (lambda: PermuteTransform((-1, -10)), ValueError, "Only tailing dims with negative"),  # TorchRL's test matches this
    (lambda: PermuteTransform(-1), TypeError, "sequence of negative ints"),
])
def test_bad_arguments(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


def test_bad_inputs_at_run_time():
    with pytest.raises(ValueError, match=r"GrayScale requires images \[..., 3, H, W\] with 3 channels"):
        GrayScale()(TensorDict({"pixels": torch.zeros(2, 4, 5, 5)}, [2]))
    with pytest.raises(ValueError, match="ToTensorImage requires images with at least 3 dims"):
        ToTensorImage()(TensorDict({"pixels": torch.zeros(5, 3, dtype=torch.uint8)}, []))
    with pytest.raises(TypeError, match="Resize requires images of dtype uint8, float16, float32 or float64"):
        Resize(3)(TensorDict({"pixels": torch.zeros(1, 4, 4, dtype=torch.int64)}, []))
    with pytest.raises(KeyError, match="'pixels' not found"):
        GrayScale()._np_step({"other": np.zeros((3, 2, 2), np.float32)})


# ------------------------------------------------------------- fused pipeline
def _pipeline(crop=False, out_key=None):
    key = out_key or "pixels"
    ts = [ToTensorImage(out_keys=[key]), GrayScale(in_keys=[key]), Resize(84, 84, in_keys=[key])]
    if crop:
        ts.append(CenterCrop(80, 70, in_keys=[key]))
    return ts + [CatFrames(4, dim=-3, in_keys=[key])]


def _fused(ts):
    return Compose(*ts)


def _unfused(ts):
    return Compose(*[Compose(t) for t in ts])  # nothing fuses across Compose boundaries


def test_planner_finds_runs_only_where_outputs_match():
    assert [type(s) for s in plan_fused(_pipeline(crop=True))] == [FusedPixelRun]
    assert [type(s) for s in plan_fused(_pipeline()[:3])] == [FusedPixelRun]
    assert [type(s) for s in plan_fused(_pipeline(out_key="p2"))] == [FusedPixelRun]
    swapped = [ToTensorImage(), Resize(84), GrayScale(), CatFrames(4, dim=-3)]
    assert plan_fused(swapped) == swapped
    side = [ToTensorImage(), GrayScale(out_keys=["gray"]), Resize(84, in_keys=["gray"])]
    assert plan_fused(side) == side
    f64 = [ToTensorImage(dtype=torch.float64), GrayScale(), Resize(84)]
    assert plan_fused(f64) == f64
    comp = Compose(*_pipeline()[:2])
    assert comp._plan() == list(comp.transforms)
    comp.append(Resize(84))
    assert [type(s) for s in comp._plan()] == [FusedPixelRun]


@pytest.mark.parametrize("crop", [False, True])
@pytest.mark.parametrize("out_key", [None, "p2"])
def test_fused_equals_unfused_tensordict_path(crop, out_key):
    fused, unfused = _fused(_pipeline(crop, out_key)), _unfused(_pipeline(crop, out_key))
    frames = [_u8(3, 210, 160, 3) for _ in range(6)]

    def both(method, *args):
        a = getattr(fused, method)(*[x.clone() if hasattr(x, "clone") else x for x in args])
        b = getattr(unfused, method)(*[x.clone() if hasattr(x, "clone") else x for x in args])
        assert_td_equal(a, b)

    both("_reset", TensorDict({}, [3]), TensorDict({"pixels": frames[0]}, [3]))
    a = fused._np_step({"pixels": frames[0].numpy()})  # the array path
    b = unfused._np_step({"pixels": frames[0].numpy()})
    assert set(a) == set(b) == {"pixels", out_key or "pixels"}
    assert all(np.array_equal(a[k], b[k]) for k in a)
    for x in frames[1:4]:
        both("_step", TensorDict({}, [3]), TensorDict({"pixels": x}, [3]))
    mask = TensorDict({"_reset": torch.tensor([[True], [False], [True]])}, [3])
    both("_reset", mask, TensorDict({"pixels": frames[4]}, [3]))
    both("_call", TensorDict({"pixels": frames[5]}, [3]))
    # unequal ring positions (never reached by stepping the sub-envs together): the general branch
    for cat in (fused.transforms[-1], unfused.transforms[-1].transforms[0]):
        (_, pos), = cat.__dict__["_rings"].values()
        pos[...] = [0, 2, 1]
    both("_call", TensorDict({"pixels": frames[0]}, [3]))
    both("_call", TensorDict({"pixels": frames[1]}, [3]))


def test_fused_equals_unfused_forward_and_fallbacks():
    fused, unfused = _fused(_pipeline(crop=True)), _unfused(_pipeline(crop=True))
    done = torch.zeros(2, 5, 1, dtype=torch.bool)
    done[0, 2] = True
    td = TensorDict({"pixels": _u8(2, 5, 60, 50, 3), ("next", "done"): done}, [2, 5])
    assert_td_equal(fused(td.clone()), unfused(td.clone()))
    floats = TensorDict({"pixels": _f32(2, 5, 60, 50, 3), ("next", "done"): done}, [2, 5])
    assert_td_equal(fused(floats.clone()), unfused(floats.clone()))
    # float64 frames are not fused: the members run one by one
    f64 = TensorDict({"pixels": _f32(2, 60, 50, 3).double()}, [2])
    assert_td_equal(fused._call(f64.clone()), unfused._call(f64.clone()))
    # a member changed after planning: the run falls back to the members
    fused.transforms[2].w = 40
    unfused.transforms[2].transforms[0].w = 40
    x = TensorDict({"pixels": _u8(2, 60, 50, 3)}, [2])
    assert_td_equal(fused._call(x.clone()), unfused._call(x.clone()))


@pytest.fixture(scope="module")
def pong_frames():
    pytest.importorskip("ale_py", reason="ALE frames need the ale-py package")
    env = GymEnv("ALE/Pong-v5")
    env.set_seed(0)
    td = env.rollout(12, break_when_any_done=False)
    env.close()
    return td


def test_pong_fused_equals_unfused_both_paths(pong_frames):
    results = []
    for make in (_fused, _unfused):
        env = TransformedEnv(GymEnv("ALE/Pong-v5"), make(_pipeline()))
        actions = list(pong_frames["action"])
        env.set_seed(0)
        results.append(env.rollout(12, actions=actions, break_when_any_done=False))  # array path
        env.set_seed(0)
        results.append(env._td_rollout(12, None, None, actions, True, False, False, None, False))
        env.close()
    assert results[0]["pixels"].shape == (12, 4, 84, 84)
    for other in results[1:]:
        assert_td_equal(results[0], other)
    # and the stacked frames are the reference computation of the raw frames
    raw = pong_frames["next", "pixels"][:4].permute(0, 3, 1, 2).float().div(255)
    expected = _interp(_luma(raw), (84, 84), True)
    torch.testing.assert_close(results[0]["next", "pixels"][3], expected[:, 0], atol=1e-5, rtol=0)


def test_fused_equals_unfused_with_partial_resets():
    pytest.importorskip("pygame", reason="CartPole frames need pygame to render")
    from numbarl.torch_api import SerialEnv

    right, left = torch.tensor([0, 1]), torch.tensor([1, 0])
    actions = [torch.stack([right, left if (i // 4) % 2 else right]) for i in range(25)]
    results = []
    for make in (_fused, _unfused):
        ts = [ToTensorImage(), GrayScale(), Resize(64, 48), CenterCrop(60, 40), CatFrames(3, dim=-3)]
        env = TransformedEnv(SerialEnv(2, lambda: GymEnv("CartPole-v1", from_pixels=True, pixels_only=False)),
                             make(ts))
        env.set_seed(0)
        results.append(env.rollout(25, actions=actions, break_when_any_done=False))
        env.set_seed(0)
        results.append(env._td_rollout(25, None, None, actions, True, False, False, None, False))
        env.close()
    done = results[0]["next", "done"].squeeze(-1)
    assert bool((done[0] != done[1]).any()) and results[0]["pixels"].shape == (2, 25, 3, 60, 40)
    for other in results[1:]:
        assert_td_equal(results[0], other)


@pytest.mark.torchrl
def test_pong_pipeline_matches_torchrl_where_it_runs(torchrl):
    pytest.importorskip("ale_py", reason="ALE frames need the ale-py package")
    from torchrl import envs as rl

    actions = [torch.nn.functional.one_hot(torch.tensor(i % 6), 6) for i in range(8)]
    theirs_env = rl.TransformedEnv(rl.GymEnv("ALE/Pong-v5"),
                                   rl.Compose(rl.ToTensorImage(), rl.GrayScale(), rl.CatFrames(4, dim=-3)))
    # TorchRL makes ALE envs with frameskip=1 (it skips frames itself): ask for the same frames
    ours_env = TransformedEnv(GymEnv("ALE/Pong-v5", frameskip=1),
                              Compose(ToTensorImage(), GrayScale(), CatFrames(4, dim=-3)))
    assert_spec_matches_torchrl(ours_env.observation_spec, theirs_env.observation_spec)
    theirs_env.set_seed(0)
    ours_env.set_seed(0)
    assert_td_equal(ours_env.rollout(8, actions=actions), theirs_env.rollout(8, actions=actions))
    ours_env.close()
    theirs_env.close()


def test_pong_specs_match_rollout():
    pytest.importorskip("ale_py", reason="ALE frames need the ale-py package")
    env = TransformedEnv(GymEnv("ALE/Pong-v5"), Compose(*_pipeline(crop=True)))
    spec = env.observation_spec["pixels"]
    assert spec.shape == (4, 80, 70) and spec.dtype == torch.float32
    check_env_specs(env, seed=0)
    env.close()


def test_cli_atari_preset(capsys):
    pytest.importorskip("ale_py", reason="the Atari preset needs the ale-py package")
    from numbarl.torch_api.cli import main

    assert main(["collect", "--preset", "atari", "--steps", "6", "--chunk", "3"]) == 0
    out = capsys.readouterr().out
    assert "(6, 4, 84, 84)" in out and "next.pixels" in out


def test_clone_and_pickle_of_a_fused_compose():
    t = _fused(_pipeline())
    x = TensorDict({"pixels": _u8(2, 50, 40, 3)}, [2])
    t._reset(TensorDict({}, [2]), x.clone())
    assert isinstance(t._plan()[0], FusedPixelRun)
    for copy_ in (t.clone(), pickle.loads(pickle.dumps(t))):
        assert isinstance(copy_._plan()[0], FusedPixelRun) and copy_._plan()[0].members[0] is copy_[0]
        assert_td_equal(copy_._call(x.clone()), t.clone()._call(x.clone()))  # the frame history is copied
