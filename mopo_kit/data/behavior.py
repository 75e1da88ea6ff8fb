"""Behavior policies: SB3 SAC trained on the real environment, with snapshots and resume.

D4RL made its datasets from SAC policies at several stages of training (random, medium ≈ 1/3 of
expert, the replay buffer up to medium, expert). This trainer writes what those datasets need:

* ``snapshots/step_XXXXXXXX.pt`` — the actor every ``eval_every`` steps (weights only, loadable
  with :func:`mopo_kit.data.actor.load_actor`), plus its deterministic and stochastic return in
  ``evals.json``;
* ``resume/sac.zip`` and ``resume/replay_buffer.pkl`` every ``checkpoint_every`` steps, so a
  killed run continues where it stopped (``resume=True``). Without the replay buffer (it is large
  and not shipped) training continues from the SAC weights with a refilled buffer.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mopo_kit.data.actor import TanhGaussianActor, save_actor
from mopo_kit.data.episodes import episode_returns
from mopo_kit.envs.tasks import Task
from mopo_kit.fileio import atomic_write_bytes


@dataclass
class BehaviorConfig:
    """Settings of one behavior-policy training run (SB3 SAC defaults otherwise)."""

    task: str
    steps: int = 300_000
    seed: int = 0
    eval_every: int = 10_000
    checkpoint_every: int = 50_000
    eval_episodes: int = 5
    learning_starts: int = 5_000
    threads: int = 1


def _actor_from_sb3(model: Any, task: Task) -> TanhGaussianActor:
    actor = TanhGaussianActor(task.obs_dim, task.act_dim)
    actor.load_state_dict(model.policy.actor.state_dict())
    actor.eval()
    return actor


def _load_evals(path: Path) -> list[dict[str, Any]]:
    return json.loads(path.read_text()) if path.exists() else []


def train_behavior(
    task: Task, out_dir: Path, config: BehaviorConfig, resume: bool = False, device: str | torch.device = "cpu"
) -> list[dict[str, Any]]:
    """Train (or continue) a behavior policy; returns the list of evaluations so far.

    ``device`` is SB3's (not stored in ``config.json``: a run started on one device continues on
    another; snapshots are CPU tensors either way).
    """
    from mopo_kit.device import resolve_device

    device = resolve_device(device) if not isinstance(device, torch.device) else device
    from stable_baselines3 import SAC
    from stable_baselines3.common.callbacks import BaseCallback

    torch.set_num_threads(config.threads)
    out_dir = Path(out_dir)
    (out_dir / "snapshots").mkdir(parents=True, exist_ok=True)
    resume_dir = out_dir / "resume"
    resume_dir.mkdir(exist_ok=True)
    evals_path = out_dir / "evals.json"
    atomic_write_bytes(out_dir / "config.json", json.dumps(asdict(config), indent=2).encode())

    env = task.make_env()
    zip_path, buffer_path = resume_dir / "sac.zip", resume_dir / "replay_buffer.pkl"
    if resume and zip_path.exists():
        model = SAC.load(zip_path, env=env, device=device)
        if buffer_path.exists():
            model.load_replay_buffer(buffer_path)
        else:  # refill with random actions before updating again
            model.learning_starts = model.num_timesteps + config.learning_starts
        start = model.num_timesteps
    else:
        model = SAC(
            "MlpPolicy",
            env,
            buffer_size=max(config.steps, 1),
            learning_starts=config.learning_starts,
            seed=config.seed,
            device=device,
        )
        start = 0
    evals = [e for e in _load_evals(evals_path) if e["step"] <= start]

    class Snapshots(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.t0 = time.time()

        def _on_step(self) -> bool:
            step = self.num_timesteps
            if step % config.eval_every == 0:
                actor = _actor_from_sb3(self.model, task)
                snap = out_dir / "snapshots" / f"step_{step:08d}.pt"
                save_actor(actor.state_dict(), snap, {"task": task.name, "step": step, "seed": config.seed})
                det = episode_returns(
                    task, lambda o: actor.act_numpy(o, deterministic=True), config.eval_episodes, seed=10_000 + step
                )
                gen = torch.Generator().manual_seed(step)
                sto = episode_returns(
                    task, lambda o: actor.act_numpy(o, generator=gen), config.eval_episodes, seed=20_000 + step
                )
                evals.append(
                    {
                        "step": step,
                        "snapshot": snap.name,
                        "det_return_mean": float(det.mean()),
                        "det_return_std": float(det.std()),
                        "stoch_return_mean": float(sto.mean()),
                        "stoch_return_std": float(sto.std()),
                        "wall_s": round(time.time() - self.t0, 1),
                    }
                )
                atomic_write_bytes(evals_path, json.dumps(evals, indent=1).encode())
                print(f"[{task.name}] step {step}: det {det.mean():.1f} stoch {sto.mean():.1f}", flush=True)
            if step % config.checkpoint_every == 0:
                save_checkpoint(self.model)
            return True

    def save_checkpoint(model: Any) -> None:
        tmp = resume_dir / "sac.tmp.zip"
        model.save(tmp)
        tmp.replace(zip_path)
        tmp_buf = resume_dir / "replay_buffer.tmp.pkl"
        model.save_replay_buffer(tmp_buf)
        tmp_buf.replace(buffer_path)

    remaining = config.steps - start
    if remaining > 0:
        model.learn(remaining, callback=Snapshots(), reset_num_timesteps=False)
        if model.num_timesteps % config.checkpoint_every != 0:
            save_checkpoint(model)  # the end of a run is a checkpoint too, so it can be extended
    return evals


def best_snapshot(evals: list[dict[str, Any]]) -> dict[str, Any]:
    """The evaluation with the highest deterministic return (the 'expert')."""
    return max(evals, key=lambda e: e["det_return_mean"])


def medium_snapshot(evals: list[dict[str, Any]], expert_return: float, fraction: float = 1 / 3) -> dict[str, Any]:
    """D4RL's 'medium': the first snapshot whose *stochastic* return reaches ``fraction`` of the expert's.

    Stochastic, because medium datasets sample their actions. The first one, because the
    ``mixed`` dataset is the replay buffer up to this point: a later, luckier snapshot would
    make that buffer longer than "trained up to medium".
    """
    target = fraction * expert_return
    for entry in sorted(evals, key=lambda e: e["step"]):
        if entry["stoch_return_mean"] >= target:
            return entry
    raise ValueError(f"no snapshot reaches {fraction:.2f} of the expert return ({target:.1f})")


def replay_snapshots(evals: list[dict[str, Any]], until_step: int, learning_starts: int, count: int) -> list[dict[str, Any]]:
    """At most ``count`` snapshots spread evenly over training up to ``until_step`` (exclusive).

    They stand in for the policies that filled the replay buffer; the first ``learning_starts``
    steps were uniform random actions and need no snapshot.
    """
    candidates = sorted((e for e in evals if learning_starts <= e["step"] < until_step), key=lambda e: e["step"])
    if len(candidates) <= count:
        return candidates
    picks = np.linspace(0, len(candidates) - 1, count).round().astype(int)
    return [candidates[i] for i in sorted(set(picks.tolist()))]


__all__ = ["BehaviorConfig", "train_behavior", "best_snapshot", "medium_snapshot", "replay_snapshots"]
