"""``numbarl collect``: collect a random-policy rollout through a transform pipeline.

Examples:
    >>> main(["collect", "--steps", "200", "--quiet"])
    0
"""
from __future__ import annotations

import argparse
import sys
import time
from typing import Callable

import torch

__all__ = ["main", "TRANSFORMS", "PRESETS"]


def _transform_factories() -> dict[str, Callable]:
    """Transforms selectable with ``--transforms``, by name; each builds one for an env's observation key."""
    from . import transforms as T

    table = {
        "vecnorm": ("VecNorm", lambda cls, key: cls(in_keys=[key])),
        "obsnorm": ("ObservationNorm", lambda cls, key: cls(in_keys=[key], loc=0.0, scale=1.0)),
        "double_to_float": ("DoubleToFloat", lambda cls, key: cls()),
        "reward_sum": ("RewardSum", lambda cls, key: cls()),
        "step_counter": ("StepCounter", lambda cls, key: cls()),
        "reward_scaling": ("RewardScaling", lambda cls, key: cls(loc=0.0, scale=0.1)),
        "cat_frames": ("CatFrames", lambda cls, key: cls(N=4, dim=-1, in_keys=[key])),
    }
    out = {}
    for name, (cls_name, make) in table.items():
        cls = getattr(T, cls_name, None)
        if cls is not None:
            out[name] = (lambda c, m: (lambda key: m(c, key)))(cls, make)
    return out


TRANSFORMS = _transform_factories()


def _atari_pipeline(key):
    """ToTensorImage -> GrayScale -> Resize(84, 84) -> CatFrames(4, dim=-3) on ``key`` (DQN's Atari input)."""
    from . import transforms as T

    return [T.ToTensorImage(in_keys=[key]), T.GrayScale(in_keys=[key]), T.Resize(84, 84, in_keys=[key]),
            T.CatFrames(4, dim=-3, in_keys=[key])]


# name: (default env id, factory of the transforms for the env's pixel key)
PRESETS = {"atari": ("ALE/Pong-v5", _atari_pipeline)}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="numbarl", description="numbarl: TorchRL-compatible envs and transforms on Numba")
    sub = parser.add_subparsers(dest="command", required=True)
    collect = sub.add_parser("collect", help="collect a rollout with a random policy")
    collect.add_argument("--env", default=None,
                         help="gymnasium env id (default: Pendulum-v1, or ALE/Pong-v5 with --preset atari)")
    collect.add_argument("--preset", choices=sorted(PRESETS), default=None,
                         help="a transform pipeline: 'atari' = ToTensorImage, GrayScale, Resize(84, 84), "
                              "CatFrames(4, dim=-3) on the env's pixels (applied before --transforms)")
    collect.add_argument("--steps", type=_positive_int, default=10_000, help="steps per env (default: 10000)")
    collect.add_argument("--num-envs", type=_positive_int, default=1, help="number of envs (default: 1)")
    collect.add_argument("--parallel", action="store_true", help="run the envs in worker processes (ParallelEnv)")
    collect.add_argument("--transforms", type=_transform_list, default=[],
                         help=f"comma-separated transforms, applied in order; one of: {', '.join(sorted(TRANSFORMS)) or 'none available'}")
    collect.add_argument("--seed", type=int, default=0, help="seed of the env and of the random policy (default: 0)")
    collect.add_argument("--chunk", type=_positive_int, default=1000, help="steps per rollout call, for the progress bar")
    collect.add_argument("--save", default=None, help="save the collected TensorDict to this path (torch.save of a dict)")
    collect.add_argument("--quiet", action="store_true", help="no progress bar and no table")
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _transform_list(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in TRANSFORMS]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown transform(s) {', '.join(unknown)}; allowed: {', '.join(sorted(TRANSFORMS))}")
    return names


def _make_env(args):
    from .envs import GymEnv
    from .transforms import TransformedEnv

    def make():
        return GymEnv(args.env)

    if args.num_envs > 1:
        from . import envs as E

        cls_name = "ParallelEnv" if args.parallel else "SerialEnv"
        cls = getattr(E, cls_name, None)
        if cls is None:
            raise SystemExit(f"numbarl collect: --num-envs > 1 needs {cls_name}, which this build lacks")
        env = cls(args.num_envs, make)
    else:
        env = make()
    key = env.observation_keys[0]
    env = TransformedEnv(env)
    if args.preset is not None:
        pixels = "pixels" if "pixels" in env.observation_keys else key
        for transform in PRESETS[args.preset][1](pixels):
            env.append_transform(transform)
    for name in args.transforms:
        env.append_transform(TRANSFORMS[name](key))
    return env


def collect(args) -> int:
    from .envs.utils import step_mdp

    if args.env is None:
        args.env = PRESETS[args.preset][0] if args.preset is not None else "Pendulum-v1"
    try:
        env = _make_env(args)
    except ValueError as err:
        print(f"numbarl collect: {err}", file=sys.stderr)
        return 2
    torch.manual_seed(args.seed)
    env.set_seed(args.seed)
    chunks = []
    done_steps = 0
    bar = None
    if not args.quiet:
        from tqdm import tqdm

        bar = tqdm(total=args.steps, unit="step", desc=f"collect {args.env}", dynamic_ncols=True)
    start = time.perf_counter()
    td = None
    try:
        while done_steps < args.steps:
            n = min(args.chunk, args.steps - done_steps)
            if td is None:
                part = env.rollout(n, break_when_any_done=False)
            else:
                part = env.rollout(n, break_when_any_done=False, auto_reset=False, tensordict=td)
            chunks.append(part)
            last = part[..., -1]
            td = env.maybe_reset(step_mdp(last, reward_keys=env._mdp_reward_keys(), done_keys=env.done_keys,
                                          action_keys=env.action_keys))
            done_steps += n
            if bar is not None:
                bar.update(n)
    finally:
        if bar is not None:
            bar.close()
        elapsed = time.perf_counter() - start
        env.close()
    data = torch.cat(chunks, dim=len(chunks[0].batch_size) - 1)
    total = done_steps * args.num_envs
    if not args.quiet:
        _table(data, total, elapsed)
    if args.save:
        torch.save(data.to_dict(), args.save)
        if not args.quiet:
            print(f"saved {tuple(data.batch_size)} steps to {args.save}")
    return 0


def _table(data, total: int, elapsed: float) -> None:
    rows = [("steps", f"{total}"), ("seconds", f"{elapsed:.3f}"), ("steps/s", f"{total / max(elapsed, 1e-9):,.0f}")]
    width = max(len(r[0]) for r in rows)
    print()
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    print()
    keys = sorted(data.keys(True, True), key=str)
    names = [".".join(k) if isinstance(k, tuple) else k for k in keys]
    w = max(len(n) for n in names)
    print(f"{'key':<{w}}  {'shape':>16}  {'mean':>12}  {'std':>12}")
    for key, name in zip(keys, names):
        value = data.get(key)
        x = value.double()
        print(f"{name:<{w}}  {str(tuple(value.shape)):>16}  {x.mean().item():>12.5g}  {x.std().item():>12.5g}")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``numbarl`` command; returns the exit status."""
    args = _parser().parse_args(argv)
    if args.command == "collect":
        return collect(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
