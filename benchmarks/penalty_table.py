"""The penalty study's table (``benchmarks/results/penalties/table.json``), from the published runs alone:
tuning runs, the κ each estimator picked, the report, each estimator against MBPO seed for seed and
across cells, whether the offline numbers could have chosen κ, and the price of choosing it online."""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from campaign import EVAL_EPISODES, EVAL_EVERY  # noqa: E402
from run_stats import mean_std as run_mean_std  # noqa: E402
from run_stats import tail_mean  # noqa: E402
from common import ROOT  # noqa: E402
from ood_table import CELLS as OOD_CELLS  # noqa: E402
from penalty_design import ESTIMATORS, LAST_EVALS, MBPO, ON_POLICY_DIR, PAPER_MOPO, REPORT_SEEDS, SELECTION, STEPS, STUDY, TUNING_SEED, selected  # noqa: E402

from mopo_kit.experiments.compare import improvement_across_tasks, paired, versus  # noqa: E402
from mopo_kit.experiments.selection import rank_agreement, ucb_pick_curve  # noqa: E402


def build_table(grid: dict[str, Any]) -> dict[str, Any]:
    """Write table.json (:func:`compute_table`) and return it."""
    table = compute_table(grid)
    STUDY.results.mkdir(parents=True, exist_ok=True)
    (STUDY.results / "table.json").write_text(json.dumps(table, indent=2) + "\n")
    return table


def compute_table(grid: dict[str, Any]) -> dict[str, Any]:
    """κ_paper, tuning runs, selection, report table, offline selection, bandit curves — from the published runs alone."""
    records = STUDY.records()
    picks = selected(records, grid)
    table: dict[str, Any] = {
        "selection_rule": f"{SELECTION}: mean of the last {LAST_EVALS} evaluations ({EVAL_EPISODES} episodes every {EVAL_EVERY} epochs) on seed {TUNING_SEED}; ties → smaller κ",
        "kappa_paper": {cell: {k: entry[k] for k in ("paper_lam", "kappa_paper", "grid")} for cell, entry in grid.items()},
        "tuning": {},
        "selected": picks,
        "report": {},
        "offline_selection": {},
        "bandit": {},
        "versus_mbpo": {},
        "across_cells": {},
        "paper_kappa": {},
        "paper_mopo": {cell: runs for cell in grid if (runs := paper_mopo(cell))},
    }
    complete: dict[str, dict[str, list[dict[str, Any]]]] = {}  # cell → method → its report runs, once all seeds are in
    for cell in grid:
        for name in ESTIMATORS:
            runs = sorted((r for r in records if r["role"] == "tuning" and r["dataset"] == cell and r["uncertainty"] == name), key=lambda r: r["kappa"])
            if not runs:
                continue
            table["tuning"].setdefault(cell, {})[name] = [
                {"kappa": r["kappa"], "lam": r["lam"], "return_last": r["return_last"], "return_last5": r["return_last5"],
                 "final_mean": r["final_eval"]["return_mean"], **{k: r["model_bound"][k] for k in ("eta_hat", "epsilon", "bound")}}
                for r in runs
            ]
            if len(runs) < 2:
                continue
            real = [r["final_eval"]["return_mean"] for r in runs]
            table["offline_selection"].setdefault(cell, {})[name] = {
                "real": "final_eval.return_mean (the same final policy the model numbers are computed for)",
                **{stat: rank_agreement([r["model_bound"][stat] if stat != "epsilon" else -r["model_bound"][stat] for r in runs], real)
                   for stat in ("eta_hat", "epsilon", "bound")},
            }
            table["bandit"].setdefault(cell, {})[name] = {
                "kappas": [r["kappa"] for r in runs],
                "true_values": [round(statistics.fmean(r["episode_returns"]), 1) for r in runs],
                "expected_return_of_pick": [round(v, 1) for v in ucb_pick_curve([r["episode_returns"] for r in runs], 50)],
            }
        report_runs = {name: [r for r in records if r["role"] == "report" and r["dataset"] == cell and r["uncertainty"] == name] for name in (*ESTIMATORS, MBPO)}
        summary = lambda runs: {  # noqa: E731
            "kappa": runs[0]["kappa"],
            "seeds": sorted(r["seed"] for r in runs),
            **{key: _mean_std([r[key] for r in runs]) for key in ("return_last", "return_last5")},
            "final_mean": _mean_std(final_means(runs)),
            "lam": [round(r["lam"], 4) for r in sorted(runs, key=lambda r: r["seed"])],
        }
        for name, runs in report_runs.items():
            if runs:
                table["report"].setdefault(cell, {})[STUDY.method_of(name)] = summary(runs)
        at_paper = [r for r in records if r["role"] == "paper_kappa" and r["dataset"] == cell]
        if at_paper:
            table["paper_kappa"][cell] = summary(at_paper)
        for name in ESTIMATORS:
            runs, mbpo = report_runs[name], report_runs[MBPO]
            if runs and mbpo:
                table["versus_mbpo"].setdefault(cell, {})[name] = {
                    "kappa": runs[0]["kappa"],
                    "return_last5": versus([r["return_last5"] for r in runs], [r["return_last5"] for r in mbpo]),
                    "final_mean": versus(final_means(runs), final_means(mbpo)),
                    "paired_last5": paired_by_seed(runs, mbpo),
                }
        if at_paper and report_runs[MBPO]:
            table["versus_mbpo"].setdefault(cell, {})["paper_kappa"] = {
                "kappa": at_paper[0]["kappa"],
                "return_last5": versus([r["return_last5"] for r in at_paper], [r["return_last5"] for r in report_runs[MBPO]]),
                "final_mean": versus(final_means(at_paper), final_means(report_runs[MBPO])),
                "paired_last5": paired_by_seed(at_paper, report_runs[MBPO]),
            }
        complete[cell] = {name: runs for name, runs in report_runs.items() if len(runs) == len(REPORT_SEEDS)}
        paper = table["paper_mopo"].get(cell)
        if paper and report_runs[MBPO]:  # the table's runs: their own model fits, so a looser comparison
            table["versus_mbpo"].setdefault(cell, {})[PAPER_MOPO] = {
                "kappa": grid[cell]["kappa_paper"],
                "return_last5": versus(paper["return_last5_per_seed"], [r["return_last5"] for r in report_runs[MBPO]]),
                "final_mean": None,
            }
    table["across_cells"] = across_cells(complete)
    table["on_policy"] = on_policy(grid, records)
    table["shared_models"] = shared_model_check(grid, records)
    return table


