"""TimeMaxPool's step (age the history, write the newest observation, max over T), beside TorchRL's torch ops.

``impl`` is the implementation:

* ``numbarl``: :func:`numbarl.core.time_pool.time_pool_push`, one kernel
  pass into a preallocated output;
* ``torch``: the operations TorchRL 0.14.1's ``TimeMaxPool`` runs per step
  (``torch.roll`` of the whole history copied back, the newest slot
  written, ``max(dim=0)``).

``shape`` is ``"vector"`` (64 sub-envs of 4 floats, CartPole-sized) or
``"pixels"`` (16 sub-envs of 84x84 float32 frames); ``T`` is the history.

Run as a script for a side-by-side table (medians of interleaved repeats, on
the calling thread, torch on one thread)::

    python asv_bench/benchmarks/bench_time_pool.py
"""
import numpy as np

SHAPES = {"vector": (64, 4), "pixels": (16, 84, 84)}
IMPLS = ["numbarl", "torch"]


def _step(impl, shape, T):
    frame = np.random.default_rng(0).random(SHAPES[shape], dtype=np.float32)
    if impl == "numbarl":
        from numbarl.core.time_pool import time_pool_push, time_pool_state

        buffer = time_pool_state(T, frame.shape, np.float32)
        out = np.empty_like(frame)
        return lambda: time_pool_push(buffer, frame, out=out)
    if impl == "torch":
        try:
            import torch
        except ImportError as err:
            raise NotImplementedError(f"torch is not installed: {err}") from None
        x = torch.from_numpy(frame)
        buffer = torch.zeros((T,) + frame.shape)

        def run():
            buffer.copy_(torch.roll(buffer, shifts=1, dims=0))
            buffer[0].copy_(x)
            return buffer.max(dim=0).values

        return run
    raise NotImplementedError(f"time_pool has no {impl} peer")


class TimeTimePoolStep:
    """One step of max pooling over the last T observations."""

    params = (list(SHAPES), [4, 16], IMPLS)
    param_names = ["shape", "T", "impl"]

    def setup(self, shape, T, impl):
        self.run = _step(impl, shape, T)
        self.run()  # compile or load the kernel

    def time_step(self, shape, T, impl):
        self.run()


def main(repeats: int = 201):
    """Print the median time of each implementation per shape and T, measured in this run."""
    import platform
    import time

    from _timing import interleaved_medians

    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    print(f"# {platform.processor() or platform.machine()}, thread CPU time, median of {repeats}")
    for shape in SHAPES:
        for T in (4, 16):
            runs = {}
            for impl in IMPLS:
                try:
                    runs[impl] = _step(impl, shape, T)
                    runs[impl]()
                except NotImplementedError:
                    continue
            medians = interleaved_medians(runs, repeats, timer=time.thread_time)
            cells = "  ".join(f"{impl} {medians[impl] * 1e6:9.1f} us" for impl in runs)
            print(f"{shape:7s} T={T:<3d} {cells}")


if __name__ == "__main__":
    main()
