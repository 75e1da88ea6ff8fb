"""Is MOPO's penalty an error bound where each trained policy goes? ``mopo-kit evaluate --on-policy``
over many runs, as one committed JSON.

    python benchmarks/on_policy_check.py SWEEP_DIR/trials/*__s1 --out benchmarks/results/on_policy/d4rl.json
    python benchmarks/on_policy_check.py NEW_RUN_DIRS... --out benchmarks/results/on_policy/d4rl.json --merge
    python benchmarks/on_policy_check.py --write-docs     # the table in docs/uncertainty.md, from the JSON

For each run directory: the real-env evaluation, then ``--transitions`` real steps of the run's
deterministic policy, on which the model's one-step error, MOPO's u (``--estimator``, default
``max_aleatoric`` for MOPO and MBPO runs alike: MBPO's own penalty is zero) and the signed reward
error r̂ − r are compared with the same quantities on held-out data (see
:class:`mopo_kit.experiments.run_evaluation.OnPolicyCheck`). This is the distribution MOPO's
theorem is about and the calibration report does not see: the states a policy reaches by
exploiting the model.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generated_blocks import replace_generated_block  # noqa: E402
from run_stats import budget_label  # noqa: E402
from common import ROOT, commit, machine, one_line_errors  # noqa: E402

RESULT = ROOT / "benchmarks" / "results" / "on_policy" / "d4rl.json"
DOC = ROOT / "docs" / "uncertainty.md"
MARKER = "<!-- begin generated: python benchmarks/on_policy_check.py --write-docs -->"
#: Every run checked before runs recorded their budget (``steps``) was a 100-epoch stage-1 or
#: stage-2 run of the D4RL table: 100,000 SAC gradient steps.
STEPS_BEFORE_RECORDED = 100_000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dirs", nargs="*", type=Path)
    parser.add_argument("--transitions", type=int, default=5000)
    parser.add_argument("--estimator", default="max_aleatoric")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--seed", type=int, default=12345)
    parser.add_argument("--out", type=Path)
    parser.add_argument(
        "--merge", action="store_true",
        help="keep the runs already in --out (a run of the same name is replaced): run directories "
        "do not outlive the machine they ran on, so later sessions add their runs to the same JSON",
    )
    parser.add_argument("--write-docs", action="store_true", help=f"rewrite the table in {DOC.relative_to(ROOT)} from {RESULT.relative_to(ROOT)}")
    args = parser.parse_args(argv)
    if args.write_docs:
        DOC.write_text(replace_generated_block(DOC.read_text(), MARKER, markdown_table(json.loads(RESULT.read_text())), where=str(DOC)))
        print(f"wrote the table of {RESULT.relative_to(ROOT)} into {DOC.relative_to(ROOT)}")
        return 0
    if not args.run_dirs:
        parser.error("name the run directories to check (or --write-docs)")
    if args.merge and not args.out:
        parser.error("--merge adds the runs to the JSON named by --out: name it")

    from mopo_kit.experiments.run_evaluation import evaluate_run, load_run

    runs = []
    for run_dir in args.run_dirs:
        report = evaluate_run(run_dir, episodes=args.episodes, seed=args.seed, on_policy_steps=args.transitions, on_policy_estimator=args.estimator)
        config = load_run(run_dir).config
        steps = config.epochs * config.steps_per_epoch  # the budget: a 300k run shares its trial name with the 100k one
        runs.append({"run": run_dir.name, "dataset": config.dataset, "uncertainty": config.uncertainty.type, "seed": config.seed, "steps": steps, **report})
        check, real = report["on_policy"], report["real"]
        violations = check["bound_violations"]
        print(
            f"{run_dir.name}: return {real['return_mean']:,.1f}; {check['episodes']} episodes in {check['transitions']} steps; "
            f"error {check['error_mean_data']:.3f} → {check['error_mean_policy']:.3f}, u {check['u_mean_data']:.3f} → {check['u_mean_policy']:.3f}, "
            f"r̂ − r {check['reward_bias_data']:+.3f} → {check['reward_bias_policy']:+.3f}, "
            f"error > c95·u on {'-' if violations is None else f'{violations:.0%}'} of the policy's steps",
            flush=True,
        )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        command = "python benchmarks/on_policy_check.py " + " ".join(sys.argv[1:] if argv is None else argv)
        payload = {"command": command, "commit": commit(), "machine": machine(), "runs": runs}
        if args.merge and args.out.exists():
            payload = merge_runs(json.loads(args.out.read_text()), payload)
        args.out.write_text(json.dumps(payload, indent=2) + "\n")
        print(f"wrote {args.out}")
    return 0


def merge_runs(old: dict, new: dict) -> dict:
    """``new``'s runs added to ``old``'s, a run of the same name and budget replaced (a deeper
    stage's run keeps the trial name of the shorter one, and both stay); every run keeps the
    command, commit and machine that checked it (``provenance``), since after a merge the
    top-level ones name only the latest check."""
    def stamped(payload: dict) -> list[dict]:
        origin = {key: payload.get(key) for key in ("command", "commit", "machine")}
        return [{**run, "provenance": run.get("provenance", origin)} for run in payload["runs"]]

    fresh = stamped(new)
    replaced = {(run["run"], run_steps(run)) for run in fresh}
    kept = [run for run in stamped(old) if (run["run"], run_steps(run)) not in replaced]
    return {**new, "runs": kept + fresh}


def run_steps(run: dict) -> int:
    return int(run.get("steps", STEPS_BEFORE_RECORDED))


def markdown_table(payload: dict) -> str:
    """One row per dataset × method × budget, means over its seeds: the real return, how long the
    policy's episodes last, and how error, u and r̂ − r move from held-out data to its steps."""
    groups: dict[tuple[str, str, int], list[dict]] = {}
    for run in payload["runs"]:
        groups.setdefault((run["dataset"], "MBPO" if run["uncertainty"] == "zero" else "MOPO", run_steps(run)), []).append(run)
    rows = [
        "| dataset | method | steps | seeds | real return | mean episode length | error, policy ÷ data | u, policy ÷ data "
        "| r̂ − r on policy | error > c95·u on policy (per seed) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    first_seen = {key[:2]: i for i, key in reversed(list(enumerate(groups)))}  # a deeper budget's row under its dataset × method
    for (dataset, method, steps), runs in sorted(groups.items(), key=lambda item: (first_seen[item[0][:2]], item[0][2])):
        checks = [run["on_policy"] for run in sorted(runs, key=lambda run: run["seed"])]
        violations = ", ".join("–" if c["bound_violations"] is None else f"{c['bound_violations']:.0%}" for c in checks)
        rows.append(
            f"| {dataset} | {method} | {budget_label(steps)} | {', '.join(str(run['seed']) for run in sorted(runs, key=lambda run: run['seed']))} "
            f"| {_mean(run['real']['return_mean'] for run in runs):,.0f} "
            f"| {_mean(c['transitions'] / c['episodes'] for c in checks):,.0f} "
            f"| {_mean(c['error_mean_policy'] / c['error_mean_data'] for c in checks):.2f} "
            f"| {_mean(c['u_mean_policy'] / c['u_mean_data'] for c in checks):.2f} "
            f"| {_mean(c['reward_bias_policy'] for c in checks):+.3f} | {violations} |"
        )
    return "\n".join(rows)


def _mean(values) -> float:
    values = list(values)
    return sum(values) / len(values)


if __name__ == "__main__":
    raise SystemExit(one_line_errors("on_policy_check.py", main))
