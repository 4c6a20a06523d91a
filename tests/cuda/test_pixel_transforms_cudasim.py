"""The image transforms on CUDA tensors: CUDA kernels on the tensors' memory, nothing copied to the host.

Inside ``simulated_cuda()`` every tensor counts as a CUDA tensor, so the
transforms take their CUDA path and the kernels of ``numbarl.core.cuda``
run under the Numba simulator on the tensors' memory; any device-to-host
copy fails. Each result is compared with a clone of the transform run on
the CPU path outside the harness.

Run with ``NUMBA_ENABLE_CUDASIM=1 python -m pytest tests/cuda`` (see
tests/cudasim_helpers.py); skipped otherwise.
"""
from cudasim_helpers import assert_close, skip_unless_simulator

skip_unless_simulator()

import numbarl.core.cuda.pixels  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from numbarl.torch_api import (  # noqa: E402
    CatFrames,
    CenterCrop,
    Compose,
    Crop,
    GrayScale,
    PermuteTransform,
    Resize,
    ToTensorImage,
)
from numbarl.torch_api.transforms.fused_pixels import FusedPixelRun  # noqa: E402
from simulated_device import simulated_cuda  # noqa: E402
from tensordict import TensorDict  # noqa: E402

pytestmark = [pytest.mark.cudasim, pytest.mark.filterwarnings("ignore::RuntimeWarning")]

PIXELS = "numbarl.core.cuda.pixels"
FRAMES = "numbarl.core.cuda.frames"
EXACT = "exact"


def _hwc(seed=0, batch=2, h=10, w=8):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (batch, h, w, 3), dtype=torch.uint8, generator=g)


def _chw(dtype, seed=0):
    """``[2, 3, 10, 8]`` images of ``dtype`` (floats in [0, 1], integers in [0, 255])."""
    x = _hwc(seed).permute(0, 3, 1, 2).contiguous()
    if dtype.is_floating_point:
        return (x.to(torch.float64) / 255).to(dtype)
    return x.to(dtype)


def _compare(got, want, how):
    assert got.device == want.device and got.dtype == want.dtype and got.shape == want.shape
    if how == EXACT:
        assert torch.equal(got, want)
    else:
        assert_close(got.numpy(), want.numpy())


def _on_device(transform, td_fn, call=lambda t, td: t(td)):
    """``call`` on the CUDA path (the harness) and on a clone on the CPU path: ``(got, want, sim)``."""
    reference = transform.clone()
    want = call(reference, td_fn())
    with simulated_cuda() as sim:
        got = call(transform, td_fn())
    assert sim.attempts == []
    return got, want, sim


def _check(transform, x, modules, how, key="pixels"):
    td_fn = lambda: TensorDict({key: x.clone()}, [x.shape[0]])  # noqa: E731
    got, want, sim = _on_device(transform, td_fn)
    assert sim.kernel_modules == modules
    _compare(got[transform.out_keys[0]], want[transform.out_keys[0]], how)


# ------------------------------------------------------------- ToTensorImage
@pytest.mark.parametrize(
    "dtype,out_dtype,modules",
    [
        (torch.uint8, torch.float32, [PIXELS]),
        (torch.float32, torch.float32, [PIXELS]),
        (torch.uint8, torch.float64, [PIXELS]),
        (torch.uint8, torch.float16, []),  # float16 output: torch operations on the device
        (torch.float16, torch.float32, []),
        (torch.int32, torch.float32, []),
    ],
)
def test_to_tensor_image(dtype, out_dtype, modules):
    x = _hwc().to(dtype)
    _check(ToTensorImage(dtype=out_dtype), x, modules, EXACT)


def test_to_tensor_image_unsqueeze_and_shape_tolerant():
    x = _hwc(batch=1)[0]  # [H, W, 3]
    t = ToTensorImage(unsqueeze=True, in_keys=["pixels"], out_keys=["chw"])
    got, want, sim = _on_device(t, lambda: TensorDict({"pixels": x.clone()}, []))
    assert sim.kernel_modules == [PIXELS] and got["chw"].shape == (1, 3, 10, 8)
    _compare(got["chw"], want["chw"], EXACT)
    tolerant = ToTensorImage(shape_tolerant=True, from_int=True)
    _check(tolerant, torch.randint(0, 256, (2, 4, 5), dtype=torch.uint8), [], EXACT)


# ------------------------------------------------------------------ GrayScale
@pytest.mark.parametrize(
    "dtype,modules,how",
    [
        (torch.uint8, [PIXELS], "close"),
        (torch.float32, [PIXELS], "close"),
        (torch.float16, [], EXACT),
        (torch.float64, [], EXACT),
        (torch.int32, [], EXACT),
    ],
)
def test_grayscale(dtype, modules, how):
    _check(GrayScale(), _chw(dtype), modules, how)


def test_grayscale_of_a_non_contiguous_view():
    x = _hwc().permute(0, 3, 1, 2)  # [B, 3, H, W] view of HWC memory
    assert not x.is_contiguous()
    _check(GrayScale(), x, [PIXELS], "close")


