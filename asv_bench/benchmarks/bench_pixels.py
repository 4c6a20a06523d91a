"""Pixel kernels and the Atari preprocessing pipeline, beside their peers.

Data: a batch of 16 Atari-sized frames, 210x160x3 uint8. ``impl`` is the
implementation:

* ``numbarl``: ``numbarl.core.pixels`` / ``numbarl.core.frames``;
* ``torch``: the tensor ops TorchRL runs (``permute().div(255)``, the
  weighted channel sum of ``rgb_to_grayscale``, ``F.interpolate``,
  ``torch.cat`` / ``torch.roll`` for the frame stack);
* ``opencv``: ``cv2.cvtColor`` + ``cv2.resize`` per frame (``INTER_AREA``
  for antialiased, ``INTER_LINEAR`` otherwise) and NumPy for the rest (the
  frame stack: a ring of float frames and ``np.take`` of the ordered stack
  into a preallocated output, the same memory traffic as numbarl's ring);
* ``gymnasium``: ``GrayscaleObservation`` -> ``ResizeObservation`` ->
  ``FrameStackObservation`` wrappers on a dummy environment per frame
  (their internals are NumPy + ``cv2.INTER_AREA``);
* ``numpy``: plain NumPy where that is the natural peer (copies, transposes).

Peers that cannot be imported, or have no equivalent for a parameter, are
skipped (NotImplementedError in setup).

Run as a script for a side-by-side table (median of repeats, interleaved,
every library on one thread, thread CPU time; pass a thread count to use
wall-clock time with that many threads)::

    python asv_bench/benchmarks/bench_pixels.py [threads]
"""
import numpy as np

BATCH, H, W, C = 16, 210, 160, 3
OUT = 84
STACK = 4
GRAY = (0.2989, 0.587, 0.114)


def _frames():
    return np.random.default_rng(0).integers(0, 256, (BATCH, H, W, C), dtype=np.uint8)


def _need(module):
    try:
        return __import__(module)
    except ImportError as err:
        raise NotImplementedError(f"{module} is not installed: {err}") from None


def _torch():
    torch = _need("torch")
    return torch, torch.nn.functional


# ------------------------------------------------------------ single kernels
def _to_tensor_image(impl, frames):
    if impl == "numbarl":
        from numbarl.core.pixels import to_tensor_image

        out = np.empty((BATCH, C, H, W), np.float32)
        return lambda: to_tensor_image(frames, out=out)
    if impl == "torch":
        torch, _ = _torch()
        t = torch.from_numpy(frames)
        return lambda: t.permute(0, 3, 1, 2).div(255).contiguous()
    if impl == "numpy":
        return lambda: np.ascontiguousarray(frames.transpose(0, 3, 1, 2)).astype(np.float32) / np.float32(255)
    raise NotImplementedError(f"to_tensor_image has no {impl} peer")


def _grayscale(impl, frames):
    chw = np.ascontiguousarray(frames.transpose(0, 3, 1, 2))
    if impl == "numbarl":
        from numbarl.core.pixels import grayscale

        out = np.empty((BATCH, 1, H, W), np.uint8)
        return lambda: grayscale(chw, out=out)
    if impl == "torch":
        torch, _ = _torch()
        t = torch.from_numpy(chw)

        def run():
            r, g, b = t.unbind(-3)
            return (GRAY[0] * r + GRAY[1] * g + GRAY[2] * b).to(t.dtype).unsqueeze(-3)

        return run
    if impl == "opencv":
        cv2 = _need("cv2")
        out = np.empty((BATCH, H, W), np.uint8)

        def run():
            for i in range(BATCH):
                cv2.cvtColor(frames[i], cv2.COLOR_RGB2GRAY, dst=out[i])

        return run
    if impl == "gymnasium":
        wrappers = [_gym_chain(f, gray=True) for f in frames]
        return lambda: [w.observation(f) for w, f in zip(wrappers, frames)]
    raise NotImplementedError(f"grayscale has no {impl} peer")


