"""MultiStepTransform against torchrl 0.14.1's: the same batches through both, consecutive calls carrying the
buffer, several n_steps / gamma / done layouts; replay-buffer use; bad arguments.
"""
import pickle
import warnings

import pytest
import torch
from tensordict import TensorDict

from compare import assert_td_equal
from numbarl import torch_api as N

warnings.filterwarnings("ignore", category=DeprecationWarning)
torchrl_envs = pytest.importorskip("torchrl.envs", reason="differential tests need torchrl 0.14.1")
T = torchrl_envs


def batch(n_batch, length, start, seed, p_done=0.15, done_shape="trailing", mask=False, extra=False):
    """A stored batch: obs counters, random rewards, done at random places (also first and last steps)."""
    g = torch.Generator().manual_seed(seed)
    steps = (torch.arange(start, start + length).expand(n_batch, length) + 1000 * torch.arange(n_batch)[:, None])
    done = torch.rand(n_batch, length, 1, generator=g) < p_done
    reward = torch.randn(n_batch, length, 1, generator=g)
    if done_shape == "flat":
        done, reward = done.squeeze(-1), reward.squeeze(-1)
    nxt = {"steps": steps + 1, "obs": torch.randn(n_batch, length, 3, generator=g), "reward": reward,
           "done": done, "terminated": done.clone(), "truncated": torch.zeros_like(done)}
    if extra:
        nxt["agent"] = TensorDict({"pos": torch.randn(n_batch, length, 2, generator=g)}, [n_batch, length])
        nxt["bonus"] = torch.randn(n_batch, length, 1, generator=g, dtype=torch.float64)
    td = TensorDict({"steps": steps, "obs": torch.randn(n_batch, length, 3, generator=g), "next": nxt},
                    [n_batch, length])
    if mask:
        td["mask"] = torch.rand(n_batch, length, generator=g) < 0.8
    return td


def assert_same(ours, theirs):
    assert (ours is None) == (theirs is None)
    if ours is not None:
        assert_td_equal(ours, theirs, atol=1e-5, rtol=1e-5)


def run_both(lengths, n_steps, gamma, seed=0, change_n=None, **kwargs):
    ours = N.MultiStepTransform(n_steps, gamma, **kwargs.pop("t", {}))
    theirs = T.MultiStepTransform(n_steps, gamma, **kwargs.pop("t_theirs", {}))
    start = 0
    outs = []
    for i, length in enumerate(lengths):
        td = batch(kwargs.get("n_batch", 2), length, start, seed + i,
                   **{k: v for k, v in kwargs.items() if k != "n_batch"})
        start += length
        a, b = ours.inv(td.clone()), theirs.inv(td.clone())
        assert_same(a, b)
        assert_td_equal(ours._buffer, theirs._buffer)
        outs.append(a)
        if change_n is not None:
            ours.n_steps = theirs.n_steps = change_n(ours.n_steps)
    return outs


@pytest.mark.parametrize("n_steps", [1, 2, 3, 5])
@pytest.mark.parametrize("gamma", [0.0, 0.5, 0.9, 0.99, 1.0])
def test_matches_torchrl_over_consecutive_calls(n_steps, gamma):
    run_both([7, 4, 1, 2, 13, 30], n_steps, gamma, seed=n_steps)


@pytest.mark.parametrize("p_done", [0.0, 0.5, 1.0])
def test_done_density(p_done):
    run_both([10, 10, 10], 3, 0.9, seed=3, p_done=p_done)


def test_done_at_first_and_last_steps():
    ours, theirs = N.MultiStepTransform(3, 0.9), T.MultiStepTransform(3, 0.9)
    for seed in range(3):
        td = batch(2, 9, 9 * seed, seed, p_done=0.0)
        td["next", "done"][:, 0] = True
        td["next", "done"][0, -1] = True
        td["next", "done"][1, 4] = True
        assert_same(ours.inv(td.clone()), theirs.inv(td.clone()))


