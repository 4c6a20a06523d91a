"""CatFrames offline (``forward`` / ``unfolding`` on replay-buffer data) against TorchRL 0.14.1's CatFrames.

Synthetic ``[*B, T]`` trajectories with dones mid-sequence (at the first step,
back to back, at the last step), frames of several ranks and dtypes, every
stacking dim, both padding modes, past and future windows, padding masks.
Each case runs both CatFrames on clones of the same data and asserts the
same keys and the same values.
"""
import warnings

import pytest
import torch
from compare import assert_td_equal
from numbarl.torch_api import CatFrames
from tensordict import TensorDict

pytestmark = pytest.mark.torchrl

T = 9
# done after steps 0, 3, 4 of row 0 (a one-step episode, back-to-back dones) and at the last step of row 1
DONES = {(0, 0), (0, 3), (0, 4), (1, 8), (2, 5)}


def _data(batch, frame, dtype, names=True, root_and_next=True):
    """A ``[*batch, T]`` trajectory whose frames all differ, ``("next", obs)`` one step ahead of ``obs``."""
    rows = 1
    for b in batch:
        rows *= b
    count = 1
    for f in frame:
        count *= f
    steps = torch.arange(rows * (T + 1) * count).reshape(rows, T + 1, *frame)
    if dtype == torch.uint8:
        steps = steps % 251
    steps = steps.to(dtype)
    done = torch.zeros(rows, T, 1, dtype=torch.bool)
    for r, t in DONES:
        if r < rows:
            done[r, t] = True
    entries = {"obs": steps[:, :-1], ("next", "done"): done}
    if root_and_next:
        entries["next", "obs"] = steps[:, 1:]
    td = TensorDict(entries, [rows, T]).reshape(*batch, T)
    if names:
        td.names = [None] * len(batch) + ["time"]
    return td


def _both(kw, data, method):
    """(ours, theirs): each CatFrames built from ``kw`` applied by ``method`` to its own clone of ``data``."""
    from torchrl.envs import CatFrames as RLCatFrames

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = getattr(RLCatFrames(**kw), method)(data.clone())
        ours = getattr(CatFrames(**kw), method)(data.clone())
    return ours, theirs


def _check(ours, theirs):
    assert set(ours.keys(True, True)) == set(theirs.keys(True, True))
    assert_td_equal(ours, theirs)


@pytest.mark.parametrize("padding", ["same", "constant"])
@pytest.mark.parametrize("frame,dim", [((4,), -1), ((3, 2), -1), ((3, 2), -2), ((2, 3, 4), -1), ((2, 3, 4), -2),
                                       ((2, 3, 4), -3)])
@pytest.mark.parametrize("n", [1, 2, 4, T + 3])
def test_past_windows_every_dim(torchrl, padding, frame, dim, n):
    data = _data((3,), frame, torch.float32)
    kw = dict(N=n, dim=dim, in_keys=["obs", ("next", "obs")], padding=padding, padding_value=-1.5)
    if n == 1:  # TorchRL 0.14.1 raises IndexError for a root+next pair at N=1; stack the root key alone
        kw["in_keys"] = ["obs"]
    lead = -len(frame)
    if len(kw["in_keys"]) == 2 and dim != lead:
        # TorchRL 0.14.1 stacks a root+next pair only along the leading frame dim (else a torch.cat
        # RuntimeError): its reference runs on frames whose stack dim is moved there, then moved back
        ours = CatFrames(**kw).unfolding(data.clone())
        moved = data.clone()
        for key in kw["in_keys"]:
            moved.set(key, moved.get(key).movedim(dim, lead))
        _, theirs = _both(dict(kw, dim=lead), moved, "unfolding")
        for key in kw["in_keys"]:
            theirs.set(key, theirs.get(key).movedim(lead, dim))
    else:
        ours, theirs = _both(kw, data, "unfolding")
    _check(ours, theirs)
    assert ours["obs"].shape[dim] == n * frame[dim]


@pytest.mark.parametrize("dtype,value", [(torch.uint8, 7), (torch.int64, -3), (torch.float16, 0.5),
                                         (torch.float64, 2.25)])
@pytest.mark.parametrize("padding", ["same", "constant"])
def test_dtypes_and_padding_values(torchrl, dtype, value, padding):
    data = _data((3,), (2, 3), dtype)
    kw = dict(N=3, dim=-2, in_keys=["obs", ("next", "obs")], padding=padding, padding_value=value)
    ours, theirs = _both(kw, data, "unfolding")
    _check(ours, theirs)
    assert ours["obs"].dtype == dtype


