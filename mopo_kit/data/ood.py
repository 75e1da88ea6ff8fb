"""MOPO's out-of-distribution datasets, ``halfcheetah-jump`` and ``ant-angle`` (paper §5.2).

As in the paper, each is the *whole* replay buffer of SAC trained on the original task (the
cheetah running forward, the ant running along x), relabeled with the new task's reward. The
buffer was not stored; it is regenerated from the snapshots of the shipped expert's own run
(:func:`mopo_kit.data.shipped.behavior_run`, recipe :func:`mopo_kit.data.recipes.run_segments`).
The *original* task's policies act in the *new* task's environment, whose reward wrapper
(:mod:`mopo_kit.envs.ood`) computes every reward from the simulator's state at collection time,
so rewards are exact, not re-derived from stored observations (the jump reward needs z at reset,
which no observation holds). See docs/ood.md for sizes and returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from mopo_kit.data.collect import Segment
from mopo_kit.data.dataset import TransitionDataset
from mopo_kit.data.named import NamedDataset
from mopo_kit.data.recipes import run_segments
from mopo_kit.data.shipped import BehaviorRun, TaskPolicies, behavior_run
from mopo_kit.envs.tasks import ANT_ANGLE, HALFCHEETAH_JUMP, Task
from mopo_kit.errors import DatasetError
from mopo_kit.hookspecs import hookimpl

#: Out-of-distribution task -> the original task whose SAC run's replay buffer it relabels.
SOURCE_TASKS: dict[str, str] = {HALFCHEETAH_JUMP.name: "halfcheetah", ANT_ANGLE.name: "ant"}
#: The paper's buffer: SAC trained for 1M steps (§5.2).
PAPER_STEPS = 1_000_000
#: ``kind`` in the metadata; it has no MOPO (h, λ) entry, so training uses the fallback (5, 1.0).
KIND = "full-replay"


@dataclass(frozen=True)
class RelabeledReplay(NamedDataset):
    """A task's dataset made of another task's whole SAC replay buffer, rewarded by this task."""

    source_task: str = ""

    @property
    def name(self) -> str:
        return self.task.name

    @property
    def policies(self) -> TaskPolicies | None:
        return None

    @property
    def run(self) -> BehaviorRun:
        return behavior_run(self.source_task)

    def segments(self) -> list[Segment]:
        try:
            return run_segments(self.run, self.steps)
        except ValueError as exc:
            raise DatasetError(f"dataset '{self.name}': {exc}") from None

    def metadata(self) -> dict[str, Any]:
        meta = super().metadata()
        run = self.run
        meta.update(
            kind=KIND,
            d4rl_steps=None,
            paper_steps=PAPER_STEPS,
            scaled_down=self.steps < run.end_step,
            source_task=self.source_task,
            source_run=run.describe(),
            relabeled=(
                f"the whole replay buffer of SAC trained on '{self.source_task}' (training steps 0 to the "
                f"expert's {run.end_step:,}), regenerated from that run's snapshots and collected in the "
                f"'{self.name}' environment, whose wrapper computes every reward from the simulator state"
            ),
        )
        return meta


def make_relabeled(task: Task, steps: int | None = None, seed: int = 0) -> RelabeledReplay:
    """``task``'s dataset at ``steps`` transitions (default: the source run's length, the expert's step)."""
    if task.name not in SOURCE_TASKS:
        raise DatasetError(f"task '{task.name}' has no relabeled dataset (known: {', '.join(SOURCE_TASKS)})")
    if steps is not None and steps <= 0:
        raise DatasetError(f"dataset '{task.name}': steps must be positive, got {steps}")
    source = SOURCE_TASKS[task.name]
    return RelabeledReplay(task, KIND, steps or behavior_run(source).end_step, seed, source_task=source)


def _factory(task: Task) -> Callable[..., TransitionDataset]:
    def load(steps: int | None = None, seed: int | None = None) -> TransitionDataset:
        return make_relabeled(task, steps, 0 if seed is None else seed).load()

    load.__doc__ = (
        f"{task.env_id} ({task.name} reward), the whole SAC replay buffer of '{SOURCE_TASKS[task.name]}' "
        "relabeled (generated on first use)"
    )
    return load


@hookimpl
def register_datasets(register: Callable[..., None]) -> None:
    """Register ``halfcheetah-jump`` and ``ant-angle`` (a built-in plugin module of its own, so that
    :mod:`mopo_kit.data.named`, which this module extends, does not import it back)."""
    for task in (HALFCHEETAH_JUMP, ANT_ANGLE):
        register(task.name, _factory(task))


__all__ = ["KIND", "PAPER_STEPS", "SOURCE_TASKS", "RelabeledReplay", "make_relabeled", "register_datasets"]
