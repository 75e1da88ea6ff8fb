"""Is a dynamics fit the same fit at 1 and 2 torch threads? (The penalty study's one-model-per-seed check.)

    python benchmarks/fit_threads_check.py [--dataset halfcheetah-random] [--rows 20000] [--epochs 3]

A campaign's shared model may be fitted in the main process (2 threads: the study freezing a
cell's κ grid) or in a trial worker (1 thread: a model refitted after its directory was lost), and
the study compares estimators and κ on the assumption that both give the same model. Matrix
kernels may block their reductions by thread count, so this fits the same ensemble (same data,
seed, settings) in two fresh processes with 1 and 2 threads and compares the weights' hash and
the holdout MSEs. Prints one JSON object; ``--out`` also writes it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import commit, machine  # noqa: E402

CHILD = """
import hashlib, json, sys
import numpy as np, torch
torch.set_num_threads(int(sys.argv[1]))
from mopo_kit.data.load import load_dataset
from mopo_kit.dynamics.gaussian_ensemble import GaussianEnsemble
data = load_dataset(sys.argv[2]).select(np.arange(int(sys.argv[3])))
model = GaussianEnsemble(obs_dim=data.obs_dim, act_dim=data.act_dim, seed=3, max_epochs=int(sys.argv[4]))
model.fit(data)
digest = hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in model.net.parameters())).hexdigest()
print(json.dumps({"threads": int(sys.argv[1]), "weights_sha256": digest, "holdout_mse": model.holdout_mse}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="halfcheetah-random")
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    runs = []
    for threads in (1, 2):
        proc = subprocess.run([sys.executable, "-c", CHILD, str(threads), args.dataset, str(args.rows), str(args.epochs)],
                              capture_output=True, text=True, check=True, env={**os.environ, "MOPO_KIT_QUIET": "1"})
        runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    result = {
        "dataset": args.dataset, "rows": args.rows, "epochs": args.epochs, "seed": 3, "runs": runs,
        "identical": runs[0]["weights_sha256"] == runs[1]["weights_sha256"],
        "command": "python benchmarks/fit_threads_check.py " + " ".join(sys.argv[1:]), "commit": commit(), "machine": machine(),
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
