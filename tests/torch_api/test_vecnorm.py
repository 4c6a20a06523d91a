"""VecNorm and VecNormV2: numerics, API, state dicts, array path, and torchrl 0.14.1.

Reference values come from ``naive_moments`` (float64, by definition). Against
torchrl the outputs agree to 1e-5 wherever torchrl is numerically sound; where
it is not (VecNormV2 with decay < 1 while decay**count is not negligible, and
float32 sums that cancel at large means) the tests check the true moments.
"""
import math
import warnings

import numpy as np
import pytest
import torch
from tensordict import TensorDict

from compare import assert_spec_matches_torchrl, assert_td_equal
from naive_moments import ema_weights, naive_weighted
import numbarl.torch_api as nt
from numbarl.core.moments import NonFiniteError
from numbarl.torch_api import (Bounded, Categorical, Compose, Composite, EnvBase, GymEnv, ObservationNorm,
                               TransformedEnv, Unbounded, VecNorm, VecNormV2, check_env_specs)

warnings.filterwarnings("ignore", category=FutureWarning)
TOL = dict(rtol=1e-5, atol=1e-5)


@pytest.fixture
def trl(torchrl):
    """``torchrl.envs`` (skipped, with the reason, when torchrl is missing)."""
    import torchrl.envs

    return torchrl.envs


def close(a, b, **tol):
    torch.testing.assert_close(torch.as_tensor(a).double(), torch.as_tensor(b).double(), **(tol or TOL))


def close_where_sound(ours, theirs, truth, coverage=0.5):
    """ours == theirs (1e-5) wherever torchrl is within 1e-6 of the float64 truth, on >= ``coverage`` of entries."""
    truth = torch.as_tensor(truth).reshape(theirs.shape)
    sound = (theirs.double() - truth).abs() < 1e-6 * (1 + truth.abs())
    assert sound.double().mean() >= coverage, f"torchrl sound on only {sound.double().mean():.2f} of the entries"
    close(ours[sound], theirs[sound])


def ref_stream(updates, decay, eps_std):
    """Normalized values of each update, by the weighted moments of all updates so far (update, then normalize)."""
    outs, seen = [], []
    for u in updates:
        u = np.asarray(u, dtype=np.float64)
        seen.append(u.reshape(-1, u.shape[-1]))
        mean, var = naive_weighted(np.concatenate(seen), ema_weights([len(s) for s in seen], decay))
        outs.append((u - mean) / np.maximum(np.sqrt(var), eps_std))
    return outs


def pendulum_rollout(M, transform, steps=300, seed=0):
    torch.manual_seed(seed)
    env = M.TransformedEnv(M.GymEnv("Pendulum-v1"), transform)
    env.set_seed(seed)
    return env, env.rollout(steps, break_when_any_done=False)


def pendulum_reference(td, key, decay, eps_std):
    """Expected (root, next) normalized values of ``key`` ("observation" or "reward") of a Pendulum rollout.

    The raw values are replayed from a plain env with the rollout's actions;
    the statistics see the reset observation, every step, and the reset
    observation after each done (rewards only at steps).
    """
    steps = td.shape[0]
    torch.manual_seed(0)
    raw_env = GymEnv("Pendulum-v1")
    raw_env.set_seed(0)
    raw = raw_env.rollout(steps, actions=list(td["action"]), break_when_any_done=False)
    updates, where = [], []
    for t in range(steps):
        if key == "observation" and (t == 0 or raw["next", "done"][t - 1]):
            updates.append(raw["observation"][t].numpy()[None])
            where.append(("root", t))
        updates.append(raw["next", key][t].numpy()[None])
        where.append(("next", t))
    outs = ref_stream(updates, decay, eps_std)
    root, nxt = np.zeros((steps,) + outs[0].shape[1:]), np.zeros((steps,) + outs[0].shape[1:])
    for (kind, t), out in zip(where, outs):
        (root if kind == "root" else nxt)[t] = out[0]
        if kind == "next" and t + 1 < steps:
            root[t + 1] = out[0]
    return torch.from_numpy(root), torch.from_numpy(nxt), raw


