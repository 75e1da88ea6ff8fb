"""The penalty study's design: cells, estimators, the κ grid's factors, seeds, the selection rule
fixed before any run, each run's role, and the points each phase runs.

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

The driver is ``benchmarks/penalty_study.py``; the table from the published runs is
``penalty_table.py``, docs/penalties.md's generated blocks and plots ``penalty_docs.py``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from campaign import MODEL_MAX_EPOCHS, Campaign, Stage  # noqa: E402
from run_stats import TAIL_EVALS, file_safe, tail_mean  # noqa: E402
from common import ROOT  # noqa: E402

from mopo_kit.experiments.sweep import SweepSpec  # noqa: E402

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
#: the folder (in :data:`RESULTS`) of the on-policy checks, one JSON per cell × estimator (``penalty_on_policy.py``)
ON_POLICY_DIR = "on_policy"
#: the key of MOPO at the paper's λ (the D4RL/OOD tables' runs) where the study's tables list it beside the estimators
PAPER_MOPO = "paper_mopo"


def round_sig(value: float, digits: int = 2) -> float:
    return float(f"{value:.{digits}g}")


class PenaltyStudy(Campaign):
    """The campaign's machinery with κ in each run's name and the study's own record and table."""

    def published_path(self, dataset: str, method: str, seed: int, budget: str, kappa: float | None = None) -> Path:
        return self.results / f"{file_safe(dataset)}__{method}__kappa{kappa:g}__s{seed}__{budget}.json"

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

