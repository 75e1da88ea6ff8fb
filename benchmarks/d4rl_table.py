"""The talk's D4RL table on mopo_kit's own datasets: MOPO vs MBPO, 3 seeds, resumable, one command.

    python benchmarks/d4rl_table.py                      # stage 1 (random + mixed), whatever is missing
    python benchmarks/d4rl_table.py --stage 2            # medium + medium-expert
    python benchmarks/d4rl_table.py --stage 3            # mixed cells extended to 300k steps
    python benchmarks/d4rl_table.py --cell hopper-mixed  # one cell (any dataset), its stage's budget
    python benchmarks/d4rl_table.py --table              # only rebuild table.json, docs plots

A thin layer over the sweep machinery (:mod:`mopo_kit.experiments.sweep`): each invocation is one sweep over
dataset × {max_aleatoric (MOPO), zero (MBPO)} × seed, in ``sweeps/d4rl`` (override with
``--sweep-dir``). MOPO's per-task h and λ come from ``MOPO_HYPERPARAMETERS`` (the grid leaves
them unset); MBPO is the ``zero`` estimator at the same h (its λ·u is 0). One dynamics model per
dataset × seed is shared by both methods; trials run two at a time with one torch thread each
(measured fastest on 2 cores), survive a kill (rerun the command) and a finished run is extended
by asking for more steps. Every finished run is published at once as
``benchmarks/results/d4rl/<dataset>__<method>__s<seed>__<k>k.json``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, commit, machine  # noqa: E402

from mopo_kit.experiments.sweep import SweepSpec, run_sweep  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "d4rl"
TASKS = ("halfcheetah", "hopper", "walker2d")
STAGES: dict[int, dict[str, Any]] = {
    1: {"kinds": ("random", "mixed"), "steps": 100_000},
    2: {"kinds": ("medium", "medium-expert"), "steps": 100_000},
    3: {"kinds": ("mixed",), "steps": 300_000},
}
METHODS = {"mopo": "max_aleatoric", "mbpo": "zero"}
#: The talk's table (raw returns, D4RL v0): MOPO, MBPO, batch mean (shared/reference/mopo-talk.md).
TALK: dict[str, tuple[float, float, float]] = {
    "halfcheetah-random": (3679.8, 3533.0, -303.2),
    "hopper-random": (412.8, 126.6, 299.3),
    "walker2d-random": (596.3, 395.9, 0.9),
    "halfcheetah-mixed": (6418.3, 5598.4, 2300.6),
    "hopper-mixed": (2988.7, 1599.2, 470.5),
    "walker2d-mixed": (1963.5, 1021.8, 358.4),
    "halfcheetah-medium": (4706.9, 3230.0, 3953.0),
    "hopper-medium": (840.9, 137.8, 1021.7),
    "walker2d-medium": (645.5, 582.6, 498.4),
}
#: The same for every cell: MOPO's early stopping (1 %, 5 epochs), capped so 18 models fit a few sessions.
MODEL_MAX_EPOCHS = 60
EVAL_EVERY = 5
EVAL_EPISODES = 10


def stage_cells(stage: int) -> list[str]:
    return [f"{task}-{kind}" for kind in STAGES[stage]["kinds"] for task in TASKS]


def sweep_spec(cells: list[str], methods: list[str], seeds: list[int], steps: int, wandb: bool) -> SweepSpec:
    """One sweep: the cells × methods × seeds at ``steps`` gradient steps (epochs of 1,000)."""
    base: dict[str, Any] = {
        "epochs": -(-steps // 1000),
        "steps_per_epoch": 1000,
        "eval_every": EVAL_EVERY,
        "eval_episodes": EVAL_EPISODES,
        "checkpoint_every": EVAL_EVERY,
    }
    return SweepSpec(
        name="d4rl-table",
        grid={"dataset": cells, "uncertainty": [METHODS[m] for m in methods], "seed": seeds},
        base=base,
        dynamics={"max_epochs": MODEL_MAX_EPOCHS},
    )


def _method(uncertainty: str) -> str:
    return next((m for m, u in METHODS.items() if u == uncertainty), uncertainty)


def _batch_stats(dataset: str) -> tuple[float, float]:
    from mopo_kit.data.load import load_dataset

    summary = load_dataset(dataset).summary()
    return round(summary.return_mean, 1), round(summary.return_max, 1)


def run_record(run_dir: Path, command: str) -> dict[str, Any]:
    """One finished run as the issue's JSON: settings, last/best return, curve, fit, provenance."""
    payload = json.loads((run_dir / "config.json").read_text())
    config, resolved = payload["config"], payload["resolved"]
    results = json.loads((run_dir / "results.json").read_text())
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    curve = [
        {k: row.get(k) for k in ("epoch", "gradient_steps", "return_mean", "return_std", "normalized_mean", "rollout_mean_penalty", "rollout_mean_raw_reward")}
        for row in metrics
        if "return_mean" in row
    ]
    method = _method(config["uncertainty"]["type"])
    fit_path = Path(config["dynamics_dir"]) / "fit_report.json" if config.get("dynamics_dir") else None
    fit = json.loads(fit_path.read_text()) if fit_path and fit_path.exists() else {}
    batch_mean, batch_max = _batch_stats(config["dataset"])
    penalties = [row["rollout_mean_penalty"] for row in metrics if "rollout_mean_penalty" in row]
    return {
        "dataset": config["dataset"],
        "method": method,
        "uncertainty": config["uncertainty"]["type"],
        "lam": 0.0 if method == "mbpo" else resolved["lam"],
        "horizon": resolved["horizon"],
        "seed": config["seed"],
        "steps": results["gradient_steps"],
        "return_last": results["last"].get("return_mean"),
        "return_best": results["best"].get("return_mean"),
        "normalized_last": results["last"].get("normalized_mean"),
        "normalized_best": results["best"].get("normalized_mean"),
        "batch_mean": batch_mean,
        "batch_max": batch_max,
        "mean_penalty_last_epoch": penalties[-1] if penalties else None,
        "dynamics_fit": {k: fit.get(k) for k in ("epochs", "stop_reason", "holdout_mse", "elites", "seconds") if k in fit},
        "eval": {"episodes": config["eval_episodes"], "every_epochs": config["eval_every"], "deterministic": True},
        "seconds": results.get("seconds"),
        "curve": curve,
        "command": command,
        "commit": commit(),
        "machine": machine(),
    }


