"""The penalty study: which error bound, at what strength κ, beats no penalty — κ chosen on a held-out seed.

    python benchmarks/penalty_study.py                      # everything still missing, tuning first
    python benchmarks/penalty_study.py --cell hopper-mixed  # one cell (repeatable)
    python benchmarks/penalty_study.py --phase tuning       # only the seed-3 tuning runs
    python benchmarks/penalty_study.py --status             # where each run stands (read-only)
    python benchmarks/penalty_study.py --table              # rebuild table.json from the published runs
    python benchmarks/penalty_study.py --write-docs         # ... and docs/penalties.md's tables and plots

Design (issue 31; reading in ``docs/penalties.md``):

* **Strength**: κ (``mopo_kit.penalty_scale``): λ · mean u = κ · mean |r| on the dataset, so every
  estimator takes the same mean bite out of the data's reward. Per cell, κ_paper is what MOPO's
  published λ amounts to for ``max_aleatoric`` on the cell's seed-3 model; it is computed once
  and frozen in ``kappa_paper.json`` (later sessions on other machines keep the same grid).
* **Tuning** (``role: tuning``): seed 3 only — no reported run uses it — each estimator at
  κ_paper × {1/3, 1, 3} (a 9× span, rounded to two significant digits), 100k steps. The pick is
  fixed here, before any run: :data:`SELECTION`, the mean of the last 5 evaluations (the last 25 %
  of the run), the smaller κ on a tie.
* **Report** (``role: report``): seeds 0, 1, 2 at each estimator's selected κ; MBPO (``zero``, κ = 0)
  beside them.
* **MOPO at the paper's κ on the same models** (``role: paper_kappa``; added after hopper-mixed's
  report, where tuning picked 3× κ_paper and only the D4RL table's MOPO — other model fits — beat
  MBPO): where ``max_aleatoric``'s pick is not the grid's κ_paper, seeds 0-2 at κ_paper too, so
  "the κ" and "the model fit" are told apart. Nothing picked or published changes.
* Every final policy is evaluated on :data:`FINAL_EPISODES` real episodes (each return kept), and
  carries the model's offline numbers (η̂, ε, η̂ − λ·ε) for the offline-selection question.

Mechanics are the campaign's (``benchmarks/campaign.py``): one shared model per dataset × seed,
two trials at a time with one torch thread each, resumable, each run published the moment it
finishes as ``<cell>__<estimator>__kappa<κ>__s<seed>__100k.json`` in ``benchmarks/results/penalties/``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from campaign import EVAL_EPISODES, EVAL_EVERY, MODEL_MAX_EPOCHS, TAIL_EVALS, Campaign, Stage, _file_safe, stoppable, tail_mean  # noqa: E402
from campaign import _mean_std as campaign_mean_std  # noqa: E402
from common import ROOT, commit, machine  # noqa: E402
from ood_table import CELLS as OOD_CELLS  # noqa: E402

from mopo_kit.experiments.compare import improvement_across_tasks, versus  # noqa: E402
from mopo_kit.experiments.selection import rank_agreement, ucb_pick_curve  # noqa: E402
from mopo_kit.experiments.sweep import SweepSpec, ensure_shared_dynamics, model_job, run_sweep, trial_id  # noqa: E402

#: cell → rollout horizon h: the D4RL table's per-task value; 5 for the OOD task (docs/ood.md)
CELLS: dict[str, int] = {"hopper-mixed": 5, "walker2d-mixed": 1, "halfcheetah-random": 5, "halfcheetah-jump": 5}
#: run when compute allows (``--cell ant-angle``)
EXTRA_CELLS: dict[str, int] = {"ant-angle": 5}
#: cell → the λ whose κ anchors the grid: MOPO's published per-task λ; 1 on the OOD tasks (docs/ood.md)
PAPER_LAM: dict[str, float] = {"hopper-mixed": 1.0, "walker2d-mixed": 1.0, "halfcheetah-random": 0.5, "halfcheetah-jump": 1.0, "ant-angle": 1.0}
ESTIMATORS = ("max_aleatoric", "wasserstein", "total_variation", "mmd")
KAPPA_FACTORS = (1 / 3, 1.0, 3.0)
TUNING_SEED = 3
REPORT_SEEDS = (0, 1, 2)
STEPS = 100_000
FINAL_EPISODES = 20
#: the statistic that picks κ on the tuning seed, fixed before the runs
SELECTION = "return_last5"
LAST_EVALS = TAIL_EVALS
RESULTS = ROOT / "benchmarks" / "results" / "penalties"
KAPPA_FILE = RESULTS / "kappa_paper.json"
MBPO = "zero"
#: the key of MOPO at the paper's λ (the D4RL/OOD tables' runs) where the study's tables list it beside the estimators
PAPER_MOPO = "paper_mopo"


def round_sig(value: float, digits: int = 2) -> float:
    return float(f"{value:.{digits}g}")


class PenaltyStudy(Campaign):
    """The campaign's machinery with κ in each run's name and the study's own record and table."""

    def published_path(self, dataset: str, method: str, seed: int, budget: str, kappa: float | None = None) -> Path:
        return self.results / f"{_file_safe(dataset)}__{method}__kappa{kappa:g}__s{seed}__{budget}.json"

    def published_reason(self, point: dict[str, Any], budget: str) -> str | None:
        path = self.published_path(str(point["dataset"]), str(point["uncertainty"]), int(point["seed"]), budget, float(point["kappa"]))
        return f"published as {path.name}" if path.exists() else None

    def publish(self, run_dir: Path, command: str) -> Path:
        record = self.study_record(run_dir, command)
        self.results.mkdir(parents=True, exist_ok=True)
        out = self.published_path(record["dataset"], record["uncertainty"], record["seed"], f"{record['steps'] // 1000}k", record["kappa"])
        out.write_text(json.dumps(record, indent=2) + "\n")
        return out

    def study_record(self, run_dir: Path, command: str) -> dict[str, Any]:
        """The campaign's record plus κ, λ, role, the last-5 mean, ≥ 20 final episodes and the model's bound."""
        from mopo_kit.evaluation import evaluate_in_env
        from mopo_kit.experiments.run_evaluation import load_run

        record = self.run_record(run_dir, command)
        payload = json.loads((run_dir / "config.json").read_text())
        results = json.loads((run_dir / "results.json").read_text())
        resolved = payload["resolved"]
        kappa = float(resolved.get("kappa") or payload["config"].get("kappa") or 0.0)
        role = role_of(str(record["dataset"]), str(payload["config"]["uncertainty"]["type"]), kappa, int(record["seed"]), self.records())
        loaded = load_run(run_dir, "cpu")
        final_seed = 100_000 + int(record["seed"])  # apart from every training-time evaluation's seeds
        final = evaluate_in_env(loaded.task, loaded.env_policy, FINAL_EPISODES, seed=final_seed)
        record.update(
            kappa=kappa,
            lam=float(resolved["lam"]),
            penalty_scale=resolved.get("penalty_scale"),
            role=role,
            return_last5=round(last5, 2) if (last5 := tail_mean(record["curve"])) is not None else None,
            episode_returns=[round(r, 3) for r in final.episode_returns],
            final_eval={"episodes": FINAL_EPISODES, "seed": final_seed, "return_mean": final.return_mean, "return_std": final.return_std},
            model_bound={k: results["bound"][k] for k in ("eta_hat", "epsilon", "lam", "bound", "rollouts", "horizon", "gamma")},
        )
        return record

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(p.read_text()) for p in sorted(self.results.glob("*__kappa*__s*__*.json"))]


