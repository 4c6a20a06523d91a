"""``all_reduce_stats`` of VecNorm / VecNormV2 / ObservationNorm / EnvCreator over 2 and 3 gloo processes.

Each rank runs ``tests/all_reduce_stats_worker.py`` in its own process (a
file:// rendezvous); the references here are plain float64 formulas over the
data every rank saw, or over the per-rank states for ``decay < 1``.
"""
import os
import subprocess
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from all_reduce_stats_worker import rank_data  # noqa: E402

from numbarl.torch_api import ObservationNorm, VecNorm, VecNormV2  # noqa: E402

WORKER = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "all_reduce_stats_worker.py")


def _run_ranks(world, tmp_path):
    init = tmp_path / "rendezvous"
    procs = [subprocess.Popen([sys.executable, WORKER, str(r), str(world), str(init), str(tmp_path / f"{r}.pt")],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for r in range(world)]
    logs = []
    for p in procs:
        try:
            logs.append(p.communicate(timeout=600)[0])
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise
    for r, (p, log) in enumerate(zip(procs, logs)):
        assert p.returncode == 0, f"rank {r} failed:\n{log[-4000:]}"
    return [torch.load(tmp_path / f"{r}.pt", weights_only=False) for r in range(world)]


@pytest.fixture(scope="module", params=[2, 3], ids=["2ranks", "3ranks"])
def ranks(request, tmp_path_factory):
    world = request.param
    return world, _run_ranks(world, tmp_path_factory.mktemp(f"allreduce{world}"))


def _rel(a, b):
    a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    return float(((a - b).abs() / b.abs().clamp_min(1e-300)).max())


def test_decay_one_equals_one_transform_over_all_data(ranks):
    world, outs = ranks
    for parts, name in (((0, 1), "v2_first"), ((0, 1, 2), "v2_second")):
        seen = torch.cat([rank_data(r, p) for r in range(world) for p in parts])
        mean, std = seen.mean(0), seen.std(0, correction=0)
        one = VecNormV2(in_keys=["x"], decay=1.0, reduce_batch_dims=True)
        from tensordict import TensorDict
        one(TensorDict({"x": seen}, [seen.shape[0]]))
        for r, out in enumerate(outs):
            loc, scale, extra = out[name]
            assert _rel(loc, mean) < 1e-9 and _rel(scale, std) < 1e-9, (name, r)
            assert _rel(loc, one.loc["x"]) < 1e-9 and _rel(scale, one.scale["x"]) < 1e-9
            assert int(extra["count.-|-.x"]) == seen.shape[0]  # every sample counted once, also at the 2nd call
        assert all(torch.equal(o[name][0], outs[0][name][0]) for o in outs)  # identical on every rank


def test_decay_below_one_equals_naive_weighted_merge(ranks):
    world, outs = ranks
    w = torch.stack([o["legacy_before"]["x_weight"][0] for o in outs])
    mu = torch.stack([o["legacy_before"]["x_loc"] for o in outs])
    m2 = torch.stack([o["legacy_before"]["x_m2"] for o in outs])
    W = w.sum()
    mean = (w[:, None] * mu).sum(0) / W
    var = (m2 + w[:, None] * (mu - mean) ** 2).sum(0) / W
    scale = torch.sqrt(torch.clamp(var, min=1e-4))
    for out in outs:
        loc, sc, extra = out["legacy_after"]
        assert _rel(loc, mean) < 1e-9 and _rel(sc, scale) < 1e-9
        assert _rel(extra["x_weight"], W / world) < 1e-12  # weights as they are, averaged over the ranks
    counts = sum(int(o["legacy_before"]["x_samples"][0]) for o in outs)
    assert int(outs[0]["legacy_after"][2]["x_samples"][0]) == int(counts / world + 0.5)  # rounded half up


def test_observation_norm_equals_pooled_init_stats(ranks):
    world, outs = ranks
    n = torch.tensor([float(o["obsnorm_before"][2]) for o in outs], dtype=torch.float64)
    mu = torch.stack([o["obsnorm_before"][0] for o in outs]).to(torch.float64)
    sd = torch.stack([o["obsnorm_before"][1] for o in outs]).to(torch.float64)
    N = n.sum()
    mean = (n[:, None] * mu).sum(0) / N
    m2 = (sd ** 2 * (n[:, None] - 1) + n[:, None] * (mu - mean) ** 2).sum(0)
    std = torch.sqrt(m2 / (N - 1))
    for out in outs:
        loc, scale = out["obsnorm_after"]
        torch.testing.assert_close(loc.to(torch.float64), mean, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(scale.to(torch.float64), std, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(outs[0]["obsnorm_before"][0], outs[1]["obsnorm_before"][0])  # the ranks did differ


def test_env_creator_shared_statistics_take_part(ranks):
    world, outs = ranks
    seen = torch.cat([o["shared_seen"] for o in outs])
    w = torch.stack([o["shared_before"]["observation_weight"][0] for o in outs])
    mu = torch.stack([o["shared_before"]["observation_loc"] for o in outs])
    m2 = torch.stack([o["shared_before"]["observation_m2"] for o in outs])
    mean = (w[:, None] * mu).sum(0) / w.sum()
    var = (m2 + w[:, None] * (mu - mean) ** 2).sum(0) / w.sum()
    for out in outs:
        extra = out["shared_after"]
        assert int(extra["observation_samples"][0]) == seen.shape[0]
        assert _rel(extra["observation_loc"], mean) < 1e-9  # Chan's merge of the nodes' shared blocks
        assert _rel(extra["observation_m2"] / extra["observation_weight"], var) < 1e-9
        # and the statistics of all the observations (float32 data: the kernels' float32 rounding)
        torch.testing.assert_close(extra["observation_loc"], seen.mean(0), rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(extra["observation_m2"] / extra["observation_weight"], seen.var(0, correction=0),
                                   rtol=1e-6, atol=1e-6)


def test_mismatched_shapes_and_missing_statistics_raise_on_every_rank(ranks):
    world, outs = ranks
    for out in outs:
        assert out["shape_error"].startswith("ValueError") and "different keys or shapes" in out["shape_error"]
        assert out["missing_error"].startswith("ValueError") and "no statistics yet" in out["missing_error"]


@pytest.mark.parametrize("make", [lambda: VecNormV2(in_keys=["x"]), lambda: VecNorm(in_keys=["x"]),
                                  lambda: ObservationNorm(in_keys=["x"])], ids=["VecNormV2", "VecNorm", "ObsNorm"])
def test_without_process_group_raises(make):
    import torch.distributed as dist

    assert not dist.is_initialized()
    with pytest.raises(RuntimeError, match=r"all_reduce_stats needs an initialised torch.distributed process group"):
        make().all_reduce_stats()


def test_stateless_vecnormv2_refuses():
    with pytest.raises(ValueError, match="stateful=True"):
        VecNormV2(in_keys=["x"], stateful=False).all_reduce_stats()
