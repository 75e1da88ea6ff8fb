"""Core types shared by components (they meet only through these and the protocols)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class EnsemblePrediction:
    """Every ensemble member's Gaussian over [s', r], in raw units.

    ``mean`` and ``var`` have shape (E, B, obs_dim + 1); the next state is already s + Δs and the
    last column is the reward. ``elites`` holds the K member indices used for sampling.
    """

    mean: Tensor
    var: Tensor
    elites: Tensor

    def __post_init__(self) -> None:
        if self.mean.shape != self.var.shape or self.mean.ndim != 3:
            raise ValueError(
                f"EnsemblePrediction: mean {tuple(self.mean.shape)} and var {tuple(self.var.shape)} "
                "must both be (members, batch, obs_dim + 1)"
            )

    @property
    def members(self) -> int:
        return int(self.mean.shape[0])

    @property
    def batch(self) -> int:
        return int(self.mean.shape[1])

    @property
    def std(self) -> Tensor:
        return self.var.sqrt()

    @staticmethod
    def random(
        members: int = 7,
        batch: int = 32,
        out_dim: int = 6,
        elites: int = 5,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
        generator: torch.Generator | None = None,
    ) -> "EnsemblePrediction":
        """A plausible random prediction, for tests and plugin contract checks."""
        mean = torch.randn(members, batch, out_dim, generator=generator, dtype=dtype).to(device)
        log_var = torch.empty(members, batch, out_dim, dtype=dtype).uniform_(-6.0, 0.5, generator=generator)
        return EnsemblePrediction(
            mean=mean,
            var=log_var.exp().to(device),
            elites=torch.arange(elites, device=device),
        )
