"""Evaluate a finished (or running) run directory: real-env episodes, the model bound, and
whether the penalty bounds the model's error where the trained policy goes."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mopo_kit.config import MOPOConfig
from mopo_kit.data.actor import TanhGaussianActor, load_actor
from mopo_kit.data.collect import actor_policy, collect_transitions
from mopo_kit.data.dataset import TransitionDataset
from mopo_kit.data.load import load_dataset
from mopo_kit.device import generator_on, resolve_device
from mopo_kit.dynamics.storage import is_dynamics_dir, load_dynamics
from mopo_kit.envs.model_env import ModelStep, StartStates
from mopo_kit.envs.tasks import Task
from mopo_kit.errors import MopoKitError
from mopo_kit.evaluation import evaluate_in_env, model_bound
from mopo_kit.experiments.calibration import calibrate
from mopo_kit.plugins import get_registry
from mopo_kit.precision import model_precision


def evaluate_run(
    run_dir: Path,
    episodes: int = 10,
    seed: int = 12345,
    device: str | torch.device = "cpu",
    *,
    on_policy_steps: int = 0,
    on_policy_estimator: str | None = None,
    precision: str | None = None,
) -> dict[str, Any]:
    """Load the run's policy (``policy.pt``), task, model and estimator; evaluate both ways.

    ``device``: where the actor, the model and the bound's rollouts compute (files written on
    any device load here). ``on_policy_steps`` > 0 adds ``on_policy`` (see :func:`on_policy_check`),
    with the run's own estimator unless ``on_policy_estimator`` names another (an MBPO run's
    penalty is zero everywhere, so its check needs MOPO's estimator to say anything).
    """
    device = resolve_device(device) if not isinstance(device, torch.device) else device
    run = load_run(run_dir, device)
    config, resolved, task, policy = run.config, run.resolved, run.task, run.env_policy
    real = evaluate_in_env(task, policy, episodes, seed)
    dynamics_dir = Path(config.dynamics_dir) if config.dynamics_dir else run_dir / "dynamics"
    report: dict[str, Any] = {"run_dir": str(run_dir), "task": task.name, "real": real.to_json()}
    if is_dynamics_dir(dynamics_dir):
        data = load_dataset(config.dataset)
        dynamics = load_dynamics(dynamics_dir, dims=(data.obs_dim, data.act_dim), data_name=f"dataset '{config.dataset}'", device=device)
        # the model's precision: as asked, else the run's own; under ``auto`` float32 unless every
        # penalty computed here tolerates bf16 (``model_precision`` of mopo_kit.precision)
        registry = get_registry()
        names = {config.uncertainty.type} | ({on_policy_estimator} if on_policy_steps > 0 and on_policy_estimator else set())
        penalties = [registry.get("uncertainty", name).factory for name in names]
        report["precision"] = model_precision(precision or config.precision, device, penalties)
        if callable(getattr(dynamics, "set_precision", None)):
            dynamics.set_precision(report["precision"])
        estimator = registry.create_on("uncertainty", config.uncertainty.type, config.uncertainty.params, device)
        estimator.fit(data, dynamics)
        step = ModelStep(dynamics, estimator, resolved["lam"], task.termination_fn, generator_on(device, seed))
        starts = StartStates(data, generator_on(device, seed + 1))
        report["bound"] = model_bound(policy, step, starts, rollouts=config.bound_rollouts, horizon=config.bound_horizon or resolved["horizon"]).to_json()
        if on_policy_steps > 0:
            name = on_policy_estimator or config.uncertainty.type
            params = config.uncertainty.params if name == config.uncertainty.type else {}
            estimators = {name: registry.create_on("uncertainty", name, params, device)}
            report["on_policy"] = on_policy_check(run, data, dynamics, estimators, on_policy_steps, seed).to_json()
    elif on_policy_steps > 0:
        raise MopoKitError(f"{dynamics_dir}: no dynamics model there, and the on-policy check needs the run's model")
    return report


@dataclass
class OnPolicyCheck:
    """MOPO's assumption, ‖T̂ − T*‖ ≤ c·u, checked on the transitions the trained policy makes.

    The calibration report checks it on data; the theorem needs it under the policy's own state
    distribution, which is where a policy that exploits the model goes. ``bound_violations`` is
    the share of the policy's transitions whose error exceeds ``c95_data``·u, the constant that
    holds on 95 % of held-out data: 0.05 means u ranks the policy's states as well as the data's;
    much more means the penalty is blind where the policy acts. ``reward_bias_*`` is the mean
    signed r̂ − r: positive where the policy goes is what it exploits.
    """

    estimator: str
    transitions: int
    episodes: int
    reward_mean_policy: float
    error_mean_data: float
    error_mean_policy: float
    u_mean_data: float
    u_mean_policy: float
    spearman_policy: float | None
    c95_data: float | None
    bound_violations: float | None
    reward_bias_data: float
    reward_bias_policy: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def on_policy_check(
    run: LoadedRun, data: TransitionDataset, dynamics: Any, estimators: dict[str, Any], transitions: int, seed: int
) -> OnPolicyCheck:
    """Collect ``transitions`` real steps of the deterministic policy; compare model error and u.

    The one estimator in ``estimators`` is fitted as the calibration report fits it (half the
    data; the other half is the held-out reference), so the two reports' numbers agree.
    """
    (name,) = estimators
    with torch.no_grad():
        on_policy = collect_transitions(run.task, actor_policy(run.actor, seed, deterministic=True), transitions, seed, description="on-policy")
    report, raw = calibrate(dynamics, estimators, data, on_policy, max_points=transitions, seed=seed, dynamics_name=str(run.config.dynamics_dir or "dynamics"))
    if name in report.skipped:
        raise MopoKitError(f"on-policy check: {report.skipped[name]}")
    row, arrays = report.estimators[0], raw[name]
    bounded = math.isfinite(row.c95_id)
    return OnPolicyCheck(
        estimator=name,
        transitions=len(on_policy),
        episodes=int(on_policy.episode_ends.sum()),
        reward_mean_policy=float(on_policy.rewards.mean()),
        error_mean_data=report.error_mean_id,
        error_mean_policy=report.error_mean_ood,
        u_mean_data=row.u_mean_id,
        u_mean_policy=row.u_mean_ood,
        spearman_policy=_finite_or_none(row.spearman_ood),
        c95_data=row.c95_id if bounded else None,
        bound_violations=float(np.mean(arrays["err_ood"] > row.c95_id * arrays["u_ood"])) if bounded else None,
        reward_bias_data=report.reward_bias_id,
        reward_bias_policy=report.reward_bias_ood,
    )


def _finite_or_none(value: float) -> float | None:
    """JSON has no NaN: a statistic that is undefined (a constant u ranks nothing) is null."""
    return value if math.isfinite(value) else None


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
