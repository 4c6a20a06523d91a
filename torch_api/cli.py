"""``numbarl collect``: collect a random-policy rollout through a transform pipeline.

Every user mistake (a bad flag value, an unknown env or transform, a preset the
env cannot take, a ``--save`` path that cannot be written) is reported on one
line of stderr with exit status 2, before anything is collected. Ctrl-C stops
the collection cleanly: the summary of what was collected is printed, the data
is saved when ``--save`` was given, and the exit status is 130.

torch and the transforms are imported only when a command runs, so that
``numbarl --help`` answers at once.

Examples:
    >>> main(["collect", "--steps", "200", "--quiet"])
    0
    >>> parse_transforms("vecnorm(decay=0.99), catframes(N=4)")
    [('vecnorm', {'decay': 0.99}), ('cat_frames', {'N': 4})]
"""
from __future__ import annotations

import argparse
import ast
import os
import signal
import sys
import time
from typing import Iterator

__all__ = ["main", "parse_transforms", "TRANSFORMS", "PRESETS", "OBSNORM_WARMUP_STEPS", "INTERRUPTED_EXIT"]

INTERRUPTED_EXIT = 130  # 128 + SIGINT, as a shell reports a process stopped by Ctrl-C
OBSNORM_WARMUP_STEPS = 1000  # random steps ``obsnorm`` collects for ``init_stats`` before the collection

# name: (class in numbarl.torch_api.transforms, takes the observation key as in_keys, default arguments)
TRANSFORMS = {
    "vecnorm": ("VecNorm", True, {}),
    "obsnorm": ("ObservationNorm", True, {"standard_normal": True}),
    "double_to_float": ("DoubleToFloat", False, {}),
    "reward_sum": ("RewardSum", False, {}),
    "step_counter": ("StepCounter", False, {}),
    "reward_scaling": ("RewardScaling", False, {"loc": 0.0, "scale": 0.1}),
    "cat_frames": ("CatFrames", True, {"N": 4, "dim": -1}),
}

# name: (default env id, description)
PRESETS = {"atari": ("ALE/Pong-v5", "ToTensorImage(from_int=False, dtype=torch.uint8), GrayScale, Resize(84, 84), "
                               "CatFrames(4, dim=-3) on the env's pixels: uint8 frames end to end (float32 for "
                               "pixels that are not uint8)")}