def shared_model_check(grid: dict[str, Any], records: list[dict[str, Any]]) -> dict[str, Any]:
    """Per cell × seed: do all its runs stand on one model fit — and seed 3's on the fit κ was frozen from?

    The study compares estimators and κ on the *same* model; a shared model refitted on another
    machine or thread count (its directory lost with a session) could differ, and then κ or
    estimator differences on that seed would mix with a model difference. A fit is identified by
    its per-member holdout MSE (equal to every digit for equal fits; tested bit-exact across 1 and 2
    torch threads on this CPU). ``consistent`` is false where a seed holds more than one fit.
    """
    fits: dict[str, dict[int, set[tuple[float, ...]]]] = {}
    for rec in records:
        holdout = tuple((rec.get("dynamics_fit") or {}).get("holdout_mse") or ())
        if holdout:
            fits.setdefault(rec["dataset"], {}).setdefault(rec["seed"], set()).add(holdout)
    for cell, entry in grid.items():
        frozen = tuple(entry.get("model", {}).get("holdout_mse") or ())
        if frozen and cell in fits:
            fits[cell].setdefault(TUNING_SEED, set()).add(frozen)
    check = {cell: {str(seed): len(seen) for seed, seen in sorted(by_seed.items())} for cell, by_seed in sorted(fits.items())}
    return {"fits_per_seed": check, "consistent": all(n == 1 for by_seed in check.values() for n in by_seed.values())}


def paired_by_seed(runs: list[dict[str, Any]], mbpo: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The last-5 means against MBPO's seed for seed — each pair on the same shared model (see
    ``shared_models``) — or None without a common seed."""
    ours, theirs = {r["seed"]: r["return_last5"] for r in runs}, {r["seed"]: r["return_last5"] for r in mbpo}
    return paired(ours, theirs) if set(ours) & set(theirs) else None


def final_means(runs: list[dict[str, Any]]) -> list[float]:
    """Each run's final 20-episode mean (the second statistic of every comparison beside the last-5 mean)."""
    return [r["final_eval"]["return_mean"] for r in runs]


