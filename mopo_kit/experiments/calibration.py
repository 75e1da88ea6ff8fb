"""Is u(s, a) an error bound? Check MOPO's assumption ‖T̂(s, a) − T*(s, a)‖ ≤ u(s, a) on data.

For every estimator the report gives, on held-out in-distribution data and on out-of-distribution
data (e.g. a model fitted on random data, queried on a trained policy's data):

* Spearman rank correlation between u(s, a) and the true one-step error
  ``‖mean of the elites' μ(s, a) − [s', r]‖₂`` (raw units, reward included, as the penalty);
* ``c95``: the smallest c with error ≤ c·u on 95 % of the points (a calibrated bound needs
  one c that works in and out of distribution);
* ``ood_ratio``: mean u out of distribution / mean u in distribution (the true error's own ratio
  is reported alongside, so one sees whether u grows as much as the error does);
* ``reward_bias``: the mean signed reward error r̂ − r of the elites' mean, per dataset. The
  norm above cannot tell over- from under-estimation; a policy exploits a model whose reward is
  too high where it goes, and the penalty exists to pay for exactly that.

An estimator whose output breaks the contract (NaN, inf, negative, wrong shape) is left out with
the same one line a training run stops with; when no estimator is left, that line is the error.

Estimators that need fitting (the GP plugin) are fitted on one half of the in-distribution data
and evaluated on the other half; closed-form ones see the same held-out half.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from scipy.stats import spearmanr

from mopo_kit.data.dataset import TransitionDataset
from mopo_kit.dynamics.gaussian_ensemble import GaussianEnsemble
from mopo_kit.errors import ComponentOutputError, MopoKitError
from mopo_kit.guards import check_penalty, check_prediction
from mopo_kit.types import EnsemblePrediction


@dataclass
class EstimatorCalibration:
    """Calibration numbers of one estimator."""

    name: str
    ipm: str
    spearman_id: float
    spearman_ood: float
    spearman_all: float
    c95_id: float
    c95_ood: float
    c95_all: float
    u_mean_id: float
    u_mean_ood: float
    ood_ratio: float
    seconds: float


@dataclass
class CalibrationReport:
    """All estimators on one model and two datasets."""

    dynamics: str
    data: str
    ood: str
    points_id: int
    points_ood: int
    error_mean_id: float
    error_mean_ood: float
    error_ood_ratio: float
    reward_bias_id: float
    reward_bias_ood: float
    estimators: list[EstimatorCalibration] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    precision: str = "fp32"  # of the model's predictions (mopo_kit.precision)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _subsample(data: TransitionDataset, n: int, rng: np.random.Generator) -> TransitionDataset:
    if len(data) <= n:
        return data
    return data.select(np.sort(rng.choice(len(data), n, replace=False)))


def one_step_error(pred: EnsemblePrediction, data: TransitionDataset) -> torch.Tensor:
    """‖mean over elites of μ(s, a) − [s', r]‖₂ per row (raw units)."""
    target = torch.from_numpy(np.concatenate([data.next_observations, data.rewards[:, None]], axis=1)).to(pred.mean.device)
    elite_mean = pred.mean.index_select(0, pred.elites).mean(dim=0)
    return torch.linalg.vector_norm(elite_mean - target, dim=-1)


def reward_bias(pred: EnsemblePrediction, data: TransitionDataset) -> float:
    """Mean of r̂ − r over the rows, r̂ the elites' mean reward (signed: > 0 means too optimistic)."""
    elite_reward = pred.mean.index_select(0, pred.elites).mean(dim=0)[:, -1].double().cpu().numpy()
    return float(np.mean(elite_reward - data.rewards))


def _c95(err: np.ndarray, u: np.ndarray) -> float:
    ratio = err / np.maximum(u, 1e-12)
    return float(np.quantile(ratio, 0.95)) if np.all(u > 0) else float("inf")


def _spearman(u: np.ndarray, err: np.ndarray) -> float:
    if np.ptp(u) == 0:
        return float("nan")  # a constant (e.g. zero) penalty ranks nothing
    return float(spearmanr(u, err).statistic)


def calibrate(
    model: GaussianEnsemble,
    estimators: Mapping[str, Any],
    data: TransitionDataset,
    ood: TransitionDataset,
    *,
    max_points: int = 20_000,
    seed: int = 0,
    dynamics_name: str = "",
) -> tuple[CalibrationReport, dict[str, dict[str, np.ndarray]]]:
    """Compute the report; also returns the raw (u, error) arrays per estimator for plotting."""
    import time

    data, ood = data.with_known_next(), ood.with_known_next()  # the true error needs a real s'
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(data))
    half = len(data) // 2
    fit_part = data.select(np.sort(perm[:half]))
    held_out = _subsample(data.select(np.sort(perm[half:])), max_points, rng)
    ood_part = _subsample(ood, max_points, rng)

    def predict(d: TransitionDataset) -> tuple[torch.Tensor, torch.Tensor, EnsemblePrediction]:
        obs, act = torch.from_numpy(d.observations), torch.from_numpy(d.actions)
        pred = model.predict(obs, act)
        check_prediction(pred.mean, pred.var, dynamics_name or type(model).__name__, f"on {d.source}")
        return obs.to(pred.mean.device), act.to(pred.mean.device), pred  # estimators see one device

    obs_id, act_id, pred_id = predict(held_out)
    obs_ood, act_ood, pred_ood = predict(ood_part)
    err_id = one_step_error(pred_id, held_out).cpu().numpy()
    err_ood = one_step_error(pred_ood, ood_part).cpu().numpy()
    report = CalibrationReport(
        dynamics=dynamics_name,
        data=data.source,
        ood=ood.source,
        points_id=len(held_out),
        points_ood=len(ood_part),
        error_mean_id=float(err_id.mean()),
        error_mean_ood=float(err_ood.mean()),
        error_ood_ratio=float(err_ood.mean() / err_id.mean()),
        reward_bias_id=reward_bias(pred_id, held_out),
        reward_bias_ood=reward_bias(pred_ood, ood_part),
    )
    raw: dict[str, dict[str, np.ndarray]] = {}
    for name, estimator in estimators.items():
        start = time.perf_counter()
        try:
            estimator.fit(fit_part, model)
            u_id = check_penalty(estimator(obs_id, act_id, pred_id), len(held_out), name, f"on {held_out.source}").double().cpu().numpy()
            u_ood = check_penalty(estimator(obs_ood, act_ood, pred_ood), len(ood_part), name, f"on {ood_part.source}").double().cpu().numpy()
        except ComponentOutputError as exc:  # the same line a training run stops with
            report.skipped[name] = str(exc)
            continue
        except Exception as exc:  # a plugin's estimator failing must not lose the others' numbers
            report.skipped[name] = f"{type(exc).__name__}: {exc}"
            continue
        seconds = time.perf_counter() - start
        u_all, err_all = np.concatenate([u_id, u_ood]), np.concatenate([err_id, err_ood])
        report.estimators.append(
            EstimatorCalibration(
                name=name,
                ipm=str(getattr(estimator, "ipm", "unknown")),
                spearman_id=_spearman(u_id, err_id),
                spearman_ood=_spearman(u_ood, err_ood),
                spearman_all=_spearman(u_all, err_all),
                c95_id=_c95(err_id, u_id),
                c95_ood=_c95(err_ood, u_ood),
                c95_all=_c95(err_all, u_all),
                u_mean_id=float(u_id.mean()),
                u_mean_ood=float(u_ood.mean()),
                ood_ratio=float(u_ood.mean() / u_id.mean()) if u_id.mean() > 0 else float("nan"),
                seconds=round(seconds, 3),
            )
        )
        raw[name] = {"u_id": u_id, "u_ood": u_ood, "err_id": err_id, "err_ood": err_ood}
    if estimators and not report.estimators:  # nothing left to report: an error, not an empty table
        name, why = next(iter(report.skipped.items()))
        raise MopoKitError(why if why.startswith("uncertainty estimator") else f"uncertainty estimator '{name}' failed: {why}")
    return report, raw


