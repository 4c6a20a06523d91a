"""GPU benchmarks: numbarl's numba.cuda kernels beside the equivalent torch CUDA ops.

``impl`` is ``numbarl`` (the twins in ``numbarl.core.cuda``, called the way
a transform calls them: CUDA tensors viewed with ``as_array``, torch's current
stream from ``stream_kwargs``, preallocated outputs) or ``torch`` (the tensor
ops TorchRL runs, or the usual vectorised torch formulation). Every timed call
ends with ``torch.cuda.synchronize()``, so the times are of finished GPU work.

* ``TimeResizeCUDA``: 256 planes 210x160 float32 to 84x84, bilinear with and
  without antialias, against ``torch.nn.functional.interpolate``.
* ``TimeGrayscaleCUDA``: 256 RGB images 210x160 float32, against the weighted
  channel sum ``0.2989 r + 0.587 g + 0.114 b``.
* ``TimeMomentsCUDA``: update + normalize of a ``[4096, 64]`` float32 batch
  (VecNorm's hot path); ``numbarl`` reads nothing back (``check=False``),
  ``numbarl_checked`` reads the status back every call; ``torch`` is
  ``torch.var_mean`` over the batch, Chan's merge into float64 state tensors
  and the normalisation.
* ``TimeAtariPipelineCUDA``: 256 frames 210x160x3 uint8 to a ``[256, 4, 84,
  84]`` float32 frame stack: ToTensorImage -> GrayScale -> Resize(84,
  antialias) -> CatFrames(4). ``numbarl`` runs one kernel per step plus the
  ring push, ``numbarl_fused`` the fused ``gray_resize`` plus the push,
  ``torch`` the torch ops (permute/div, weighted sum, interpolate, cat).
* ``TimeRewardToGoCUDA``: 4096 trajectories of 1000 steps, float32,
  gamma = 0.99, dones every ~200 steps; ``torch`` is the cumsum form
  ``G_t = (S_t - S_{e(t)+1}) / gamma**t`` with ``S_t = sum_{k>=t} gamma**k r_k``
  (reverse cumsum, float64) and ``e(t)`` the end of ``t``'s episode (reverse
  cummin over the done indices).

Without a GPU (or under the CUDA simulator) every setup raises
NotImplementedError, which asv reports as skipped.

Run as a script for a side-by-side table (medians of repeats, one GPU)::

    python asv_bench/benchmarks/bench_cuda.py
"""
import os
import time

import numpy as np

BATCH, H, W, C = 256, 210, 160, 3
OUT, STACK = 84, 4
GRAY = (0.2989, 0.587, 0.114)
MOMENTS_SHAPE = (4096, 64)
EPS = 1e-8
RTG_SHAPE = (4096, 1000, 1)
GAMMA = 0.99


def _gpu():
    """``(torch, numba.cuda)`` when a CUDA GPU is usable; NotImplementedError (asv's skip) otherwise."""
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        raise NotImplementedError("the CUDA simulator is not benchmarked")
    try:
        import torch
        from numba import cuda
    except ImportError as err:
        raise NotImplementedError(f"torch or numba.cuda is not installed: {err}") from None
    if not torch.cuda.is_available():
        raise NotImplementedError("no CUDA GPU available to torch")
    if not cuda.is_available():
        raise NotImplementedError("no CUDA GPU available to numba")
    return torch, cuda


def torch_reward_to_go(reward, done, gamma):
    """Reward-to-go of ``[B, T, 1]`` tensors with cumulative sums (any device, float64 inside).

    ``G_t = (S_t - S_{e+1}) / gamma**t`` where ``S_t = sum_{k >= t} gamma**k r_k``
    and ``e`` is the first step at or after ``t`` that is done (the last step
    when none is). Needs ``0 < gamma`` and ``gamma**T`` well above float64's
    underflow.
    """
    import torch

    r = reward[..., 0].double()
    d = done[..., 0]
    n_steps = r.shape[-1]
    steps = torch.arange(n_steps, device=r.device)
    scale = torch.pow(torch.tensor(gamma, dtype=torch.float64, device=r.device), steps.double())
    s = (r * scale).flip(-1).cumsum(-1).flip(-1)
    s = torch.cat([s, s.new_zeros(s.shape[:-1] + (1,))], dim=-1)
    ends = torch.where(d, steps, torch.full_like(steps, n_steps - 1))
    ends = ends.flip(-1).cummin(-1).values.flip(-1)
    g = (s[..., :n_steps] - s.gather(-1, ends + 1)) / scale
    return g.to(reward.dtype).unsqueeze(-1)


def _rtg_data(shape=RTG_SHAPE, seed=0):
    rng = np.random.default_rng(seed)
    reward = rng.standard_normal(shape).astype(np.float32)
    done = rng.random(shape) < 1.0 / 200
    return reward, done


