"""mopo_kit.testing's contract check passes real estimators and catches broken ones."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mopo_kit.plugins import get_registry
from mopo_kit.testing import check_uncertainty_estimator
from mopo_kit.types import EnsemblePrediction
from mopo_kit.uncertainty.base import ClosedFormEstimator
from mopo_kit.uncertainty.builtin import MaxAleatoric


@pytest.fixture(scope="module")
def toy_fit():
    """A tiny fitted model and its data, for estimators that fit (closed-form ones ignore it)."""
    from mopo_kit.testing_models import linear_system_dataset, tiny_ensemble

    data = linear_system_dataset(n=800, obs_dim=5, act_dim=2, seed=0)
    model = tiny_ensemble(obs_dim=5, act_dim=2, max_epochs=5)
    model.fit(data)
    return data, model


@pytest.mark.parametrize("name", get_registry().names("uncertainty"))
def test_registered_estimators_meet_the_contract(name, toy_fit):
    estimator = get_registry().create("uncertainty", name)
    estimator.fit(*toy_fit)
    check_uncertainty_estimator(estimator)


class _Negative(ClosedFormEstimator):
    def __call__(self, obs, act, pred):
        return -pred.var.sum(dim=(0, 2))


class _WrongShape(ClosedFormEstimator):
    def __call__(self, obs, act, pred):
        return pred.var.sum(dim=0)


class _Float32Only(ClosedFormEstimator):
    def __call__(self, obs, act, pred):
        return pred.var.sum(dim=(0, 2)).float()


class _Noisy(ClosedFormEstimator):
    calls = 0

    def __call__(self, obs, act, pred):
        type(self).calls += 1  # ignores the seed: differs call to call
        return pred.var.sum(dim=(0, 2)) + type(self).calls


class _NaN(ClosedFormEstimator):
    def __call__(self, obs, act, pred):
        return pred.var.sum(dim=(0, 2)) / 0 * 0


@pytest.mark.parametrize(
    "bad,message",
    [
        (_Negative(), "negative"),
        (_WrongShape(), "output shape"),
        (_Float32Only(), "dtype"),
        (_Noisy(), "not deterministic"),
        (_NaN(), "non-finite"),
    ],
)
def test_contract_catches_broken_estimators(bad, message):
    with pytest.raises(AssertionError, match=message):
        check_uncertainty_estimator(bad)


def test_max_aleatoric_matches_the_original_numpy_formula():
    """``np.amax(np.linalg.norm(ensemble_model_stds, axis=2), axis=0)`` (mopo/models/fake_env.py)."""
    gen = torch.Generator().manual_seed(0)
    pred = EnsemblePrediction.random(members=7, batch=500, out_dim=18, generator=gen)
    ours = MaxAleatoric()(torch.zeros(500, 17), torch.zeros(500, 6), pred).numpy()
    stds = np.sqrt(pred.var.numpy().astype(np.float64))
    original = np.amax(np.linalg.norm(stds, axis=2), axis=0)
    np.testing.assert_allclose(ours, original, rtol=1e-5, atol=1e-5)


def test_max_aleatoric_uses_non_elites_and_reward_dim():
    pred = EnsemblePrediction.random(members=7, batch=3, out_dim=4, elites=5)
    var = torch.full_like(pred.var, 1e-4)
    var[6, :, -1] = 4.0  # a non-elite member, reward dim only: std 2
    u = MaxAleatoric()(None, None, EnsemblePrediction(pred.mean, var, pred.elites))
    assert torch.allclose(u, torch.full((3,), (4.0 + 3e-4) ** 0.5))
