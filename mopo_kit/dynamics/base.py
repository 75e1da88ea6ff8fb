"""The dynamics-model protocol and what fitting reports."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, runtime_checkable

from torch import Tensor

from mopo_kit.types import EnsemblePrediction


@dataclass
class EpochStats:
    """One training epoch: mean training loss and every member's holdout MSE (raw targets)."""

    epoch: int
    train_loss: float
    holdout_mse: list[float]
    seconds: float


@dataclass
class FitReport:
    """Outcome of fitting: epochs run, why it stopped, final holdout MSE and the elites."""

    epochs: int
    stop_reason: str
    holdout_mse: list[float]
    elites: list[int]
    history: list[EpochStats] = field(default_factory=list)
    seconds: float = 0.0
    #: what the fit's hidden-layer GEMMs computed in (``fp32`` or ``bf16``; ``EnsembleConfig.fit_precision``)
    precision: str = "fp32"


EpochCallback = Callable[[EpochStats], None]


@runtime_checkable
class DynamicsModel(Protocol):
    """A probabilistic model of T(s' , r | s, a) made of E Gaussian members."""

    def fit(self, data: Any, *, callback: EpochCallback | None = None) -> FitReport: ...

    def predict(self, obs: Tensor, act: Tensor) -> EnsemblePrediction: ...
