"""An example mopo_kit plugin: the elite-only max-std penalty (polixir/OfflineRL's 'aleatoric').

MOPO's default penalty maxes the predicted std over *all* ensemble members; polixir/OfflineRL
maxes over the selected elites only. Registering it as a plugin lets users compare the two on the
same model, data and seeds without touching mopo_kit.
"""

from __future__ import annotations

import torch
from torch import Tensor

from mopo_kit import hookimpl
from mopo_kit.types import EnsemblePrediction
from mopo_kit.uncertainty.base import ClosedFormEstimator


class EliteMaxStd(ClosedFormEstimator):
    """Max over the elite members of the L2 norm of the predicted std (polixir's variant)."""

    ipm = "wasserstein"

    def __call__(self, obs: Tensor, act: Tensor, pred: EnsemblePrediction) -> Tensor:
        elite_var = pred.var.index_select(0, pred.elites.to(pred.var.device))
        return torch.linalg.vector_norm(elite_var.sqrt(), dim=-1).amax(dim=0)


@hookimpl
def register_uncertainty_estimators(register) -> None:
    register("elite_max_std", EliteMaxStd)
