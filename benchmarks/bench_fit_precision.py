"""The dynamics fit in bf16 against float32: speed of a training step, and the fitted model's quality.

    python benchmarks/bench_fit_precision.py --quick      # a few minutes: speed + 2 seeds × 8 epochs on 30k rows
    python benchmarks/bench_fit_precision.py --save       # results/fit_precision_<cpu>.json (3 seeds)

Speed: MOPO's fused training step (7 members × batch 256, 4 × 200 hidden, hopper's and
halfcheetah's dims) with ``compute_dtype`` bf16 against float32, interleaved in one process, median
of the repeats, one torch thread.

Quality (the issue's check for the fit, "model one-step error on held-out data within 1 % of
float32; the penalty within 1 %"): for each seed, two fits of the same model — same initial
weights, same bootstrap and minibatches, only the fit's precision differs — on the first rows of
a dataset, for a fixed number of epochs (early stopping as MOPO's), then both evaluated in float32
on the dataset's last rows, which neither fit saw: the elites' mean one-step MSE on [Δs, r] and
the mean ``max_aleatoric`` penalty. A bf16 fit is a different fit: the same seed's two float32
fits are equal to the bit, so the float32 side's own seed-to-seed spread is reported beside the
ratios as the scale a 1 % difference is judged against.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, write_result  # noqa: E402

from mopo_kit.dynamics.fused import FusedTrainer  # noqa: E402
from mopo_kit.dynamics.gaussian_ensemble import EnsembleConfig, GaussianEnsemble  # noqa: E402
from mopo_kit.precision import cpu_bf16_units  # noqa: E402
from mopo_kit.uncertainty.builtin import MaxAleatoric  # noqa: E402

#: (obs_dim, act_dim) of the speed shapes
SHAPES = {"hopper": (11, 3), "halfcheetah": (17, 6)}


def step_seconds(obs_dim: int, act_dim: int, steps: int, repeats: int) -> dict[str, Any]:
    """Median seconds of ``steps`` fused training steps per precision, interleaved."""
    x = torch.randn(7, 256, obs_dim + act_dim)
    y = torch.randn(7, 256, obs_dim + 1)
    trainers = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        model = GaussianEnsemble(obs_dim, act_dim, EnsembleConfig(seed=0))
        trainers[name] = FusedTrainer(model.net, model.config.weight_decays, 1e-3, model.config.logvar_loss_coef, compute_dtype=dtype)
        for _ in range(10):  # warm-up: buffers and oneDNN kernels
            trainers[name].step(x, y)
    times: dict[str, list[float]] = {"fp32": [], "bf16": []}
    for _ in range(repeats):
        for name, trainer in trainers.items():
            start = time.perf_counter()
            for _ in range(steps):
                trainer.step(x, y)
            times[name].append(time.perf_counter() - start)
    medians = {k: statistics.median(v) for k, v in times.items()}
    return {
        "steps": steps,
        "repeats": repeats,
        "ms_per_step": {k: round(1000 * v / steps, 3) for k, v in medians.items()},
        "ratio": round(medians["bf16"] / medians["fp32"], 3),
    }


@torch.inference_mode()
def evaluate(model: GaussianEnsemble, test) -> dict[str, float]:
    obs, act = torch.as_tensor(test.observations), torch.as_tensor(test.actions)
    target = torch.cat([torch.as_tensor(test.next_observations), torch.as_tensor(test.rewards)[:, None]], 1)
    pred = model.predict(obs, act)  # [s', r] in raw units: its error is the error of [Δs, r]
    return {
        "test_mse": float((pred.mean[pred.elites] - target).square().mean()),
        "penalty_mean": float(MaxAleatoric()(obs, act, pred).mean()),
    }


def quality(dataset: str, rows: int, test_rows: int, epochs: int, seeds: list[int]) -> dict[str, Any]:
    from mopo_kit.data.load import load_dataset

    data = load_dataset(dataset)
    if len(data) < rows + test_rows:
        raise SystemExit(f"{dataset}: {len(data)} transitions, fewer than --rows + --test-rows = {rows + test_rows}")
    train, test = data.select(slice(0, rows)), data.select(slice(len(data) - test_rows, len(data)))
    per_seed = []
    for seed in seeds:
        row: dict[str, Any] = {"seed": seed}
        for precision in ("fp32", "bf16"):
            model = GaussianEnsemble(data.obs_dim, data.act_dim, EnsembleConfig(seed=seed, max_epochs=epochs, fit_precision=precision))
            report = model.fit(train)
            row[precision] = {"epochs": report.epochs, "seconds": round(report.seconds, 1), "holdout_mse": report.holdout_mse, **evaluate(model, test)}
            print(f"[fit-precision] seed {seed} {precision}: {row[precision]['test_mse']:.5g} test MSE, "
                  f"{row[precision]['penalty_mean']:.5g} mean penalty, {report.seconds:.0f} s", file=sys.stderr)
        row["test_mse_ratio"] = row["bf16"]["test_mse"] / row["fp32"]["test_mse"]
        row["penalty_ratio"] = row["bf16"]["penalty_mean"] / row["fp32"]["penalty_mean"]
        row["seconds_ratio"] = row["bf16"]["seconds"] / row["fp32"]["seconds"]
        per_seed.append(row)
    fp32_mse = [r["fp32"]["test_mse"] for r in per_seed]
    fp32_pen = [r["fp32"]["penalty_mean"] for r in per_seed]
    spread = (lambda v: statistics.pstdev(v) / statistics.fmean(v)) if len(seeds) > 1 else (lambda v: None)
    return {
        "dataset": dataset,
        "train_rows": rows,
        "test_rows": test_rows,
        "max_epochs": epochs,
        "seeds": per_seed,
        "test_mse_ratio_mean": statistics.fmean(r["test_mse_ratio"] for r in per_seed),
        "penalty_ratio_mean": statistics.fmean(r["penalty_ratio"] for r in per_seed),
        "fp32_seed_spread": {"test_mse": spread(fp32_mse), "penalty_mean": spread(fp32_pen)},
        "within_1_percent": all(abs(r["test_mse_ratio"] - 1) <= 0.01 and abs(r["penalty_ratio"] - 1) <= 0.01 for r in per_seed),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps and repeats; 2 seeds × 8 epochs on 30,000 rows")
    parser.add_argument("--dataset", default="hopper-random", help="registered name or path (default hopper-random)")
    parser.add_argument("--rows", type=int, default=100_000, help="training rows (the dataset's first)")
    parser.add_argument("--test-rows", type=int, default=20_000, help="held-out rows (the dataset's last)")
    parser.add_argument("--epochs", type=int, default=30, help="epoch cap of each fit (early stopping as MOPO's before it)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--save", action="store_true", help="write benchmarks/results/fit_precision_<cpu>.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if args.quick:
        args.rows, args.epochs, args.seeds = min(args.rows, 30_000), min(args.epochs, 8), args.seeds[:2]
    steps, repeats = (50, 3) if args.quick else (200, 7)
    speed = {task: step_seconds(*dims, steps=steps, repeats=repeats) for task, dims in SHAPES.items()}
    payload = {
        "cpu": machine()["cpu"],
        "bf16_supported": list(cpu_bf16_units()),
        "speed": speed,
        "step_ratio": {task: s["ratio"] for task, s in speed.items()},
        "quality": quality(args.dataset, args.rows, args.test_rows, args.epochs, args.seeds),
    }
    name = "fit_precision_" + ("".join(c if c.isalnum() else "-" for c in payload["cpu"]).strip("-") or "cpu")
    command = "python benchmarks/bench_fit_precision.py " + " ".join(argv if argv is not None else sys.argv[1:])
    write_result(name, payload, command.strip(), save=args.save)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