class UsageError(Exception):
    """A user mistake: reported on one line of stderr, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are one line on stderr (no usage block), exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _canonical(name: str) -> str | None:
    """The catalogue name for ``name``; underscores are optional (``catframes`` = ``cat_frames``)."""
    flat = name.replace("_", "").lower()
    return next((n for n in TRANSFORMS if n.replace("_", "") == flat), None)


def parse_transforms(text: str) -> list[tuple[str, dict]]:
    """Parse ``--transforms``: comma-separated names, each optionally called with keyword arguments.

    Argument values are Python literals (numbers, strings, tuples, lists, True/False/None), read with
    ``ast.literal_eval``; nothing is evaluated.

    Raises:
        ValueError: a syntax error, an unknown name, positional or non-literal arguments.

    Examples:
        >>> parse_transforms("obsnorm,reward_scaling(scale=0.5)")
        [('obsnorm', {}), ('reward_scaling', {'scale': 0.5})]
    """
    allowed = ", ".join(sorted(TRANSFORMS))
    try:
        tree = ast.parse(f"[{text}]", mode="eval").body
    except SyntaxError:
        raise ValueError(f"cannot parse {text!r}: expected names like vecnorm or catframes(N=4), "
                         "separated by commas") from None
    out = []
    for node in tree.elts:
        call = node if isinstance(node, ast.Call) else None
        head = call.func if call is not None else node
        if not isinstance(head, ast.Name):
            raise ValueError(f"cannot parse {ast.unparse(node)!r}: expected a transform name, allowed: {allowed}")
        name = _canonical(head.id)
        if name is None:
            raise ValueError(f"unknown transform {head.id!r}; allowed: {allowed}")
        kwargs = {}
        if call is not None:
            if call.args:
                raise ValueError(f"{head.id}(...) takes keyword arguments only, e.g. {head.id}(name=value)")
            for kw in call.keywords:
                if kw.arg is None:
                    raise ValueError(f"{head.id}(...) does not take **arguments")
                try:
                    kwargs[kw.arg] = ast.literal_eval(kw.value)
                except (ValueError, SyntaxError, TypeError):
                    raise ValueError(f"{head.id}({kw.arg}=...): {ast.unparse(kw.value)!r} is not a Python literal "
                                     "(number, string, tuple, list, True, False or None)") from None
        out.append((name, kwargs))
    return out


def _transform_arg(text: str) -> list[tuple[str, dict]]:
    try:
        return parse_transforms(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer in [0, 2**64), got {text!r}") from None
    if not 0 <= value < 2 ** 64:
        raise argparse.ArgumentTypeError(f"expected an integer in [0, 2**64), got {value}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="numbarl", description="numbarl: TorchRL-compatible envs and transforms on Numba")
    sub = parser.add_subparsers(dest="command", required=True)
    collect = sub.add_parser(
        "collect", help="collect a rollout with a random policy",
        description="Collect a rollout with a random policy and print a summary. A user mistake is one line on "
                    f"stderr and exit status 2; Ctrl-C stops cleanly (summary printed, data saved with --save), "
                    f"exit status {INTERRUPTED_EXIT}.")
    collect.add_argument("--env", default=None,
                         help="gymnasium env id (default: Pendulum-v1, or ALE/Pong-v5 with --preset atari)")
    collect.add_argument("--preset", choices=sorted(PRESETS), default=None,
                         help="a transform pipeline on the env's pixels, applied before --transforms: "
                              + "; ".join(f"{k} = {v[1]}" for k, v in PRESETS.items()))
    collect.add_argument("--steps", type=_positive_int, default=10_000,
                         help="steps of each env (default: 10000); frames = steps x num-envs")
    collect.add_argument("--num-envs", type=_positive_int, default=1, help="number of envs (default: 1)")
    collect.add_argument("--parallel", action="store_true", help="run the envs in worker processes (ParallelEnv)")
    collect.add_argument("--transforms", type=_transform_arg, default=[],
                         help="comma-separated transforms, applied in order, each optionally with keyword "
                              "arguments (Python literals), e.g. 'vecnorm(decay=0.99),catframes(N=4)'; one of: "
                              f"{', '.join(sorted(TRANSFORMS))}. obsnorm sets its loc and scale with init_stats "
                              f"on {OBSNORM_WARMUP_STEPS} random steps unless loc and scale are given")
    collect.add_argument("--seed", type=_seed, default=0,
                         help="seed of the env and of the random policy, in [0, 2**64) (default: 0)")
    collect.add_argument("--chunk", type=_positive_int, default=1000,
                         help="steps per rollout call (progress bar granularity; Ctrl-C keeps the finished chunks)"
                              " (default: 1000)")
    collect.add_argument("--save", default=None,
                         help="save the collected data to this file (torch.save of a nested dict of tensors, "
                              "loadable with weights_only=True); its directory must exist")
    collect.add_argument("--quiet", action="store_true", help="no progress bar and no summary")
    return parser


def _check_save_path(path: str) -> None:
    if os.path.isdir(path):
        raise UsageError(f"--save {path!r} is a directory; give a file path")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise UsageError(f"--save {path!r}: directory {parent!r} does not exist")
    if not os.access(parent, os.W_OK):
        raise UsageError(f"--save {path!r}: directory {parent!r} is not writable")


def _pixel_key(env) -> str:
    """The image observation the pixel preset works on: ``pixels``, or an observation of shape (H, W, C)."""
    keys = list(env.observation_keys)
    if "pixels" in keys:
        return "pixels"
    for key in keys:
        spec = env.observation_spec[key]
        if len(spec.shape) == 3 and spec.shape[-1] in (1, 3, 4):
            return key
    raise UsageError(f"--preset atari needs an env with image observations (a 'pixels' key or an (H, W, C) "
                     f"observation); {env.__class__.__name__} of --env gives {keys}")


def _atari_pipeline(key, pixel_dtype):
    """The preset's transforms; uint8 pixels stay uint8 (4x less memory than float32 frame stacks)."""
    import torch

    from . import transforms as T

    if pixel_dtype == torch.uint8:
        to_tensor = T.ToTensorImage(from_int=False, dtype=torch.uint8, in_keys=[key])
    else:
        to_tensor = T.ToTensorImage(in_keys=[key])
    return [to_tensor, T.GrayScale(in_keys=[key]), T.Resize(84, 84, in_keys=[key]),
            T.CatFrames(4, dim=-3, in_keys=[key])]


