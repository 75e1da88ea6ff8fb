"""The behavior policies shipped inside the package, and what each one is for.

``mopo_kit/behavior_policies/manifest.json`` lists, per task, the float16 SAC actors that the
``medium``, ``mixed`` and ``medium-expert`` datasets roll out, with the command, seed, step and
evaluation returns that justify each choice (written by ``behavior/ship.py``). Its ``runs``
section lists, per task, the snapshots of the expert's own SAC run up to the expert's step
(files under ``behavior_policies/expert_runs/``, outside the task folders that ``ship.py`` replaces):
they regenerate that run's whole replay buffer for the out-of-distribution datasets
(docs/ood.md). A fresh machine needs nothing else to regenerate any of those datasets.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from mopo_kit.errors import DatasetError

POLICY_DIR = Path(__file__).resolve().parent.parent / "behavior_policies"
MANIFEST = POLICY_DIR / "manifest.json"


@dataclass(frozen=True)
class ShippedPolicy:
    """One actor file and the training step and returns it was chosen by."""

    path: Path
    step: int
    det_return: float
    stoch_return: float

    @classmethod
    def from_entry(cls, entry: dict[str, Any]) -> "ShippedPolicy":
        return cls(POLICY_DIR / entry["file"], int(entry["step"]), float(entry["det_return"]), float(entry["stoch_return"]))

    def describe(self) -> dict[str, Any]:
        return {
            "file": self.path.relative_to(POLICY_DIR).as_posix(),
            "step": self.step,
            "det_return": self.det_return,
            "stoch_return": self.stoch_return,
        }


@dataclass(frozen=True)
class TaskPolicies:
    """A task's expert, medium and the snapshots that replay its training up to medium."""

    task: str
    expert: ShippedPolicy
    medium: ShippedPolicy
    replay: tuple[ShippedPolicy, ...]
    learning_starts: int
    provenance: dict[str, Any]

    @property
    def replay_steps(self) -> int:
        """Length of the replay buffer the ``mixed`` dataset stands for (training steps to medium)."""
        return self.medium.step


def _parse(task: str, entry: dict[str, Any]) -> TaskPolicies:
    try:
        return TaskPolicies(
            task=task,
            expert=ShippedPolicy.from_entry(entry["expert"]),
            medium=ShippedPolicy.from_entry(entry["medium"]),
            replay=tuple(ShippedPolicy.from_entry(e) for e in entry["replay"]),
            learning_starts=int(entry["learning_starts"]),
            provenance=dict(entry.get("provenance", {})),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise DatasetError(f"{MANIFEST}: task '{task}' has a malformed entry ({exc!r})") from None


def _read_manifest() -> dict[str, Any]:
    if not MANIFEST.exists():
        return {}
    try:
        return json.loads(MANIFEST.read_text())
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{MANIFEST}: not valid JSON ({exc})") from None


@lru_cache(maxsize=1)
def _manifest() -> dict[str, TaskPolicies]:
    raw = _read_manifest()
    return {task: _parse(task, entry) for task, entry in raw.get("tasks", {}).items()}


def shipped_tasks() -> list[str]:
    """Tasks that have shipped behavior policies."""
    return sorted(_manifest())


def task_policies(task: str) -> TaskPolicies:
    """The shipped policies of ``task``; a one-line error when there are none."""
    policies = _manifest().get(task)
    if policies is None:
        have = ", ".join(shipped_tasks()) or "none"
        raise DatasetError(f"no shipped behavior policies for task '{task}' (shipped: {have})")
    return policies


@dataclass(frozen=True)
class BehaviorRun:
    """The snapshots of one SAC training run up to ``end_step`` (the expert's step), in training order."""

    task: str
    command: str
    seed: int
    learning_starts: int
    end_step: int
    end_snapshot: str
    snapshots: tuple[ShippedPolicy, ...]

    def describe(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "command": self.command,
            "seed": self.seed,
            "learning_starts": self.learning_starts,
            "end_step": self.end_step,
            "end_snapshot": self.end_snapshot,
            "snapshots": [p.describe() for p in self.snapshots],
        }


@lru_cache(maxsize=1)
def _runs() -> dict[str, BehaviorRun]:
    runs = {}
    for task, entry in _read_manifest().get("runs", {}).items():
        try:
            runs[task] = BehaviorRun(
                task=task,
                command=str(entry["command"]),
                seed=int(entry["seed"]),
                learning_starts=int(entry["learning_starts"]),
                end_step=int(entry["end_step"]),
                end_snapshot=str(entry["end_snapshot"]),
                snapshots=tuple(ShippedPolicy.from_entry(e) for e in entry["snapshots"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DatasetError(f"{MANIFEST}: run of task '{task}' has a malformed entry ({exc!r})") from None
    return runs


def behavior_run(task: str) -> BehaviorRun:
    """The shipped snapshots of ``task``'s expert run; a one-line error when there are none."""
    run = _runs().get(task)
    if run is None:
        have = ", ".join(sorted(_runs())) or "none"
        raise DatasetError(f"no shipped behavior run for task '{task}' (shipped: {have})")
    return run


__all__ = [
    "POLICY_DIR",
    "MANIFEST",
    "BehaviorRun",
    "ShippedPolicy",
    "TaskPolicies",
    "behavior_run",
    "shipped_tasks",
    "task_policies",
]
