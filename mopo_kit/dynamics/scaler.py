"""Input standardization fitted on the training split (MOPO's ``TensorStandardScaler``)."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class StandardScaler(nn.Module):
    """x ↦ (x − mean) / std with std < 1e-12 replaced by 1, stored as buffers (saved with the model)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    def fit(self, x: Tensor) -> "StandardScaler":
        mean = x.mean(dim=0)
        std = x.std(dim=0, unbiased=False)
        std = torch.where(std < 1e-12, torch.ones_like(std), std)
        self.mean.copy_(mean)
        self.std.copy_(std)
        return self

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std
