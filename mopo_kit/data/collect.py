"""Collect D4RL-style transition datasets from the real environment.

Many environments are stepped in lockstep so the policy runs batched; every episode's rows are
written contiguously (the D4RL layout), with ``terminals`` for true terminations and ``timeouts``
for the 1,000-step limit (and for the one episode per env cut when the step budget is reached).
Everything random comes from ``seed``, so the same seed regenerates the same dataset.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from mopo_kit.data.dataset import TransitionDataset
from mopo_kit.envs.tasks import Task
from mopo_kit.progress import progress_bar

#: Maps a batch of observations (n, obs_dim) and a NumPy generator to actions in [-1, 1].
BatchPolicy = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def uniform_random_policy(act_dim: int) -> BatchPolicy:
    """D4RL's 'random': actions uniform in [-1, 1] (``env.action_space.sample()``)."""

    def policy(obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return rng.uniform(-1.0, 1.0, size=(obs.shape[0], act_dim)).astype(np.float32)

    return policy


def actor_policy(actor, seed: int, deterministic: bool = False) -> BatchPolicy:
    """A behavior actor (see :mod:`mopo_kit.data.actor`) as a batched policy; D4RL samples actions."""
    import torch

    generator = torch.Generator().manual_seed(seed)

    def policy(obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return actor.act_numpy(obs, deterministic=deterministic, generator=generator)

    return policy


class _EpisodeBuffer:
    """Rows of one env's current episode, preallocated to the time limit."""

    def __init__(self, task: Task) -> None:
        cap = task.max_episode_steps
        self.obs = np.empty((cap, task.obs_dim), np.float32)
        self.next_obs = np.empty((cap, task.obs_dim), np.float32)
        self.act = np.empty((cap, task.act_dim), np.float32)
        self.rew = np.empty(cap, np.float32)
        self.term = np.zeros(cap, bool)
        self.trunc = np.zeros(cap, bool)
        self.size = 0

    def take(self, limit: int) -> dict[str, np.ndarray]:
        n = min(self.size, limit)
        out = {
            "observations": self.obs[:n].copy(),
            "next_observations": self.next_obs[:n].copy(),
            "actions": self.act[:n].copy(),
            "rewards": self.rew[:n].copy(),
            "terminals": self.term[:n].copy(),
            "timeouts": self.trunc[:n].copy(),
        }
        if n and not (out["terminals"][-1] or out["timeouts"][-1]):
            out["timeouts"][-1] = True  # cut by the step budget: a truncation, not a termination
        self.size = 0
        return out


def collect_transitions(
    task: Task,
    policy: BatchPolicy,
    steps: int,
    seed: int,
    num_envs: int = 16,
    description: str = "collect",
) -> TransitionDataset:
    """Run ``policy`` in ``num_envs`` real environments until ``steps`` transitions are stored."""
    if steps <= 0:
        raise ValueError("steps must be positive")
    rng = np.random.default_rng(seed)
    envs = [task.make_env() for _ in range(num_envs)]
    space = envs[0].action_space
    low, high = space.low.astype(np.float32), space.high.astype(np.float32)
    buffers = [_EpisodeBuffer(task) for _ in envs]
    obs = np.stack([env.reset(seed=int(rng.integers(2**31)))[0] for env in envs]).astype(np.float32)
    episodes: list[dict[str, np.ndarray]] = []
    stored = 0
    try:
        with progress_bar(description, total=steps) as bar:
            while stored < steps:
                actions = np.clip(policy(obs, rng), -1.0, 1.0).astype(np.float32)
                env_actions = low + (actions + 1.0) * 0.5 * (high - low)
                for i, env in enumerate(envs):
                    next_obs, reward, terminated, truncated, _ = env.step(env_actions[i])
                    buf = buffers[i]
                    k = buf.size
                    buf.obs[k], buf.act[k], buf.rew[k] = obs[i], env_actions[i], reward
                    buf.next_obs[k] = next_obs
                    buf.term[k], buf.trunc[k] = terminated, truncated and not terminated
                    buf.size = k + 1
                    if terminated or truncated:
                        episode = buf.take(steps - stored)
                        stored += episode["rewards"].size
                        bar.advance(episode["rewards"].size)
                        episodes.append(episode)
                        next_obs, _ = env.reset(seed=int(rng.integers(2**31)))
                        if stored >= steps:
                            break
                    obs[i] = next_obs
            # the budget is reached; partial episodes are not stored (they would exceed it)
    finally:
        for env in envs:
            env.close()
    arrays = {key: np.concatenate([ep[key] for ep in episodes]) for key in episodes[0]}
    return TransitionDataset.from_arrays(**arrays, source=f"{task.name} ({description})")
