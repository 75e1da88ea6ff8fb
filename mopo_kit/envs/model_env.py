"""The penalized model MDP M̃ of the talk: s' ~ T̂(s, a), r̃ = r − λ·u(s, a), termination fn.

:class:`ModelStep` is the batched core, all torch: one call advances any number of rows — a
random *elite* per row, one Gaussian sample of [s', r] from it (the reward is sampled, as in
``mopo/models/fake_env.py``), the penalty from all members, the task's termination function.
MOPO's rollouts (:mod:`mopo_kit.policy`) call it directly on 50,000 rows at a time. Where the
penalty reads no prediction (MBPO), only each row's sampled member is run
(:attr:`ModelStep.samples_only`).

:class:`PenalizedModelEnv` (a gymnasium ``Env``, one rollout) and :class:`PenalizedModelVecEnv`
(an SB3 ``VecEnv``, many rollouts) wrap the same core for users who want to run any Gymnasium or
SB3 algorithm in the model: start states come from the dataset, episodes are truncated at the
horizon h, and ``info`` carries ``raw_reward`` and ``penalty``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.vec_env.base_vec_env import VecEnv
from torch import Tensor

from mopo_kit.data.dataset import TransitionDataset
from mopo_kit.device import device_of
from mopo_kit.envs.termination import TerminationFn
from mopo_kit.guards import check_penalty, check_prediction


@dataclass
class StepResult:
    """One batched model step; every field has the batch as its first dimension."""

    next_obs: Tensor
    reward: Tensor  # penalized: r − λ·u
    raw_reward: Tensor
    penalty: Tensor  # u(s, a), before λ
    terminated: Tensor  # bool


class ModelStep:
    """Advance a batch of (s, a) through the learned model with MOPO's penalized reward.

    Every step checks the model's prediction (finite, variances >= 0) and the estimator's output
    (shape (B,), finite, >= 0) before anything is returned, so a NaN never reaches the replay
    pool or a checkpoint: the run stops with one line naming the component
    (:class:`~mopo_kit.errors.ComponentOutputError`). ``name`` / ``dynamics_name`` are the
    registered names used in that line (default: the class names); ``context`` (e.g. "at epoch
    3") is appended when a caller sets it. ``guard=False`` skips the checks (for measuring them).

    Devices: the step computes where the dynamics model predicts (``dynamics.device``, else its
    first parameter's device); inputs from elsewhere are moved once per call, and every output
    is on that device. Random draws come from ``generator`` on *its* device (a generator on the
    model's device, as :class:`~mopo_kit.mopo.MOPO` builds it, costs no transfer).
    """

    def __init__(
        self,
        dynamics: Any,
        estimator: Any,
        lam: float,
        termination_fn: TerminationFn,
        generator: torch.Generator | None = None,
        *,
        name: str | None = None,
        dynamics_name: str | None = None,
        guard: bool = True,
    ) -> None:
        self.dynamics, self.estimator, self.lam = dynamics, estimator, float(lam)
        self.termination_fn = termination_fn
        self.device = device_of(dynamics, generator.device if generator is not None else None)
        self.generator = generator if generator is not None else torch.Generator(device=self.device).manual_seed(0)
        self.name = name or type(estimator).__name__
        self.dynamics_name = dynamics_name or type(dynamics).__name__
        self.guard = guard
        self.context = ""

    @property
    def samples_only(self) -> bool:
        """True when the step needs only each row's sampled member: the penalty reads no prediction
        (λ = 0, or an estimator with ``reads_prediction = False`` such as ``zero``) and the model
        has ``predict_rows`` and ``elites`` (:class:`~mopo_kit.dynamics.GaussianEnsemble`). MBPO's
        rollouts then cost one member's forward per row instead of every member's, with the same
        draws and, at one thread, the same numbers to the bit (docs/performance.md)."""
        penalty_reads = self.lam != 0.0 and getattr(self.estimator, "reads_prediction", True)
        return not penalty_reads and callable(getattr(self.dynamics, "predict_rows", None)) and hasattr(self.dynamics, "elites")

    @torch.inference_mode()
    def __call__(self, obs: Tensor, act: Tensor) -> StepResult:
        gen = self.generator
        pred = None if self.samples_only else self.dynamics.predict(obs, act)
        dev = self.device if pred is None else pred.mean.device
        obs, act = torch.as_tensor(obs).to(dev), torch.as_tensor(act).to(dev)  # no-ops on the model's device
        rows = obs.shape[0]
        elites = (self.dynamics.elites if pred is None else pred.elites).to(dev)
        pick = elites[torch.randint(len(elites), (rows,), generator=gen, device=gen.device).to(dev)]
        if pred is None:
            mean, var = checked = self.dynamics.predict_rows(obs, act, pick)
        else:
            index = torch.arange(rows, device=dev)
            mean, var = pred.mean[pick, index], pred.var[pick, index]
            checked = pred.mean, pred.var  # every member: the estimator reads them all
        if self.guard:
            check_prediction(*checked, self.dynamics_name, self.context)
        noise = torch.randn(mean.shape, generator=gen, dtype=mean.dtype, device=gen.device).to(dev)
        sample = mean + var.sqrt() * noise
        next_obs, raw_reward = sample[:, :-1], sample[:, -1]
        penalty = self.estimator(obs, act, pred) if self.lam != 0.0 else raw_reward.new_zeros(rows)
        if self.guard and self.lam != 0.0:
            check_penalty(penalty, rows, self.name, self.context)
        terminated = self.termination_fn(obs, act, next_obs)
        return StepResult(next_obs, raw_reward - self.lam * penalty, raw_reward, penalty, terminated)


class StartStates:
    """Uniform samples of start states from a dataset's observations (MOPO samples the real pool).

    The observations live on ``device`` (default: the generator's device, else the CPU), so a
    rollout of 50,000 rows starts there without a host-to-device copy.
    """

    def __init__(self, data: TransitionDataset, generator: torch.Generator | None = None, device: torch.device | str | None = None) -> None:
        if device is None:
            device = generator.device if generator is not None else "cpu"
        self.device = torch.device(device)
        self.observations = torch.from_numpy(data.observations).to(self.device)
        self.generator = generator if generator is not None else torch.Generator(device=self.device).manual_seed(0)

    def sample(self, n: int) -> Tensor:
        gen = self.generator
        index = torch.randint(self.observations.shape[0], (n,), generator=gen, device=gen.device)
        return self.observations[index.to(self.device)]


def _boxes(data: TransitionDataset, action_space: gym.spaces.Box | None) -> tuple[gym.spaces.Box, gym.spaces.Box]:
    obs_space = gym.spaces.Box(-np.inf, np.inf, shape=(data.obs_dim,), dtype=np.float32)
    if action_space is None:
        action_space = gym.spaces.Box(-1.0, 1.0, shape=(data.act_dim,), dtype=np.float32)
    return obs_space, action_space


class PenalizedModelEnv(gym.Env):
    """One rollout in the penalized model MDP (gymnasium API), truncated at ``horizon``."""

    metadata = {"render_modes": []}

    def __init__(self, step: ModelStep, data: TransitionDataset, horizon: int, action_space: gym.spaces.Box | None = None) -> None:
        super().__init__()
        self.model_step, self.horizon = step, int(horizon)
        self.observation_space, self.action_space = _boxes(data, action_space)
        self._starts = StartStates(data, device=step.device)
        self._obs: Tensor | None = None
        self._t = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        if seed is not None:
            self._starts.generator.manual_seed(seed)
            self.model_step.generator.manual_seed(seed + 1)
        self._obs = self._starts.sample(1)
        self._t = 0
        return self._obs[0].cpu().numpy().copy(), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._obs is None:
            raise RuntimeError("PenalizedModelEnv: call reset() before step()")
        act = torch.as_tensor(np.asarray(action, dtype=np.float32).reshape(1, -1))
        result = self.model_step(self._obs, act)
        self._obs = result.next_obs
        self._t += 1
        terminated = bool(result.terminated[0])
        truncated = self._t >= self.horizon and not terminated
        info = {"raw_reward": float(result.raw_reward[0]), "penalty": float(result.penalty[0])}
        return result.next_obs[0].cpu().numpy().astype(np.float32), float(result.reward[0]), terminated, truncated, info


class PenalizedModelVecEnv(VecEnv):
    """``num_envs`` rollouts in the penalized model MDP, stepped as one batch (SB3 ``VecEnv``).

    Rows that terminate or reach ``horizon`` restart from fresh dataset start states; their last
    observation is in ``info["terminal_observation"]`` and a horizon cut sets
    ``info["TimeLimit.truncated"]``, SB3's conventions.
    """

    def __init__(self, step: ModelStep, data: TransitionDataset, horizon: int, num_envs: int, action_space: gym.spaces.Box | None = None) -> None:
        obs_space, act_space = _boxes(data, action_space)
        super().__init__(num_envs, obs_space, act_space)
        self.model_step, self.horizon = step, int(horizon)
        self._starts = StartStates(data, device=step.device)
        self._obs = self._starts.sample(num_envs)
        self._t = torch.zeros(num_envs, dtype=torch.long, device=step.device)
        self._actions: Tensor | None = None

    def reset(self) -> np.ndarray:
        seed = self._seeds[0]
        if seed is not None:  # set by VecEnv.seed(); used once, as SB3's own VecEnvs do
            self._starts.generator.manual_seed(int(seed))
            self.model_step.generator.manual_seed(int(seed) + 1)
            self._reset_seeds()
        self._obs = self._starts.sample(self.num_envs)
        self._t.zero_()
        return self._obs.cpu().numpy().copy()

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = torch.as_tensor(np.asarray(actions, dtype=np.float32).reshape(self.num_envs, -1))

    def step_wait(self):
        result = self.model_step(self._obs, self._actions)
        self._t += 1
        truncated = (self._t >= self.horizon) & ~result.terminated
        done = result.terminated | truncated
        next_obs = result.next_obs.clone()
        infos: list[dict[str, Any]] = [
            {"raw_reward": r, "penalty": p} for r, p in zip(result.raw_reward.tolist(), result.penalty.tolist())
        ]
        if done.any():
            rows = torch.nonzero(done).flatten()
            for i in rows.tolist():  # only finished rows: at most num_envs / horizon per step
                infos[i]["terminal_observation"] = result.next_obs[i].cpu().numpy().copy()
                infos[i]["TimeLimit.truncated"] = bool(truncated[i])
            next_obs[rows] = self._starts.sample(rows.numel())
            self._t[rows] = 0
        self._obs = next_obs
        return next_obs.cpu().numpy().copy(), result.reward.cpu().numpy().copy(), done.cpu().numpy().copy(), infos

    def close(self) -> None:
        pass

    def get_attr(self, attr_name: str, indices=None) -> list[Any]:
        return [getattr(self, attr_name) for _ in self._indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices=None) -> None:
        setattr(self, attr_name, value)

    def env_method(self, method_name: str, *method_args, indices=None, **method_kwargs) -> list[Any]:
        return [getattr(self, method_name)(*method_args, **method_kwargs) for _ in self._indices(indices)]

    def env_is_wrapped(self, wrapper_class: type, indices=None) -> list[bool]:
        return [False for _ in self._indices(indices)]

    def _indices(self, indices) -> Sequence[int]:
        if indices is None:
            return range(self.num_envs)
        return [indices] if isinstance(indices, int) else indices