def publish(run_dir: Path, command: str) -> Path:
    record = run_record(run_dir, command)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{record['dataset']}__{record['method']}__s{record['seed']}__{record['steps'] // 1000}k.json"
    out.write_text(json.dumps(record, indent=2) + "\n")
    return out


def _mean_std(values: list[float]) -> dict[str, Any]:
    return {"mean": round(statistics.fmean(values), 1), "std": round(statistics.pstdev(values), 1) if len(values) > 1 else 0.0, "n": len(values)}


def build_table() -> dict[str, Any]:
    """table.json: per dataset × budget, MOPO and MBPO mean ± std over seeds beside the talk's."""
    records = [json.loads(p.read_text()) for p in sorted(RESULTS.glob("*__s*__*k.json"))]
    cells: dict[tuple[str, int], dict[str, Any]] = {}
    for rec in records:
        key = (rec["dataset"], rec["steps"])
        cell = cells.setdefault(key, {"dataset": rec["dataset"], "steps": rec["steps"], "batch_mean": rec["batch_mean"], "batch_max": rec["batch_max"], "runs": {}})
        cell["runs"].setdefault(rec["method"], []).append(rec)
    rows = []
    for (dataset, steps), cell in sorted(cells.items()):
        row: dict[str, Any] = {"dataset": dataset, "steps": steps, "batch_mean": cell["batch_mean"], "batch_max": cell["batch_max"]}
        for method, runs in sorted(cell["runs"].items()):
            runs.sort(key=lambda r: r["seed"])
            row[method] = {**_mean_std([r["return_last"] for r in runs]), "seeds": [r["seed"] for r in runs], "returns": [r["return_last"] for r in runs], "h": runs[0]["horizon"], "lam": runs[0]["lam"]}
        if dataset in TALK:
            row["talk"] = dict(zip(("mopo", "mbpo", "batch_mean"), TALK[dataset]))
        rows.append(row)
    table = {"rows": rows, "runs": len(records), "note": "return_last: mean of 10 deterministic episodes after the last epoch; mean ± population std over seeds"}
    (RESULTS / "table.json").write_text(json.dumps(table, indent=2) + "\n")
    return table


def markdown(table: dict[str, Any]) -> str:
    """The docs table: one row per dataset × budget, mean ± std (n seeds), beside the talk's cell."""

    def cell(entry: dict[str, Any] | None) -> str:
        return "—" if not entry else f"{entry['mean']:,.1f} ± {entry['std']:,.1f} ({entry['n']})"

    lines = [
        "| dataset | steps | MOPO (h, λ) | MBPO | batch mean / max | talk: MOPO / MBPO / batch mean |",
        "|---|---|---|---|---|---|",
    ]
    for row in table["rows"]:
        mopo, talk = row.get("mopo"), row.get("talk")
        setting = f" (h={mopo['h']}, λ={mopo['lam']})" if mopo else ""
        talk_text = f"{talk['mopo']:,.1f} / {talk['mbpo']:,.1f} / {talk['batch_mean']:,.1f}" if talk else "—"
        lines.append(f"| {row['dataset']} | {row['steps'] // 1000}k | {cell(mopo)}{setting} | {cell(row.get('mbpo'))} | {row['batch_mean']:,.1f} / {row['batch_max']:,.1f} | {talk_text} |")
    return "\n".join(lines)


def plot_curves(out_dir: Path) -> list[Path]:
    """One PNG per dataset: the evaluation return over gradient steps, one line per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = [json.loads(p.read_text()) for p in sorted(RESULTS.glob("*__s*__*k.json"))]
    newest: dict[tuple[str, str, int], dict[str, Any]] = {}
    for rec in records:  # a run extended to more steps supersedes its shorter record (same curve prefix)
        key = (rec["dataset"], rec["method"], rec["seed"])
        if key not in newest or rec["steps"] > newest[key]["steps"]:
            newest[key] = rec
    paths = []
    out_dir.mkdir(parents=True, exist_ok=True)
    for dataset in sorted({k[0] for k in newest}):
        fig, ax = plt.subplots(figsize=(6, 3.6))
        for (ds, method, seed), rec in sorted(newest.items()):
            if ds != dataset:
                continue
            xs = [p["gradient_steps"] / 1000 for p in rec["curve"]]
            ys = [p["return_mean"] for p in rec["curve"]]
            ax.plot(xs, ys, color="C0" if method == "mopo" else "C1", alpha=0.8, linestyle=["-", "--", ":"][seed % 3], label=f"{method.upper()} seed {seed}")
        ax.axhline(rec["batch_mean"], color="grey", linewidth=0.8, label="batch mean")
        ax.set(title=dataset, xlabel="SAC gradient steps (k)", ylabel="return (10 det. episodes)")
        ax.legend(fontsize=7)
        fig.tight_layout()
        path = out_dir / f"d4rl_{dataset}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stage", type=int, choices=sorted(STAGES), default=1)
    parser.add_argument("--cell", action="append", metavar="DATASET", help="run only these datasets (repeatable)")
    parser.add_argument("--methods", nargs="+", choices=sorted(METHODS), default=["mopo", "mbpo"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--steps", type=int, help="gradient steps per run (default: the stage's)")
    parser.add_argument("--workers", type=int, default=2, help="concurrent trials (default 2: one torch thread each on 2 cores)")
    parser.add_argument("--sweep-dir", default=str(ROOT / "sweeps" / "d4rl"))
    parser.add_argument("--wandb", action="store_true", help="log every run to W&B (offline without an API key)")
    parser.add_argument("--table", action="store_true", help="only rebuild table.json and the plots from the published runs")
    parser.add_argument("--markdown", action="store_true", help="print the docs table (with --table)")
    args = parser.parse_args(argv)
    command = "python benchmarks/d4rl_table.py " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    if not args.table:
        cells = args.cell or stage_cells(args.stage)
        steps = args.steps or STAGES[args.stage]["steps"]
        spec = sweep_spec(cells, args.methods, args.seeds, steps, args.wandb)

        def done(summary: dict[str, Any]) -> None:
            print(f"[d4rl] published {publish(Path(summary['run_dir']), command).name}", flush=True)
            build_table()

        run_sweep(spec, Path(args.sweep_dir), workers=args.workers, wandb=args.wandb, say=lambda m: print(f"[d4rl] {m}", flush=True), on_trial_done=done)
    table = build_table()
    plot_curves(ROOT / "docs" / "img")
    if args.markdown:
        print(markdown(table))
        return 0
    print(json.dumps([{k: r.get(k) for k in ("dataset", "steps", "mopo", "mbpo")} for r in table["rows"]], indent=1, default=str)[:4000])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
