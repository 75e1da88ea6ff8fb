"""Does a model fitted elsewhere (e.g. on a lent GPU) fit like a local refit? Epoch-by-epoch holdout MSE.

    python benchmarks/fit_parity.py SWEEP_DIR/dynamics/hopper-random-s1 --epochs 6 --device cpu

Refits the stored model's dataset with its seed and type for the first ``--epochs`` epochs on
``--device`` and prints, per epoch, each member's holdout MSE beside the stored fit's history
(``fit_report.json``). Same seed means the same train/holdout split; the random streams of the
two devices differ, so the numbers agree in scale, not digit for digit. The data must be the same
file (the report's ``dataset_sha256`` is checked first). ``--out`` saves the comparison as JSON.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import commit, machine  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model_dir", type=Path, help="a stored model with fit_report.json (a campaign's SWEEP_DIR/dynamics/<dataset>-s<seed>)")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)

    import torch

    from mopo_kit.data.d4rl_io import arrays_checksum
    from mopo_kit.data.load import load_dataset
    from mopo_kit.device import resolve_device, with_device
    from mopo_kit.dynamics.storage import stored_type
    from mopo_kit.plugins import get_registry

    torch.set_num_threads(args.threads)
    report = json.loads((args.model_dir / "fit_report.json").read_text())
    seed = int(re.fullmatch(r".*-s(\d+)", args.model_dir.name).group(1))
    data = load_dataset(report["dataset"])
    if report.get("dataset_sha256") and report["dataset_sha256"] != arrays_checksum(data.arrays()):
        raise SystemExit(f"{args.model_dir}: fitted on other data than this machine's '{report['dataset']}' (dataset_sha256 differs)")
    kind = stored_type(args.model_dir)
    registry = get_registry()
    params = with_device(registry.get("dynamics", kind).factory, {"seed": seed, "max_epochs": args.epochs}, resolve_device(args.device))
    model = registry.create("dynamics", kind, obs_dim=data.obs_dim, act_dim=data.act_dim, **params)
    refit = model.fit(data)
    rows = []
    for here, stored in zip(refit.history, report["history"]):
        here_mse = [float(x) for x in (here["holdout_mse"] if isinstance(here, dict) else here.holdout_mse)]
        rows.append({"epoch": stored["epoch"], "refit": here_mse, "stored": stored["holdout_mse"], "ratio_of_means": statistics.fmean(here_mse) / statistics.fmean(stored["holdout_mse"])})
        print(f"epoch {stored['epoch']:3d}  holdout MSE mean: refit {statistics.fmean(here_mse):.5f}  stored {statistics.fmean(stored['holdout_mse']):.5f}  ratio {rows[-1]['ratio_of_means']:.3f}")
    result = {
        "command": "python benchmarks/fit_parity.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "commit": commit(), "machine": machine(), "model": args.model_dir.name, "stored_device": report.get("device"),
        "refit_device": args.device, "dataset": report["dataset"], "seed": seed, "epochs": rows,
    }
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
