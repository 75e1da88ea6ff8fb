"""The batched Gaussian ensemble network: E members in one set of tensors, no loop over members.

Each member is MOPO's MLP: 4 × 200 swish layers, then a mean head and a log-variance head on the
last hidden layer (stored as one (200, 2·D) matrix per member — the same function as two heads,
and one GEMM instead of two). Log-variances are soft-clamped between learned bounds
(``max_logvar`` init +0.5, ``min_logvar`` init −10), exactly as ``mopo/models/bnn.py``.

Hot-path choices (measured in benchmarks/bench_dynamics.py):
* hidden layers are ``baddbmm`` (bias fused into the GEMM) over the member dimension;
* when all members see the same rows (holdout evaluation, rollouts) the first layer is one
  (B, in) × (in, E·200) GEMM instead of E small ones;
* prediction runs in row chunks that keep activations in cache.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def truncated_normal_(tensor: Tensor, std: float) -> Tensor:
    """TF's ``truncated_normal``: N(0, std²) re-drawn outside ±2 std (MOPO's ``fc.py`` init)."""
    return nn.init.trunc_normal_(tensor, mean=0.0, std=std, a=-2.0 * std, b=2.0 * std)


def soft_clamp(raw: Tensor, min_logvar: Tensor, max_logvar: Tensor) -> Tensor:
    """logvar = max − softplus(max − raw), then min + softplus(logvar − min) (differentiable)."""
    logvar = max_logvar - F.softplus(max_logvar - raw)
    return min_logvar + F.softplus(logvar - min_logvar)


class EnsembleNet(nn.Module):
    """E independent MLPs over the same input/output sizes, stored as stacked tensors."""

    def __init__(self, members: int, in_dim: int, out_dim: int, hidden: int = 200, layers: int = 4) -> None:
        super().__init__()
        self.members, self.in_dim, self.out_dim = members, in_dim, out_dim
        sizes = [in_dim] + [hidden] * layers + [2 * out_dim]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            w = torch.empty(members, fan_in, fan_out)
            truncated_normal_(w, 1.0 / (2.0 * math.sqrt(fan_in)))
            self.weights.append(nn.Parameter(w))
            self.biases.append(nn.Parameter(torch.zeros(members, 1, fan_out)))
        self.max_logvar = nn.Parameter(torch.full((out_dim,), 0.5))
        self.min_logvar = nn.Parameter(torch.full((out_dim,), -10.0))

    @property
    def num_layers(self) -> int:
        return len(self.weights)

    def _first_layer_shared(self, x: Tensor) -> Tensor:
        """First layer for one input batch (B, in) shared by all members -> (E, B, hidden)."""
        w = self.weights[0]  # (E, in, H)
        e, fan_in, hidden = w.shape
        flat = w.permute(1, 0, 2).reshape(fan_in, e * hidden)
        h = torch.addmm(self.biases[0].reshape(1, e * hidden), x, flat)  # (B, E·H)
        return h.view(x.shape[0], e, hidden).transpose(0, 1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and clamped log-variance, (E, B, D) each.

        ``x`` is (E, B, in) — a different batch per member, as in bootstrap training — or
        (B, in), the same rows for every member.
        """
        if x.dim() == 2:
            h = F.silu(self._first_layer_shared(x))
            start = 1
        else:
            h = x
            start = 0
        last = self.num_layers - 1
        for i in range(start, last):
            h = F.silu(torch.baddbmm(self.biases[i], h, self.weights[i]))
        out = torch.baddbmm(self.biases[last], h, self.weights[last])
        mean, raw_logvar = out.split(self.out_dim, dim=-1)
        return mean, soft_clamp(raw_logvar, self.min_logvar, self.max_logvar)
