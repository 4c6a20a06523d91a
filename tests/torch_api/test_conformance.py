"""Conformance suite: every Transform subclass exported by numbarl.torch_api passes the same checks.

The classes are discovered from ``numbarl.torch_api`` (not listed here), and
each needs an entry in ``transform_cases.CASES``: a class without one fails
``test_registered``, so a new transform cannot be skipped by omission.

Env cases: the transformed env's rollouts match its specs
(``check_env_specs``); ``clone()``, pickling, ``Compose`` membership and
``to("cpu")`` keep the behaviour (same rollout from the same seed and
actions); ``state_dict`` round-trips; the array rollout and the TensorDict
rollout agree; the transformed env works inside a ``SerialEnv``. Offline
cases (transforms TorchRL refuses in an env) run the same checks on stored
data.
"""
from __future__ import annotations

import functools
import pickle

import pytest
import torch
from tensordict import TensorDict

import numbarl.torch_api as api
from compare import assert_td_equal
from transform_cases import CASES

TRANSFORMS = sorted(name for name in api.__all__
                    if isinstance(getattr(api, name), type) and issubclass(getattr(api, name), api.Transform)
                    and getattr(api, name) is not api.Transform)
ENV_CASES = [n for n in TRANSFORMS if n in CASES and not CASES[n].offline]
OFFLINE_CASES = [n for n in TRANSFORMS if n in CASES and CASES[n].offline]
STEPS = 6


def test_discovery_finds_transforms():
    assert {"Compose", "RenameTransform", "TensorDictPrimer", "ActionMask"} <= set(TRANSFORMS)


@pytest.mark.parametrize("name", TRANSFORMS)
def test_registered(name):
    assert name in CASES, (f"{name} is exported by numbarl.torch_api but has no entry in tests/transform_cases.py "
                           "CASES: add one so the conformance suite checks it")


def test_registry_has_no_stale_entries():
    assert set(CASES) <= set(TRANSFORMS), sorted(set(CASES) - set(TRANSFORMS))


# ------------------------------------------------------------------ env cases
def _env(case, transform=None):
    if case.skip:
        pytest.skip(case.skip)
    return api.TransformedEnv(case.make_env(), case.transform() if transform is None else transform)


def _actions(case, env, steps=STEPS, seed=0):
    """Fixed actions for the rollouts (or None: the env draws them, from the same torch seed)."""
    if not case.fixed_actions:
        return None
    torch.manual_seed(seed)
    return [env.full_action_spec[env.action_key].rand() for _ in range(steps)]


def _rollout(env, actions, td_path=False, seed=0):
    env.set_seed(seed)
    torch.manual_seed(seed)
    kwargs = {"callback": (lambda *a: None)} if td_path else {}
    return env.rollout(STEPS, actions=actions, break_when_any_done=False, **kwargs)


def _reference(case):
    env = _env(case)
    actions = _actions(case, env)
    return actions, _rollout(env, actions)


@pytest.mark.parametrize("name", ENV_CASES)
def test_check_env_specs(name):
    env = _env(CASES[name])
    api.check_env_specs(env, seed=0)
    env.close()


@pytest.mark.parametrize("name", ENV_CASES)
@pytest.mark.parametrize("how", ["clone", "pickle", "compose", "to_cpu"])
def test_copies_keep_behaviour(name, how):
    case = CASES[name]
    actions, expected = _reference(case)
    t = case.transform()
    if how == "clone":
        t = t.clone()
    elif how == "pickle":
        t = pickle.loads(pickle.dumps(t))
    elif how == "compose":
        t = api.Compose(t)
    else:
        assert t.to("cpu") is t
    assert_td_equal(_rollout(_env(case, t), actions), expected)


@pytest.mark.parametrize("name", ENV_CASES)
def test_state_dict_round_trip(name):
    case = CASES[name]
    env = _env(case)
    actions = _actions(case, env)
    _rollout(env, actions)  # fills lazily built state
    t = env.transform  # the case transform itself (TransformedEnv keeps a single transform as is)
    state = t.state_dict()
    other = case.transform()
    other_env = _env(case, other)
    other.load_state_dict(state)
    assert_td_equal(TensorDict(dict(other.state_dict()), []), TensorDict(dict(state), []))
    assert_td_equal(_rollout(other_env, actions), _rollout(env, actions))


@pytest.mark.parametrize("name", ENV_CASES)
def test_array_and_tensordict_rollouts_agree(name):
    case = CASES[name]
    env = _env(case)
    actions = _actions(case, env)
    assert_td_equal(_rollout(env, actions, td_path=True), _rollout(_env(case), actions))


def _transformed(name):
    case = CASES[name]
    return api.TransformedEnv(case.make_env(), case.transform())


@pytest.mark.parametrize("name", ENV_CASES)
def test_inside_serial_env(name):
    if not hasattr(api, "SerialEnv"):
        pytest.skip("numbarl.torch_api.SerialEnv does not exist yet")
    case = CASES[name]
    if case.skip:
        pytest.skip(case.skip)
    if case.serial_skip:
        pytest.skip(case.serial_skip)
    env = api.SerialEnv(2, functools.partial(_transformed, name))
    try:
        api.check_env_specs(env, seed=0)
        env.set_seed(0)
        torch.manual_seed(0)
        td = env.rollout(3, break_when_any_done=False)
        assert td.batch_size == torch.Size([2, 3])
    finally:
        env.close()


# ------------------------------------------------------------------ offline cases
def _apply(case, transform, data):
    return getattr(transform, case.call)(data.clone())


@pytest.mark.parametrize("name", OFFLINE_CASES)
def test_offline_copies_keep_behaviour(name):
    case = CASES[name]
    data = case.data()
    expected = _apply(case, case.transform(), data)
    for t in (case.transform().clone(), pickle.loads(pickle.dumps(case.transform())), case.transform().to("cpu")):
        assert_td_equal(_apply(case, t, data), expected)
    composed = api.Compose(case.transform())
    assert_td_equal(_apply(case, composed, data), expected)


@pytest.mark.parametrize("name", OFFLINE_CASES)
def test_offline_state_dict_round_trip(name):
    case = CASES[name]
    data = case.data()
    t = case.transform()
    expected = _apply(case, t, data)
    other = case.transform()
    other.load_state_dict(t.state_dict())
    assert_td_equal(_apply(case, other, data), expected)
