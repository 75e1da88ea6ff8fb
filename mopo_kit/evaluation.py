"""Evaluation: the policy in the real environment, and the talk's bound in the model.

* Real environment: deterministic episodes (MOPO: 10 per epoch, 1,000-step cap), raw return and
  D4RL-normalized score.
* The bound of the talk, η_M(π) ≥ η_M̂(π) − λ·ε(π): η̂(π) is the policy's discounted return in the
  learned model and ε(π) = E[Σ_t γ^t u(s_t, a_t)] along the same model rollouts (the paper's
  ε_u(π) times 1/(1−γ), so that the bound is a plain difference). Rollouts start from dataset
  states, follow the deterministic policy and stop at the task's termination or ``horizon`` —
  by default the training horizon h: MOPO optimizes the policy on exactly these h-step branched
  rollouts, and longer open-loop model rollouts drift far outside the data (the estimate then
  says more about the model's divergence than about the policy).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from mopo_kit.data.episodes import run_episodes
from mopo_kit.envs.model_env import ModelStep, StartStates
from mopo_kit.envs.tasks import Task

Policy = Callable[[np.ndarray], np.ndarray]


@dataclass
class RealEvaluation:
    episodes: int
    return_mean: float
    return_std: float
    normalized_mean: float | None
    normalized_std: float | None
    #: mean steps per episode: a return says how well, this says how long; a policy that ends
    #: its episodes early (a penalty that outweighs the reward makes a terminal state pay) shows here
    length_mean: float
    #: mean per-episode sum of each ``reward_*`` term the env reports in ``info`` (e.g. the OOD
    #: tasks' run/height or forward/ctrl/contact/healthy terms); empty when it reports none
    reward_terms: dict[str, float] = field(default_factory=dict)
    #: every episode's return, in order: what a bootstrap over real evaluations (a tuning
    #: bandit, a confidence interval) needs; left out of :meth:`flat`'s metric rows
    episode_returns: list[float] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def flat(self) -> dict[str, float | int | None]:
        """One level of scalars for metric rows (CSV, W&B): the terms as ``eval_reward_*`` keys."""
        row: dict[str, float | int | None] = {k: v for k, v in asdict(self).items() if k not in ("reward_terms", "episode_returns")}
        row.update({f"eval_{key}": value for key, value in self.reward_terms.items()})
        return row


@dataclass
class ModelBound:
    """η̂(π), ε(π) and η̂ − λ·ε from ``rollouts`` model rollouts of up to ``horizon`` steps."""

    eta_hat: float
    epsilon: float
    lam: float
    bound: float
    rollouts: int
    horizon: int
    gamma: float

    def to_json(self) -> dict[str, float | int]:
        return asdict(self)


def unit_policy(task: Task, policy: Policy) -> Policy:
    """``policy`` (env-unit actions) as the episode runners take it: actions in [-1, 1].

    Shared by every real-env evaluation, so that episodes run through it again (e.g.
    ``benchmarks/ood_behavior.py``) are bit for bit the evaluation's own.
    """
    space = task.make_env().action_space
    low, high = space.low.astype(np.float32), space.high.astype(np.float32)

    def normalized_policy(obs: np.ndarray) -> np.ndarray:
        return 2.0 * (policy(obs) - low) / (high - low) - 1.0

    return normalized_policy


def evaluate_in_env(task: Task, policy: Policy, episodes: int = 10, seed: int = 0) -> RealEvaluation:
    """Deterministic episodes in the real environment (``policy`` returns env-unit actions)."""
    batch = run_episodes(task, unit_policy(task, policy), episodes, seed)
    returns = batch.returns
    normalized = None if task.ref_min_score is None else np.array([task.normalized_score(r) for r in returns])
    return RealEvaluation(
        episodes=episodes,
        return_mean=float(returns.mean()),
        return_std=float(returns.std()),
        normalized_mean=None if normalized is None else float(normalized.mean()),
        normalized_std=None if normalized is None else float(normalized.std()),
        length_mean=float(batch.lengths.mean()),
        reward_terms={key: float(values.mean()) for key, values in batch.terms.items()},
        episode_returns=[float(r) for r in returns],
    )


@torch.inference_mode()
def model_bound(
    policy: Policy,
    model_step: ModelStep,
    starts: StartStates,
    *,
    rollouts: int = 1000,
    horizon: int = 100,
    gamma: float = 0.99,
) -> ModelBound:
    """η̂(π) and ε(π) along model rollouts of the deterministic policy, batched over rollouts.

    The rollouts stay on the start states' device; ``policy`` is NumPy in, NumPy out (the same
    callable the real-env evaluation uses), so its batches cross to the host once per step.
    """
    obs = starts.sample(rollouts)
    dev = obs.device
    alive = torch.ones(rollouts, dtype=torch.bool, device=dev)
    eta = torch.zeros(rollouts, dtype=torch.float64, device=dev)
    eps = torch.zeros(rollouts, dtype=torch.float64, device=dev)
    discount = 1.0
    for _ in range(horizon):
        idx = torch.nonzero(alive).flatten()
        if idx.numel() == 0:
            break
        act = torch.as_tensor(policy(obs[idx].cpu().numpy())).to(dev)
        result = model_step(obs[idx], act)
        eta[idx] += discount * result.raw_reward.double()
        eps[idx] += discount * result.penalty.double()
        obs[idx] = result.next_obs
        alive[idx] = ~result.terminated
        discount *= gamma
    lam = model_step.lam
    return ModelBound(
        eta_hat=float(eta.mean()),
        epsilon=float(eps.mean()),
        lam=lam,
        bound=float(eta.mean() - lam * eps.mean()),
        rollouts=rollouts,
        horizon=horizon,
        gamma=gamma,
    )
