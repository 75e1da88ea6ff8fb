"""Cost of the output guards in ``ModelStep``: a 50,000-row × 5-step rollout with and without them.

Only the model steps are timed (no actor, no buffer writes), so the guards' share is the largest
it can be in a real rollout. The model is an untrained MOPO-sized ensemble (7 × 4×200) on
halfcheetah's dims (17 + 1 outputs; speed does not depend on the weights); the penalty is
``max_aleatoric``. Runs are interleaved (guarded, unguarded, guarded, ...) so both see the same
machine state; each number is the median over ``--repeats``. ``--save`` writes
``benchmarks/results/guard.json``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_result  # noqa: E402

from mopo_kit.dynamics.gaussian_ensemble import GaussianEnsemble  # noqa: E402
from mopo_kit.envs.model_env import ModelStep  # noqa: E402
from mopo_kit.uncertainty.builtin import MaxAleatoric  # noqa: E402

OBS_DIM, ACT_DIM, ROWS, HORIZON = 17, 6, 50_000, 5


def rollout(step: ModelStep, obs: torch.Tensor, actions: list[torch.Tensor]) -> None:
    for act in actions:
        obs = step(obs, act).next_obs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--save", action="store_true")
    args = parser.parse_args()
    model = GaussianEnsemble(OBS_DIM, ACT_DIM)
    never = lambda o, a, n: torch.zeros(o.shape[0], dtype=torch.bool)  # noqa: E731
    steps = {guard: ModelStep(model, MaxAleatoric(), 1.0, never, guard=guard) for guard in (True, False)}
    gen = torch.Generator().manual_seed(0)
    obs = torch.randn(ROWS, OBS_DIM, generator=gen)
    actions = [torch.rand(ROWS, ACT_DIM, generator=gen) * 2 - 1 for _ in range(HORIZON)]
    times: dict[bool, list[float]] = {True: [], False: []}
    for guard in (True, False):  # warm-up
        rollout(steps[guard], obs, actions)
    for _ in range(args.repeats):
        for guard in (True, False):
            start = time.perf_counter()
            rollout(steps[guard], obs, actions)
            times[guard].append(time.perf_counter() - start)
    with_guard, without = statistics.median(times[True]), statistics.median(times[False])
    # the guards alone, on one step's tensors: the overhead without the rollout's noise
    pred = model.predict(obs, actions[0])
    penalty = MaxAleatoric()(obs, actions[0], pred)
    from mopo_kit.guards import check_penalty, check_prediction

    def guards_only() -> None:
        check_prediction(pred.mean, pred.var, "gaussian_ensemble")
        check_penalty(penalty, ROWS, "max_aleatoric")

    guard_times = []
    for _ in range(args.repeats * 4):
        start = time.perf_counter()
        guards_only()
        guard_times.append(time.perf_counter() - start)
    per_step = statistics.median(guard_times)
    payload = {
        "rows": ROWS,
        "horizon": HORIZON,
        "repeats": args.repeats,
        "rollout_s_with_guards": round(with_guard, 4),
        "rollout_s_without_guards": round(without, 4),
        "overhead_pct_rollout_medians": round(100 * (with_guard - without) / without, 2),
        "guards_s_per_step": round(per_step, 6),
        "overhead_pct_guards_alone": round(100 * per_step * HORIZON / without, 2),
    }
    write_result("guard", payload, " ".join(["python"] + sys.argv), args.save)


if __name__ == "__main__":
    main()
