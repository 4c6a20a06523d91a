"""Stack vs TorchRL 0.14.1: forward, inverse, specs, rollouts (single and batched envs), bad input."""
import pytest
import torch
from tensordict import TensorDict

import numbarl.torch_api as nb
from compare import assert_spec_matches_torchrl, assert_td_equal
from transform_cases import make_env
from transform_diff import compare_rollouts, compare_specs, torchrl_env

pytestmark = pytest.mark.torchrl


@pytest.fixture
def trl():
    """``torchrl.envs`` (TorchRL 0.14.1), or a skip when the optional peer is missing."""
    return pytest.importorskip("torchrl.envs", reason="torchrl 0.14.1 is an optional peer for differential tests")


def _offline(trl, td, *args, call="forward", **kwargs):
    ours, theirs = nb.Stack(*args, **kwargs), trl.Stack(*args, **kwargs)
    a = getattr(ours, call)(td.clone())
    assert_td_equal(a, getattr(theirs, call)(td.clone()))
    return a


def _data():
    g = torch.Generator().manual_seed(0)
    return TensorDict({k: torch.rand(4, 3, generator=g) for k in ("a", "b", "c")}, [4])


# ------------------------------------------------------------------ offline
@pytest.mark.parametrize("dim, pos", [(-1, False), (-2, False), (1, True), (2, True)])
@pytest.mark.parametrize("del_keys", [True, False])
def test_forward_and_inverse_match_torchrl(trl, dim, pos, del_keys):
    td = _data()
    kw = dict(in_key_inv="abc", out_keys_inv=["a", "b", "c"], dim=dim, allow_positive_dim=pos, del_keys=del_keys)
    out = _offline(trl, td, ["a", "b", "c"], "abc", **kw)
    assert torch.equal(out["abc"].select(dim, 1), td["b"])
    back = _offline(trl, out, ["a", "b", "c"], "abc", call="inv", **kw)
    assert "abc" not in back.keys()
    for k in "abc":
        assert torch.equal(back[k], td[k])


def test_tensordict_values_and_empty_parents_match_torchrl(trl):
    g = torch.Generator().manual_seed(1)
    td = TensorDict({
        "g0": {"a0": {"obs": torch.rand(2, 5, generator=g), "r": torch.rand(2, 1, generator=g)},
               "a1": {"obs": torch.rand(2, 5, generator=g), "r": torch.rand(2, 1, generator=g)}},
        "g1": {"a2": {"obs": torch.rand(2, 5, generator=g), "r": torch.rand(2, 1, generator=g)},
               "keep": torch.zeros(2)},
    }, [2])
    keys = [("g0", "a0"), ("g0", "a1"), ("g1", "a2")]
    for del_keys in (True, False):
        out = _offline(trl, td, keys, "agents", del_keys=del_keys)
        assert out["agents"].batch_size == torch.Size([2, 3])
        assert ("g0" in out.keys()) is not del_keys  # g0 left empty goes; g1 keeps "keep"
        assert "g1" in out.keys()
    leaves = [("g0", "a0", "obs"), ("g0", "a1", "obs")]
    _offline(trl, td, leaves, "obs", dim=-2)


def test_missing_key_raises_keyerror_like_torchrl(trl):
    td = _data()
    with pytest.raises(KeyError, match="'zz'"):
        nb.Stack(["a", "zz"], "out")(td.clone())
    with pytest.raises(KeyError):
        trl.Stack(["a", "zz"], "out")(td.clone())


def test_inverse_without_the_key_changes_nothing(trl):
    td = _data()
    _offline(trl, td, ["x", "y"], "xy", in_key_inv="xy", out_keys_inv=["x", "y"], call="inv")
    _offline(trl, td, ["x", "y"], "xy", call="inv")


def test_compose_and_repr(trl):
    td = _data()
    t = nb.Compose(nb.Stack(["a", "b"], "ab", dim=-2))
    assert_td_equal(t(td.clone()), trl.Compose(trl.Stack(["a", "b"], "ab", dim=-2))(td.clone()))
    assert repr(nb.Stack(["a", "b"], "ab", dim=-2)) == repr(trl.Stack(["a", "b"], "ab", dim=-2))


