"""The GP estimator: contract, growth out of distribution, registration."""

from __future__ import annotations

import pytest
import torch
from mopo_kit_gp import GPError

from mopo_kit.plugins import get_registry
from mopo_kit.testing import check_uncertainty_estimator
from mopo_kit.testing_models import linear_system_dataset, tiny_ensemble


@pytest.fixture(scope="module")
def fitted_gp():
    data = linear_system_dataset(n=1500, obs_dim=5, act_dim=2, seed=0)
    model = tiny_ensemble(obs_dim=5, act_dim=2, max_epochs=20)
    model.fit(data)
    gp = GPError(inducing_points=32, iterations=150)
    gp.fit(data, model)
    return gp, model


def test_meets_the_estimator_contract(fitted_gp):
    check_uncertainty_estimator(fitted_gp[0], obs_dim=5, act_dim=2)


def test_grows_out_of_distribution(fitted_gp):
    gp, model = fitted_gp
    near = linear_system_dataset(n=500, obs_dim=5, act_dim=2, seed=3)
    far = linear_system_dataset(n=500, obs_dim=5, act_dim=2, seed=4, obs_scale=5.0)
    u = {}
    for name, d in (("near", near), ("far", far)):
        obs, act = torch.from_numpy(d.observations), torch.from_numpy(d.actions)
        u[name] = gp(obs, act, model.predict(obs, act)).mean().item()
    assert u["far"] > 2 * u["near"], u


def test_unfitted_estimator_says_so():
    obs, act = torch.zeros(3, 5), torch.zeros(3, 2)
    from mopo_kit.types import EnsemblePrediction

    with pytest.raises(Exception, match="must be fitted"):
        GPError()(obs, act, EnsemblePrediction.random(batch=3, out_dim=6))


def test_registered_through_its_entry_point():
    component = get_registry().get("uncertainty", "gp")
    assert component.plugin == "gp" and component.version == "0.1.0"
