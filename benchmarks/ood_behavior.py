"""What a finished run's policy does in the real task: its return split into the reward's terms.

    python benchmarks/ood_behavior.py SWEEP_DIR/trials/halfcheetah-jump__* --out benchmarks/results/ood/behavior_halfcheetah-jump.json

    python benchmarks/ood_behavior.py SWEEP_DIR/trials/ant-angle__* --reference ant --out benchmarks/results/ood/behavior_ant-angle.json

For each run directory: ``mopo-kit evaluate``'s report (deterministic episodes in the real env,
and the model bound) with the mean per-episode sum of every ``reward_*`` term the env reports —
on halfcheetah-jump ``reward_run`` (min(v_x, 3)), ``reward_height`` (15·(z − z_init)) and
``reward_ctrl``, which says whether a return was earned by running or by jumping.

Where the env reports the body's position (Ant's ``x_position``/``y_position``), the same
episodes are run again through the evaluation's own policy path (bit for bit: the returns are
checked equal) and each episode's displacement is reported with its heading, atan2(Δy, Δx).
That is ant-angle's question: the data's ant ran along x (0°), the task pays for running at 30°
(and cos 30° = 0.87 of it for running along x), so the heading says whether a policy left the
data's direction. ``--reference ant`` adds the behavior run's expert (the policy that collected
the data's last snapshot) through the same episodes, as the data's direction.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import commit, machine  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dirs", nargs="+", type=Path)
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--seed", type=int, default=12345)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--reference", help="also run this env's shipped behavior expert (e.g. ant) through the same episodes")
    args = parser.parse_args(argv)

    from mopo_kit.data.episodes import run_episodes
    from mopo_kit.evaluation import unit_policy
    from mopo_kit.experiments.run_evaluation import evaluate_run, load_run

    runs = []
    for run_dir in args.run_dirs:
        report = evaluate_run(run_dir, episodes=args.episodes, seed=args.seed)
        run = load_run(run_dir)
        real = report["real"]
        row = {"run": run_dir.name, "uncertainty": run.config.uncertainty.type, "seed": run.config.seed, **report}
        batch = run_episodes(run.task, unit_policy(run.task, run.env_policy), args.episodes, args.seed)
        if float(batch.returns.mean()) != real["return_mean"]:
            raise SystemExit(f"{run_dir}: re-run episodes differ from the evaluation's ({batch.returns.mean()} vs {real['return_mean']})")
        row["travel"] = travel(batch)
        runs.append(row)
        terms = "  ".join(f"{k.removeprefix('reward_')} {v:,.1f}" for k, v in real["reward_terms"].items())
        print(f"{run_dir.name}: return {real['return_mean']:,.1f} ± {real['return_std']:,.1f}  =  {terms}{_travel_text(row['travel'])}")
    reference = None
    if args.reference and runs:
        reference = behavior_reference(args.reference, load_run(args.run_dirs[0]).task, args.episodes, args.seed)
        print(f"reference {reference['policy']}: return {reference['return_mean']:,.1f}{_travel_text(reference['travel'])}")
    if args.out:
        payload = {
            "command": "python benchmarks/ood_behavior.py " + " ".join(sys.argv[1:] if argv is None else argv), "commit": commit(), "machine": machine(),
            "episodes": args.episodes, "seed": args.seed, "runs": runs, **({"reference": reference} if reference else {}),
        }
        args.out.write_text(json.dumps(payload, indent=2) + "\n")
    return 0


def travel(batch: Any) -> dict[str, Any] | None:
    """Per episode Δx, Δy (m), the heading atan2(Δy, Δx) in degrees and the length; None without positions."""
    first, last = batch.first_info, batch.last_info
    if not all(key in first and key in last for key in ("x_position", "y_position")):
        return None
    dx, dy = last["x_position"] - first["x_position"], last["y_position"] - first["y_position"]
    heading = np.degrees(np.arctan2(dy, dx))
    return {
        "dx": _rounded(dx), "dy": _rounded(dy), "heading_deg": _rounded(heading), "length": batch.lengths.tolist(),
        "mean_dx": round(float(dx.mean()), 2), "mean_dy": round(float(dy.mean()), 2),
        # the heading of the mean displacement: episodes that barely moved weigh little
        "heading_of_mean_deg": round(float(np.degrees(np.arctan2(dy.mean(), dx.mean()))), 1),
        "distance_mean": round(float(np.hypot(dx, dy).mean()), 2),
    }


def behavior_reference(env: str, task: Any, episodes: int, seed: int) -> dict[str, Any]:
    """The shipped behavior run's expert of ``env`` through the same episodes (deterministic)."""
    import torch

    from mopo_kit.data.actor import load_actor
    from mopo_kit.data.episodes import run_episodes
    from mopo_kit.data.shipped import task_policies

    expert = task_policies(env).expert
    actor, _ = load_actor(expert.path)
    batch = run_episodes(task, lambda obs: actor.act(torch.as_tensor(obs, dtype=torch.float32), deterministic=True).numpy(), episodes, seed)
    return {"policy": f"{env} expert (SAC step {expert.step:,})", "return_mean": round(float(batch.returns.mean()), 1), "travel": travel(batch)}


def _rounded(values: np.ndarray) -> list[float]:
    return [round(float(v), 2) for v in values]


def _travel_text(moved: dict[str, Any] | None) -> str:
    if moved is None:
        return ""
    return f"  |  Δx {moved['mean_dx']:,.1f} m, Δy {moved['mean_dy']:,.1f} m, heading {moved['heading_of_mean_deg']:.0f}°"


if __name__ == "__main__":
    raise SystemExit(main())
