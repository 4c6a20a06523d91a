"""Frames/s of numbarl's collectors on Pendulum-v1 + StepCounter + RewardSum with the MLP policy of
benchmarks/bench_collectors.py: direct Collector, MultiSyncCollector (2 processes) and
Collector(backend="ray", num_collectors=2, sync=True), then TorchRL 0.14.1's direct Collector and
RayCollector (2 collectors, sync) on the same env and policy where they run. One warm-up batch, then
``--batches`` timed.

    python asv_bench/ray_frames.py [--batches 10]
"""
from __future__ import annotations

import argparse
import functools
import os
import sys
import time

BENCH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "benchmarks")
sys.path.insert(0, BENCH)
# Ray's workers import the env factory's module by name: they inherit this path.
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (BENCH, os.environ.get("PYTHONPATH")) if p)

from bench_collectors import FRAMES, make_env, make_policy  # noqa: E402


def frames_per_second(collector, batches: int) -> float:
    it = iter(collector)
    next(it)
    start = time.perf_counter()
    frames = sum(next(it).numel() for _ in range(batches))
    return frames / (time.perf_counter() - start)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=10)
    args = parser.parse_args(argv)
    from numbarl.torch_api.collectors import Collector, MultiSyncCollector

    factory = functools.partial(make_env, "numbarl")
    makers = {
        "direct": lambda: Collector(factory(), make_policy(), frames_per_batch=FRAMES, total_frames=-1),
        "process x2": lambda: MultiSyncCollector([factory, factory], make_policy(), frames_per_batch=FRAMES,
                                                 total_frames=-1),
        "ray x2": lambda: Collector(factory, make_policy(), backend="ray", num_collectors=2, sync=True,
                                    frames_per_batch=FRAMES, total_frames=-1,
                                    backend_options={"ray_init_config": {"address": "local", "num_cpus": 2,
                                                                         "include_dashboard": False}}),
    }
    try:
        import warnings

        warnings.simplefilter("ignore")
        import torchrl.collectors as trl_collectors
        from torchrl.collectors.distributed import RayCollector as TorchRLRayCollector

        trl_factory = functools.partial(make_env, "torchrl")
        makers["torchrl direct"] = lambda: trl_collectors.Collector(trl_factory(), make_policy(),
                                                                    frames_per_batch=FRAMES, total_frames=-1)
        makers["torchrl ray x2"] = lambda: TorchRLRayCollector(
            [trl_factory, trl_factory], make_policy(), frames_per_batch=FRAMES,
            total_frames=FRAMES * (args.batches + 1), sync=True,  # it stops at once on total_frames=-1
            ray_init_config={"address": "local", "num_cpus": 2, "include_dashboard": False},
            remote_configs={"num_cpus": 1, "memory": 512 * 1024 ** 2})
    except ImportError as err:
        print(f"torchrl rows skipped: {err}", flush=True)
    results = {}
    for name, make in makers.items():
        try:
            collector = make()
        except Exception as err:  # a peer that does not run here is reported, not fatal
            print(f"{name:12s} did not start: {type(err).__name__}: {str(err)[:200]}", flush=True)
            continue
        try:
            results[name] = frames_per_second(collector, args.batches)
        except Exception as err:
            print(f"{name:12s} failed: {type(err).__name__}: {str(err)[:200]}", flush=True)
            continue
        finally:
            collector.shutdown()
        print(f"{name:12s} {results[name]:10.0f} frames/s  ({results[name] / results['direct']:.2f}x direct)",
              flush=True)


if __name__ == "__main__":
    main()
