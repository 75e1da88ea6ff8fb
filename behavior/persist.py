"""Copy the resumable state of background behavior training into this folder (to be committed).

    python behavior/persist.py runs/behavior                        # from the repository root
    python behavior/persist.py runs/behavior_fine --suffix -early --all   # every snapshot

For every task directory under the given run root: config.json, evals.json, resume/sac.zip
(no replay buffer) and a few actor snapshots stored as float16 (the first ones up to 50k
steps, then every 50k, and the best so far) — a few MB per task.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent


def save_float16(source: Path, target: Path) -> None:
    """Copy an actor snapshot with float16 weights (half the size; ``load_actor`` reads it as float32)."""
    blob = torch.load(source, map_location="cpu", weights_only=True)
    blob["state_dict"] = {k: v.half() for k, v in blob["state_dict"].items()}
    torch.save(blob, target)


def keep(step: int, best_step: int) -> bool:
    return step <= 50_000 or step % 50_000 == 0 or step == best_step


def persist(run_root: Path, suffix: str = "", keep_all: bool = False) -> None:
    for task_dir in sorted(p for p in run_root.iterdir() if (p / "evals.json").exists()):
        out = HERE / f"{task_dir.name}{suffix}"
        (out / "resume").mkdir(parents=True, exist_ok=True)
        (out / "snapshots").mkdir(exist_ok=True)
        evals = json.loads((task_dir / "evals.json").read_text())
        best = max(evals, key=lambda e: e["det_return_mean"])["step"] if evals else -1
        for name in ("config.json", "evals.json"):
            shutil.copy2(task_dir / name, out / name)
        if (task_dir / "resume" / "sac.zip").exists():
            shutil.copy2(task_dir / "resume" / "sac.zip", out / "resume" / "sac.zip")
        for e in evals:
            if keep_all or keep(e["step"], best):
                save_float16(task_dir / "snapshots" / e["snapshot"], out / "snapshots" / e["snapshot"])
        print(f"{task_dir.name}: {len(evals)} evaluations, last step {evals[-1]['step'] if evals else 0}, best at {best}")


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_root", nargs="?", default="runs/behavior")
    parser.add_argument("--suffix", default="", help="appended to each task's folder name here")
    parser.add_argument("--all", action="store_true", help="keep every snapshot, not a selection")
    args = parser.parse_args()
    persist(Path(args.run_root), args.suffix, args.all)
