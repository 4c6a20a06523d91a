"""gray_resize_exact: bit-identical to to_tensor_image -> grayscale -> resize (-> center_crop)."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numbarl.core import pixels
from numbarl.core.fused_gray import exact_scale_holds, gray_resize_exact


def _unfused(x, h, w, antialias, mode, crop, from_int):
    scale = from_int if from_int is not None else x.dtype == np.uint8
    y = pixels.resize(pixels.grayscale(pixels.to_tensor_image(x, from_int=scale)), h, w, mode=mode,
                      antialias=antialias)
    return y if crop is None else pixels.center_crop(y, *crop)


def test_scaling_by_multiplication_is_exact():
    assert exact_scale_holds()


@settings(max_examples=40, deadline=None)
@given(batch=st.sampled_from([(), (1,), (3,), (2, 2)]), hw_in=st.tuples(st.integers(1, 40), st.integers(1, 40)),
       hw_out=st.tuples(st.integers(1, 30), st.integers(1, 30)), mode=st.sampled_from(["bilinear", "nearest"]),
       antialias=st.booleans(), dtype=st.sampled_from([np.uint8, np.float32]),
       from_int=st.sampled_from([None, True, False]), crop=st.booleans(), seed=st.integers(0, 2**16))
def test_equals_unfused_sequence(batch, hw_in, hw_out, mode, antialias, dtype, from_int, crop, seed):
    antialias = antialias and mode == "bilinear"
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, batch + hw_in + (3,)).astype(dtype)
    box = (max(1, hw_out[0] - 1), max(1, hw_out[1] - 2)) if crop else None
    y = gray_resize_exact(x, *hw_out, antialias, mode=mode, crop=box, from_int=from_int)
    assert y.dtype == np.float32
    assert np.array_equal(y, _unfused(x, *hw_out, antialias, mode, box, from_int))


def test_atari_frames_into_strided_out():
    x = np.random.default_rng(0).integers(0, 256, (4, 210, 160, 3), dtype=np.uint8)
    ring = np.zeros((4, 3, 1, 84, 84), np.float32)
    gray_resize_exact(x, 84, 84, True, out=ring[:, 1])
    assert np.array_equal(ring[:, 1], _unfused(x, 84, 84, True, "bilinear", None, None))
    assert not ring[:, 0].any() and not ring[:, 2].any()


def test_errors():
    with pytest.raises(ValueError, match="gray_resize_exact requires 3 channels at dim -1 of x, got 4"):
        gray_resize_exact(np.zeros((5, 5, 4), np.uint8), 2, 2)
    with pytest.raises(ValueError, match=r"gray_resize_exact requires crop <= \(h, w\) = \(4, 4\), got \(5, 2\)"):
        gray_resize_exact(np.zeros((5, 5, 3), np.uint8), 4, 4, crop=(5, 2))
    with pytest.raises(ValueError, match="gray_resize_exact requires h > 0, got 0"):
        gray_resize_exact(np.zeros((5, 5, 3), np.uint8), 0, 4)
    with pytest.raises(TypeError, match="gray_resize requires x of dtype uint8 or float32"):
        gray_resize_exact(np.zeros((5, 5, 3), np.int16), 2, 2)
    x = np.zeros((2, 5, 5, 3), np.uint8)
    gray_resize_exact(x, 1, 2, crop=(1, 1))  # cached plan for these arguments
    with pytest.raises(TypeError, match="gray_resize_exact requires h to be an int, got bool"):
        gray_resize_exact(x, True, 2, crop=(1, 1))
    with pytest.raises(TypeError, match="gray_resize_exact requires crop height to be an int, got float"):
        gray_resize_exact(x, 1, 2, crop=(1.0, 1))
    with pytest.raises(ValueError, match=r"gray_resize_exact requires out of shape \(2, 1, 1, 1\)"):
        gray_resize_exact(x, 1, 2, crop=(1, 1), out=np.zeros((2, 1, 1, 2), np.float32))