def test_flat_done_mask_nested_entries_and_several_rewards():
    run_both([8, 8, 5], 3, 0.95, seed=4, done_shape="flat", mask=True, extra=True,
             t=dict(reward_keys=["reward", "bonus"]), t_theirs=dict(reward_keys=["reward", "bonus"]))


def test_done_per_agent():
    ours, theirs = N.MultiStepTransform(3, 0.9), T.MultiStepTransform(3, 0.9)
    g = torch.Generator().manual_seed(0)
    for _ in range(3):
        td = TensorDict({"obs": torch.randn(2, 9, 3, 2, generator=g), "next": {
            "obs": torch.randn(2, 9, 3, 2, generator=g), "reward": torch.randn(2, 9, 3, 1, generator=g),
            "done": torch.rand(2, 9, 3, generator=g) < 0.2}}, [2, 9])
        assert_same(ours.inv(td.clone()), theirs.inv(td.clone()))


def test_custom_keys():
    kw = dict(done_key="terminated", done_keys=["done", "terminated", "truncated", "obs"], mask_key="valid")
    ours, theirs = N.MultiStepTransform(2, 0.8, **kw), T.MultiStepTransform(2, 0.8, **kw)
    for seed in range(3):
        td = batch(3, 6, 6 * seed, seed, p_done=0.3)
        td["next", "terminated"] = td["next", "done"] & (torch.rand(3, 6, 1) < 0.5)
        td["valid"] = torch.arange(6).expand(3, 6) < 5
        assert_same(ours.inv(td.clone()), theirs.inv(td.clone()))


def test_one_batch_dim():
    run_both([12, 5], 4, 0.9, seed=5, n_batch=1)
    ours, theirs = N.MultiStepTransform(3, 0.9), T.MultiStepTransform(3, 0.9)
    for seed in range(3):
        td = batch(1, 8, 8 * seed, seed)[0]
        assert_same(ours.inv(td.clone()), theirs.inv(td.clone()))


def test_n_steps_changed_between_calls():
    run_both([10] * 6, 3, 0.98, seed=6, change_n=lambda n: n + 1)
    run_both([10] * 6, 5, 0.98, seed=7, change_n=lambda n: max(n - 1, 1))


def test_insensitive_to_how_data_is_cut():
    whole = batch(2, 60, 0, 8, p_done=0.1)
    t = N.MultiStepTransform(4, 0.9)
    first = t.inv(whole.clone())
    t = N.MultiStepTransform(4, 0.9)
    pieces = [t.inv(whole[:, i:j].clone()) for i, j in ((0, 3), (3, 20), (20, 21), (21, 60))]
    assert_td_equal(torch.cat([p for p in pieces if p is not None], -1), first, atol=1e-6, rtol=1e-6)


def test_too_short_returns_none_and_keeps_buffer():
    t = N.MultiStepTransform(5, 0.9)
    assert t.inv(batch(2, 3, 0, 0)) is None
    assert t._buffer.batch_size == (2, 3)
    out = t.inv(batch(2, 4, 3, 1))
    assert out.batch_size == (2, 2) and out["steps"][0].tolist() == [0, 1]


def test_input_is_not_modified():
    td = batch(2, 10, 0, 9, extra=True)
    before = td.clone()
    N.MultiStepTransform(3, 0.9).inv(td)
    assert_td_equal(td, before)


def test_replay_buffer_contents():
    # TorchRL's ReplayBuffer calls inv only on TorchRL Transform subclasses: ours is applied before extend
    from torchrl.data import LazyTensorStorage, ReplayBuffer

    data = TensorDict({"steps": torch.arange(100), "next": {
        "steps": torch.arange(1, 101), "reward": torch.ones(100, 1),
        "done": torch.zeros(100, 1, dtype=torch.bool), "terminated": torch.zeros(100, 1, dtype=torch.bool),
        "truncated": torch.zeros(100, 1, dtype=torch.bool)}}, [100])
    ours, rb_ours = N.MultiStepTransform(3, 0.98), ReplayBuffer(storage=LazyTensorStorage(100))
    rb_theirs = ReplayBuffer(storage=LazyTensorStorage(100), transform=T.MultiStepTransform(3, 0.98))
    for piece in data.split(10):
        out = ours.inv(piece.clone())
        if out is not None:
            rb_ours.extend(out)
        rb_theirs.extend(piece.clone())
    assert len(rb_ours) == len(rb_theirs) == 97
    assert_td_equal(rb_ours[:], rb_theirs[:], atol=1e-6, rtol=1e-6)
    assert (rb_ours[:]["next", "steps"] == torch.arange(3, 100)).all()


