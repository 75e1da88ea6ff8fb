"""Run whole episodes of a batched policy in the real environment (evaluation of behavior policies)."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import numpy as np
import torch

from mopo_kit.envs.tasks import Task

BatchPolicy = Callable[[np.ndarray], np.ndarray]


def episode_returns(task: Task, policy: BatchPolicy, episodes: int, seed: int) -> np.ndarray:
    """Undiscounted returns of ``episodes`` episodes, stepped in lockstep so the policy is batched.

    ``policy`` maps observations (n, obs_dim) to actions in [-1, 1] (n, act_dim); actions are
    rescaled to the env's action bounds here.
    """
    return run_episodes(task, policy, episodes, seed).returns


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


@dataclass
class EpisodeBatch:
    """What :func:`run_episodes` saw, one entry per episode."""

    returns: np.ndarray
    terms: dict[str, np.ndarray]  # per-episode sums of each numeric ``reward_*`` info term
    lengths: np.ndarray
    #: numeric scalar ``info`` values at reset and at the last step, other than the reward terms
    #: (e.g. Ant's ``x_position``/``y_position``: where the body went, which the return alone
    #: does not say — ant-angle pays for running at 30° but also, less, for running along x)
    first_info: dict[str, np.ndarray] = field(default_factory=dict)
    last_info: dict[str, np.ndarray] = field(default_factory=dict)


def run_episodes(task: Task, policy: BatchPolicy, episodes: int, seed: int) -> EpisodeBatch:
    """Whole episodes in lockstep (the policy sees one batch per step); episode ``i`` is reset with ``seed + i``.

    The policy runs on one torch thread (:func:`one_torch_thread`), so the returns do not depend
    on the caller's thread count; the per-episode sums of every numeric ``reward_*`` info term say
    what a return is made of (e.g. halfcheetah-jump: running vs height).
    """
    envs = [task.make_env() for _ in range(episodes)]
    try:
        space = envs[0].action_space
        low, high = space.low.astype(np.float32), space.high.astype(np.float32)
        resets = [env.reset(seed=seed + i) for i, env in enumerate(envs)]
        obs = np.stack([o for o, _ in resets]).astype(np.float32)
        returns = np.zeros(episodes, dtype=np.float64)
        lengths = np.zeros(episodes, dtype=np.int64)
        terms: dict[str, np.ndarray] = {}
        first_info: dict[str, np.ndarray] = {}
        last_info: dict[str, np.ndarray] = {}
        for i, (_, info) in enumerate(resets):
            _record_info(first_info, info, i, episodes)
        alive = np.ones(episodes, dtype=bool)
        with one_torch_thread():
            while alive.any():
                idx = np.flatnonzero(alive)
                actions = policy(obs[idx])
                actions = low + (np.clip(actions, -1.0, 1.0) + 1.0) * 0.5 * (high - low)
                for row, i in enumerate(idx):
                    next_obs, reward, terminated, truncated, info = envs[i].step(actions[row])
                    returns[i] += float(reward)
                    lengths[i] += 1
                    for key, value in info.items():
                        if key.startswith("reward_") and _is_number(value):
                            terms.setdefault(key, np.zeros(episodes, dtype=np.float64))[i] += float(value)
                    obs[i] = next_obs
                    if terminated or truncated:
                        alive[i] = False
                        _record_info(last_info, info, i, episodes)
        return EpisodeBatch(returns, terms, lengths, first_info, last_info)
    finally:
        for env in envs:
            env.close()


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, bool)


def _record_info(into: dict[str, np.ndarray], info: dict[str, Any], episode: int, episodes: int) -> None:
    for key, value in info.items():
        if not key.startswith("reward_") and _is_number(value):
            into.setdefault(key, np.full(episodes, np.nan))[episode] = float(value)
