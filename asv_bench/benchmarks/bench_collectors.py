"""Collectors on Pendulum-v1 + StepCounter + RewardSum with an MLP 3-64-1 ``TensorDictModule`` policy.

``CollectorPendulum`` times one batch of 1000 frames from ``Collector``
(direct, this process) and ``MultiSyncCollector`` (2 worker processes),
numbarl against TorchRL 0.14.1 with the same env pipeline, policy and
arguments; ``track_frames_per_second`` reports frames per second.
Worker start-up is outside the timings (``setup``).

``RolloutPolicy`` times ``env.rollout(1000, policy)`` on one Pendulum-v1
env (numbarl, TorchRL) and the floor it is measured against: 1000 bare
gymnasium steps plus 1000 calls of the policy alone on one reused
TensorDict (``impl="floor"``). In the side-by-side table the floor's ratio
is floor / numbarl, so 0.87x means numbarl's rollout takes 1.15x the floor.

Peers that cannot be imported are skipped (NotImplementedError in setup).
"""
import functools
import time
import warnings

FRAMES = 1000
STEPS = 1000
ENV_ID = "Pendulum-v1"


def _lib(impl):
    warnings.filterwarnings("ignore")
    if impl == "numbarl":
        import numbarl.torch_api as envs
        import numbarl.torch_api.collectors as collectors
    else:
        try:
            import torchrl.collectors as collectors
            import torchrl.envs as envs
        except ImportError as err:
            raise NotImplementedError(f"torchrl is not installed: {err}") from None
    return envs, collectors


def make_env(impl):
    envs, _ = _lib(impl)
    return envs.TransformedEnv(envs.GymEnv(ENV_ID), envs.Compose(envs.StepCounter(), envs.RewardSum()))


def make_policy():
    import torch
    from tensordict.nn import TensorDictModule

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 64), torch.nn.Tanh(), torch.nn.Linear(64, 1))
    return TensorDictModule(net, in_keys=["observation"], out_keys=["action"])


class CollectorPendulum:
    params = (["Collector", "MultiSyncCollector"], ["numbarl", "torchrl"])
    param_names = ["kind", "impl"]
    timeout = 300

    def setup(self, kind, impl):
        _, collectors = _lib(impl)
        factory = functools.partial(make_env, impl)
        if kind == "Collector":
            self.collector = collectors.Collector(factory(), make_policy(), frames_per_batch=FRAMES,
                                                  total_frames=-1)
        else:
            self.collector = collectors.MultiSyncCollector([factory, factory], make_policy(),
                                                           frames_per_batch=FRAMES, total_frames=-1)
        self.iterator = iter(self.collector)
        next(self.iterator)

    def time_batch(self, kind, impl):
        next(self.iterator)

    def track_frames_per_second(self, kind, impl):
        start = time.perf_counter()
        next(self.iterator)
        return FRAMES / (time.perf_counter() - start)

    track_frames_per_second.unit = "frames/s"

    def teardown(self, kind, impl):
        self.collector.shutdown()


class RolloutPolicy:
    params = ["numbarl", "torchrl", "floor"]
    param_names = ["impl"]

    def setup(self, impl):
        import torch

        self.policy = make_policy()
        torch.set_grad_enabled(False)
        if impl == "floor":
            import gymnasium
            from tensordict import TensorDict

            self.gym = gymnasium.make(ENV_ID)
            self.gym.reset(seed=0)
            self.action = self.gym.action_space.sample()
            self.td = TensorDict(observation=torch.zeros(3))
            return
        envs, _ = _lib(impl)
        self.env = envs.GymEnv(ENV_ID)
        self.env.set_seed(0)

    def time_rollout_per_1000_steps(self, impl):
        if impl == "floor":
            step, action, policy, td = self.gym.step, self.action, self.policy, self.td
            for _ in range(STEPS):
                step(action)
            for _ in range(STEPS):
                policy(td)
            return
        self.env.rollout(STEPS, self.policy, break_when_any_done=False)

    def teardown(self, impl):
        import torch

        torch.set_grad_enabled(True)
