"""Reward2GoTransform: returns-to-go of stored trajectories against torchrl 0.14.1 and an exact reference,
open ends, layouts and keys, and refusal inside an env.
"""
import pickle
import warnings

import numpy as np
import pytest
import torch
from tensordict import TensorDict

from compare import assert_spec_matches_torchrl, assert_td_equal
from naive_returns import naive_reward_to_go
from numbarl import torch_api as N

warnings.filterwarnings("ignore", category=DeprecationWarning)

STEPS = 80
SPEC_PARTS = ("full_observation_spec", "full_reward_spec", "full_done_spec", "full_state_spec",
              "full_action_spec")


# ----------------------------------------------------------- Reward2Go
def stored(n_batch=4, n_steps=300, seed=0, p_done=0.03, open_rows=()):
    g = torch.Generator().manual_seed(seed)
    reward = torch.randn(n_batch, n_steps, 1, generator=g)
    done = torch.rand(n_batch, n_steps, 1, generator=g) < p_done
    done[:, -1] = True
    for row in open_rows:
        done[row, -1] = False
    return TensorDict({"next": {"reward": reward, "done": done}}, [n_batch, n_steps])


def torchrl_tolerance(td, gamma):
    """TorchRL cuts its kernel at gamma**k < 1e-7: error <= 1e-7 max|r| / (gamma (1 - gamma)), plus float32."""
    max_r = td["next", "reward"].abs().max().item()
    cut = 0.0 if gamma in (0.0, 1.0) else 1e-7 * max_r / (gamma * (1 - gamma))
    return cut + 1e-5 * max_r / max(1 - gamma, 1e-2)


@pytest.mark.torchrl
@pytest.mark.parametrize("gamma", [0.5, 0.9, 0.99, 1.0])
def test_reward2go_matches_torchrl_and_exact_reference(torchrl, gamma):
    import torchrl.envs as T

    td = stored()
    ours = N.Reward2GoTransform(gamma, out_keys=["r2g"]).inv(td.clone())
    theirs = T.Reward2GoTransform(gamma, out_keys=["r2g"]).inv(td.clone())
    assert set(ours.keys(True, True)) == set(theirs.keys(True, True))
    assert ours["r2g"].dtype == theirs["r2g"].dtype == torch.float32
    tol = torchrl_tolerance(td, gamma)
    torch.testing.assert_close(ours["r2g"], theirs["r2g"], atol=tol, rtol=0)
    exact = naive_reward_to_go(td["next", "reward"].numpy(), td["next", "done"].numpy(), gamma)
    np.testing.assert_allclose(ours["r2g"].numpy(), exact, rtol=1e-6, atol=1e-5)


@pytest.mark.torchrl
def test_reward2go_time_is_the_rewards_second_to_last_dim_like_torchrl(torchrl):
    """A [B] tensordict holding [B, T, 1] rewards: the scan runs over T (TorchRL's time_dim=-2), not over B."""
    import torchrl.envs as T

    full = stored(n_batch=3, n_steps=40, seed=5, p_done=0.1)
    td = TensorDict({"next": {"reward": full["next", "reward"], "done": full["next", "done"]}}, [3])
    ours = N.Reward2GoTransform(0.9, out_keys=["r2g"]).inv(td.clone())
    theirs = T.Reward2GoTransform(0.9, out_keys=["r2g"]).inv(td.clone())
    torch.testing.assert_close(ours["r2g"], theirs["r2g"], atol=torchrl_tolerance(full, 0.9), rtol=0)
    exact = naive_reward_to_go(full["next", "reward"].numpy(), full["next", "done"].numpy(), 0.9)
    np.testing.assert_allclose(ours["r2g"].numpy(), exact, rtol=1e-6, atol=1e-5)
    with pytest.raises(ValueError, match=r"shape \[\.\.\., T, 1\]"):
        flat = {"next": {"reward": torch.ones(5), "done": torch.ones(5, dtype=torch.bool)}}
        N.Reward2GoTransform(0.9).inv(TensorDict(flat, [5]))


@pytest.mark.torchrl
def test_reward2go_open_ends_like_torchrl(torchrl):
    import torchrl.envs as T

    td = stored(open_rows=(1, 3))  # rows 1 and 3 have dones, but not at their last step
    tol = torchrl_tolerance(td, 0.9)
    ours = N.Reward2GoTransform(0.9, out_keys=["r2g"]).inv(td.clone())
    theirs = T.Reward2GoTransform(0.9, out_keys=["r2g"]).inv(td.clone())
    torch.testing.assert_close(ours["r2g"], theirs["r2g"], atol=tol, rtol=0)
    truncated = N.Reward2GoTransform(0.9, out_keys=["r2g"], open_end="truncate").inv(td.clone())
    closed = td.clone()
    closed["next", "done"][:, -1] = True
    assert torch.equal(truncated["r2g"], N.Reward2GoTransform(0.9, out_keys=["r2g"]).inv(closed)["r2g"])
    with pytest.raises(ValueError, match="2 of 4 trajectories open"):
        N.Reward2GoTransform(0.9, open_end="error").inv(td.clone())

    never = td.clone()
    never["next", "done"][2] = False  # a trajectory without any done
    with pytest.raises(RuntimeError, match="No episode ends found"):
        T.Reward2GoTransform(0.9).inv(never.clone())
    with pytest.raises(ValueError, match=r"1 of 4 trajectories have no done at all \(first at index \(2, 0\)"):
        N.Reward2GoTransform(0.9).inv(never.clone())
    cut = N.Reward2GoTransform(0.9, out_keys=["r2g"], open_end="truncate").inv(never.clone())["r2g"]
    exact = naive_reward_to_go(never["next", "reward"].numpy(), never["next", "done"].numpy(), 0.9)
    np.testing.assert_allclose(cut.numpy(), exact, rtol=1e-6, atol=1e-5)


