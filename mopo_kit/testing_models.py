"""Small fitted models for tests and plugin authors (tiny networks, seconds to train)."""

from __future__ import annotations

import numpy as np

from mopo_kit.data.dataset import TransitionDataset
from mopo_kit.dynamics.gaussian_ensemble import EnsembleConfig, GaussianEnsemble


def linear_system_dataset(
    n: int = 2000,
    obs_dim: int = 3,
    act_dim: int = 2,
    seed: int = 0,
    noise: float = 0.01,
    system_seed: int = 0,
    obs_scale: float = 1.0,
) -> TransitionDataset:
    """s' = A s + B a + noise, r = w·s − 0.1‖a‖²: smooth dynamics a small ensemble learns in seconds.

    Observations are drawn from N(0, obs_scale²) per row (not trajectories): enough for one-step
    models; ``obs_scale > 1`` gives out-of-distribution states of the *same* system
    (``system_seed`` fixes A, B and w, ``seed`` the samples).
    """
    sys_rng = np.random.default_rng(system_seed)
    a_mat = np.eye(obs_dim) * 0.9 + 0.05 * sys_rng.standard_normal((obs_dim, obs_dim))
    b_mat = 0.3 * sys_rng.standard_normal((act_dim, obs_dim))
    w = sys_rng.standard_normal(obs_dim)
    rng = np.random.default_rng(seed + 1_000_003)
    obs = (obs_scale * rng.standard_normal((n, obs_dim))).astype(np.float32)
    act = rng.uniform(-1, 1, (n, act_dim)).astype(np.float32)
    next_obs = obs @ a_mat.T + act @ b_mat + noise * rng.standard_normal((n, obs_dim))
    rewards = obs @ w - 0.1 * (act**2).sum(axis=1)
    timeouts = np.zeros(n, bool)
    timeouts[np.arange(n) % 50 == 49] = True
    return TransitionDataset.from_arrays(
        observations=obs,
        actions=act,
        rewards=rewards,
        next_observations=next_obs,
        terminals=np.zeros(n, bool),
        timeouts=timeouts,
        source="linear-system",
    )


def tiny_ensemble(obs_dim: int = 3, act_dim: int = 2, **overrides) -> GaussianEnsemble:
    """A 5-member, 2×32 ensemble with MOPO's training rules (for fast tests)."""
    params = dict(members=5, elites=3, hidden=32, layers=2, weight_decays=(2.5e-5, 5e-5, 1e-4), batch_size=64, seed=0)
    params.update(overrides)
    return GaussianEnsemble(obs_dim, act_dim, EnsembleConfig(**params))
