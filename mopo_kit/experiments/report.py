"""``mopo-kit report SWEEP_DIR``: mean ± std over seeds per estimator × λ × h × dataset, plots, W&B YAML.

With ``--baseline ESTIMATOR`` (say ``zero``: MBPO) every other row is also set against that
estimator's row of the same dataset and h, seed for seed (:func:`~mopo_kit.experiments.compare.versus`:
the difference of the mean last returns, its Welch 95 % interval, and P(a run beats a baseline run)),
because "does this penalty beat no penalty" is the question an ablation of penalties asks.
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from mopo_kit.errors import MopoKitError
from mopo_kit.experiments.compare import versus
from mopo_kit.fileio import atomic_write_bytes


def _mean_std(values: list[float]) -> tuple[float, float]:
    values = [v for v in values if v is not None]
    if not values:
        return float("nan"), float("nan")
    return statistics.fmean(values), (statistics.pstdev(values) if len(values) > 1 else 0.0)


def _score_label(kind: str) -> str:
    return "normalized score" if kind == "normalized" else "return (no D4RL reference scores)"


def _strength(entry: dict[str, Any]) -> str:
    """κ for trials (and rows) that set it — their λ differs per seed's model — else λ."""
    return f"κ={entry['kappa']:g}" if entry.get("kappa") is not None else f"λ={entry['lam']:g}"


def load_trials(sweep_dir: Path) -> list[dict[str, Any]]:
    """Every finished trial: its resolved settings, results and per-epoch metrics."""
    trials_dir = sweep_dir / "trials"
    if not trials_dir.is_dir():
        raise MopoKitError(f"{sweep_dir}: not a sweep directory (no trials/)")
    trials = []
    for run in sorted(p for p in trials_dir.iterdir() if p.is_dir()):
        if not (run / "results.json").exists():
            continue
        saved = json.loads((run / "config.json").read_text())
        metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
        trials.append({
            "name": run.name,
            "dataset": saved["config"]["dataset"],
            "uncertainty": saved["config"]["uncertainty"]["type"],
            "lam": saved["resolved"]["lam"],
            "kappa": saved["resolved"].get("kappa"),
            "horizon": saved["resolved"]["horizon"],
            "seed": saved["config"]["seed"],
            "results": json.loads((run / "results.json").read_text()),
            "metrics": metrics,
        })
    if not trials:
        raise MopoKitError(f"{sweep_dir}: no finished trial yet")
    return trials


def only_seeds(trials: list[dict[str, Any]], seeds: list[int] | None) -> list[dict[str, Any]]:
    """The trials of ``seeds`` (all when ``None``): e.g. a study's report seeds without its tuning seed,
    so that a row and its baseline pool the same seeds."""
    if seeds is None:
        return trials
    kept = [t for t in trials if t["seed"] in set(seeds)]
    if not kept:
        raise MopoKitError(f"--seeds {','.join(map(str, seeds))}: no finished trial has these seeds "
                           f"(the sweep's finished trials have: {', '.join(map(str, sorted({t['seed'] for t in trials})))})")
    return kept


