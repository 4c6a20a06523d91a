"""ObservationNorm on its CUDA path, under the Numba CUDA simulator: forward and inverse on the
device, init_stats on device rollouts (NaN after a rejected batch); compared with the CPU path.

Run with ``NUMBA_ENABLE_CUDASIM=1 python -m pytest tests/cuda``; skipped otherwise.
"""
from cudasim_helpers import skip_unless_simulator

skip_unless_simulator()

import gc  # noqa: E402
import pickle  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from numbarl.core.moments import MomentState, NonFiniteError  # noqa: E402
from numbarl.torch_api import ObservationNorm, VecNorm, VecNormV2  # noqa: E402
from numbarl.torch_api.transforms.moments_state import TensorMoments  # noqa: E402
from simulated_device import simulated_cuda  # noqa: E402
from tensordict import TensorDict  # noqa: E402

pytestmark = [pytest.mark.cudasim, pytest.mark.filterwarnings("ignore::RuntimeWarning")]

MOMENTS = "numbarl.core.cuda.moments"
BATCH = 3
RESET = torch.tensor([True, False, True])


# ------------------------------------------------------------------ scripts
def _data(gen, dtype, feature=(4,), batch=BATCH):
    return (torch.randn(batch, *feature, generator=gen, dtype=torch.float64) * 2.0 + 1.0).to(dtype)


def _script(dtype=torch.float32, seed=0, before=3, after=2, feature=(4,), edit=None):
    """Steps, a partial reset of sub-envs 0 and 2, more steps: ``[("step", td) | ("reset", root, td)]``.

    ``edit(index, tensor)`` may change the data of entry ``index`` in place (NaN, inf, ...).
    """
    gen = torch.Generator().manual_seed(seed)
    script = [("step", TensorDict({"x": _data(gen, dtype, feature)}, [BATCH])) for _ in range(before)]
    script.append(("reset", TensorDict({"_reset": RESET.clone()}, [BATCH]),
                   TensorDict({"x": _data(gen, dtype, feature)}, [BATCH])))
    script += [("step", TensorDict({"x": _data(gen, dtype, feature)}, [BATCH])) for _ in range(after)]
    if edit is not None:
        for i, entry in enumerate(script):
            edit(i, entry[-1]["x"])
    return script


def _copy(script):
    return [tuple(e if isinstance(e, str) else e.clone() for e in entry) for entry in script]


def _play(t, script):
    """The output of each entry, or the class of the exception it raised."""
    outs = []
    for entry in script:
        try:
            if entry[0] == "step":
                outs.append(t(entry[1])["x"])
            else:
                outs.append(t._reset(entry[1], entry[2])["x"])
        except (ValueError, RuntimeError) as err:
            outs.append(type(err))
    return outs


def _on_device(make, script):
    """``make()`` fed ``script`` inside the harness; returns (transform, outputs) after checking the path."""
    t = make()
    with simulated_cuda() as sim:
        got = _play(t, _copy(script))
    assert sim.attempts == []
    assert sim.kernel_modules and set(sim.kernel_modules) == {MOMENTS}
    return t, got


def _assert_outputs(got, want):
    """Equal where the CPU gave a result; all NaN where the CPU raised."""
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert isinstance(g, torch.Tensor), g
        if isinstance(w, type):
            assert torch.isnan(g).all(), (w, g)
            continue
        assert g.dtype == w.dtype and g.shape == w.shape
        tol = 1e-5 if w.dtype == torch.float32 else 1e-9
        np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=tol, atol=tol, equal_nan=True)


def _assert_stats(dev, host, rtol=1e-9):
    assert all(isinstance(s, TensorMoments) for s in dev._stats.states), dev._stats.states
    assert all(isinstance(s, MomentState) for s in host._stats.states)
    got, want = dev.get_extra_state(), host.get_extra_state()
    assert sorted(got) == sorted(want)
    for name in want:
        g, w = got[name], want[name]
        assert g.dtype == w.dtype and g.shape == w.shape, name
        if w.dtype == torch.int64 or "weight" in name:
            np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=1e-12, err_msg=name)
        else:
            scale = float(w.abs().max()) + 1.0
            np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=rtol, atol=rtol * scale, err_msg=name)


