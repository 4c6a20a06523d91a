"""The Atari pipeline through transforms, beside its peers, and an ALE Pong rollout with it.

``TimeAtariTransforms``: one env step of 16 envs, i.e. a TensorDict holding
16 frames 210x160x3 uint8 under ``"pixels"``, through ToTensorImage ->
GrayScale -> Resize(84, 84) -> CatFrames(4, dim=-3) as ``TransformedEnv``
runs it (``Compose._step``), leaving a fresh ``[16, 4, 84, 84]`` float32
stack in the TensorDict. ``impl``:

* ``numbarl_fused``: ``Compose(...)`` of numbarl's transforms (the fused run);
* ``numbarl_unfused``: the same transforms, each in its own ``Compose`` so
  nothing fuses (one kernel pass per transform);
* ``numbarl_fused_uint8`` / ``numbarl_unfused_uint8``: the uint8 chain
  (``ToTensorImage(from_int=False, dtype=torch.uint8)``, the preset of
  ``numbarl collect --preset atari``), leaving a uint8 stack;
* ``torch``: the tensor ops TorchRL runs: ``permute().div(255)``, the
  weighted channel sum, ``F.interpolate(antialias=True)``, ``torch.cat``;
* ``opencv``: ``cv2.cvtColor`` + ``cv2.resize(INTER_AREA)`` per frame,
  ``np.stack``, ``/ 255`` and ``np.concatenate`` of the last 4 frames.

``TimePongRollout``: 100 steps of ``ALE/Pong-v5`` (frameskip 1, as TorchRL
makes ALE envs) with ToTensorImage + CatFrames(4, dim=-3) (what TorchRL can
run without torchvision) or the whole pipeline (numbarl only).

Run as a script for a side-by-side table (medians of interleaved repeats;
by default wall-clock time with each library's default threads, with
``1`` every library on one thread and the calling thread's CPU time, which
leaves out time spent descheduled on a shared machine)::

    python asv_bench/benchmarks/bench_atari.py [1]
"""
import warnings

import numpy as np

try:
    from ._timing import interleaved_medians
except ImportError:  # run as a script from this folder
    from _timing import interleaved_medians

BATCH, H, W, C = 16, 210, 160, 3
OUT, STACK = 84, 4
GRAY = (0.2989, 0.587, 0.114)
STEPS = 100


def _need(module):
    try:
        return __import__(module)
    except ImportError as err:
        raise NotImplementedError(f"{module} is not installed: {err}") from None


def _frames():
    return np.random.default_rng(0).integers(0, 256, (BATCH, H, W, C), dtype=np.uint8)


def _numbarl_pipeline(fused, uint8=False):
    import torch
    from numbarl.torch_api import CatFrames, Compose, GrayScale, Resize, ToTensorImage

    to_tensor = ToTensorImage(from_int=False, dtype=torch.uint8) if uint8 else ToTensorImage()
    ts = [to_tensor, GrayScale(), Resize(OUT, OUT), CatFrames(STACK, dim=-3)]
    return Compose(*ts) if fused else Compose(*[Compose(t) for t in ts])


def atari_step(impl):
    """A function running one step of the pipeline for ``impl`` (see the module docstring)."""
    torch = _need("torch")
    from tensordict import TensorDict

    pixels = torch.from_numpy(_frames())
    root = TensorDict({}, [BATCH])
    if impl in ("numbarl_fused", "numbarl_unfused", "numbarl_fused_uint8", "numbarl_unfused_uint8"):
        t = _numbarl_pipeline(impl.startswith("numbarl_fused"), uint8=impl.endswith("_uint8"))
        t._reset(root, TensorDict({"pixels": pixels}, [BATCH]))
        return lambda: t._step(root, TensorDict({"pixels": pixels}, [BATCH]))
    if impl == "torch":
        F = torch.nn.functional
        state = {}

        def run():
            td = TensorDict({"pixels": pixels}, [BATCH])
            x = td["pixels"].permute(0, 3, 1, 2).float().div(255)
            r, g, b = x.unbind(-3)
            gray = (GRAY[0] * r + GRAY[1] * g + GRAY[2] * b).unsqueeze(-3)
            small = F.interpolate(gray, size=(OUT, OUT), mode="bilinear", align_corners=False, antialias=True)
            buf = state.get("buf")
            buf = small.repeat(1, STACK, 1, 1) if buf is None else torch.cat([buf[:, 1:], small], dim=1)
            state["buf"] = buf
            td.set("pixels", buf)
            return td

        return run
    if impl == "opencv":
        cv2 = _need("cv2")
        history = []

        def run():
            td = TensorDict({"pixels": pixels}, [BATCH])
            frames = td["pixels"].numpy()
            small = np.stack([cv2.resize(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), (OUT, OUT),
                                         interpolation=cv2.INTER_AREA) for f in frames])
            small = (small[:, None].astype(np.float32) / np.float32(255))
            if not history:
                history.extend([small] * STACK)
            history.append(small)
            del history[0]
            td.set("pixels", torch.from_numpy(np.concatenate(history, axis=1)))
            return td

        return run
    raise NotImplementedError(f"no Atari pipeline for {impl}")


