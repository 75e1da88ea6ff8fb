"""The penalized model MDP: both env checkers, SB3 conventions, penalties and sampling rules."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from mopo_kit.envs.model_env import ModelStep, PenalizedModelVecEnv, StartStates
from mopo_kit.testing import make_toy_penalized_env
from mopo_kit.testing_models import linear_system_dataset
from mopo_kit.types import EnsemblePrediction
from mopo_kit.dynamics.gaussian_ensemble import EnsembleConfig, GaussianEnsemble
from mopo_kit.uncertainty.builtin import MaxAleatoric, Zero


def test_gymnasium_and_sb3_env_checkers_pass():
    gym_check_env(make_toy_penalized_env(seed=0), skip_render_check=True)
    sb3_check_env(make_toy_penalized_env(seed=0), warn=True)


def test_episode_is_truncated_at_the_horizon_with_raw_reward_and_penalty_in_info():
    env = make_toy_penalized_env(seed=0, horizon=4, lam=2.0)
    obs, _ = env.reset(seed=1)
    for t in range(4):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        assert not terminated
        assert info["penalty"] > 0
        assert reward == pytest.approx(info["raw_reward"] - 2.0 * info["penalty"], rel=1e-5, abs=1e-5)
        assert truncated == (t == 3)


class _FixedModel:
    """A 'model' with known Gaussians: member k predicts mean k, std 0.01 (elites 1 and 3)."""

    def predict(self, obs, act):
        b = obs.shape[0]
        mean = torch.arange(5.0).view(5, 1, 1).expand(5, b, obs.shape[1] + 1).clone()
        return EnsemblePrediction(mean, torch.full_like(mean, 1e-4), torch.tensor([1, 3]))


def test_samples_come_from_elites_only_and_penalty_uses_all_members():
    step = ModelStep(_FixedModel(), MaxAleatoric(), lam=1.0, termination_fn=lambda o, a, n: torch.zeros(len(o), dtype=torch.bool))
    result = step(torch.zeros(4000, 2), torch.zeros(4000, 1))
    picked = result.next_obs[:, 0].round()
    assert set(picked.unique().tolist()) == {1.0, 3.0}
    assert 0.45 < (picked == 1).float().mean() < 0.55
    assert torch.allclose(result.penalty, torch.full((4000,), 0.01 * 3**0.5), rtol=1e-4)
    assert torch.allclose(result.reward, result.raw_reward - result.penalty)


class _PredictOnly:
    """The same ensemble seen through ``predict`` alone, as a plugin model without ``predict_rows``."""

    def __init__(self, model):
        self.predict = model.predict


def test_a_penalty_that_reads_no_prediction_runs_only_each_rows_sampled_member():
    model = GaussianEnsemble(2, 1, EnsembleConfig(members=5, elites=3, seed=0))
    never = lambda o, a, n: torch.zeros(len(o), dtype=torch.bool)  # noqa: E731
    obs, act = torch.randn(700, 2), torch.randn(700, 1)
    predicted = []
    every_member = model.predict
    model.predict = lambda o, a: predicted.append(len(o)) or every_member(o, a)

    mbpo = ModelStep(model, Zero(), lam=1.0, termination_fn=never, generator=torch.Generator().manual_seed(3))
    assert mbpo.samples_only
    lean = mbpo(obs, act)
    assert predicted == []  # no member's forward but the sampled one's
    assert torch.equal(lean.penalty, torch.zeros(700)) and torch.equal(lean.reward, lean.raw_reward)

    reference = ModelStep(_PredictOnly(model), Zero(), lam=1.0, termination_fn=never, generator=torch.Generator().manual_seed(3))
    assert not reference.samples_only
    full = reference(obs, act)
    assert predicted == [700]
    torch.testing.assert_close(lean.next_obs, full.next_obs, rtol=1e-6, atol=1e-6)  # same draws, same Gaussians
    torch.testing.assert_close(lean.raw_reward, full.raw_reward, rtol=1e-6, atol=1e-6)

    assert ModelStep(model, MaxAleatoric(), lam=0.0, termination_fn=never).samples_only  # λ = 0: no penalty to compute
    assert not ModelStep(model, MaxAleatoric(), lam=1.0, termination_fn=never).samples_only  # reads every member


def test_vec_env_resets_finished_rows_with_sb3_conventions():
    data = linear_system_dataset(n=300, obs_dim=2, act_dim=1)
    done_on_big = lambda o, a, n: n[:, 0].abs() > 2.5  # noqa: E731
    step = ModelStep(_FixedModel(), MaxAleatoric(), lam=0.5, termination_fn=done_on_big)
    env = PenalizedModelVecEnv(step, data, horizon=3, num_envs=64)
    env.seed(0)
    obs = env.reset()
    assert obs.shape == (64, 2)
    ever_done = np.zeros(64, bool)
    for t in range(3):
        obs, rewards, dones, infos = env.step(np.zeros((64, 1), np.float32))
        assert rewards.shape == (64,) and dones.dtype == bool
        for i in np.flatnonzero(dones):
            assert "terminal_observation" in infos[i]
            truncated = infos[i]["TimeLimit.truncated"]
            assert truncated == (abs(infos[i]["terminal_observation"][0]) <= 2.5)
        assert all("penalty" in info and "raw_reward" in info for info in infos)
        if t < 2:
            ever_done |= dones
    assert ever_done.any() and not ever_done.all()
    # rows never reset before reach the horizon on step 3 and end there
    assert dones[~ever_done].all()


def test_start_states_are_dataset_observations():
    data = linear_system_dataset(n=50, obs_dim=2, act_dim=1)
    starts = StartStates(data).sample(200).numpy()
    rows = {tuple(r) for r in data.observations.tolist()}
    assert all(tuple(r) in rows for r in starts.tolist())
