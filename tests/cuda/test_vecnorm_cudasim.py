"""VecNorm, VecNormV2 and ObservationNorm on their CUDA path, under the Numba CUDA simulator.

Inside ``simulated_cuda()`` every tensor counts as a CUDA tensor: the
transforms must run the kernels of ``numbarl.core.cuda.moments`` on the
tensors' memory, keep their statistics there (``TensorMoments``), and never
copy anything to the host (each attempt fails the test). Every result is
compared with a fresh transform fed the same data on the CPU path, outside
the harness: float32 outputs within 1e-5, statistics of float64 data within
1e-9 (float32 data within 1e-6: the CPU kernels sum blocks of float32 rows
in float32, the CUDA ones in float64, see numbarl.core.cuda.moments).

Run with ``NUMBA_ENABLE_CUDASIM=1 python -m pytest tests/cuda`` (see
tests/cudasim_helpers.py); skipped otherwise.
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


# ---------------------------------------------------------------- VecNormV2
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("decay", [1.0, 0.99])
@pytest.mark.parametrize("reduce", [True, False])
def test_vecnormv2_runs_on_the_device(dtype, decay, reduce):
    def make():
        return VecNormV2(in_keys=["x"], decay=decay, eps=1e-4, reduce_batch_dims=reduce)

    script = _script(dtype)
    dev, got = _on_device(make, script)
    host = make()
    _assert_outputs(got, _play(host, _copy(script)))
    _assert_stats(dev, host, _stats_rtol(dtype))
    assert dev._stats.states[0].loc.shape == ((4,) if reduce else (BATCH, 4))


def test_vecnormv2_reset_updates_only_the_reset_rows():
    """The masked update merges rows 0 and 2 only: the same statistics as an update with those rows alone."""
    script = _script(torch.float64, before=1, after=0)
    dev, _ = _on_device(lambda: VecNormV2(in_keys=["x"], decay=1.0, reduce_batch_dims=True), script)
    rows = torch.cat([script[0][1]["x"], script[1][2]["x"][RESET]])
    loc = dev.get_extra_state()["loc.-|-.x"]
    np.testing.assert_allclose(loc.numpy(), rows.mean(0).numpy(), rtol=1e-12)
    assert int(dev.get_extra_state()["count.-|-.x"][0]) == BATCH + 2


def test_vecnormv2_frozen_normalizes_without_updating():
    script = _script(torch.float32)
    dev, _ = _on_device(lambda: VecNormV2(in_keys=["x"], decay=0.99, reduce_batch_dims=True), script)
    host = VecNormV2(in_keys=["x"], decay=0.99, reduce_batch_dims=True)
    _play(host, _copy(script))
    before = {k: v.clone() for k, v in dev.get_extra_state().items()}
    dev.freeze(), host.freeze()
    later = _script(torch.float32, seed=1)
    with simulated_cuda() as sim:
        got = _play(dev, _copy(later))
    assert sim.attempts == [] and set(sim.kernel_modules) == {MOMENTS}
    _assert_outputs(got, _play(host, _copy(later)))
    assert all(torch.equal(v, dev.get_extra_state()[k]) for k, v in before.items())
    frozen = dev.frozen_copy()  # a snapshot on the device
    assert isinstance(frozen._stats.states[0], TensorMoments)


# ------------------------------------------------------------ VecNorm legacy
@pytest.mark.parametrize("decay", [1.0, 0.99])
def test_vecnorm_legacy_runs_on_the_device_and_frozen_does_not_update(decay):
    def make():
        return VecNorm(in_keys=["x"], decay=decay, eps=1e-4)

    script = _script(torch.float32)
    dev, got = _on_device(make, script)
    host = make()
    _assert_outputs(got, _play(host, _copy(script)))
    _assert_stats(dev, host, 1e-6)
    dev.freeze(), host.freeze()
    before = {k: v.clone() for k, v in dev.get_extra_state().items()}
    later = _script(torch.float32, seed=2)
    with simulated_cuda() as sim:
        got = _play(dev, _copy(later))
    assert sim.attempts == []
    _assert_outputs(got, _play(host, _copy(later)))
    assert all(torch.equal(v, dev.get_extra_state()[k]) for k, v in before.items())


def test_vecnorm_legacy_with_shapes_and_integer_data():
    """Feature dims shorter than the data (``shapes``) and integer input (normalized in the default float)."""
    def make():
        return VecNorm(in_keys=["x"], decay=1.0, shapes=[(2,)])

    script = _script(torch.float64, feature=(2, 2))
    for entry in script:
        entry[-1]["x"] = (entry[-1]["x"] * 10).round().to(torch.int64)
    dev, got = _on_device(make, script)
    host = make()
    _assert_outputs(got, _play(host, _copy(script)))
    _assert_stats(dev, host, 1e-6)  # normalized as float32 (the default dtype): float32 tolerance


# ------------------------------------------------------------- NaN and inf
def _poison(where, value=float("nan")):
    """An ``edit`` for ``_script`` that writes ``value`` at ``where`` (entry index, row, column)."""
    def edit(i, x):
        for entry, row, col in where:
            if entry == i:
                x[row, col] = value
    return edit


@pytest.mark.parametrize("reduce", [True, False])
def test_nonfinite_skip_drops_the_rows_as_on_the_cpu(reduce):
    def make():
        return VecNormV2(in_keys=["x"], decay=0.99, reduce_batch_dims=reduce, nonfinite="skip")

    # a NaN row in a step, an inf in a reset row and a NaN in a row the reset leaves alone
    script = _script(torch.float64, edit=_poison([(1, 0, 2), (3, 2, 1), (3, 1, 0), (4, 1, 3)]))
    dev, got = _on_device(make, script)
    host = make()
    want = _play(host, _copy(script))
    assert all(isinstance(w, torch.Tensor) for w in want)
    _assert_outputs(got, want)
    _assert_stats(dev, host)


def test_nonfinite_raise_rejects_the_batch_on_the_device():
    """Where the CPU raises, the device leaves the statistics unchanged and gives NaN; check_rejected raises later."""
    def make():
        return VecNormV2(in_keys=["x"], decay=0.99, reduce_batch_dims=True, nonfinite="raise")

    # entry 1: NaN in a step; entry 3 (reset of rows 0, 2): inf in reset row 2; entry 4: a NaN in a step
    script = _script(torch.float32, edit=_poison([(1, 0, 2), (3, 2, 1), (4, 1, 3)], float("inf")))
    dev, got = _on_device(make, script)
    host = make()
    want = _play(host, _copy(script))
    assert [w for w in want if isinstance(w, type)] == [NonFiniteError] * 3
    _assert_outputs(got, want)  # all NaN for the three rejected batches
    _assert_stats(dev, host, 1e-6)
    copy = dev.clone()
    with pytest.raises(NonFiniteError, match=r"VecNormV2: \['x'\] held NaN or inf on the device; .* rejected"):
        dev.check_rejected()
    dev.check_rejected()  # the record is cleared
    copy.to("cpu")  # the record survives a move to the host
    assert isinstance(copy._stats.states[0], MomentState)
    with pytest.raises(NonFiniteError):
        copy.check_rejected()
    copy.check_rejected()


def test_nonfinite_raise_accepts_a_reset_whose_bad_row_is_not_reset():
    """The CPU updates a partial reset with the reset rows only: NaN in a row left alone raises nothing."""
    def make():
        return VecNormV2(in_keys=["x"], decay=1.0, reduce_batch_dims=True)

    script = _script(torch.float64, edit=_poison([(3, 1, 1)]))
    dev, got = _on_device(make, script)
    host = make()
    want = _play(host, _copy(script))
    assert all(isinstance(w, torch.Tensor) for w in want)
    _assert_outputs(got, want)
    _assert_stats(dev, host)
    dev.check_rejected()


def test_overflow_rejects_the_batch_on_the_device():
    def make():
        return VecNorm(in_keys=["x"], decay=1.0)

    script = _script(torch.float64, edit=_poison([(2, 0, 0), (2, 1, 0)], 1e300))
    script[2][1]["x"][1, 0] = -1e300
    dev, got = _on_device(make, script)
    host = make()
    want = _play(host, _copy(script))
    assert want[2] is ValueError
    _assert_outputs(got, want)
    _assert_stats(dev, host)
    with pytest.raises(ValueError, match=r"squared deviations of \['x'\] overflowed float64"):
        dev.check_rejected()


# ----------------------------------------------------------- where stats live
def test_statistics_move_to_the_device_and_back_carried_over():
    script = _script(torch.float64, before=4, after=4)
    first, middle, last = script[:2], script[2:5], script[5:]
    t = VecNormV2(in_keys=["x"], decay=0.99, reduce_batch_dims=True)
    host = VecNormV2(in_keys=["x"], decay=0.99, reduce_batch_dims=True)
    want = _play(host, _copy(script))
    got = _play(t, _copy(first))
    assert isinstance(t._stats.states[0], MomentState)
    with simulated_cuda() as sim:
        got += _play(t, _copy(middle))
    assert sim.attempts == [] and isinstance(t._stats.states[0], TensorMoments)
    assert isinstance(t.get_extra_state()["loc.-|-.x"], torch.Tensor)
    got += _play(t, _copy(last))  # CPU data again: the statistics come back to the host
    assert isinstance(t._stats.states[0], MomentState)
    _assert_outputs(got, want)
    assert all(torch.allclose(v, host.get_extra_state()[k], rtol=1e-12) for k, v in t.get_extra_state().items())


def test_to_moves_the_statistics():
    t = VecNormV2(in_keys=["x"], decay=1.0, reduce_batch_dims=True)
    _play(t, _copy(_script(torch.float64)))
    before = t.get_extra_state()
    with simulated_cuda() as sim:
        t.to("cpu")  # in the harness every tensor counts as CUDA: the statistics follow to the "device"
    assert sim.attempts == [] and isinstance(t._stats.states[0], TensorMoments)
    assert all(torch.equal(v, t.get_extra_state()[k]) for k, v in before.items())
    t.float()  # a dtype conversion keeps them where they are ...
    with simulated_cuda():
        t.float()
    assert isinstance(t._stats.states[0], TensorMoments)
    t.to("cpu")  # ... and the host takes them back
    assert isinstance(t._stats.states[0], MomentState)
    assert all(torch.equal(v, t.get_extra_state()[k]) for k, v in before.items())


def test_shared_statistics_refuse_cuda_data():
    t = VecNormV2(in_keys=["x"], decay=1.0, reduce_batch_dims=True)
    script = _script(torch.float32)
    _play(t, _copy(script[:1]))
    t._make_shared()
    td = script[1][1].clone()
    with simulated_cuda() as sim:
        with pytest.raises(ValueError, match=r"VecNormV2: the statistics are in shared host memory \(a SharedArrays"):
            t(td)
        with pytest.raises(ValueError, match="cannot follow data on cpu"):
            t.to("cpu")
    assert sim.attempts == []
    del t
    gc.collect()

    shared = TensorDict({"loc": {"x": torch.zeros(4, dtype=torch.float64)},
                         "m2": {"x": torch.zeros(4, dtype=torch.float64)},
                         "weight": {"x": torch.zeros(1, dtype=torch.float64)},
                         "count": {"x": torch.zeros(1, dtype=torch.int64)}}, []).share_memory_()
    legacy = VecNorm(in_keys=["x"], shared_td=shared)
    with simulated_cuda():
        with pytest.raises(ValueError, match=r"VecNorm: the statistics are in shared host memory \(shared_td\)"):
            legacy(script[2][1].clone())

    on_device, _ = _on_device(lambda: VecNormV2(in_keys=["x"], reduce_batch_dims=True), script)
    with pytest.raises(ValueError, match=r"VecNormV2: the statistics are on cpu; sharing them between processes "
                                         r"needs them in host memory"):
        on_device._make_shared()


def test_state_dict_clone_and_pickle_keep_device_statistics():
    def make():
        return VecNormV2(in_keys=["x"], decay=0.99, reduce_batch_dims=True)

    script = _script(torch.float64)
    dev, _ = _on_device(make, script)
    host = make()
    _play(host, _copy(script))
    sd = dev.state_dict()
    assert all(isinstance(v, torch.Tensor) for v in sd["_extra_state"].values())
    loaded = make()
    loaded.load_state_dict(sd)  # loads into host statistics ...
    refreshed, _ = _on_device(make, _script(torch.float64, seed=5))
    refreshed.load_state_dict(host.state_dict())  # ... and into device statistics, in place
    copies = [dev.clone(), pickle.loads(pickle.dumps(dev)), loaded, refreshed]
    assert isinstance(copies[0]._stats.states[0], TensorMoments)
    assert isinstance(copies[1]._stats.states[0], TensorMoments)
    assert isinstance(copies[2]._stats.states[0], MomentState)
    assert isinstance(copies[3]._stats.states[0], TensorMoments)
    later = _script(torch.float64, seed=3)
    want = _play(host, _copy(later))
    for c in copies:
        with simulated_cuda() as sim:
            got = _play(c, _copy(later))
        assert sim.attempts == []
        _assert_outputs(got, want)
        _assert_stats(c, host)
    assert int(dev.get_extra_state()["count.-|-.x"][0]) < int(host.get_extra_state()["count.-|-.x"][0])


def test_loc_scale_and_exports_from_device_statistics():
    script = _script(torch.float64)
    for cls in (VecNorm, VecNormV2):
        dev, _ = _on_device(lambda: cls(in_keys=["x"], decay=0.99), script)
        host = cls(in_keys=["x"], decay=0.99)
        _play(host, _copy(script))
        got, want = dev.to_observation_norm(), host.to_observation_norm()
        np.testing.assert_allclose(got.loc.numpy(), want.loc.numpy(), rtol=1e-9)
        np.testing.assert_allclose(got.scale.numpy(), want.scale.numpy(), rtol=1e-9)
        for name, value in host.to_torchrl_state_dict()["_extra_state"].items():
            np.testing.assert_allclose(dev.to_torchrl_state_dict()["_extra_state"][name].numpy(), value.numpy(),
                                       rtol=1e-6)
        td = script[0][1].clone()
        with simulated_cuda() as sim:
            out = got(td)["x"]
        assert sim.attempts == []
        np.testing.assert_allclose(out.numpy(), want(script[0][1].clone())["x"].numpy(), rtol=1e-9)


# ---------------------------------------------------------------- stateless
def _stateless_play(t, script):
    """Steps carry the statistics from the previous tensordict, as a rollout does."""
    outs, prev = [], None
    for entry in script:
        try:
            if entry[0] == "step":
                nxt = entry[1]
                if prev is not None:
                    nxt = t._step(prev, nxt)
                else:
                    nxt = t(nxt)
            else:
                root = entry[1]
                if prev is not None:
                    root.update(prev.exclude("x"))
                nxt = t._reset(root, entry[2])
            outs.append(nxt["x"])
            prev = nxt
        except ValueError as err:
            outs.append(type(err))
    return outs, prev


@pytest.mark.parametrize("nonfinite", ["skip", "raise"])
def test_stateless_runs_on_the_device(nonfinite):
    dev = VecNormV2(in_keys=["x"], decay=0.99, stateful=False, nonfinite=nonfinite)
    host = VecNormV2(in_keys=["x"], decay=0.99, stateful=False, nonfinite=nonfinite)
    host.__dict__["prefix"] = dev.prefix
    script = _script(torch.float32, edit=_poison([(4, 1, 2)]))
    with simulated_cuda() as sim:
        got, last = _stateless_play(dev, _copy(script))
    assert sim.attempts == []
    want, last_host = _stateless_play(host, _copy(script))
    if nonfinite == "raise":  # the CPU raised at entry 4 and went on from the statistics before it
        assert want[4] is NonFiniteError
    _assert_outputs(got, want)
    for field in ("loc", "m2", "weight", "count"):
        key = (f"{dev.prefix}_{field}", "x")
        np.testing.assert_allclose(last[key].numpy(), last_host[key].numpy(), rtol=1e-12, equal_nan=True)


