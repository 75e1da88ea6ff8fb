"""The datasets table of docs/datasets.md: size, episodes, batch returns and the behavior policies.

Run: ``python benchmarks/dataset_table.py [NAME ...] [--save]`` (default: every registered
dataset) and ``python benchmarks/dataset_table.py --markdown`` to print the docs table from the
saved JSON. Datasets are generated into the cache (``MOPO_KIT_DATA``) on first use (collection
speed is measured by ``bench_collect.py``, not here).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, write_result  # noqa: E402

from mopo_kit.plugins import get_registry  # noqa: E402

RESULT = ROOT / "benchmarks" / "results" / "datasets.json"


def _policy_returns(metadata: dict) -> dict | None:
    """The sampled-action (stochastic) return of the behavior policies a dataset rolled out."""
    policies = metadata.get("behavior_policies")
    kind = metadata.get("kind")
    if not policies or kind == "random":
        return None
    roles = {"medium": ["medium"], "medium-expert": ["medium", "expert"], "mixed": ["medium"]}[kind]
    return {role: {k: policies[role][k] for k in ("step", "det_return", "stoch_return")} for role in roles}


def measure(names: list[str]) -> list[dict]:
    registry = get_registry()
    rows = []
    for name in names or registry.names("dataset"):
        data = registry.create("dataset", name)
        s = data.summary()
        rows.append({
            "name": name, "transitions": s.transitions, "episodes": s.episodes, "obs_dim": s.obs_dim, "act_dim": s.act_dim,
            "return_mean": round(s.return_mean, 1), "return_max": round(s.return_max, 1), "return_min": round(s.return_min, 1),
            "terminals": s.terminals, "timeouts": s.timeouts,
            "env_id": s.metadata.get("env_id"), "policy": s.metadata.get("policy"), "scaled_down": s.metadata.get("scaled_down"),
            "behavior_policy": _policy_returns(s.metadata),
        })
        print(f"{name}: {s.transitions} transitions, {s.episodes} episodes, mean {s.return_mean:.1f}, max {s.return_max:.1f}", file=sys.stderr)
    return rows


def markdown(rows: list[dict]) -> str:
    def policy(row: dict) -> str:
        bp = row.get("behavior_policy")
        if not bp:
            return "uniform random"
        if row["name"].endswith("-mixed"):
            medium = bp["medium"]
            return f"SAC's training up to medium (replayed; medium {medium['stoch_return']:,.0f} at step {medium['step'] // 1000}k)"
        return " + ".join(f"{role} {v['stoch_return']:,.0f} (step {v['step'] // 1000}k)" for role, v in bp.items())

    lines = [
        "| dataset | transitions | episodes | batch mean return | batch max return | behavior policy return (sampled actions) |",
        "|---|---|---|---|---|---|",
    ]
    def num(x: float) -> str:
        return f"{x:,.1f}".replace("-", "−")  # a typographic minus, as in the rest of the docs

    for row in rows:
        lines.append(
            f"| `{row['name']}` | {row['transitions']:,} | {row['episodes']:,} | {num(row['return_mean'])} | "
            f"{num(row['return_max'])} | {policy(row)} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*")
    parser.add_argument("--save", action="store_true", help="write benchmarks/results/datasets.json")
    parser.add_argument("--markdown", action="store_true", help="print the docs table from the saved JSON")
    args = parser.parse_args()
    if args.markdown:
        print(markdown(json.loads(RESULT.read_text())["datasets"]))
        return
    rows = measure(args.names)
    write_result("datasets", {"datasets": rows}, "python benchmarks/dataset_table.py" + (" --save" if args.save else ""), args.save)


if __name__ == "__main__":
    main()
