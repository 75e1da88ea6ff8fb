"""Is each bound an error bound where the study's policies go? The on-policy check on the penalty study.

    python benchmarks/penalty_on_policy.py --sweep-dir /work/campaign/sweeps/penalties   # every complete cell
    python benchmarks/penalty_on_policy.py --sweep-dir ... --cell walker2d-mixed          # one cell

The study says which bound beats no penalty; this says whether the winner is the better error
bound. For every cell whose report is complete and each estimator, ``benchmarks/on_policy_check.py``
runs on that estimator's report policies (seeds 0-2 at its selected κ, and ``max_aleatoric`` at
κ_paper where it ran) and on MBPO's: ``--transitions`` real steps of each deterministic policy, where
the model's one-step error is set against the estimator's u — Spearman's ρ, and the share of steps
whose error exceeds c95·u (c95: the constant that covers 95 % of held-out data). On its own
policies, the states a penalty trained on; on MBPO's, the states an unpenalized policy reaches by
exploiting the model, the same states for every estimator. One JSON per cell × estimator in
``benchmarks/results/penalties/on_policy/``; ``penalty_table.py`` reads them into ``table.json``.

Needs the study's trial directories (the sweep folder of the machine that ran them): a run whose
directory is gone is skipped and said. Resumable: runs already in a JSON are not checked again.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import on_policy_check  # noqa: E402
from common import one_line_errors  # noqa: E402
from penalty_design import CELLS, ESTIMATORS, MBPO, ON_POLICY_DIR, REPORT_SEEDS, STUDY  # noqa: E402

from mopo_kit.experiments.sweep import trial_id  # noqa: E402

TRANSITIONS = 5000


def checked_runs(records: list[dict[str, Any]], cell: str, estimator: str) -> list[dict[str, Any]]:
    """The estimator's report (and κ_paper) runs of ``cell`` and MBPO's, once all report seeds of both are published."""
    own = [r for r in records if r["dataset"] == cell and r["uncertainty"] == estimator and r["role"] in ("report", "paper_kappa")]
    mbpo = [r for r in records if r["dataset"] == cell and r["uncertainty"] == MBPO and r["role"] == "report"]
    complete = lambda runs: {r["seed"] for r in runs if r["role"] == "report"} >= set(REPORT_SEEDS)  # noqa: E731
    return own + mbpo if complete(own) and complete(mbpo) else []


def out_path(cell: str, estimator: str) -> Path:
    return STUDY.results / ON_POLICY_DIR / f"{cell}__{estimator}.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sweep-dir", type=Path, required=True, help="the study's sweep folder (its trials/ hold the policies)")
    parser.add_argument("--cell", action="append", choices=list(CELLS), help="only these cells (repeatable; default: every complete one)")
    parser.add_argument("--transitions", type=int, default=TRANSITIONS)
    args = parser.parse_args(argv)
    if not (args.sweep_dir / "trials").is_dir():
        parser.error(f"--sweep-dir {args.sweep_dir}: no trials/ folder there (name the study's sweep folder)")
    records = STUDY.records()
    for cell in args.cell or list(CELLS):
        for estimator in ESTIMATORS:
            runs = checked_runs(records, cell, estimator)
            if not runs:
                print(f"[on-policy] {cell} {estimator}: report not complete, skipped", flush=True)
                continue
            out = out_path(cell, estimator)
            done = {row["run"] for row in json.loads(out.read_text())["runs"]} if out.exists() else set()
            dirs = [args.sweep_dir / "trials" / trial_id({k: r[k] for k in ("dataset", "uncertainty", "kappa", "horizon", "seed")}) for r in runs]
            missing = [d for d in dirs if not (d / "policy.pt").exists()]
            for d in missing:
                print(f"[on-policy] {d}: no policy.pt there (trial directories stay on the machine that ran them): skipped", flush=True)
            todo = [d for d in dirs if d not in missing and d.name not in done]
            if todo:
                on_policy_check.main([*map(str, todo), "--estimator", estimator, "--transitions", str(args.transitions), "--out", str(out), "--merge"])
    return 0


if __name__ == "__main__":
    raise SystemExit(one_line_errors("penalty_on_policy.py", main))
