"""Tasks: termination functions agree with the real environments; reference scores normalize."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mopo_kit.envs import termination as term
from mopo_kit.plugins import get_registry


def _random_transitions(task, steps: int, seed: int):
    """Random-action transitions with the env's own 'terminated' flag."""
    env = task.make_env()
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    rows = []
    for _ in range(steps):
        act = rng.uniform(-1, 1, task.act_dim).astype(np.float32)
        next_obs, _, terminated, truncated, _ = env.step(act)
        rows.append((obs, act, next_obs, terminated))
        obs = next_obs
        if terminated or truncated:
            obs, _ = env.reset(seed=int(rng.integers(1 << 30)))
    env.close()
    o, a, n, d = (np.array(x) for x in zip(*rows))
    return torch.as_tensor(o, dtype=torch.float32), torch.as_tensor(a), torch.as_tensor(n, dtype=torch.float32), d


@pytest.mark.parametrize("name", ["hopper", "walker2d", "ant"])
def test_termination_matches_real_env(name):
    task = get_registry().create("task", name)
    obs, act, next_obs, env_done = _random_transitions(task, 1500, seed=1)
    predicted = task.termination_fn(obs, act, next_obs).numpy()
    assert predicted.dtype == bool and predicted.shape == env_done.shape
    assert env_done.sum() >= 5, "random actions should end some episodes"
    np.testing.assert_array_equal(predicted, env_done)


def test_halfcheetah_never_terminates():
    task = get_registry().create("task", "halfcheetah")
    wild = torch.full((4, 17), 1e6)
    assert not task.termination_fn(wild, torch.zeros(4, 6), wild).any()


def test_hopper_fixes_the_abs_bug_of_the_original():
    healthy = torch.tensor([[1.2, 0.0] + [0.0] * 9])
    diverged = healthy.clone()
    diverged[0, 5] = -500.0  # a blown-up velocity, far below -100
    act = torch.zeros(1, 3)
    assert not term.hopper_done(healthy, act, healthy).item()
    assert term.hopper_done(healthy, act, diverged).item()
    assert not term.hopper_done_mopo_original(healthy, act, diverged).item()  # the original misses it
    nan = healthy.clone()
    nan[0, 3] = float("nan")
    assert term.hopper_done(healthy, act, nan).item()


@pytest.mark.parametrize("name,obs_dim,act_dim", [("halfcheetah", 17, 6), ("hopper", 11, 3), ("walker2d", 17, 6), ("ant", 27, 8)])
def test_env_dims_match_task(name, obs_dim, act_dim):
    task = get_registry().create("task", name)
    env = task.make_env()
    obs, _ = env.reset(seed=0)
    assert (task.obs_dim, task.act_dim) == (obs_dim, act_dim) == (obs.shape[0], env.action_space.shape[0])
    assert env.spec.max_episode_steps == 1000
    env.close()


def test_normalized_score_uses_d4rl_references():
    task = get_registry().create("task", "hopper")
    assert task.normalized_score(task.ref_min_score) == pytest.approx(0.0)
    assert task.normalized_score(task.ref_max_score) == pytest.approx(100.0)
    assert task.normalized_score(3234.3) == pytest.approx(100.0)