def _resize(impl, frames, antialias, dtype):
    planes = np.ascontiguousarray(frames.transpose(0, 3, 1, 2)).reshape(BATCH * C, H, W)
    if dtype == "float32":
        planes = planes.astype(np.float32) / np.float32(255)
    if impl == "numbarl":
        from numbarl.core.pixels import resize

        out = np.empty((BATCH * C, OUT, OUT), planes.dtype)
        return lambda: resize(planes, OUT, OUT, antialias=antialias, out=out)
    if impl == "torch":
        torch, F = _torch()
        t = torch.from_numpy(planes).reshape(BATCH, C, H, W)
        return lambda: F.interpolate(t, size=(OUT, OUT), mode="bilinear", align_corners=False, antialias=antialias)
    if impl == "opencv":
        cv2 = _need("cv2")
        interp = cv2.INTER_AREA if antialias else cv2.INTER_LINEAR
        out = np.empty((BATCH * C, OUT, OUT), planes.dtype)

        def run():
            for i in range(planes.shape[0]):
                cv2.resize(planes[i], (OUT, OUT), dst=out[i], interpolation=interp)

        return run
    raise NotImplementedError(f"resize has no {impl} peer")


def _center_crop(impl, frames):
    chw = np.ascontiguousarray(frames.transpose(0, 3, 1, 2))
    top, left = int(round((H - OUT) / 2.0)), int(round((W - OUT) / 2.0))
    if impl == "numbarl":
        from numbarl.core.pixels import center_crop

        out = np.empty((BATCH, C, OUT, OUT), np.uint8)
        return lambda: center_crop(chw, OUT, OUT, out=out)
    if impl == "torch":
        torch, _ = _torch()
        t = torch.from_numpy(chw)
        return lambda: t[..., top : top + OUT, left : left + OUT].contiguous()
    if impl == "numpy":
        return lambda: np.ascontiguousarray(chw[..., top : top + OUT, left : left + OUT])
    raise NotImplementedError(f"center_crop has no {impl} peer")


def _permute(impl, frames):
    if impl == "numbarl":
        from numbarl.core.pixels import permute_last

        out = np.empty((BATCH, C, H, W), np.uint8)
        return lambda: permute_last(frames, (2, 0, 1), out=out)
    if impl == "torch":
        torch, _ = _torch()
        t = torch.from_numpy(frames)
        return lambda: t.permute(0, 3, 1, 2).contiguous()
    if impl == "numpy":
        return lambda: np.ascontiguousarray(frames.transpose(0, 3, 1, 2))
    raise NotImplementedError(f"permute_last has no {impl} peer")


def _frame_push(impl):
    frame = np.random.default_rng(1).random((BATCH, 1, OUT, OUT), dtype=np.float32)
    if impl == "numbarl":
        from numbarl.core.frames import frames_push, frames_reset, frames_state

        buffer, pos = frames_state((BATCH,), STACK, (1, OUT, OUT), np.float32)
        frames_reset(buffer, pos, frame)
        out = np.empty((BATCH, STACK, OUT, OUT), np.float32)
        return lambda: frames_push(buffer, pos, frame, out=out, dim=-3)
    if impl == "torch":
        torch, _ = _torch()
        t = torch.from_numpy(frame)
        state = {"buf": t.repeat(1, STACK, 1, 1)}

        def run():  # CatFrames' step: roll the buffer, write the newest frame, hand out a copy
            buf = torch.roll(state["buf"], shifts=-1, dims=-3)
            buf[:, -1:] = t
            state["buf"] = buf
            return buf.clone()

        return run
    if impl == "numpy":
        import collections

        queues = [collections.deque([f] * STACK, maxlen=STACK) for f in frame]

        def run():
            for q, f in zip(queues, frame):
                q.append(f)
            return np.stack([np.concatenate(q, axis=0) for q in queues])

        return run
    raise NotImplementedError(f"frames_push has no {impl} peer")


# ------------------------------------------------------------ Atari pipeline
def _gym_chain(first_frame, gray=False, resize=False, stack=False):
    """Gymnasium wrappers on a dummy env whose every step returns ``first_frame``."""
    gym = _need("gymnasium")
    from gymnasium.wrappers import (
        FrameStackObservation,
        GrayscaleObservation,
        ResizeObservation,
    )

    class Frames(gym.Env):
        observation_space = gym.spaces.Box(0, 255, (H, W, C), np.uint8)
        action_space = gym.spaces.Discrete(2)

        def __init__(self):
            self.frame = first_frame

        def reset(self, *, seed=None, options=None):
            return self.frame, {}

        def step(self, action):
            return self.frame, 0.0, False, False, {}

    env = Frames()
    env = GrayscaleObservation(env) if gray or resize or stack else env
    env = ResizeObservation(env, (OUT, OUT)) if resize or stack else env
    env = FrameStackObservation(env, STACK) if stack else env
    if stack:
        _need("cv2")
        env.reset()
    return env


