"""The Gaussian ensemble: fused gradients = autograd, prediction, fitting rules, save/load."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mopo_kit.dynamics.fused import FusedTrainer, predict_batched, predict_chunked
from mopo_kit.dynamics.gaussian_ensemble import EnsembleConfig, GaussianEnsemble, TrainingDivergedError
from mopo_kit.errors import MopoKitError
from mopo_kit.testing_models import linear_system_dataset, tiny_ensemble


@pytest.mark.parametrize("batch", [256, 37])
def test_fused_step_computes_autograd_loss_and_gradients(batch):
    torch.manual_seed(1)
    model = GaussianEnsemble(5, 2, EnsembleConfig(seed=3))
    with torch.no_grad():  # move the log-variance bounds off their init so every branch matters
        model.net.max_logvar.add_(torch.randn(6) * 0.3)
        model.net.min_logvar.add_(torch.randn(6) * 0.3)
    x = torch.randn(7, batch, 7)
    y = torch.randn(7, batch, 6) * 2
    reference = model.loss(x, y)
    params = [*model.net.weights, *model.net.biases, model.net.max_logvar, model.net.min_logvar]
    expected = torch.autograd.grad(reference, params)
    trainer = FusedTrainer(model.net, model.config.weight_decays, 1e-3, model.config.logvar_loss_coef)
    loss = trainer.loss_and_grads(x, y) + trainer.decay_loss()
    assert loss.item() == pytest.approx(reference.item(), rel=1e-5)
    for param, grad in zip(params, expected):
        assert torch.allclose(param.grad, grad, rtol=1e-4, atol=1e-6 * grad.abs().max().item()), tuple(param.shape)


def test_bf16_fit_step_stays_close_to_the_float32_loss_and_gradients():
    """Mixed precision: hidden GEMMs in bf16, the head, loss and every gradient handed to Adam in float32."""
    torch.manual_seed(1)
    model = GaussianEnsemble(5, 2, EnsembleConfig(seed=3))
    x = torch.randn(7, 256, 7)
    y = torch.randn(7, 256, 6) * 2
    params = [*model.net.weights, *model.net.biases, model.net.max_logvar, model.net.min_logvar]
    expected = torch.autograd.grad(model.loss(x, y), params)
    trainer = FusedTrainer(model.net, model.config.weight_decays, 1e-3, model.config.logvar_loss_coef, compute_dtype=torch.bfloat16)
    trainer.loss_and_grads(x, y)
    for param, grad in zip(params, expected):
        assert param.grad.dtype == torch.float32
        error = ((param.grad - grad).norm() / grad.norm()).item()
        assert error < 0.03, (tuple(param.shape), error)  # bf16 keeps ~3 significant digits per product
    hidden = trainer.net.weights[0].grad
    assert not torch.equal(hidden, expected[0]), "the hidden layers really computed in bf16"


def test_a_bf16_fit_learns_like_float32_and_is_recorded():
    data = linear_system_dataset(n=3000, seed=0)
    reports = {p: tiny_ensemble(max_epochs=30, fit_precision=p).fit(data) for p in ("fp32", "bf16")}
    assert reports["bf16"].precision == "bf16" and reports["fp32"].precision == "fp32"
    first, last = np.mean(reports["bf16"].history[0].holdout_mse), np.mean(reports["bf16"].holdout_mse)
    assert last < 0.2 * first
    assert np.mean(reports["bf16"].holdout_mse) < 1.5 * np.mean(reports["fp32"].holdout_mse)


def test_fit_precision_is_checked_by_name():
    with pytest.raises(MopoKitError, match="gaussian_ensemble param 'fit_precision' must be one of fp32, bf16, auto, got 'fp16'"):
        EnsembleConfig(fit_precision="fp16")


def test_chunked_prediction_equals_the_batched_forward():
    model = GaussianEnsemble(4, 2, EnsembleConfig(members=3, elites=2, seed=0))
    x = torch.randn(1000, 6)
    mean, var = predict_chunked(model.net, x, chunk=384)  # 1000 is not a multiple of 384
    with torch.no_grad():
        ref_mean, ref_logvar = model.net(x.expand(3, -1, -1))
    assert torch.allclose(mean, ref_mean, atol=1e-5)
    assert torch.allclose(var, ref_logvar.exp(), rtol=1e-5)
    with torch.no_grad():
        shared_mean, _ = model.net(x)  # the shared-input first-layer path
    assert torch.allclose(shared_mean, ref_mean, atol=1e-5)
    for chunk in (1000, 384):  # the GPU path (one batched pass per chunk of rows) gives the same
        b_mean, b_var = predict_batched(model.net, x, chunk=chunk)
        assert b_mean.shape == (3, 1000, 5) and b_mean.is_contiguous()
        assert torch.allclose(b_mean, ref_mean, atol=1e-5) and torch.allclose(b_var, ref_logvar.exp(), rtol=1e-5)


def test_predicting_only_each_rows_member_equals_that_row_of_every_members_forward():
    model = GaussianEnsemble(4, 2, EnsembleConfig(members=5, elites=3, seed=0))
    gen = torch.Generator().manual_seed(0)
    # chunks that split the batch, one not a multiple of the 32-row padding, a tail of 13 rows
    for n, chunk in ((1000, 96), (1000, 100), (37, 96), (1, 4096), (0, 4096), (4096 + 45, 4096)):
        obs, act = torch.randn(n, 4, generator=gen), torch.randn(n, 2, generator=gen)
        members = torch.tensor([0, 2, 4])[torch.randint(3, (n,), generator=gen)]  # members 1 and 3 get no rows
        model.config.predict_chunk = chunk
        every = model.predict(obs, act)
        mean, var = model.predict_rows(obs, act, members)
        rows = torch.arange(n)
        assert mean.shape == var.shape == (n, 5)
        torch.testing.assert_close(mean, every.mean[members, rows], rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(var, every.var[members, rows], rtol=1e-6, atol=0.0)


@pytest.fixture(scope="module")
def fitted():
    torch.set_num_threads(max(1, torch.get_num_threads()))
    data = linear_system_dataset(n=3000, seed=0)
    model = tiny_ensemble(max_epochs=60)
    report = model.fit(data)
    return data, model, report


def test_fit_learns_and_picks_the_best_members_as_elites(fitted):
    data, model, report = fitted
    first = report.history[0].holdout_mse
    assert np.mean(report.holdout_mse) < 0.2 * np.mean(first)
    order = np.argsort(report.holdout_mse)
    assert sorted(report.elites) == sorted(order[:3].tolist())
    assert model.elites.tolist() == report.elites


def test_early_stopping_follows_mopo_rule(fitted):
    _, _, report = fitted
    assert report.stop_reason in ("early stopping", "max_epochs=60")
    if report.stop_reason == "early stopping":
        # the last 6 epochs brought no member an improvement of more than 1 % over its best
        history = [h.holdout_mse for h in report.history]
        best = np.minimum.accumulate(np.array(history), axis=0)
        before = best[-7]
        assert np.all((before - np.array(history[-6:])) / before <= 0.01 + 1e-9)


def test_predict_returns_next_state_and_reward_in_raw_units(fitted):
    data, model, _ = fitted
    obs = torch.from_numpy(data.observations[:500])
    act = torch.from_numpy(data.actions[:500])
    pred = model.predict(obs, act)
    assert pred.mean.shape == (5, 500, 4) and pred.var.shape == (5, 500, 4)
    assert (pred.var > 0).all()
    elite_mean = pred.mean[pred.elites].mean(dim=0)
    state_err = (elite_mean[:, :3] - torch.from_numpy(data.next_observations[:500])).abs().mean()
    reward_err = (elite_mean[:, 3] - torch.from_numpy(data.rewards[:500])).abs().mean()
    assert state_err < 0.1, state_err
    assert reward_err < 0.5 * np.abs(data.rewards[:500]).mean(), reward_err


def test_bootstrap_makes_members_differ(fitted):
    _, model, _ = fitted
    w = model.net.weights[0]
    assert not torch.allclose(w[0], w[1])


def test_save_load_round_trip(fitted, tmp_path):
    data, model, _ = fitted
    model.save(tmp_path / "dyn")
    loaded = GaussianEnsemble.load(tmp_path / "dyn")
    obs, act = torch.from_numpy(data.observations[:64]), torch.from_numpy(data.actions[:64])
    a, b = model.predict(obs, act), loaded.predict(obs, act)
    assert torch.equal(a.mean, b.mean) and torch.equal(a.var, b.var) and torch.equal(a.elites, b.elites)
    meta = json.loads((tmp_path / "dyn" / "dynamics.json").read_text())
    assert meta["type"] == "gaussian_ensemble" and meta["config"]["members"] == 5
    assert not list((tmp_path / "dyn").glob(".*"))  # no temp files left
    torch.load(tmp_path / "dyn" / "dynamics.pt", weights_only=True)  # tensors only


def test_divergence_stops_with_last_good_snapshot(monkeypatch):
    data = linear_system_dataset(n=1500, seed=1)
    model = tiny_ensemble(max_epochs=30)
    real_step = FusedTrainer.step
    calls = {"n": 0}

    def step(self, x, y):
        calls["n"] += 1
        if calls["n"] > 80:  # a few epochs in, the loss blows up and the weights with it
            with torch.no_grad():
                for w in self.net.weights:
                    w.fill_(float("nan"))
            return torch.tensor(float("nan"))
        return real_step(self, x, y)

    monkeypatch.setattr(FusedTrainer, "step", step)
    with pytest.raises(TrainingDivergedError, match="diverged at epoch") as info:
        model.fit(data)
    assert info.value.report.epochs >= 1
    pred = model.predict(torch.from_numpy(data.observations[:10]), torch.from_numpy(data.actions[:10]))
    assert torch.isfinite(pred.mean).all() and torch.isfinite(pred.var).all()
