"""The example plugin meets the estimator contract and is found through its entry point."""

import torch
from mopo_kit_example import EliteMaxStd

from mopo_kit.plugins import get_registry
from mopo_kit.testing import check_uncertainty_estimator
from mopo_kit.types import EnsemblePrediction


def test_meets_the_estimator_contract():
    check_uncertainty_estimator(EliteMaxStd())


def test_is_registered_through_the_entry_point():
    component = get_registry().get("uncertainty", "elite_max_std")
    assert component.plugin == "example"
    assert component.version == "0.1.0"
    assert isinstance(component.create(), EliteMaxStd)


def test_ignores_non_elite_members():
    pred = EnsemblePrediction.random(members=7, batch=4, out_dim=3, elites=5)
    var = pred.var.clone()
    var[6] = 1e6  # a wild non-elite member
    u = EliteMaxStd()(torch.zeros(4, 2), torch.zeros(4, 1), EnsemblePrediction(pred.mean, var, pred.elites))
    expected = var[:5].sqrt().norm(dim=-1).amax(dim=0)
    assert torch.allclose(u, expected)
    assert (u < 1e3).all()
