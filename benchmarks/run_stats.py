"""Numbers and names over published run records, shared by the campaigns, their docs and the studies.

A run record is one ``<dataset>__<method>__s<seed>__<k>k.json`` (:meth:`campaign.Campaign.run_record`).
The tables, plots and studies read the same statistic the same way — the last-5 mean above all —
so it is defined once, here.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

#: A second, steadier statistic beside the paper's last iterate: the mean of each run's last
#: evaluations (5 × every 5 epochs = the last 25 % of a 100-epoch run; OfflineRL-Kit's ``train``
#: returns a mean of its last 10 epochs for the same reason).
TAIL_EVALS = 5


def up_to_end_of(curve: list[dict[str, Any]], shorter: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The evaluations of ``curve`` up to ``shorter``'s last epoch: where a deeper run stood at a shorter run's budget."""
    horizon = max((p["epoch"] for p in shorter if p.get("epoch") is not None), default=None)
    return [] if horizon is None else [p for p in curve if p.get("return_mean") is not None and p.get("epoch", horizon + 1) <= horizon]


def tail_mean(curve: list[dict[str, Any]]) -> float | None:
    """A run's mean of its last :data:`TAIL_EVALS` evaluations (the tables' and studies' "last-5" number)."""
    returns = [point["return_mean"] for point in curve if point.get("return_mean") is not None]
    return statistics.fmean(returns[-TAIL_EVALS:]) if returns else None


def best_window(curve: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The best :data:`TAIL_EVALS` consecutive evaluations of a run: their mean and the epoch the window ends.

    Beside the last-5 mean it says whether a policy was once better than where it ended, and
    when: the late degradation the talk attributes to MBPO exploiting its model is a best window
    well before the end and a last-5 mean well below it.
    """
    points = [(p["epoch"], p["return_mean"]) for p in curve if p.get("return_mean") is not None]
    if not points:
        return None
    width = min(TAIL_EVALS, len(points))
    means = [(statistics.fmean(r for _, r in points[i : i + width]), points[i + width - 1][0]) for i in range(len(points) - width + 1)]
    mean, end_epoch = max(means, key=lambda m: m[0])  # the first best window on ties
    return {"mean": mean, "end_epoch": end_epoch}


def mean_std(values: list[float], digits: int = 1) -> dict[str, Any]:
    """Mean ± population std over seeds, rounded to ``digits`` (returns: 1; O(1) ratios and ρ: 2)."""
    return {"mean": round(statistics.fmean(values), digits), "std": round(statistics.pstdev(values), digits) if len(values) > 1 else 0.0, "n": len(values)}


def runs_by_seed(records: list[dict[str, Any]]) -> dict[tuple[str, str, int], list[dict[str, Any]]]:
    """(dataset, method, seed) → its runs, shortest budget first, keys sorted."""
    by_key: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    for rec in records:
        by_key.setdefault((rec["dataset"], rec["method"], rec["seed"]), []).append(rec)
    return {key: sorted(runs, key=lambda r: r["steps"]) for key, runs in sorted(by_key.items())}


def fit_compared_by(a: dict[str, Any], b: dict[str, Any]) -> str:
    """What :func:`same_model_fit` compares two runs by: their model checksums where both have one."""
    return "checksum" if a.get("dynamics_sha256") and b.get("dynamics_sha256") else "holdout MSE"


def same_model_fit(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two runs stand on the same model fit: equal model checksums where both runs recorded
    one (published since stage 4), else equal per-member holdout MSE (unknown → no)."""
    if fit_compared_by(a, b) == "checksum":
        return a["dynamics_sha256"] == b["dynamics_sha256"]
    fit_a, fit_b = (a.get("dynamics_fit") or {}).get("holdout_mse"), (b.get("dynamics_fit") or {}).get("holdout_mse")
    return bool(fit_a) and fit_a == fit_b


def display_method(method: str) -> str:
    """How the docs name a method: the algorithms in capitals (MOPO, MBPO), estimators as registered."""
    return method.upper() if method in ("mopo", "mbpo") else method


def round_or_none(value: float | None, digits: int = 4) -> float | None:
    """``value`` rounded for a JSON table, a missing one kept missing."""
    return None if value is None else round(float(value), digits)


def file_safe(dataset: str) -> str:
    """A dataset name, or a file path's stem, usable in a file name."""
    return Path(dataset).stem.replace(":", "_") if dataset.endswith((".hdf5", ".h5")) or "/" in dataset else dataset


def budget_label(steps: int) -> str:
    """A run's budget as its file name says it: ``100k``, or ``2500steps`` off the thousand."""
    return f"{steps // 1000}k" if steps % 1000 == 0 else f"{steps}steps"