def summarize(trials: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per dataset × estimator × strength × h: mean ± std over seeds of last and best scores.

    The score is the D4RL-normalized one where the task has reference scores, else the raw return
    (``score`` says which; the OOD tasks have none).

    The strength is κ for trials that set it (their λ differs per seed's model; the row's ``lam``
    is then the mean over seeds), else λ. ``seed_list`` names the seeds pooled, so a reader sees
    when a row mixes, say, a study's tuning seed with its report seeds.
    """
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for trial in trials:
        strength = ("kappa", trial["kappa"]) if trial.get("kappa") is not None else ("lam", trial["lam"])
        groups[(trial["dataset"], trial["uncertainty"], strength, trial["horizon"])].append(trial)
    rows = []
    for (dataset, uncertainty, (kind, value), horizon), members in sorted(groups.items(), key=lambda kv: tuple(map(str, kv[0]))):
        lam = value if kind == "lam" else _mean_std([m["lam"] for m in members])[0]
        last = [m["results"]["last"].get("normalized_mean") for m in members]
        best = [m["results"]["best"].get("normalized_mean") for m in members]
        last_return = [m["results"]["last"].get("return_mean") for m in members]
        best_return = [m["results"]["best"].get("return_mean") for m in members]
        penalty = [m["metrics"][-1].get("rollout_mean_penalty") for m in members if m["metrics"]]
        # a task without D4RL reference scores (the OOD tasks, a user's own) has no normalized score:
        # its row scores in raw return rather than printing nan
        normalized = any(v is not None for v in last)
        last_score, best_score = (last, best) if normalized else (last_return, best_return)
        rows.append({
            "dataset": dataset, "uncertainty": uncertainty, "lam": lam, "kappa": value if kind == "kappa" else None,
            "horizon": horizon, "seeds": len(members), "seed_list": sorted(m["seed"] for m in members),
            "last_normalized_mean": _mean_std(last)[0], "last_normalized_std": _mean_std(last)[1],
            "best_normalized_mean": _mean_std(best)[0], "best_normalized_std": _mean_std(best)[1],
            "score": "normalized" if normalized else "return",
            "last_score_mean": _mean_std(last_score)[0], "last_score_std": _mean_std(last_score)[1],
            "best_score_mean": _mean_std(best_score)[0], "best_score_std": _mean_std(best_score)[1],
            "last_return_mean": _mean_std(last_return)[0], "last_return_std": _mean_std(last_return)[1],
            "last_return_per_seed": [m["results"]["last"].get("return_mean") for m in sorted(members, key=lambda m: m["seed"])],
            "rollout_penalty_mean": _mean_std(penalty)[0],
        })
    return rows


def against_baseline(rows: list[dict[str, Any]], baseline: str) -> list[dict[str, Any]]:
    """Add ``versus_baseline`` to every row: its last returns against those of ``baseline``'s row with
    the same dataset and h (``None`` on the baseline's own rows and where the sweep has no such row).

    Where the sweep ran the baseline at several strengths on one dataset × h (a grid that crosses
    ``zero`` with λ values), a row is set against the baseline row of its own strength. Raises
    :class:`MopoKitError` when no row uses ``baseline``, or when a row's baseline stays ambiguous.
    """
    reference: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        if row["uncertainty"] == baseline:
            reference[(str(row["dataset"]), row["horizon"])].append(row)
    if not reference:
        raise MopoKitError(f"--baseline {baseline}: no trial of this sweep uses that estimator "
                           f"(it has: {', '.join(sorted({str(r['uncertainty']) for r in rows}))})")
    strength = lambda r: (r.get("kappa"), r["lam"] if r.get("kappa") is None else None)  # noqa: E731
    for row in rows:
        candidates = reference.get((str(row["dataset"]), row["horizon"]), [])
        if len(candidates) > 1:
            candidates = [c for c in candidates if strength(c) == strength(row)]
            if len(candidates) != 1:
                raise MopoKitError(f"--baseline {baseline}: {Path(str(row['dataset'])).stem} h={row['horizon']} has it at several strengths, "
                                   f"none of them {_strength(row)} ({row['uncertainty']}'s); report a sweep with one baseline row per dataset and h")
        base = candidates[0] if candidates else None
        ours = [v for v in row["last_return_per_seed"] if v is not None]
        theirs = [v for v in base["last_return_per_seed"] if v is not None] if base else []
        row["versus_baseline"] = versus(ours, theirs) if base is not None and base is not row and ours and theirs else None
    return rows


def wandb_sweep_yaml(spec: dict[str, Any]) -> str:
    """The same grid as a W&B sweep for users who prefer ``wandb agent`` (needs the W&B server)."""
    lines = [f"name: {spec.get('name', 'mopo-kit-sweep')}", "program: mopo-kit", "method: grid", "command:", "  - ${program}", "  - train", "  - ${args}", "parameters:"]
    for key, values in spec["grid"].items():
        lines.append(f"  {key}:")
        lines.append(f"    values: {json.dumps(values)}")
    return "\n".join(lines) + "\n"


def write_report(sweep_dir: Path, baseline: str | None = None, seeds: list[int] | None = None) -> dict[str, Any]:
    """report.json, three plots and wandb_sweep.yaml into ``sweep_dir``; returns the report.

    ``baseline``: an estimator (``zero`` for MBPO) that every other row is compared with (:func:`against_baseline`);
    ``seeds``: only these seeds' trials (:func:`only_seeds`).
    """
    trials = only_seeds(load_trials(sweep_dir), seeds)
    rows = summarize(trials)
    if baseline is not None:
        rows = against_baseline(rows, baseline)
    report = {"sweep_dir": str(sweep_dir), "trials": len(trials), "seeds": seeds, "baseline": baseline, "rows": rows}
    atomic_write_bytes(sweep_dir / "report.json", json.dumps(report, indent=2).encode())
    spec_path = sweep_dir / "sweep.json"
    if spec_path.exists():
        atomic_write_bytes(sweep_dir / "wandb_sweep.yaml", wandb_sweep_yaml(json.loads(spec_path.read_text())).encode())
    _plots(trials, rows, sweep_dir)
    return report


def _plots(trials: list[dict[str, Any]], rows: list[dict[str, Any]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = sorted({str(t["dataset"]) for t in trials})

    def panels(title: str) -> tuple[Any, list[Any]]:
        fig, axes = plt.subplots(1, len(datasets), figsize=(5.5 * len(datasets), 4), dpi=100, squeeze=False)
        for ax, dataset in zip(axes[0], datasets):
            ax.set_title(f"{Path(dataset).stem}: {title}", fontsize=9)
        return fig, list(axes[0])

    # the score of each dataset's rows: normalized where the task has reference scores, else raw return
    score = {str(r["dataset"]): r["score"] for r in rows}
    key = {"normalized": "normalized_mean", "return": "return_mean"}

    # learning curves: score vs gradient steps, mean over seeds, one line per estimator,
    # one panel per dataset (scores of different tasks are never averaged together)
    fig, axes = panels("learning curves")
    for ax, dataset in zip(axes, datasets):
        curves: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
        for trial in (t for t in trials if str(t["dataset"]) == dataset):
            for m in trial["metrics"]:
                if m.get(key[score[dataset]]) is not None:
                    curves[f"{trial['uncertainty']} {_strength(trial)}"][m["gradient_steps"]].append(m[key[score[dataset]]])
        for label, points in sorted(curves.items()):
            steps = sorted(points)
            ax.plot(steps, [statistics.fmean(points[s]) for s in steps], marker="o", ms=3, label=label)
        ax.set_xlabel("gradient steps")
        ax.set_ylabel(f"{_score_label(score[dataset])} (mean over seeds)")
        if curves:
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "learning_curves.png")
    plt.close(fig)

    # last score per estimator with error bars, one panel per dataset (normalized and raw never share an axis)
    fig, axes = panels("last score")
    for ax, dataset in zip(axes, datasets):
        mine = [r for r in rows if str(r["dataset"]) == dataset]
        ax.bar(range(len(mine)), [r["last_score_mean"] for r in mine], yerr=[r["last_score_std"] for r in mine], capsize=3)
        ax.set_xticks(range(len(mine)), [f"{r['uncertainty']}\n{_strength(r)}" for r in mine], fontsize=6)
        ax.set_ylabel(f"last {_score_label(score[dataset])} (± std over seeds)")
    fig.tight_layout()
    fig.savefig(out / "final_scores.png")
    plt.close(fig)

    # penalty against return, one point per trial, one panel per dataset
    fig, axes = panels("penalty vs return")
    for ax, dataset in zip(axes, datasets):
        for trial in (t for t in trials if str(t["dataset"]) == dataset and t["metrics"]):
            ax.scatter(trial["metrics"][-1].get("rollout_mean_penalty", 0.0), trial["results"]["last"].get("return_mean", 0.0), label=trial["uncertainty"], s=15)
        handles, names = ax.get_legend_handles_labels()
        unique = dict(zip(names, handles))
        ax.legend(unique.values(), unique.keys(), fontsize=7)
        ax.set_xscale("symlog", linthresh=1e-3)  # estimators differ by orders of magnitude; zero is 0
        ax.set_xlabel("mean penalty u(s, a) in the last rollout (symlog)")
        ax.set_ylabel("last return (real env)")
    fig.tight_layout()
    fig.savefig(out / "penalty_vs_return.png")
    plt.close(fig)
