"""What a finished run's policy does in the real task: its return split into the reward's terms.

    python benchmarks/ood_behavior.py SWEEP_DIR/trials/halfcheetah-jump__* --out benchmarks/results/ood/behavior_halfcheetah-jump.json

For each run directory: ``mopo-kit evaluate``'s report (deterministic episodes in the real env,
and the model bound) with the mean per-episode sum of every ``reward_*`` term the env reports —
on halfcheetah-jump ``reward_run`` (min(v_x, 3)), ``reward_height`` (15·(z − z_init)) and
``reward_ctrl``, which says whether a return was earned by running or by jumping.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import commit, machine  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dirs", nargs="+", type=Path)
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--seed", type=int, default=12345)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)

    from mopo_kit.experiments.run_evaluation import evaluate_run

    runs = []
    for run_dir in args.run_dirs:
        report = evaluate_run(run_dir, episodes=args.episodes, seed=args.seed)
        config = json.loads((run_dir / "config.json").read_text())["config"]
        real = report["real"]
        runs.append({"run": run_dir.name, "uncertainty": config["uncertainty"]["type"], "seed": config["seed"], **report})
        terms = "  ".join(f"{k.removeprefix('reward_')} {v:,.1f}" for k, v in real["reward_terms"].items())
        print(f"{run_dir.name}: return {real['return_mean']:,.1f} ± {real['return_std']:,.1f}  =  {terms}")
    if args.out:
        payload = {"command": "python benchmarks/ood_behavior.py " + " ".join(sys.argv[1:] if argv is None else argv), "commit": commit(), "machine": machine(), "episodes": args.episodes, "seed": args.seed, "runs": runs}
        args.out.write_text(json.dumps(payload, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
