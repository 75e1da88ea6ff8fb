"""The datasets table of docs/datasets.md: size, episodes and batch mean/max return per dataset.

Run: ``python benchmarks/dataset_table.py [NAME ...] [--save]`` (default: every registered
dataset). Datasets are generated into the cache (``MOPO_KIT_DATA``) on first use; also reports
collection speed in transitions per second for the ones it had to generate.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_result  # noqa: E402

from mopo_kit.plugins import get_registry  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*")
    parser.add_argument("--save", action="store_true", help="write benchmarks/results/datasets.json")
    args = parser.parse_args()
    registry = get_registry()
    rows = []
    for name in args.names or registry.names("dataset"):
        t0 = time.perf_counter()
        data = registry.create("dataset", name)
        seconds = time.perf_counter() - t0
        s = data.summary()
        rows.append({
            "name": name, "transitions": s.transitions, "episodes": s.episodes, "obs_dim": s.obs_dim, "act_dim": s.act_dim,
            "return_mean": round(s.return_mean, 1), "return_max": round(s.return_max, 1), "return_min": round(s.return_min, 1),
            "terminals": s.terminals, "load_or_generate_s": round(seconds, 1),
            "env_id": s.metadata.get("env_id"), "policy": s.metadata.get("policy"), "scaled_down": s.metadata.get("scaled_down"),
        })
        print(f"{name}: {s.transitions} transitions, {s.episodes} episodes, mean {s.return_mean:.1f}, max {s.return_max:.1f} ({seconds:.1f} s)", file=sys.stderr)
    write_result("datasets", {"datasets": rows}, "python benchmarks/dataset_table.py" + (" --save" if args.save else ""), args.save)


if __name__ == "__main__":
    main()