# ------------------------------------------------------------------ construction
@pytest.mark.parametrize("make, error, match", [
    (lambda: VecNorm(in_keys=[3]), TypeError, r"VecNorm requires in_keys as a key or a list of keys"),
    (lambda: VecNormV2(in_keys=["a", 1.5]), TypeError, r"VecNormV2 requires in_keys"),
    (lambda: VecNorm(in_keys=["a"], out_keys=[("b", 2)]), TypeError, r"VecNorm requires out_keys"),
    (lambda: VecNorm(in_keys=["a", "b"], out_keys=["c"]), ValueError,
     r"VecNorm requires out_keys of the same length as in_keys \(2\), got 1"),
    (lambda: VecNormV2(in_keys=["a"], out_keys=["b", "c"]), ValueError, r"VecNormV2 requires out_keys .* \(1\), got 2"),
    (lambda: VecNorm(decay=1.5), ValueError, r"VecNorm requires decay in \(0, 1\], got 1.5"),
    (lambda: VecNorm(decay=0.0), ValueError, r"VecNorm requires decay in \(0, 1\], got 0.0"),
    (lambda: VecNormV2(in_keys=["a"], decay=-0.5), ValueError, r"VecNormV2 requires decay in \(0, 1\], got -0.5"),
    (lambda: VecNorm(decay="0.9"), TypeError, r"VecNorm requires decay as a float, got str"),
    (lambda: VecNorm(eps=0.0), ValueError, r"VecNorm requires eps > 0 and finite, got 0.0"),
    (lambda: VecNormV2(in_keys=["a"], eps=-1e-3), ValueError, r"VecNormV2 requires eps > 0 and finite, got -0.001"),
    (lambda: ObservationNorm(in_keys=["a"], eps=0.0), ValueError, r"ObservationNorm requires eps > 0"),
    (lambda: VecNorm(nonfinite="ignore"), ValueError, r"VecNorm requires nonfinite in \('raise', 'skip'\)"),
    (lambda: VecNorm(in_keys=["a"], shapes=[(3,), (2,)]), ValueError, r"VecNorm requires shapes of the same length"),
    (lambda: VecNorm(lock=3), TypeError, r"VecNorm requires lock as a context manager"),
    (lambda: VecNorm(new_api=True, shapes=[(3,)]), ValueError, r"VecNorm\(new_api=True\) takes no shapes"),
    (lambda: VecNormV2(in_keys=["a"], stateful=False, reduce_batch_dims=True), ValueError,
     r"VecNormV2 supports reduce_batch_dims=True only with stateful=True"),
    (lambda: VecNormV2(None), TypeError, r"VecNormV2 requires in_keys"),
    (lambda: ObservationNorm(), TypeError, r"ObservationNorm requires in_keys"),
    (lambda: ObservationNorm(loc="a", in_keys=["x"]), TypeError, r"ObservationNorm requires loc as a float"),
    (lambda: ObservationNorm(in_keys=["x"], out_keys=["a", "b"]), ValueError, r"ObservationNorm requires out_keys"),
])
def test_bad_arguments(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_new_api_returns_vecnormv2_and_defaults():
    t = VecNorm(new_api=True, decay=0.5)
    assert type(t) is VecNormV2 and t.in_keys == ["observation", "reward"] and t.decay == 0.5
    legacy = VecNorm()
    assert type(legacy) is VecNorm and legacy.in_keys == ["observation", "reward"]
    assert (legacy.decay, legacy.eps) == (0.9999, 1e-4)
    assert repr(legacy) == ("VecNorm(decay=0.9999,eps=0.0001, in_keys=['observation', 'reward'], "
                            "out_keys=['observation', 'reward'])")


# ------------------------------------------------------------ pendulum vs torchrl
@pytest.mark.torchrl
@pytest.mark.parametrize("decay", [0.9, 0.9999, 1.0])
def test_vecnorm_pendulum_vs_torchrl(trl, decay):
    """The legacy VecNorm doc example (observations and rewards): torchrl, truth, array == TensorDict path."""
    theirs = pendulum_rollout(trl, trl.VecNorm(in_keys=["observation", "reward"],
                                                                 out_keys=["obs_n", "reward"], decay=decay))[1]
    env, ours = pendulum_rollout(nt,
                                 VecNorm(in_keys=["observation", "reward"], out_keys=["obs_n", "reward"], decay=decay))
    assert env._array_path_ready()
    eps_std = math.sqrt(1e-4)
    root, nxt, raw = pendulum_reference(ours, "observation", decay, eps_std)
    close(ours["next", "obs_n"], nxt)
    close(ours["obs_n"], root)
    close(ours["next", "reward"], pendulum_reference(ours, "reward", decay, eps_std)[1])
    assert torch.equal(ours["next", "observation"], raw["next", "observation"])
    # torchrl's float32 sums cancel where cos(theta) barely moves: compare where it is within 1e-6 of the truth
    for key, truth in ((("next", "obs_n"), nxt), ("obs_n", root)):
        close_where_sound(ours[key], theirs[key], truth)
    # the TensorDict path gives the same bits
    torch.manual_seed(0)
    env2 = TransformedEnv(GymEnv("Pendulum-v1"), VecNorm(in_keys=["observation", "reward"],
                                                          out_keys=["obs_n", "reward"], decay=decay))
    env2.set_seed(0)
    slow = env2._td_rollout(300, None, None, list(ours["action"]), True, False, False, None, False)
    assert_td_equal(slow, ours)


@pytest.mark.torchrl
@pytest.mark.parametrize("decay", [0.9, 0.9999, 1.0])
def test_vecnormv2_pendulum_renamed_vs_torchrl(trl, decay):
    """The VecNormV2 doc example (renamed out_keys): truth always, torchrl where it is sound (decay 1)."""
    keys = dict(in_keys=["observation", "reward"], out_keys=["observation_norm", "reward_norm"], decay=decay)
    theirs = pendulum_rollout(trl, trl.VecNormV2(**keys))[1]
    env, ours = pendulum_rollout(nt, VecNormV2(**keys))
    assert env._array_path_ready()
    root, nxt, raw = pendulum_reference(ours, "observation", decay, 1e-4)
    close(ours["next", "observation_norm"], nxt)
    close(ours["observation_norm"], root)
    close(ours["next", "reward_norm"], pendulum_reference(ours, "reward", decay, 1e-4)[1])
    assert torch.equal(ours["next", "reward"], raw["next", "reward"])
    if decay == 1.0:
        for key, truth in ((("next", "observation_norm"), nxt), ("observation_norm", root)):
            close_where_sound(ours[key], theirs[key], truth)
    else:  # torchrl's variance is var + decay**count * mean**2 here
        assert (theirs["next", "observation_norm"].double() - nxt).abs().max() > 0.1
    for spec in ("observation_spec", "reward_spec"):
        assert_spec_matches_torchrl(getattr(env, spec), getattr(trl.TransformedEnv(
            trl.GymEnv("Pendulum-v1"), trl.VecNormV2(**keys)), spec))
    check_env_specs(env, seed=0)


@pytest.mark.torchrl
def test_vecnorm_spec_matches_torchrl(trl):
    ours = TransformedEnv(GymEnv("Pendulum-v1"), VecNorm(in_keys=["observation"]))
    theirs = trl.TransformedEnv(trl.GymEnv("Pendulum-v1"), trl.VecNorm(in_keys=["observation"]))
    assert_spec_matches_torchrl(ours.observation_spec, theirs.observation_spec)
    assert_spec_matches_torchrl(ours.reward_spec, theirs.reward_spec)


@pytest.mark.torchrl
@pytest.mark.parametrize("decay", [0.9, 1.0])
def test_v2_serial_env_reduce_batch_dims(trl, decay):
    """VecNormV2 doc example on SerialEnv(2): one set of statistics for both sub-envs."""
    keys = dict(in_keys=["observation", "reward"], out_keys=["observation_norm", "reward_norm"],
                reduce_batch_dims=True, decay=decay)
    out = []
    for M in (trl, nt):
        torch.manual_seed(0)
        env = M.TransformedEnv(M.SerialEnv(2, [lambda M=M: M.GymEnv("Pendulum-v1")] * 2), M.VecNormV2(**keys))
        env.set_seed(0)
        out.append(env.rollout(30))
    theirs, ours = out
    assert torch.equal(ours["next", "observation"], theirs["next", "observation"])
    obs = [ours["observation"][:, 0].numpy()] + [ours["next", "observation"][:, t].numpy() for t in range(30)]
    truth = np.stack(ref_stream(obs, decay, 1e-4)[1:], axis=1)
    close(ours["next", "observation_norm"], truth)
    rew = np.stack(ref_stream([ours["next", "reward"][:, t].numpy() for t in range(30)], decay, 1e-4), axis=1)
    close(ours["next", "reward_norm"], rew)
    if decay == 1.0:
        close_where_sound(ours["next", "observation_norm"], theirs["next", "observation_norm"], truth)
        close(ours["next", "reward_norm"], theirs["next", "reward_norm"])
    assert ours.shape == (2, 30) and env.transform.loc["observation"].shape == (3,)


# ------------------------------------------------------------ random sequences
def _feed(t, xs, batch, torchrl_v2=False):
    outs = []
    for x in xs:
        td = TensorDict({"x": x}, batch)
        outs.append((t._step(TensorDict(batch_size=batch), td) if torchrl_v2 else t(td))["x"])
    return torch.stack(outs)


@pytest.mark.torchrl
@pytest.mark.parametrize("decay", [0.9, 0.999, 1.0])
@pytest.mark.parametrize("batch", [[], [4]])
def test_legacy_random_sequences_vs_torchrl(trl, decay, batch):
    torch.manual_seed(1)
    xs = torch.randn(200, *batch, 3) * torch.tensor([0.5, 2.0, 7.0])
    theirs = _feed(trl.VecNorm(in_keys=["x"], decay=decay), xs, batch)
    ours = _feed(VecNorm(in_keys=["x"], decay=decay), xs, batch)
    truth = np.stack(ref_stream([x.numpy().reshape(-1, 3) for x in xs], decay, 1e-2))
    close(ours.reshape(truth.shape), truth)
    close_where_sound(ours, theirs, truth, coverage=0.9)


@pytest.mark.torchrl
@pytest.mark.parametrize("decay", [0.9, 1.0])
@pytest.mark.parametrize("reduce", [False, True])
def test_v2_random_sequences_vs_torchrl_and_truth(trl, decay, reduce):
    torch.manual_seed(2)
    batch = [4] if reduce else []
    xs = torch.randn(300, *batch, 3) * 2 + torch.tensor([0.5, -1.0, 3.0])
    theirs = _feed(trl.VecNormV2(in_keys=["x"], decay=decay, reduce_batch_dims=reduce), xs, batch, True)
    ours = _feed(VecNormV2(in_keys=["x"], decay=decay, reduce_batch_dims=reduce), xs, batch)
    truth = np.stack(ref_stream([x.numpy().reshape(-1, 3) for x in xs], decay, 1e-4))
    close(ours.reshape(truth.shape), truth)
    if decay == 1.0:
        close_where_sound(ours, theirs, truth, coverage=0.9)
    elif not reduce:  # torchrl is sound once decay**count * mean**2 is negligible
        close(ours[250:], theirs[250:])
        assert (theirs[:5].double() - torch.from_numpy(truth[:5])).abs().max() > 1e-2


def test_large_mean_float32_stays_accurate():
    """mean 1e4, std 0.1, float32, 1e5 single steps, decay 1: the scale is within 1% of the true std.

    torchrl 0.14.1 on the same data (fed in batches of 1000, its sums are the
    same float32 sums): legacy VecNorm scale [0.0100, 0.0100] (its variance
    cancels to <= 0 and hits the sqrt(eps) floor); VecNormV2 scale [4.0, nan].
    """
    rng = np.random.default_rng(0)
    x = (1e4 + 0.1 * rng.standard_normal((100_000, 2))).astype(np.float32)
    t = VecNormV2(in_keys=["x"], decay=1.0)
    arrays = {}
    for row in x:
        arrays["x"] = row
        t._np_step(arrays)
    true_std = x.astype(np.float64).std(0)
    np.testing.assert_allclose(t.scale["x"].numpy(), true_std, rtol=1e-2)
    np.testing.assert_allclose(t.loc["x"].numpy(), x.astype(np.float64).mean(0), rtol=1e-7)
    z = arrays["x"]
    np.testing.assert_allclose(z, (x[-1] - x.astype(np.float64).mean(0)) / true_std, rtol=1e-2, atol=1e-2)


@pytest.mark.torchrl
def test_large_mean_torchrl_figure(trl):
    """Record torchrl's result on the large-mean data (fed in batches): not within 1% of the true std."""
    rng = np.random.default_rng(0)
    x = torch.from_numpy((1e4 + 0.1 * rng.standard_normal((100_000, 2))).astype(np.float32))
    legacy = trl.VecNorm(in_keys=["x"], decay=1.0)
    for i in range(100):
        legacy(TensorDict({"x": x[i * 1000:(i + 1) * 1000]}, [1000]))
    scale = legacy.to_observation_norm().scale
    print(f"torchrl 0.14.1 legacy VecNorm scale {scale.tolist()} vs true std {x.double().std(0).tolist()}")
    assert not torch.allclose(scale.double(), x.double().std(0), rtol=1e-2)


@pytest.mark.parametrize("cls", [VecNorm, VecNormV2])
def test_batch_merged_equals_one_by_one_equals_numpy(cls):
    rng = np.random.default_rng(3)
    x = rng.normal(5.0, 2.0, size=(1000, 5))
    kw = dict(reduce_batch_dims=True) if cls is VecNormV2 else {}
    whole, single = cls(in_keys=["x"], decay=1.0, **kw), cls(in_keys=["x"], decay=1.0, **kw)
    whole(TensorDict({"x": torch.from_numpy(x)}, [1000]))
    for row in x:
        single(TensorDict({"x": torch.from_numpy(row)[None]}, [1]))
    for t in (whole, single):
        s = {k.split("_")[-1] if cls is VecNorm else k.split(".")[0]: v for k, v in t.get_extra_state().items()}
        assert s["count"].item() == 1000
        np.testing.assert_allclose(s["loc"].numpy(), x.mean(0), rtol=1e-6)
        np.testing.assert_allclose((s["m2"] / s["weight"]).numpy(), x.var(0), rtol=1e-6)


# ------------------------------------------------------------------ state dicts
@pytest.mark.parametrize("make", [lambda: VecNorm(in_keys=["obs", ("n", "r")], decay=0.99),
                                  lambda: VecNormV2(in_keys=["obs", ("n", "r")], decay=0.99)])
def test_state_dict_round_trip_exact_and_weights_only(make, tmp_path):
    torch.manual_seed(0)
    t = make()
    for _ in range(20):
        t(TensorDict({"obs": torch.randn(3) * 5 + 2, "n": {"r": torch.randn(1)}}, []))
    sd = t.state_dict()
    torch.save(sd, tmp_path / "vn.pt")
    loaded = torch.load(tmp_path / "vn.pt", weights_only=True)
    fresh = make()
    fresh.load_state_dict(loaded)
    for k, v in t.get_extra_state().items():
        other = fresh.get_extra_state()[k]
        torchrl_copy = k.endswith(("_sum", "_ssq", "_count"))  # VecNorm: TorchRL's entries, in its dtypes
        assert (torchrl_copy or v.dtype in (torch.float64, torch.int64)) and torch.equal(v, other), k
    td = TensorDict({"obs": torch.randn(3), "n": {"r": torch.randn(1)}}, [])
    assert_td_equal(t(td.clone()), fresh(td.clone()))


@pytest.mark.torchrl
@pytest.mark.parametrize("decay", [1.0, 0.9])
def test_torchrl_v2_state_dict_both_ways(trl, decay):
    torch.manual_seed(4)
    xs, ys = torch.randn(40, 3) * 3 + 1, torch.randn(6, 3) * 3 + 1
    theirs = trl.VecNormV2(in_keys=["x"], decay=decay)
    _feed(theirs, xs[:7], [], True)  # count 7: decay**count not negligible, converted as torchrl normalizes
    ours = VecNormV2(in_keys=["x"], decay=decay)
    ours.load_state_dict(theirs.state_dict())
    theirs.freeze(), ours.freeze()
    close(_feed(ours, ys, []), _feed(theirs, ys, [], True))
    ours.unfreeze()
    _feed(ours, xs, [])
    back = trl.VecNormV2(in_keys=["x"], decay=decay)
    back.load_state_dict(ours.to_torchrl_state_dict())
    back.freeze(), ours.freeze()
    close(_feed(back, ys, [], True), _feed(ours, ys, []))


@pytest.mark.torchrl
@pytest.mark.parametrize("decay", [1.0, 0.99])
def test_torchrl_legacy_state_dict_both_ways(trl, decay):
    torch.manual_seed(5)
    xs, ys = torch.randn(50, 2, 3) * 2, torch.randn(5, 2, 3) * 2
    theirs = trl.VecNorm(in_keys=["x"], decay=decay)
    _feed(theirs, xs, [2])
    ours = VecNorm(in_keys=["x"], decay=decay)
    ours.load_state_dict(theirs.state_dict())
    close(_feed(ours, ys, [2]), _feed(theirs, ys, [2]))
    back = trl.VecNorm(in_keys=["x"], decay=decay)
    back.load_state_dict(ours.to_torchrl_state_dict())
    close(_feed(back, ys, [2]), _feed(ours, ys, [2]))


def test_unknown_state_entries_are_refused():
    t = VecNormV2(in_keys=["x"])
    with pytest.raises(ValueError, match=r"state entries \['loc.-\|-.y'\] match none of the in_keys"):
        t.set_extra_state({"loc.-|-.y": torch.zeros(1)})


# ------------------------------------------------------------ robustness
@pytest.mark.parametrize("cls", [VecNorm, VecNormV2])
def test_constant_feature_is_finite(cls):
    t = cls(in_keys=["x"], decay=1.0)
    for v in range(5):
        out = t(TensorDict({"x": torch.tensor([3.0, float(v)])}, []))["x"]
    assert torch.isfinite(out).all() and out[0] == 0
    floor = math.sqrt(1e-4) if cls is VecNorm else 1e-4
    assert t.to_observation_norm().scale[0].item() == pytest.approx(floor)


@pytest.mark.parametrize("cls", [VecNorm, VecNormV2])
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nonfinite_raise_and_skip(cls, bad):
    good = TensorDict({"obs": torch.tensor([1.0, 2.0])}, [])
    t = cls(in_keys=["obs"], decay=0.9)
    t(good.clone())
    before = t.get_extra_state()
    with pytest.raises(NonFiniteError, match=r"'obs' holds NaN or inf; statistics left unchanged"):
        t(TensorDict({"obs": torch.tensor([bad, 2.0])}, []))
    with pytest.raises(ValueError, match="nonfinite='skip'"):
        t._np_step({"obs": np.array([3.0, bad], dtype=np.float32)})
    assert all(torch.equal(v, t.get_extra_state()[k]) for k, v in before.items())
    skip = cls(in_keys=["obs"], decay=0.9, nonfinite="skip")
    skip(good.clone())
    out = skip(TensorDict({"obs": torch.tensor([bad, 2.0])}, []))["obs"]
    assert not torch.isfinite(out).all()
    assert all(torch.equal(v, skip.get_extra_state()[k]) for k, v in before.items())


def test_missing_key_raises_at_step_and_is_skipped_at_reset():
    t = VecNorm(in_keys=["observation", "reward"])
    out = t._reset(None, TensorDict({"observation": torch.ones(3)}, []))
    assert "reward" not in out.keys()
    with pytest.raises(KeyError, match="'reward' not found"):
        t(TensorDict({"observation": torch.ones(3)}, []))


# ------------------------------------------------------------ VecNormV2 API
def test_v2_freeze_clone_frozen_copy_loc_scale():
    t = VecNormV2(in_keys=["x"], decay=1.0)
    with pytest.raises(ValueError, match="no statistics for 'x' yet"):
        t.loc
    for v in (1.0, 3.0):
        t(TensorDict({"x": torch.tensor([v])}, []))
    frozen, clone = t.frozen_copy(), t.clone()
    assert frozen.frozen and not t.frozen and frozen.standard_normal
    t(TensorDict({"x": torch.tensor([8.0])}, []))
    assert frozen.loc["x"].item() == 2.0 and clone.loc["x"].item() == 2.0 and t.loc["x"].item() == 4.0
    assert frozen(TensorDict({"x": torch.tensor([4.0])}, []))["x"].item() == 2.0
    assert frozen.loc["x"].item() == 2.0
    assert t.freeze() is t and t.unfreeze() is t
    assert t.scale["x"].dtype == torch.float32


def test_v2_int_and_bounded_specs_become_float_unbounded():
    t = VecNormV2(in_keys=["a", "b", "c"], out_keys=["a2", "b", "c"])
    spec = Composite(a=Bounded(0, 4, shape=(2,), dtype=torch.int64), b=Unbounded(shape=(3,), dtype=torch.int32),
                     c=Bounded(-1.0, 1.0, shape=(2,), dtype=torch.float64))
    out = t.transform_observation_spec(spec.clone())
    assert type(out["a"]).__name__ == "BoundedDiscrete"  # the input stays
    assert type(out["a2"]).__name__ == "UnboundedContinuous" and out["a2"].dtype == torch.float32
    assert out["b"].dtype == torch.float32 and out["c"].dtype == torch.float64
    assert type(out["c"]).__name__ == "UnboundedContinuous"
    td = t(TensorDict({"a": torch.tensor([1, 2]), "b": torch.tensor([1, 2, 3], dtype=torch.int32),
                       "c": torch.ones(2, dtype=torch.float64)}, []))
    assert td["a2"].dtype == torch.float32 and td["b"].dtype == torch.float32 and td["c"].dtype == torch.float64
    t2 = VecNormV2(in_keys=["k"])
    assert t2.transform_observation_spec(Composite(k=Categorical(4))).get("k").dtype == torch.float32


def test_v2_stateless_stacked_matches_stateful():
    keys = dict(in_keys=["observation"], decay=0.99)
    a, b = VecNormV2(stateful=False, **keys), VecNormV2(in_keys=["reward"], stateful=False)
    assert a.prefix != b.prefix
    env = TransformedEnv(GymEnv("Pendulum-v1"), Compose(a, b))
    assert not env._array_path_ready()
    check_env_specs(env, seed=0)
    env.set_seed(0)
    td = env.rollout(50, break_when_any_done=False)
    assert td["next", f"{a.prefix}_count", "observation"][-1, 0].item() == 51  # the reset and 50 steps
    assert td["next", f"{b.prefix}_count", "reward"][-1, 0].item() == 50
    ref_env = TransformedEnv(GymEnv("Pendulum-v1"), Compose(VecNormV2(**keys), VecNormV2(in_keys=["reward"])))
    ref_env.set_seed(0)
    ref = ref_env.rollout(50, actions=list(td["action"]), break_when_any_done=False)
    close(td["next", "observation"], ref["next", "observation"])
    close(td["next", "reward"], ref["next", "reward"])
    with pytest.raises(ValueError, match="stateless mode holds no statistics"):
        a.loc


# ------------------------------------------------------------ array path
@pytest.mark.parametrize("make", [lambda: VecNorm(in_keys=["observation", "reward"], decay=0.95),
                                  lambda: VecNormV2(in_keys=["observation", "reward"], out_keys=["o", "r"]),
                                  lambda: Compose(ObservationNorm(loc=torch.tensor([0.1, -0.2, 0.3]), scale=2.0,
                                                                  in_keys=["observation"]),
                                                  ObservationNorm(loc=0.5, scale=0.25, in_keys=["reward"],
                                                                  in_keys_inv=["action"], standard_normal=True))])
def test_array_path_equals_tensordict_path(make):
    env = TransformedEnv(GymEnv("Pendulum-v1"), make())
    assert env._array_path_ready()
    env.set_seed(3)
    fast = env.rollout(250, break_when_any_done=False)
    env2 = TransformedEnv(GymEnv("Pendulum-v1"), make())
    env2.set_seed(3)
    slow = env2._td_rollout(250, None, None, list(fast["action"]), True, False, False, None, False)
    assert_td_equal(fast, slow)
    assert_td_equal(env.transform.state_dict(), env2.transform.state_dict())


def test_pickle_and_clone_keep_statistics():
    import pickle

    t = VecNorm(in_keys=["x"], decay=1.0)
    t(TensorDict({"x": torch.tensor([[1.0], [3.0]])}, [2]))
    for other in (pickle.loads(pickle.dumps(t)), t.clone()):
        assert_td_equal(TensorDict(other.get_extra_state()), TensorDict(t.get_extra_state()))
        other(TensorDict({"x": torch.tensor([[9.0]])}, [1]))
        assert t.get_extra_state()["x_count"].item() == 2


@pytest.mark.torchrl
def test_v2_denorm_recovers_the_last_batch_and_matches_torchrl(trl):
    """Update then normalize: the last batch's statistics are the current ones, so denorm gives the batch back."""
    g = torch.Generator().manual_seed(3)
    batches = [torch.randn(8, 3, generator=g) * torch.tensor([1.0, 5.0, 0.1]) + torch.tensor([2.0, -7.0, 30.0])
               for _ in range(4)]
    keys = dict(in_keys=["x"], out_keys=["x_n"], decay=1.0)
    ours, theirs = VecNormV2(**keys), trl.VecNormV2(**keys)
    for batch in batches:
        out = ours(TensorDict({"x": batch}, [8]))
        their_out = theirs._step(TensorDict(batch_size=[8]), TensorDict({"x": batch}, [8]))  # torchrl: no forward
    normalized = out.exclude("x")
    back = ours.denorm(normalized)
    assert "x" not in normalized.keys() and back is not normalized
    close(back["x"], batches[-1], rtol=1e-5, atol=1e-5)
    close(back["x"], theirs.denorm(their_out.exclude("x"))["x"], rtol=1e-4, atol=1e-4)
    assert "x" not in ours.denorm(TensorDict({"other": torch.zeros(2)}, [2])).keys()  # absent out_keys are skipped
    with pytest.raises(RuntimeError, match=r"VecNormV2.denorm: no statistics for 'x' yet"):
        VecNormV2(**keys).denorm(normalized)
    with pytest.raises(NotImplementedError, match="denorm needs stateful=True"):
        VecNormV2(in_keys=["x"], stateful=False).denorm(normalized)


def test_vecnormv2_first_batch_without_samples_names_class_and_key():
    t = nt.VecNormV2(in_keys=["obs"])
    with pytest.raises(ValueError, match=r"VecNormV2: key 'obs': the first data seen has shape \(0, 3\), which gives "
                                         r"statistics of shape \(0, 3\) with no elements; send a non-empty batch"):
        t(TensorDict({"obs": torch.zeros(0, 3)}, [0]))
    out = t(TensorDict({"obs": torch.ones(2, 3)}, [2]))["obs"]  # nothing was set by the refused batch
    assert out.shape == (2, 3) and torch.isfinite(out).all()


@pytest.mark.parametrize("cls", ["VecNorm", "VecNormV2"])
def test_eval_mode_keeps_updating_and_freeze_stops_like_torchrl(cls):
    t = getattr(nt, cls)(in_keys=["x"], decay=1.0)
    t.eval()  # TransformedEnv puts its transforms in eval mode; TorchRL 0.14.1 keeps updating there
    t(TensorDict({"x": torch.tensor([1.0, 2.0])}, []))
    t(TensorDict({"x": torch.tensor([3.0, 2.0])}, []))
    frozen = t.frozen_copy()
    assert frozen.frozen and not t.frozen
    before = frozen(TensorDict({"x": torch.tensor([5.0, 2.0])}, []))["x"]
    again = frozen(TensorDict({"x": torch.tensor([5.0, 2.0])}, []))["x"]
    torch.testing.assert_close(before, again)  # a frozen copy does not move
    # mean of (1, 3) is 2 and the variance 1: (5 - 2) / sqrt(1 + eps) for VecNorm (eps on the variance)
    assert abs(float(before[0]) - 3.0) < 1e-3
    t.freeze()
    t(TensorDict({"x": torch.tensor([100.0, 2.0])}, []))
    t.unfreeze()  # the 100 was not taken in: now (1, 3, 5) have mean 3 and variance 8/3
    out = float(t(TensorDict({"x": torch.tensor([5.0, 2.0])}, []))["x"][0])
    assert abs(out - 2.0 / math.sqrt(8.0 / 3.0)) < 1e-3


def test_new_api_keywords_go_to_vecnormv2_and_legacy_refuses_them():
    v = nt.VecNorm(in_keys=["observation"], stateful=False, new_api=True)
    assert type(v).__name__ == "VecNormV2" and v.stateful is False
    with pytest.raises(TypeError, match=r"VecNorm got \['stateful'\], which only VecNorm\(new_api=True\)"):
        nt.VecNorm(in_keys=["x"], stateful=False)


@pytest.mark.parametrize("cls", ["VecNorm", "VecNormV2"])
def test_loc_scale_denorm_and_frozen_copy_need_statistics(cls):
    t = getattr(nt, cls)(in_keys=["a"], out_keys=["a_norm"], decay=1.0)
    with pytest.raises(RuntimeError, match="Make sure the VecNorm has been initialized") as info:
        t.frozen_copy()
    assert isinstance(info.value, ValueError)
    with pytest.raises(RuntimeError, match="must be initialized before calling denorm|no statistics for 'a' yet"):
        t.denorm(TensorDict({"a_norm": torch.zeros(2)}, []))
    x = torch.tensor([[1.0, -2.0], [3.0, 6.0], [5.0, 1.0]])
    out = t(TensorDict({"a": x}, [3]))
    if cls == "VecNormV2":  # per-env statistics unless reduce_batch_dims: compare on one row
        return
    want_loc = x.double().mean(0)
    want_scale = x.double().var(0, unbiased=False).sqrt()
    torch.testing.assert_close(t.loc["a"].double(), want_loc, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(t.scale["a"].double(), want_scale, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(t.denorm(out)["a"], x, rtol=1e-5, atol=1e-5)