# ------------------------------------------------------------------ specs
def test_stacked_specs_match_torchrl(trl):
    import torchrl.data as td_specs

    def composite(m):
        return m.Composite(obs=m.Bounded(-1.0, 1.0, (3,)), n=m.Categorical(4, shape=(2,)),
                           u=m.Unbounded(shape=(1,), dtype=torch.int64))

    ours, theirs = composite(nb), composite(td_specs)
    for dim in (-1, 0):
        a = nb.Stack(["x", "y"], "xy", dim=dim, allow_positive_dim=True)
        b = trl.Stack(["x", "y"], "xy", dim=dim, allow_positive_dim=True)
        sa = a._transform_spec(nb.Composite(x=ours.clone(), y=ours.clone()))
        sb = b._transform_spec(td_specs.Composite(x=theirs.clone(), y=theirs.clone()))
        assert_spec_matches_torchrl(sa, sb, ("xy",))
    leaf = nb.Stack(["x", "y"], "xy", dim=-2)._transform_spec(
        nb.Composite(x=nb.Bounded(-1.0, 1.0, (3,)), y=nb.Bounded(-1.0, 1.0, (3,))))
    leaf_t = trl.Stack(["x", "y"], "xy", dim=-2)._transform_spec(
        td_specs.Composite(x=td_specs.Bounded(-1.0, 1.0, (3,)), y=td_specs.Bounded(-1.0, 1.0, (3,))))
    assert_spec_matches_torchrl(leaf, leaf_t, ("xy",))


def test_specs_with_different_bounds_stack_their_bounds(trl):
    import torchrl.data as td_specs

    spec = nb.Stack(["x", "y"], "xy")._transform_spec(
        nb.Composite(x=nb.Bounded(0.0, 1.0, (3,)), y=nb.Bounded(-2.0, 5.0, (3,))))["xy"]
    theirs = torch.stack([td_specs.Bounded(0.0, 1.0, (3,)), td_specs.Bounded(-2.0, 5.0, (3,))], -1)
    assert spec.shape == theirs.shape == torch.Size([3, 2])
    assert torch.equal(spec.low, torch.tensor([[0.0, -2.0]] * 3))
    assert torch.equal(spec.high, torch.tensor([[1.0, 5.0]] * 3))
    assert theirs.is_in(spec.rand())  # (TorchRL's lazy stacked spec cannot draw along dim -1 itself)
    outside = torch.tensor([[1.5, 1.5]] * 3)
    assert not spec.is_in(outside) and not theirs.is_in(outside)


def test_specs_that_cannot_stack_raise():
    with pytest.raises(ValueError, match="different classes"):
        nb.Stack(["x", "y"], "xy")._transform_spec(nb.Composite(x=nb.Unbounded((2,)), y=nb.Bounded(0, 1, (2,))))
    with pytest.raises(ValueError, match="dtype"):
        nb.Stack(["x", "y"], "xy")._transform_spec(
            nb.Composite(x=nb.Categorical(3, (2,)), y=nb.Categorical(3, (2,), dtype=torch.int32)))
    with pytest.raises(ValueError, match="shape"):
        nb.Stack(["x", "y"], "xy")._transform_spec(nb.Composite(x=nb.Unbounded((2,)), y=nb.Unbounded((3,))))
    with pytest.raises(ValueError, match="same keys"):
        nb.Stack(["x", "y"], "xy")._transform_spec(
            nb.Composite(x=nb.Composite(a=nb.Unbounded(1)), y=nb.Composite(b=nb.Unbounded(1))))


# ------------------------------------------------------------------ envs
def _copy_then_stack(m, **kwargs):
    return m.Compose(m.RenameTransform(["observation"], ["obs_copy"], create_copy=True),
                     m.Stack(["observation", "obs_copy"], "stacked", **kwargs))


@pytest.mark.parametrize("kwargs", [{}, {"dim": -2}, {"del_keys": False}, {"dim": 1, "allow_positive_dim": True}])
def test_env_rollout_matches_torchrl(trl, kwargs):
    ours = nb.TransformedEnv(make_env("pendulum"), _copy_then_stack(nb, **kwargs))
    theirs = trl.TransformedEnv(torchrl_env("pendulum"), _copy_then_stack(trl, **kwargs))
    compare_specs(ours, theirs)
    td, _ = compare_rollouts(ours, theirs, steps=6)
    assert ours._array_path_ready()
    nb.check_env_specs(ours, seed=0)
    assert td["next", "stacked"].shape[0] == 6


