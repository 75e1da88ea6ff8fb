"""Collection speed with a policy: environment steps per second, batched over lockstep envs.

Rolls out a SAC-sized actor (256×256, random weights unless ``--policy FILE``) with sampled
actions in ``--envs`` environments stepped in lockstep, for each task, and compares with raw
single-env stepping (uniform actions, no policy) in the same run. Target (issue 5): ≥ 5,000
steps/s with a policy on 2 cores.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_result  # noqa: E402

from mopo_kit.data.actor import TanhGaussianActor, load_actor  # noqa: E402
from mopo_kit.data.collect import actor_policy, collect_transitions  # noqa: E402
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tasks", nargs="*", default=["halfcheetah", "hopper", "walker2d", "ant"])
    parser.add_argument("--steps", type=int, default=50_000)
    parser.add_argument("--envs", type=int, default=16)
    parser.add_argument("--policy", help="actor file; default: a randomly initialized 256×256 actor")
    parser.add_argument("--save", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    registry = get_registry()
    rows = {}
    for name in args.tasks:
        task = registry.create("task", name)
        if args.policy:
            actor, _ = load_actor(Path(args.policy))
        else:
            torch.manual_seed(0)
            actor = TanhGaussianActor(task.obs_dim, task.act_dim).eval()
        t0 = time.perf_counter()
        collect_transitions(task, actor_policy(actor, seed=0), args.steps, seed=0, num_envs=args.envs, description=f"bench {name}")
        policy_rate = args.steps / (time.perf_counter() - t0)
        raw = raw_steps_per_s(task, min(args.steps, 20_000))
        rows[name] = {"policy_steps_per_s": policy_rate, "raw_env_steps_per_s": raw, "fraction_of_raw": policy_rate / raw}
        print(f"{name}: {policy_rate:,.0f} steps/s with the policy ({args.envs} envs), raw env {raw:,.0f}", file=sys.stderr)
    payload = {"steps": args.steps, "envs": args.envs, "policy": args.policy or "random-init 256x256 actor", "tasks": rows, "target_steps_per_s": 5000}
    write_result("collect", payload, "python benchmarks/bench_collect.py" + (" --save" if args.save else ""), args.save)


if __name__ == "__main__":
    main()
