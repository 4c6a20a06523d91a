"""One command for the GPU: every real-GPU test, then the side-by-side benchmark, in one table.

Usage (from the repository root, numbarl importable; no install needed)::

    python asv_bench/gpu_check.py                    # tests + benchmark, prints one table
    python asv_bench/gpu_check.py --json out.json    # also writes the table as JSON
    python asv_bench/gpu_check.py --skip-tests       # benchmark only
    python asv_bench/gpu_check.py --dry-run          # fake timings: checks the table code, no GPU
    python asv_bench/gpu_check.py --device cpu       # transform-level cases on the CPU (smoke run)

Steps:

1. ``pytest tests/cuda/test_gpu_kernels.py tests/cuda/test_gpu_transforms.py
   tests/cuda/test_returns_gpu.py`` in a subprocess (real GPU, no simulator);
   the pass/fail/skip counts go in the output.
2. The device-to-device copy bandwidth of this GPU, measured now: a 1 GiB
   ``Tensor.copy_``, counting bytes read plus bytes written.
3. Cases, each timed with CUDA events around one call (synchronised after
   each call, so host launch costs count), warm-up calls first (kernel
   compilation is not timed), median of ``--repeat`` calls:

   * transform level, numbarl's transforms beside the torch-op formulation of
     ``asv_bench/benchmarks/bench_cuda.py`` and TorchRL's transforms (when
     installed): the Atari pipeline (256 uint8 frames 210x160x3 -> stack of
     4 gray 84x84: ToTensorImage, GrayScale, Resize(84, 84), CatFrames(4)),
     Resize of 256 images 3x210x160 -> 84x84, a VecNormV2 step on
     ``[4096, 64]``, Reward2GoTransform on 4096 trajectories x 1000 steps;
   * each raw kernel of ``numbarl.core.cuda`` on device arrays made once, on
     torch's current stream.

   Columns: numbarl ms, torch ops ms, torchrl ms, the two ratios
   (``x`` > 1: numbarl faster), the bytes the case must move (each input read
   once, each output written once) and numbarl's achieved bandwidth as a
   percentage of the measured copy bandwidth.

A case that fails prints its error in its row; the others still run.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
GPU_TESTS = ["tests/cuda/test_gpu_kernels.py", "tests/cuda/test_gpu_transforms.py", "tests/cuda/test_returns_gpu.py"]

BATCH, H, W, C = 256, 210, 160, 3
OUT, STACK = 84, 4
VEC_SHAPE = (4096, 64)
RTG_SHAPE = (4096, 1000, 1)
GAMMA = 0.99
COLUMNS = ["case", "numbarl_ms", "torch_ms", "torchrl_ms", "torch_x", "torchrl_x", "MB", "pct_copy_bw", "error"]


# --------------------------------------------------------------------------- tests

def parse_pytest_summary(text):
    """``{"passed": n, "failed": n, ...}`` from pytest's last summary line (empty dict if none)."""
    counts = {}
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    for line in reversed(lines):
        found = re.findall(r"(\d+) (passed|failed|skipped|errors?|xfailed|xpassed|deselected|warnings?)", line)
        if found:
            for n, word in found:
                word = {"error": "errors", "warning": "warnings"}.get(word, word)
                counts[word] = counts.get(word, 0) + int(n)
            break
    return counts


