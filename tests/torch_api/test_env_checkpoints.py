"""Env-level checkpoints: ``TransformedEnv.state_dict`` / ``load_state_dict`` in TorchRL 0.14.1's format.

TorchRL's ``TransformedEnv.state_dict()`` is its transform's state dict (no
``transform.`` prefix, nothing from the base env). Checkpoints move both ways
between TorchRL and numbarl for VecNorm / ObservationNorm / RewardSum chains;
numbarl's older ``transform.``-prefixed checkpoints still load.
"""
import pytest
import torch
from tensordict import TensorDict
from torch import nn

import numbarl.torch_api as N


def make_chain(lib, single: bool = False):
    if single:
        return lib.TransformedEnv(lib.GymEnv("Pendulum-v1"), lib.VecNorm(in_keys=["observation"], decay=0.99))
    return lib.TransformedEnv(lib.GymEnv("Pendulum-v1"), lib.Compose(
        lib.VecNorm(in_keys=["observation"], decay=0.99),
        lib.ObservationNorm(loc=0.5, scale=2.0, in_keys=["observation"]),
        lib.RewardSum()))


def trained(lib, single: bool = False, steps: int = 12):
    env = make_chain(lib, single)
    env.set_seed(0)
    env.rollout(steps)
    return env


def vecnorm_of(env):
    return env.transform if not hasattr(env.transform, "transforms") else env.transform[0]


def assert_same_normalization(a, b):
    """The VecNorm of both envs normalizes with the same loc / scale; the ObservationNorms agree.

    TorchRL's checkpoint holds float32 sums of x and x**2, so its variance
    carries a rounding error of a few float32 ulps of E[x**2]: the variances
    are compared to that tolerance.
    """
    na, nb = vecnorm_of(a).to_observation_norm(), vecnorm_of(b).to_observation_norm()
    torch.testing.assert_close(na.loc.double(), nb.loc.double(), rtol=1e-6, atol=1e-7)
    second = (nb.loc.double() ** 2 + nb.scale.double() ** 2).max().item()
    torch.testing.assert_close(na.scale.double() ** 2, nb.scale.double() ** 2, rtol=1e-6,
                               atol=8 * torch.finfo(torch.float32).eps * second)
    if hasattr(a.transform, "transforms"):
        for name in ("loc", "scale", "standard_normal"):
            assert torch.equal(getattr(a.transform[1], name), getattr(b.transform[1], name))


@pytest.mark.torchrl
@pytest.mark.parametrize("single", [False, True])
def test_state_dict_keys_match_torchrl(torchrl, single):
    import torchrl.envs as T

    ours, theirs = trained(N, single), trained(T, single)
    assert sorted(ours.state_dict()) == sorted(theirs.state_dict())
    assert not any(k.startswith("transform.") for k in ours.state_dict())


@pytest.mark.torchrl
@pytest.mark.parametrize("single", [False, True])
@pytest.mark.parametrize("fresh", [True, False])
def test_torchrl_checkpoint_loads_into_numbarl(torchrl, single, fresh):
    import torchrl.envs as T

    source = trained(T, single)
    target = make_chain(N, single) if fresh else trained(N, single, steps=5)
    if not single:
        source.transform[1].loc.fill_(1.5)
    target.load_state_dict(source.state_dict())
    assert_same_normalization(target, source)


@pytest.mark.torchrl
@pytest.mark.parametrize("single", [False, True])
@pytest.mark.parametrize("fresh", [True, False])
def test_numbarl_checkpoint_loads_into_torchrl(torchrl, single, fresh):
    import torchrl.envs as T

    source = trained(N, single)
    target = make_chain(T, single) if fresh else trained(T, single, steps=5)
    if not single:
        source.transform[1].loc.fill_(1.5)
    target.load_state_dict(source.state_dict())
    assert_same_normalization(target, source)


@pytest.mark.parametrize("single", [False, True])
def test_round_trip_is_exact(single):
    source, target = trained(N, single), make_chain(N, single)
    target.load_state_dict(source.state_dict())
    a, b = vecnorm_of(source).get_extra_state(), vecnorm_of(target).get_extra_state()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("single", [False, True])
def test_prefixed_checkpoint_of_earlier_versions_loads(single):
    source = trained(N, single)
    old = {"transform." + k: v for k, v in source.state_dict().items()}
    target = make_chain(N, single)
    target.load_state_dict(old)
    assert_same_normalization(target, source)


def test_prefixed_checkpoint_of_nested_envs_loads():
    source = N.TransformedEnv(trained(N), N.ObservationNorm(loc=3.0, scale=4.0, in_keys=["observation"]))
    old = {"transform." + k: v for k, v in source.state_dict().items()}
    old.update({"base_env.transform." + k: v for k, v in source.base_env.state_dict().items()})
    target = N.TransformedEnv(make_chain(N), N.ObservationNorm(loc=0.0, scale=1.0, in_keys=["observation"]))
    target.load_state_dict(old)
    assert target.transform.loc.item() == 3.0 and target.transform.scale.item() == 4.0
    assert_same_normalization(target.base_env, source.base_env)


def test_unknown_keys_still_raise():
    env = make_chain(N)
    with pytest.raises(RuntimeError, match="Unexpected key"):
        env.load_state_dict({**env.state_dict(), "bogus": torch.zeros(1)})
    with pytest.raises(RuntimeError, match="Unexpected key"):
        env.load_state_dict({**{"transform." + k: v for k, v in env.state_dict().items()},
                             "transform.bogus": torch.zeros(1)})


def test_env_inside_a_module_round_trips():
    """A module holding the env saves the transform's entries under the env's name and loads them back."""

    class Holder(nn.Module):
        def __init__(self):
            super().__init__()
            self.env = make_chain(N)
            self.head = nn.Linear(2, 2)

    a, b = Holder(), Holder()
    a.env.transform[1].loc.fill_(3.0)
    state = a.state_dict()
    assert "env.transforms.1.loc" in state
    assert not b.load_state_dict(state).unexpected_keys
    assert b.env.transform[1].loc.item() == 3.0


def test_state_dict_is_the_transforms_for_an_empty_transform():
    env = N.TransformedEnv(N.GymEnv("Pendulum-v1"))
    assert dict(env.state_dict()) == {}
    env.load_state_dict({})
    out = env.rollout(2)
    assert isinstance(out, TensorDict)


@pytest.mark.torchrl
def test_checkpoint_trained_further_by_torchrl_loads_its_statistics(torchrl):
    """numbarl -> TorchRL (fresh, so it keeps the exact entries too) -> more TorchRL steps -> numbarl:
    the TorchRL sums changed, so they, not the stale exact moments, are loaded."""
    import torchrl.envs as T

    middle = make_chain(T, single=True)
    middle.load_state_dict(trained(N, single=True).state_dict())
    middle.set_seed(1)
    middle.rollout(7)
    target = make_chain(N, single=True)
    target.load_state_dict(middle.state_dict())
    assert_same_normalization(target, middle)
