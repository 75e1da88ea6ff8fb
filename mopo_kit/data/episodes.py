"""Run whole episodes of a batched policy in the real environment (evaluation of behavior policies)."""

from __future__ import annotations

from typing import Callable

import numpy as np

from mopo_kit.envs.tasks import Task

BatchPolicy = Callable[[np.ndarray], np.ndarray]


def episode_returns(task: Task, policy: BatchPolicy, episodes: int, seed: int) -> np.ndarray:
    """Undiscounted returns of ``episodes`` episodes, stepped in lockstep so the policy is batched.

    ``policy`` maps observations (n, obs_dim) to actions in [-1, 1] (n, act_dim); actions are
    rescaled to the env's action bounds here.
    """
    envs = [task.make_env() for _ in range(episodes)]
    try:
        space = envs[0].action_space
        low, high = space.low.astype(np.float32), space.high.astype(np.float32)
        obs = np.stack([env.reset(seed=seed + i)[0] for i, env in enumerate(envs)]).astype(np.float32)
        returns = np.zeros(episodes, dtype=np.float64)
        alive = np.ones(episodes, dtype=bool)
        while alive.any():
            idx = np.flatnonzero(alive)
            actions = policy(obs[idx])
            actions = low + (np.clip(actions, -1.0, 1.0) + 1.0) * 0.5 * (high - low)
            for row, i in enumerate(idx):
                next_obs, reward, terminated, truncated, _ = envs[i].step(actions[row])
                returns[i] += float(reward)
                obs[i] = next_obs
                if terminated or truncated:
                    alive[i] = False
        return returns
    finally:
        for env in envs:
            env.close()