def run_tests(timeout=240):
    """Run the real-GPU tests in a subprocess; ``(counts, tail of the output)``."""
    env = dict(os.environ)
    env.pop("NUMBA_ENABLE_CUDASIM", None)
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfE", *GPU_TESTS]
    try:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
        text = proc.stdout + proc.stderr
        counts = parse_pytest_summary(text)
        counts["returncode"] = proc.returncode
    except subprocess.TimeoutExpired as exc:
        text = (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        counts = {"returncode": "timeout"}
    return counts, text[-4000:]


# --------------------------------------------------------------------------- timing

class Timer:
    """Median milliseconds per call of ``fn``: CUDA events on a GPU, ``perf_counter`` on the CPU."""

    def __init__(self, torch, device, repeat, warmup=3):
        self.torch, self.cuda = torch, device == "cuda"
        self.repeat, self.warmup = repeat, warmup

    def __call__(self, fn):
        torch = self.torch
        for _ in range(self.warmup):
            fn()
        if self.cuda:
            torch.cuda.synchronize()
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        samples = []
        for _ in range(self.repeat):
            if self.cuda:
                start.record()
                fn()
                end.record()
                end.synchronize()
                samples.append(start.elapsed_time(end))
            else:
                t0 = time.perf_counter()
                fn()
                samples.append((time.perf_counter() - t0) * 1e3)
        return statistics.median(samples)


def copy_bandwidth(torch, timer, n_bytes=1 << 30):
    """Device-to-device copy bandwidth in bytes/s (read + write), from a ``n_bytes`` copy."""
    src = torch.empty(n_bytes, dtype=torch.uint8, device="cuda").random_(0, 255)
    dst = torch.empty_like(src)
    ms = timer(lambda: dst.copy_(src))
    del src, dst
    return 2 * n_bytes / (ms * 1e-3)


# --------------------------------------------------------------------------- cases

def measure(row, col, timer, make):
    """``row[col] = timer(make())``; an exception goes into ``row["error"]`` and the other columns still run."""
    try:
        row[col] = timer(make())
    except Exception as exc:  # noqa: BLE001 - one failing implementation must not stop the others
        traceback.print_exc()
        msg = f"{col[:-3]}: {type(exc).__name__}: {exc}"
        row["error"] = msg if not row.get("error") else row["error"] + "; " + msg


def _bench_cuda():
    sys.path.insert(0, HERE)
    from benchmarks import bench_cuda

    return bench_cuda


def _torchrl():
    try:
        from torchrl.envs import transforms as trl
    except Exception:  # noqa: BLE001 - absent or broken: the column stays empty
        return None
    return trl


def case_atari(torch, device, timer):
    from tensordict import TensorDict

    import numbarl.torch_api as nb

    frames = torch.randint(0, 256, (BATCH, H, W, C), dtype=torch.uint8, device=device)
    bc = _bench_cuda()
    F = torch.nn.functional

    def pipeline(mod):
        return mod.Compose(mod.ToTensorImage(in_keys=["pixels"]), mod.GrayScale(in_keys=["pixels"]),
                           mod.Resize(OUT, OUT, in_keys=["pixels"]), mod.CatFrames(STACK, dim=-3, in_keys=["pixels"]))

    def stepper(mod, reset_td):
        t = pipeline(mod)
        t._reset(reset_td, TensorDict({"pixels": frames}, [BATCH], device=device))
        return lambda: t._call(TensorDict({"pixels": frames}, [BATCH], device=device))

    row = {"case": "Atari pipeline 256x210x160x3 u8 -> 256x4x84x84",
           "bytes": BATCH * H * W * C + BATCH * STACK * OUT * OUT * 4 + BATCH * OUT * OUT * 4}
    measure(row, "numbarl_ms", timer, lambda: stepper(nb, None))
    state = {}

    def torch_ops():
        chw = frames.permute(0, 3, 1, 2).float().div(255)
        r, g, b = chw.unbind(-3)
        gray = (bc.GRAY[0] * r + bc.GRAY[1] * g + bc.GRAY[2] * b).unsqueeze(-3)
        small = F.interpolate(gray, size=(OUT, OUT), mode="bilinear", align_corners=False, antialias=True)
        buf = state.get("buf")
        buf = small.repeat(1, STACK, 1, 1) if buf is None else torch.cat([buf[:, 1:], small], dim=1)
        state["buf"] = buf
        return buf

    measure(row, "torch_ms", timer, lambda: torch_ops)
    trl = _torchrl()
    if trl is not None:
        reset = TensorDict({"_reset": torch.ones(BATCH, 1, dtype=torch.bool, device=device)}, [BATCH], device=device)
        measure(row, "torchrl_ms", timer, lambda: stepper(trl, reset))
    return row


def case_resize(torch, device, timer):
    from tensordict import TensorDict

    import numbarl.torch_api as nb

    x = torch.rand(BATCH, C, H, W, device=device)
    F = torch.nn.functional
    row = {"case": "Resize 256x3x210x160 f32 -> 84x84", "bytes": x.numel() * 4 + BATCH * C * OUT * OUT * 4}

    def stepper(mod):
        t = mod.Resize(OUT, OUT, in_keys=["pixels"])
        return lambda: t._call(TensorDict({"pixels": x}, [BATCH], device=device))

    measure(row, "numbarl_ms", timer, lambda: stepper(nb))
    measure(row, "torch_ms", timer, lambda: lambda: F.interpolate(x, size=(OUT, OUT), mode="bilinear",
                                                                  align_corners=False, antialias=False))
    trl = _torchrl()
    if trl is not None:
        measure(row, "torchrl_ms", timer, lambda: stepper(trl))
    return row


def case_vecnorm(torch, device, timer):
    from tensordict import TensorDict

    import numbarl.torch_api as nb

    x = torch.randn(*VEC_SHAPE, device=device) * 2 + 3
    bc = _bench_cuda()
    row = {"case": "VecNormV2 step [4096, 64]", "bytes": 2 * x.numel() * 4}

    def stepper(mod):
        t = mod.VecNormV2(in_keys=["x"], decay=0.99)
        empty = TensorDict({}, [VEC_SHAPE[0]], device=device)
        t._step(empty, TensorDict({"x": x}, [VEC_SHAPE[0]], device=device))
        return lambda: t._step(empty, TensorDict({"x": x}, [VEC_SHAPE[0]], device=device))

    measure(row, "numbarl_ms", timer, lambda: stepper(nb))
    measure(row, "torch_ms", timer, lambda: bc._torch_moments(torch, x))
    trl = _torchrl()
    if trl is not None:
        measure(row, "torchrl_ms", timer, lambda: stepper(trl))
    return row


def case_reward_to_go(torch, device, timer):
    from tensordict import TensorDict

    import numbarl.torch_api as nb

    bc = _bench_cuda()
    reward_np, done_np = bc._rtg_data(RTG_SHAPE)
    reward = torch.from_numpy(reward_np).to(device)
    done = torch.from_numpy(done_np).to(device)
    done[:, -1] = True
    row = {"case": "Reward2GoTransform 4096x1000", "bytes": reward.numel() * (4 + 1 + 4)}

    def stepper(mod):
        t = mod.Reward2GoTransform(gamma=GAMMA, out_keys=["reward_to_go"])
        return lambda: t.inv(TensorDict({"next": {"reward": reward, "done": done}}, list(RTG_SHAPE[:2]),
                                        device=device))

    measure(row, "numbarl_ms", timer, lambda: stepper(nb))
    measure(row, "torch_ms", timer, lambda: lambda: bc.torch_reward_to_go(reward, done, GAMMA))
    trl = _torchrl()
    if trl is not None:
        measure(row, "torchrl_ms", timer, lambda: stepper(trl))
    return row


def kernel_cases(torch, dev="cuda", to_device=None, stream=None, sizes=None):
    """``[(name, bytes, fn)]`` for each raw kernel on device arrays made once, on torch's stream.

    ``dev``, ``to_device`` (tensor -> device array) and ``stream`` default to
    CUDA tensors viewed with ``cuda.as_cuda_array`` on torch's current
    stream; ``sizes`` (a dict overriding BATCH, H, W, OUT, VEC_SHAPE,
    RTG_SHAPE) lets the tests run every case small under the simulator.
    """
    import numpy as np
    from numba import cuda

    from numbarl.core.cuda import frames as kf
    from numbarl.core.cuda import moments as km
    from numbarl.core.cuda import pixels as kp
    from numbarl.core.cuda import returns as kr

    z = dict(BATCH=BATCH, H=H, W=W, OUT=OUT, VEC_SHAPE=VEC_SHAPE, RTG_SHAPE=RTG_SHAPE)
    z.update(sizes or {})
    nb, h, w, o = z["BATCH"], z["H"], z["W"], z["OUT"]
    if stream is None:
        stream = cuda.external_stream(torch.cuda.current_stream().cuda_stream)
    arr = to_device or cuda.as_cuda_array
    hwc = torch.randint(0, 256, (nb, h, w, C), dtype=torch.uint8, device=dev)
    chw = torch.rand(nb, C, h, w, device=dev)
    gray = torch.rand(nb, 1, h, w, device=dev)
    small = torch.rand(nb, 1, o, o, device=dev)
    small3 = torch.empty(nb, C, o, o, device=dev)
    chw_out = torch.empty(nb, C, h, w, device=dev)
    gray_out = torch.empty(nb, 1, h, w, device=dev)
    small_out = torch.empty(nb, 1, o, o, device=dev)
    buffer = torch.zeros(nb, STACK, 1, o, o, device=dev)
    pos = torch.zeros(nb, dtype=torch.int64, device=dev)
    stack = torch.empty(nb, STACK, o, o, device=dev)
    x = torch.randn(*z["VEC_SHAPE"], device=dev) * 2 + 3
    x_out = torch.empty_like(x)
    state = km.moments_init(tuple(z["VEC_SHAPE"][1:])).arrays
    bc = _bench_cuda()
    reward_np, done_np = bc._rtg_data(tuple(z["RTG_SHAPE"]))
    reward = torch.from_numpy(reward_np).to(dev)
    done = torch.from_numpy(done_np).to(dev)
    rtg_out = torch.empty_like(reward)
    if dev == "cuda":
        torch.cuda.synchronize()
    a = {k: arr(v) for k, v in dict(hwc=hwc, chw=chw, gray=gray, small=small, small3=small3, chw_out=chw_out,
                                    gray_out=gray_out, small_out=small_out, buffer=buffer, pos=pos, stack=stack,
                                    x=x, x_out=x_out, reward=reward, done=done, rtg_out=rtg_out).items()}
    kf.frames_reset(a["buffer"], a["pos"], a["small"], stream=stream)
    f32, frame = 4, o * o * 4
    return [
        ("kernel to_tensor_image u8 HWC -> f32 CHW", hwc.numel() * (1 + f32),
         lambda: kp.to_tensor_image(a["hwc"], out=a["chw_out"], stream=stream)),
        ("kernel grayscale f32 3x210x160", chw.numel() * f32 + gray.numel() * f32,
         lambda: kp.grayscale(a["chw"], out=a["gray_out"], stream=stream)),
        ("kernel resize f32 3x210x160 -> 84x84", chw.numel() * f32 + small3.numel() * f32,
         lambda: kp.resize(a["chw"], o, o, out=a["small3"], stream=stream)),
        ("kernel resize antialias 1x210x160 -> 84x84", gray.numel() * f32 + small.numel() * f32,
         lambda: kp.resize(a["gray"], o, o, antialias=True, out=a["small_out"], stream=stream)),
        ("kernel gray_resize u8 HWC -> 84x84 antialias", hwc.numel() + small.numel() * f32,
         lambda: kp.gray_resize(a["hwc"], o, o, antialias=True, out=a["small_out"], stream=stream)),
        # new frame read, its ring slot written, 3 old frames read, the ordered stack of 4 written
        ("kernel frames_push 256x4x84x84", nb * frame * (1 + 1 + (STACK - 1) + STACK) + nb * 8,
         lambda: kf.frames_push(a["buffer"], a["pos"], a["small"], out=a["stack"], dim=-3, stream=stream,
                                check=False)),
        ("kernel moments_update_normalize [4096, 64]", 2 * x.numel() * f32,
         lambda: km.moments_update_normalize(a["x"], *state, 0.99, 1e-8, out=a["x_out"], stream=stream,
                                             check=False)),
        ("kernel reward_to_go 4096x1000", reward.numel() * (f32 + 1 + f32),
         lambda: kr.reward_to_go(a["reward"], a["done"], GAMMA, out=a["rtg_out"], open_end="truncate",
                                 stream=stream)),
    ]


TRANSFORM_CASES = [case_atari, case_resize, case_vecnorm, case_reward_to_go]


# --------------------------------------------------------------------------- table

def finish_row(row, bandwidth):
    """Fill the ratio and bandwidth columns of ``row`` (missing values stay None)."""
    for col in COLUMNS:
        row.setdefault(col, None)
    nb = row.get("numbarl_ms")
    for peer, col in (("torch_ms", "torch_x"), ("torchrl_ms", "torchrl_x")):
        if nb and row.get(peer):
            row[col] = row[peer] / nb
    n_bytes = row.pop("bytes", None)
    if n_bytes:
        row["MB"] = n_bytes / 1e6
        if nb and bandwidth:
            row["pct_copy_bw"] = 100.0 * (n_bytes / (nb * 1e-3)) / bandwidth
    return row


def _fmt(value, digits=3):
    if value is None:
        return "-"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return f"{value:.{digits}f}"
    return str(value)


def format_table(rows, header_lines=()):
    """The rows as one Markdown table (errors in their row), preceded by ``header_lines``."""
    heads = ["case", "numbarl ms", "torch ops ms", "torchrl ms", "torch/numbarl", "torchrl/numbarl", "MB moved",
             "% copy bw", "error"]
    keys = COLUMNS
    digits = {"torch_x": 2, "torchrl_x": 2, "MB": 1, "pct_copy_bw": 1}
    lines = list(header_lines)
    lines.append("| " + " | ".join(heads) + " |")
    lines.append("|" + "|".join("---" for _ in heads) + "|")
    for row in rows:
        cells = [_fmt(row.get(k), digits.get(k, 3)) for k in keys[:-1]]
        cells.append(str(row.get("error") or "").replace("|", "/").replace("\n", " ")[:300] or "-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _run_case(fn, *args):
    try:
        return fn(*args)
    except Exception as exc:  # noqa: BLE001 - one failing case must not stop the others
        traceback.print_exc()
        return {"case": getattr(fn, "__name__", str(fn)), "error": f"{type(exc).__name__}: {exc}"}


def fake_rows():
    """Rows with made-up timings (``--dry-run``): exercises everything after the timing."""
    rows = [
        {"case": "Atari (fake)", "numbarl_ms": 0.2, "torch_ms": 0.5, "torchrl_ms": 0.4, "bytes": 33_000_000},
        {"case": "VecNormV2 (fake, no torchrl)", "numbarl_ms": 0.05, "torch_ms": 0.1, "bytes": 2_097_152},
        {"case": "kernel (fake)", "numbarl_ms": 0.01, "bytes": 10_000_000},
        {"case": "broken case (fake)", "error": "RuntimeError: fake failure | with a pipe\nand a newline"},
        {"case": "zero time (fake)", "numbarl_ms": 0.0, "torch_ms": 1.0, "bytes": 1},
    ]
    return [finish_row(r, 4.3e12) for r in rows]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", metavar="PATH", help="also write the table (and test counts) as JSON")
    parser.add_argument("--repeat", type=int, default=50, help="timed calls per case (median reported)")
    parser.add_argument("--skip-tests", action="store_true", help="do not run the real-GPU tests first")
    parser.add_argument("--dry-run", action="store_true", help="fake timings, no GPU: checks the table code")
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"],
                        help="cpu: transform-level cases on the CPU (a smoke run; no kernels, no tests)")
    args = parser.parse_args(argv)
    t_start = time.perf_counter()
    header = [f"python {platform.python_version()}, {platform.machine()}"]
    tests = None
    if args.dry_run:
        rows, bandwidth = fake_rows(), 4.3e12
        tests = {"passed": 0, "failed": 0, "dry_run": True}
    else:
        if ROOT not in sys.path:
            sys.path.insert(0, ROOT)
        import torch

        if args.device == "cuda" and not torch.cuda.is_available():
            print("no CUDA GPU available to torch; use --dry-run or --device cpu")
            return 2
        if args.device == "cuda" and not args.skip_tests:
            print("running the real-GPU tests:", " ".join(GPU_TESTS), flush=True)
            tests, tail = run_tests()
            print(tail, flush=True)
        timer = Timer(torch, args.device, args.repeat, warmup=3 if args.device == "cuda" else 1)
        bandwidth = None
        if args.device == "cuda":
            header.append(f"GPU {torch.cuda.get_device_name()}, torch {torch.__version__}")
            try:
                bandwidth = copy_bandwidth(torch, timer)
            except Exception as exc:  # noqa: BLE001
                header.append(f"copy bandwidth not measured: {exc}")
        rows = [_run_case(fn, torch, args.device, timer) for fn in TRANSFORM_CASES]
        if args.device == "cuda":
            try:
                kernels = kernel_cases(torch)
            except Exception as exc:  # noqa: BLE001
                traceback.print_exc()
                kernels = []
                rows.append({"case": "raw kernels (setup)", "error": f"{type(exc).__name__}: {exc}"})
            for name, n_bytes, fn in kernels:
                def one(name=name, n_bytes=n_bytes, fn=fn):
                    return {"case": name, "bytes": n_bytes, "numbarl_ms": timer(fn)}

                row = _run_case(one)
                row["case"] = name
                rows.append(row)
        rows = [finish_row(r, bandwidth) for r in rows]
    if bandwidth:
        header.append(f"device-to-device copy bandwidth: {bandwidth / 1e12:.2f} TB/s (read + write)")
    if tests is not None:
        header.append("real-GPU tests: " + ", ".join(f"{k} {v}" for k, v in tests.items()))
    elapsed = time.perf_counter() - t_start
    header.append(f"median ms per call of {args.repeat}; x > 1: numbarl faster; total {elapsed:.0f} s")
    print(format_table(rows, header), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"header": header, "tests": tests, "copy_bandwidth": bandwidth, "rows": rows}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