STUDY = PenaltyStudy(
    name="penalty-study",
    results=RESULTS,
    stages={1: Stage(tuple(CELLS), STEPS, label="tuning and report")},
    methods={**{name: name for name in ESTIMATORS}, "mbpo": MBPO},
    script="penalty_study.py",
)


# ------------------------------------------------------------------------------------ κ grid
def kappa_paper(cells: list[str], sweep_dir: Path) -> dict[str, Any]:
    """Per cell, the κ of MOPO's λ for ``max_aleatoric`` on the seed-3 model; computed once, then frozen."""
    from mopo_kit.data.load import load_dataset
    from mopo_kit.dynamics.storage import load_dynamics
    from mopo_kit.penalty_scale import penalty_scale
    from mopo_kit.uncertainty.builtin import MaxAleatoric

    frozen = json.loads(KAPPA_FILE.read_text()) if KAPPA_FILE.exists() else {}
    for cell in [cell for cell in cells if cell not in frozen]:
        job = model_job(spec_for([], sweep_dir), sweep_dir, {"dataset": cell, "seed": TUNING_SEED})
        job["device"] = "cpu"
        ensure_shared_dynamics(job, lambda m: print(f"[penalty-study] {m}", flush=True))
        data = load_dataset(cell)
        model = load_dynamics(job["target"], dims=(data.obs_dim, data.act_dim), device="cpu")
        scale = penalty_scale(data, model, MaxAleatoric(), name="max_aleatoric")
        kappa = scale.kappa_of(PAPER_LAM[cell])
        fit = json.loads((Path(job["target"]) / "fit_report.json").read_text())
        frozen[cell] = {
            "paper_lam": PAPER_LAM[cell],
            "kappa_paper": kappa,
            "grid": [round_sig(kappa * factor) for factor in KAPPA_FACTORS],
            "penalty_scale": scale.to_json(),
            "model": {"seed": TUNING_SEED, **{k: fit.get(k) for k in ("epochs", "stop_reason", "holdout_mse", "dataset_sha256")}},
            "commit": commit(),
            "machine": machine(),
            "command": "python benchmarks/penalty_study.py " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
        }
        RESULTS.mkdir(parents=True, exist_ok=True)
        KAPPA_FILE.write_text(json.dumps(frozen, indent=2) + "\n")
        print(f"[penalty-study] {cell}: κ_paper = {kappa:.4g} (λ = {PAPER_LAM[cell]}), grid {frozen[cell]['grid']}", flush=True)
    return frozen


