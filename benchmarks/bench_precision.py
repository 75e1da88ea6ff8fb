"""float32 vs bf16 model rollouts in one process: speed and what changes (issue 33, rollout part).

    python benchmarks/bench_precision.py --quick                       # under a minute: MOPO-size model, random weights
    python benchmarks/bench_precision.py --dynamics DIR --dataset NAME  # a fitted model on its data: quality too
    python benchmarks/bench_precision.py --dynamics DIR --dataset NAME --save   # results/precision_<cpu>.json

Speed: a MOPO rollout's model part — ``ModelStep`` (ensemble forward, sampling, ``max_aleatoric``
penalty, termination) on 50,000 states × 5 steps, random actions — interleaved fp32/bf16, median
of the repeats (one torch thread). Quality (with a fitted model): the one-step error of the
ensemble's mean on the dataset's own transitions, and each estimator's u(s, a), bf16 against
fp32 (relative difference, median and p99). SAC updates stay float32 (``sac_ratio`` null): bf16
there is not built yet.
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 repeats of 10,000 states (with no --dynamics: a MOPO-size model with random weights)")
    parser.add_argument("--dynamics", help="a fitted model directory (quality numbers need it)")
    parser.add_argument("--dataset", help="the model's dataset (registered name or path)")
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--save", action="store_true", help="write benchmarks/results/precision_<cpu>.json")
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
        "sac_ratio": None,
        "epoch_ratio": None,
        "not_built": "bf16 SAC updates (sac_ratio, epoch_ratio): SAC stays float32",
    }
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