@pytest.mark.parametrize("batch", [(), (3,), (2, 2), (1, 3)])
@pytest.mark.parametrize("future", [False, True])
@pytest.mark.parametrize("padding", ["same", "constant"])
def test_batch_shapes_future_and_masks(torchrl, batch, future, padding):
    data = _data(batch, (2, 2), torch.float32, names=bool(batch), root_and_next=not future)
    kw = dict(N=4, dim=-1, in_keys=["obs"], out_keys=["stack"], padding=padding, padding_value=9.0,
              future=future, mask_key=("meta", "pad"))
    ours, theirs = _both(kw, data, "unfolding")
    _check(ours, theirs)
    assert ours["meta", "pad"].shape == (*batch, T, 4)
    assert ours["meta", "pad"].dtype == torch.bool


def test_episodes_never_mix(torchrl):
    """Hand-checked: a one-step episode's window holds that step only, padded; the next episode starts fresh."""
    data = _data((3,), (1,), torch.float32)
    kw = dict(N=3, dim=-1, in_keys=["obs"], padding="constant", padding_value=-1.0, mask_key="pad")
    ours, theirs = _both(kw, data, "unfolding")
    _check(ours, theirs)
    row = ours["obs"][0].tolist()
    # row 0 frames are 0..8; episodes end after steps 0, 3, 4: [0], [1, 2, 3], [4], [5 .. 8]
    assert row[0] == [-1.0, -1.0, 0.0]
    assert row[1] == [-1.0, -1.0, 1.0]
    assert row[3] == [1.0, 2.0, 3.0]
    assert row[4] == [-1.0, -1.0, 4.0]
    assert row[6] == [-1.0, 5.0, 6.0]
    assert ours["pad"][0, 4].tolist() == [True, True, False]


@pytest.mark.parametrize("future", [False, True])
def test_time_dim_found_by_name(torchrl, future):
    data = _data((2,), (3,), torch.float32, root_and_next=not future).transpose(0, 1)
    assert data.names == ["time", None]
    kw = dict(N=3, dim=-1, in_keys=["obs"], future=future, mask_key="pad")
    ours, theirs = _both(kw, data, "unfolding")
    _check(ours, theirs)


def test_forward_is_unfolding(torchrl):
    data = _data((2,), (4,), torch.float32)
    kw = dict(N=3, dim=-1, in_keys=["obs", ("next", "obs")], out_keys=["s", ("next", "s")], padding="constant")
    ours, theirs = _both(kw, data, "forward")
    _check(ours, theirs)
    assert torch.equal(ours["s"], CatFrames(**kw).unfolding(data.clone())["s"])


def test_future_without_done_treats_rows_as_trajectories(torchrl):
    data = _data((2,), (3,), torch.float32, root_and_next=False).exclude(("next", "done"))
    kw = dict(N=4, dim=-1, in_keys=["obs"], future=True, padding="constant", padding_value=-4.0, mask_key="pad")
    ours, theirs = _both(kw, data, "unfolding")
    _check(ours, theirs)
    assert ours["pad"][:, : T - 3].any().item() is False


def test_rb_transform_and_sampler_stack_at_sampling(torchrl):
    from torchrl.data import LazyTensorStorage, ReplayBuffer

    obs = torch.arange(60.0).unsqueeze(-1)
    done = (torch.arange(60) % 10 == 9).unsqueeze(-1)
    data = TensorDict({"obs": obs, ("next", "obs"): obs + 1, ("next", "done"): done, "stack": obs.expand(60, 3)},
                      [60])
    t = CatFrames(N=3, dim=-1, in_keys=["obs"], out_keys=["stack"])
    transform, sampler = t.make_rb_transform_and_sampler(batch_size=8)
    rb = ReplayBuffer(sampler=sampler, storage=LazyTensorStorage(60), transform=transform)
    rb.extend(data)
    assert "stack" not in rb._storage._storage.keys()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sample = rb.sample(8)
    assert sample.shape == (8,)
    stack = sample["stack"]
    assert stack.shape == (8, 3)
    # slices never cross an episode end (every 10 steps): three consecutive steps of one episode
    assert torch.equal(stack, stack[:, :1] + torch.arange(3.0))
    assert bool(((stack[:, 0] % 10) <= 7).all())
    assert torch.equal(sample["next", "stack"], stack + 1)
    assert torch.equal(sample["obs"], stack[:, -1:])


@pytest.mark.parametrize("batch_size,exc,match", [(0, ValueError, "batch_size >= 1, got 0"),
                                                   (2.0, TypeError, "batch_size to be an int, got float")])
def test_rb_transform_and_sampler_bad_batch_size(batch_size, exc, match):
    with pytest.raises(exc, match=match):
        CatFrames(N=3, dim=-1, in_keys=["obs"]).make_rb_transform_and_sampler(batch_size)
