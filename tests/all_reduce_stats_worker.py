"""One rank of the ``all_reduce_stats`` tests: ``python all_reduce_stats_worker.py RANK WORLD INIT_FILE OUT_FILE``.

Each rank feeds its own data to transforms, saves what it saw and the
statistics before and after ``all_reduce_stats()`` to OUT_FILE (torch.save);
the test process checks them against references it computes itself.
"""
import datetime
import sys

import torch
import torch.distributed as dist


def rank_data(rank: int, part: int, n_features: int = 3) -> torch.Tensor:
    """float64 data of ``rank`` for batch ``part``: a different size, mean and spread per rank."""
    g = torch.Generator().manual_seed(1000 * rank + part)
    n = 5 + 3 * rank + part
    return torch.randn(n, n_features, generator=g, dtype=torch.float64) * (1.0 + rank) + 1e3 + 10.0 * rank


def _error(fn) -> str:
    try:
        fn()
    except Exception as err:  # the test checks the type and message
        return f"{type(err).__name__}: {err}"
    return "no error"


def main(rank: int, world: int, init_file: str, out_file: str) -> None:
    from tensordict import TensorDict

    from numbarl.torch_api import EnvCreator, GymEnv, ObservationNorm, TransformedEnv, VecNorm, VecNormV2

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=120))
    out = {}

    # decay 1, called twice (the second call must add only the new data)
    t = VecNormV2(in_keys=["x"], decay=1.0, reduce_batch_dims=True)
    for part in (0, 1):
        t(TensorDict({"x": rank_data(rank, part)}, [rank_data(rank, part).shape[0]]))
    t.all_reduce_stats()
    out["v2_first"] = (t.loc["x"].clone(), t.scale["x"].clone(), t.get_extra_state())
    t(TensorDict({"x": rank_data(rank, 2)}, [rank_data(rank, 2).shape[0]]))
    t.all_reduce_stats()
    t.all_reduce_stats()  # nothing new since: unchanged
    out["v2_second"] = (t.loc["x"].clone(), t.scale["x"].clone(), t.get_extra_state())

    # decay < 1 (legacy VecNorm): the per-rank states before, the merged ones after
    v = VecNorm(in_keys=["x"], decay=0.9, eps=1e-4)
    for part in (0, 1, 2):
        v(TensorDict({"x": rank_data(rank, part)}, [rank_data(rank, part).shape[0]]))
    out["legacy_before"] = v.get_extra_state()
    v.all_reduce_stats()
    on = v.to_observation_norm()
    out["legacy_after"] = (on.loc.clone(), on.scale.clone(), v.get_extra_state())

    # ObservationNorm.init_stats on rank-seeded Pendulum rollouts
    env = TransformedEnv(GymEnv("Pendulum-v1"), ObservationNorm(in_keys=["observation"], standard_normal=True))
    env.set_seed(rank)
    torch.manual_seed(rank)
    env.transform.init_stats(20 + 5 * rank)
    out["obsnorm_before"] = (env.transform.loc.clone(), env.transform.scale.clone(), 20 + 5 * rank)
    env.transform.all_reduce_stats()
    out["obsnorm_after"] = (env.transform.loc.clone(), env.transform.scale.clone())
    env.close()

    # shared statistics of an EnvCreator: the node's block takes part
    creator = EnvCreator(lambda: TransformedEnv(GymEnv("Pendulum-v1"),
                                                VecNorm(in_keys=["observation"], out_keys=["obs_n"], decay=1.0)))
    env = creator()
    env.set_seed(10 + rank)
    td = env.rollout(10 + 4 * rank)
    out["shared_seen"] = torch.cat([td["observation"][:1], td["next", "observation"]]).to(torch.float64)
    out["shared_before"] = env.transform.get_extra_state()
    creator.all_reduce_stats()
    out["shared_after"] = env.transform.get_extra_state()  # read through the worker-side env attached to the block
    env.close()
    creator.close()

    # bad input, raised on every rank
    shape = 3 if rank == 0 else 4
    bad = VecNormV2(in_keys=["x"], decay=1.0, reduce_batch_dims=True)
    bad(TensorDict({"x": torch.zeros(2, shape)}, [2]))
    out["shape_error"] = _error(bad.all_reduce_stats)
    empty = VecNormV2(in_keys=["x"], decay=1.0, reduce_batch_dims=True)
    if rank != 0:
        empty(TensorDict({"x": torch.zeros(2, 3)}, [2]))
    out["missing_error"] = _error(empty.all_reduce_stats)
    dist.barrier()
    torch.save(out, out_file)
    dist.destroy_process_group()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4])