# ------------------------------------------------------------------------------------ points
def spec_for(points: list[dict[str, Any]], sweep_dir: Path) -> SweepSpec:
    """The campaign's base settings over explicit points; W&B groups by cell, job type = estimator."""
    base = STUDY.sweep_spec(list(CELLS), list(ESTIMATORS), [TUNING_SEED], STEPS).base
    return SweepSpec(
        name=STUDY.name,
        grid={"dataset": sorted({p["dataset"] for p in points}), "uncertainty": list(ESTIMATORS)},
        base=base,
        dynamics={"max_epochs": MODEL_MAX_EPOCHS},
        points=points,
        group_by_dataset=True,
    )


def tuning_points(cells: list[str], grid: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"dataset": cell, "uncertainty": name, "kappa": kappa, "horizon": CELLS.get(cell, EXTRA_CELLS.get(cell)), "seed": TUNING_SEED}
        for cell in cells
        for kappa in grid[cell]["grid"]
        for name in ESTIMATORS
    ]


def selected(records: list[dict[str, Any]], grid: dict[str, Any]) -> dict[str, dict[str, float]]:
    """cell → estimator → κ with the best :data:`SELECTION` on the tuning seed, once all its κ runs are published."""
    picks: dict[str, dict[str, float]] = {}
    for cell, entry in grid.items():
        for name in ESTIMATORS:
            runs = {r["kappa"]: r for r in records if r["role"] == "tuning" and r["dataset"] == cell and r["uncertainty"] == name}
            if all(k in runs for k in entry["grid"]):
                best = max(sorted(entry["grid"]), key=lambda k: (runs[k][SELECTION], -k))  # ties: the smaller κ
                picks.setdefault(cell, {})[name] = best
    return picks


