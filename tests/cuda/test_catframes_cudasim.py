"""CatFrames on CUDA tensors: the ring on the device, masks on the device, nothing copied to the host.

Inside ``simulated_cuda()`` every tensor counts as a CUDA tensor, so CatFrames
takes its CUDA path (``numbarl.core.cuda.frames`` under the Numba simulator,
on the tensors' memory); any device-to-host copy fails. Results are compared
with a clone of the transform run on the CPU path outside the harness, and
with stacks built by hand.

Run with ``NUMBA_ENABLE_CUDASIM=1 python -m pytest tests/cuda`` (see
tests/cudasim_helpers.py); skipped otherwise.
"""
from cudasim_helpers import skip_unless_simulator

skip_unless_simulator()

import pytest  # noqa: E402
import torch  # noqa: E402
from numbarl.torch_api import CatFrames  # noqa: E402
from numbarl.torch_api.transforms.frames import _DeviceRing  # noqa: E402
from simulated_device import simulated_cuda  # noqa: E402
from tensordict import TensorDict  # noqa: E402

pytestmark = [pytest.mark.cudasim, pytest.mark.filterwarnings("ignore::RuntimeWarning")]

FRAMES = "numbarl.core.cuda.frames"
B = 3


def _frame(seed, dtype, shape=(B, 1, 4, 5)):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=g) * 200).to(dtype)


def _script(dtype):
    """A reset, steps, a reset of sub-env 1 only (with the ``"_reset"`` entry), more steps."""
    partial = torch.tensor([[False], [True], [False]])
    return [("reset", None, _frame(0, dtype)), ("step", None, _frame(1, dtype)), ("step", None, _frame(2, dtype)),
            ("reset", partial, _frame(3, dtype)), ("step", None, _frame(4, dtype)), ("step", None, _frame(5, dtype))]


def _play(t, script, key="obs"):
    outs = []
    for op, request, x in script:
        td = TensorDict({key: x.clone()}, [B])
        if op == "reset":
            req = None if request is None else TensorDict({"_reset": request.clone()}, [B])
            outs.append(t._reset(req, td)[key])
        else:
            outs.append(t._call(td)[key])
    return outs


def _by_hand(script, n, same, value):
    """The stacks along a new axis 1 of [B, N, *frame], from the definition of CatFrames."""
    hist = None
    outs = []
    for op, request, x in script:
        if op == "reset":
            mask = torch.ones(B, dtype=torch.bool) if request is None else request.reshape(B)
            fresh = x[:, None].expand(B, n, *x.shape[1:]).clone()
            if not same:
                fresh[:, :-1] = value
            hist = fresh if hist is None else torch.where(mask.view(B, 1, 1, 1, 1), fresh, hist)
        else:
            hist = torch.cat([hist[:, 1:], x[:, None]], dim=1)
        outs.append(hist)
    return outs


@pytest.mark.parametrize("dtype", [torch.float32, torch.uint8, torch.float16, torch.int64])
@pytest.mark.parametrize("padding", ["same", "constant"])
@pytest.mark.parametrize("dim", [-3, -1])
def test_step_by_step_with_a_partial_reset(dtype, padding, dim):
    t = CatFrames(N=3, dim=dim, in_keys=["obs"], padding=padding, padding_value=7)
    reference = t.clone()
    script = _script(dtype)
    want = _play(reference, script)
    with simulated_cuda() as sim:
        got = _play(t, script)
    assert sim.attempts == []
    assert sim.kernel_modules == [FRAMES] * len(script)
    assert isinstance(t.__dict__["_rings"]["obs"], _DeviceRing)
    for g, w in zip(got, want):
        assert g.dtype == dtype and torch.equal(g, w)
    # independently of both paths: the stacks from the definition
    hand = _by_hand(script, 3, padding == "same", 7)
    for g, h in zip(got, hand):
        assert torch.equal(g, torch.cat(h.unbind(1), dim=dim))


def test_steps_before_the_first_reset_hold_the_padding_value():
    t = CatFrames(N=3, dim=-1, in_keys=["obs"], padding_value=-1)
    x = _frame(0, torch.uint8, (B, 2))
    want = t.clone()._call(TensorDict({"obs": x.clone()}, [B]))["obs"]
    with simulated_cuda() as sim:
        got = t._call(TensorDict({"obs": x.clone()}, [B]))["obs"]
    assert sim.attempts == []
    assert torch.equal(got, want)
    assert (got[:, :4] == 255).all() and torch.equal(got[:, 4:], x)  # -1 cast to uint8, as the CPU path


def test_several_keys_and_a_device_mask_shared_between_them():
    t = CatFrames(N=2, dim=-1, in_keys=["a", "b"], out_keys=["sa", "sb"])
    reference = t.clone()
    a = [_frame(i, torch.float32, (B, 2)) for i in (0, 2)]
    b = [_frame(i, torch.uint8, (B, 3)) for i in (1, 3)]
    request = torch.tensor([True, False, True])

    def play(tr):
        tr._reset(None, TensorDict({"a": a[0].clone(), "b": b[0].clone()}, [B]))
        req = TensorDict({"_reset": request.clone()}, [B])
        return tr._reset(req, TensorDict({"a": a[1].clone(), "b": b[1].clone()}, [B]))

    want = play(reference)
    with simulated_cuda() as sim:
        got = play(t)
    assert sim.attempts == []
    for key in ("sa", "sb"):
        assert torch.equal(got[key], want[key])


