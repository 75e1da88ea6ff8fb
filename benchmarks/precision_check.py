"""Does SAC learn as well in bf16? MOPO in bf16 beside the D4RL table's float32 runs (issue 33).

    python benchmarks/precision_check.py                  # the bf16 runs still missing (resumable, 2 at a time)
    python benchmarks/precision_check.py --status         # where each run stands (read-only)
    python benchmarks/precision_check.py --compare        # bf16 against float32: table.json and the verdict
    python benchmarks/precision_check.py --write-docs     # ... and the generated block in docs/performance.md

The runs: MOPO (``max_aleatoric``, the per-task h and λ of the table) on hopper-random and
halfcheetah-random, seeds 0, 1, 2, 100k steps, with ``precision: bf16`` (rollouts and SAC
updates) — the settings of ``d4rl_table.py``'s stage 1 in every other respect, including the
shared model's fit settings; results in ``benchmarks/results/precision_check/``. The float32 side
is the table's own runs (``benchmarks/results/d4rl/<cell>__mopo__s<seed>__100k.json``), not run
again. Each comparison row says whether the two sides' models are the same fit (equal holdout
MSE): the table's models were fitted where that campaign ran (some on a GPU), so a refit here can
differ, and then a difference in return is the model's as much as the precision's.

The test, fixed here before any run (:data:`RULE`): per cell, bf16 "learns as well" when the mean
over seeds of the last-5-evaluation return is at least the float32 mean minus the float32 runs'
own seed standard deviation (a non-inferiority margin of one seed-to-seed spread: with three
seeds, that spread is the resolution the table has). Welch's t-test p-value and the difference
are reported beside it.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from campaign import Campaign, Stage  # noqa: E402
from generated_blocks import generated_block, replace_generated_block  # noqa: E402
from run_stats import TAIL_EVALS, tail_mean  # noqa: E402
from common import ROOT, one_line_errors  # noqa: E402

from mopo_kit.experiments.compare import versus  # noqa: E402

CELLS = ("hopper-random", "halfcheetah-random")
PRECISION = "bf16"
FLOAT32_RESULTS = ROOT / "benchmarks" / "results" / "d4rl"
RULE = (
    f"bf16 learns as well on a cell when mean(bf16 last-{TAIL_EVALS} return) >= mean(fp32) - std(fp32) "
    "over seeds 0-2 (non-inferiority, margin = one float32 seed standard deviation)"
)
DOC = ROOT / "docs" / "performance.md"
DOC_MARKER = "<!-- begin generated: python benchmarks/precision_check.py --write-docs -->"


CHECK = Campaign(
    name="precision-check",
    results=ROOT / "benchmarks" / "results" / "precision_check",
    stages={1: Stage(CELLS, 100_000, methods=("mopo",), label="MOPO in bf16")},
    methods={"mopo": "max_aleatoric"},
    script="precision_check.py",
    precision=PRECISION,  # the D4RL table's stage-1 settings for MOPO, every run in bf16
)


def _side(records: list[dict[str, Any]]) -> dict[str, Any]:
    last5 = [tail_mean(r["curve"]) for r in records]
    return {
        "seeds": [r["seed"] for r in records],
        "precision": sorted({r.get("precision", "fp32") for r in records}),
        "return_last5": [round(v, 1) for v in last5],
        "mean": round(statistics.fmean(last5), 1) if last5 else None,
        "std": round(statistics.pstdev(last5), 1) if len(last5) > 1 else None,  # the tables' ± (population std)
        "holdout_mse": [r.get("dynamics_fit", {}).get("holdout_mse") for r in records],
    }


def compare() -> dict[str, Any]:
    """Per cell: both sides, the difference with its Welch interval and p, and the verdict of :data:`RULE`
    (``None`` until all seeds are in)."""
    rows = {}
    for cell in CELLS:
        sides = {}
        for name, folder in (("fp32", FLOAT32_RESULTS), (PRECISION, CHECK.results)):
            paths = [folder / f"{cell}__mopo__s{seed}__100k.json" for seed in CHECK.seeds]
            sides[name] = _side([json.loads(p.read_text()) for p in paths if p.exists()])
        low, ref = sides[PRECISION], sides["fp32"]
        complete = len(low["seeds"]) == len(ref["seeds"]) == len(CHECK.seeds)
        welch = versus(low["return_last5"], ref["return_last5"]) if complete else None
        same_models = [a == b and a is not None for a, b in zip(ref["holdout_mse"], low["holdout_mse"])] if complete else None
        rows[cell] = {
            "fp32": ref,
            PRECISION: low,
            "difference": round(low["mean"] - ref["mean"], 1) if complete else None,
            "difference_ci95": [round(x, 1) for x in welch["ci"]] if welch and welch["ci"] else None,
            "welch_p": round(welch["p_value"], 3) if welch and welch["p_value"] is not None else None,
            "same_model_fits": same_models,
            "learns_as_well": (low["mean"] >= ref["mean"] - ref["std"]) if complete else None,
        }
    return {"rule": RULE, "cells": rows}


def _cell_side(side: dict[str, Any]) -> str:
    if not side["seeds"]:
        return "–"
    if side["std"] is None:
        return f"{side['mean']:.0f} (seed {side['seeds'][0]})"
    return f"{side['mean']:.0f} ± {side['std']:.0f} (seeds {', '.join(map(str, side['seeds']))})"


def markdown(table: dict[str, Any]) -> str:
    lines = [
        f"| cell | fp32: last-{TAIL_EVALS} mean ± std (table's runs) | {PRECISION} (here) | difference | Welch p | same model fits | learns as well? |",
        "|---|---|---|---|---|---|---|",
    ]
    for cell, row in table["cells"].items():
        same = "–" if row["same_model_fits"] is None else ("all" if all(row["same_model_fits"]) else f"{sum(row['same_model_fits'])} of 3")
        verdict = "–" if row["learns_as_well"] is None else ("yes" if row["learns_as_well"] else "**no**")
        difference = "–" if row["difference"] is None else f"{row['difference']:+.0f}"
        p_value = "–" if row["welch_p"] is None else f"{row['welch_p']:.3g}"
        lines.append(f"| {cell} | {_cell_side(row['fp32'])} | {_cell_side(row[PRECISION])} | {difference} | {p_value} | {same} | {verdict} |")
    lines += ["", f"Rule (fixed before the runs): {table['rule']}."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--compare" in argv or "--write-docs" in argv:
        table = compare()
        CHECK.results.mkdir(parents=True, exist_ok=True)
        (CHECK.results / "table.json").write_text(json.dumps(table, indent=2) + "\n")
        if "--write-docs" in argv:
            DOC.write_text(replace_generated_block(DOC.read_text(), DOC_MARKER, markdown(table), where=str(DOC.relative_to(ROOT))))
            print(f"wrote {(CHECK.results / 'table.json').relative_to(ROOT)} and {DOC.relative_to(ROOT)}")
        else:
            print(markdown(table))
        return 0
    return CHECK.main(argv, description=__doc__.split("\n\n")[0])


def docs_are_current() -> bool:
    """For the tests: the generated block says what the committed runs give."""
    return generated_block(DOC.read_text(), DOC_MARKER) == markdown(compare())


if __name__ == "__main__":
    raise SystemExit(one_line_errors("precision_check.py", main))
