"""Termination functions for model rollouts: batched, in torch, on *predicted* next states.

Each function maps ``(obs, act, next_obs)`` with shapes (B, obs_dim), (B, act_dim), (B, obs_dim)
to a bool tensor (B,) that is True where the rollout must stop. They mirror the ``static_fns`` of
the original MOPO code (``mopo/static/*.py``, copied from MBPO); see docs/design.md for the one
deliberate deviation (hopper).
"""

from __future__ import annotations

from typing import Callable

from torch import Tensor

TerminationFn = Callable[[Tensor, Tensor, Tensor], Tensor]


def never_done(obs: Tensor, act: Tensor, next_obs: Tensor) -> Tensor:
    """HalfCheetah (and halfcheetah-jump): rollouts never terminate, as in MOPO."""
    return next_obs.new_zeros(next_obs.shape[0], dtype=bool)


def hopper_done(obs: Tensor, act: Tensor, next_obs: Tensor) -> Tensor:
    """Hopper: unhealthy when z <= 0.7, |angle| >= 0.2, any |s'_i| >= 100 (i >= 1) or non-finite.

    Deviation from MOPO: the original ``np.abs(next_obs[:, 1:] < 100)`` takes the absolute value
    of a boolean, so it only checks ``s' < 100``. We check ``|s'| < 100`` as Gymnasium's
    Hopper-v5 ``healthy_state_range`` does (and mbrl-lib). Real data never gets near ±100
    (velocities are clipped to ±10), so the two differ only on diverged model predictions, where
    stopping the rollout is the intent. Use :func:`hopper_done_mopo_original` to reproduce MOPO
    bit for bit.
    """
    height = next_obs[:, 0]
    angle = next_obs[:, 1]
    healthy = (
        next_obs.isfinite().all(dim=-1)
        & (next_obs[:, 1:].abs() < 100).all(dim=-1)
        & (height > 0.7)
        & (angle.abs() < 0.2)
    )
    return ~healthy


def hopper_done_mopo_original(obs: Tensor, act: Tensor, next_obs: Tensor) -> Tensor:
    """Hopper exactly as MOPO/MBPO/OfflineRL-Kit wrote it, bug included (checks ``s' < 100``)."""
    height = next_obs[:, 0]
    angle = next_obs[:, 1]
    healthy = (
        next_obs.isfinite().all(dim=-1)
        & (next_obs[:, 1:] < 100).all(dim=-1)
        & (height > 0.7)
        & (angle.abs() < 0.2)
    )
    return ~healthy


def walker2d_done(obs: Tensor, act: Tensor, next_obs: Tensor) -> Tensor:
    """Walker2d: unhealthy unless 0.8 < z < 2.0 and -1 < angle < 1 (MOPO's static fn)."""
    height = next_obs[:, 0]
    angle = next_obs[:, 1]
    healthy = (height > 0.8) & (height < 2.0) & (angle > -1.0) & (angle < 1.0)
    return ~healthy


def ant_done(obs: Tensor, act: Tensor, next_obs: Tensor) -> Tensor:
    """Ant (and ant-angle): unhealthy unless finite and 0.2 <= torso z <= 1.0 (obs[0] = z)."""
    height = next_obs[:, 0]
    healthy = next_obs.isfinite().all(dim=-1) & (height >= 0.2) & (height <= 1.0)
    return ~healthy


#: halfcheetah-jump (MOPO's ``static/halfcheetahjump.py``): never done, like halfcheetah.
halfcheetah_jump_done: TerminationFn = never_done
#: ant-angle (MOPO's ``static/antangle.py``): the ant's check, same body and healthy range.
ant_angle_done: TerminationFn = ant_done
