"""Episode transforms that step the env themselves or call user code: NoopResetEnv, FrameSkipTransform,
TerminateTransform.

Re-exported by :mod:`numbarl.torch_api.transforms.episode`. Their steps run
through the transforms that come before them (``chain_step``); deciding
whether to keep stepping depends on the data (is the env done?), so these
read flags on the host and make the rollout use TensorDicts.

Examples:
    >>> from numbarl.torch_api import GymEnv, TransformedEnv
    >>> env = TransformedEnv(GymEnv("CartPole-v1"), FrameSkipTransform(2))
    >>> _ = env.set_seed(0)
    >>> env.rollout(2)["next", "reward"].squeeze(-1)
    tensor([2., 2.])
"""
from __future__ import annotations

import torch

from .._attrs import set_plain
from ..envs.utils import step_mdp
from ._checks import CompatTypeValueError, CompatValueError, check_bool
from .._keys import key_tuple
from ._checks import check_int
from ._env_chain import chain_reset, chain_step, container_env, parent_chain
from .base import Transform

__all__ = ["NoopResetEnv", "FrameSkipTransform", "TerminateTransform"]


# TorchRL's own words for each class come first in the message (its tests and users match on them)
_TORCHRL_WORDS = {
    "StepCounter": "StepCounter cannot be called independently",
    "FrameSkipTransform": "parent not found for FrameSkipTransform; FrameSkipTransform can only be used when "
                          "appended to a transformed env",
}


def _outside_env(name: str):
    words = _TORCHRL_WORDS.get(name, f"class {name} cannot be executed without a parent environment")
    return NotImplementedError(f"{words}: it acts on env steps and resets only; it cannot be called on a "
                               "tensordict on its own (use it inside a TransformedEnv)")


class NoopResetEnv(Transform):
    """After each reset, take random actions so that episodes start from varied states.

    As in TorchRL: the number of steps is ``noops`` (``random=False``) or
    drawn with ``torch.randint(noops, (1,))`` (``random=True``); the actions
    come from the action spec's ``rand`` (torch's RNG); the steps go through
    the transforms that come before this one; when the env is done during
    them it is reset and the steps start again, and after 10 such retries
    the reset fails. Only unbatched envs are supported (TorchRL refuses
    batched ones too: put the transform inside each worker).

    Args:
        noops: number (or upper bound) of random steps, an int >= 0 (default 30).
        random: draw the number of steps in ``[0, noops)`` at each reset (default True).

    Raises:
        TypeError: ``noops`` not an int or ``random`` not a bool.
        ValueError: ``noops < 0``; at reset, a batched parent env, or an env done
            before ``noops`` steps 11 times in a row (a RuntimeError too, TorchRL's type).

    Examples:
        >>> import torch
        >>> from numbarl.torch_api import GymEnv, TransformedEnv
        >>> env = TransformedEnv(GymEnv("Pendulum-v1"), NoopResetEnv(noops=5, random=False))
        >>> _ = env.set_seed(0)
        >>> _ = torch.manual_seed(0)
        >>> env.reset()["observation"]
        tensor([-0.9934,  0.1149, -1.8712])
    """

    _MAX_RETRIES = 10

    def __init__(self, noops: int = 30, random: bool = True):
        noops = check_int(noops, "NoopResetEnv", "noops", minimum=0)
        random = check_bool(random, "NoopResetEnv", "random")
        super().__init__()
        set_plain(self, "noops", noops)
        set_plain(self, "random", random)

    @property
    def base_env(self):
        chain = parent_chain(self)
        return None if chain is None else chain[1]

    def _reset(self, tensordict, tensordict_reset):
        chain = parent_chain(self)
        if chain is None:
            raise ValueError("NoopResetEnv must be inside a TransformedEnv to step its env at reset")
        env, base, preceding = chain
        if len(base.batch_size):
            raise ValueError(f"The parent environment batch-size is non-null: NoopResetEnv works on unbatched envs "
                             f"(partial resets are not supported), got an env "
                             f"with batch_size {tuple(base.batch_size)}; put it inside each worker instead: "
                             "ParallelEnv(n, lambda: TransformedEnv(make_env(), NoopResetEnv(...)))")
        steps = self.noops
        if self.random and self.noops > 0:
            steps = int(torch.randint(self.noops, (1,)).item())
        if steps == 0:
            return tensordict_reset
        action_spec = base.full_action_spec.clone()
        for t in preceding:
            action_spec = t.transform_action_spec(action_spec)
        reward_keys, done_keys, action_keys = env.reward_keys, env.done_keys, env.action_keys
        td, done_step, retries = tensordict_reset, 0, 0
        while done_step < steps:
            td.update(action_spec.rand())
            next_td = chain_step(base, preceding, td)
            if bool(next_td.get("done").any()):
                retries += 1
                td, done_step = chain_reset(base, preceding, None), 0
                if retries > self._MAX_RETRIES:
                    raise CompatValueError(f"NoopResetEnv: the env was done before {steps} no-op steps "
                                           f"{retries} times in a row; lower noops (got {self.noops})")
                continue
            td.set("next", next_td)
            td = step_mdp(td, reward_keys=reward_keys, done_keys=done_keys, action_keys=action_keys)
            done_step += 1
        return td

    def _step(self, tensordict, next_tensordict):
        return next_tensordict

    def forward(self, tensordict):
        raise _outside_env("NoopResetEnv")

    def __repr__(self) -> str:
        return f"NoopResetEnv(noops={self.noops}, random={self.random})"


