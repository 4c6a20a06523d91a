"""Picklable env factories and policies for the multi-process collector tests (worker processes import them)."""
import torch

import numbarl.torch_api as nt


def pendulum(seed=None, max_steps=13):
    env = nt.TransformedEnv(nt.GymEnv("Pendulum-v1"), nt.StepCounter(max_steps=max_steps))
    if seed is not None:
        env.set_seed(seed)
    return env


def torchrl_pendulum(seed=None, max_steps=13):
    import torchrl.envs as te

    env = te.TransformedEnv(te.GymEnv("Pendulum-v1"), te.StepCounter(max_steps=max_steps))
    if seed is not None:
        env.set_seed(seed)
    return env


def broken_env():
    raise OSError("this env factory fails on purpose")


class RaisingPolicy:
    """Writes a zero action, then raises from its ``after``-th call on."""

    def __init__(self, after):
        self.after = after
        self.calls = 0

    def __call__(self, td):
        self.calls += 1
        if self.calls > self.after:
            raise ValueError("policy failure on purpose")
        return td.set("action", torch.zeros(1))
