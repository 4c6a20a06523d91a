"""Tests of numbarl.core.returns.reward_to_go (CPU kernels)."""
import math
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from naive_returns import naive_reward_to_go

from numbarl.core import _returns_kernels as kernels
from numbarl.core import returns
from numbarl.core.returns import reward_to_go

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

gammas = st.one_of(st.sampled_from([0.0, 1.0]), st.floats(0.0, 1.0))
dtypes = st.sampled_from([np.float32, np.float64])


@st.composite
def trajectories(draw, max_steps=60):
    """Random (reward, done, time_dim): batch dims before and after the time dim."""
    before = draw(st.lists(st.integers(1, 4), max_size=2))
    after = draw(st.sampled_from([[], [1], [3], [2, 1]]))
    n_steps = draw(st.integers(1, max_steps))
    shape = tuple(before) + (n_steps,) + tuple(after)
    axis = len(before)
    time_dim = draw(st.sampled_from([axis, axis - len(shape)]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    dtype = draw(dtypes)
    reward = (rng.standard_normal(shape) * draw(st.sampled_from([1.0, 100.0]))).astype(dtype)
    done = rng.random(shape) < draw(st.sampled_from([0.0, 0.05, 0.3, 1.0]))
    return reward, done, time_dim


def _close(got, want, dtype):
    # float64: both sides sum in float64; they differ by rounding only.
    # float32: the float64 sum is rounded once to float32 (relative 6e-8).
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    assert got.dtype == dtype


def _end_every_trajectory(done, time_dim):
    done = done.copy()
    np.moveaxis(done, time_dim, -1)[..., -1] = True
    return done


@settings(max_examples=150, deadline=None)
@given(traj=trajectories(), gamma=gammas)
def test_matches_naive_when_every_trajectory_ends_done(traj, gamma):
    reward, done, time_dim = traj
    done = _end_every_trajectory(done, time_dim)
    got = reward_to_go(reward, done, gamma, time_dim=time_dim)
    _close(got, naive_reward_to_go(reward, done, gamma, time_dim=time_dim), reward.dtype)


@settings(max_examples=100, deadline=None)
@given(traj=trajectories(), gamma=gammas)
def test_matches_naive_truncate(traj, gamma):
    reward, done, time_dim = traj
    got = reward_to_go(reward, done, gamma, time_dim=time_dim, open_end="truncate")
    _close(got, naive_reward_to_go(reward, done, gamma, time_dim=time_dim), reward.dtype)


@settings(max_examples=100, deadline=None)
@given(traj=trajectories(), gamma=gammas, seed=st.integers(0, 2**32 - 1), keep_time_dim=st.booleans())
def test_matches_naive_bootstrap(traj, gamma, seed, keep_time_dim):
    reward, done, time_dim = traj
    batch_shape = np.moveaxis(reward, time_dim, -1).shape[:-1]
    boot = np.random.default_rng(seed).standard_normal(batch_shape) * 10
    want = naive_reward_to_go(reward, done, gamma, time_dim=time_dim, bootstrap=boot)
    # The bootstrap array is the reward's shape without its time dim ...
    axis = time_dim % reward.ndim
    given_boot = np.moveaxis(boot[..., None], -1, axis) if keep_time_dim else boot
    # ... or with it, of size 1.
    got = reward_to_go(reward, done, gamma, time_dim=time_dim, bootstrap=given_boot)
    _close(got, want, reward.dtype)


def test_bootstrap_scalar_and_precedence_over_open_end():
    reward = np.array([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]])
    done = np.array([[False, False, False], [False, False, True]])
    got = reward_to_go(reward, done, 0.5, time_dim=-1, bootstrap=4.0, open_end="error")
    # Row 0 is open: G[2] = 3 + 0.5 * 4; row 1 ends done, the bootstrap is not used.
    np.testing.assert_allclose(got, [[1 + 0.5 * (2 + 0.5 * 5), 2 + 0.5 * 5, 5.0], [1 + 0.5 * 3.5, 3.5, 3.0]])


def test_bootstrap_per_row_of_reward_t_1():
    reward = np.ones((2, 3, 1), dtype=np.float32)
    done = np.zeros((2, 3, 1), dtype=bool)
    boot = np.array([[2.0], [-2.0]])
    got = reward_to_go(reward, done, 1.0, bootstrap=boot)
    np.testing.assert_array_equal(got[:, :, 0], [[5, 4, 3], [1, 0, -1]])


def test_open_end_error_names_the_fix():
    reward = np.ones((3, 4, 1))
    done = np.zeros((3, 4, 1), dtype=bool)
    done[[0, 2], -1] = True
    with pytest.raises(ValueError, match=r"1 of 3 trajectories open \(first at batch index \(1, 0\)\).*"
                       r"trajectory ends without done; pass open_end='truncate' or a bootstrap value"):
        reward_to_go(reward, done, 0.9)


def test_open_end_truncate_matches_torchrl_convention():
    reward = np.ones((1, 4, 1))
    done = np.zeros((1, 4, 1), dtype=bool)
    got = reward_to_go(reward, done, 0.5, open_end="truncate")
    np.testing.assert_allclose(got[0, :, 0], [1.875, 1.75, 1.5, 1.0])


def test_gamma_zero_is_the_reward_and_gamma_one_the_plain_sum():
    rng = np.random.default_rng(0)
    reward = rng.standard_normal((3, 20, 1))
    done = np.zeros((3, 20, 1), dtype=bool)
    done[:, [6, 19]] = True
    np.testing.assert_array_equal(reward_to_go(reward, done, 0.0), reward)
    got = reward_to_go(reward, done, 1)
    np.testing.assert_allclose(got[:, 0, 0], reward[:, :7, 0].sum(1))
    np.testing.assert_allclose(got[:, 7, 0], reward[:, 7:, 0].sum(1))


def test_float64_accumulation_for_float32_reward():
    # Above 2**24 a float32 running sum no longer changes when 1 is added.
    n = 1001
    reward = np.ones((1, n, 1), dtype=np.float32)
    reward[0, -1, 0] = 2.0**24
    done = np.zeros_like(reward, dtype=bool)
    done[0, -1, 0] = True
    got = reward_to_go(reward, done, 1.0)
    assert got[0, 0, 0] == np.float32(2.0**24 + n - 1)


@pytest.mark.parametrize("shape,time_dim", [((7, 40, 1), -2), ((3, 2, 1100), 1), ((30, 9), -1), ((25,), 0)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_row_groups_and_column_blocks(shape, time_dim, dtype):
    # 7 rows: one group of four plus three single rows; 1100 columns: three
    # column blocks, the last one partial.
    rng = np.random.default_rng(1)
    reward = rng.standard_normal(shape).astype(dtype)
    done = rng.random(shape) < 0.1
    got = reward_to_go(reward, done, 0.97, time_dim=time_dim, open_end="truncate")
    _close(got, naive_reward_to_go(reward, done, 0.97, time_dim=time_dim), dtype)


@pytest.mark.parametrize("shape", [(64, 4096, 1), (2, 300, 1024)])
def test_parallel_kernel_equals_serial_kernel(shape, monkeypatch):
    monkeypatch.setattr(returns, "PARALLEL_MIN_STEPS", math.prod(shape))
    rng = np.random.default_rng(2)
    reward = rng.standard_normal(shape).astype(np.float32)
    done = rng.random(shape) < 0.01
    boot = rng.standard_normal((shape[0], shape[2]))
    serial = np.empty_like(reward)
    parallel = np.empty_like(reward)
    kernels.reward_to_go_serial(reward, done, 0.99, boot, serial)
    kernels.reward_to_go_parallel(reward, done, 0.99, boot, parallel)
    np.testing.assert_array_equal(serial, parallel)
    calls = []

    def parallel_kernel(*args):
        calls.append(len(args))
        kernels.reward_to_go_parallel(*args)

    monkeypatch.setattr(returns, "reward_to_go_parallel", parallel_kernel)
    got = reward_to_go(reward, done, 0.99, bootstrap=boot[:, None, :])
    assert len(calls) == 1
    np.testing.assert_array_equal(got, serial)
    # The reference restarts at step 200 from the kernel's own G[200]: the
    # float32 rounding of that value is all that differs.
    want = naive_reward_to_go(reward[:2, :200, :4], done[:2, :200, :4], 0.99, bootstrap=serial[:2, 200, :4])
    np.testing.assert_allclose(got[:2, :200, :4], want, rtol=1e-5, atol=1e-5)


def test_out_in_place_and_preallocated():
    rng = np.random.default_rng(3)
    reward = rng.standard_normal((4, 30, 1))
    done = rng.random((4, 30, 1)) < 0.2
    want = naive_reward_to_go(reward, done, 0.9)
    out = np.full_like(reward, np.nan)
    assert reward_to_go(reward, done, 0.9, out=out, open_end="truncate") is out
    np.testing.assert_allclose(out, want, rtol=1e-12, atol=1e-12)
    assert reward_to_go(reward, done, 0.9, out=reward, open_end="truncate") is reward
    np.testing.assert_allclose(reward, want, rtol=1e-12, atol=1e-12)


def test_overlapping_out_reads_the_reward_before_writing():
    base = np.arange(12, dtype=np.float64)
    reward = base[:10]
    out = base[2:]
    done = np.zeros(10, dtype=bool)
    want = naive_reward_to_go(reward.copy(), done, 0.5, time_dim=0)
    reward_to_go(reward, done, 0.5, out=out, time_dim=0, open_end="truncate")
    np.testing.assert_allclose(out, want)


def test_strided_reward_and_integer_done():
    rng = np.random.default_rng(4)
    reward = rng.standard_normal((6, 50, 2))[:, ::2, :1]  # strided time, still a view
    done = (rng.random((6, 25, 1)) < 0.2).astype(np.int8)
    got = reward_to_go(reward, done, 0.8, open_end="truncate")
    np.testing.assert_allclose(got, naive_reward_to_go(reward, done, 0.8), rtol=1e-12, atol=1e-12)


def test_batch_dims_that_do_not_merge_into_a_view():
    # Transposed batch dims cannot be merged without a copy: inputs are copied,
    # and out is computed in scratch memory and written back.
    rng = np.random.default_rng(5)
    reward = rng.standard_normal((3, 2, 20, 1)).transpose(1, 0, 2, 3)
    done = (rng.random((3, 2, 20, 1)) < 0.2).transpose(1, 0, 2, 3)
    out = np.zeros((3, 2, 20, 1)).transpose(1, 0, 2, 3)
    assert reward_to_go(reward, done, 0.8, out=out, open_end="truncate") is out
    np.testing.assert_allclose(out, naive_reward_to_go(reward, done, 0.8), rtol=1e-12, atol=1e-12)


def test_empty_inputs():
    reward = np.zeros((3, 0, 1), dtype=np.float32)
    assert reward_to_go(reward, np.zeros((3, 0, 1), bool), 0.9).shape == (3, 0, 1)
    reward = np.zeros((0, 5, 1))
    assert reward_to_go(reward, np.zeros((0, 5, 1), bool), 0.9).shape == (0, 5, 1)


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        ({"reward": [[1.0]]}, TypeError, r"reward to be a numpy.ndarray, got list"),
        ({"reward": np.ones((2, 3, 1), dtype=np.int64)}, TypeError, r"reward of dtype float32 or float64, got int64"),
        ({"done": np.zeros((2, 3, 1))}, TypeError, r"done of dtype bool \(or an integer dtype\), got float64"),
        ({"done": np.zeros((2, 3), bool)}, ValueError, r"reward shape \(2, 3, 1\) and done shape \(2, 3\)"),
        ({"gamma": -0.1}, ValueError, r"gamma in \[0, 1\], got -0.1"),
        ({"gamma": 1.5}, ValueError, r"gamma in \[0, 1\], got 1.5"),
        ({"gamma": float("nan")}, ValueError, r"gamma in \[0, 1\], got nan"),
        ({"gamma": "0.9"}, TypeError, r"gamma to be a real number, got str"),
        ({"gamma": True}, TypeError, r"gamma to be a real number, got bool"),
        ({"time_dim": 3}, ValueError, r"time_dim in \[-3, 2\] for reward of shape \(2, 3, 1\), got 3"),
        ({"time_dim": 1.0}, TypeError, r"time_dim to be an int, got float"),
        ({"open_end": "bootstrap"}, ValueError, r"open_end in \('error', 'truncate'\), got 'bootstrap'"),
        ({"open_end": None}, TypeError, r"open_end to be a str, got NoneType"),
        ({"out": np.zeros((2, 3, 1), np.float32)}, TypeError, r"out of the reward's dtype float64, got float32"),
        ({"out": np.zeros((2, 3))}, ValueError, r"out of the reward's shape \(2, 3, 1\), got \(2, 3\)"),
        ({"out": [0.0]}, TypeError, r"out to be a numpy.ndarray or None, got list"),
        ({"bootstrap": np.zeros(3)}, ValueError, r"bootstrap to broadcast .* \(2, 1\), got shape \(3,\)"),
        ({"bootstrap": np.zeros((2, 2, 1))}, ValueError, r"bootstrap of shape \(2, 1\) \(or \(2, 1, 1\) with time dim 1\), got \(2, 2, 1\)"),
        ({"bootstrap": np.zeros((2, 1), complex)}, TypeError, r"real-valued bootstrap, got dtype complex128"),
    ],
)
def test_bad_input(kwargs, error, match):
    args = {"reward": np.ones((2, 3, 1)), "done": np.ones((2, 3, 1), bool), "gamma": 0.9}
    args.update(kwargs)
    with pytest.raises(error, match=match):
        reward_to_go(**args)


def test_read_only_out():
    out = np.zeros((2, 3, 1))
    out.flags.writeable = False
    with pytest.raises(ValueError, match="writeable out"):
        reward_to_go(np.ones((2, 3, 1)), np.ones((2, 3, 1), bool), 0.9, out=out)


def test_core_imports_neither_torch_nor_numba_cuda():
    code = (
        "import sys, numbarl.core, numbarl.core.returns; "
        "bad = [m for m in ('torch', 'tensordict', 'numba.cuda') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO_ROOT)


# ----------------------------------------------------------------------------
# Differential tests against torchrl 0.14.1
#
# torchrl's reward2go convolves each episode with the kernel
# w_k = gamma ** k, k < K, built by a cumulative product in the reward's dtype,
# with K = int(log(1e-7) / log(gamma)) for gamma < 1 (no cut for gamma == 1).
# Against the exact sum, its output at step t errs by at most
#   truncation: sum_{k >= K} gamma**k |r| <= max|r| * gamma**K / (1 - gamma),
#     and K > log(1e-7) / log(gamma) - 1 gives gamma**K < 1e-7 / gamma
#     (zero when no episode is longer than log(1e-7) / log(gamma) - 1);
#   rounding: a dot product of n terms is off by at most n*u*S_t, where
#     S_t = sum_k gamma**k |r_{t+k}| and u is the unit roundoff of the dtype;
#     the weights carry k+1 roundings each (gamma itself, then k products),
#     so the first-order bound is 3*n*u*S_t, with n the longest episode; 4*n*u
#     covers the higher-order terms while n*u < 0.1.
# numbarl's own result is the float64 sum rounded once to the output dtype:
# u * |G_t| more. For float64 the rounding terms are ~1e-13 and the test is
# sharp wherever the truncation is active (gamma < 0.95 with episodes of up to
# 300 steps); float32 is checked against the same bound with u = 2**-24.
# torchrl fails for gamma < 1e-7 (its kernel is empty: IndexError), so gamma
# is drawn from [0.01, 1].
# ----------------------------------------------------------------------------
CUT = 1e-7


def _torchrl_bound(reward, done, gamma, time_dim):
    u = float(np.finfo(reward.dtype).eps) / 2
    r64 = reward.astype(np.float64)
    exact = naive_reward_to_go(r64, done, gamma, time_dim=time_dim)
    abs_sum = naive_reward_to_go(np.abs(r64), done, gamma, time_dim=time_dim)
    ends = np.moveaxis(done, time_dim, -1).copy()
    ends[..., -1] = True
    starts = np.flatnonzero(np.concatenate([[True], ends.reshape(-1)[:-1]]))
    stops = np.flatnonzero(ends.reshape(-1))
    n = int((stops - starts + 1).max())
    # No term is cut when every episode is shorter than the kernel.
    cut = gamma < 1.0 and n > math.log(CUT) / math.log(gamma) - 1
    trunc = float(np.abs(r64).max()) * CUT / (gamma * (1.0 - gamma)) if cut else 0.0
    return exact, trunc + 4 * n * u * abs_sum + u * np.abs(exact) + 1e-12


@st.composite
def torchrl_trajectories(draw, dtype):
    n_batch = draw(st.lists(st.integers(1, 3), max_size=2))
    n_steps = draw(st.integers(1, 300))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    shape = tuple(n_batch) + (n_steps, 1)
    reward = (rng.standard_normal(shape) * 10).astype(dtype)
    done = rng.random(shape) < draw(st.sampled_from([0.0, 0.003, 0.02, 0.2]))
    return reward, done


@pytest.mark.torchrl
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
# The torchrl fixture only hands over the imported module: nothing to reset.
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), gamma=st.one_of(st.just(1.0), st.floats(0.01, 1.0)))
def test_matches_torchrl_reward2go(torchrl, dtype, data, gamma):
    import torch
    from torchrl.objectives.value.functional import reward2go

    reward, done = data.draw(torchrl_trajectories(dtype))
    theirs = reward2go(torch.from_numpy(reward), torch.from_numpy(done), gamma).numpy()
    ours = reward_to_go(reward, done, gamma, open_end="truncate")
    exact, bound = _torchrl_bound(reward, done, gamma, -2)
    assert theirs.dtype == ours.dtype
    assert np.all(np.abs(ours - theirs) <= bound)
    # ours is the exact sum rounded once
    np.testing.assert_allclose(ours, exact, rtol=2 * np.finfo(dtype).eps, atol=1e-12)


