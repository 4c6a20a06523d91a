"""uint8 frames end to end in numbarl.core.pixels: uint8 resize rounding and the uint8 fused gray_resize.

TorchRL's ``Resize`` calls torchvision's tensor ``resize``, which resizes a
uint8 image as float32 with ``interpolate`` and then applies ``torch.round``
(half to even) and ``.to(torch.uint8)``. That is the reference here
(``_torchvision_resize``). ``interpolate`` on uint8 itself takes a
fixed-point path that rounds differently: it is checked to within 1.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from numbarl.core import pixels

torch = pytest.importorskip("torch")
F = torch.nn.functional

SETTINGS = settings(max_examples=40, deadline=None)
HWC_TO_CHW = (-1, -3, -2)


def _planes(x):
    t = torch.from_numpy(np.ascontiguousarray(x))
    return t.reshape(-1, 1, *t.shape[-2:])


def _float_interpolate(x, h, w, antialias):
    """torch's float32 ``interpolate`` of uint8 planes (the values torchvision rounds)."""
    y = F.interpolate(_planes(x).float(), size=(h, w), mode="bilinear", align_corners=False, antialias=antialias)
    return y.reshape(*x.shape[:-2], h, w).numpy()


def _torchvision_resize(x, h, w, antialias):
    """torchvision's tensor ``resize`` of uint8 ``x``: float32 interpolate, ``torch.round``, cast."""
    return torch.from_numpy(_float_interpolate(x, h, w, antialias)).round().to(torch.uint8).numpy()


def _uint8_interpolate(x, h, w, antialias):
    y = F.interpolate(_planes(x), size=(h, w), mode="bilinear", align_corners=False, antialias=antialias)
    return y.reshape(*x.shape[:-2], h, w).numpy()


def _check_against_torch(x, h, w, antialias):
    """Ours equals torchvision's rounding but where torch's float32 value sits at a .5 tie; within 1 of uint8 interpolate."""
    y = pixels.resize(x, h, w, antialias=antialias)
    assert y.dtype == np.uint8
    ref = _torchvision_resize(x, h, w, antialias)
    diff = np.abs(y.astype(np.int16) - ref.astype(np.int16))
    assert diff.max(initial=0) <= 1
    # the float32 sums differ from torch's in the last bits (other tap order): a rounding can
    # differ only where torch's value is within float32 noise of a .5 tie
    frac = _float_interpolate(x, h, w, antialias) % 1.0
    assert np.all(np.abs(frac[diff > 0] - 0.5) < 1e-4)
    fixed = _uint8_interpolate(x, h, w, antialias)
    assert np.abs(y.astype(np.int16) - fixed.astype(np.int16)).max(initial=0) <= 1
    return diff


def test_resize_uint8_rounds_half_to_even_as_torch_round():
    # a 2x bilinear shrink averages pairs: 0.5, 3.5, 6.5 and 254.5 are exact ties
    x = np.array([[[0, 1, 2, 5, 6, 7, 254, 255]]], np.uint8)
    y = pixels.resize(x, 1, 4)
    np.testing.assert_array_equal(y, [[[0, 4, 6, 254]]])
    np.testing.assert_array_equal(y, _torchvision_resize(x, 1, 4, False))