class _GPUBench:
    timeout = 300

    def _sync(self):
        self.torch.cuda.synchronize()


class TimeResizeCUDA(_GPUBench):
    """Bilinear resize of 256 planes 210x160 to 84x84."""

    params = ([False, True], ["numbarl", "torch"])
    param_names = ["antialias", "impl"]

    def setup(self, antialias, impl):
        self.torch, _ = _gpu()
        torch = self.torch
        x = torch.rand(BATCH, 1, H, W, device="cuda")
        out = torch.empty(BATCH, 1, OUT, OUT, device="cuda")
        if impl == "numbarl":
            from numbarl.torch_api._arrays import as_array, kernels_for, stream_kwargs

            resize = kernels_for(x, "pixels").resize
            xa, oa, kw = as_array(x), as_array(out), stream_kwargs(x)
            self.run = lambda: resize(xa, OUT, OUT, antialias=antialias, out=oa, **kw)
        else:
            F = torch.nn.functional
            self.run = lambda: F.interpolate(x, size=(OUT, OUT), mode="bilinear", align_corners=False,
                                             antialias=antialias)
        self.run()
        self._sync()

    def time_resize(self, antialias, impl):
        self.run()
        self._sync()


class TimeGrayscaleCUDA(_GPUBench):
    """Luma of 256 RGB images 210x160 float32."""

    params = ["numbarl", "torch"]
    param_names = ["impl"]

    def setup(self, impl):
        self.torch, _ = _gpu()
        torch = self.torch
        x = torch.rand(BATCH, 3, H, W, device="cuda")
        out = torch.empty(BATCH, 1, H, W, device="cuda")
        if impl == "numbarl":
            from numbarl.torch_api._arrays import as_array, kernels_for, stream_kwargs

            gray = kernels_for(x, "pixels").grayscale
            xa, oa, kw = as_array(x), as_array(out), stream_kwargs(x)
            self.run = lambda: gray(xa, out=oa, **kw)
        else:
            def run():
                r, g, b = x.unbind(-3)
                return (GRAY[0] * r + GRAY[1] * g + GRAY[2] * b).unsqueeze(-3)

            self.run = run
        self.run()
        self._sync()

    def time_grayscale(self, impl):
        self.run()
        self._sync()


def _torch_moments(torch, x):
    """Update float64 (loc, m2, weight) tensors with ``x`` by Chan's formula, then normalize ``x``."""
    loc = torch.zeros(x.shape[1:], dtype=torch.float64, device=x.device)
    m2 = torch.zeros_like(loc)
    weight = torch.zeros((), dtype=torch.float64, device=x.device)

    def run():
        var_b, mean_b = torch.var_mean(x.double(), dim=0, correction=0)
        n = x.shape[0]
        total = weight + n
        delta = mean_b - loc
        loc.add_(delta * (n / total))
        m2.add_(var_b * n + delta * delta * (weight * n / total))
        weight.copy_(total)
        std = (m2 / weight).sqrt().clamp_min(EPS)
        return (x - loc.float()) / std.float()

    return run


class TimeMomentsCUDA(_GPUBench):
    """Running-moment update + normalize of a [4096, 64] float32 batch."""

    params = ["numbarl", "numbarl_checked", "torch"]
    param_names = ["impl"]

    def setup(self, impl):
        self.torch, _ = _gpu()
        torch = self.torch
        x = torch.randn(*MOMENTS_SHAPE, device="cuda") * 2 + 3
        if impl.startswith("numbarl"):
            from numbarl.core.cuda.moments import moments_init
            from numbarl.torch_api._arrays import as_array, kernels_for, stream_kwargs

            fn = kernels_for(x, "moments").moments_update_normalize
            state = moments_init(MOMENTS_SHAPE[1:]).arrays
            out = torch.empty_like(x)
            xa, oa = as_array(x), as_array(out)
            kw = stream_kwargs(x, check=impl == "numbarl_checked")
            self.run = lambda: fn(xa, *state, 1.0, EPS, out=oa, **kw)
        else:
            self.run = _torch_moments(torch, x)
        self.run()
        self._sync()

    def time_update_normalize(self, impl):
        self.run()
        self._sync()


