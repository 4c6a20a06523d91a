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
    params = ["numbarl", "torchrl"]
    param_names = ["impl"]

    def setup(self, impl):
        import torch
        from tensordict import TensorDict

        m = _envs(impl)
        torch.set_num_threads(1)
        self.x = torch.randn(1024, 64, generator=torch.Generator().manual_seed(0))
        self.root = TensorDict(batch_size=[1024])
        self.td_cls = TensorDict
        self.t = m.VecNormV2(in_keys=["obs"], decay=0.99, reduce_batch_dims=True)
        self.time_update_normalize(impl)

    def time_update_normalize(self, impl):
        self.t._step(self.root, self.td_cls({"obs": self.x}, batch_size=[1024]))
