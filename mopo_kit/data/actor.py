"""A stand-alone tanh-Gaussian actor that loads SB3 SAC actor weights.

Behavior policies are shipped as the SAC actor's weights only (``latent_pi``, ``mu``,
``log_std``), a few hundred KB each. This module runs them batched for data collection without
building a full SB3 model, and loads them with ``torch.load(weights_only=True)`` so a policy file
can never execute code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mopo_kit.fileio import atomic_write_bytes

LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0  # SB3 SAC's clamp


class TanhGaussianActor(nn.Module):
    """SB3's SAC actor (ReLU MLP, tanh-squashed Gaussian) with the same parameter names."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: tuple[int, ...] = (256, 256)) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        last = obs_dim
        for width in hidden:
            layers += [nn.Linear(last, width), nn.ReLU()]
            last = width
        self.latent_pi = nn.Sequential(*layers)
        self.mu = nn.Linear(last, act_dim)
        self.log_std = nn.Linear(last, act_dim)
        self.obs_dim, self.act_dim, self.hidden = obs_dim, act_dim, tuple(hidden)

    @torch.no_grad()
    def act(
        self,
        obs: torch.Tensor,
        deterministic: bool = False,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Actions in [-1, 1] for a batch of observations (B, obs_dim)."""
        latent = self.latent_pi(obs)
        mean = self.mu(latent)
        if deterministic:
            return torch.tanh(mean)
        log_std = self.log_std(latent).clamp(LOG_STD_MIN, LOG_STD_MAX)
        device = generator.device if generator is not None else torch.device("cpu")
        noise = torch.randn(mean.shape, generator=generator, dtype=mean.dtype, device=device).to(mean.device)
        return torch.tanh(mean + noise * log_std.exp())

    def act_numpy(
        self, obs: np.ndarray, deterministic: bool = False, generator: torch.Generator | None = None
    ) -> np.ndarray:
        """:meth:`act` on a NumPy batch (float32 in, float32 out), computed on the actor's device."""
        tensor = torch.as_tensor(np.asarray(obs, dtype=np.float32), device=self.mu.weight.device)
        return self.act(tensor, deterministic, generator).cpu().numpy()


def save_actor(actor_state: dict[str, torch.Tensor], path: Path, meta: dict[str, Any]) -> None:
    """Save SB3 actor weights (+ JSON metadata inside the same file), atomically."""
    import io

    buffer = io.BytesIO()
    state = {k: v.detach().cpu().clone() for k, v in actor_state.items()}
    torch.save({"state_dict": state, "meta_json": json.dumps(meta, sort_keys=True)}, buffer)
    atomic_write_bytes(Path(path), buffer.getvalue())


def load_actor(path: Path, device: str | torch.device = "cpu") -> tuple[TanhGaussianActor, dict[str, Any]]:
    """Load an actor saved by :func:`save_actor` onto ``device`` (never unpickles code)."""
    device = torch.device(device)
    blob = torch.load(Path(path), map_location=device, weights_only=True)
    state = {k: v.float() for k, v in blob["state_dict"].items()}
    meta = json.loads(blob["meta_json"])
    hidden = tuple(
        int(state[f"latent_pi.{2 * i}.weight"].shape[0])
        for i in range(sum(1 for k in state if k.startswith("latent_pi.") and k.endswith(".weight")))
    )
    obs_dim = int(state["latent_pi.0.weight"].shape[1])
    act_dim = int(state["mu.weight"].shape[0])
    actor = TanhGaussianActor(obs_dim, act_dim, hidden)
    actor.to(device).load_state_dict(state)
    actor.eval()
    return actor, meta
