"""ObservationNorm: the doc example, init_stats against torchrl 0.14.1, several rollouts, inverse specs,
constant data, errors before the statistics exist, reduce / keep dims, state dicts.
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


# ------------------------------------------------------------ ObservationNorm
def test_observation_norm_doc_example():
    r = torch.randn(100, 3, dtype=torch.float64) * torch.randn(3, dtype=torch.float64) + 1.0
    td = TensorDict({"obs": r}, [100])
    t = ObservationNorm(loc=r.mean(0), scale=r.std(0), in_keys=["obs"], out_keys=["next_obs"], standard_normal=True)
    t(td)
    assert torch.allclose(td["next_obs"].mean(0), torch.zeros(3, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(td["next_obs"].std(0), torch.ones(3, dtype=torch.float64))


@pytest.mark.torchrl
@pytest.mark.parametrize("standard_normal", [False, True])
def test_observation_norm_init_stats_vs_torchrl(trl, standard_normal):
    """The ObservationNorm doc example (init_stats(100) on Pendulum-v1)."""
    num_iter = 100
    out = []
    for M in (trl, nt):
        torch.manual_seed(0)
        env = M.TransformedEnv(M.GymEnv("Pendulum-v1"), M.ObservationNorm(in_keys=["observation"],
                                                                         standard_normal=standard_normal))
        env.set_seed(0)
        t = env.transform  # a single transform is env.transform itself, in both libraries
        t.init_stats(num_iter)
        out.append((t.loc, t.scale, env.rollout(20)))
    (la, sa, ra), (lb, sb, rb) = out
    close(lb, la), close(sb, sa)
    close(rb["next", "observation"], ra["next", "observation"], rtol=1e-5, atol=1e-4)
    kw = dict(loc=la, scale=sa, in_keys=["observation"], standard_normal=standard_normal)
    theirs = trl.TransformedEnv(trl.GymEnv("Pendulum-v1"), trl.ObservationNorm(**kw))
    assert_spec_matches_torchrl(TransformedEnv(GymEnv("Pendulum-v1"), ObservationNorm(**kw)).observation_spec,
                                theirs.observation_spec)


def test_observation_norm_init_stats_several_rollouts():
    """init_stats(250) on 200-step episodes: two rollouts, 400 root observations."""
    env = TransformedEnv(GymEnv("Pendulum-v1"), ObservationNorm(in_keys=["observation"], standard_normal=True))
    torch.manual_seed(0)
    env.set_seed(0)
    env.transform.init_stats(250)
    raw = GymEnv("Pendulum-v1")
    torch.manual_seed(0)
    raw.set_seed(0)
    data = torch.cat([raw.rollout(250)["observation"], raw.rollout(250)["observation"]])
    assert data.shape[0] == 400
    close(env.transform.loc, data.mean(0))
    close(env.transform.scale, data.std(0))


@pytest.mark.torchrl
def test_observation_norm_inverse_spec_vs_torchrl(trl):
    for sn in (False, True):
        kw = dict(loc=1.0, scale=2.0, in_keys=["observation"], in_keys_inv=["action"], out_keys_inv=["a2"],
                  standard_normal=sn)
        ours = TransformedEnv(GymEnv("Pendulum-v1"), ObservationNorm(**kw))
        theirs = trl.TransformedEnv(trl.GymEnv("Pendulum-v1"), trl.ObservationNorm(**kw))
        assert_spec_matches_torchrl(ours.full_action_spec, theirs.full_action_spec)
        assert_spec_matches_torchrl(ours.observation_spec, theirs.observation_spec)


class ConstantEnv(EnvBase):
    """Observations that never change."""

    def __init__(self):
        super().__init__()
        self.observation_spec = Composite(observation=Unbounded((3,)))
        self.action_spec = Bounded(-1.0, 1.0, (1,))
        self.reward_spec = Unbounded((1,))

    def _reset(self, td):
        return TensorDict({"observation": torch.tensor([5.0, 1.0, 0.0])}, [])

    def _step(self, td):
        return TensorDict({"observation": torch.tensor([5.0, 1.0, 0.0]), "reward": torch.zeros(1),
                           "done": torch.zeros(1, dtype=torch.bool)}, [])

    def _set_seed(self, seed):
        pass


@pytest.mark.parametrize("standard_normal", [False, True])
def test_observation_norm_init_stats_constant_data_is_finite(standard_normal):
    env = TransformedEnv(ConstantEnv(), ObservationNorm(in_keys=["observation"], standard_normal=standard_normal))
    env.transform.init_stats(10)
    assert torch.allclose(env.transform.scale, torch.full((3,), 1e-6 if standard_normal else 1e6))
    out = env.rollout(3)["next", "observation"]
    assert torch.isfinite(out).all() and (out == 0).all()


def test_observation_norm_errors_before_stats():
    env = TransformedEnv(GymEnv("Pendulum-v1"), ObservationNorm(in_keys=["observation"]))
    msg = "Loc/Scale have not been initialized. Either pass in values in the constructor or call the init_stats method"
    with pytest.raises(RuntimeError, match=msg):
        env.rollout(2)
    with pytest.raises(RuntimeError, match=msg):
        env.transform(TensorDict({"observation": torch.ones(3)}, []))
    with pytest.raises(RuntimeError, match=msg):
        env.observation_spec
    env.transform.init_stats(5)
    with pytest.raises(RuntimeError, match="Loc/Scale are already initialized"):
        env.transform.init_stats(5)
    with pytest.raises(ValueError, match="requires the transform to be in a TransformedEnv"):
        ObservationNorm(in_keys=["x"]).init_stats(3)
    t = TransformedEnv(GymEnv("Pendulum-v1"), ObservationNorm(in_keys=["observation"])).transform
    with pytest.raises(ValueError, match="cat_dim to be part of or equal to reduce_dim"):
        t.init_stats(5, reduce_dim=0, cat_dim=1)
    with pytest.raises(ValueError, match="num_iter as an int >= 1"):
        t.init_stats(0)


def test_observation_norm_reduce_and_keep_dims():
    env = TransformedEnv(GymEnv("Pendulum-v1"), ObservationNorm(in_keys=["observation"], standard_normal=True))
    torch.manual_seed(0)
    env.set_seed(0)
    env.transform.init_stats(50, reduce_dim=(0, 1), cat_dim=0, keep_dims=(1,))
    torch.manual_seed(0)
    raw = GymEnv("Pendulum-v1")
    raw.set_seed(0)
    data = raw.rollout(50)["observation"]
    assert env.transform.loc.shape == (1,)
    close(env.transform.loc, data.mean().reshape(1))
    close(env.transform.scale, data.std().reshape(1))


def test_observation_norm_state_dict_into_uninitialized(tmp_path):
    t = ObservationNorm(loc=torch.tensor([1.0, 2.0]), scale=torch.tensor([3.0, 4.0]), in_keys=["x"])
    torch.save(t.state_dict(), tmp_path / "on.pt")
    fresh = ObservationNorm(in_keys=["x"])
    fresh.load_state_dict(torch.load(tmp_path / "on.pt", weights_only=True))
    assert fresh.initialized and torch.equal(fresh.loc, t.loc) and torch.equal(fresh.scale, t.scale)
    td = TensorDict({"x": torch.ones(2)}, [])
    assert_td_equal(fresh(td.clone()), t(td.clone()))


@pytest.mark.parametrize("kw,match", [
    (dict(loc=0.0, scale=0.0), "ObservationNorm requires scale with finite values > 0, got 0.0"),
    (dict(loc=0.0, scale=torch.tensor([1.0, -2.0])), r"ObservationNorm requires scale .*> 0, got \[-2.0\]"),
    (dict(loc=0.0, scale=float("nan")), "ObservationNorm requires scale"),
    (dict(loc=0.0, scale=float("inf")), "ObservationNorm requires scale"),
    (dict(loc=float("nan"), scale=1.0), "ObservationNorm requires loc with finite values"),
])
def test_bad_loc_scale_refused_at_construction(kw, match):
    with pytest.raises(ValueError, match=match):
        ObservationNorm(in_keys=["x"], **kw)


@pytest.mark.parametrize("fresh", [False, True])
def test_bad_scale_refused_on_load_naming_the_entry(fresh):
    t = ObservationNorm(loc=torch.zeros(2), scale=torch.ones(2), in_keys=["x"])
    sd = t.state_dict()
    sd["scale"] = torch.tensor([1.0, 0.0])
    dst = ObservationNorm(in_keys=["x"]) if fresh else t
    with pytest.raises(ValueError, match="ObservationNorm.load_state_dict requires state entry 'scale'"):
        dst.load_state_dict(sd)
    if not fresh:
        assert torch.equal(t.scale, torch.ones(2))


def test_loc_shape_mismatch_names_the_key():
    from tensordict import TensorDict
    t = ObservationNorm(loc=torch.zeros(4), scale=torch.ones(4), in_keys=["x"])
    with pytest.raises(ValueError, match=r"ObservationNorm: in_keys \['x'\] holds data of shape \(3,\).*loc of shape"):
        t(TensorDict({"x": torch.ones(3)}, []))


def test_empty_and_duplicate_keys_refused():
    with pytest.raises(ValueError, match="ObservationNorm: in_keys must hold non-empty keys"):
        ObservationNorm(0.0, 1.0, in_keys=[""])
    with pytest.raises(ValueError, match="ObservationNorm requires distinct out_keys"):
        ObservationNorm(0.0, 1.0, in_keys=["a", "b"], out_keys=["c", "c"])


class NaNAfterTwoEnv(ConstantEnv):
    """Constant observations, then a NaN in the third step's observation."""

    def _reset(self, td):
        self._t = 0
        return super()._reset(td)

    def _step(self, td):
        self._t += 1
        out = super()._step(td)
        if self._t == 3:
            out["observation"][1] = float("nan")
        return out


