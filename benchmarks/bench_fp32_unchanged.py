"""float32 SAC updates before and after the bf16 work (issue 33): nothing slower without bf16.

    python benchmarks/bench_fp32_unchanged.py OLD_LEAN_SAC.py [--updates 1000] [--repeats 5]

Loads ``LeanSAC`` from a file of an earlier commit (``git show <commit>:mopo_kit/policy/lean_sac.py``)
beside the current one, builds both on the same data and weights, and times ``updates`` float32
updates of each, interleaved (old, new, old, new, ...), median of the repeats, one torch thread;
checks the two end with the same weights (the float32 path is meant to be unchanged to the bit).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_epoch import mopo_sac  # noqa: E402
from common import commit, machine  # noqa: E402

from mopo_kit.data.collect import collect_transitions, uniform_random_policy  # noqa: E402
from mopo_kit.envs.tasks import HALFCHEETAH  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("old", help="lean_sac.py of the earlier commit")
    parser.add_argument("--updates", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    spec = importlib.util.spec_from_file_location("lean_sac_old", args.old)
    old_module = importlib.util.module_from_spec(spec)
    sys.modules["lean_sac_old"] = old_module  # dataclasses look their module up there
    spec.loader.exec_module(old_module)
    data = collect_transitions(HALFCHEETAH, uniform_random_policy(6), 100_000, seed=0, description="benchmark data")
    sides = {}
    for name in ("old", "new"):
        torch.manual_seed(0)
        optimizer = mopo_sac(data, horizon=5)
        if name == "old":
            optimizer.sac.__class__ = old_module.LeanSAC  # the same SB3 object, the earlier train()
        optimizer.rollout()
        sides[name] = optimizer
    sides["old"].sac.policy.load_state_dict(sides["new"].sac.policy.state_dict())
    times: dict[str, list[float]] = {"old": [], "new": []}
    for _ in range(args.repeats):
        for name, optimizer in sides.items():
            optimizer.buffer.generator.manual_seed(len(times[name]))
            torch.manual_seed(len(times[name]))
            start = time.perf_counter()
            optimizer.sac.train(args.updates, 256)
            times[name].append(time.perf_counter() - start)
    same = all(torch.equal(a, b) for a, b in zip(sides["old"].sac.policy.state_dict().values(), sides["new"].sac.policy.state_dict().values()))
    medians = {k: statistics.median(v) for k, v in times.items()}
    print(json.dumps({
        "updates": args.updates, "repeats": args.repeats, "seconds": {k: round(v, 3) for k, v in medians.items()},
        "new_over_old": round(medians["new"] / medians["old"], 3), "same_weights": same,
        "command": "python benchmarks/bench_fp32_unchanged.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "commit": commit(), "machine": machine(),
    }, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
