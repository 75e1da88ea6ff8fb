"""float32 vs bf16 in one process: model rollouts, SAC updates, a MOPO epoch, and what changes.

    python benchmarks/bench_precision.py --quick                       # under a minute: MOPO-size model, random weights
    python benchmarks/bench_precision.py --dynamics DIR --dataset NAME  # a fitted model on its data: quality too
    python benchmarks/bench_precision.py --dynamics DIR --dataset NAME --save   # results/precision_<cpu>.json

Speed: a MOPO rollout's model part — ``ModelStep`` (ensemble forward, sampling, ``max_aleatoric``
penalty, termination) on 50,000 states × 5 steps, random actions — interleaved fp32/bf16, median
of the repeats (one torch thread). Quality (with a fitted model): the one-step error of the
ensemble's mean on the dataset's own transitions, and each estimator's u(s, a), bf16 against
fp32 (relative difference, median and p99).

SAC (``sac_ratio``): 1,000 lean SAC updates (MOPO's 256×256 nets, batch 256, the real/model
mix) with the hidden layers in bf16 against float32, interleaved, median of the repeats.
Epoch (``epoch_ratio``): ``learn(1000)`` — a 50,000 × h 5 rollout and 1,000 updates, MOPO's epoch
without the real evaluation — with both the rollout and the updates in bf16, against float32.
Both on 100,000 halfcheetah transitions (uniform random policy) and an untrained MOPO-size
ensemble, as ``bench_epoch.py`` does: speed does not depend on the weights.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, commit, machine  # noqa: E402

from mopo_kit.dynamics.gaussian_ensemble import GaussianEnsemble  # noqa: E402
from mopo_kit.envs.model_env import ModelStep  # noqa: E402
from mopo_kit.precision import cpu_bf16_units  # noqa: E402
from mopo_kit.uncertainty.builtin import MMD, MaxAleatoric, TotalVariation, Wasserstein  # noqa: E402

ESTIMATORS = {"max_aleatoric": MaxAleatoric, "wasserstein": Wasserstein, "total_variation": TotalVariation, "mmd": MMD}


def _rollout_seconds(model, obs, act_dim: int, steps: int) -> float:
    step = ModelStep(model, MaxAleatoric(), 1.0, lambda o, a, n: torch.zeros(o.shape[0], dtype=torch.bool), torch.Generator().manual_seed(0))
    start = time.perf_counter()
    x = obs
    for _ in range(steps):
        x = step(x, torch.rand(x.shape[0], act_dim) * 2 - 1).next_obs
    return time.perf_counter() - start


def _relative(a: torch.Tensor, b: torch.Tensor) -> dict[str, float]:
    rel = ((b - a).abs() / a.abs().clamp_min(1e-12)).double()
    return {"median": float(rel.median()), "p99": float(torch.quantile(rel[: 1_000_000], 0.99))}


@torch.inference_mode()
def quality(model, data, rows: int) -> dict:
    """One-step error and each estimator's u, fp32 vs bf16, on the dataset's first ``rows`` transitions."""
    obs = torch.as_tensor(data.observations[:rows])
    act = torch.as_tensor(data.actions[:rows])
    target = torch.cat([torch.as_tensor(data.next_observations[:rows]), torch.as_tensor(data.rewards[:rows])[:, None]], 1)
    out = {}
    preds = {}
    for precision in ("fp32", "bf16"):
        model.set_precision(precision)
        preds[precision] = model.predict(obs, act)
    for precision, pred in preds.items():
        out[f"one_step_mse_{precision}"] = float((pred.mean[pred.elites] - target).square().mean())
    out["one_step_mse_ratio"] = out["one_step_mse_bf16"] / out["one_step_mse_fp32"]
    out["penalty"] = {name: _relative(cls()(obs, act, preds["fp32"]), cls()(obs, act, preds["bf16"])) for name, cls in ESTIMATORS.items()}
    model.set_precision("fp32")
    return out


def sac_and_epoch(updates: int, repeats: int, epochs: int, transitions: int) -> dict:
    """bf16 ÷ float32 time of ``updates`` SAC updates and of a whole epoch, interleaved in one process."""
    from bench_epoch import mopo_sac

    from mopo_kit.data.collect import collect_transitions, uniform_random_policy
    from mopo_kit.envs.tasks import HALFCHEETAH

    data = collect_transitions(HALFCHEETAH, uniform_random_policy(6), transitions, seed=0, description="benchmark data")
    sides = {}
    for precision in ("fp32", "bf16"):
        torch.manual_seed(0)
        optimizer = mopo_sac(data, horizon=5)
        optimizer.model_step.dynamics.set_precision(precision)
        optimizer.set_precision(precision)
        optimizer.rollout()  # a full pool, so that batches mix real and model rows
        optimizer.sac.train(20, 256)  # warm-up
        sides[precision] = optimizer
    sac: dict[str, list[float]] = {"fp32": [], "bf16": []}
    for _ in range(repeats):
        for precision, optimizer in sides.items():
            start = time.perf_counter()
            optimizer.sac.train(updates, 256)
            sac[precision].append(time.perf_counter() - start)
    epoch: dict[str, list[float]] = {"fp32": [], "bf16": []}
    for _ in range(epochs):
        for precision, optimizer in sides.items():
            optimizer._steps = 0  # the start of an epoch: learn() rolls out first, then trains
            start = time.perf_counter()
            optimizer.learn(1000)
            epoch[precision].append(time.perf_counter() - start)
    sac_s = {k: statistics.median(v) for k, v in sac.items()}
    epoch_s = {k: statistics.median(v) for k, v in epoch.items()}
    return {
        "sac": {"updates": updates, "repeats": repeats, "seconds": {k: round(v, 3) for k, v in sac_s.items()},
                "updates_per_s": {k: round(updates / v, 1) for k, v in sac_s.items()}},
        "sac_ratio": round(sac_s["bf16"] / sac_s["fp32"], 3),
        "epoch": {"repeats": epochs, "seconds": {k: round(v, 3) for k, v in epoch_s.items()}},
        "epoch_ratio": round(epoch_s["bf16"] / epoch_s["fp32"], 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 repeats of 10,000 states (with no --dynamics: a MOPO-size model with random weights)")
    parser.add_argument("--dynamics", help="a fitted model directory (quality numbers need it)")
    parser.add_argument("--dataset", help="the model's dataset (registered name or path)")
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--save", action="store_true", help="write benchmarks/results/precision_<cpu>.json")
    parser.add_argument("--no-sac", action="store_true", help="only the rollout (and quality): no SAC updates or epoch")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    data = None
    if args.dynamics:
        from mopo_kit.data.load import load_dataset
        from mopo_kit.dynamics.storage import load_dynamics

        model = load_dynamics(args.dynamics)
        data = load_dataset(args.dataset) if args.dataset else None
        obs_dim, act_dim = model.obs_dim, model.act_dim
    else:
        obs_dim, act_dim = 17, 6  # halfcheetah's dims at MOPO's 7 × 4 × 200
        model = GaussianEnsemble(obs_dim, act_dim)
    repeats = 3 if args.quick else args.repeats
    if args.quick:
        args.rows = min(args.rows, 10_000)
    obs = torch.as_tensor(data.observations[: args.rows]) if data is not None else torch.randn(args.rows, obs_dim)
    times: dict[str, list[float]] = {"fp32": [], "bf16": []}
    for _ in range(repeats + 1):  # the first round warms up and is dropped
        for precision in ("fp32", "bf16"):
            model.set_precision(precision)
            times[precision].append(_rollout_seconds(model, obs, act_dim, args.steps))
    model.set_precision("fp32")
    medians = {k: statistics.median(v[1:]) for k, v in times.items()}
    report = {
        "cpu": machine()["cpu"],
        "bf16_supported": list(cpu_bf16_units()),
        "rollout": {"rows": len(obs), "steps": args.steps, "seconds": {k: round(v, 4) for k, v in medians.items()}, "repeats": repeats},
        "rollout_ratio": round(medians["bf16"] / medians["fp32"], 3),
    }
    if not args.no_sac:
        report.update(sac_and_epoch(updates=200 if args.quick else 1000, repeats=3 if args.quick else args.repeats,
                                    epochs=1 if args.quick else 3, transitions=20_000 if args.quick else 100_000))
    if data is not None:
        report["quality"] = quality(model, data, min(args.rows, len(data)))
    report.update(command="python benchmarks/bench_precision.py " + " ".join(argv if argv is not None else sys.argv[1:]), commit=commit(), machine=machine())
    print(json.dumps({k: v for k, v in report.items() if k not in ("machine",)}, indent=1))
    if args.save:
        name = "".join(c if c.isalnum() else "-" for c in report["cpu"]).strip("-") or "cpu"
        (ROOT / "benchmarks" / "results" / f"precision_{name}.json").write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