def role_of(cell: str, uncertainty: str, kappa: float, seed: int, records: list[dict[str, Any]]) -> str:
    """``tuning`` on seed 3; on a report seed ``report`` at the estimator's pick (or MBPO), else
    ``paper_kappa`` (:func:`paper_kappa_points`: ``max_aleatoric`` at κ_paper where it was not picked)."""
    if seed == TUNING_SEED:
        return "tuning"
    frozen = json.loads(KAPPA_FILE.read_text()) if KAPPA_FILE.exists() else {}
    pick = selected(records, frozen).get(cell, {}).get(uncertainty)
    return "report" if uncertainty == MBPO or pick is None or pick == kappa else "paper_kappa"


def paper_kappa_points(cells: list[str], picks: dict[str, dict[str, float]], grid: dict[str, Any]) -> list[dict[str, Any]]:
    """``max_aleatoric`` at the grid's κ_paper (its middle value) on seeds 0-2 of each cell whose
    tuning picked another κ for it: MOPO's λ on the study's own models, beside the report."""
    points = []
    for seed in REPORT_SEEDS:
        for cell in cells:
            if len(picks.get(cell, {})) < len(ESTIMATORS) or cell not in grid:
                continue
            paper = grid[cell]["grid"][len(KAPPA_FACTORS) // 2]
            if picks[cell]["max_aleatoric"] != paper:
                points.append({"dataset": cell, "uncertainty": "max_aleatoric", "kappa": paper, "horizon": CELLS.get(cell, EXTRA_CELLS.get(cell)), "seed": seed})
    return points


def report_points(cells: list[str], picks: dict[str, dict[str, float]]) -> list[dict[str, Any]]:
    """Seeds 0-2 of each cell whose tuning is complete (every estimator picked), with MBPO beside them.

    MBPO runs here rather than being taken from the D4RL/OOD tables: those policies are not kept,
    so their final ≥ 20-episode evaluation and model numbers cannot be added; the tables' MBPO
    numbers for the same seeds are a consistency check in the docs.
    """
    points = []
    for seed in REPORT_SEEDS:
        for cell in cells:
            if len(picks.get(cell, {})) < len(ESTIMATORS):
                continue
            horizon = CELLS.get(cell, EXTRA_CELLS.get(cell))
            points.append({"dataset": cell, "uncertainty": MBPO, "kappa": 0.0, "horizon": horizon, "seed": seed})
            for name, kappa in picks.get(cell, {}).items():
                points.append({"dataset": cell, "uncertainty": name, "kappa": kappa, "horizon": horizon, "seed": seed})
    return points


# ------------------------------------------------------------------------------------ table
def build_table(grid: dict[str, Any]) -> dict[str, Any]:
    """Write table.json (:func:`compute_table`) and return it."""
    table = compute_table(grid)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "table.json").write_text(json.dumps(table, indent=2) + "\n")
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
                }
        if at_paper and report_runs[MBPO]:
            table["versus_mbpo"].setdefault(cell, {})["paper_kappa"] = {
                "kappa": at_paper[0]["kappa"],
                "return_last5": versus([r["return_last5"] for r in at_paper], [r["return_last5"] for r in report_runs[MBPO]]),
                "final_mean": versus(final_means(at_paper), final_means(report_runs[MBPO])),
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
    return table


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


DOC = ROOT / "docs" / "penalties.md"
DOC_MARKER = "<!-- begin generated: penalty_study.py tuning -->"
IMG = ROOT / "docs" / "img"
BANDIT_NS = (1, 3, 5, 10, 20, 50)


def tuning_markdown(table: dict[str, Any]) -> str:
    """The docs table of tuning runs (seed 3), from table.json: one row per cell × estimator × κ."""
    lines = [
        "| cell | estimator | κ | λ | last-5 mean | final (20 episodes) | η̂ | ε | η̂ − λ·ε | picked |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for cell, estimators in table["tuning"].items():
        for name, runs in estimators.items():
            pick = table["selected"].get(cell, {}).get(name)
            for run in runs:
                lines.append(
                    f"| {cell} | `{name}` | {run['kappa']:g} | {run['lam']:.3g} | {run['return_last5']:.0f} | {run['final_mean']:.0f} | "
                    f"{run['eta_hat']:.2f} | {run['epsilon']:.2f} | {run['bound']:.2f} | {'**yes**' if pick == run['kappa'] else ''} |"
                )
    done = sum(len(runs) for estimators in table["tuning"].values() for runs in estimators.values())
    total = sum(len(entry["grid"]) * len(ESTIMATORS) for entry in table["kappa_paper"].values())
    lines.append("")
    lines.append(f"{done} of {total} tuning runs published for the cells whose κ grid is fixed; report runs: "
                 f"{sum(v['return_last']['n'] for cell in table['report'].values() for v in cell.values())}.")
    return "\n".join(lines)


def _ms(entry: dict[str, Any] | None) -> str:
    return "–" if not entry else f"{entry['mean']:.0f} ± {entry['std']:.0f}" + (f" (n={entry['n']})" if entry["n"] != len(REPORT_SEEDS) else "")


def report_markdown(table: dict[str, Any]) -> str:
    """The report table: per cell, each method at its selected κ (seeds 0-2) and MOPO at the paper's λ from the tables."""
    lines = [
        "| cell | method | κ | λ per seed | last evaluation | last-5 mean | final (20 episodes) |",
        "|---|---|---|---|---|---|---|",
    ]
    for cell in table["kappa_paper"]:
        for method, row in table["report"].get(cell, {}).items():
            lines.append(f"| {cell} | `{method}` | {row['kappa']:g} | {', '.join(f'{lam:.3g}' for lam in row['lam'])} | "
                         f"{_ms(row['return_last'])} | {_ms(row['return_last5'])} | {_ms(row['final_mean'])} |")
        ours = table.get("paper_kappa", {}).get(cell)
        if ours:
            lines.append(f"| {cell} | `max_aleatoric` at κ_paper (study's models) | {ours['kappa']:g} | {', '.join(f'{lam:.3g}' for lam in ours['lam'])} | "
                         f"{_ms(ours['return_last'])} | {_ms(ours['return_last5'])} | {_ms(ours['final_mean'])} |")
        paper = table.get("paper_mopo", {}).get(cell)
        if paper:
            lines.append(f"| {cell} | MOPO at the paper's λ (table's runs) | {table['kappa_paper'][cell]['kappa_paper']:.2g} | {paper['lam']:g} | "
                         f"{_ms(paper['return_last'])} | {_ms(paper['return_last5'])} | – |")
    runs = sum(v["return_last"]["n"] for cell in table["report"].values() for v in cell.values())
    lines += ["", f"{runs} report runs published (of {len(REPORT_SEEDS) * (len(ESTIMATORS) + 1)} per cell). "
              "mean ± std over seeds 0-2; n = seeds published so far where fewer."]
    return "\n".join(lines)


def _delta(entry: dict[str, Any]) -> str:
    ci = entry["ci"]
    return f"{entry['delta']:+.0f}" + (f" [{ci[0]:+.0f}, {ci[1]:+.0f}]" if ci else "")


def versus_markdown(table: dict[str, Any]) -> str:
    """Each estimator at its selected κ against MBPO, seed for seed: the difference of the means with its
    Welch 95 % interval, and the probability that a run of the estimator beats a run of MBPO."""
    lines = [
        "| cell | estimator | κ | seeds (estimator / MBPO) | Δ last-5 mean [95 % CI] | P(beats MBPO), last-5 | Δ final, 20 episodes [95 % CI] | P(beats MBPO), final |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for cell, estimators in table.get("versus_mbpo", {}).items():
        for name, row in estimators.items():
            last5, final = row["return_last5"], row["final_mean"]
            label = {PAPER_MOPO: "MOPO at the paper's λ (table's runs, own model fits)", "paper_kappa": "`max_aleatoric` at κ_paper (study's models)"}.get(name, f"`{name}`")
            lines.append(f"| {cell} | {label} | {row['kappa']:.2g} | {last5['n_a']} / {last5['n_b']} | {_delta(last5)} | {last5['prob_improvement']:.2f} | "
                         + (f"{_delta(final)} | {final['prob_improvement']:.2f} |" if final else "– | – |"))
    return "\n".join(lines)


def across_markdown(table: dict[str, Any]) -> str:
    """Per estimator, P(beats MBPO) averaged over the cells whose report is complete, with its interval."""
    lines = [
        "| estimator | cells (complete report) | P(beats MBPO), last-5 [95 % CI] | P(beats MBPO), final 20 episodes [95 % CI] |",
        "|---|---|---|---|",
    ]
    show = lambda e: f"{e['prob_improvement']:.2f} [{e['ci'][0]:.2f}, {e['ci'][1]:.2f}]"  # noqa: E731
    for name, row in table.get("across_cells", {}).items():
        lines.append(f"| `{name}` | {', '.join(row['cells'])} | {show(row['return_last5'])} | {show(row['final_mean'])} |")
    if len(lines) == 2:
        lines.append("| – | no cell has all report seeds of an estimator and MBPO yet | – | – |")
    return "\n".join(lines)


def offline_markdown(table: dict[str, Any]) -> str:
    """Per cell and estimator: does an offline number order the three κ policies as their real returns do?"""
    lines = [
        "| cell | estimator | ρ(η̂) | ρ(−ε) | ρ(η̂ − λ·ε) | picks the best κ: η̂ / −ε / η̂ − λ·ε | regret of η̂ − λ·ε's pick |",
        "|---|---|---|---|---|---|---|",
    ]
    yes = lambda flag: "yes" if flag else "no"  # noqa: E731
    for cell, estimators in table["offline_selection"].items():
        for name, row in estimators.items():
            rho = [row[stat]["spearman"] for stat in ("eta_hat", "epsilon", "bound")]
            lines.append(f"| {cell} | `{name}` | " + " | ".join("–" if r is None else f"{r:+.2f}" for r in rho)
                         + f" | {' / '.join(yes(row[stat]['picks_best']) for stat in ('eta_hat', 'epsilon', 'bound'))} | {row['bound']['regret']:.0f} |")
    return "\n".join(lines)


def bandit_markdown(table: dict[str, Any]) -> str:
    """The expected real return of UCB1's pick after n real episodes, beside the best κ's."""
    lines = [
        "| cell | estimator | best κ's return | " + " | ".join(f"n = {n}" for n in BANDIT_NS) + " |",
        "|---|---|---|" + "---|" * len(BANDIT_NS),
    ]
    for cell, estimators in table["bandit"].items():
        for name, row in estimators.items():
            curve = row["expected_return_of_pick"]
            lines.append(f"| {cell} | `{name}` | {max(row['true_values']):.0f} | " + " | ".join(f"{curve[n - 1]:.0f}" for n in BANDIT_NS if n <= len(curve)) + " |")
    return "\n".join(lines)


def plots_markdown(table: dict[str, Any]) -> str:
    """The per-cell plots that :func:`plot_cells` draws, one image per cell with tuning runs."""
    return "\n\n".join(f"![{cell}](img/penalties_{_file_safe(cell)}.png)" for cell in table["tuning"])


#: the other generated blocks of docs/penalties.md: marker → what writes its body from table.json
DOC_BLOCKS = {
    "<!-- begin generated: penalty_study.py plots -->": plots_markdown,
    "<!-- begin generated: penalty_study.py report -->": report_markdown,
    "<!-- begin generated: penalty_study.py versus mbpo -->": versus_markdown,
    "<!-- begin generated: penalty_study.py across cells -->": across_markdown,
    "<!-- begin generated: penalty_study.py offline selection -->": offline_markdown,
    "<!-- begin generated: penalty_study.py bandit -->": bandit_markdown,
}


def plot_cells(table: dict[str, Any]) -> list[Path]:
    """docs/img/penalties_<cell>.png: real return against κ per estimator (tuning seed; MBPO and the
    paper-λ MOPO as lines), and the bandit's expected pick against real episodes spent."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    IMG.mkdir(parents=True, exist_ok=True)
    paths = []
    colors = {name: f"C{i}" for i, name in enumerate(ESTIMATORS)}
    for cell, estimators in table["tuning"].items():
        fig, (left, right) = plt.subplots(1, 2, figsize=(12.5, 3.8), gridspec_kw={"wspace": 0.9})
        for name, runs in estimators.items():
            kappas = [r["kappa"] for r in runs]
            left.plot(kappas, [r["return_last5"] for r in runs], "o-", color=colors[name], label=f"{name} (last-5 mean)")
            left.plot(kappas, [r["final_mean"] for r in runs], "x--", color=colors[name], alpha=0.6, label=f"{name} (final, 20 ep.)")
        mbpo = table["report"].get(cell, {}).get("mbpo")
        if mbpo:
            left.axhline(mbpo["return_last5"]["mean"], color="k", linewidth=1, label=f"MBPO κ = 0 (seeds {', '.join(map(str, mbpo['seeds']))}, last-5)")
        paper = table.get("paper_mopo", {}).get(cell)
        if paper:
            left.axhline(paper["return_last5"]["mean"], color="grey", linestyle=":", label="MOPO, paper's λ (table, seeds 0-2, last-5)")
        left.axvline(table["kappa_paper"][cell]["kappa_paper"], color="grey", linewidth=0.6)
        grid_kappas = table["kappa_paper"][cell]["grid"]
        left.set(xscale="log", title=f"{cell}: tuning seed {TUNING_SEED}", xlabel="κ (λ · mean u / mean |r| on the data); thin line: κ_paper", ylabel="real return")
        left.set_xticks(grid_kappas, [f"{k:g}" for k in grid_kappas])
        left.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        left.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
        for name, row in table["bandit"].get(cell, {}).items():
            curve = row["expected_return_of_pick"]
            right.plot(range(1, len(curve) + 1), curve, color=colors[name], label=name)
            right.axhline(max(row["true_values"]), color=colors[name], linestyle=":", linewidth=0.8)
        right.set(title="UCB1 over the three κ policies", xlabel="real episodes spent", ylabel="expected real return of the pick")
        if table["bandit"].get(cell):
            right.legend(fontsize=6)
        else:
            right.text(0.5, 0.5, "after two κ runs of an estimator", ha="center", transform=right.transAxes)
        path = IMG / f"penalties_{_file_safe(cell)}.png"
        fig.savefig(path, dpi=110, bbox_inches="tight")
        plt.close(fig)
        paths.append(path)
    return paths


def write_docs(table: dict[str, Any]) -> None:
    from campaign import replace_generated_block

    where = str(DOC.relative_to(ROOT))
    text = replace_generated_block(DOC.read_text(), DOC_MARKER, tuning_markdown(table), where=where)
    for marker, render in DOC_BLOCKS.items():
        text = replace_generated_block(text, marker, render(table), where=where)
    DOC.write_text(text)
    plot_cells(table)


def _mean_std(values: list[float | None]) -> dict[str, Any]:
    """The campaigns' mean ± std over seeds, leaving out runs without the number."""
    return campaign_mean_std([v for v in values if v is not None])


# ------------------------------------------------------------------------------------ main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cell", action="append", metavar="DATASET", choices=[*CELLS, *EXTRA_CELLS], help="only these cells (repeatable; default: the four study cells)")
    parser.add_argument("--phase", choices=["tuning", "report", "all"], default="all",
                        help="tuning (seed 3), report (seeds 0-2 at the selected κ, MBPO, and max_aleatoric at κ_paper where not picked), or both (default)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, help="torch threads per trial (default: cores / workers)")
    parser.add_argument("--sweep-dir", default=str(ROOT / "sweeps" / "penalty-study"))
    parser.add_argument("--wandb", action="store_true", help="log every run to W&B (offline without an API key), grouped by cell, job type = estimator")
    parser.add_argument("--device", help="where trials and models compute (default auto)")
    parser.add_argument("--status", action="store_true", help="only say where each run stands; read-only")
    parser.add_argument("--table", action="store_true", help="only rebuild table.json from the published runs and print the tuning table")
    parser.add_argument("--write-docs", action="store_true", help="... and regenerate the tuning table in docs/penalties.md")
    args = parser.parse_args(argv)
    cells = args.cell or list(CELLS)
    sweep_dir = Path(args.sweep_dir)
    command = "python benchmarks/penalty_study.py " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    say = lambda m: print(f"[{STUDY.name}] {m}", flush=True)  # noqa: E731
    if args.table or args.write_docs:
        frozen = json.loads(KAPPA_FILE.read_text()) if KAPPA_FILE.exists() else {}
        table = build_table(frozen)
        if args.write_docs:
            write_docs(table)
            print(f"wrote {RESULTS.relative_to(ROOT)}/table.json and {DOC.relative_to(ROOT)}")
        else:
            print(tuning_markdown(table))
        return 0
    frozen = json.loads(KAPPA_FILE.read_text()) if KAPPA_FILE.exists() else {}
    grid = {cell: frozen[cell] for cell in cells if cell in frozen}  # a cell's grid is computed when its tuning is next

    def done(summary: dict[str, Any]) -> None:
        say(f"published {STUDY.publish(Path(summary['run_dir']), command).name}")
        write_docs(build_table(json.loads(KAPPA_FILE.read_text())))  # every cell frozen so far, not only this selection's

    budget = f"{STEPS // 1000}k"

    handed: dict[str, dict[str, Any]] = {}  # every point next_points has returned, by trial id

    def next_points(seen: set[str]) -> list[dict[str, Any]]:
        """What to run next, first first: the report runs that tuning has unlocked, then the tuning
        of the first cell not yet queued whole (its κ grid computed now, from its seed-3 model)."""
        picks = selected(STUDY.records(), grid)
        points = report_points(cells, picks) + paper_kappa_points(cells, picks, grid) if args.phase != "tuning" else []
        # another cell's tuning only when the queue runs low: it would go to the front (refill), ahead
        # of queued runs that are nearer to completing a cell (its report runs)
        waiting = sum(1 for tid, p in handed.items() if tid in seen and not STUDY.published_reason(p, budget))
        if args.phase != "report" and (args.status or waiting < 2 * args.workers):
            for cell in cells:
                if cell not in grid:
                    if args.status:
                        continue
                    if any(trial_id(p) not in seen for p in points):
                        break  # runs to hand out first: the next cell's model is fitted when they are queued
                    grid.update(kappa_paper([cell], sweep_dir))  # waits for (or fits) the cell's seed-3 model
                tuning = tuning_points([cell], grid)
                if any(trial_id(p) not in seen and not STUDY.published_reason(p, budget) for p in tuning):
                    points += tuning
                    if not args.status:  # --status shows every cell whose grid is frozen
                        break
        # ... but a half-done tuning run of any frozen cell is always handed out (it resumes first)
        points += [p for p in tuning_points([c for c in cells if c in grid], grid)
                   if p not in points and (sweep_dir / "trials" / trial_id(p) / "checkpoint" / "progress.json").exists()]
        points = [p for p in points if not STUDY.published_reason(p, budget)]
        handed.update((trial_id(p), p) for p in points)
        return points

    # one sweep whose queue is refilled as results arrive (run_sweep's ``refill``): both workers
    # stay busy across cells, and a cell's report runs go first as soon as its tuning has picked κ
    spec = spec_for(next_points(set()), sweep_dir)
    if args.status:
        for row in STUDY.status(spec, sweep_dir, budget):
            print(json.dumps(row))
        return 0
    for path in STUDY.publish_finished(spec, sweep_dir, budget, command):
        say(f"published {path.name}")
    with stoppable(STUDY.name) as stopped:  # SIGTERM: trials and model fits checkpoint, then exit 143
        run_sweep(
            spec, sweep_dir, workers=args.workers, threads=args.threads, wandb=args.wandb, device=args.device, say=say,
            on_trial_done=done, skip=partial(STUDY.published_reason, budget=budget),
            refill=lambda seen: [p for p in next_points(seen) if trial_id(p) not in seen],
        )
    if stopped:
        return stopped[0]
    write_docs(build_table(json.loads(KAPPA_FILE.read_text()) if KAPPA_FILE.exists() else {}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