def _build_transform(name: str, kwargs: dict, key: str):
    import inspect

    from . import transforms as T

    cls_name, keyed, defaults = TRANSFORMS[name]
    cls = getattr(T, cls_name)
    full = {**defaults, **({"in_keys": [key]} if keyed else {}), **kwargs}
    signature = inspect.signature(cls)
    allowed = [p for p, v in signature.parameters.items() if v.kind not in (v.VAR_POSITIONAL, v.VAR_KEYWORD)]
    bad = sorted(set(kwargs) - set(allowed))  # named arguments only: a class's **kwargs takes no CLI words
    try:
        signature.bind(**full)
    except TypeError:
        bad = bad or ["?"]
    if bad:
        raise UsageError(f"--transforms {name}: unknown argument(s) {', '.join(bad)}; "
                         f"{cls_name} takes {', '.join(allowed)}")
    try:
        return cls(**full)
    except (TypeError, ValueError) as err:
        raise UsageError(f"--transforms {name}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())}): {err}") from None


def _make_env(args):
    from .envs import GymEnv
    from .transforms import TransformedEnv

    def make():
        return GymEnv(args.env)

    try:
        probe = make()  # a bad env id fails here, before any worker starts
    except (TypeError, ValueError) as err:
        raise UsageError(str(err)) from None
    try:
        key = probe.observation_keys[0]
        pixels = _pixel_key(probe) if args.preset is not None else None
        pixel_dtype = probe.observation_spec[pixels].dtype if pixels is not None else None
    finally:
        probe.close()
    if args.num_envs > 1:
        from . import envs as E

        env = (E.ParallelEnv if args.parallel else E.SerialEnv)(args.num_envs, make)
    else:
        env = make()
    env = TransformedEnv(env)
    try:
        env.set_seed(args.seed)
        if pixels is not None:
            for transform in _atari_pipeline(pixels, pixel_dtype):
                env.append_transform(transform)
        for name, kwargs in args.transforms:
            transform = _build_transform(name, kwargs, key)
            env.append_transform(transform)
            if name == "obsnorm" and not {"loc", "scale"} <= set(kwargs):
                batch_dims = len(env.batch_size)
                dims = tuple(range(batch_dims + 1))  # the env batch and time dims
                transform.init_stats(OBSNORM_WARMUP_STEPS, reduce_dim=dims if batch_dims else 0,
                                     cat_dim=batch_dims, keep_dims=None)
    except BaseException:
        env.close()
        raise
    return env


def rollout_chunks(env, steps: int, chunk: int) -> Iterator:
    """A stepping source stepping ``env.rollout`` directly: yields rollouts of ``chunk`` steps (the last may be shorter), ``steps`` in all.

    Each chunk continues the episodes of the previous one. The collect loop only iterates over this
    generator, so a collector with the same output (TensorDicts with the time dim last in the batch)
    can take its place.
    """
    from .envs.utils import step_mdp

    td = None
    done = 0
    while done < steps:
        n = min(chunk, steps - done)
        if td is None:
            part = env.rollout(n, break_when_any_done=False)
        else:
            part = env.rollout(n, break_when_any_done=False, auto_reset=False, tensordict=td)
        td = env.maybe_reset(step_mdp(part[..., -1], reward_keys=env._mdp_reward_keys(), done_keys=env.done_keys,
                                      action_keys=env.action_keys))
        done += n
        yield part


def collector_chunks(env, steps: int, chunk: int) -> Iterator:
    """The default stepping source: a :class:`~numbarl.torch_api.collectors.Collector` with a random policy.

    Yields batches of ``chunk`` steps of each env (the last one cut to the ``steps`` left), time dim last, with
    the same keys as a rollout (the collector's ``("collector", "traj_ids")`` entry is dropped). Episodes run
    on across batches; the collector resets an env when its episode ends.
    """
    from .collectors import Collector

    num_envs = max(1, env.batch_size.numel())
    batches = -(-steps // chunk)
    collector = Collector(env, None, frames_per_batch=chunk * num_envs, total_frames=batches * chunk * num_envs,
                          track_traj_ids=False)
    done = 0
    try:
        for batch in collector:
            n = min(chunk, steps - done)
            if n < batch.batch_size[-1]:
                batch = batch[..., :n]
            if "collector" in batch.keys():
                batch = batch.exclude("collector")
            done += n
            yield batch
            if done >= steps:
                break
    finally:
        collector.shutdown(close_env=False)


class _DeferredInterrupt:
    """SIGINT raises KeyboardInterrupt, except inside ``deferred()``, where it is raised on leaving the block.

    Installed for the collection only (it also works where the shell started the process with SIGINT ignored).
    """

    def __init__(self):
        self.received = False
        self._depth = 0
        self._pending = False
        self._previous = None

    def _handler(self, signum, frame):
        self.received = True
        if self._depth:
            self._pending = True
        else:
            raise KeyboardInterrupt

    def __enter__(self):
        self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc):
        signal.signal(signal.SIGINT, self._previous)
        return False

    def deferred(self):
        import contextlib

        @contextlib.contextmanager
        def block():
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            if self._pending:
                self._pending = False
                raise KeyboardInterrupt

        return block()