def _stats_rtol(dtype):
    return 1e-9 if dtype == torch.float64 else 1e-6



# ---------------------------------------------------------- ObservationNorm
@pytest.mark.parametrize("standard_normal", [True, False])
def test_observation_norm_forward_and_inverse_on_the_device(standard_normal):
    def make():
        return ObservationNorm(loc=torch.tensor([0.5, -1.0, 2.0, 0.0]), scale=torch.tensor([2.0, 0.5, 1.0, 3.0]),
                               in_keys=["x"], in_keys_inv=["a"], standard_normal=standard_normal)

    gen = torch.Generator().manual_seed(0)
    obs = TensorDict({"x": _data(gen, torch.float32)}, [BATCH])
    act = TensorDict({"a": _data(gen, torch.float32)}, [BATCH])
    dev, host = make(), make()
    with simulated_cuda() as sim:
        got = [dev(obs.clone())["x"], dev.inv(act.clone())["a"], dev._reset(None, obs.clone())["x"]]
    assert sim.attempts == [] and sim.kernel_modules == []
    want = [host(obs.clone())["x"], host.inv(act.clone())["a"], host._reset(None, obs.clone())["x"]]
    _assert_outputs(got, want)


class _Rollouts:
    """A stand-in parent env whose rollouts are given tensordicts, one per call."""

    def __init__(self, rollouts):
        self.rollouts = list(rollouts)

    def rollout(self, max_steps):
        return self.rollouts.pop(0)


def _init_stats(t, rollouts, monkeypatch, **kwargs):
    monkeypatch.setattr(ObservationNorm, "parent", property(lambda self: self.__dict__["_rollouts"]))
    t.__dict__["_rollouts"] = _Rollouts(rollouts)
    t.init_stats(8, **kwargs)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("standard_normal", [True, False])
@pytest.mark.parametrize("keep_dims", [None, (0,)])
def test_observation_norm_init_stats_on_the_device(dtype, standard_normal, keep_dims, monkeypatch):
    gen = torch.Generator().manual_seed(1)
    rollouts = [TensorDict({"x": _data(gen, dtype, batch=5) * 3}, [5]) for _ in range(2)]
    dev = ObservationNorm(in_keys=["x"], standard_normal=standard_normal)
    host = ObservationNorm(in_keys=["x"], standard_normal=standard_normal)
    with simulated_cuda() as sim:
        _init_stats(dev, [r.clone() for r in rollouts], monkeypatch, keep_dims=keep_dims)
        out = dev(rollouts[0].clone())["x"]
    assert sim.attempts == [] and set(sim.kernel_modules) == {MOMENTS}
    _init_stats(host, [r.clone() for r in rollouts], monkeypatch, keep_dims=keep_dims)
    assert dev.loc.dtype == host.loc.dtype == dtype and dev.loc.shape == host.loc.shape
    _assert_outputs([dev.loc, dev.scale, out], [host.loc, host.scale, host(rollouts[0].clone())["x"]])


def test_observation_norm_init_stats_with_nan_gives_nan(monkeypatch):
    gen = torch.Generator().manual_seed(1)
    rollouts = [TensorDict({"x": _data(gen, torch.float32, batch=5)}, [5]) for _ in range(2)]
    rollouts[1]["x"][2, 1] = float("nan")
    dev, host = ObservationNorm(in_keys=["x"]), ObservationNorm(in_keys=["x"])
    with simulated_cuda() as sim:
        _init_stats(dev, [r.clone() for r in rollouts], monkeypatch)
    assert sim.attempts == []
    assert torch.isnan(dev.loc).all() and torch.isnan(dev.scale).all()
    with pytest.raises(NonFiniteError):
        _init_stats(host, [r.clone() for r in rollouts], monkeypatch)
