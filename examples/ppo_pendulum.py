"""PPO on Pendulum-v1: TorchRL's PPO tutorial with numbarl's envs and Collector.

The setup follows TorchRL's "Reinforcement Learning (PPO) with TorchRL"
tutorial: an ObservationNorm/DoubleToFloat/StepCounter pipeline, a TanhNormal
``ProbabilisticActor``, a ``ValueOperator`` critic, ``GAE`` advantages,
``ClipPPOLoss`` and a replay buffer sampled without replacement. Only the
imports of the env side change: envs, transforms and the collector come from
numbarl; torchrl (the optional peer) provides the modules, the loss, the
advantage and the replay buffer.

    python examples/ppo_pendulum.py            # a few minutes on 2 cores
    python examples/ppo_pendulum.py --smoke    # a few seconds
"""
from __future__ import annotations

import argparse
import time

import torch
from tensordict.nn import NormalParamExtractor, TensorDictModule
from torch import nn
from torchrl.data.replay_buffers import ReplayBuffer
from torchrl.data.replay_buffers.samplers import SamplerWithoutReplacement
from torchrl.data.replay_buffers.storages import LazyTensorStorage
from torchrl.modules import ProbabilisticActor, TanhNormal, ValueOperator
from torchrl.objectives import ClipPPOLoss
from torchrl.objectives.value import GAE

from numbarl.torch_api import (Compose, DoubleToFloat, ExplorationType, GymEnv, ObservationNorm, StepCounter,
                               TransformedEnv, set_exploration_type)
from numbarl.torch_api.collectors import Collector


def make_env(seed: int) -> TransformedEnv:
    env = TransformedEnv(GymEnv("Pendulum-v1"),
                         Compose(ObservationNorm(in_keys=["observation"]), DoubleToFloat(), StepCounter()))
    env.transform[0].init_stats(num_iter=200, reduce_dim=0, cat_dim=0)
    env.set_seed(seed)
    return env


def make_modules(env, cells: int):
    actor_net = nn.Sequential(nn.LazyLinear(cells), nn.Tanh(), nn.LazyLinear(cells), nn.Tanh(),
                              nn.LazyLinear(2 * env.action_spec.shape[-1]), NormalParamExtractor())
    policy = ProbabilisticActor(
        module=TensorDictModule(actor_net, in_keys=["observation"], out_keys=["loc", "scale"]),
        in_keys=["loc", "scale"], distribution_class=TanhNormal,
        distribution_kwargs={"low": env.action_spec.low, "high": env.action_spec.high},
        return_log_prob=True)
    value_net = nn.Sequential(nn.LazyLinear(cells), nn.Tanh(), nn.LazyLinear(cells), nn.Tanh(), nn.LazyLinear(1))
    value = ValueOperator(module=value_net, in_keys=["observation"])
    with torch.no_grad():  # materialise the lazy layers
        probe = env.reset()
        policy(probe)
        value(probe)
    return policy, value


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a short run (a test executes it)")
    parser.add_argument("--total-frames", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    frames_per_batch, total_frames, epochs, sub_batch, cells = 1000, args.total_frames, 10, 64, 64
    if args.smoke:
        frames_per_batch, total_frames, epochs, sub_batch, cells = 200, 400, 2, 50, 16
    torch.manual_seed(args.seed)
    env = make_env(args.seed)
    policy, value = make_modules(env, cells)
    collector = Collector(env, policy, frames_per_batch=frames_per_batch, total_frames=total_frames,
                          split_trajs=False)
    buffer = ReplayBuffer(storage=LazyTensorStorage(max_size=frames_per_batch),
                          sampler=SamplerWithoutReplacement())
    advantage = GAE(gamma=0.99, lmbda=0.95, value_network=value, average_gae=True)
    loss_module = ClipPPOLoss(actor_network=policy, critic_network=value, clip_epsilon=0.2, entropy_bonus=True,
                              entropy_coeff=1e-4, critic_coeff=1.0, loss_critic_type="smooth_l1")
    optim = torch.optim.Adam(loss_module.parameters(), 3e-4)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optim, total_frames // frames_per_batch, 0.0)
    start = time.perf_counter()
    logs = {"reward": [], "eval_return": []}
    for i, data in enumerate(collector):
        for _ in range(epochs):
            advantage(data)
            buffer.extend(data.reshape(-1))
            for _ in range(frames_per_batch // sub_batch):
                sample = buffer.sample(sub_batch)
                losses = loss_module(sample)
                loss = losses["loss_objective"] + losses["loss_critic"] + losses["loss_entropy"]
                loss.backward()
                torch.nn.utils.clip_grad_norm_(loss_module.parameters(), 1.0)
                optim.step()
                optim.zero_grad()
        logs["reward"].append(data["next", "reward"].mean().item())
        scheduler.step()
        if i % 10 == 0 or args.smoke:
            with set_exploration_type(ExplorationType.DETERMINISTIC), torch.no_grad():
                rollout = env.rollout(1000, policy)
            logs["eval_return"].append(rollout["next", "reward"].sum().item())
            print(f"batch {i:3d}  frames {(i + 1) * frames_per_batch:7d}  train reward {logs['reward'][-1]:8.3f}  "
                  f"eval return {logs['eval_return'][-1]:9.1f}  ({time.perf_counter() - start:6.1f} s)", flush=True)
    collector.shutdown()
    return logs


if __name__ == "__main__":
    main()
