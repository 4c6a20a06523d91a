"""Rollout of Pendulum-v1 through GymEnv / TransformedEnv: numbarl against torchrl and bare gymnasium.

``time_rollout`` times 1000 steps; the per-step overhead of a library is its
time minus the ``gymnasium`` row (the bare env stepped with the same actions).
"""
import warnings

import numpy as np

STEPS = 1000


def _make(impl):
    warnings.filterwarnings("ignore")
    if impl == "numbarl":
        from numbarl.torch_api import GymEnv, TransformedEnv
    elif impl == "torchrl":
        try:
            from torchrl.envs import GymEnv, TransformedEnv
        except ImportError:
            raise NotImplementedError("torchrl is not installed") from None
    else:
        import gymnasium

        env = gymnasium.make("Pendulum-v1")
        env.reset(seed=0)
        return env
    env = TransformedEnv(GymEnv("Pendulum-v1"))
    env.set_seed(0)
    return env


class PendulumRollout:
    params = ["numbarl", "torchrl", "gymnasium"]
    param_names = ["impl"]

    def setup(self, impl):
        self.env = _make(impl)
        self.action = np.zeros(1, dtype=np.float32)
        if impl != "gymnasium":
            self.env.rollout(10, break_when_any_done=False)

    def time_rollout(self, impl):
        if impl == "gymnasium":
            env, action = self.env, self.action
            for i in range(STEPS):
                _, _, terminated, truncated, _ = env.step(action)
                if terminated or truncated:
                    env.reset()
        else:
            self.env.rollout(STEPS, break_when_any_done=False)

    def teardown(self, impl):
        self.env.close()
