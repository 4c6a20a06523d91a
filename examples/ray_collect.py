"""Collect Pendulum-v1 frames with Ray actors, each running a numbarl Collector.

Every iteration stacks one batch from each actor (``sync=True``); after each batch the
learner's weights go to the actors with one ``update_policy_weights_()`` call.

    python examples/ray_collect.py            # 20 000 frames
    python examples/ray_collect.py --smoke    # 200 frames, a fresh local Ray
"""
from __future__ import annotations

import argparse
import time

import torch
from tensordict.nn import TensorDictModule

from numbarl.torch_api import Compose, GymEnv, RewardSum, StepCounter, TransformedEnv
from numbarl.torch_api.collectors import Collector


def make_env():
    return TransformedEnv(GymEnv("Pendulum-v1"), Compose(StepCounter(max_steps=200), RewardSum()))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="200 frames, to check the setup")
    parser.add_argument("--collectors", type=int, default=2)
    args = parser.parse_args(argv)
    total = 200 if args.smoke else 20_000
    policy = TensorDictModule(
        torch.nn.Sequential(torch.nn.Linear(3, 64), torch.nn.Tanh(), torch.nn.Linear(64, 1)),
        ["observation"], ["action"])
    collector = Collector(make_env, policy, backend="ray", num_collectors=args.collectors, sync=True,
                          frames_per_batch=100, total_frames=total,
                          backend_options={"ray_init_config": {"address": "local", "num_cpus": args.collectors,
                                                               "include_dashboard": False},
                                           "remote_configs": {"num_cpus": 1}})
    frames, start = 0, time.perf_counter()
    try:
        for batch in collector:
            frames += batch.numel()
            with torch.no_grad():  # stands in for a learner's update
                for p in policy.parameters():
                    p.mul_(0.99)
            collector.update_policy_weights_()
    finally:
        collector.shutdown()
    print(f"frames: {frames} ({frames / (time.perf_counter() - start):.0f} frames/s, batch {tuple(batch.shape)})")


if __name__ == "__main__":
    main()
