"""Evaluate a finished (or running) run directory: real-env episodes and the model bound."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mopo_kit.config import MOPOConfig
from mopo_kit.data.actor import TanhGaussianActor, load_actor
from mopo_kit.data.load import load_dataset
from mopo_kit.device import generator_on, resolve_device, with_device
from mopo_kit.dynamics.storage import is_dynamics_dir, load_dynamics
from mopo_kit.envs.model_env import ModelStep, StartStates
from mopo_kit.envs.tasks import Task
from mopo_kit.errors import MopoKitError
from mopo_kit.evaluation import evaluate_in_env, model_bound
from mopo_kit.plugins import get_registry


def evaluate_run(run_dir: Path, episodes: int = 10, seed: int = 12345, device: str | torch.device = "cpu") -> dict[str, Any]:
    """Load the run's policy (``policy.pt``), task, model and estimator; evaluate both ways.

    ``device``: where the actor, the model and the bound's rollouts compute (files written on
    any device load here).
    """
    device = resolve_device(device) if not isinstance(device, torch.device) else device
    run = load_run(run_dir, device)
    config, resolved, task, policy = run.config, run.resolved, run.task, run.env_policy
    registry = get_registry()
    real = evaluate_in_env(task, policy, episodes, seed)
    dynamics_dir = Path(config.dynamics_dir) if config.dynamics_dir else run_dir / "dynamics"
    report: dict[str, Any] = {"run_dir": str(run_dir), "task": task.name, "real": real.to_json()}
    if is_dynamics_dir(dynamics_dir):
        data = load_dataset(config.dataset)
        dynamics = load_dynamics(dynamics_dir, dims=(data.obs_dim, data.act_dim), data_name=f"dataset '{config.dataset}'", device=device)
        factory = registry.get("uncertainty", config.uncertainty.type).factory
        estimator = registry.create("uncertainty", config.uncertainty.type, **with_device(factory, config.uncertainty.params, device))
        estimator.fit(data, dynamics)
        step = ModelStep(dynamics, estimator, resolved["lam"], task.termination_fn, generator_on(device, seed))
        starts = StartStates(data, generator_on(device, seed + 1))
        report["bound"] = model_bound(policy, step, starts, rollouts=config.bound_rollouts, horizon=config.bound_horizon or resolved["horizon"]).to_json()
    return report


@dataclass
class LoadedRun:
    """A run directory's settings, task and deterministic policy, ready to act in the real env."""

    config: MOPOConfig
    resolved: dict[str, Any]
    task: Task
    actor: TanhGaussianActor
    device: torch.device
    low: torch.Tensor  # the env's action bounds, on ``device``
    high: torch.Tensor

    def env_policy(self, obs: np.ndarray) -> np.ndarray:
        """Deterministic actions in the env's units for a batch of observations."""
        act = self.actor.act(torch.as_tensor(obs, dtype=torch.float32, device=self.device), deterministic=True)
        return (self.low + (act + 1.0) * 0.5 * (self.high - self.low)).cpu().numpy()


def load_run(run_dir: Path, device: str | torch.device = "cpu") -> LoadedRun:
    """Read ``config.json`` and ``policy.pt`` of a run; one line naming the file when either is unusable."""
    device = resolve_device(device) if not isinstance(device, torch.device) else device
    config_path, policy_path = run_dir / "config.json", run_dir / "policy.pt"
    for path in (config_path, policy_path):
        if not path.exists():
            raise MopoKitError(f"{run_dir}: not a finished run directory ({path.name} missing)")
    try:
        saved = json.loads(config_path.read_text())
        config, resolved = MOPOConfig.from_dict(saved["config"]), saved["resolved"]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as exc:
        raise MopoKitError(f"{config_path}: unreadable run config, corrupt or truncated ({type(exc).__name__}: {exc})") from None
    task = get_registry().create("task", resolved["task"])
    space = task.make_env().action_space
    low, high = (torch.as_tensor(bound, device=device) for bound in (space.low, space.high))
    return LoadedRun(config, resolved, task, _load_policy(policy_path, task, device), device, low, high)


def _load_policy(path: Path, task: Task, device: torch.device | str = "cpu") -> TanhGaussianActor:
    """The run's actor, or one line saying why it cannot be used (corrupt file, another task)."""
    try:
        actor, _ = load_actor(path, device)
    except Exception as exc:  # torch/zip errors span lines; the user needs the file and the cause
        raise MopoKitError(f"{path}: unreadable policy file, corrupt or truncated ({type(exc).__name__}: {' '.join(str(exc).split())[:160]})") from None
    if (actor.obs_dim, actor.act_dim) != (task.obs_dim, task.act_dim):
        raise MopoKitError(f"{path}: policy dims ({actor.obs_dim}, {actor.act_dim}) do not match task '{task.name}' ({task.obs_dim}, {task.act_dim})")
    return actor