@pytest.mark.torchrl
def test_matches_torchrl_reward2go_time_last(torchrl):
    import torch
    from torchrl.objectives.value.functional import reward2go

    rng = np.random.default_rng(5)
    reward = rng.standard_normal((3, 4, 120))
    done = rng.random((3, 4, 120)) < 0.05
    theirs = reward2go(torch.from_numpy(reward), torch.from_numpy(done), 0.9, time_dim=-1).numpy()
    ours = reward_to_go(reward, done, 0.9, time_dim=-1, open_end="truncate")
    _, bound = _torchrl_bound(reward, done, 0.9, -1)
    assert np.all(np.abs(ours - theirs) <= bound)


@pytest.mark.torchrl
@pytest.mark.parametrize("gamma", [0.5, 0.99, 1.0])
def test_matches_torchrl_reward2go_transform(torchrl, gamma):
    import torch
    from tensordict import TensorDict
    from torchrl.envs import Reward2GoTransform

    rng = np.random.default_rng(6)
    reward = rng.standard_normal((4, 500, 1)).astype(np.float32)
    done = rng.random((4, 500, 1)) < 0.01
    done[:, -1] = True
    td = TensorDict(
        {"next": {"reward": torch.from_numpy(reward), "done": torch.from_numpy(done)}}, batch_size=[4, 500]
    )
    theirs = Reward2GoTransform(gamma=gamma, out_keys=["reward_to_go"]).inv(td)["reward_to_go"].numpy()
    ours = reward_to_go(reward, done, gamma)
    _, bound = _torchrl_bound(reward, done, gamma, -2)
    assert np.all(np.abs(ours - theirs) <= bound)
