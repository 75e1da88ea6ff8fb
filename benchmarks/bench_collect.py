"""Collection speed with a policy: environment steps per second, sharded over worker processes.

Rolls out a SAC-sized actor (256×256, random weights unless ``--policy FILE``) with sampled
actions the way datasets are collected (:func:`mopo_kit.data.collect.collect_segments`: shards
of ``--envs`` lockstep environments, one worker process per core), once with one worker and once
with ``--workers``, and compares with raw single-env stepping (uniform actions, no policy) in
the same run. Target (issue 5): ≥ 5,000 steps/s with a policy on 2 cores.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_result  # noqa: E402

from mopo_kit.data.actor import TanhGaussianActor, save_actor  # noqa: E402
from mopo_kit.data.collect import PolicySource, Segment, collect_segments  # noqa: E402
from mopo_kit.plugins import get_registry  # noqa: E402


def raw_steps_per_s(task, steps: int) -> float:
    env = task.make_env()
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, (steps, task.act_dim)).astype(np.float32)
    t0 = time.perf_counter()
    for a in actions:
        _, _, terminated, truncated, _ = env.step(a)
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - t0)


def timed_collect(task, policy_file: str, steps: int, workers: int, envs: int) -> float:
    t0 = time.perf_counter()
    collect_segments(task, [Segment(PolicySource(policy_file), steps)], seed=0, workers=workers, num_envs=envs)
    return steps / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tasks", nargs="*", default=["halfcheetah", "hopper", "walker2d", "ant"])
    parser.add_argument("--steps", type=int, default=50_000)
    parser.add_argument("--envs", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--policy", help="actor file; default: a randomly initialized 256×256 actor")
    parser.add_argument("--save", action="store_true")
    parser.add_argument("--out", help="also write the JSON to this file")
    args = parser.parse_args()
    registry = get_registry()
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.tasks:
            task = registry.create("task", name)
            policy_file = args.policy
            if not policy_file:
                torch.manual_seed(0)
                actor = TanhGaussianActor(task.obs_dim, task.act_dim)
                policy_file = str(Path(tmp) / f"{name}.pt")
                save_actor(actor.state_dict(), Path(policy_file), {"task": name, "step": 0})
            one = timed_collect(task, policy_file, args.steps, 1, args.envs)
            many = timed_collect(task, policy_file, args.steps, args.workers, args.envs)
            raw = raw_steps_per_s(task, min(args.steps, 20_000))
            rows[name] = {
                "steps_per_s_1_worker": one,
                f"steps_per_s_{args.workers}_workers": many,
                "raw_env_steps_per_s_single": raw,
                "speedup_workers": many / one,
            }
            print(f"{name}: {one:,.0f} steps/s (1 worker), {many:,.0f} ({args.workers} workers), raw env {raw:,.0f}", file=sys.stderr)
    payload = {
        "steps": args.steps,
        "envs_per_shard": args.envs,
        "workers": args.workers,
        "policy": args.policy or "random-init 256x256 actor, actions sampled",
        "tasks": rows,
        "target_steps_per_s": 5000,
    }
    write_result("collect", payload, "python benchmarks/bench_collect.py" + (" --save" if args.save else ""), args.save, args.out)


if __name__ == "__main__":
    main()