@SETTINGS
@given(batch=st.lists(st.integers(1, 3), min_size=1, max_size=2).map(tuple),
       hw_in=st.tuples(st.integers(1, 40), st.integers(1, 40)),
       hw_out=st.tuples(st.integers(1, 40), st.integers(2, 40)),
       antialias=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_resize_uint8_matches_torchvision_resize(batch, hw_in, hw_out, antialias, seed):
    # output width >= 2: torch's float antialias kernel is wrong for width 1 (see test_pixels.py)
    x = np.random.default_rng(seed).integers(0, 256, batch + hw_in, dtype=np.uint8)
    _check_against_torch(x, *hw_out, antialias)


@pytest.mark.parametrize("size", [(84, 84), (64, 32), (105, 80), (42, 40)])
def test_resize_uint8_atari_frames_against_torch(size):
    rng = np.random.default_rng(7)
    noise = rng.integers(0, 256, (4, 1, 210, 160), dtype=np.uint8)
    yy, xx = np.mgrid[0:210, 0:160]
    smooth = ((np.sin(yy / 7.0) + np.cos(xx / 5.0)) * 60 + 128).astype(np.uint8)[None, None]
    for x in (noise, smooth):
        diff = _check_against_torch(x, *size, True)
        assert (diff > 0).mean() < 1e-3  # near-ties are rare


# ---------------------------------------------------------------- uint8 gray_resize
def _unfused_uint8(x, h, w, antialias, mode, crop):
    """The uint8 chain: permute, uint8 grayscale (truncated), uint8 resize (rounded), crop."""
    y = pixels.resize(pixels.grayscale(pixels.permute_last(x, HWC_TO_CHW)), h, w, mode=mode, antialias=antialias)
    return y if crop is None else pixels.center_crop(y, *crop)


@settings(max_examples=60, deadline=None)
@given(batch=st.sampled_from([(), (1,), (3,), (2, 2)]), hw_in=st.tuples(st.integers(1, 40), st.integers(1, 40)),
       hw_out=st.tuples(st.integers(1, 30), st.integers(1, 30)), mode=st.sampled_from(["bilinear", "nearest"]),
       antialias=st.booleans(), crop=st.booleans(), seed=st.integers(0, 2**16))
def test_uint8_gray_resize_equals_the_uint8_chain_bit_for_bit(batch, hw_in, hw_out, mode, antialias, crop, seed):
    antialias = antialias and mode == "bilinear"
    x = np.random.default_rng(seed).integers(0, 256, batch + hw_in + (3,), dtype=np.uint8)
    box = (max(1, hw_out[0] - 1), max(1, hw_out[1] - 2)) if crop else None
    y = pixels.gray_resize(x, *hw_out, antialias, mode=mode, crop=box, from_int=False, dtype=np.uint8)
    assert y.dtype == np.uint8
    np.testing.assert_array_equal(y, _unfused_uint8(x, *hw_out, antialias, mode, box))


def test_uint8_gray_resize_matches_torch_ops_on_atari_frames():
    x = np.random.default_rng(1).integers(0, 256, (3, 210, 160, 3), dtype=np.uint8)
    y = pixels.gray_resize(x, 84, 84, True, from_int=False, dtype=np.uint8)
    r, g, b = torch.from_numpy(x).permute(0, 3, 1, 2).unbind(-3)
    gray = (0.2989 * r + 0.587 * g + 0.114 * b).to(torch.uint8).unsqueeze(-3)  # torchvision's rgb_to_grayscale
    np.testing.assert_array_equal(pixels.grayscale(pixels.permute_last(x, HWC_TO_CHW)), gray.numpy())
    ref = _torchvision_resize(gray.numpy(), 84, 84, True)
    diff = np.abs(y.astype(np.int16) - ref.astype(np.int16))
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3


def test_uint8_gray_resize_parallel_and_strided_out(monkeypatch):
    x = np.random.default_rng(2).integers(0, 256, (4, 21, 16, 3), dtype=np.uint8)
    serial = pixels.gray_resize(x, 8, 9, True, from_int=False, dtype=np.uint8)
    ring = np.full((4, 3, 1, 8, 9), 7, np.uint8)
    monkeypatch.setattr(pixels, "_PARALLEL_MIN_WORK", 0)
    assert pixels.gray_resize(x, 8, 9, True, out=ring[:, 1], from_int=False, dtype=np.uint8) is not None
    np.testing.assert_array_equal(ring[:, 1], serial)
    assert (ring[:, 0] == 7).all() and (ring[:, 2] == 7).all()


@pytest.mark.parametrize("args,exc,match", [
    ({"dtype": np.float64}, ValueError, r"gray_resize requires dtype np.float32 or np.uint8, got float64"),
    ({"dtype": "nope"}, TypeError, r"gray_resize requires dtype np.float32 or np.uint8, got 'nope'"),
    ({"dtype": np.uint8}, ValueError, r"dtype=np.uint8 requires uint8 x and from_int=False .* from_int=None"),
    ({"dtype": np.uint8, "from_int": True}, ValueError, r"from_int=True"),
    ({"dtype": np.uint8, "from_int": False, "out": np.zeros((1, 2, 2), np.float32)}, TypeError,
     r"requires out of dtype uint8, got float32"),
])
def test_gray_resize_dtype_errors(args, exc, match):
    with pytest.raises(exc, match=match):
        pixels.gray_resize(np.zeros((4, 4, 3), np.uint8), 2, 2, **args)
    with pytest.raises(ValueError, match=r"uint8 x and from_int=False \(no scaling\), got x of dtype float32"):
        pixels.gray_resize(np.zeros((4, 4, 3), np.float32), 2, 2, from_int=False, dtype=np.uint8)