def _name(key) -> str:
    return ".".join(key) if isinstance(key, tuple) else key


class _Summary:
    """Per-key mean/std merged chunk by chunk (no float64 copy of the data), episodes and their returns."""

    def __init__(self):
        self.stats = {}  # key: [shape, dtype, count, mean, m2]
        self.returns = []  # returns of finished episodes
        self.carry = None  # return so far of each env's running episode

    def add(self, part, tdim: int):
        import torch

        for key, value in part.items(True, True):
            if not isinstance(value, torch.Tensor):
                continue
            n = value.numel()
            if n == 0:
                continue
            if value.dtype in (torch.uint8, torch.bool):  # frames, flags: a histogram, no wider copy
                hist = torch.bincount(value.reshape(-1).view(torch.uint8), minlength=256).double()
                levels = torch.arange(256, dtype=torch.float64)
                mean = float((hist * levels).sum()) / n
                m2 = float((hist * (levels - mean) ** 2).sum())
            else:
                x = value if value.is_floating_point() else value.to(torch.float64)
                var, mean = torch.var_mean(x, correction=0)
                mean, m2 = float(mean), float(var) * n
            row = self.stats.get(key)
            if row is None:
                shape = list(value.shape)
                shape[tdim] = 0
                row = self.stats[key] = [shape, value.dtype, 0, 0.0, 0.0]
            row[0][tdim] += value.shape[tdim]
            count = row[2] + n
            delta = mean - row[3]
            row[3] += delta * n / count
            row[4] += m2 + delta * delta * row[2] * n / count
            row[2] = count
        self._episodes(part, tdim)

    def _episodes(self, part, tdim: int):
        import numpy as np

        reward, done = part.get(("next", "reward"), None), part.get(("next", "done"), None)
        if reward is None or done is None:
            return
        r = reward.reshape(*reward.shape[:tdim + 1], -1).sum(-1).double().reshape(-1, reward.shape[tdim]).numpy()
        d = done.reshape(*done.shape[:tdim + 1], -1).any(-1).reshape(-1, done.shape[tdim]).numpy()
        if self.carry is None:
            self.carry = np.zeros(r.shape[0])
        cs = np.cumsum(r, axis=1)
        for e in range(r.shape[0]):  # one row per env
            ends = np.flatnonzero(d[e])
            if len(ends):
                totals = cs[e, ends] - np.concatenate([[0.0], cs[e, ends[:-1]]])
                totals[0] += self.carry[e]
                self.returns.extend(totals.tolist())
                self.carry[e] = cs[e, -1] - cs[e, ends[-1]]
            else:
                self.carry[e] += cs[e, -1]

    def print(self, steps: int, num_envs: int, elapsed: float, interrupted: bool) -> None:
        frames = steps * num_envs
        mean_return = f"{sum(self.returns) / len(self.returns):.5g}" if self.returns else "- (none finished)"
        rows = [("env steps (per env)", f"{steps}"), ("envs", f"{num_envs}"),
                ("frames (steps x envs)", f"{frames}"), ("seconds", f"{elapsed:.3f}"),
                ("frames/s", f"{frames / max(elapsed, 1e-9):,.0f}"), ("episodes finished", f"{len(self.returns)}"),
                ("mean episode return", mean_return)]
        if interrupted:
            rows.insert(0, ("interrupted", "yes (Ctrl-C): the chunks finished before it"))
        width = max(len(r[0]) for r in rows)
        print()
        for name, value in rows:
            print(f"{name:<{width}}  {value}")
        print()
        keys = sorted(self.stats, key=lambda k: (isinstance(k, tuple) and k[0] == "next", _name(k)))
        if not keys:
            return
        w = max(len(_name(k)) for k in keys)
        print(f"{'key':<{w}}  {'shape':>20}  {'dtype':>8}  {'mean':>12}  {'std':>12}")
        for key in keys:
            shape, dtype, count, mean, m2 = self.stats[key]
            std = (m2 / (count - 1)) ** 0.5 if count > 1 else float("nan")
            print(f"{_name(key):<{w}}  {str(tuple(shape)):>20}  {str(dtype).replace('torch.', ''):>8}  "
                  f"{mean:>12.5g}  {std:>12.5g}")


