"""What a dynamics fit checkpoint costs per epoch: one atomic save of MOPO's full-size ensemble state.

    python benchmarks/bench_fit_checkpoint.py [--save]

The state is what ``GaussianEnsemble.fit(checkpoint=...)`` writes after every epoch (weights, Adam
moments, 7 member snapshots, RNG); measured on ant-angle's dims (27 + 8 → 28), the largest here.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import median_time, write_result  # noqa: E402

from mopo_kit.dynamics.fit_checkpoint import save_fit_state  # noqa: E402
from mopo_kit.dynamics.fused import FusedTrainer  # noqa: E402
from mopo_kit.dynamics.gaussian_ensemble import GaussianEnsemble  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--save", action="store_true", help="write benchmarks/results/fit_checkpoint.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = GaussianEnsemble(27, 8)
    trainer = FusedTrainer(model.net, model.config.weight_decays, model.config.lr, model.config.logvar_loss_coef)
    trainer.step(torch.randn(7, 256, 35), torch.randn(7, 256, 28))  # Adam state exists
    state = {
        "net": model.net.state_dict(), "optimizer": trainer.optimizer.state_dict(), "generator": torch.Generator().get_state(),
        "best": [1.0] * 7, "snapshots": [model._member_state(k) for k in range(7)], "since_update": 0, "epoch": 1, "history": [], "seconds": 0.0,
    }
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fit.pt"
        seconds = median_time(lambda: save_fit_state(path, {"dataset_sha256": "x"}, state), repeats=5)
        size = os.path.getsize(path)
    payload = {"save_seconds_median_of_5": round(seconds, 4), "file_mb": round(size / 1e6, 2), "dims": [27, 8], "members": 7, "hidden": 200, "layers": 4}
    print(payload)
    write_result("fit_checkpoint", payload, "python benchmarks/bench_fit_checkpoint.py --save", args.save)


if __name__ == "__main__":
    main()
