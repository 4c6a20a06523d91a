"""CUDA reward-to-go against the CPU kernel, under the Numba CUDA simulator.

The simulator must be switched on before numba.cuda is first imported, so this
module runs in a pytest process of its own:

    NUMBA_ENABLE_CUDASIM=1 python -m pytest tests/cuda

(tests/core/test_cuda_simulator.py starts that process, so a plain pytest run covers
it.)
"""
import os

import pytest

if os.environ.get("NUMBA_ENABLE_CUDASIM") != "1":
    pytest.skip(
        "runs under the Numba CUDA simulator in a pytest process of its own, started by "
        "tests/core/test_cuda_simulator.py (alone: NUMBA_ENABLE_CUDASIM=1 python -m pytest tests/cuda)",
        allow_module_level=True,
    )

import doctest

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import cuda

from numbarl.core.cuda import returns as cuda_returns
from numbarl.core.returns import reward_to_go as cpu_reward_to_go

pytestmark = pytest.mark.cudasim


@st.composite
def trajectories(draw):
    before = draw(st.lists(st.integers(1, 3), max_size=2))
    after = draw(st.sampled_from([[], [1], [3]]))
    n_steps = draw(st.integers(1, 30))
    shape = tuple(before) + (n_steps,) + tuple(after)
    time_dim = draw(st.sampled_from([len(before), len(before) - len(shape)]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    reward = (rng.standard_normal(shape) * 10).astype(dtype)
    done = rng.random(shape) < draw(st.sampled_from([0.0, 0.1, 0.5]))
    return reward, done, time_dim


def _tolerance(dtype):
    return {"rtol": 1e-5, "atol": 1e-5} if dtype == np.float32 else {"rtol": 1e-12, "atol": 1e-12}


@settings(max_examples=40, deadline=None)
@given(traj=trajectories(), gamma=st.one_of(st.sampled_from([0.0, 1.0]), st.floats(0.0, 1.0)))
def test_matches_cpu_truncate(traj, gamma):
    reward, done, time_dim = traj
    want = cpu_reward_to_go(reward, done, gamma, time_dim=time_dim, open_end="truncate")
    got = cuda_returns.reward_to_go(
        cuda.to_device(reward), cuda.to_device(done), gamma, time_dim=time_dim, open_end="truncate"
    )
    got = got.copy_to_host()
    assert got.dtype == reward.dtype and got.shape == reward.shape
    np.testing.assert_allclose(got, want, **_tolerance(reward.dtype))


@settings(max_examples=25, deadline=None)
@given(traj=trajectories(), gamma=st.floats(0.0, 1.0), seed=st.integers(0, 2**32 - 1), on_device=st.booleans())
def test_matches_cpu_bootstrap(traj, gamma, seed, on_device):
    reward, done, time_dim = traj
    axis = time_dim % reward.ndim
    boot = np.random.default_rng(seed).standard_normal(reward.shape[:axis] + reward.shape[axis + 1 :])
    want = cpu_reward_to_go(reward, done, gamma, time_dim=time_dim, bootstrap=boot)
    given_boot = cuda.to_device(boot) if on_device else boot
    got = cuda_returns.reward_to_go(
        cuda.to_device(reward), cuda.to_device(done), gamma, time_dim=time_dim, bootstrap=given_boot
    ).copy_to_host()
    np.testing.assert_allclose(got, want, **_tolerance(reward.dtype))


def test_scalar_bootstrap_and_device_bootstrap_with_time_dim():
    rng = np.random.default_rng(0)
    reward = rng.standard_normal((5, 12, 1)).astype(np.float32)
    done = rng.random((5, 12, 1)) < 0.1
    want = cpu_reward_to_go(reward, done, 0.9, bootstrap=2.5)
    got = cuda_returns.reward_to_go(cuda.to_device(reward), cuda.to_device(done), 0.9, bootstrap=2.5)
    np.testing.assert_allclose(got.copy_to_host(), want, rtol=1e-5, atol=1e-5)
    boot = rng.standard_normal((5, 1, 1)).astype(np.float32)
    want = cpu_reward_to_go(reward, done, 0.9, bootstrap=boot)
    got = cuda_returns.reward_to_go(cuda.to_device(reward), cuda.to_device(done), 0.9, bootstrap=cuda.to_device(boot))
    np.testing.assert_allclose(got.copy_to_host(), want, rtol=1e-5, atol=1e-5)


def test_many_blocks_and_column_layout():
    rng = np.random.default_rng(1)
    # 300 trajectories: three blocks of threads; time first, batch after it.
    reward = rng.standard_normal((8, 300)).astype(np.float32)
    done = rng.random((8, 300)) < 0.2
    want = cpu_reward_to_go(reward, done, 0.95, time_dim=0, open_end="truncate")
    got = cuda_returns.reward_to_go(
        cuda.to_device(reward), cuda.to_device(done), 0.95, time_dim=0, open_end="truncate"
    )
    np.testing.assert_allclose(got.copy_to_host(), want, rtol=1e-5, atol=1e-5)


def test_preallocated_out_in_place_and_stream():
    rng = np.random.default_rng(2)
    reward = rng.standard_normal((4, 16, 1))
    done = rng.random((4, 16, 1)) < 0.2
    done[:, -1] = True
    want = cpu_reward_to_go(reward, done, 0.8)
    stream = cuda.stream()
    d_reward = cuda.to_device(reward, stream=stream)
    d_done = cuda.to_device(done, stream=stream)
    d_out = cuda.device_array_like(d_reward, stream=stream)
    assert cuda_returns.reward_to_go(d_reward, d_done, 0.8, out=d_out, stream=stream) is d_out
    stream.synchronize()
    np.testing.assert_allclose(d_out.copy_to_host(), want, rtol=1e-12)
    assert cuda_returns.reward_to_go(d_reward, d_done, 0.8, out=d_reward) is d_reward
    np.testing.assert_allclose(d_reward.copy_to_host(), want, rtol=1e-12)


def test_open_end_error_matches_cpu_message():
    reward = np.ones((3, 4, 1), dtype=np.float32)
    done = np.zeros((3, 4, 1), dtype=bool)
    done[[0, 2], -1] = True
    with pytest.raises(ValueError) as cpu_error:
        cpu_reward_to_go(reward, done, 0.9)
    with pytest.raises(ValueError, match=r"trajectory ends without done; pass open_end='truncate'") as gpu_error:
        cuda_returns.reward_to_go(cuda.to_device(reward), cuda.to_device(done), 0.9)
    assert str(gpu_error.value) == str(cpu_error.value)


@pytest.mark.parametrize(
    "make_kwargs,error,match",
    [
        (lambda: {"reward": np.ones((2, 3, 1))}, TypeError, r"reward to be a CUDA device array .* got ndarray"),
        (lambda: {"done": np.ones((2, 3, 1), bool)}, TypeError, r"done to be a CUDA device array"),
        (lambda: {"reward": cuda.to_device(np.ones((2, 3, 1), np.int32))}, TypeError,
         r"reward of dtype float32 or float64, got int32"),
        (lambda: {"gamma": 2.0}, ValueError, r"gamma in \[0, 1\], got 2.0"),
        (lambda: {"open_end": "x"}, ValueError, r"open_end in \('error', 'truncate'\), got 'x'"),
        (lambda: {"time_dim": -4}, ValueError, r"time_dim in \[-3, 2\]"),
        (lambda: {"out": [0.0]}, TypeError, r"out to be a CUDA device array"),
        (lambda: {"out": cuda.to_device(np.ones((2, 3, 1), np.float32))}, TypeError,
         r"out of the reward's dtype float64, got float32"),
        (lambda: {"bootstrap": cuda.to_device(np.ones((2, 1), np.complex128))}, TypeError,
         r"real-valued bootstrap, got dtype complex128"),
    ],
)
def test_bad_input(make_kwargs, error, match):
    args = {"reward": cuda.to_device(np.ones((2, 3, 1))), "done": cuda.to_device(np.ones((2, 3, 1), bool)),
            "gamma": 0.9}
    args.update(make_kwargs())
    with pytest.raises(error, match=match):
        cuda_returns.reward_to_go(**args)


def test_shape_errors():
    reward = cuda.to_device(np.ones((2, 3, 1)))
    with pytest.raises(ValueError, match=r"reward shape \(2, 3, 1\) and done shape \(2, 3\)"):
        cuda_returns.reward_to_go(reward, cuda.to_device(np.ones((2, 3), bool)), 0.9)
    with pytest.raises(ValueError, match=r"out of the reward's shape \(2, 3, 1\), got \(2, 3\)"):
        cuda_returns.reward_to_go(reward, cuda.to_device(np.ones((2, 3, 1), bool)), 0.9,
                                  out=cuda.to_device(np.ones((2, 3))))
    with pytest.raises(ValueError, match=r"device bootstrap of shape \(2, 1\) or \(2, 1, 1\), got \(2,\)"):
        cuda_returns.reward_to_go(reward, cuda.to_device(np.ones((2, 3, 1), bool)), 0.9,
                                  bootstrap=cuda.to_device(np.ones(2)))
    strided = cuda.to_device(np.ones((2, 6, 1)))[:, ::2]
    with pytest.raises(ValueError, match=r"C-contiguous reward"):
        cuda_returns.reward_to_go(strided, cuda.to_device(np.ones((2, 3, 1), bool)), 0.9)


def test_doctests():
    result = doctest.testmod(cuda_returns)
    assert result.attempted > 0 and result.failed == 0


@pytest.mark.parametrize("n_rows, n_steps", [(9, 17), (4, 8), (1, 1), (13, 40)])
def test_tiled_layout_crosses_tiles_and_blocks(n_rows, n_steps):
    """``[A, T, 1]``: trajectories split over blocks and time over tiles; every element written."""
    rng = np.random.default_rng(n_rows * 100 + n_steps)
    reward = rng.standard_normal((n_rows, n_steps, 1))
    done = rng.random((n_rows, n_steps, 1)) < 0.15
    boot = rng.standard_normal((n_rows, 1))
    for bootstrap in (None, boot):
        want = cpu_reward_to_go(reward, done, 0.97, bootstrap=bootstrap, open_end="truncate")
        out = cuda.to_device(np.full(reward.shape, np.nan))
        cuda_returns.reward_to_go(cuda.to_device(reward), cuda.to_device(done), 0.97, out=out,
                                  bootstrap=None if bootstrap is None else cuda.to_device(bootstrap),
                                  open_end="truncate")
        got = out.copy_to_host()
        assert not np.isnan(got).any()
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