class _Store:
    """The collected data for ``--save``: buffers of the full size, filled chunk by chunk (no concatenation)."""

    def __init__(self, steps: int):
        self.steps = steps
        self.buffers = None
        self.filled = 0

    def add(self, part, tdim: int):
        import torch

        n = part.batch_size[tdim]
        if self.buffers is None:
            self.buffers = {}
            for key, value in part.items(True, True):
                shape = list(value.shape)
                shape[tdim] = self.steps
                self.buffers[key] = (torch.empty(shape, dtype=value.dtype), tdim)
        for key, (buffer, dim) in self.buffers.items():
            buffer.narrow(dim, self.filled, n).copy_(part.get(key))
        self.filled += n

    def save(self, path: str) -> None:
        import torch

        nested = {}
        for key, (buffer, dim) in (self.buffers or {}).items():
            parts = key if isinstance(key, tuple) else (key,)
            node = nested
            for p in parts[:-1]:
                node = node.setdefault(p, {})
            part = buffer.narrow(dim, 0, self.filled)
            # torch.save writes a view's whole storage: after Ctrl-C, copy out the filled part
            node[parts[-1]] = part if self.filled == self.steps else part.clone()
        tmp = f"{path}.partial"
        torch.save(nested, tmp)  # a complete file or none: an interrupted save leaves no truncated data
        os.replace(tmp, path)


def collect(args, source=None) -> int:
    """Run ``numbarl collect`` with parsed ``args``; returns the exit status.

    ``source(env, steps, chunk)`` yields the collected chunks (default: :func:`collector_chunks`);
    :func:`rollout_chunks`, or any generator of TensorDicts of the same layout, can take its place.
    """
    if source is None:
        source = collector_chunks
    if args.save is not None:
        _check_save_path(args.save)
    import torch

    if args.env is None:
        args.env = PRESETS[args.preset][0] if args.preset is not None else "Pendulum-v1"
    torch.manual_seed(args.seed)
    env = _make_env(args)  # seeded with args.seed
    summary = _Summary()
    store = _Store(args.steps) if args.save else None
    bar = None
    steps = 0
    sigint = _DeferredInterrupt()
    start = time.perf_counter()
    try:
        with sigint:
            if not args.quiet:
                from tqdm import tqdm

                bar = tqdm(total=args.steps * args.num_envs, unit="frame", desc=f"collect {args.env}",
                           dynamic_ncols=True)
            tdim = len(env.batch_size)
            for part in source(env, args.steps, args.chunk):
                with sigint.deferred():  # a chunk is added whole or not at all
                    n = part.batch_size[tdim]
                    if not args.quiet:
                        summary.add(part, tdim)
                    if store is not None:
                        store.add(part, tdim)
                    del part
                    steps += n
                    if bar is not None:
                        bar.update(n * args.num_envs)
    except KeyboardInterrupt:
        sigint.received = True
    finally:
        elapsed = time.perf_counter() - start
        if bar is not None:
            bar.close()
        try:
            env.close()
        except Exception as err:  # an env interrupted mid-step may fail to close; the data is kept
            if not sigint.received:
                raise
            print(f"numbarl collect: closing the env after the interruption: {err}", file=sys.stderr)
    interrupted = sigint.received
    if not args.quiet:
        summary.print(steps, args.num_envs, elapsed, interrupted)
    if store is not None:
        store.save(args.save)
        if not args.quiet:
            print(f"saved {steps} steps x {args.num_envs} envs to {args.save}")
    if interrupted:
        print(f"numbarl collect: interrupted after {steps} steps x {args.num_envs} envs", file=sys.stderr)
        return INTERRUPTED_EXIT
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``numbarl`` command; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "collect":
            return collect(args)
    except UsageError as err:
        print(f"numbarl {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # before the collection started (imports, env creation)
        print(f"numbarl {args.command}: interrupted", file=sys.stderr)
        return INTERRUPTED_EXIT
    return 2


if __name__ == "__main__":
    sys.exit(main())