# --------------------------------------------------------------------- Resize
@pytest.mark.parametrize(
    "dtype,interpolation,how",
    [
        (torch.uint8, "bilinear", "close"),
        (torch.float32, "bilinear", "close"),
        (torch.float32, "nearest", EXACT),
        (torch.uint8, "nearest", EXACT),
        (torch.float16, "bilinear", "close"),  # resized in float32 by the kernel, cast back on the device
        (torch.float64, "bilinear", "close"),
    ],
)
def test_resize(dtype, interpolation, how):
    x = _chw(dtype)
    if dtype in (torch.float16, torch.float64):
        # compared in float32, as both paths compute
        got, want, sim = _on_device(Resize(6, 5, interpolation=interpolation),
                                    lambda: TensorDict({"pixels": x.clone()}, [2]))
        assert sim.kernel_modules == [PIXELS] and got["pixels"].dtype == dtype
        _compare(got["pixels"].float(), want["pixels"].float(), "close")
        return
    _check(Resize(6, 5, interpolation=interpolation), x, [PIXELS], how)


def test_resize_enlarging_keeps_leading_dims():
    x = _chw(torch.float32)[None]  # [1, 2, 3, H, W]
    got, want, sim = _on_device(Resize(13, 11), lambda: TensorDict({"pixels": x.clone()}, [1]))
    assert sim.kernel_modules == [PIXELS] and got["pixels"].shape == (1, 2, 3, 13, 11)
    _compare(got["pixels"], want["pixels"], "close")


# ---------------------------------------------------------------------- crops
@pytest.mark.parametrize("dtype,modules", [(torch.uint8, [PIXELS]), (torch.float32, [PIXELS]), (torch.float16, []),
                                           (torch.int64, [])])
@pytest.mark.parametrize("size", [(5, 4), (12, 7), (3, 11)])
def test_center_crop(dtype, modules, size):
    _check(CenterCrop(*size), _chw(dtype), modules, EXACT)


@pytest.mark.parametrize("dtype,modules", [(torch.uint8, [PIXELS]), (torch.float32, [PIXELS]), (torch.float16, [])])
@pytest.mark.parametrize("window", [(4, 5, 0, 0), (6, 6, -2, 5), (3, 3, 20, 1)])
def test_crop(dtype, modules, window):
    w, h, top, left = window
    _check(Crop(w, h, top=top, left=left), _chw(dtype), modules, EXACT)


# ----------------------------------------------------------- PermuteTransform
@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32, torch.float16, torch.int64, torch.bool])
def test_permute(dtype):
    x = _hwc().to(dtype)
    _check(PermuteTransform((-1, -3, -2), in_keys=["pixels"]), x, [PIXELS], EXACT)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_permute_inverse(dtype):
    t = PermuteTransform((-2, -1, -3), in_keys_inv=["action"], out_keys_inv=["policy_action"])
    a = torch.randn(3, 4, 5, 2).to(dtype)
    got, want, sim = _on_device(t, lambda: TensorDict({"policy_action": a.clone()}, [3]), lambda tr, td: tr.inv(td))
    assert sim.kernel_modules == [PIXELS]
    assert got["action"].shape == (3, 2, 4, 5)  # [B, C, A] back to [A, B, C]
    _compare(got["action"], want["action"], EXACT)
    assert torch.equal(got["action"], a.permute(0, 3, 1, 2))  # independently of the transform


def test_device_outputs_are_fresh_tensors_without_grad():
    x = _chw(torch.float32).requires_grad_(True)
    with simulated_cuda() as sim:
        out = GrayScale(out_keys=["gray"])(TensorDict({"pixels": x}, [2]))["gray"]
    assert sim.attempts == [] and not out.requires_grad and out.data_ptr() != x.data_ptr()


# -------------------------------------------------------------- fused path
def _pipeline(with_cat=True):
    members = [ToTensorImage(), GrayScale(), Resize(6, 5), CenterCrop(4, 4)]
    if with_cat:
        members.append(CatFrames(N=3, dim=-3))
    return Compose(*members)


def _unfused_cpu(members, calls):
    """The CPU path of clones of ``members`` run one by one (no Compose, so no fusion)."""
    ts = [m.clone() for m in members]
    outs = []
    for method, td in calls:
        for t in ts:
            td = t._reset(None, td) if method == "reset" else t._call(td)
        outs.append(td["pixels"])
    return outs


@pytest.fixture
def fused_calls(monkeypatch):
    """Counts the calls of the CUDA ``gray_resize``."""
    calls = []
    original = numbarl.core.cuda.pixels.gray_resize

    def spy(*args, **kwargs):
        calls.append(kwargs.get("crop"))
        return original(*args, **kwargs)

    monkeypatch.setattr(numbarl.core.cuda.pixels, "gray_resize", spy)
    return calls