def _pipeline(impl, frames, antialias, stack=True):
    """16 frames -> gray -> 84x84 float32 in [0, 1] (-> stack of the last 4)."""
    if impl == "numbarl" and not stack:
        from numbarl.core.pixels import gray_resize

        small = np.empty((BATCH, 1, OUT, OUT), np.float32)
        return lambda: gray_resize(frames, OUT, OUT, antialias, out=small)
    if impl == "numbarl":
        from numbarl.core.frames import frames_next_slot, frames_push, frames_reset, frames_state
        from numbarl.core.pixels import gray_resize

        buffer, pos = frames_state((BATCH,), STACK, (1, OUT, OUT), np.float32)
        frames_reset(buffer, pos, gray_resize(frames, OUT, OUT, antialias))
        out = np.empty((BATCH, STACK, OUT, OUT), np.float32)

        def run():  # resize straight into the ring slot, then write the stack
            gray_resize(frames, OUT, OUT, antialias, out=frames_next_slot(buffer, pos))
            return frames_push(buffer, pos, None, out=out, dim=-3)

        return run
    if impl == "torch":
        torch, F = _torch()
        t = torch.from_numpy(frames)
        state = {"buf": torch.zeros(BATCH, STACK, OUT, OUT)}

        def run():
            x = t.permute(0, 3, 1, 2).div(255)
            r, g, b = x.unbind(-3)
            gray = (GRAY[0] * r + GRAY[1] * g + GRAY[2] * b).unsqueeze(-3)
            small = F.interpolate(gray, size=(OUT, OUT), mode="bilinear", align_corners=False, antialias=antialias)
            if not stack:
                return small
            state["buf"] = torch.cat([state["buf"][:, 1:], small], dim=1)
            return state["buf"]

        return run
    if impl == "opencv":
        cv2 = _need("cv2")
        interp = cv2.INTER_AREA if antialias else cv2.INTER_LINEAR
        gray = np.empty((H, W), np.uint8)
        small = np.empty((BATCH, OUT, OUT), np.uint8)
        ring = np.zeros((BATCH, STACK, OUT, OUT), np.float32)
        out = np.empty((BATCH, STACK, OUT, OUT), np.float32)
        state = {"pos": 0}

        def run():
            for i in range(BATCH):
                cv2.cvtColor(frames[i], cv2.COLOR_RGB2GRAY, dst=gray)
                cv2.resize(gray, (OUT, OUT), dst=small[i], interpolation=interp)
            if not stack:
                return np.multiply(small, np.float32(1 / 255), out=out[:, 0])
            # the same ring as numbarl's: write the newest frame into its slot,
            # then copy the stack, oldest first, into an output that the next
            # step does not overwrite in place (as CatFrames hands out a clone)
            pos = state["pos"]
            np.multiply(small, np.float32(1 / 255), out=ring[:, pos])
            state["pos"] = pos = (pos + 1) % STACK
            return np.take(ring, (np.arange(STACK) + pos) % STACK, axis=1, out=out)

        return run
    if impl == "gymnasium":
        if not antialias:
            raise NotImplementedError("gymnasium's ResizeObservation always uses cv2.INTER_AREA")
        if not stack:
            chains = [_gym_chain(f, resize=True) for f in frames]
            return lambda: np.stack([c.observation(c.env.observation(f)) for c, f in zip(chains, frames)]).astype(
                np.float32) / np.float32(255)
        envs = [_gym_chain(f, stack=True) for f in frames]

        def run():
            stacks = [env.step(0)[0] for env in envs]
            return np.stack(stacks).astype(np.float32) / np.float32(255)

        return run
    raise NotImplementedError(f"the pipeline has no {impl} peer")


