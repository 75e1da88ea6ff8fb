"""Run whole episodes of a batched policy in the real environment (evaluation of behavior policies)."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

import numpy as np
import torch

from mopo_kit.envs.tasks import Task

BatchPolicy = Callable[[np.ndarray], np.ndarray]


def episode_returns(task: Task, policy: BatchPolicy, episodes: int, seed: int) -> np.ndarray:
    """Undiscounted returns of ``episodes`` episodes, stepped in lockstep so the policy is batched.

    ``policy`` maps observations (n, obs_dim) to actions in [-1, 1] (n, act_dim); actions are
    rescaled to the env's action bounds here.
    """
    return episode_returns_and_terms(task, policy, episodes, seed)[0]


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run the block's torch CPU work on one thread, then give the caller its thread count back.

    Why: a batched matrix product can round differently with 1 and with 2 threads (measured:
    up to 8e-8 on a 10 × 256 SAC actor layer), and the MuJoCo dynamics grow that last bit into
    other episodes — the same deterministic policy, evaluated at another thread count, scored
    0.2–13 % differently on halfcheetah-jump (docs/ood.md). One thread makes an evaluation's
    numbers independent of the caller's thread count; the policy's batch is small, so it costs
    little.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def episode_returns_and_terms(task: Task, policy: BatchPolicy, episodes: int, seed: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """:func:`episode_returns` and, per episode, the sum of every numeric ``reward_*`` term in ``info``.

    The terms say what a return is made of (e.g. halfcheetah-jump: running vs height); an env
    that reports none gives an empty dict. The policy runs on one torch thread
    (:func:`one_torch_thread`), so the returns do not depend on the caller's thread count.
    """
    envs = [task.make_env() for _ in range(episodes)]
    try:
        space = envs[0].action_space
        low, high = space.low.astype(np.float32), space.high.astype(np.float32)
        obs = np.stack([env.reset(seed=seed + i)[0] for i, env in enumerate(envs)]).astype(np.float32)
        returns = np.zeros(episodes, dtype=np.float64)
        terms: dict[str, np.ndarray] = {}
        alive = np.ones(episodes, dtype=bool)
        with one_torch_thread():
            while alive.any():
                idx = np.flatnonzero(alive)
                actions = policy(obs[idx])
                actions = low + (np.clip(actions, -1.0, 1.0) + 1.0) * 0.5 * (high - low)
                for row, i in enumerate(idx):
                    next_obs, reward, terminated, truncated, info = envs[i].step(actions[row])
                    returns[i] += float(reward)
                    for key, value in info.items():
                        if key.startswith("reward_") and isinstance(value, (int, float, np.floating)):
                            terms.setdefault(key, np.zeros(episodes, dtype=np.float64))[i] += float(value)
                    obs[i] = next_obs
                    if terminated or truncated:
                        alive[i] = False
        return returns, terms
    finally:
        for env in envs:
            env.close()