def test_fused_run_on_device_with_catframes(fused_calls):
    t = _pipeline()
    assert [type(s).__name__ for s in t._plan()] == ["FusedPixelRun"]
    frames = [_hwc(seed) for seed in range(4)]
    want = _unfused_cpu(t.transforms, [("reset", TensorDict({"pixels": frames[0]}, [2]))]
                        + [("step", TensorDict({"pixels": f}, [2])) for f in frames[1:]])
    got = []
    with simulated_cuda() as sim:
        got.append(t._reset(None, TensorDict({"pixels": frames[0].clone()}, [2]))["pixels"])
        for f in frames[1:]:
            got.append(t._step(None, TensorDict({"pixels": f.clone()}, [2]))["pixels"])
    assert sim.attempts == []
    assert fused_calls == [(4, 4)] * 4  # one fused kernel per call: the fused path
    assert sim.kernel_modules == [PIXELS, FRAMES] * 4
    for g, w in zip(got, want):
        assert g.shape == (2, 3, 4, 4)
        _compare(g, w, "close")


def test_fused_run_on_device_partial_reset(fused_calls):
    t = _pipeline()
    ref = t.clone()
    frames = [_hwc(seed, batch=3) for seed in range(4)]
    reset = TensorDict({"_reset": torch.tensor([[False], [True], [False]])}, [3])

    def run(tr):
        outs = [tr._reset(None, TensorDict({"pixels": frames[0].clone()}, [3]))["pixels"],
                tr._call(TensorDict({"pixels": frames[1].clone()}, [3]))["pixels"],
                tr._reset(reset.clone(), TensorDict({"pixels": frames[2].clone()}, [3]))["pixels"],
                tr._call(TensorDict({"pixels": frames[3].clone()}, [3]))["pixels"]]
        return outs

    want = run(ref)
    with simulated_cuda() as sim:
        got = run(t)
    assert sim.attempts == [] and len(fused_calls) == 4
    for g, w in zip(got, want):
        _compare(g, w, "close")
    # the partially reset sub-env restarted, the others kept their history
    assert torch.equal(got[2][1, 0], got[2][1, 2]) and not torch.equal(got[2][0, 0], got[2][0, 2])


def test_fused_run_offline_without_catframes(fused_calls):
    t = _pipeline(with_cat=False)
    x = _hwc(3)
    want = _unfused_cpu(t.transforms, [("step", TensorDict({"pixels": x}, [2]))])[0]
    with simulated_cuda() as sim:
        got = t(TensorDict({"pixels": x.clone()}, [2]))["pixels"]
    assert sim.attempts == [] and sim.kernel_modules == [PIXELS] and len(fused_calls) == 1
    _compare(got, want, "close")


def test_unfusable_input_on_device_goes_member_by_member(fused_calls):
    t = _pipeline()
    x = _hwc().to(torch.float16)  # the fused kernel takes uint8 / float32
    want = _unfused_cpu(t.transforms, [("reset", TensorDict({"pixels": x}, [2]))])[0]
    with simulated_cuda() as sim:
        got = t._reset(None, TensorDict({"pixels": x.clone()}, [2]))["pixels"]
    assert sim.attempts == [] and fused_calls == []
    # ToTensorImage of float16 by torch operations, the float32 kernels of the others, then CatFrames
    assert sim.kernel_modules == [PIXELS, PIXELS, PIXELS, FRAMES]
    _compare(got, want, "close")


def test_fused_plan_object_is_used_on_device():
    t = _pipeline()
    (run,) = t._plan()
    assert isinstance(run, FusedPixelRun) and run.cat is t.transforms[-1]


# ------------------------------------------------------------- uint8 chain
@pytest.mark.parametrize("out_dtype,modules", [(torch.uint8, [PIXELS]), (torch.int16, [])])
def test_integer_to_tensor_image(out_dtype, modules):
    # uint8 -> uint8 is the permute kernel; other integer outputs are torch operations on the device
    _check(ToTensorImage(from_int=False, dtype=out_dtype), _hwc(), modules, EXACT)


def test_fused_uint8_run_on_device_equals_the_unfused_cpu_chain(fused_calls):
    t = Compose(ToTensorImage(from_int=False, dtype=torch.uint8), GrayScale(), Resize(6, 5), CenterCrop(4, 4),
                CatFrames(N=3, dim=-3))
    assert [type(s).__name__ for s in t._plan()] == ["FusedPixelRun"]
    frames = [_hwc(seed) for seed in range(3)]
    want = _unfused_cpu(t.transforms, [("reset", TensorDict({"pixels": frames[0]}, [2]))]
                        + [("step", TensorDict({"pixels": f}, [2])) for f in frames[1:]])
    got = []
    with simulated_cuda() as sim:
        got.append(t._reset(None, TensorDict({"pixels": frames[0].clone()}, [2]))["pixels"])
        for f in frames[1:]:
            got.append(t._step(None, TensorDict({"pixels": f.clone()}, [2]))["pixels"])
    assert sim.attempts == [] and fused_calls == [(4, 4)] * 3
    for g, w in zip(got, want):
        assert g.dtype == torch.uint8 and g.shape == (2, 3, 4, 4)
        _compare(g, w, EXACT)
