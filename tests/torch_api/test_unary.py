"""UnaryTransform and Hash vs TorchRL 0.14.1: forward, inverse, specs, rollouts, repertoire, bad input."""
import pytest
import torch
from tensordict import NonTensorData, TensorDict

import numbarl.torch_api as nb
from compare import assert_td_equal
from transform_cases import make_env
from transform_diff import Replay, compare_rollouts, compare_specs, torchrl_env

pytestmark = pytest.mark.torchrl


@pytest.fixture
def trl():
    """``torchrl.envs`` (TorchRL 0.14.1), or a skip when the optional peer is missing."""
    return pytest.importorskip("torchrl.envs", reason="torchrl 0.14.1 is an optional peer for differential tests")


def _norm(v):
    return v.norm(dim=-1)


def _as_text(v):
    return str(v.numpy().tobytes())


def _double(v):
    return v * 2


def _half(v):
    return v / 2


def _text_hash(v):
    return nb.Hash.reproducible_hash(str(v.tolist()))


# ------------------------------------------------------------------ UnaryTransform offline
def test_forward_and_inverse_match_torchrl(trl):
    td = TensorDict({"x": torch.arange(6.0).reshape(2, 3), "s": NonTensorData("abc")}, [])
    for kwargs in ({"fn": _double}, {"fn": _double, "inv_fn": _half}):
        args = (["x"], ["y"], ["x"], ["z"])
        ours, theirs = nb.UnaryTransform(*args, **kwargs), trl.UnaryTransform(*args, **kwargs)
        assert_td_equal(ours(td.clone()), theirs(td.clone()))
        src = td.clone().set("z", torch.ones(2, 3))
        assert_td_equal(ours.inv(src.clone()), theirs.inv(src.clone()))
    # non-tensor input: unwrapped to the str, or given raw
    for raw, fn in ((False, str.upper), (True, lambda v: type(v).__name__)):
        ours = nb.UnaryTransform(["s"], ["u"], fn=fn, use_raw_nontensor=raw)
        theirs = trl.UnaryTransform(["s"], ["u"], fn=fn, use_raw_nontensor=raw)
        a, b = ours(td.clone()), theirs(td.clone())
        assert a["u"] == b["u"]


def test_repr_matches_torchrl(trl):
    for m in (nb, trl):
        assert repr(m.UnaryTransform(["a"], ["b"], fn=_double)) == "UnaryTransform(keys=['a'])"
        assert repr(m.Hash(["a"], ["b"])) == "Hash(keys=['a'])"


def test_missing_key_raises_keyerror(trl):
    td = TensorDict({"x": torch.zeros(2)}, [])
    with pytest.raises(KeyError, match="'q'"):
        nb.UnaryTransform(["q"], ["y"], fn=_double)(td)
    with pytest.raises(KeyError):
        trl.UnaryTransform(["q"], ["y"], fn=_double)(td.clone())


# ------------------------------------------------------------------ UnaryTransform in envs
@pytest.mark.parametrize("args, fn", [
    ((["observation"], ["norm"]), _norm),
    ((["observation"], ["observation"]), _double),
    ((["reward"], ["reward2"]), _double),
    ((["observation"], ["text"]), _as_text),
])
def test_env_specs_and_rollouts_match_torchrl(trl, args, fn):
    ours = nb.TransformedEnv(make_env("pendulum"), nb.UnaryTransform(*args, fn=fn))
    theirs = trl.TransformedEnv(torchrl_env("pendulum"), trl.UnaryTransform(*args, fn=fn))
    compare_specs(ours, theirs)
    if fn is not _as_text:
        compare_rollouts(ours, theirs, steps=5)
    else:  # non-tensor stacks: compare the strings, then the rest
        torch.manual_seed(0)
        actions = [ours.full_action_spec["action"].rand() for _ in range(5)]
        a, b = compare_rollouts(nb.TransformedEnv(make_env("pendulum")), torchrl_env("pendulum"), steps=5,
                                actions=actions)
        for env, ref in ((ours, a), (theirs, b)):
            env.set_seed(0)
            td = env.rollout(5, Replay(actions), break_when_any_done=False)
            assert list(td["next", "text"]) == [_as_text(o) for o in ref["next", "observation"]]
            assert list(td["text"]) == [_as_text(o) for o in ref["observation"]]
    nb.check_env_specs(ours, seed=0)


def test_env_inverse_action_matches_torchrl(trl):
    args = ([], [], ["action"], ["action_big"])
    ours = nb.TransformedEnv(make_env("pendulum"), nb.UnaryTransform(*args, fn=_double, inv_fn=_half))
    theirs = trl.TransformedEnv(torchrl_env("pendulum"), trl.UnaryTransform(*args, fn=_double, inv_fn=_half))
    compare_specs(ours, theirs)
    assert "action_big" in ours.full_action_spec.keys()
    torch.manual_seed(0)
    actions = [ours.full_action_spec["action"].rand() for _ in range(4)]
    out = []
    for env in (ours, theirs):
        env.set_seed(0)
        tds, td = [], env.reset()
        for a in actions:
            td = env.step(td.set("action", a.clone()).set("action_big", 2 * a))
            tds.append(td["next"].clone())
            td = td["next"]
        out.append(torch.stack(tds))
    assert_td_equal(out[0], out[1])


