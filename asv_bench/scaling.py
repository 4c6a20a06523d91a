"""How close collection comes to what the cores can do: one table, in one run.

Rows: layout (see ``benchmarks/bench_scaling.py``; ``numbarl`` is the nested
``ParallelEnv(cores, SerialEnv(n / cores))``) x number of Pendulum-v1 envs (with observation normalization);
columns: env steps/s (median of ``--repeat`` timed rollouts), the ratio to
one core's bare gymnasium rate, and the fraction of the limit (cores x one
core's bare gymnasium rate, measured at the start of the same run). Layouts
whose library is missing (torchrl, envpool) are skipped with the reason.
Runs with numbarl on ``PYTHONPATH`` (no install needed).

Usage::

    python asv_bench/scaling.py                  # 8, 64, 256 envs, every layout
    python asv_bench/scaling.py --envs 64 --impl numbarl numbarl_pool gymnasium
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from benchmarks import bench_scaling as B  # noqa: E402


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--envs", type=int, nargs="+", default=list(B.NUM_ENVS))
    parser.add_argument("--impl", nargs="+", default=list(B.IMPLS), choices=B.IMPLS)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)

    start = time.monotonic()
    cores = B.cores()
    bare = statistics.median(B.bare_gymnasium_rate() for _ in range(3))
    limit = cores * bare
    print(f"{platform.node()}: {cores} cores, {platform.python_version()}; one core's bare gymnasium "
          f"{B.ENV_ID}: {bare:,.0f} steps/s; limit {limit:,.0f} steps/s", flush=True)
    header = f"{'layout':18s} {'envs':>5s} {'steps/s':>12s} {'x 1 core':>9s} {'of limit':>9s}"
    print(header)
    print("-" * len(header))
    rows = []
    for n in args.envs:
        for impl in args.impl:
            try:
                env, run, steps = B.make(impl, n)
            except NotImplementedError as err:
                print(f"{impl:18s} {n:5d}   skipped: {err}", flush=True)
                continue
            except Exception as err:  # noqa: BLE001 - a peer's failure must not end the table
                if impl.startswith("numbarl"):
                    raise
                print(f"{impl:18s} {n:5d}   failed in the peer library: {type(err).__name__}: "
                      f"{str(err).splitlines()[0][:120]}", flush=True)
                continue
            try:
                run()  # warm-up
                rates = []
                for _ in range(args.repeat):
                    t = time.perf_counter()
                    run()
                    rates.append(steps / (time.perf_counter() - t))
            finally:
                env.close()
            rate = statistics.median(rates)
            rows.append((impl, n, rate))
            print(f"{impl:18s} {n:5d} {rate:12,.0f} {rate / bare:8.2f}x {rate / limit:8.1%}", flush=True)
    print(f"\nmedians of {args.repeat} rollouts; whole run {time.monotonic() - start:.0f} s")


if __name__ == "__main__":
    main()