class FrameSkipTransform(Transform):
    """Repeat each action ``frame_skip`` times; the rewards of the repeats are summed.

    The observation and flags are those of the last step taken. The steps go
    through the transforms that come before this one, as in TorchRL. The
    repeats stop at a step that is done: TorchRL 0.14.1 keeps stepping the
    finished env for the remaining repeats (undefined behaviour for
    gymnasium envs; CartPole then returns reward 0 and moves its state on),
    so on such steps its observation is not the terminal one.

    Args:
        frame_skip: number of steps per action, an int >= 1 (default 1).

    Raises:
        TypeError: ``frame_skip`` not an int (TorchRL accepts floats).
        ValueError: ``frame_skip < 1``.
        NotImplementedError: called on a tensordict outside an env.

    Examples:
        >>> import torch
        >>> from numbarl.torch_api import GymEnv, TransformedEnv
        >>> env = TransformedEnv(GymEnv("CartPole-v1"), FrameSkipTransform(3))
        >>> _ = env.set_seed(0)
        >>> env.rollout(2, actions=[torch.tensor([1, 0])] * 2)["next", "reward"].squeeze(-1)
        tensor([3., 3.])
    """

    def __init__(self, frame_skip: int = 1):
        if isinstance(frame_skip, int) and not isinstance(frame_skip, bool) and frame_skip < 1:
            raise ValueError(f"FrameSkipTransform: frame_skip should have a value greater or equal to one; it "
                             f"requires frame_skip >= 1, got {frame_skip}")
        frame_skip = check_int(frame_skip, "FrameSkipTransform", "frame_skip", minimum=1)
        super().__init__()
        set_plain(self, "frame_skip", frame_skip)

    def _step(self, tensordict, next_tensordict):
        if self.frame_skip == 1:
            return next_tensordict
        chain = parent_chain(self)
        if chain is None:
            raise _outside_env("FrameSkipTransform")
        env, base, preceding = chain
        present = set(next_tensordict.keys(True, True))
        rewards = {k: next_tensordict.get(k) for k in env.reward_keys if k in present}
        done_keys = [k for k in env.done_keys if key_tuple(k)[-1] == "done" and k in present]
        for _ in range(self.frame_skip - 1):
            if any(bool(next_tensordict.get(k).any()) for k in done_keys):
                break
            next_tensordict = chain_step(base, preceding, tensordict)
            for key in rewards:
                rewards[key] = rewards[key] + next_tensordict.get(key)
        for key, value in rewards.items():
            next_tensordict.set(key, value)
        return next_tensordict

    def _reset(self, tensordict, tensordict_reset):
        return tensordict_reset

    def forward(self, tensordict):
        raise _outside_env("FrameSkipTransform")

    def __repr__(self) -> str:
        return f"FrameSkipTransform(frame_skip={self.frame_skip})"


