"""The behavior policies shipped inside the package, and what each one is for.

``mopo_kit/behavior_policies/manifest.json`` lists, per task, the float16 SAC actors that the
``medium``, ``mixed`` and ``medium-expert`` datasets roll out, with the command, seed, step and
evaluation returns that justify each choice (written by ``behavior/ship.py``). A fresh machine
needs nothing else to regenerate those datasets.
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


@lru_cache(maxsize=1)
def _manifest() -> dict[str, TaskPolicies]:
    if not MANIFEST.exists():
        return {}
    try:
        raw = json.loads(MANIFEST.read_text())
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{MANIFEST}: not valid JSON ({exc})") from None
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


__all__ = ["POLICY_DIR", "MANIFEST", "ShippedPolicy", "TaskPolicies", "shipped_tasks", "task_policies"]
