"""``PendulumEnv``: TorchRL's stateless pendulum (the one of its "Pendulum" tutorial).

The state (``th``, ``thdot``) and the physical parameters (``params``) travel
in the tensordict, so one env instance steps any batch of pendulums: pass
``env.gen_params(batch_size=[B])`` to ``reset`` and ``step`` a batch at once
(``batch_locked`` is False, as in TorchRL); ``rollout`` over such a batch is
not supported yet (it stacks along the env's own batch dims). The dynamics are a handful of
element-wise torch operations over the batch.
"""
from __future__ import annotations

import math

import torch
from tensordict import TensorDict, TensorDictBase

from .._attrs import set_plain
from ..specs import Bounded, Composite, Unbounded
from .common import EnvBase
from .utils import make_composite_from_td

__all__ = ["PendulumEnv"]

_PARAMS = {"max_speed": 8.0, "max_torque": 2.0, "dt": 0.05, "m": 1.0, "l": 1.0}


class PendulumEnv(EnvBase):
    """A stateless pendulum: swing up and hold, reward ``-(angle^2 + 0.1 thdot^2 + 0.001 u^2)``.

    Same specs, keys and numbers as TorchRL's ``torchrl.envs.PendulumEnv``:
    observations ``th`` (angle in [-pi, pi]), ``thdot`` (in [-max_speed,
    max_speed]) and ``params``; the state spec is a copy of the observation
    spec; action: a torque of shape ``(1,)`` in [-max_torque, max_torque];
    never done. The initial state is drawn uniformly (``th`` in [-pi, pi],
    ``thdot`` in [-1, 1]) from a ``torch.Generator`` seeded by ``set_seed``.

    Args:
        td_params: the parameters, as made by ``gen_params`` (default: ``gen_params()``).
        seed: seed of the env's generator (default: drawn from torch's global generator).
        device: where the env's tensors live.

    Examples:
        >>> env = PendulumEnv(seed=0)
        >>> sorted(env.observation_spec.keys())
        ['params', 'th', 'thdot']
        >>> env.rollout(3)["next", "reward"].shape
        torch.Size([3, 1])
        >>> td = env.reset(env.gen_params(batch_size=[4]))
        >>> env.rand_step(td)["next", "th"].shape
        torch.Size([4])
    """

    DEFAULT_X = math.pi
    DEFAULT_Y = 1.0
    metadata = {"render_modes": ["human", "rgb_array"], "render_fps": 30}
    rng = None

    def __init__(self, td_params: TensorDictBase | None = None, seed: int | None = None, device=None):
        super().__init__(device=device)
        set_plain(self, "_batch_locked", False)
        if td_params is None:
            td_params = self.gen_params(device=self.device)
        if not isinstance(td_params, TensorDictBase) or "params" not in td_params.keys():
            raise TypeError(f"PendulumEnv requires td_params made by PendulumEnv.gen_params(), got {td_params!r}")
        self._make_spec(td_params)
        if seed is None:
            seed = int(torch.empty((), dtype=torch.int64).random_().item())
        self.set_seed(seed)

    @staticmethod
    def gen_params(g: float = 10.0, batch_size=None, device=None) -> TensorDictBase:
        """The physical parameters under ``"params"``, expanded to ``batch_size`` when given.

        >>> PendulumEnv.gen_params(batch_size=[2])["params", "g"]
        tensor([10., 10.])
        """
        params = TensorDict(dict(_PARAMS, g=g), [])
        td = TensorDict({"params": params}, [], device=device)
        if batch_size:
            td = td.expand(batch_size).contiguous()
        return td

    @staticmethod
    def angle_normalize(x: torch.Tensor) -> torch.Tensor:
        """Angles wrapped into [-pi, pi)."""
        return ((x + torch.pi) % (2 * torch.pi)) - torch.pi

    def _make_spec(self, td_params: TensorDictBase) -> None:
        max_speed = td_params["params", "max_speed"]
        max_torque = td_params["params", "max_torque"]
        self.observation_spec = Composite(
            th=Bounded(low=-torch.pi, high=torch.pi, shape=(), dtype=torch.float32),
            thdot=Bounded(low=-max_speed, high=max_speed, shape=(), dtype=torch.float32),
            params=make_composite_from_td(td_params["params"], unsqueeze_null_shapes=False),
            shape=(),
        )
        self.state_spec = self.observation_spec.clone()
        self.action_spec = Bounded(low=-max_torque, high=max_torque, shape=(1,), dtype=torch.float32)
        self.reward_spec = Unbounded(shape=(*td_params.shape, 1))

    def _set_seed(self, seed: int | None) -> None:
        rng = torch.Generator(device=self.device if self.device is not None else "cpu")
        rng.manual_seed(int(seed) if seed is not None else 0)
        set_plain(self, "rng", rng)

    def _done(self, shape) -> torch.Tensor:
        return torch.zeros((*shape, 1), dtype=torch.bool, device=self.device)

    def _reset(self, tensordict: TensorDictBase | None, **kwargs) -> TensorDictBase:
        batch = tensordict.batch_size if tensordict is not None else self.batch_size
        out = None
        if tensordict is None or "params" not in tensordict.keys():
            tensordict = self.gen_params(batch_size=batch, device=self.device)
        elif kwargs.get("set_state") and "th" in tensordict.keys() and "thdot" in tensordict.keys():
            out = tensordict.copy()
        if out is None:
            shape = tensordict.shape
            th = torch.rand(shape, generator=self.rng, device=self.device) * (2 * self.DEFAULT_X) - self.DEFAULT_X
            thdot = torch.rand(shape, generator=self.rng, device=self.device) * (2 * self.DEFAULT_Y) - self.DEFAULT_Y
            out = TensorDict({"th": th, "thdot": thdot, "params": tensordict["params"]}, batch_size=batch)
        out.set("done", self._done(batch))
        out.set("terminated", self._done(batch))
        return out

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        th, thdot = tensordict["th"], tensordict["thdot"]
        p = tensordict["params"]
        g, m, length, dt = p["g"], p["m"], p["l"], p["dt"]
        max_torque, max_speed = p["max_torque"], p["max_speed"]
        u = tensordict["action"].squeeze(-1).clamp(-max_torque, max_torque)
        costs = self.angle_normalize(th) ** 2 + 0.1 * thdot ** 2 + 0.001 * u ** 2
        new_thdot = thdot + (3 * g / (2 * length) * th.sin() + 3.0 / (m * length ** 2) * u) * dt
        new_thdot = new_thdot.clamp(-max_speed, max_speed)
        new_th = self.angle_normalize(th + new_thdot * dt)
        reward = -costs.view(*tensordict.shape, 1)
        done = torch.zeros_like(reward, dtype=torch.bool)
        return TensorDict({"th": new_th, "thdot": new_thdot, "params": p, "reward": reward,
                           "done": done, "terminated": done.clone()}, tensordict.shape)

    def rand_action(self, tensordict: TensorDictBase | None = None) -> TensorDictBase:
        """A random torque for every pendulum of ``tensordict`` (whatever its batch size)."""
        if tensordict is None:
            tensordict = TensorDict(batch_size=self.batch_size, device=self.device)
        tensordict.update(self.full_action_spec.rand(tensordict.batch_size))
        return tensordict

    def _reset_output(self, tensordict: TensorDictBase | None = None, **kwargs) -> TensorDictBase:
        # batch-unlocked: the reset follows the batch of the tensordict given, not the env's batch_size
        return self._reset(tensordict, **kwargs)
