"""``EnvBase.rollout(policy=...)`` on the array path: outputs equal TorchRL's, the policy sees one reused TensorDict."""
import pytest
import torch
from tensordict.nn import TensorDictModule, NormalParamExtractor

from compare import assert_td_equal
from numbarl.torch_api import Compose, GymEnv, RewardSum, SerialEnv, StepCounter, TransformedEnv

pytestmark = pytest.mark.torchrl


def mlp_policy(seed=0, out=1):
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(3, 64), torch.nn.Tanh(), torch.nn.Linear(64, out))
    return TensorDictModule(net, ["observation"], ["action"])


def gauss_policy(seed=0):
    """A policy writing loc, scale and the action: extra keys go into the rollout too."""
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2), NormalParamExtractor())
    params = TensorDictModule(net, ["observation"], ["loc", "scale"])
    act = TensorDictModule(lambda loc, scale: loc + scale, ["loc", "scale"], ["action"])
    from tensordict.nn import TensorDictSequential

    return TensorDictSequential(params, act)


def ours_env(batched=False, steps=7):
    if batched == "inside":  # sub-envs with a state input (step_count), stepped on the array path
        return TransformedEnv(SerialEnv(2, lambda: TransformedEnv(GymEnv("Pendulum-v1"), StepCounter(max_steps=steps))),
                              RewardSum())
    if batched:
        return TransformedEnv(SerialEnv(2, lambda: GymEnv("Pendulum-v1")), Compose(StepCounter(max_steps=steps), RewardSum()))
    return TransformedEnv(TransformedEnv(GymEnv("Pendulum-v1"), StepCounter(max_steps=steps)), RewardSum())


def theirs_env(torchrl, batched=False, steps=7):
    from torchrl.envs import GymEnv as TGymEnv, RewardSum as TRewardSum, SerialEnv as TSerialEnv
    from torchrl.envs import StepCounter as TStepCounter, TransformedEnv as TTransformedEnv

    from torchrl.envs import Compose as TCompose

    if batched == "inside":
        return TTransformedEnv(TSerialEnv(2, lambda: TTransformedEnv(TGymEnv("Pendulum-v1"),
                                                                     TStepCounter(max_steps=steps))), TRewardSum())
    if batched:
        return TTransformedEnv(TSerialEnv(2, lambda: TGymEnv("Pendulum-v1")),
                               TCompose(TStepCounter(max_steps=steps), TRewardSum()))
    return TTransformedEnv(TTransformedEnv(TGymEnv("Pendulum-v1"), TStepCounter(max_steps=steps)), TRewardSum())


@pytest.mark.parametrize("batched", [False, True, "inside"])
@pytest.mark.parametrize("make_policy", [mlp_policy, gauss_policy])
def test_rollout_with_policy_equals_torchrl(torchrl, batched, make_policy):
    ours, theirs = ours_env(batched), theirs_env(torchrl, batched)
    ours.set_seed(3)
    theirs.set_seed(3)
    policy = make_policy()
    with torch.no_grad():
        a = ours.rollout(20, policy, break_when_any_done=False)
        b = theirs.rollout(20, policy, break_when_any_done=False)
    assert_td_equal(a, b.to_tensordict() if hasattr(b, "to_tensordict") else b, atol=1e-6)
    assert ours._array_path_ready()
    ours.close(); theirs.close()


def test_rollout_with_policy_breaks_like_torchrl(torchrl):
    ours, theirs = ours_env(), theirs_env(torchrl)
    ours.set_seed(1)
    theirs.set_seed(1)
    policy = mlp_policy()
    with torch.no_grad():
        a = ours.rollout(20, policy)
        b = theirs.rollout(20, policy)
    assert a.batch_size == b.batch_size == torch.Size([7])
    assert_td_equal(a, b, atol=1e-6)


def test_policy_sees_one_reused_tensordict():
    env = ours_env(batched=True)
    env.set_seed(0)
    seen = []

    def policy(td):
        seen.append((id(td), td.batch_size, td["observation"].data_ptr()))
        return td.set("action", torch.zeros(2, 1))

    out = env.rollout(9, policy, break_when_any_done=False)
    assert len(seen) == 9
    assert len({s[0] for s in seen}) == 1 and len({s[2] for s in seen}) == 1
    assert seen[0][1] == torch.Size([2])
    # The policy saw each step's root observation.
    assert out["action"].abs().sum() == 0
    env.close()


def test_policy_without_action_key_raises():
    env = ours_env()
    with pytest.raises(KeyError, match="action"):
        env.rollout(3, lambda td: td.set("other", torch.zeros(1)))


def test_direct_module_call_with_grad_enabled_matches_no_grad():
    """A plain TensorDictModule is called through its module; outputs that require grad are stored detached."""
    policy = mlp_policy()
    env = ours_env()
    env.set_seed(2)
    a = env.rollout(15, policy, break_when_any_done=False)
    env.set_seed(2)
    with torch.no_grad():
        b = env.rollout(15, policy, break_when_any_done=False)
    assert not a["action"].requires_grad
    assert torch.equal(a["action"], b["action"])
    with torch.no_grad():
        expected = policy.module(a["observation"])
    assert torch.allclose(a["action"], expected, atol=1e-6)


def test_hooked_module_is_called_through_tensordict():
    policy = mlp_policy()
    calls = []
    policy.register_forward_hook(lambda mod, args, out: calls.append(1))
    env = ours_env()
    with torch.no_grad():
        env.rollout(6, policy, break_when_any_done=False)
    assert len(calls) == 6
