"""Dynamics-ensemble speed: training steps/s and 50k-state prediction, against plain PyTorch.

Measures, in one process (so the ratios are fair):
* torch.matmul 2048² float32 GFLOP/s — the reference of the targets;
* a training step of MOPO's ensemble (7 members × 256 rows, 4×200 swish, halfcheetah sizes
  23 → 2·18): mopo_kit's fused step; the same loss with autograd on batched tensors; and a
  plain per-member PyTorch loop (7 nn.Sequential models, one Adam);
* prediction of 50,000 states through all 7 members: mopo_kit vs a per-member nn.Sequential loop;
* the rollout cost of each installed uncertainty estimator: one model step at 50,000 states
  (predict + penalty + a Gaussian sample from a random elite per row), relative to max_aleatoric.

Run: ``python benchmarks/bench_dynamics.py [--quick] [--save] [--device cuda] [--out FILE]``
(``--save`` writes benchmarks/results/dynamics.json; on a GPU every part, the matmul reference
included, runs there). Stop other CPU work first: 2-thread GEMMs slow down several
times when another process holds a core.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import matmul_gflops, median_time, write_result  # noqa: E402

from mopo_kit.dynamics.fused import FusedTrainer  # noqa: E402
from mopo_kit.dynamics.gaussian_ensemble import GaussianEnsemble  # noqa: E402
from mopo_kit.plugins import get_registry  # noqa: E402

OBS, ACT, MEMBERS, BATCH, HIDDEN = 17, 6, 7, 256, 200
IN, OUT = OBS + ACT, OBS + 1
MACS_PER_ROW = IN * HIDDEN + 3 * HIDDEN * HIDDEN + HIDDEN * 2 * OUT
TRAIN_FLOP = 6 * MEMBERS * BATCH * MACS_PER_ROW  # forward 2·MAC, backward 4·MAC
PREDICT_ROWS = 50_000
PREDICT_FLOP = 2 * MEMBERS * PREDICT_ROWS * MACS_PER_ROW


def plain_member() -> nn.Module:
    return nn.Sequential(
        nn.Linear(IN, HIDDEN), nn.SiLU(), nn.Linear(HIDDEN, HIDDEN), nn.SiLU(),
        nn.Linear(HIDDEN, HIDDEN), nn.SiLU(), nn.Linear(HIDDEN, HIDDEN), nn.SiLU(), nn.Linear(HIDDEN, 2 * OUT),
    )


def bench_training(repeats: int, inner: int) -> dict[str, float]:
    x, y = torch.randn(MEMBERS, BATCH, IN, device=DEVICE), torch.randn(MEMBERS, BATCH, OUT, device=DEVICE)
    model = GaussianEnsemble(OBS, ACT, device=DEVICE)
    fused = FusedTrainer(model.net, model.config.weight_decays, 1e-3, 0.01)
    t_fused = median_time_on(lambda: fused.step(x, y), repeats, inner, warmup=10)

    auto_model = GaussianEnsemble(OBS, ACT, device=DEVICE)
    auto_opt = torch.optim.Adam(auto_model.net.parameters(), lr=1e-3)

    def autograd_step() -> None:
        loss = auto_model.loss(x, y)
        auto_opt.zero_grad(set_to_none=True)
        loss.backward()
        auto_opt.step()

    t_auto = median_time_on(autograd_step, repeats, inner, warmup=10)

    members = [plain_member().to(DEVICE) for _ in range(MEMBERS)]
    max_lv, min_lv = nn.Parameter(torch.full((OUT,), 0.5, device=DEVICE)), nn.Parameter(torch.full((OUT,), -10.0, device=DEVICE))
    params = [p for m in members for p in m.parameters()] + [max_lv, min_lv]
    loop_opt = torch.optim.Adam(params, lr=1e-3)
    decays = (2.5e-5, 5e-5, 7.5e-5, 7.5e-5, 1e-4)

    def loop_step() -> None:
        total = 0.01 * (max_lv.sum() - min_lv.sum())
        for k, member in enumerate(members):
            out = member(x[k])
            mean, raw = out[:, :OUT], out[:, OUT:]
            logvar = max_lv - nn.functional.softplus(max_lv - raw)
            logvar = min_lv + nn.functional.softplus(logvar - min_lv)
            total = total + ((mean - y[k]).square() * torch.exp(-logvar)).mean() + logvar.mean()
            linears = [m for m in member if isinstance(m, nn.Linear)]
            total = total + sum(wd * 0.5 * lin.weight.square().sum() for wd, lin in zip(decays, linears))
        loop_opt.zero_grad(set_to_none=True)
        total.backward()
        loop_opt.step()

    t_loop = median_time_on(loop_step, repeats, inner, warmup=10)
    return {
        "train_steps_per_s": 1 / t_fused,
        "train_gflops": TRAIN_FLOP / t_fused / 1e9,
        "train_autograd_batched_steps_per_s": 1 / t_auto,
        "train_per_member_loop_steps_per_s": 1 / t_loop,
        "train_speedup_vs_per_member_loop": t_loop / t_fused,
    }


def bench_prediction(repeats: int) -> dict[str, float]:
    model = GaussianEnsemble(OBS, ACT, device=DEVICE)
    obs, act = torch.randn(PREDICT_ROWS, OBS, device=DEVICE), torch.randn(PREDICT_ROWS, ACT, device=DEVICE)
    t_ours = median_time_on(lambda: model.predict(obs, act), repeats, 1)
    members = [plain_member().to(DEVICE) for _ in range(MEMBERS)]
    x = torch.cat([obs, act], dim=-1)

    @torch.inference_mode()
    def loop_predict() -> None:
        outs = [m(x) for m in members]
        torch.stack(outs)

    t_loop = median_time_on(loop_predict, repeats, 1)
    return {
        "predict_50k_s": t_ours,
        "predict_gflops": PREDICT_FLOP / t_ours / 1e9,
        "predict_per_member_loop_s": t_loop,
        "predict_speedup_vs_per_member_loop": t_loop / t_ours,
    }


def bench_estimators(repeats: int) -> dict[str, dict[str, float]]:
    from mopo_kit.testing_models import linear_system_dataset

    model = GaussianEnsemble(OBS, ACT, device=DEVICE)
    obs, act = torch.randn(PREDICT_ROWS, OBS, device=DEVICE), torch.rand(PREDICT_ROWS, ACT, device=DEVICE) * 2 - 1
    fit_data = linear_system_dataset(n=5000, obs_dim=OBS, act_dim=ACT)
    registry = get_registry()
    gen = torch.Generator(device=DEVICE).manual_seed(0)

    def rollout_step(estimator) -> None:
        pred = model.predict(obs, act)
        penalty = estimator(obs, act, pred)
        pick = pred.elites[torch.randint(len(pred.elites), (PREDICT_ROWS,), generator=gen, device=DEVICE)]
        rows = torch.arange(PREDICT_ROWS, device=DEVICE)
        sample = pred.mean[pick, rows] + pred.var[pick, rows].sqrt() * torch.randn(PREDICT_ROWS, OUT, generator=gen, device=DEVICE)
        _ = sample[:, -1] - penalty

    results: dict[str, dict[str, float]] = {}
    pred = model.predict(obs, act)
    for name in registry.names("uncertainty"):
        estimator = registry.create("uncertainty", name)
        estimator.fit(fit_data, model)
        only = median_time_on(lambda: estimator(obs, act, pred), repeats, 1)
        step = median_time_on(lambda: rollout_step(estimator), repeats, 1)
        results[name] = {"estimator_s": only, "rollout_step_s": step}
    base = results["max_aleatoric"]["rollout_step_s"]
    for row in results.values():
        row["rollout_step_vs_max_aleatoric"] = row["rollout_step_s"] / base
    return results


def median_time_on(fn, repeats: int, inner: int, warmup: int = 2) -> float:
    """:func:`common.median_time` on the benchmark's device (GPU work waited for)."""
    return median_time(fn, repeats, inner, warmup, device=DEVICE)