class TerminateTransform(Transform):
    """End episodes where a condition holds: ``stop(next_tensordict)`` is OR-ed into ``terminated`` (and ``done``).

    ``stop`` takes the tensordict of each step's result (the ``"next"`` side)
    and returns a bool (or a value cast to bool, nonzero being True) that is
    a scalar, has the batch shape, or broadcasts to the done entries. Every
    ``"terminated"`` leaf gets it, and every ``"done"`` leaf too unless
    ``write_done=False``. Resets and specs are unchanged. As in TorchRL 0.14.1.

    Args:
        stop: a callable ``TensorDict -> bool or bool tensor``.
        write_done: also set ``done`` (keyword only; default True), so that
            ``rollout(break_when_any_done=True)`` stops.

    Raises:
        TypeError: ``stop`` not callable, ``write_done`` not a bool (TorchRL raises
            ValueError for the first).
        ValueError: at a step, a result whose shape does not fit the done entries.
        NotImplementedError: called on a tensordict outside an env (TorchRL raises
            RuntimeError, of which this is a subclass).

    Examples:
        >>> import torch
        >>> from numbarl.torch_api import GymEnv, TransformedEnv
        >>> env = TransformedEnv(GymEnv("Pendulum-v1"), TerminateTransform(lambda td: td["observation"][..., 2] < -1.5))
        >>> _ = env.set_seed(0)
        >>> _ = torch.manual_seed(0)
        >>> td = env.rollout(20)
        >>> td["next", "observation"][:, 2], td["next", "terminated"].squeeze(-1)
        (tensor([-1.1601, -1.1478, -1.5009]), tensor([False, False,  True]))
    """

    def __init__(self, stop, *, write_done: bool = True):
        if not callable(stop):
            raise CompatTypeValueError(f"TerminateTransform requires stop to be a callable taking a TensorDict, "
                                       f"got {type(stop).__name__}: {stop!r}")
        write_done = check_bool(write_done, "TerminateTransform", "write_done")
        super().__init__()
        set_plain(self, "stop", stop)
        set_plain(self, "write_done", write_done)

    def _targets(self, next_tensordict):
        names = ("terminated", "done") if self.write_done else ("terminated",)
        env = container_env(self)
        keys = env.done_keys if env is not None else list(next_tensordict.keys(True, True))
        present = set(next_tensordict.keys(True, True))
        return [k for k in keys if key_tuple(k)[-1] in names and k in present]

    @staticmethod
    def _fit(flag: torch.Tensor, shape: torch.Size, batch: torch.Size) -> torch.Tensor:
        if flag.shape == batch and len(shape) > len(batch):
            flag = flag.reshape(tuple(batch) + (1,) * (len(shape) - len(batch)))
        try:
            return torch.broadcast_to(flag, shape)
        except RuntimeError:
            raise ValueError(f"TerminateTransform: stop returned shape {tuple(flag.shape)}, which fits neither the "
                             f"batch shape {tuple(batch)} nor the done entries' shape {tuple(shape)}") from None

    def _step(self, tensordict, next_tensordict):
        flag = torch.as_tensor(self.stop(next_tensordict))
        if flag.dtype != torch.bool:
            flag = flag != 0
        for key in self._targets(next_tensordict):
            value = next_tensordict.get(key)
            next_tensordict.set(key, value | self._fit(flag, value.shape, next_tensordict.batch_size))
        return next_tensordict

    def _reset(self, tensordict, tensordict_reset):
        return tensordict_reset

    def forward(self, tensordict):
        raise _outside_env("TerminateTransform")

    def __repr__(self) -> str:
        return f"TerminateTransform(stop={self.stop!r}, write_done={self.write_done})"