ATARI_IMPLS = ["numbarl_fused", "numbarl_unfused", "numbarl_fused_uint8", "numbarl_unfused_uint8", "torch", "opencv"]


class TimeAtariTransforms:
    """One step of 16 envs: 16 frames 210x160x3 uint8 -> gray 84x84 float32 -> stack of 4."""

    params = ATARI_IMPLS
    param_names = ["impl"]

    def setup(self, impl):
        self.run = atari_step(impl)
        self.run()  # compile or load kernels, build lazy state

    def time_step(self, impl):
        self.run()


def pong_env(impl, pipeline):
    """A seeded ``ALE/Pong-v5`` env (frameskip 1) with ``pipeline`` ("to_tensor_cat" or "full")."""
    warnings.filterwarnings("ignore")
    _need("ale_py")
    if impl == "numbarl":
        import numbarl.torch_api as lib

        base = lib.GymEnv("ALE/Pong-v5", frameskip=1)
    elif impl == "torchrl":
        if pipeline != "to_tensor_cat":
            raise NotImplementedError("TorchRL's GrayScale/Resize chain needs torchvision for Resize")
        try:
            import torchrl.envs as lib
        except ImportError:
            raise NotImplementedError("torchrl is not installed") from None
        base = lib.GymEnv("ALE/Pong-v5")
    else:
        raise NotImplementedError(f"no Pong rollout for {impl}")
    if pipeline == "to_tensor_cat":
        transforms = [lib.ToTensorImage(), lib.CatFrames(STACK, dim=-3)]
    else:
        transforms = [lib.ToTensorImage(), lib.GrayScale(), lib.Resize(OUT, OUT), lib.CatFrames(STACK, dim=-3)]
    env = lib.TransformedEnv(base, lib.Compose(*transforms))
    env.set_seed(0)
    return env


def pong_rollout(impl, pipeline):
    """A function running a 100-step rollout (random actions from a fixed list) for ``impl``."""
    torch = _need("torch")
    env = pong_env(impl, pipeline)
    actions = [torch.nn.functional.one_hot(torch.tensor(i % 6), 6) for i in range(STEPS)]
    return lambda: env.rollout(STEPS, actions=actions, break_when_any_done=False)


class TimePongRollout:
    """100 steps of ALE Pong through the pipeline."""

    params = (["numbarl", "torchrl"], ["to_tensor_cat", "full"])
    param_names = ["impl", "pipeline"]
    timeout = 300

    def setup(self, impl, pipeline):
        self.run = pong_rollout(impl, pipeline)
        self.run()

    def time_rollout(self, impl, pipeline):
        self.run()


def _median_ms(runs, repeat, timer):
    # interleaved, so that load changes hit every impl alike
    return {name: 1e3 * t for name, t in interleaved_medians(runs, repeat, timer).items()}


def _side_by_side(repeat=51, single_thread=False):
    import platform
    import time

    import torch

    timer = time.perf_counter
    if single_thread:
        torch.set_num_threads(1)
        try:
            import cv2

            cv2.setNumThreads(1)
        except ImportError:
            pass
        timer = time.thread_time
    clock = "thread CPU time, one thread each" if single_thread else "wall-clock time, default threads"
    print(f"machine: {platform.machine()}, {platform.processor() or 'cpu'}, torch threads "
          f"{torch.get_num_threads()}; {clock}; median of {repeat} interleaved samples")
    runs = {}
    for impl in ATARI_IMPLS:
        try:
            runs[impl] = atari_step(impl)
            runs[impl]()
        except NotImplementedError as err:
            print(f"  {impl}: skipped ({err})")
    ms = _median_ms(runs, repeat, timer)
    base = ms["numbarl_fused"]
    print("Atari pipeline, one step of 16 envs (ms; ratio = time / numbarl_fused)")
    for name, t in ms.items():
        print(f"  {name:<22} {t:9.3f}  {t / base:7.2f}x")
    runs = {}
    for impl, pipeline in (("numbarl", "to_tensor_cat"), ("torchrl", "to_tensor_cat"), ("numbarl", "full")):
        try:
            runs[f"{impl}/{pipeline}"] = pong_rollout(impl, pipeline)
            runs[f"{impl}/{pipeline}"]()
        except NotImplementedError as err:
            print(f"  {impl}/{pipeline}: skipped ({err})")
    ms = _median_ms(runs, max(3, repeat // 10), timer)
    print(f"ALE Pong rollout, {STEPS} steps (ms)")
    for name, t in ms.items():
        print(f"  {name:<24} {t:9.1f}")


if __name__ == "__main__":
    import sys

    _side_by_side(single_thread=sys.argv[1:] == ["1"])