IMPLS = ["numbarl", "torch", "opencv", "gymnasium", "numpy"]

KERNELS = {
    "to_tensor_image": lambda impl, f: _to_tensor_image(impl, f),
    "grayscale": lambda impl, f: _grayscale(impl, f),
    "resize_u8_aa": lambda impl, f: _resize(impl, f, True, "uint8"),
    "resize_u8": lambda impl, f: _resize(impl, f, False, "uint8"),
    "resize_f32_aa": lambda impl, f: _resize(impl, f, True, "float32"),
    "resize_f32": lambda impl, f: _resize(impl, f, False, "float32"),
    "center_crop": lambda impl, f: _center_crop(impl, f),
    "permute_last": lambda impl, f: _permute(impl, f),
    "frames_push": lambda impl, f: _frame_push(impl),
    "gray_resize_aa": lambda impl, f: _pipeline(impl, f, True, stack=False),
    "gray_resize": lambda impl, f: _pipeline(impl, f, False, stack=False),
    "atari_pipeline_aa": lambda impl, f: _pipeline(impl, f, True),
    "atari_pipeline": lambda impl, f: _pipeline(impl, f, False),
}


class TimePixelKernels:
    """Each kernel on 16 Atari frames, beside its peers."""

    params = (list(KERNELS), IMPLS)
    param_names = ["kernel", "impl"]

    def setup(self, kernel, impl):
        self.run = KERNELS[kernel](impl, _frames())
        self.run()  # compile or load kernels, build lazy state

    def time_kernel(self, kernel, impl):
        self.run()


class TimeAtariPipeline:
    """16 frames 210x160x3 uint8 -> gray 84x84 float32 -> stack of 4."""

    params = ([True, False], IMPLS)
    param_names = ["antialias", "impl"]

    def setup(self, antialias, impl):
        self.run = _pipeline(impl, _frames(), antialias)
        self.run()

    def time_pipeline(self, antialias, impl):
        self.run()


def _side_by_side(repeat=41, threads=1, sample_s=0.005, cpu_time=True):
    """Print median times per kernel and implementation, measured in this run.

    ``threads`` caps torch's and OpenCV's thread pools (numbarl's kernels run
    on one thread at these sizes), so that the figures compare single cores;
    0 keeps the defaults. With ``cpu_time`` (the default, only meaningful
    with ``threads=1``) samples are the calling thread's CPU time, which
    leaves out the time the thread spends descheduled on a shared machine;
    otherwise wall-clock time.
    """
    import platform
    import time
    import timeit

    timer = time.thread_time if cpu_time else time.perf_counter

    try:
        import torch

        if threads:
            torch.set_num_threads(threads)
        info = f"torch threads {torch.get_num_threads()}"
    except ImportError:
        info = "no torch"
    try:
        import cv2

        if threads:
            cv2.setNumThreads(threads)
        info += f", cv2 threads {cv2.getNumThreads()}"
    except ImportError:
        pass
    threads = info
    clock = "thread CPU time" if cpu_time else "wall-clock time"
    print(f"machine: {platform.machine()}, {platform.processor() or 'cpu'}, python {platform.python_version()}, "
          f"{threads}; {clock}, median of {repeat} interleaved samples")
    frames = _frames()
    for kernel, make in KERNELS.items():
        runs = {}
        for impl in IMPLS:
            try:
                runs[impl] = make(impl, frames)
                runs[impl]()
            except NotImplementedError:
                continue
        number = {name: max(1, int(sample_s / max(timeit.timeit(run, number=2) / 2, 1e-7))) for name, run in runs.items()}
        times = {name: [] for name in runs}
        for _ in range(repeat):  # interleaved, so that load changes hit every impl alike
            for name, run in runs.items():
                times[name].append(timeit.timeit(run, number=number[name], timer=timer) / number[name])
        base = float(np.median(times["numbarl"]))
        for name, t in times.items():
            med = float(np.median(t))
            print(f"{kernel:18s} {name:10s} {med * 1e6:10.1f} us   {med / base:6.2f} x numbarl"
                  f"   (min {min(t) * 1e6:.1f} us)")


if __name__ == "__main__":
    import sys

    n_threads = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    _side_by_side(threads=n_threads, cpu_time=n_threads == 1)