def test_batched_envs_match_torchrl(trl):
    def inner(m, env_fn):
        return lambda: m.TransformedEnv(env_fn(), m.UnaryTransform(["observation"], ["norm"], fn=_norm))

    ours = nb.SerialEnv(2, inner(nb, lambda: make_env("pendulum")))
    theirs = trl.SerialEnv(2, inner(trl, lambda: torchrl_env("pendulum")))
    outer = nb.TransformedEnv(nb.SerialEnv(2, lambda: make_env("pendulum")),
                              nb.UnaryTransform(["observation"], ["norm"], fn=_norm))
    outer_t = trl.TransformedEnv(trl.SerialEnv(2, lambda: torchrl_env("pendulum")),
                                 trl.UnaryTransform(["observation"], ["norm"], fn=_norm))
    try:
        for a, b in ((ours, theirs), (outer, outer_t)):
            compare_specs(a, b)
            td, _ = compare_rollouts(a, b, steps=4)
            assert td["next", "norm"].shape == torch.Size([2, 4])
            nb.check_env_specs(a, seed=0)
    finally:
        for env in (ours, theirs, outer, outer_t):
            env.close()


# ------------------------------------------------------------------ Hash
def test_reproducible_hash_matches_torchrl(trl):
    for text, seed in (("abc", None), ("", None), (None, None), ("abc", "salt"), (12, None)):
        assert torch.equal(nb.Hash.reproducible_hash(text, seed), trl.Hash.reproducible_hash(text, seed))


def test_hash_forward_matches_torchrl(trl):
    td = TensorDict({"s": NonTensorData("hello"), "x": torch.arange(3.0)}, [])
    for kwargs in ({}, {"seed": "pepper"}):
        a = nb.Hash(["s"], ["h"], **kwargs)(td.clone())
        b = trl.Hash(["s"], ["h"], **kwargs)(td.clone())
        assert_td_equal(a, b)
    a = nb.Hash(["x"], ["h"], hash_fn=_text_hash)(td.clone())
    assert_td_equal(a, trl.Hash(["x"], ["h"], hash_fn=_text_hash)(td.clone()))
    assert a["h"].dtype == torch.uint8 and a["h"].shape == torch.Size([32])


def test_hash_inverse_and_repertoire_match_torchrl(trl):
    inputs = [TensorDict({"obs": "some text"}, []), TensorDict({"obs": torch.arange(4.0)}, [])]
    for m in (nb, trl):
        t = m.Hash(["obs"], ["h"], ["obs"], ["h"])
        hashed = [t(i.clone()).exclude("obs") for i in inputs]
        assert len(t._repertoire) == 2
        back = [t.inv(h.clone()) for h in hashed]
        assert back[0]["obs"] == "some text"
        assert torch.equal(back[1]["obs"], inputs[1]["obs"])
    repertoire = {}
    t = nb.Hash(["obs"], ["h"], repertoire=repertoire)
    out = t(TensorDict({"obs": "abc"}, []))["h"]
    assert repertoire[nb.Hash.hash_to_repertoire_key(out)] == "abc"
    assert t.get_input_from_hash(out) == "abc"
    assert t.state_dict() == {"_repertoire": repertoire}
    assert nb.Hash.hash_to_repertoire_key(torch.tensor([[1, 2], [3, 4]])) == \
        trl.Hash.hash_to_repertoire_key(torch.tensor([[1, 2], [3, 4]]))


def test_hash_without_repertoire_cannot_invert():
    t = nb.Hash(["obs"], ["h"])
    out = t(TensorDict({"obs": "abc"}, []))["h"]
    with pytest.raises(RuntimeError, match="requires a repertoire"):
        t.get_input_from_hash(out)
    t = nb.Hash(["obs"], ["h"], repertoire={})
    with pytest.raises(KeyError, match="never produced"):
        t.get_input_from_hash(torch.zeros(32, dtype=torch.uint8))


def test_hash_env_matches_torchrl(trl):
    ours = nb.TransformedEnv(make_env("pendulum"), nb.Hash(["observation"], ["h"], hash_fn=_text_hash))
    theirs = trl.TransformedEnv(torchrl_env("pendulum"), trl.Hash(["observation"], ["h"], hash_fn=_text_hash))
    compare_specs(ours, theirs)
    compare_rollouts(ours, theirs, steps=4)


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize("kwargs, exc, match", [
    ({"fn": 3}, TypeError, "fn to be callable"),
    ({"fn": _double, "inv_fn": "x"}, TypeError, "inv_fn to be callable"),
    ({"fn": _double, "use_raw_nontensor": 1}, TypeError, "use_raw_nontensor"),
])
def test_unary_bad_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        nb.UnaryTransform(["a"], ["b"], **kwargs)


def test_unary_requires_fn_and_matching_keys():
    with pytest.raises(TypeError, match="fn"):
        nb.UnaryTransform(["a"], ["b"])
    with pytest.raises(ValueError, match="same length"):
        nb.UnaryTransform(["a", "c"], ["b"], fn=_double)


def test_hash_bad_arguments():
    with pytest.raises(TypeError, match="hash_fn to be callable"):
        nb.Hash(["a"], ["b"], hash_fn=5)
    with pytest.raises(TypeError, match="repertoire"):
        nb.Hash(["a"], ["b"], repertoire=[])
    t = nb.Hash(["a"], ["b"], hash_fn=lambda v: "not a tensor")
    with pytest.raises(ValueError, match="return a tensor"):
        t(TensorDict({"a": torch.zeros(1)}, []))