def across_cells(complete: dict[str, dict[str, list[dict[str, Any]]]]) -> dict[str, Any]:
    """Each estimator against MBPO over every cell where both have all report seeds: P(a run of the
    estimator beats a run of MBPO) averaged over cells, with its stratified bootstrap 95 % interval
    (:func:`~mopo_kit.experiments.compare.improvement_across_tasks`) — the study's one-line answer per bound."""
    out: dict[str, Any] = {}
    for name in ESTIMATORS:
        cells = [cell for cell, methods in complete.items() if name in methods and MBPO in methods]
        if not cells:
            continue
        out[name] = {
            "cells": cells,
            "return_last5": improvement_across_tasks({c: ([r["return_last5"] for r in complete[c][name]], [r["return_last5"] for r in complete[c][MBPO]]) for c in cells}),
            "final_mean": improvement_across_tasks({c: (final_means(complete[c][name]), final_means(complete[c][MBPO])) for c in cells}),
        }
    return out


def on_policy(grid: dict[str, Any], records: list[dict[str, Any]]) -> dict[str, Any]:
    """cell → estimator → {``own``, ``paper_kappa``, ``mbpo``}: the on-policy check of the estimator's u
    (``benchmarks/penalty_on_policy.py``) on its own report policies, on ``max_aleatoric``'s κ_paper
    policies, and on MBPO's — per group the seeds, Spearman's ρ(u, error), the share of steps whose
    error exceeds c95·u, and how error and u move from held-out data to the policies' states."""
    from mopo_kit.experiments.sweep import trial_id

    out: dict[str, Any] = {}
    for cell in grid:
        for name in ESTIMATORS:
            path = STUDY.results / ON_POLICY_DIR / f"{cell}__{name}.json"
            if not path.exists():
                continue
            at_paper = {trial_id({k: r[k] for k in ("dataset", "uncertainty", "kappa", "horizon", "seed")})
                        for r in records if r["dataset"] == cell and r["role"] == "paper_kappa"}
            groups: dict[str, list[dict[str, Any]]] = {}
            for run in json.loads(path.read_text())["runs"]:
                group = "mbpo" if run["uncertainty"] == MBPO else "paper_kappa" if run["run"] in at_paper else "own"
                groups.setdefault(group, []).append(run)
            out.setdefault(cell, {})[name] = {group: _on_policy_summary(runs) for group, runs in sorted(groups.items())}
    return out


def _on_policy_summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    checks = [r["on_policy"] for r in sorted(runs, key=lambda r: r["seed"])]
    return {
        "seeds": sorted(r["seed"] for r in runs),
        "spearman": _mean_std([c["spearman_policy"] for c in checks], 2),
        "violations": [None if c["bound_violations"] is None else round(c["bound_violations"], 3) for c in checks],
        "error_ratio": _mean_std([c["error_mean_policy"] / c["error_mean_data"] for c in checks], 2),
        "u_ratio": _mean_std([c["u_mean_policy"] / c["u_mean_data"] for c in checks], 2),
    }


#: where the D4RL and OOD tables keep their runs: MOPO at the paper's λ, for the report's comparison row
TABLE_RESULTS = {"d4rl": ROOT / "benchmarks" / "results" / "d4rl", "ood": ROOT / "benchmarks" / "results" / "ood"}


def paper_mopo(cell: str) -> dict[str, Any] | None:
    """MOPO (``max_aleatoric``) at the paper's λ on ``cell``, seeds 0-2 at 100k, from the D4RL or OOD
    table's published runs (the same h; their own model fits), or ``None`` where the table has none."""
    kind = "ood" if cell in OOD_CELLS else "d4rl"
    runs = [json.loads(p.read_text()) for seed in REPORT_SEEDS if (p := TABLE_RESULTS[kind] / f"{cell}__mopo__s{seed}__{STEPS // 1000}k.json").exists()]
    if not runs:
        return None
    last5 = [tail_mean(r["curve"]) for r in runs]
    return {
        "source": f"benchmarks/results/{kind}/{cell}__mopo__s<seed>__{STEPS // 1000}k.json",
        "lam": runs[0]["lam"],
        "horizon": runs[0]["horizon"],
        "seeds": [r["seed"] for r in runs],
        "return_last": _mean_std([r["return_last"] for r in runs]),
        "return_last5": _mean_std(last5),
        "return_last5_per_seed": [round(v, 1) for v in last5],
    }



def _mean_std(values: list[float | None], digits: int = 1) -> dict[str, Any]:
    """``run_stats.mean_std`` over seeds, leaving out runs without the number (none: mean and std ``None``)."""
    kept = [v for v in values if v is not None]
    return run_mean_std(kept, digits) if kept else {"mean": None, "std": None, "n": 0}