def _trajectory(dtype, time_first=False):
    g = torch.Generator().manual_seed(0)
    obs = (torch.rand(2, 6, 2, 3, generator=g) * 100).to(dtype)
    done = torch.zeros(2, 6, 1, dtype=torch.bool)
    done[0, 1] = done[0, 4] = done[1, 2] = True
    nxt = obs + 1
    if time_first:
        obs, nxt, done = obs.transpose(0, 1), nxt.transpose(0, 1), done.transpose(0, 1)
        return lambda: TensorDict({"obs": obs.clone(), ("next", "obs"): nxt.clone(), ("next", "done"): done.clone()},
                                  [6, 2], names=["time", None])
    return lambda: TensorDict({"obs": obs.clone(), ("next", "obs"): nxt.clone(), ("next", "done"): done.clone()},
                              [2, 6])


@pytest.mark.parametrize("dtype", [torch.float32, torch.uint8, torch.float16])
@pytest.mark.parametrize("padding", ["same", "constant"])
@pytest.mark.parametrize("time_first", [False, True])
def test_offline_forward_with_dones(dtype, padding, time_first):
    t = CatFrames(N=3, dim=-2, in_keys=["obs", ("next", "obs")], padding=padding, padding_value=5)
    make = _trajectory(dtype, time_first)
    want = t.clone()(make())
    with simulated_cuda() as sim:
        got = t(make())
    assert sim.attempts == []
    assert sim.kernel_modules == [FRAMES, FRAMES]
    for key in ("obs", ("next", "obs")):
        assert got[key].dtype == dtype and torch.equal(got[key], want[key])
    # step 2 of trajectory 0 starts an episode (done at step 1): its window is that step, padded
    obs = make()["obs"]
    first = obs[2, 0] if time_first else obs[0, 2]
    window = got["obs"][2, 0] if time_first else got["obs"][0, 2]
    pad = first if padding == "same" else torch.full_like(first, 5)
    assert torch.equal(window, torch.cat([pad, pad, first], dim=-2))


def test_offline_inverse_with_as_inverse():
    t = CatFrames(N=2, dim=-1, in_keys=["obs"], as_inverse=True)
    make = _trajectory(torch.float32)
    want = t.clone().inv(make())
    with simulated_cuda() as sim:
        got = t.inv(make())
    assert sim.attempts == [] and sim.kernel_modules == [FRAMES]
    assert torch.equal(got["obs"], want["obs"])


def test_a_ring_on_one_device_refuses_frames_on_another():
    t = CatFrames(N=2, dim=-1, in_keys=["obs"])
    x = _frame(0, torch.float32, (B, 2))
    tds = [TensorDict({"obs": x.clone()}, [B]) for _ in range(3)]
    req = TensorDict({"_reset": torch.tensor([True, False, False])}, [B])
    t._reset(None, TensorDict({"obs": x.clone()}, [B]))  # the ring is made on the host
    with simulated_cuda() as sim:
        with pytest.raises(ValueError, match=r"CatFrames keeps the frame history of 'obs' on cpu but got frames on "
                                             r"cpu; pass the frames on cpu, or reset every sub-env \(a reset without "
                                             r"'_reset'\) to restart the history on cpu"):
            t._call(tds[0])
        with pytest.raises(ValueError, match="keeps the frame history"):
            t._reset(req, tds[1])
        # a reset of every sub-env restarts the history on the device
        out = t._reset(None, tds[2])["obs"]
    assert sim.attempts == []
    assert isinstance(t.__dict__["_rings"]["obs"], _DeviceRing)
    assert torch.equal(out, torch.cat([x, x], dim=-1))
    # and back: the host path refuses the device ring, unless every sub-env resets
    with pytest.raises(ValueError, match="keeps the frame history of 'obs' on cpu"):
        t._call(TensorDict({"obs": x.clone()}, [B]))
    t._reset(None, TensorDict({"obs": x.clone()}, [B]))
    assert type(t.__dict__["_rings"]["obs"]) is tuple


def test_a_changed_frame_shape_mid_episode_raises_on_the_device_ring():
    t = CatFrames(N=2, dim=-1, in_keys=["obs"])
    first = TensorDict({"obs": _frame(0, torch.float32, (B, 2))}, [B])
    wider = TensorDict({"obs": _frame(1, torch.float32, (B, 3))}, [B])
    with simulated_cuda() as sim:
        t._reset(None, first)
        with pytest.raises(ValueError, match=r"CatFrames keeps the frame history of 'obs'.*middle of an episode"):
            t._call(wider)
    assert sim.attempts == []


def test_bad_reset_mask_shape_raises():
    t = CatFrames(N=2, dim=-1, in_keys=["obs"])
    req = TensorDict({"_reset": torch.ones(2, dtype=torch.bool)}, [2])
    td = TensorDict({"obs": _frame(0, torch.float32, (B, 2))}, [B])
    with simulated_cuda():
        with pytest.raises(ValueError, match=r"CatFrames requires '_reset' of the batch shape \(3,\)"):
            t._reset(req, td)


def test_a_clone_keeps_the_device_history_in_its_own_ring():
    t = CatFrames(N=3, dim=-1, in_keys=["obs"])
    xs = [TensorDict({"obs": _frame(i, torch.float32, (B, 2))}, [B]) for i in range(4)]
    with simulated_cuda() as sim:
        t._reset(None, xs[0].clone())
        t._call(xs[1].clone())
        twin = t.clone()
        a = t._call(xs[2].clone())["obs"]
        b = twin._call(xs[3].clone())["obs"]
    assert sim.attempts == []
    ring, twin_ring = t.__dict__["_rings"]["obs"], twin.__dict__["_rings"]["obs"]
    assert isinstance(twin_ring, _DeviceRing) and twin_ring.buffer is not ring.buffer
    x0, x1, x2, x3 = (x["obs"] for x in xs)
    assert torch.equal(a, torch.cat([x0, x1, x2], dim=-1)) and torch.equal(b, torch.cat([x0, x1, x3], dim=-1))
