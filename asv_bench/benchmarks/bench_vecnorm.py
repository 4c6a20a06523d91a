"""VecNorm through the transform API: numbarl against torchrl.

- ``PendulumVecNormRollout.time_rollout``: 1000 steps of
  ``TransformedEnv(GymEnv("Pendulum-v1"), VecNorm(in_keys=["observation"]))``;
  compare with ``bench_rollout.PendulumRollout`` (bare gymnasium) for the
  per-step overhead.
- ``VecNormTransform.time_update_normalize``: one ``_step`` of VecNormV2
  with ``reduce_batch_dims=True`` on a [1024, 64] float32 TensorDict (update
  the statistics, then normalize), torch on one thread for both.

Peers that cannot be imported are skipped (NotImplementedError in setup).
"""
import warnings

import numpy as np

STEPS = 1000


def _envs(impl):
    warnings.filterwarnings("ignore")
    if impl == "numbarl":
        import numbarl.torch_api as m
    else:
        try:
            import torch
            import torchrl.envs as m
        except ImportError as err:
            raise NotImplementedError(f"torchrl is not installed: {err}") from None
        torch.set_num_threads(1)
    return m


class PendulumVecNormRollout:
    params = ["numbarl", "torchrl"]
    param_names = ["impl"]

    def setup(self, impl):
        m = _envs(impl)
        self.env = m.TransformedEnv(m.GymEnv("Pendulum-v1"), m.VecNorm(in_keys=["observation"]))
        self.env.set_seed(0)
        self.env.rollout(10, break_when_any_done=False)

    def time_rollout(self, impl):
        self.env.rollout(STEPS, break_when_any_done=False)

    def teardown(self, impl):
        self.env.close()


class VecNormTransform:
    """One update+normalize step of VecNormV2 (reduce_batch_dims) on a [1024, 64] float32 TensorDict.

    The tensordict is built once in setup; the normalized values go to another
    key, so every call sees the same input and only the transform is timed.
    """

    params = ["numbarl", "torchrl"]
    param_names = ["impl"]

    def setup(self, impl):
        import torch
        from tensordict import TensorDict

        m = _envs(impl)
        torch.set_num_threads(1)
        x = torch.randn(1024, 64, generator=torch.Generator().manual_seed(0))
        self.root = TensorDict(batch_size=[1024])
        self.td = TensorDict({"obs": x}, batch_size=[1024])
        self.t = m.VecNormV2(in_keys=["obs"], out_keys=["obs_norm"], decay=0.99, reduce_batch_dims=True)
        self.time_update_normalize(impl)

    def time_update_normalize(self, impl):
        self.t._step(self.root, self.td)


class VecNormArrayPath:
    """The same step on the array path a rollout takes, beside numpy.copyto of the array (the floor)."""

    params = ["numbarl", "numpy_copyto"]
    param_names = ["impl"]

    def setup(self, impl):
        import numpy as np

        self.x = np.random.default_rng(0).standard_normal((1024, 64), dtype=np.float32)
        self.y = np.empty_like(self.x)
        if impl == "numbarl":
            from numbarl.torch_api import VecNormV2

            import torch
            from tensordict import TensorDict

            self.t = VecNormV2(in_keys=["obs"], out_keys=["obs_norm"], decay=0.99, reduce_batch_dims=True)
            # A first step over a [1024] batch fixes the feature shape (64,), as the
            # first reset of a batched env does; later steps take the array path.
            self.t._step(TensorDict(batch_size=[1024]), TensorDict({"obs": torch.from_numpy(self.x)}, [1024]))
            self.arrays = {"obs": self.x}
        self.time_update_normalize(impl)

    def time_update_normalize(self, impl):
        if impl == "numbarl":
            self.t._np_step(dict(self.arrays))
        else:
            np.copyto(self.y, self.x)