class TimeAtariPipelineCUDA(_GPUBench):
    """256 frames 210x160x3 uint8 to a [256, 4, 84, 84] float32 stack, per step."""

    params = ["numbarl", "numbarl_fused", "torch"]
    param_names = ["impl"]

    def setup(self, impl):
        self.torch, _ = _gpu()
        torch = self.torch
        frames = torch.randint(0, 256, (BATCH, H, W, C), dtype=torch.uint8, device="cuda")
        if impl.startswith("numbarl"):
            from numbarl.torch_api._arrays import as_array, kernels_for, stream_kwargs

            pix = kernels_for(frames, "pixels")
            ring = kernels_for(frames, "frames")
            kw = stream_kwargs(frames)
            ring_kw = stream_kwargs(frames, check=False)
            chw = as_array(torch.empty(BATCH, C, H, W, device="cuda"))
            gray = as_array(torch.empty(BATCH, 1, H, W, device="cuda"))
            small = as_array(torch.empty(BATCH, 1, OUT, OUT, device="cuda"))
            buffer = as_array(torch.zeros(BATCH, STACK, 1, OUT, OUT, device="cuda"))
            pos = as_array(torch.zeros(BATCH, dtype=torch.int64, device="cuda"))
            stack = as_array(torch.empty(BATCH, STACK, OUT, OUT, device="cuda"))
            x = as_array(frames)

            if impl == "numbarl_fused":
                def run():
                    pix.gray_resize(x, OUT, OUT, antialias=True, out=small, **kw)
                    ring.frames_push(buffer, pos, small, out=stack, dim=-3, **ring_kw)
            else:
                def run():
                    pix.to_tensor_image(x, out=chw, **kw)
                    pix.grayscale(chw, out=gray, **kw)
                    pix.resize(gray, OUT, OUT, antialias=True, out=small, **kw)
                    ring.frames_push(buffer, pos, small, out=stack, dim=-3, **ring_kw)

            ring.frames_reset(buffer, pos, pix.gray_resize(x, OUT, OUT, antialias=True, out=small, **kw), **ring_kw)
        else:
            F = torch.nn.functional
            state = {}

            def run():
                chw_t = frames.permute(0, 3, 1, 2).float().div(255)
                r, g, b = chw_t.unbind(-3)
                gray_t = (GRAY[0] * r + GRAY[1] * g + GRAY[2] * b).unsqueeze(-3)
                small_t = F.interpolate(gray_t, size=(OUT, OUT), mode="bilinear", align_corners=False,
                                        antialias=True)
                buf = state.get("buf")
                buf = small_t.repeat(1, STACK, 1, 1) if buf is None else torch.cat([buf[:, 1:], small_t], dim=1)
                state["buf"] = buf
                return buf

        self.run = run
        self.run()
        self._sync()

    def time_atari_step(self, impl):
        self.run()
        self._sync()


class TimeRewardToGoCUDA(_GPUBench):
    """Reward-to-go of 4096 trajectories x 1000 steps on the GPU."""

    params = ["numbarl", "torch"]
    param_names = ["impl"]

    def setup(self, impl):
        self.torch, _ = _gpu()
        torch = self.torch
        reward_np, done_np = _rtg_data()
        reward = torch.from_numpy(reward_np).cuda()
        done = torch.from_numpy(done_np).cuda()
        if impl == "numbarl":
            from numbarl.torch_api._arrays import as_array, kernels_for, stream_kwargs

            rtg = kernels_for(reward, "returns").reward_to_go
            out = torch.empty_like(reward)
            ra, da, oa, kw = as_array(reward), as_array(done), as_array(out), stream_kwargs(reward)
            self.run = lambda: rtg(ra, da, GAMMA, out=oa, open_end="truncate", **kw)
        else:
            self.run = lambda: torch_reward_to_go(reward, done, GAMMA)
        self.run()
        self._sync()

    def time_reward_to_go(self, impl):
        self.run()
        self._sync()


BENCHMARKS = [
    (TimeResizeCUDA, "time_resize"),
    (TimeGrayscaleCUDA, "time_grayscale"),
    (TimeMomentsCUDA, "time_update_normalize"),
    (TimeAtariPipelineCUDA, "time_atari_step"),
    (TimeRewardToGoCUDA, "time_reward_to_go"),
]


def _combinations(params):
    if params and isinstance(params[0], list):
        import itertools

        return list(itertools.product(*params))
    return [(p,) for p in params]


def main(repeats=21):
    """Time every benchmark and implementation side by side; print medians in microseconds."""
    import platform

    try:
        torch, _ = _gpu()
    except NotImplementedError as skip:
        print(f"skipped: {skip}")
        return
    print(f"machine: {platform.machine()}, GPU {torch.cuda.get_device_name()}; medians of {repeats} repeats")
    for cls, method in BENCHMARKS:
        for args in _combinations(cls.params):
            bench = cls()
            bench.setup(*args)
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                getattr(bench, method)(*args)
                times.append(time.perf_counter() - start)
            print(f"{cls.__name__:24s} {str(args):24s} {np.median(times) * 1e6:10.1f} us")


if __name__ == "__main__":
    main()