def bench_fit_epoch(rows: int = 200_000, epochs: int = 3) -> dict:
    """Seconds per epoch of ``GaussianEnsemble.fit`` on ``rows`` halfcheetah-sized transitions
    (MOPO's ensemble, batch 256, holdout evaluation included; median of ``epochs`` epochs)."""
    import statistics

    from mopo_kit.dynamics.gaussian_ensemble import GaussianEnsemble
    from mopo_kit.testing_models import linear_system_dataset

    data = linear_system_dataset(n=rows, obs_dim=OBS, act_dim=ACT, seed=0)
    model = GaussianEnsemble(OBS, ACT, device=DEVICE, max_epochs=epochs, patience=epochs + 1)
    seconds: list[float] = []
    model.fit(data, callback=lambda stats: seconds.append(stats.seconds))
    return {"fit_epoch_rows": rows, "fit_epoch_s": statistics.median(seconds), "fit_epoch_s_all": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats (about a minute)")
    parser.add_argument("--save", action="store_true", help="write benchmarks/results/dynamics.json")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    parser.add_argument("--out", help="also write the JSON to this file")
    parser.add_argument("--fit-epoch", action="store_true", help="also time whole fit epochs on 200k transitions (on by default on CUDA; ~35 s each on 2 CPU cores)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    global DEVICE
    from mopo_kit.device import resolve_device

    DEVICE = resolve_device(args.device)
    repeats = 3 if args.quick else 7
    inner = 20 if args.quick else 50
    ref = matmul_gflops(device=DEVICE)
    train = bench_training(repeats, inner)
    predict = bench_prediction(repeats)
    ref_after = matmul_gflops(device=DEVICE)
    reference = (ref + ref_after) / 2
    payload = {
        "device": str(DEVICE),
        "matmul_2048_gflops": reference,
        "matmul_2048_gflops_before_after": [ref, ref_after],
        **train,
        **predict,
        "train_fraction_of_matmul": train["train_gflops"] / reference,
        "predict_fraction_of_matmul": predict["predict_gflops"] / reference,
        "targets": {"train_fraction_of_matmul": 0.60, "predict_fraction_of_matmul": 0.70, "estimator_rollout_ratio_max": 1.5}
        | ({"fit_epoch_s": 2.0} if DEVICE.type == "cuda" else {}),
        "estimators": bench_estimators(repeats),
        **(bench_fit_epoch() if args.fit_epoch or DEVICE.type == "cuda" else {}),
        "flop_per_train_step": TRAIN_FLOP,
        "flop_per_50k_prediction": PREDICT_FLOP,
    }
    command = "python benchmarks/bench_dynamics.py" + (" --quick" if args.quick else "") + (" --save" if args.save else "") + f" --device {args.device}"
    write_result("dynamics", payload, command, args.save, args.out)


if __name__ == "__main__":
    main()
