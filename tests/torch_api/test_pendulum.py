"""PendulumEnv (TorchRL's stateless pendulum): specs, dynamics, seeding, batches, and a differential test."""
import math

import pytest
import torch

from compare import assert_spec_matches_torchrl, assert_td_equal
from numbarl.torch_api import PendulumEnv, check_env_specs


def naive_step(th, thdot, u, g=10.0, m=1.0, length=1.0, dt=0.05, max_speed=8.0, max_torque=2.0):
    """One pendulum step written out in Python floats."""
    u = min(max(u, -max_torque), max_torque)
    norm = ((th + math.pi) % (2 * math.pi)) - math.pi
    cost = norm ** 2 + 0.1 * thdot ** 2 + 0.001 * u ** 2
    new_thdot = thdot + (3 * g / (2 * length) * math.sin(th) + 3.0 / (m * length ** 2) * u) * dt
    new_thdot = min(max(new_thdot, -max_speed), max_speed)
    new_th = ((th + new_thdot * dt + math.pi) % (2 * math.pi)) - math.pi
    return new_th, new_thdot, -cost


def test_specs_and_check_env_specs():
    env = PendulumEnv(seed=0)
    assert set(env.observation_spec.keys()) == {"th", "thdot", "params"}
    assert set(env.state_spec.keys()) == {"th", "thdot", "params"}
    assert env.action_spec.shape == (1,)
    assert float(env.action_spec.space.high) == 2.0 and float(env.observation_spec["thdot"].space.high) == 8.0
    assert env.reward_spec.shape == (1,)
    assert env.batch_locked is False
    check_env_specs(env)


def test_step_matches_the_written_out_dynamics():
    env = PendulumEnv(seed=1)
    td = env.reset()
    for u in (3.0, -0.5, 1.25):
        th, thdot = float(td["th"]), float(td["thdot"])
        td["action"] = torch.tensor([u])
        out = env.step(td)["next"]
        want = naive_step(th, thdot, u)
        assert out["th"].item() == pytest.approx(want[0], abs=1e-5)
        assert out["thdot"].item() == pytest.approx(want[1], abs=1e-5)
        assert out["reward"].item() == pytest.approx(want[2], abs=1e-5)
        assert not out["done"].any() and not out["terminated"].any()
        td = out.exclude("reward", "done", "terminated")


def test_seed_reproduces_and_reset_draws_in_range():
    a, b = PendulumEnv(seed=3), PendulumEnv(seed=3)
    assert_td_equal(a.reset(), b.reset())
    td = a.reset(a.gen_params(batch_size=[1000]))
    assert td["th"].shape == (1000,)
    assert td["th"].abs().max() <= math.pi and td["thdot"].abs().max() <= 1.0
    assert td["th"].std() > 1.0  # spread over [-pi, pi], not a constant


def test_batched_params_step_each_pendulum():
    env = PendulumEnv(seed=0)
    params = env.gen_params(batch_size=[3])
    params["params", "g"] = torch.tensor([9.81, 10.0, 3.7])
    td = env.reset(params)
    td["action"] = torch.tensor([[0.5], [-1.0], [2.0]])
    start = td.clone()
    out = env.step(td)["next"]
    for i in range(3):
        want = naive_step(float(start["th"][i]), float(start["thdot"][i]), float(start["action"][i]),
                          g=float(start["params", "g"][i]))
        assert out["thdot"][i].item() == pytest.approx(want[1], abs=1e-5)
    assert out["reward"].shape == (3, 1)


def test_set_state_keeps_the_given_state():
    env = PendulumEnv(seed=0)
    td = env.reset()
    td["th"] = torch.tensor(0.25)
    out = env.reset(td.clone(), set_state=True)
    assert out["th"].item() == 0.25


def test_bad_params():
    with pytest.raises(TypeError, match="gen_params"):
        PendulumEnv(td_params={"g": 1.0})


@pytest.mark.torchrl
def test_matches_torchrl(torchrl):
    from torchrl.envs import PendulumEnv as TPendulumEnv

    ours, theirs = PendulumEnv(seed=7), TPendulumEnv(seed=7)
    assert_spec_matches_torchrl(ours.observation_spec, theirs.observation_spec)
    assert_spec_matches_torchrl(ours.state_spec, theirs.state_spec)
    assert_spec_matches_torchrl(ours.action_spec, theirs.action_spec)
    assert_spec_matches_torchrl(ours.full_done_spec, theirs.full_done_spec)
    assert ours.batch_locked == theirs.batch_locked
    actions = torch.linspace(-3, 3, 12).reshape(12, 1)
    b_td = theirs.reset()
    a_td = ours.reset()
    assert_td_equal(a_td, b_td)
    for t in range(12):
        a_td["action"] = actions[t]
        b_td["action"] = actions[t]
        a_out, b_out = ours.step(a_td)["next"], theirs.step(b_td)["next"]
        assert_td_equal(a_out, b_out)
        a_td, b_td = a_out.exclude("reward"), b_out.exclude("reward")
    # a batch of pendulums given through the params
    a_b = ours.reset(ours.gen_params(batch_size=[5]))
    b_b = theirs.reset(theirs.gen_params(batch_size=[5]))
    assert_td_equal(a_b, b_b)
