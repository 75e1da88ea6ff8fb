"""The policy-optimizer protocol: learn in the penalized model MDP from a real/model replay mix."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from mopo_kit.data.dataset import TransitionDataset
from mopo_kit.envs.model_env import ModelStep, PenalizedModelEnv, StartStates


@runtime_checkable
class PolicyOptimizer(Protocol):
    """What the MOPO loop drives. ``learn`` owns the rollout schedule (it owns the buffer)."""

    def setup(self, env: PenalizedModelEnv, model_step: ModelStep, starts: StartStates, real_data: TransitionDataset, horizon: int) -> None: ...

    def learn(self, steps: int) -> dict[str, float]: ...

    def predict(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray: ...

    def save(self, path: Path) -> None: ...

    def load(self, path: Path) -> None: ...

    @property
    def num_steps(self) -> int: ...

    def state(self) -> dict[str, Any]: ...