def write_report(report: CalibrationReport, raw: Mapping[str, Mapping[str, np.ndarray]], out_dir: Path) -> list[Path]:
    """``calibration.json`` plus one scatter PNG per estimator; returns the written paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mopo_kit.fileio import atomic_write_bytes

    out_dir.mkdir(parents=True, exist_ok=True)
    written = [out_dir / "calibration.json"]
    atomic_write_bytes(written[0], json.dumps(report.to_json(), indent=2, allow_nan=True).encode())
    for row in report.estimators:
        arrays = raw[row.name]
        fig, ax = plt.subplots(figsize=(5, 4), dpi=100)
        ax.scatter(arrays["u_id"], arrays["err_id"], s=3, alpha=0.3, label=f"in-distribution (ρ={row.spearman_id:.2f})")
        ax.scatter(arrays["u_ood"], arrays["err_ood"], s=3, alpha=0.3, label=f"out-of-distribution (ρ={row.spearman_ood:.2f})")
        u_max = max(arrays["u_id"].max(), arrays["u_ood"].max())
        if np.isfinite(row.c95_all) and u_max > 0:
            grid = np.linspace(0, u_max, 50)
            ax.plot(grid, row.c95_all * grid, "k--", lw=1, label=f"error = {row.c95_all:.3g}·u (95 %)")
        if u_max > 0 and min(arrays["u_id"].min(), arrays["u_ood"].min()) > 0:
            ax.set_xscale("log")
            ax.set_yscale("log")
        ax.set_xlabel(f"u(s, a): {row.name}")
        ax.set_ylabel("true one-step error ‖T̂ − T*‖")
        ax.set_title(f"{row.name} ({row.ipm})")
        ax.legend(fontsize=7, markerscale=3)
        fig.tight_layout()
        path = out_dir / f"calibration_{row.name}.png"
        fig.savefig(path)
        plt.close(fig)
        written.append(path)
    return written
