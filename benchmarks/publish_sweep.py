"""Commit a finished sweep's report: ``mopo-kit report`` output, every trial's result, provenance.

    python benchmarks/publish_sweep.py SWEEP_DIR NAME --command "mopo-kit sweep ..." [--markdown]

Copies report.json, the three plots, wandb_sweep.yaml and sweep.json from SWEEP_DIR into
``benchmarks/results/NAME/`` and writes ``trials.json`` (each trial's settings, last/best score,
wall time) and ``provenance.json`` (command, commit, machine, date, the shared dynamics models'
fit reports). ``--markdown`` prints the docs table from the published report.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, commit, machine  # noqa: E402

from mopo_kit.experiments.report import load_trials, write_report  # noqa: E402

ARTIFACTS = ("report.json", "learning_curves.png", "final_scores.png", "penalty_vs_return.png", "wandb_sweep.yaml", "sweep.json")


def publish(sweep_dir: Path, name: str, command: str, note: str) -> Path:
    import time

    out = ROOT / "benchmarks" / "results" / name
    out.mkdir(parents=True, exist_ok=True)
    write_report(sweep_dir)
    for artifact in ARTIFACTS:
        shutil.copy2(sweep_dir / artifact, out / artifact)
    trials = []
    for trial in load_trials(sweep_dir):
        seconds = sum(m.get("epoch_seconds", 0.0) for m in trial["metrics"])
        trials.append({
            "name": trial["name"], "dataset": trial["dataset"], "uncertainty": trial["uncertainty"], "lam": trial["lam"],
            "horizon": trial["horizon"], "seed": trial["seed"], "last": trial["results"]["last"], "best": trial["results"]["best"],
            "bound": trial["results"].get("bound"), "epoch_seconds_total": round(seconds, 1),
        })
    (out / "trials.json").write_text(json.dumps(trials, indent=1) + "\n")
    models = {}
    for model_dir in sorted((sweep_dir / "dynamics").iterdir()):
        report = model_dir / "fit_report.json"
        if report.exists():
            fit = json.loads(report.read_text())
            models[model_dir.name] = {k: fit.get(k) for k in ("transitions", "epochs", "stop_reason", "holdout_mse", "elites", "seconds")}
        else:
            models[model_dir.name] = {"note": "fitted before sweeps wrote fit_report.json", **json.loads((model_dir / "dynamics.json").read_text())["config"]}
    provenance = {
        "command": command, "commit": commit(), "machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "note": note, "dynamics_models": models,
    }
    (out / "provenance.json").write_text(json.dumps(provenance, indent=1) + "\n")
    return out


def markdown(name: str) -> str:
    report = json.loads((ROOT / "benchmarks" / "results" / name / "report.json").read_text())
    lines = [
        "| dataset | estimator | λ | h | seeds | last normalized (mean ± std) | best normalized | last return | mean penalty (last rollout) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]

    def num(x: float, digits: int = 1) -> str:
        return f"{x:,.{digits}f}".replace("-", "−")

    for r in report["rows"]:
        lines.append(
            f"| {r['dataset']} | `{r['uncertainty']}` | {r['lam']} | {r['horizon']} | {r['seeds']} | "
            f"{num(r['last_normalized_mean'])} ± {num(r['last_normalized_std'])} | "
            f"{num(r['best_normalized_mean'])} ± {num(r['best_normalized_std'])} | {num(r['last_return_mean'], 0)} | "
            f"{num(r['rollout_penalty_mean'], 3)} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path, nargs="?")
    parser.add_argument("name")
    parser.add_argument("--command", default="", help="the sweep command that produced SWEEP_DIR")
    parser.add_argument("--note", default="", help="anything a reader must know (e.g. other load on the machine)")
    parser.add_argument("--markdown", action="store_true", help="print the docs table of a published NAME")
    args = parser.parse_args()
    if not args.markdown:
        print(publish(args.sweep_dir, args.name, args.command, args.note))
    print(markdown(args.name))


if __name__ == "__main__":
    main()