def test_reward2go_layouts_and_keys():
    td = stored(n_batch=2, n_steps=6)
    flat = N.Reward2GoTransform(0.5).inv(td[1].clone())  # one trajectory, batch [T]
    full = N.Reward2GoTransform(0.5).inv(td.clone())  # in place of ("next", "reward")
    assert torch.equal(flat["next", "reward"], full["next", "reward"][1])
    named = td.clone().transpose(0, 1)
    named = TensorDict({"next": {"reward": td["next", "reward"].transpose(0, 1),
                                 "done": td["next", "done"].transpose(0, 1)}}, [6, 2], names=["time", None])
    by_name = N.Reward2GoTransform(0.5, out_keys=["g"]).inv(named)["g"].transpose(0, 1)
    assert torch.equal(by_name, full["next", "reward"])
    nested = TensorDict({"next": {"reward": td["next", "reward"], "agent": {"done": td["next", "done"]}}}, [2, 6])
    out = N.Reward2GoTransform(0.5, out_keys=[("next", "g")], done_key=("agent", "done")).inv(nested)
    assert torch.equal(out["next", "g"], full["next", "reward"])
    t = N.Reward2GoTransform(0.5)
    assert t.in_keys == [("next", "reward")] and t.out_keys == [] and t.out_keys_inv == [("next", "reward")]
    assert t(td.clone())["next", "reward"].equal(td["next", "reward"])  # forward is the identity


def test_reward2go_truncated_entry_ends_episodes_and_gamma_zero():
    td = stored(n_batch=1, n_steps=5, p_done=0.0)
    td["next", "truncated"] = torch.zeros(1, 5, 1, dtype=torch.bool)
    td["next", "truncated"][0, 1] = True
    td["next", "reward"] = torch.ones(1, 5, 1)
    out = N.Reward2GoTransform(1.0, out_keys=["g"]).inv(td.clone())["g"].squeeze()
    assert out.tolist() == [2.0, 1.0, 3.0, 2.0, 1.0]
    out = N.Reward2GoTransform(1.0, out_keys=["g"], truncated_key=None).inv(td.clone())["g"].squeeze()
    assert out.tolist() == [5.0, 4.0, 3.0, 2.0, 1.0]
    out = N.Reward2GoTransform(0.0, out_keys=["g"]).inv(td.clone())["g"]
    assert torch.equal(out, td["next", "reward"])


@pytest.mark.torchrl
def test_reward2go_refuses_envs_like_torchrl(torchrl):
    import torchrl.envs as T

    with pytest.raises(ValueError, match="only an inverse transform"):
        T.TransformedEnv(T.GymEnv("Pendulum-v1")).append_transform(T.Reward2GoTransform(0.9))
    env = N.TransformedEnv(N.GymEnv("Pendulum-v1"))
    with pytest.raises(ValueError, match="only an inverse transform"):
        env.append_transform(N.Reward2GoTransform(0.9))
    assert len(env.transform) == 0 and env.rollout(2).shape == (2,)  # the env is left as it was
    with pytest.raises(ValueError, match="only an inverse transform"):  # at construction, as TorchRL
        T.TransformedEnv(T.GymEnv("Pendulum-v1"), T.Reward2GoTransform(0.9))
    with pytest.raises(ValueError, match="only an inverse transform"):
        N.TransformedEnv(N.GymEnv("Pendulum-v1"), N.Reward2GoTransform(0.9))
    N.Compose(N.Reward2GoTransform(0.9))  # outside an env it is fine


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.float16, torch.bfloat16])
def test_reward2go_other_reward_dtypes_computed_in_float_and_given_back(dtype):
    reward = (torch.arange(14).view(2, 7, 1) * 3 - 10).to(dtype)
    done = torch.zeros(2, 7, 1, dtype=torch.bool)
    done[:, -1] = True
    done[0, 3] = True
    td = TensorDict({"next": {"reward": reward, "done": done}}, [2, 7])
    out = N.Reward2GoTransform(gamma=0.9, out_keys=["rtg"]).inv(td)["rtg"]
    assert out.dtype == dtype
    want = naive_reward_to_go(reward.double().numpy(), done.numpy(), 0.9)
    if dtype.is_floating_point:  # computed in float32, rounded once to the reward's dtype
        np.testing.assert_allclose(out.double().numpy(), want, rtol=1e-2)
    else:  # computed in float64, truncated toward zero like a cast
        np.testing.assert_array_equal(out.numpy(), np.trunc(want).astype(out.numpy().dtype))


def test_reward2go_key_and_dtype_errors_name_the_arguments():
    with pytest.raises(ValueError, match=r"Reward2GoTransform requires one out_key per in_key, got in_keys=.*'r2'.*"
                                         r"out_keys=\['x'\]"):
        N.Reward2GoTransform(in_keys=["reward", "r2"], out_keys=["x"])


def test_env_error_and_missing_reward_say_torchrl_words(torchrl):
    import torchrl.envs as tr_envs

    assert N.Reward2GoTransform.ENV_ERR == tr_envs.Reward2GoTransform.ENV_ERR
    with pytest.raises(ValueError, match=N.Reward2GoTransform.ENV_ERR):
        N.TransformedEnv(N.GymEnv("Pendulum-v1"), N.Reward2GoTransform())
    td = TensorDict({"misc": torch.zeros(4, 1), "next": {"done": torch.ones(4, 1, dtype=torch.bool)}}, [4])
    with pytest.raises(KeyError, match="Could not find"):
        tr_envs.Reward2GoTransform().inv(td.clone())
    with pytest.raises(KeyError, match="Reward2GoTransform: Could not find .*reward"):
        N.Reward2GoTransform().inv(td.clone())
