"""The rewards of MOPO's out-of-distribution tasks, ``halfcheetah-jump`` and ``ant-angle``.

The paper (§5.2) relabels the replay buffer of SAC trained on the *original* task with a new
reward; the formulas are those of co-author Garrett Thomas's environment code
(gwthomas/force ``env/mujoco/half_cheetah_vel_jump.py`` and ``env/mujoco/ant_angle.py``, see
docs/ood.md). Each reward is a pure function of the simulator state around one step, so the real
environment (evaluation) and the dataset collection compute it the same way: a
:class:`gymnasium.Wrapper` around the Gymnasium v5 environment replaces the reward.

Positions are read from ``data.qpos``, never from ``data.xpos``: after ``mj_step`` the bodies'
Cartesian positions still describe the state before the last integration (one step behind), as
Gymnasium's v5 changelog notes for ``info["x_position"]``.
"""

from __future__ import annotations

import math
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np

#: halfcheetah-jump: the velocity term is capped at this speed (``goal_vel=3.0``).
JUMP_MAX_VELOCITY = 3.0
JUMP_HEIGHT_WEIGHT = 15.0
JUMP_CTRL_WEIGHT = 0.1

#: ant-angle: run towards 30° from the x axis (the top right corner).
ANGLE_GOAL = math.radians(30.0)
ANGLE_CTRL_WEIGHT = 0.5
#: Contact cost 5e-4 · Σ clip(cfrc_ext, −1, 1)²: the weight and range of the co-author's env,
#: which are also Ant-v5's defaults (``contact_cost_weight``, ``contact_force_range``).
ANGLE_CONTACT_WEIGHT = 5e-4
ANGLE_CONTACT_RANGE = (-1.0, 1.0)
#: Paid on every step, the terminal one included, as in the co-author's ``AntAngleEnv``
#: (Ant-v5 itself pays its healthy reward only while healthy).
ANGLE_HEALTHY_BONUS = 1.0


def jump_reward(qpos_before: np.ndarray, qpos_after: np.ndarray, action: np.ndarray, dt: float, z_init: float) -> float:
    """−0.1·‖a‖² + min(v_x, 3) + 15·(z − z_init); v_x = Δqpos[0]/dt, z = qpos[1] (HalfCheetah's rootz)."""
    return _total(jump_reward_terms(qpos_before, qpos_after, action, dt, z_init))


def jump_reward_terms(qpos_before: np.ndarray, qpos_after: np.ndarray, action: np.ndarray, dt: float, z_init: float) -> dict[str, float]:
    """:func:`jump_reward`'s three terms (they sum to it), for ``info`` — whether a policy runs or jumps."""
    v_x = (float(qpos_after[0]) - float(qpos_before[0])) / dt
    return {
        "reward_run": min(v_x, JUMP_MAX_VELOCITY),
        "reward_height": JUMP_HEIGHT_WEIGHT * (float(qpos_after[1]) - z_init),
        "reward_ctrl": -JUMP_CTRL_WEIGHT * float(np.sum(np.square(action, dtype=np.float64))),
    }


def contact_cost(cfrc_ext: np.ndarray) -> float:
    """5e-4 · Σ clip(cfrc_ext, −1, 1)² over every body (the world's row is always zero)."""
    clipped = np.clip(np.asarray(cfrc_ext, dtype=np.float64), *ANGLE_CONTACT_RANGE)
    return ANGLE_CONTACT_WEIGHT * float(np.sum(np.square(clipped)))


def angle_reward(qpos_before: np.ndarray, qpos_after: np.ndarray, action: np.ndarray, dt: float, cfrc_ext: np.ndarray) -> float:
    """v_xy·(cos 30°, sin 30°) − 0.5·‖a‖² − contact cost + 1; v_xy = Δqpos[0:2]/dt (the torso's root joint)."""
    return _total(angle_reward_terms(qpos_before, qpos_after, action, dt, cfrc_ext))


def angle_reward_terms(qpos_before: np.ndarray, qpos_after: np.ndarray, action: np.ndarray, dt: float, cfrc_ext: np.ndarray) -> dict[str, float]:
    """:func:`angle_reward`'s four terms (they sum to it), for ``info``."""
    v_x = (float(qpos_after[0]) - float(qpos_before[0])) / dt
    v_y = (float(qpos_after[1]) - float(qpos_before[1])) / dt
    return {
        "reward_forward": v_x * math.cos(ANGLE_GOAL) + v_y * math.sin(ANGLE_GOAL),
        "reward_ctrl": -ANGLE_CTRL_WEIGHT * float(np.sum(np.square(action, dtype=np.float64))),
        "reward_contact": -contact_cost(cfrc_ext),
        "reward_healthy": ANGLE_HEALTHY_BONUS,
    }


def _total(terms: dict[str, float]) -> float:
    """The reward from its terms, added left to right (the same float as the written-out formula)."""
    total = 0.0
    for value in terms.values():
        total += value
    return total


class _RewardWrapper(gym.Wrapper):
    """Replaces the wrapped MuJoCo env's reward; the env's own reward stays in ``info["original_reward"]``.

    The new reward's terms go to ``info`` under ``reward_*`` keys (as Gymnasium's MuJoCo envs report
    theirs), replacing the wrapped env's, so evaluations can say what a return is made of.
    """

    def _data(self) -> Any:
        return self.env.unwrapped.data  # type: ignore[attr-defined]

    def _dt(self) -> float:
        return float(self.env.unwrapped.dt)  # type: ignore[attr-defined]


class JumpReward(_RewardWrapper):
    """halfcheetah-jump: :func:`jump_reward` with z_init = qpos[1] at reset; never terminates."""

    reward_fn = staticmethod(jump_reward)

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.z_init = 0.0

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        self.z_init = float(self._data().qpos[1])
        return obs, info

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        before = self._data().qpos.copy()
        obs, original, _, truncated, info = self.env.step(action)
        terms = jump_reward_terms(before, self._data().qpos, np.asarray(action), self._dt(), self.z_init)
        return obs, _total(terms), False, truncated, {**_without_terms(info), **terms, "original_reward": original}


class AngleReward(_RewardWrapper):
    """ant-angle: :func:`angle_reward` from qpos and ``data.cfrc_ext``; Ant-v5's termination is kept."""

    reward_fn = staticmethod(angle_reward)

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        before = self._data().qpos.copy()
        obs, original, terminated, truncated, info = self.env.step(action)
        data = self._data()
        terms = angle_reward_terms(before, data.qpos, np.asarray(action), self._dt(), data.cfrc_ext)
        return obs, _total(terms), terminated, truncated, {**_without_terms(info), **terms, "original_reward": original}


def _without_terms(info: dict[str, Any]) -> dict[str, Any]:
    """The wrapped env's info less its own ``reward_*`` terms (they describe the replaced reward)."""
    return {key: value for key, value in info.items() if not key.startswith("reward_")}


__all__ = [
    "AngleReward",
    "JumpReward",
    "angle_reward",
    "angle_reward_terms",
    "jump_reward_terms",
    "contact_cost",
    "jump_reward",
]