def test_integer_and_half_rewards():
    td = batch(1, 6, 0, 0, p_done=0.0)
    td["next", "reward"] = torch.arange(6).view(1, 6, 1)
    out = N.MultiStepTransform(2, 1.0).inv(td.clone())
    assert out["next", "reward"].dtype == torch.int64
    assert out["next", "reward"].flatten().tolist() == [1, 3, 5, 7]
    td["next", "reward"] = torch.ones(1, 6, 1, dtype=torch.float16)
    out = N.MultiStepTransform(3, 0.5).inv(td.clone())
    assert out["next", "reward"].dtype == torch.float16
    assert out["next", "reward"].flatten().tolist() == [1.75, 1.75, 1.75]


def test_copies_pickle_and_state_dict():
    t = N.MultiStepTransform(3, 0.9)
    t.inv(batch(2, 10, 0, 0))
    nxt = batch(2, 10, 10, 1)
    want = t.clone().inv(nxt.clone())
    assert_td_equal(pickle.loads(pickle.dumps(t)).inv(nxt.clone()), want)
    assert_td_equal(N.Compose(t.clone()).inv(nxt.clone()), want)
    assert dict(t.state_dict()) == dict(T.MultiStepTransform(3, 0.9).state_dict()) == {}
    assert "n_steps=3" in repr(t)


@pytest.mark.parametrize("kwargs, err, match", [
    (dict(n_steps=0, gamma=0.9), ValueError, "n_steps >= 1, got 0"),
    (dict(n_steps=2.5, gamma=0.9), TypeError, "n_steps to be an int"),
    (dict(n_steps=True, gamma=0.9), TypeError, "n_steps to be an int"),
    (dict(n_steps=2, gamma=1.5), ValueError, r"gamma in \[0, 1\], got 1.5"),
    (dict(n_steps=2, gamma="0.9"), TypeError, "gamma to be a real number"),
    (dict(n_steps=2, gamma=0.9, reward_keys=[3]), TypeError, "reward_keys"),
    (dict(n_steps=2, gamma=0.9, done_key=""), ValueError, "empty"),
])
def test_bad_arguments(kwargs, err, match):
    with pytest.raises(err, match=match):
        N.MultiStepTransform(**kwargs)


def test_bad_n_steps_set_later():
    t = N.MultiStepTransform(2, 0.9)
    with pytest.raises(ValueError, match="n_steps >= 1, got -1"):
        t.n_steps = -1
    assert t.n_steps == 2


def test_bad_data():
    t = N.MultiStepTransform(2, 0.9)
    with pytest.raises(ValueError, match="time dim"):
        t.inv(batch(1, 5, 0, 0)[0, 0])
    td = batch(2, 5, 0, 0)
    with pytest.raises(KeyError, match="done"):
        N.MultiStepTransform(2, 0.9).inv(td.exclude(("next", "done")))
    with pytest.raises(KeyError, match="reward entry .*rew.* not found"):
        N.MultiStepTransform(2, 0.9, reward_keys=["rew"]).inv(td.clone())
    td["next", "done"] = torch.zeros(2, 5, 2, 2, dtype=torch.bool)
    with pytest.raises(ValueError, match="starts with the done shape"):
        N.MultiStepTransform(2, 0.9).inv(td)


def test_refused_in_env():
    from numbarl.torch_api.envs import GymEnv

    env = N.TransformedEnv(GymEnv("Pendulum-v1"), N.MultiStepTransform(2, 0.9))
    env.set_seed(0)
    with pytest.raises(ValueError, match="exclusively to replay buffers"):
        env.rollout(3)
