"""The uncertainty-estimator protocol: u(s, a) >= 0, an error bound of the dynamics model.

MOPO's penalized reward is r̃ = r − λ·u(s, a), where u bounds d_F(T̂(s,a), T*(s,a)) for an
integral probability metric d_F. Each estimator names the IPM class it stands for in ``ipm``.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from torch import Tensor

from mopo_kit.types import EnsemblePrediction


@runtime_checkable
class UncertaintyEstimator(Protocol):
    """What the penalized MDP calls: ``u = estimator(obs, act, pred)`` with shape (B,)."""

    ipm: str

    def fit(self, data: Any, dynamics: Any) -> None:
        """Fit anything the estimator needs (a no-op for closed-form estimators)."""

    def __call__(self, obs: Tensor, act: Tensor, pred: EnsemblePrediction) -> Tensor:
        """Penalty per row: shape (B,), finite, >= 0, same dtype and device as ``pred.mean``."""


class ClosedFormEstimator:
    """Base for estimators computed from the ensemble prediction alone (nothing to fit)."""

    ipm: str = "none"
    #: True only where measured: u within 1 % (median) / 5 % (p99) of float32 when the model's
    #: forward runs in bf16; ``--precision auto`` keeps the model float32 for any other estimator
    #: (:func:`mopo_kit.precision.model_precision`)
    bf16_tolerant: bool = False
    #: False for a u(s, a) computed without the ensemble's prediction: it is then called with
    #: ``pred=None``, and the penalized MDP skips every member's forward but the one each row
    #: samples from (``ModelStep.samples_only``; on a CPU 1/E of the model's arithmetic)
    reads_prediction: bool = True

    def fit(self, data: Any, dynamics: Any) -> None:  # noqa: D401 - nothing to fit
        return None

    def __call__(self, obs: Tensor, act: Tensor, pred: EnsemblePrediction | None) -> Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