def test_observation_norm_init_stats_on_nan_data_names_class_and_key_and_sets_nothing():
    env = TransformedEnv(NaNAfterTwoEnv(), ObservationNorm(in_keys=["observation"]))
    with pytest.raises(ValueError, match=r"ObservationNorm.init_stats: key 'observation' holds NaN or inf in the "
                                         r"rollout data") as info:
        env.transform.init_stats(5)
    assert isinstance(info.value, RuntimeError)  # TorchRL raises RuntimeError there
    assert env.transform.loc is None and env.transform.scale is None


@pytest.mark.parametrize("standard_normal", [True, False])
def test_leaf_observation_spec_matches_torchrl(trl, standard_normal):
    from torchrl import data as rl_data

    kw = dict(loc=torch.tensor(0.5), scale=torch.tensor(2.0), in_keys=["obs"], standard_normal=standard_normal)
    ours = ObservationNorm(**kw).transform_observation_spec(Bounded(0.0, 1.0, (3, 4, 4)))
    theirs = trl.ObservationNorm(**kw).transform_observation_spec(rl_data.Bounded(0.0, 1.0, (3, 4, 4)))
    assert_spec_matches_torchrl(ours, theirs)
    expected_low = -0.25 if standard_normal else 0.5
    assert torch.allclose(ours.low, torch.full((3, 4, 4), expected_low))


def test_init_stats_without_env_raises_torchrl_type(trl):
    for cls, exc in ((ObservationNorm, ValueError), (ObservationNorm, RuntimeError), (trl.ObservationNorm, RuntimeError)):
        with pytest.raises(exc, match="Cannot initialize the transform if parent env is not defined"):
            cls(in_keys=["observation"]).init_stats(num_iter=5)


def test_init_stats_argument_errors_match_torchrl(trl):
    for cls in (ObservationNorm, trl.ObservationNorm):
        t = cls(in_keys=["next_observation"], loc=0.0, scale=1.0)
        with pytest.raises(ValueError, match="cat_dim must be part of or equal to reduce_dim"):
            t.init_stats(num_iter=11, cat_dim=1)
        with pytest.raises(ValueError, match="cat_dim must be part of or equal to reduce_dim"):
            t.init_stats(num_iter=11, cat_dim=2, reduce_dim=(0, 1))
        with pytest.raises(ValueError, match="cat_dim must be specified if reduce_dim is not an integer"):
            t.init_stats(num_iter=11, reduce_dim=(0, 1))
        with pytest.raises(RuntimeError, match="Transform has multiple in_keys but no specific key was passed"):
            cls(in_keys=["a", "b"]).init_stats(num_iter=11)
