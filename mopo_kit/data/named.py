"""Registered datasets ``<task>-<kind>``: generated on first use, then read from the cache.

A cached file whose checksum no longer matches its arrays is reported and regenerated, never
silently used. Which kinds exist for a task depends on its behavior policies (``random`` needs
none); see docs/datasets.md for sizes and how they differ from D4RL.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import gymnasium
import mujoco

from mopo_kit import __version__
from mopo_kit.data.cache import data_dir
from mopo_kit.data.collect import collect_transitions, uniform_random_policy
from mopo_kit.data.d4rl_io import read_d4rl_hdf5, write_d4rl_hdf5
from mopo_kit.data.dataset import TransitionDataset
from mopo_kit.envs.tasks import BUILTIN_TASKS, Task
from mopo_kit.errors import DatasetError
from mopo_kit.hookspecs import hookimpl

#: D4RL's sizes are 1M (2M for medium-expert); CPU defaults are scaled down and say so.
DEFAULT_STEPS = {"random": 200_000}
#: D4RL's sizes per kind; "mixed" (medium-replay) is a replay buffer whose size varies by task.
D4RL_STEPS: dict[str, int | None] = {"random": 1_000_000, "medium": 1_000_000, "mixed": None, "medium-expert": 2_000_000}


class CacheWarning(UserWarning):
    """A cached dataset was unusable and is being regenerated."""


@dataclass(frozen=True)
class NamedDataset:
    """A ``<task>-<kind>`` dataset: how to make it and where it is cached."""

    task: Task
    kind: str
    steps: int
    seed: int = 0

    @property
    def name(self) -> str:
        return f"{self.task.name}-{self.kind}"

    @property
    def path(self) -> Path:
        return data_dir() / f"{self.name}-s{self.seed}-n{self.steps}.hdf5"

    def metadata(self) -> dict[str, object]:
        return {
            "name": self.name,
            "task": self.task.name,
            "kind": self.kind,
            "policy": "uniform random actions" if self.kind == "random" else self.kind,
            "seed": self.seed,
            "steps": self.steps,
            "d4rl_steps": D4RL_STEPS.get(self.kind),
            "scaled_down": D4RL_STEPS.get(self.kind) is not None and self.steps < D4RL_STEPS[self.kind],
            "env_id": self.task.env_id,
            "env_kwargs": dict(self.task.env_kwargs),
            "gymnasium_version": gymnasium.__version__,
            "mujoco_version": mujoco.__version__,
            "mopo_kit_version": __version__,
        }

    def generate(self) -> TransitionDataset:
        if self.kind != "random":
            raise DatasetError(f"dataset '{self.name}': kind '{self.kind}' is not available yet")
        return collect_transitions(
            self.task, uniform_random_policy(self.task.act_dim), self.steps, self.seed, description=self.name
        )

    def load(self) -> TransitionDataset:
        """Read from the cache, (re)generating it when missing or corrupted."""
        path = self.path
        if path.exists():
            try:
                data = read_d4rl_hdf5(path)
                return TransitionDataset(**data.arrays(), source=self.name, metadata=data.metadata)
            except DatasetError as exc:
                warnings.warn(f"cached dataset {path} is unusable ({exc}); regenerating it", CacheWarning, stacklevel=2)
        data = self.generate()
        write_d4rl_hdf5(data, path, metadata=self.metadata())
        return TransitionDataset(**data.arrays(), source=self.name, metadata=self.metadata())


def named_datasets() -> list[NamedDataset]:
    """Every built-in named dataset."""
    return [NamedDataset(task, "random", DEFAULT_STEPS["random"]) for task in BUILTIN_TASKS]


def _factory(spec: NamedDataset):
    def load(steps: int | None = None, seed: int | None = None) -> TransitionDataset:
        chosen = NamedDataset(spec.task, spec.kind, steps or spec.steps, spec.seed if seed is None else seed)
        return chosen.load()

    load.__doc__ = f"{spec.task.env_id}, {spec.kind} policy, {spec.steps:,} transitions (generated on first use)"
    return load


@hookimpl
def register_datasets(register) -> None:
    for spec in named_datasets():
        register(spec.name, _factory(spec))
