"""Shared helpers for benchmarks: timing, machine and commit description, JSON output."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch

ROOT = Path(__file__).resolve().parents[1]


def sync(device: Any = None) -> None:
    """Wait for queued GPU work (CUDA kernels are asynchronous: a timer must not stop early)."""
    if device is not None and torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def median_time(fn: Callable[[], Any], repeats: int = 5, inner: int = 1, warmup: int = 2, device: Any = None) -> float:
    """Median over ``repeats`` of the mean time of ``inner`` calls (seconds); GPU work included."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        for _ in range(inner):
            fn()
        sync(device)
        times.append((time.perf_counter() - start) / inner)
    return statistics.median(times)


def matmul_gflops(repeats: int = 7, device: Any = "cpu") -> float:
    """The reference rate of the targets: torch.matmul on 2048×2048 float32 (on ``device``)."""
    a, b = torch.randn(2048, 2048, device=device), torch.randn(2048, 2048, device=device)
    return 2 * 2048**3 / median_time(lambda: torch.matmul(a, b), repeats=repeats, inner=3, device=device) / 1e9


def gpu_name() -> str | None:
    """The CUDA device's name, or None on a machine without one."""
    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


def machine() -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        cpu = platform.processor()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "platform": platform.platform(),
        "gpu": gpu_name(),
        "cuda": torch.version.cuda,
    }


def one_line_errors(script: str, main: Callable[..., int], *args: Any, **kwargs: Any) -> int:
    """A benchmark script's exit code, with the toolkit's errors as one line (``script: error: …``, exit 2).

    The toolkit's own CLI answers bad input and a busy directory (a campaign started twice) in one
    line; a script driving it would otherwise end in a traceback around the same message.
    """
    from mopo_kit.errors import MopoKitError

    try:
        return main(*args, **kwargs)
    except MopoKitError as exc:
        print(f"{script}: error: {exc}", file=sys.stderr)
        return 2


def commit() -> str:
    """HEAD's sha (+ "-dirty"); ``MOPO_KIT_COMMIT`` names it where the tree has no .git (a copy
    sent to a GPU machine)."""
    if os.environ.get("MOPO_KIT_COMMIT"):
        return os.environ["MOPO_KIT_COMMIT"]
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
        # result files and the docs generated from them are outputs, not code: a campaign worktree
        # whose results folders link to the main checkout, and whose study regenerates its tables
        # and plots in docs/, is not "dirty"
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!benchmarks/results", ":!docs"],
            cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def write_result(name: str, payload: dict[str, Any], command: str, save: bool, out: str | Path | None = None) -> None:
    """Print the result; ``save`` writes benchmarks/results/NAME.json, ``out`` the given file."""
    payload = {"command": command, "commit": commit(), "machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M:%S"), **payload}
    text = json.dumps(payload, indent=2)
    if save:
        (ROOT / "benchmarks" / "results" / f"{name}.json").write_text(text + "\n")
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(text + "\n")
    print(text)
