"""The penalty study: which error bound, at what strength κ, beats no penalty — κ chosen on a held-out seed.

    python benchmarks/penalty_study.py                      # everything still missing, tuning first
    python benchmarks/penalty_study.py --cell hopper-mixed  # one cell (repeatable)
    python benchmarks/penalty_study.py --phase tuning       # only the seed-3 tuning runs
    python benchmarks/penalty_study.py --status             # where each run stands (read-only)
    python benchmarks/penalty_study.py --models-only --cell halfcheetah-jump   # fit a cell's 4 shared models ahead
    python benchmarks/penalty_study.py --table              # rebuild table.json from the published runs
    python benchmarks/penalty_study.py --write-docs         # ... and docs/penalties.md's tables and plots

The design (cells, κ grid, seeds, the selection rule, roles) is ``penalty_design.py``; the table
``penalty_table.py``; the docs' tables and plots ``penalty_docs.py``. Reading: ``docs/penalties.md``.

Mechanics are the campaign's (``benchmarks/campaign.py``): one shared model per dataset × seed,
two trials at a time with one torch thread each, resumable, each run published the moment it
finishes as ``<cell>__<estimator>__kappa<κ>__s<seed>__100k.json`` in ``benchmarks/results/penalties/``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections import Counter
from functools import partial
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
from campaign import stoppable  # noqa: E402
from common import ROOT, commit, machine, one_line_errors  # noqa: E402
from penalty_design import (  # noqa: E402
    CELLS, EXTRA_CELLS, KAPPA_FACTORS, KAPPA_FILE, MBPO, PAPER_LAM, REPORT_SEEDS, RESULTS, STEPS, STUDY, TUNING_SEED,
    paper_kappa_points, report_points, round_sig, selected, spec_for, tuning_points,
)
from penalty_docs import DOC, tuning_markdown, write_docs  # noqa: E402
from penalty_table import build_table  # noqa: E402

from mopo_kit.experiments.shared_models import ensure_shared_dynamics, fit_shared_dynamics, model_job  # noqa: E402
from mopo_kit.experiments.sweep import run_sweep, trial_id  # noqa: E402


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


# ------------------------------------------------------------------------------------ queue
class StudyQueue:
    """Everything still to run, in priority order — the sweep's queue follows it (``run_sweep``'s
    ``refill``, asked after every trial): the report runs that tuning has unlocked, then every
    frozen cell's tuning in the cells' order, so the rest of a cell nearly tuned runs before the
    next cell's first runs and a cell completes (and its report starts) as early as it can. The
    next cell is frozen (its κ grid computed, from its seed-3 model: ``freeze``) only when the
    queue runs low and everything before it is queued."""

    def __init__(self, cells: list[str], grid: dict[str, Any], sweep_dir: Path, *, phase: str = "all", workers: int = 2,
                 status: bool = False, freeze: Callable[[list[str], Path], dict[str, Any]] = kappa_paper) -> None:
        self.cells, self.grid, self.sweep_dir = cells, grid, sweep_dir
        self.phase, self.workers, self.status, self.freeze = phase, workers, status, freeze
        self.budget = f"{STEPS // 1000}k"
        self.handed: dict[str, dict[str, Any]] = {}  # every point returned so far, by trial id

    def _left(self, point: dict[str, Any]) -> bool:
        return not STUDY.published_reason(point, self.budget)

    def _tuning(self) -> list[dict[str, Any]]:
        return tuning_points([c for c in self.cells if c in self.grid], self.grid)

    def __call__(self, seen: set[str]) -> list[dict[str, Any]]:
        picks = selected(STUDY.records(), self.grid)
        points = report_points(self.cells, picks) + paper_kappa_points(self.cells, picks, self.grid) if self.phase != "tuning" else []
        waiting = sum(1 for tid, p in self.handed.items() if tid in seen and self._left(p))
        if self.phase != "report" and not self.status and waiting < 2 * self.workers:
            queued = all(trial_id(p) in seen or not self._left(p) for p in points + self._tuning())
            if queued and (cell := next((c for c in self.cells if c not in self.grid), None)):
                self.grid.update(self.freeze([cell], self.sweep_dir))  # waits for (or fits) the cell's seed-3 model
        if self.phase != "report":
            points += self._tuning()
        else:  # ... but a half-done tuning run of any frozen cell is always handed out (it resumes first)
            points += [p for p in self._tuning() if (self.sweep_dir / "trials" / trial_id(p) / "checkpoint" / "progress.json").exists()]
        points = [p for p in points if self._left(p)]
        self.handed.update((trial_id(p), p) for p in points)
        return points


def status_summary(records: list[dict[str, Any]], cells: list[str], grid: dict[str, Any], *, left: int) -> str:
    """One line after ``--status``'s rows: what is published, by role, and what is left — so a
    complete study says so instead of printing nothing (its queue lists only unpublished runs)."""
    mine = [r for r in records if r["dataset"] in cells]
    by_role = Counter(str(r["role"]) for r in mine)
    roles = ", ".join(f"{by_role[role]} {role}" for role in ("tuning", "report", "paper_kappa") if by_role[role])
    unfrozen = [c for c in cells if c not in grid]
    tail = f"; not started (κ grid not frozen yet): {', '.join(unfrozen)}" if unfrozen else ""
    return f"{len(mine)} run(s) published ({roles or 'none'}); {left} to run in the frozen cells{tail}"


# ------------------------------------------------------------------------------------ models
def fit_models(cells: list[str], sweep_dir: Path, *, workers: int, threads: int | None, device: str | None, say: Callable[[str], None]) -> int:
    """Fit every shared model the study will need for ``cells`` — the tuning seed's and the report
    seeds' — with the trials' own function and job, so a trial later finds its model fitted.

    Why: the queue reaches a cell's models one at a time, inside a trial (a halfcheetah-jump model
    is 75 minutes on one core), and a cell's report models only once its tuning is done, while the
    second worker may have nothing to start. Fitted ahead (here, on spare cores, or on a GPU — the
    fits run where ``device`` says), they cost the queue nothing. Resumable (per-epoch fit
    checkpoints, a lock per model); returns 1 if any fit failed.
    """
    points = [{"dataset": cell, "uncertainty": MBPO, "seed": seed} for cell in cells for seed in (TUNING_SEED, *REPORT_SEEDS)]
    with stoppable(STUDY.name) as stopped:
        failures = fit_shared_dynamics(spec_for(points, sweep_dir), sweep_dir, say, device, workers=workers, threads=threads)
    if stopped:
        return stopped[0]
    say(f"{len(points) - len(failures)} of {len(points)} shared models ready")
    return 1 if failures else 0


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
    parser.add_argument("--models-only", action="store_true",
                        help="only fit the selected cells' shared models (tuning and report seeds), --workers at once: ahead of the queue, or on a GPU")
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
    if args.models_only:
        return fit_models(cells, sweep_dir, workers=args.workers, threads=args.threads, device=args.device, say=say)
    frozen = json.loads(KAPPA_FILE.read_text()) if KAPPA_FILE.exists() else {}
    grid = {cell: frozen[cell] for cell in cells if cell in frozen}  # a cell's grid is computed when its tuning is next

    def done(summary: dict[str, Any]) -> None:
        say(f"published {STUDY.publish(Path(summary['run_dir']), command).name}")
        write_docs(build_table(json.loads(KAPPA_FILE.read_text())))  # every cell frozen so far, not only this selection's

    next_points = StudyQueue(cells, grid, sweep_dir, phase=args.phase, workers=args.workers, status=args.status)
    budget = next_points.budget

    # one sweep whose queue is refilled as results arrive (run_sweep's ``refill``): both workers
    # stay busy across cells, and a cell's report runs go first as soon as its tuning has picked κ
    spec = spec_for(next_points(set()), sweep_dir)
    if args.status:
        rows = STUDY.status(spec, sweep_dir, budget)
        for row in rows:
            print(json.dumps(row))
        say(status_summary(STUDY.records(), cells, grid, left=len(rows)))
        return 0
    for path in STUDY.publish_finished(spec, sweep_dir, budget, command):
        say(f"published {path.name}")
    with stoppable(STUDY.name) as stopped:  # SIGTERM: trials and model fits checkpoint, then exit 143
        run_sweep(
            spec, sweep_dir, workers=args.workers, threads=args.threads, wandb=args.wandb, device=args.device, say=say,
            on_trial_done=done, skip=partial(STUDY.published_reason, budget=budget),
            refill=next_points,
        )
    if stopped:
        return stopped[0]
    write_docs(build_table(json.loads(KAPPA_FILE.read_text()) if KAPPA_FILE.exists() else {}))
    return 0


if __name__ == "__main__":
    raise SystemExit(one_line_errors("penalty_study.py", main))
