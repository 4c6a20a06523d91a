"""Reward transforms: RewardScaling, RewardClipping, BinarizeReward, RewardSum, Reward2GoTransform.

Differential tests against torchrl 0.14.1 inside ``TransformedEnv(GymEnv)``
rollouts (several episodes) and in a ``SerialEnv`` whose sub-envs are done at
different steps; the array path against the TensorDict path; partial resets
and ``state_dict``; bad input. Reward2GoTransform's own tests are in test_reward2go.py.
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


# ------------------------------------------------------------------ helpers
def cartpole_action(i, batch=()):
    a = torch.nn.functional.one_hot(torch.tensor((i * 7) % 3 % 2), 2)
    return a.expand(*batch, 2).clone()


def pendulum_action(i, batch=()):
    return torch.full((*batch, 1), float(np.sin(i) * 2), dtype=torch.float32)


ACTIONS = {"CartPole-v1": cartpole_action, "Pendulum-v1": pendulum_action}


def policy(td):
    """Deterministic policy from the observation (same numbers on both libraries)."""
    obs = td["observation"]
    if obs.shape[-1] == 4:  # CartPole: push on the cart's velocity, so that episodes end at varied steps
        right = (obs[..., 1:2] + 3 * obs[..., 2:3] < 0).long()
        td.set("action", torch.cat([1 - right, right], -1))
    else:  # Pendulum: damp the angular velocity
        td.set("action", (-0.5 * obs[..., 2:3]).clamp(-2.0, 2.0))
    return td


def serial(lib, name, n=3):
    def make():
        return lib.GymEnv(name)

    return lib.SerialEnv(n, make)


def envs(torchrl, name, make, batched=0):
    """The same transform (``make(module)``) on numbarl's and torchrl's env."""
    import torchrl.envs as T

    if batched:
        pytest.importorskip("numbarl.torch_api", reason="numbarl SerialEnv").SerialEnv
        return N.TransformedEnv(serial(N, name, batched), make(N)), T.TransformedEnv(serial(T, name, batched), make(T))
    return N.TransformedEnv(N.GymEnv(name), make(N)), T.TransformedEnv(T.GymEnv(name), make(T))


def assert_specs(ours, theirs):
    """Same specs, except that an episode return is Unbounded here (TorchRL copies the reward spec)."""
    for part in SPEC_PARTS:
        a, b = getattr(ours, part).clone(), getattr(theirs, part).clone()
        for key in [k for k in a.keys(True, True) if str(k).startswith("episode_") or k == "ret"]:
            assert isinstance(a[key], N.Unbounded) and b.get(key, None) is not None
            assert a[key].shape == b[key].shape and a[key].dtype == b[key].dtype
            del a[key], b[key]
        assert_spec_matches_torchrl(a, b)


def both_paths(env, steps, actions=None, pol=None, seed=0, break_when_any_done=False):
    """(array-path rollout, TensorDict-path rollout) of ``env`` from the same seed."""
    assert env._array_path_ready()
    env.set_seed(seed)
    fast = env.rollout(steps, pol, actions=actions, break_when_any_done=break_when_any_done)
    env.set_seed(seed)
    slow = env._td_rollout(steps, pol, None, actions, True, break_when_any_done, False, None, False)
    return fast, slow


def needs_serial():
    if not hasattr(N, "SerialEnv"):
        pytest.skip("numbarl.torch_api.SerialEnv is not there yet")


STEPWISE = {
    "scaling": lambda M: M.RewardScaling(0.5, 2.5),
    "scaling_standard_normal_out_key": lambda M: M.RewardScaling(0.3, 2.5, standard_normal=True, out_keys=["sr"]),
    "clipping": lambda M: M.RewardClipping(-0.5, 0.25),
    "clipping_out_key": lambda M: M.RewardClipping(-1, 0.5, out_keys=["clipped"]),
    "binarize": lambda M: M.BinarizeReward(),
    "sum": lambda M: M.RewardSum(),
    "sum_custom_key": lambda M: M.RewardSum(in_keys=["reward"], out_keys=["ret"]),
    "compose": lambda M: M.Compose(M.RewardScaling(0.1, 0.5), M.RewardClipping(-3, 3), M.RewardSum()),
}


# -------------------------------------------------------------- vs torchrl
@pytest.mark.torchrl
@pytest.mark.parametrize("name", ["CartPole-v1", "Pendulum-v1"])
@pytest.mark.parametrize("case", sorted(STEPWISE))
def test_rollout_matches_torchrl(torchrl, name, case):
    ours, theirs = envs(torchrl, name, STEPWISE[case])
    assert_specs(ours, theirs)
    acts = [ACTIONS[name](i) for i in range(STEPS)]
    fast, slow = both_paths(ours, STEPS, actions=acts)
    theirs.set_seed(0)
    ref = theirs.rollout(STEPS, actions=acts, break_when_any_done=False)
    if name == "CartPole-v1":
        assert ref["next", "done"].sum() >= 2  # several episodes
    assert_td_equal(fast, ref)
    assert_td_equal(slow, ref)


@pytest.mark.torchrl
@pytest.mark.parametrize("name", ["CartPole-v1", "Pendulum-v1"])
@pytest.mark.parametrize("case", ["sum", "compose", "binarize", "scaling"])
def test_serial_env_with_done_sub_envs_matches_torchrl(torchrl, name, case):
    needs_serial()
    ours, theirs = envs(torchrl, name, STEPWISE[case], batched=3)
    assert_specs(ours, theirs)
    fast, slow = both_paths(ours, 60, pol=policy)
    theirs.set_seed(0)
    ref = theirs.rollout(60, policy, break_when_any_done=False)
    if name == "CartPole-v1":
        done = ref["next", "done"].squeeze(-1)
        assert done.any(1).all() and not torch.equal(done[0], done[1])  # sub-envs done at different steps
    assert_td_equal(fast, ref)
    assert_td_equal(slow, ref)


@pytest.mark.torchrl
def test_serial_env_rollout_with_action_list_matches_torchrl(torchrl):
    needs_serial()
    ours, theirs = envs(torchrl, "CartPole-v1", STEPWISE["sum"], batched=3)
    acts = [cartpole_action(i, (3,)) for i in range(60)]
    ours.set_seed(0)
    theirs.set_seed(0)
    assert_td_equal(ours.rollout(60, actions=acts, break_when_any_done=False),
                    theirs.rollout(60, actions=acts, break_when_any_done=False))


@pytest.mark.torchrl
def test_reward_sum_in_reward_spec_matches_torchrl(torchrl):
    ours, theirs = envs(torchrl, "CartPole-v1", lambda M: M.RewardSum(reward_spec=True))
    assert_specs(ours, theirs)
    acts = [cartpole_action(i) for i in range(STEPS)]
    ours.set_seed(0)
    theirs.set_seed(0)
    assert_td_equal(ours.rollout(STEPS, actions=acts, break_when_any_done=False),
                    theirs.rollout(STEPS, actions=acts, break_when_any_done=False))


def test_reward_sum_in_reward_spec_tensordict_path():
    """episode_reward is both a reward and an observation key: step_mdp keeps it in the root, as TorchRL does."""
    env = N.TransformedEnv(N.GymEnv("CartPole-v1"), N.RewardSum(reward_spec=True))
    fast, slow = both_paths(env, 30, actions=[cartpole_action(i) for i in range(30)])
    assert_td_equal(fast, slow)


@pytest.mark.torchrl
@pytest.mark.parametrize("spec_kind", ["unbounded", "float64"])
def test_spec_transforms_match_torchrl(torchrl, spec_kind):
    import torchrl.data as TD
    import torchrl.envs as T

    dtype = torch.float64 if spec_kind == "float64" else torch.float32
    for make in (lambda M: M.RewardScaling(1, 2), lambda M: M.RewardClipping(-1.5, 1),
                 lambda M: M.RewardClipping(-1, 1, out_keys=["c"]), lambda M: M.BinarizeReward(),
                 lambda M: M.BinarizeReward(out_keys=["b"])):
        ours = make(N).transform_reward_spec(N.Composite(reward=N.Unbounded((1,), dtype=dtype)))
        theirs = make(T).transform_reward_spec(TD.Composite(reward=TD.Unbounded((1,), dtype=dtype)))
        assert_spec_matches_torchrl(ours, theirs)


def test_bounded_reward_spec_is_mapped():
    spec = N.Composite(reward=N.Bounded(-2.0, 4.0, (1,)))
    scaled = N.RewardScaling(1.0, 0.5).transform_reward_spec(spec)["reward"]
    assert torch.equal(scaled.low, torch.tensor([0.0])) and torch.equal(scaled.high, torch.tensor([3.0]))
    clipped = N.RewardClipping(-1.0, 10.0).transform_reward_spec(spec)["reward"]
    assert torch.equal(clipped.low, torch.tensor([-1.0])) and torch.equal(clipped.high, torch.tensor([4.0]))
    assert isinstance(N.RewardClipping(-1.0).transform_reward_spec(
        N.Composite(reward=N.Unbounded((1,))))["reward"], N.Unbounded)


def test_one_sided_clipping_and_nan():
    td = TensorDict({"reward": torch.tensor([-3.0, 0.5, 4.0, float("nan")])}, [])
    out = N.RewardClipping(clamp_max=1.0)(td.clone())["reward"]
    assert torch.equal(out[:3], torch.tensor([-3.0, 0.5, 1.0])) and torch.isnan(out[3])
    out = N.RewardClipping(clamp_min=0.0)(td.clone())["reward"]
    assert torch.equal(out[:3], torch.tensor([0.0, 0.5, 4.0]))


@pytest.mark.torchrl
def test_forward_on_data_matches_torchrl(torchrl):
    import torchrl.envs as T

    reward = torch.randn(5, 7, 1, generator=torch.Generator().manual_seed(0)) * 3
    for make in (lambda M: M.RewardScaling(torch.tensor([0.3]), 1.7), lambda M: M.RewardScaling(2, 3),
                 lambda M: M.RewardScaling(0.3, 1.7, standard_normal=True), lambda M: M.RewardClipping(-1, 2),
                 lambda M: M.BinarizeReward(out_keys=["b"])):
        for r in (reward, reward.double()):
            td = TensorDict({"reward": r}, [5, 7])
            assert_td_equal(make(N)(td.clone()), make(T)(td.clone()))


@pytest.mark.torchrl
def test_state_dict_keys_match_torchrl_and_load(torchrl):
    import torchrl.envs as T

    for make in (lambda M: M.RewardScaling(1.0, 2.0), lambda M: M.RewardClipping(-1, 1),
                 lambda M: M.Reward2GoTransform(0.9)):
        ours, theirs = make(N), make(T)
        assert set(ours.state_dict()) == set(theirs.state_dict())
        ours.load_state_dict(theirs.state_dict())
    ours = N.RewardScaling(0.0, 1.0)
    ours.load_state_dict(T.RewardScaling(3.0, 2.0).state_dict())
    assert ours(TensorDict({"reward": torch.ones(1)}, []))["reward"].item() == 5.0
    summer = N.RewardSum()
    summer.load_state_dict(T.RewardSum().state_dict())  # TorchRL keeps no sums: ours start again from zero


# ------------------------------------------------ running state of RewardSum
def test_reward_sum_partial_reset_tensordict_and_array_paths():
    needs_serial()
    for path in ("td", "array"):
        env = N.TransformedEnv(serial(N, "Pendulum-v1"), N.RewardSum())
        env.set_seed(0)
        td = env.reset()
        for _ in range(3):
            td = env.rand_step(td)
            td = N.step_mdp(td)
        before = td["episode_reward"].clone()
        assert (before != 0).all()
        mask = torch.tensor([True, False, True])
        if path == "td":
            request = td.clone()
            request.set("_reset", mask.unsqueeze(-1))
            after = env.reset(request)["episode_reward"]
        else:
            after = torch.from_numpy(np.array(env._np_reset(mask.numpy())["episode_reward"]))
        assert torch.equal(after[mask], torch.zeros(2, 1))
        assert torch.equal(after[~mask], before[~mask])


def test_reward_sum_partial_reset_without_previous_keeps_kept_sums():
    needs_serial()
    env = N.TransformedEnv(serial(N, "Pendulum-v1"), N.RewardSum())
    env.set_seed(0)
    td = env.rollout(4)
    last = td[:, -1]["next", "episode_reward"]
    after = env.reset(TensorDict({"_reset": torch.tensor([[False], [True], [False]])}, [3]))["episode_reward"]
    assert torch.equal(after, torch.stack([last[0], torch.zeros(1), last[2]]))


def test_reward_sum_running_sums_resume_through_extra_state():
    """The sums are not in state_dict (TorchRL's format, which TorchRL loads strict); get/set_extra_state move them."""
    def make():
        return N.TransformedEnv(N.GymEnv("Pendulum-v1"), N.RewardSum())

    acts = [pendulum_action(i) for i in range(20)]
    env = make()
    env.set_seed(3)
    first = env.rollout(10, actions=acts[:10])
    assert dict(env.transform.state_dict()) == {}
    state = {"_extra_state": env.transform.get_extra_state()}  # as earlier versions saved it: still loads
    assert torch.equal(state["_extra_state"]["_sums"]["episode_reward"], first[-1]["next", "episode_reward"])
    start = N.step_mdp(first[-1])
    reference = env.rollout(10, actions=acts[10:], auto_reset=False, tensordict=start.clone())

    resumed = make()
    resumed.transform.load_state_dict(state)
    resumed.set_seed(3)  # replay the base env to the same point
    resumed.base_env.rollout(10, actions=acts[:10])
    again = resumed.rollout(10, actions=acts[10:], auto_reset=False, tensordict=start.clone())
    assert_td_equal(again, reference)
    assert again[0]["next", "episode_reward"] > first[-1]["next", "episode_reward"] - 20  # continues the sum
    assert torch.allclose(again[0]["next", "episode_reward"],
                          first[-1]["next", "episode_reward"] + again[0]["next", "reward"])


def test_reward_sum_offline_forward_restarts_after_done():
    reward = torch.arange(10.0).view(2, 5, 1)
    done = torch.tensor([0, 0, 1, 0, 0, 0, 1, 0, 0, 1], dtype=torch.bool).view(2, 5, 1)
    td = TensorDict({"reward": reward, "done": done}, [2, 5], names=[None, "time"])
    out = N.RewardSum()(td)["episode_reward"].squeeze(-1)
    assert out.tolist() == [[0, 1, 3, 3, 7], [5, 11, 7, 15, 24]]
    td = TensorDict({"reward": reward.transpose(0, 1)}, [5, 2], names=["time", None])
    assert N.RewardSum()(td)["episode_reward"].squeeze(-1).tolist() == [[0, 5], [1, 11], [3, 18], [6, 26],
                                                                         [10, 35]]
    with pytest.raises(ValueError, match="named 'time'"):
        N.RewardSum()(TensorDict({"reward": reward}, [2, 5]))


def test_reset_keys_property():
    assert N.RewardSum(reset_keys=["_reset"]).reset_keys == ["_reset"]
    with pytest.raises(TypeError, match="reset_keys"):
        N.RewardSum().reset_keys
    assert N.TransformedEnv(N.GymEnv("Pendulum-v1"), N.RewardSum()).transform.reset_keys == ["_reset"]


# --------------------------------------------- stored data (see test_reward2go.py)
def stored(n_batch=4, n_steps=300, seed=0, p_done=0.03, open_rows=()):
    g = torch.Generator().manual_seed(seed)
    reward = torch.randn(n_batch, n_steps, 1, generator=g)
    done = torch.rand(n_batch, n_steps, 1, generator=g) < p_done
    done[:, -1] = True
    for row in open_rows:
        done[row, -1] = False
    return TensorDict({"next": {"reward": reward, "done": done}}, [n_batch, n_steps])


# ------------------------------------------------------------ conformance
@pytest.mark.parametrize("case", sorted(STEPWISE))
def test_specs_clone_pickle_state_dict(case):
    env = N.TransformedEnv(N.GymEnv("CartPole-v1"), STEPWISE[case](N))
    N.check_env_specs(env, seed=0)
    acts = [cartpole_action(i) for i in range(STEPS)]
    env.set_seed(1)
    reference = env.rollout(STEPS, actions=acts, break_when_any_done=False)
    for copy in (env.transform.clone(), pickle.loads(pickle.dumps(env.transform))):
        other = N.TransformedEnv(N.GymEnv("CartPole-v1"), copy)
        other.set_seed(1)
        assert_td_equal(other.rollout(STEPS, actions=acts, break_when_any_done=False), reference)
    fresh = STEPWISE[case](N)
    fresh.load_state_dict(env.transform.state_dict())


# ------------------------------------------------------------- bad input
@pytest.mark.parametrize("make, error, match", [
    (lambda: N.Reward2GoTransform(1.5), ValueError, r"gamma in \[0, 1\], got 1.5"),
    (lambda: N.Reward2GoTransform(-0.1), ValueError, r"gamma in \[0, 1\]"),
    (lambda: N.Reward2GoTransform(float("nan")), ValueError, r"gamma in \[0, 1\]"),
    (lambda: N.Reward2GoTransform("0.9"), TypeError, "gamma to be a real number"),
    (lambda: N.Reward2GoTransform(0.9, done_key=3), TypeError, "done_key"),
    (lambda: N.Reward2GoTransform(0.9, in_keys=[("next", 3)]), TypeError, "in_keys"),
    (lambda: N.Reward2GoTransform(0.9, open_end="bootstrap"), ValueError, "open_end"),
    (lambda: N.RewardClipping(2.0, 1.0), ValueError, "clamp_min <= clamp_max, got clamp_min=2.0"),
    (lambda: N.RewardClipping(), ValueError, "clamp_min or clamp_max"),
    (lambda: N.RewardClipping("a", 1.0), TypeError, "clamp_min"),
    (lambda: N.RewardClipping(float("nan"), 1.0), ValueError, "clamp_min without NaN"),
    (lambda: N.RewardScaling("a", 1.0), TypeError, "loc"),
    (lambda: N.RewardScaling(0.0, -1.0), ValueError, "scale finite and > 0"),
        (lambda: N.RewardScaling(1.0, 0.0), ValueError, "RewardScaling requires scale finite and > 0.*got 0.0"),
        (lambda: N.RewardSum(in_keys=["a", "a"]), ValueError, "RewardSum requires distinct in_keys, got .a."),
        (lambda: N.RewardSum(in_keys=["a", "b"], out_keys=["c", "c"]), ValueError, "RewardSum requires distinct out_keys"),
    (lambda: N.RewardScaling(0.0, 1.0, standard_normal=1), TypeError, "standard_normal"),
    (lambda: N.RewardScaling(0.0, 1.0, in_keys=[3]), TypeError, "in_keys"),
    (lambda: N.RewardSum(in_keys=[3]), TypeError, "in_keys"),
    (lambda: N.RewardSum(in_keys=["a", "b"], out_keys=["c"]), ValueError, "same number of input and output keys"),
    (lambda: N.RewardSum(reward_spec="yes"), TypeError, "reward_spec"),
    (lambda: N.BinarizeReward(out_keys=[1.5]), TypeError, "out_keys"),
])
def test_bad_arguments(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_bad_data():
    td = stored(n_batch=2, n_steps=6)
    with pytest.raises(ValueError, match=r"same shape, got \(2, 6, 2\) and \(2, 6, 1\)"):
        bad = td.clone()
        bad["next", "reward"] = torch.ones(2, 6, 2)
        N.Reward2GoTransform(0.9).inv(bad)
    with pytest.raises(KeyError, match=r"done entry \(.*next.*done.*\) not found"):
        N.Reward2GoTransform(0.9).inv(td.exclude(("next", "done")))
    with pytest.raises(KeyError, match="'reward' not found"):
        N.RewardScaling(0.0, 1.0)(TensorDict({"x": torch.ones(1)}, []))
    env = N.TransformedEnv(N.GymEnv("Pendulum-v1"), N.RewardSum(in_keys=["bonus"]))
    with pytest.raises(KeyError, match="'bonus' is not in the reward spec"):
        env.observation_spec
    env = N.TransformedEnv(N.GymEnv("Pendulum-v1"), N.RewardScaling(0.0, 1.0, in_keys=["bonus"]))
    with pytest.raises(KeyError, match="'bonus' not found"):
        env.rollout(2)


@pytest.mark.parametrize("name,args", [("RewardScaling", (0.5, 2.0)), ("RewardClipping", (-0.5, 0.5))])
def test_reward_map_takes_a_leaf_reward_spec_like_torchrl(torchrl, name, args):
    tr_envs = pytest.importorskip("torchrl.envs")
    import torchrl.data as tr_data

    ours = getattr(N, name)(*args).transform_reward_spec(N.Unbounded((1,)))
    theirs = getattr(tr_envs, name)(*args).transform_reward_spec(tr_data.Unbounded((1,)))
    assert not isinstance(ours, N.Composite)
    assert_spec_matches_torchrl(ours, theirs)


def test_reward_sum_key_count_mismatch_says_torchrl_words(torchrl):
    tr_envs = pytest.importorskip("torchrl.envs")
    for kwargs in ({"in_keys": ["a", "b"], "out_keys": ["c"]}, {"in_keys": ["a"], "out_keys": ["c", "d"]}):
        with pytest.raises(ValueError, match="RewardSum expects the same number of input and output keys"):
            tr_envs.RewardSum(**kwargs)
        with pytest.raises(ValueError, match="RewardSum expects the same number of input and output keys"):
            N.RewardSum(**kwargs)
