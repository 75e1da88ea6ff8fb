"""What a dynamics fit checkpoint costs per epoch, timed inside a real full-size fit.

    python benchmarks/bench_fit_checkpoint.py [--save]

``GaussianEnsemble.fit(checkpoint=...)`` writes its whole training state after every epoch
(weights, Adam's moments, 7 member snapshots, the RNG). This runs that fit — MOPO's 7 × 4×200
ensemble on ant-angle's dims (27 + 8 → 28), the largest here — for a few epochs on small
synthetic data and times each call of the save the fit makes, so the state measured is exactly
the one the fit writes (no hand-built copy of its layout to drift). The data size does not change
the file (it holds no data); it only keeps the epochs short. The epoch time of a campaign's real
fit is in its ``fit_report.json``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_result  # noqa: E402

import mopo_kit.dynamics.gaussian_ensemble as gaussian_ensemble  # noqa: E402
from mopo_kit.dynamics.gaussian_ensemble import EnsembleConfig, GaussianEnsemble  # noqa: E402
from mopo_kit.testing_models import linear_system_dataset  # noqa: E402


def timed_fit(epochs: int, transitions: int) -> tuple[list[float], int]:
    """Fit for ``epochs`` with a checkpoint; the seconds of each save and the file's size."""
    real_save = gaussian_ensemble.save_fit_state
    seconds: list[float] = []
    sizes: list[int] = []

    def timed_save(path: Any, identity: Any, state: Any) -> None:
        start = time.perf_counter()
        real_save(path, identity, state)
        seconds.append(time.perf_counter() - start)
        sizes.append(os.path.getsize(path))

    data = linear_system_dataset(n=transitions, obs_dim=27, act_dim=8, seed=0)
    model = GaussianEnsemble(27, 8, EnsembleConfig(max_epochs=epochs, patience=epochs))
    gaussian_ensemble.save_fit_state = timed_save
    try:
        with tempfile.TemporaryDirectory() as tmp:
            report = model.fit(data, checkpoint=Path(tmp) / "fit.pt")
    finally:
        gaussian_ensemble.save_fit_state = real_save
    if report.epochs != epochs or len(seconds) != epochs:
        raise RuntimeError(f"expected {epochs} epochs and saves, got {report.epochs} epochs and {len(seconds)} saves")
    return seconds, sizes[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=7, help="epochs of the fit, one save each")
    parser.add_argument("--transitions", type=int, default=2000, help="synthetic transitions (only the epoch length)")
    parser.add_argument("--save", action="store_true", help="write benchmarks/results/fit_checkpoint.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    seconds, size = timed_fit(args.epochs, args.transitions)
    payload = {
        "save_seconds_median": round(statistics.median(seconds), 4),
        "save_seconds_each": [round(s, 4) for s in seconds],
        "file_mb": round(size / 1e6, 2),
        "dims": [27, 8],
        "members": 7,
        "hidden": 200,
        "layers": 4,
        "epochs": args.epochs,
        "how": "each save_fit_state call of a real GaussianEnsemble.fit(checkpoint=...), timed in place",
    }
    print(payload)
    write_result("fit_checkpoint", payload, f"python benchmarks/bench_fit_checkpoint.py --epochs {args.epochs} --save", args.save)


if __name__ == "__main__":
    main()
