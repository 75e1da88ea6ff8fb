"""Closed-form estimators against independent computations and their defining behaviour."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mopo_kit.types import EnsemblePrediction
from mopo_kit.uncertainty.builtin import MMD, EnsembleDisagreement, EnsembleStd, TotalVariation, Wasserstein


def _pred(mean, var, elites=None):
    mean = torch.as_tensor(mean, dtype=torch.float64)
    var = torch.as_tensor(var, dtype=torch.float64)
    return EnsemblePrediction(mean, var, torch.arange(mean.shape[0]) if elites is None else elites)


def _mixture(mean, var):
    m = mean.mean(0)
    return m, (var + mean**2).mean(0) - m**2


def test_wasserstein_matches_numpy_loops():
    rng = np.random.default_rng(0)
    mean, var = rng.normal(size=(7, 20, 5)), rng.uniform(0.01, 2, size=(7, 20, 5))
    got = Wasserstein()(None, None, _pred(mean, var)).numpy()
    mix_m, mix_v = _mixture(mean, var)
    want = np.array(
        [max(np.sqrt(((mean[i, b] - mix_m[b]) ** 2).sum() + ((np.sqrt(var[i, b]) - np.sqrt(mix_v[b])) ** 2).sum()) for i in range(7)) for b in range(20)]
    )
    np.testing.assert_allclose(got, want, rtol=1e-10)


def test_agreeing_members_have_zero_epistemic_penalty():
    mean = np.tile(np.random.default_rng(1).normal(size=(1, 4, 3)), (5, 1, 1))
    var = np.full((5, 4, 3), 0.3)
    pred = _pred(mean, var)
    for estimator in (EnsembleDisagreement(), EnsembleStd(), Wasserstein(), TotalVariation(), MMD()):
        assert torch.allclose(estimator(None, None, pred), torch.zeros(4, dtype=torch.float64), atol=1e-6), estimator


@pytest.mark.parametrize("estimator", [EnsembleDisagreement(), EnsembleStd(), Wasserstein(), TotalVariation(), MMD()])
def test_penalty_grows_as_members_spread_apart(estimator):
    rng = np.random.default_rng(2)
    base, direction = rng.normal(size=(1, 1, 3)), rng.normal(size=(5, 1, 3))
    values = []
    for spread in (0.05, 0.2, 0.5, 1.0):
        pred = _pred(base + spread * direction, np.full((5, 1, 3), 0.1))
        values.append(float(estimator(None, None, pred)[0]))
    assert all(a < b for a, b in zip(values, values[1:])), values


def test_total_variation_bound_is_above_numerical_tv_and_below_one():
    xs = np.linspace(-30, 30, 200_001)
    for mu, s1, s2 in [(0.0, 1.0, 2.0), (1.5, 0.5, 0.5), (4.0, 1.0, 3.0)]:
        pred = _pred([[[0.0]], [[mu]]], [[[s1**2]], [[s2**2]]])
        m_bar, v_bar = _mixture(np.array([[[0.0]], [[mu]]]), np.array([[[s1**2]], [[s2**2]]]))
        bound = float(TotalVariation()(None, None, pred)[0])
        tv = []
        for m, s in ((0.0, s1), (mu, s2)):
            p = np.exp(-((xs - m) ** 2) / (2 * s**2)) / (s * math.sqrt(2 * math.pi))
            q = np.exp(-((xs - m_bar[0, 0]) ** 2) / (2 * v_bar[0, 0])) / math.sqrt(2 * math.pi * v_bar[0, 0])
            tv.append(0.5 * np.trapezoid(np.abs(p - q), xs))
        assert max(tv) <= bound + 1e-6 <= 1.0 + 1e-6, (max(tv), bound)


def test_mmd_closed_form_matches_samples():
    gen = torch.Generator().manual_seed(0)
    mean = torch.tensor([[[0.0, 0.5]], [[1.0, -0.5]], [[0.3, 0.2]]], dtype=torch.float64)
    var = torch.tensor([[[0.2, 0.5]], [[0.1, 0.3]], [[0.4, 0.2]]], dtype=torch.float64)
    estimator = MMD(lengthscale=0.7)
    closed = float(estimator(None, None, _pred(mean, var))[0])
    mix_m, mix_v = _mixture(mean.numpy(), var.numpy())
    n = 4000

    def k(a, b):
        return torch.exp(-torch.cdist(a, b).square() / (2 * 0.7**2))

    est = []
    for i in range(3):
        x = mean[i, 0] + var[i, 0].sqrt() * torch.randn(n, 2, generator=gen, dtype=torch.float64)
        y = torch.from_numpy(mix_m[0]) + torch.from_numpy(mix_v[0]).sqrt() * torch.randn(n, 2, generator=gen, dtype=torch.float64)
        kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
        mmd2 = (kxx.sum() - kxx.diag().sum()) / (n * (n - 1)) + (kyy.sum() - kyy.diag().sum()) / (n * (n - 1)) - 2 * kxy.mean()
        est.append(float(mmd2.clamp_min(0).sqrt()))
    assert closed == pytest.approx(max(est), abs=0.02)


def test_ensemble_std_is_offlinerl_kit_formula():
    rng = np.random.default_rng(3)
    mean, var = rng.normal(size=(7, 10, 4)), rng.uniform(0.1, 1, size=(7, 10, 4))
    got = EnsembleStd()(None, None, _pred(mean, var)).numpy()
    np.testing.assert_allclose(got, np.sqrt(mean[..., :-1].var(0).mean(1)), rtol=1e-10)
    got = EnsembleDisagreement()(None, None, _pred(mean, var)).numpy()
    states = mean[..., :-1]
    np.testing.assert_allclose(got, np.amax(np.linalg.norm(states - states.mean(0), axis=2), axis=0), rtol=1e-10)