def test_stacked_action_unbinds_into_the_base_action(trl):
    # The step output holds no "action" to stack (hence the missing tolerance), and TorchRL's
    # TransformedEnv refuses the new "act" entry when it checks its specs: the reference is its
    # base env driven by hand with the unbound actions
    t = nb.Stack(["action"], "act", in_key_inv="act", out_keys_inv=["action"])
    t.set_missing_tolerance(True)
    ours = nb.TransformedEnv(make_env("pendulum"), t)
    spec = ours.full_action_spec["act"]
    assert spec.shape == torch.Size([1, 1])
    assert torch.equal(spec.high, torch.full((1, 1), 2.0))
    torch.manual_seed(0)
    actions = [ours.full_action_spec["act"].rand() for _ in range(5)]
    base = torchrl_env("pendulum")
    out = []
    for env, key, fn in ((ours, "act", lambda a: a), (base, "action", lambda a: a[..., 0])):
        env.set_seed(0)
        tds, td = [], env.reset()
        for a in actions:
            td = env.step(td.set(key, fn(a).clone()))
            tds.append(td["next"].exclude("act").clone())
            td = td["next"]
        out.append(torch.stack(tds))
    assert_td_equal(out[0], out[1])


def test_batched_envs_match_torchrl(trl):
    def inner(m, env_fn):
        return lambda: m.TransformedEnv(env_fn(), _copy_then_stack(m, dim=-2))

    ours = nb.SerialEnv(2, inner(nb, lambda: make_env("pendulum")))
    theirs = trl.SerialEnv(2, inner(trl, lambda: torchrl_env("pendulum")))
    try:
        compare_specs(ours, theirs)
        compare_rollouts(ours, theirs, steps=4)
        nb.check_env_specs(ours, seed=0)
    finally:
        ours.close()
        theirs.close()
    outer = nb.TransformedEnv(nb.SerialEnv(2, lambda: make_env("pendulum")), _copy_then_stack(nb, dim=-3))
    outer_t = trl.TransformedEnv(trl.SerialEnv(2, lambda: torchrl_env("pendulum")), _copy_then_stack(trl, dim=-3))
    try:
        compare_specs(outer, outer_t)
        td, _ = compare_rollouts(outer, outer_t, steps=4)
        assert td["next", "stacked"].shape == torch.Size([2, 4, 2, 3])
    finally:
        outer.close()
        outer_t.close()


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize("kwargs, exc, match", [
    ({"dim": 0}, ValueError, "negative dim.*allow_positive_dim"),
    ({"dim": 1.0}, TypeError, "dim to be an int"),
    ({"dim": -1, "allow_positive_dim": 1}, TypeError, "allow_positive_dim"),
    ({"del_keys": "yes"}, TypeError, "del_keys"),
    ({"in_key_inv": "ab"}, ValueError, "in_key_inv was given without out_keys_inv"),
    ({"out_keys_inv": ["a", "b"]}, ValueError, "out_keys_inv was given without in_key_inv"),
])
def test_bad_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        nb.Stack(["a", "b"], "ab", **kwargs)


def test_bad_keys():
    with pytest.raises(ValueError, match="out_key to differ"):
        nb.Stack(["a", "b"], "a")
    with pytest.raises(ValueError, match="distinct in_keys"):
        nb.Stack(["a", "a"], "b")
    with pytest.raises(TypeError, match="out_key"):
        nb.Stack(["a", "b"], 3)
    with pytest.raises(TypeError, match="in_keys"):
        nb.Stack(None, "b")


def test_inverse_with_the_wrong_count_raises():
    t = nb.Stack(["a", "b"], "ab", in_key_inv="ab", out_keys_inv=["a", "b"])
    with pytest.raises(ValueError, match="3 entries along dim -1.*out_keys_inv names 2"):
        t.inv(TensorDict({"ab": torch.zeros(4, 3)}, []))
