"""Choose a task's expert, medium and replay snapshots and ship them inside the package.

    python behavior/ship.py halfcheetah --run runs/behavior/halfcheetah --early-run runs/behavior_fine/halfcheetah
    python behavior/ship.py hopper --run runs/behavior/hopper
    python behavior/ship.py walker2d --run runs/behavior/walker2d --episodes 30   # noisy returns: re-evaluate

* expert = the snapshot with the best deterministic return of ``--run`` (the budget's best);
* medium = the first snapshot whose stochastic return reaches 1/3 of the expert's stochastic
  return, from ``--early-run`` when given (a run evaluated more often early on, for tasks whose
  return jumps between two regular snapshots), else from ``--run``;
* replay = at most ``--replay-snapshots`` snapshots spread over that run up to medium: they
  regenerate the replay buffer for ``<task>-mixed``.

Writes float16 actors to ``mopo_kit/behavior_policies/<task>/`` and the task's entry (files,
steps, returns, commands, seed) to ``manifest.json`` there; other tasks' entries are kept.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from persist import save_float16  # noqa: E402  (behavior/, on sys.path as the script's folder)

from mopo_kit.data.behavior import best_snapshot, medium_snapshot, replay_snapshots  # noqa: E402
from mopo_kit.data.shipped import MANIFEST, POLICY_DIR  # noqa: E402
from mopo_kit.envs.tasks import BUILTIN_TASKS  # noqa: E402
from mopo_kit.fileio import atomic_write_bytes  # noqa: E402


def _run_info(run: Path) -> tuple[dict, list[dict]]:
    """The run's config and the evaluations whose snapshot file is still there (``persist.py``
    keeps a selection), so every choice below can be shipped."""
    config = json.loads((run / "config.json").read_text())
    evals = [e for e in json.loads((run / "evals.json").read_text()) if (run / "snapshots" / e["snapshot"]).exists()]
    return config, evals


def _command(config: dict) -> str:
    return (
        f"mopo-kit train-behavior {config['task']} --steps {config['steps']} --seed {config['seed']} "
        f"--eval-every {config['eval_every']} --threads {config['threads']}"
    )


def _ship_actor(run: Path, entry: dict, task: str) -> dict:
    source = run / "snapshots" / entry["snapshot"]
    target = POLICY_DIR / task / entry["snapshot"]
    target.parent.mkdir(parents=True, exist_ok=True)
    save_float16(source, target)
    return {
        "file": f"{task}/{entry['snapshot']}",
        "step": entry["step"],
        "det_return": round(entry["det_return_mean"], 1),
        "stoch_return": round(entry["stoch_return_mean"], 1),
    }


def reevaluate(task: str, run: Path, entry: dict, episodes: int) -> dict:
    """The snapshot's det/stoch returns over ``episodes`` episodes instead of training's 5."""
    from mopo_kit.data.actor import load_actor
    from mopo_kit.data.episodes import episode_returns

    actor, _ = load_actor(run / "snapshots" / entry["snapshot"])
    spec = {t.name: t for t in BUILTIN_TASKS}[task]
    gen = torch.Generator().manual_seed(777)
    det = episode_returns(spec, lambda o: actor.act_numpy(o, deterministic=True), episodes, seed=50_000)
    sto = episode_returns(spec, lambda o: actor.act_numpy(o, generator=gen), episodes, seed=60_000)
    return {**entry, "det_return_mean": float(det.mean()), "stoch_return_mean": float(sto.mean())}


def pick_medium(task: str, run: Path, evals: list[dict], expert_stoch: float, episodes: int) -> dict:
    """First snapshot at 1/3 of the expert's stochastic return; with ``episodes`` > 5 every candidate
    that the 5-episode evaluations put within reach (≥ half the target) is re-evaluated first."""
    if episodes <= 5:
        return medium_snapshot(evals, expert_stoch)
    target = expert_stoch / 3
    for entry in sorted(evals, key=lambda e: e["step"]):
        if entry["stoch_return_mean"] >= 0.5 * target:
            again = reevaluate(task, run, entry, episodes)
            print(f"  {entry['step']}: stoch {again['stoch_return_mean']:.0f} ({episodes} episodes), target {target:.0f}")
            if again["stoch_return_mean"] >= target:
                return again
    raise ValueError(f"no snapshot reaches 1/3 of the expert's return ({target:.1f}) over {episodes} episodes")


def ship(task: str, run: Path, early_run: Path | None, replay_count: int, episodes: int = 5) -> dict:
    ref = {t.name: t for t in BUILTIN_TASKS}[task]
    config, evals = _run_info(run)
    expert = best_snapshot(evals)
    if episodes > 5:
        expert = reevaluate(task, run, expert, episodes)
    early = early_run or run
    early_config, early_evals = _run_info(early)
    medium = pick_medium(task, early, early_evals, expert["stoch_return_mean"], episodes)
    replay = replay_snapshots(early_evals, medium["step"], early_config["learning_starts"], replay_count)
    if (POLICY_DIR / task).exists():
        shutil.rmtree(POLICY_DIR / task)
    entry = {
        "expert": _ship_actor(run, expert, task),
        "medium": _ship_actor(early, medium, task),
        "replay": [_ship_actor(early, e, task) for e in replay],
        "learning_starts": early_config["learning_starts"],
        "provenance": {
            "algorithm": "stable-baselines3 SAC (default hyperparameters), real environment",
            "seed": config["seed"],
            "expert_run": {"command": _command(config), "steps_trained": evals[-1]["step"], "evaluations": len(evals)},
            "medium_run": {
                "command": _command(early_config),
                "steps_trained": early_evals[-1]["step"],
                "evaluations": len(early_evals),
            },
            "returns": f"mean over {max(episodes, 5)} episodes (deterministic = mean action; stochastic = sampled); "
            "replay snapshots: the 5 episodes of training's evaluation",
            "selection": "expert: best deterministic return; medium: first snapshot whose stochastic "
            "return reaches 1/3 of the expert's stochastic return",
            "d4rl_ref_max": ref.ref_max_score,
            "expert_normalized_det": round(ref.normalized_score(expert["det_return_mean"]), 1),
        },
    }
    manifest = json.loads(MANIFEST.read_text()) if MANIFEST.exists() else {"tasks": {}}
    manifest["tasks"][task] = entry
    manifest["tasks"] = dict(sorted(manifest["tasks"].items()))
    atomic_write_bytes(MANIFEST, (json.dumps(manifest, indent=1) + "\n").encode())
    return entry


def markdown_table() -> str:
    """The behavior-policy table of docs/datasets.md, from the manifest."""
    tasks = {t.name: t for t in BUILTIN_TASKS}
    lines = [
        "| task | trained | expert: step, det / stoch return | expert normalized (D4RL ref. max) | medium: step, det / stoch return | medium / expert (stoch) | replay snapshots |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, entry in json.loads(MANIFEST.read_text())["tasks"].items():
        ex, me, prov = entry["expert"], entry["medium"], entry["provenance"]
        trained = f"{prov['expert_run']['steps_trained'] // 1000}k"
        if prov["medium_run"]["command"] != prov["expert_run"]["command"]:
            trained += f" (+ {prov['medium_run']['steps_trained'] // 1000}k early run)"
        replay = ", ".join(f"{e['step'] // 1000}k" for e in entry["replay"])
        lines.append(
            f"| {name} | {trained} | {ex['step'] // 1000}k: {ex['det_return']:,.0f} / {ex['stoch_return']:,.0f} | "
            f"{tasks[name].normalized_score(ex['det_return']):.0f} ({prov['d4rl_ref_max']:,.0f}) | "
            f"{me['step'] // 1000}k: {me['det_return']:,.0f} / {me['stoch_return']:,.0f} | "
            f"{me['stoch_return'] / ex['stoch_return']:.2f} | {replay} |"
        )
    return "\n".join(lines)


def main() -> None:
    if sys.argv[1:] == ["--table"]:
        print(markdown_table())
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] + " (--table: print the docs table)")
    parser.add_argument("task")
    parser.add_argument("--run", type=Path, required=True, help="behavior run directory (train-behavior -o)")
    parser.add_argument("--early-run", type=Path, help="run evaluated more often early (medium + replay from it)")
    parser.add_argument("--replay-snapshots", type=int, default=6)
    parser.add_argument(
        "--episodes", type=int, default=5,
        help="re-evaluate expert and medium candidates over this many episodes (5: use training's evaluations)",
    )
    args = parser.parse_args()
    entry = ship(args.task, args.run, args.early_run, args.replay_snapshots, args.episodes)
    print(json.dumps({k: entry[k] for k in ("expert", "medium")}, indent=1))
    print("replay steps:", [e["step"] for e in entry["replay"]])


if __name__ == "__main__":
    main()
