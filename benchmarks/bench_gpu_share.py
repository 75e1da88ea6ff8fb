"""How many MOPO trials can share one GPU: N processes run MOPO epochs at the same time.

A campaign on a lent GPU runs several trials at once (``--workers``); each trial's kernels are
small (256-row SAC batches, a 7 × 200-wide ensemble), so one trial leaves most of the GPU idle.
This measures what sharing gives: every worker process builds its own MOPO-sized SAC and model
(as ``bench_epoch.py`` does), warms up (CUDA graph capture), waits at a barrier, then times
``--epochs`` MOPO epochs (``learn(steps)``: a 50,000 × h = 5 rollout, then ``steps`` updates).
Per N it reports the median epoch time per process and the aggregate epochs per second.

Run it once as is (the GPU time-slices between processes) and once with NVIDIA's MPS daemon
running (``nvidia-cuda-mps-control -d``), which lets the processes' kernels run side by side:

    python benchmarks/bench_gpu_share.py --device cuda --procs 1 4 8 --out share.json
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_epoch import mopo_sac  # noqa: E402
from common import sync, write_result  # noqa: E402


def _worker(device: str, epochs: int, steps: int, rows: int, barrier, results) -> None:
    from mopo_kit.data.collect import collect_transitions, uniform_random_policy
    from mopo_kit.envs.tasks import HALFCHEETAH

    torch.set_num_threads(1)
    data = collect_transitions(HALFCHEETAH, uniform_random_policy(6), rows, seed=0, description="benchmark data")
    optimizer = mopo_sac(data, 5, device)
    optimizer.rollout()
    optimizer.sac.train(20, 256)  # warm-up; on CUDA the graph capture
    sync(device)
    barrier.wait()
    start = time.perf_counter()
    times = []
    for _ in range(epochs):
        optimizer._steps = 0  # start of an epoch: learn() rolls out first, then trains
        t0 = time.perf_counter()
        optimizer.learn(steps)
        sync(device)
        times.append(time.perf_counter() - t0)
    results.put((start, time.perf_counter(), times))


def share(device: str, procs: int, epochs: int, steps: int, rows: int) -> dict:
    """Run ``procs`` workers at once; their epoch times and the aggregate rate."""
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(procs), ctx.Queue()
    workers = [ctx.Process(target=_worker, args=(device, epochs, steps, rows, barrier, results)) for _ in range(procs)]
    for worker in workers:
        worker.start()
    finished = [results.get() for _ in workers]
    for worker in workers:
        worker.join()
    span = max(end for _, end, _ in finished) - min(start for start, _, _ in finished)
    per_epoch = [t for _, _, times in finished for t in times]
    return {
        "procs": procs,
        "epoch_s_median": statistics.median(per_epoch),
        "epoch_s_max": max(per_epoch),
        "aggregate_epochs_per_s": procs * epochs / span,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--procs", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs per process")
    parser.add_argument("--steps", type=int, default=1000, help="SAC updates per epoch (MOPO: 1,000)")
    parser.add_argument("--rows", type=int, default=20_000, help="dataset rows per process (random halfcheetah)")
    parser.add_argument("--label", default="", help="e.g. 'mps' or 'time-sliced', stored in the JSON")
    parser.add_argument("--out", help="write the JSON to this file")
    args = parser.parse_args()
    measured = []
    for procs in args.procs:
        measured.append(share(args.device, procs, args.epochs, args.steps, args.rows))
        print(measured[-1], flush=True)
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    write_result("gpu_share", {"device": args.device, "gpu": gpu, "label": args.label, "epochs": args.epochs, "steps": args.steps, "runs": measured},
                 " ".join(["python", *sys.argv]), save=False, out=args.out)


if __name__ == "__main__":
    main()
