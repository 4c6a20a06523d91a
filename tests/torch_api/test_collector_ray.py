"""Collector(backend="ray") / RayCollector: each Ray actor runs a numbarl Collector."""
import os
import subprocess
import sys
from functools import partial

import pytest
import torch
from tensordict.nn import TensorDictModule

import numbarl.torch_api as nt
from numbarl.torch_api.collectors import Collector, RayCollector

ray = pytest.importorskip("ray", reason="ray is an optional peer (pip install \"numbarl[ray]\")")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
make_env = partial(nt.GymEnv, "Pendulum-v1")


def linear_policy():
    torch.manual_seed(0)
    return TensorDictModule(torch.nn.Linear(3, 1), ["observation"], ["action"])


@pytest.fixture(scope="module")
def ray_session():
    ray.init(num_cpus=2, include_dashboard=False)
    yield ray
    ray.shutdown()


def alive_actors():
    """Actors the GCS reports alive (the state API needs the dashboard, which the fixture leaves out)."""
    from ray._private import state

    return [a for a in state.actors().values() if a["State"] == "ALIVE"]


@pytest.mark.timeout(300)
def test_sync_every_frame_once_keys_and_weights(ray_session):
    policy = linear_policy()
    collector = Collector(make_env, policy, backend="ray", num_collectors=2, sync=True, frames_per_batch=40,
                          total_frames=120, max_frames_per_traj=7)
    assert isinstance(collector, RayCollector)
    batches = []
    for i, batch in enumerate(collector):
        if i == 0:
            assert batch.batch_size == torch.Size([2, 20])
            with torch.no_grad():
                policy.module.weight.zero_()
                policy.module.bias.zero_()
            collector.update_policy_weights_()
        batches.append(batch)
    assert sum(b.numel() for b in batches) == 120
    assert len(batches) == 3
    # each actor's frames: its trajectories are contiguous and numbered without gaps or repeats
    for actor in range(2):
        rows = torch.cat([b[actor] for b in batches])
        steps = rows["next", "step_count"].squeeze(-1)
        ids = rows["collector", "traj_ids"]
        assert ids.unique().numel() == int((steps == 1).sum()) + (0 if steps[0] == 1 else 1)
        assert torch.equal(ids.diff() >= 0, torch.ones_like(ids.diff(), dtype=torch.bool))
    # after the update every action of both actors is zero (the previous batch may be in flight)
    assert torch.all(batches[-1]["action"] == 0)
    assert not torch.all(batches[0]["action"] == 0)
    direct = Collector(make_env, linear_policy(), frames_per_batch=20, total_frames=20, max_frames_per_traj=7)
    (ref,) = list(direct)
    direct.shutdown()
    assert set(batches[0].keys(True, True)) == set(ref.keys(True, True))
    assert collector.closed
    assert alive_actors() == []


@pytest.mark.timeout(300)
def test_async_first_ready_and_shutdown_kills_actors(ray_session):
    collector = RayCollector(make_env, linear_policy(), frames_per_batch=30, total_frames=90, num_collectors=2,
                             sync=False)
    actors = collector.remote_collectors
    sizes = [batch.batch_size for batch in collector]
    assert sizes == [torch.Size([30])] * 3
    assert collector.collected_frames == 90
    collector.shutdown()
    for actor in actors:
        with pytest.raises(ray.exceptions.RayActorError):
            ray.get(actor.ready.remote(), timeout=60)
    assert alive_actors() == []


@pytest.mark.timeout(300)
def test_failing_actor_raises_with_its_error(ray_session):
    bad = partial(nt.GymEnv, "NoSuchEnvForRay-v0")
    with pytest.raises(RuntimeError, match="(?s)remote collector 1 failed.*NoSuchEnvForRay"):
        RayCollector([make_env, bad], linear_policy(), frames_per_batch=10, total_frames=20, sync=True)
    assert alive_actors() == []


@pytest.mark.timeout(300)
def test_example_smoke():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    out = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "ray_collect.py"), "--smoke"],
                         capture_output=True, text=True, timeout=280, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "frames: 200" in out.stdout


def test_bad_arguments_are_refused_before_ray_starts():
    with pytest.raises(RuntimeError, match="cannot dispatch frames_per_batch=9 across 2"):
        RayCollector(make_env, linear_policy(), frames_per_batch=9, num_collectors=2, sync=True)
    with pytest.raises(ValueError, match="remote_configs"):
        RayCollector(make_env, linear_policy(), frames_per_batch=10, num_collectors=2, remote_configs=[{}])
    with pytest.raises(NotImplementedError, match="replay_buffer"):
        RayCollector(make_env, linear_policy(), frames_per_batch=10, replay_buffer=object())
    with pytest.raises(ValueError, match="backend_options duplicate"):
        Collector(make_env, linear_policy(), backend="ray", frames_per_batch=10, sync=True,
                  backend_options={"frames_per_batch": 5})
