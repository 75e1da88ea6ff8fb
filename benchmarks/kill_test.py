"""The kill test: SIGKILL (and SIGTERM) a short ``mopo-kit train`` in every phase, resume each time.

    python benchmarks/kill_test.py --save            # 24 kills + 8 graceful stops of a run + a sweep killed twice
    python benchmarks/kill_test.py --kills 4         # a quick look

A reference run goes uninterrupted. The same run is then started and killed with SIGKILL at moments
aimed at each phase in turn — dynamics fitting, model rollouts, SAC steps, evaluation, checkpoint
writing, the final bound — a random number of phase entries in and a random delay inside it (the
phase is read from markers written by ``kill_phases.py``, which wraps the real CLI). After each
kill the run is continued the way a user would: ``mopo-kit train --resume RUN`` once the run
directory holds its ``config.json``, otherwise the original command again. At the end the killed
run must have every epoch exactly once in ``metrics.jsonl``, the configured gradient steps, every
file loadable, and the reference run's final actor weights *exactly* (the code is deterministic
from its seed on one thread). A sweep of two trials killed twice is checked the same way.
Results: ``benchmarks/results/kill_test.json`` (top-level ``kills``, ``resumes_finished``, ``lost``
and one entry per kill).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from kill_phases import PHASES, read_phase  # noqa: E402

#: A run of a few tens of seconds with every phase present several times.
RUN_CONFIG: dict[str, Any] = {
    "task": "hopper",
    "dynamics": {"type": "gaussian_ensemble", "params": {"members": 3, "elites": 2, "hidden": 32, "layers": 2, "weight_decays": [2.5e-5, 5e-5, 1e-4], "max_epochs": 15}},
    "policy": {"type": "sb3_sac", "params": {"net_arch": [32, 32], "rollout_batch_size": 200, "rollout_freq": 50, "batch_size": 64, "retain_rollouts": 2}},
    "epochs": 20,
    "steps_per_epoch": 50,
    "eval_every": 1,
    "eval_episodes": 2,
    "checkpoint_every": 2,
    "bound_rollouts": 500,
    "bound_horizon": 50,  # long enough (~0.1 s) for a kill to be aimed inside the final bound
    "horizon": 3,
    "lam": 1.0,
    "seed": 0,
}
#: Rough length of each phase in RUN_CONFIG: the kill comes at a random moment inside it.
PHASE_SECONDS = {"fit": 0.8, "rollout": 0.002, "sac": 0.03, "eval": 0.02, "checkpoint": 0.02, "bound": 0.03}
ENV = {**os.environ, "MOPO_KIT_QUIET": "1", "OMP_NUM_THREADS": "1"}


def _python() -> list[str]:
    return [sys.executable, str(HERE / "kill_phases.py")]


def make_dataset(work: Path) -> Path:
    from mopo_kit.data.collect import collect_transitions, uniform_random_policy
    from mopo_kit.data.d4rl_io import write_d4rl_hdf5
    from mopo_kit.envs.tasks import HOPPER

    path = work / "hopper-random-small.hdf5"
    if not path.exists():
        write_d4rl_hdf5(collect_transitions(HOPPER, uniform_random_policy(3), 3000, seed=0, num_envs=4), path, metadata={"task": "hopper", "kind": "random"})
    return path


def train_command(phase_file: Path, data: Path, config: Path, run: Path) -> list[str]:
    """The original command, or ``--resume`` once the run directory holds its config."""
    if (run / "config.json").exists():
        return [*_python(), str(phase_file), "train", "--resume", str(run), "--threads", "1"]
    return [*_python(), str(phase_file), "train", str(data), "--config", str(config), "-o", str(run), "--threads", "1"]


def kill_in_phase(cmd: list[str], phase_file: Path, target: str, rng: random.Random, timeout: float = 600, sig: int = signal.SIGKILL) -> dict[str, Any]:
    """Start ``cmd``; send ``sig`` inside ``target`` after 0–1 further entries and a random delay.

    SIGKILL: the process dies where it stands. SIGTERM: a graceful stop (``mopo_kit.stop``) — the
    process must finish its current update or fit epoch, write a checkpoint and exit 143.
    """
    if phase_file.exists():
        phase_file.unlink()
    started = time.time()
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    # fit and bound are entered once per process: aimed by delay; the others by entry (0 or 1 more,
    # so a run advances slowly and the kills spread over its epochs) and a delay within the phase
    skip = 0 if target in ("fit", "bound") else rng.randint(0, 1)
    delay = rng.uniform(0.0, PHASE_SECONDS.get(target, 0.01))
    first_seen: int | None = None
    while proc.poll() is None and time.time() - started < timeout:
        phase, count = read_phase(str(phase_file))
        if phase == target:
            first_seen = count if first_seen is None else first_seen
            if count >= first_seen + skip:
                time.sleep(delay)
                landed, landed_count = read_phase(str(phase_file))
                proc.send_signal(sig)
                proc.wait()
                entry = {"phase": landed, "aimed_at": target, "entry": landed_count, "seconds_after_start": round(time.time() - started, 3), "signal": signal.Signals(sig).name}
                if sig == signal.SIGKILL:
                    return {**entry, "outcome": "killed"}
                last = (proc.stderr.read().decode().strip().splitlines() or [""])[-1] if proc.stderr else ""
                # a stop that lands in the final bound (which has no stop point) lets the run finish
                outcome = "stopped" if proc.returncode == 143 and "checkpoint written" in last else "finished before the stop" if proc.returncode == 0 else f"failed (exit {proc.returncode}): {last}"
                return {**entry, "outcome": outcome, "line": last, "exit": proc.returncode}
        time.sleep(0.0005)
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    proc.wait()
    return {"phase": "finished", "aimed_at": target, "seconds_after_start": round(time.time() - started, 3), "outcome": "finished before the kill" if proc.returncode == 0 else f"failed (exit {proc.returncode}): {stderr.strip().splitlines()[-1:]}"}


def run_to_end(cmd_for: Any, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd_for(), env=ENV, capture_output=True, text=True, timeout=timeout)


def _check_zip(path: Path) -> None:
    with zipfile.ZipFile(path) as archive:
        if archive.testzip() is not None:
            raise ValueError(f"{path}: a member fails its CRC")


def check_run(run: Path, reference: Path | None, epochs: int, steps: int) -> dict[str, Any]:
    """What a finished run lost: epochs (missing or repeated), gradient steps, unloadable files."""
    import torch

    from mopo_kit.dynamics.storage import load_dynamics

    lost_epochs = lost_steps = 0
    bad_files: list[str] = []
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    seen = [row["epoch"] for row in rows]
    lost_epochs = len(set(range(1, epochs + 1)) - set(seen)) + (len(seen) - len(set(seen)))
    results = json.loads((run / "results.json").read_text())
    lost_steps = max(0, steps - int(results["gradient_steps"])) + abs(int(results["gradient_steps"]) - steps)
    saved_config = json.loads((run / "config.json").read_text())["config"]
    model_dir = Path(saved_config["dynamics_dir"]) if saved_config.get("dynamics_dir") else run / "dynamics"  # a sweep's shared model
    checks = {
        "config.json": lambda: json.loads((run / "config.json").read_text()),
        "results.json": lambda: results,
        "metrics.csv": lambda: (run / "metrics.csv").read_text().splitlines()[epochs],
        "policy.pt": lambda: torch.load(run / "policy.pt", map_location="cpu", weights_only=True),
        "checkpoint/state.pt": lambda: torch.load(run / "checkpoint" / "state.pt", map_location="cpu", weights_only=True),
        "checkpoint/sac.zip": lambda: _check_zip(run / "checkpoint" / "sac.zip"),
        "dynamics": lambda: load_dynamics(model_dir),
    }
    for name, load in checks.items():
        try:
            load()
        except Exception as exc:  # any failure to load is a lost file
            bad_files.append(f"{name}: {type(exc).__name__}")
    leftovers = [p.name for p in run.iterdir() if p.name in ("checkpoint.tmp", "checkpoint.old")]
    same = None
    if reference is not None:
        ours = torch.load(run / "policy.pt", map_location="cpu", weights_only=True)["state_dict"]
        theirs = torch.load(reference / "policy.pt", map_location="cpu", weights_only=True)["state_dict"]
        same = ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
    return {
        "epochs_logged": seen,
        "gradient_steps": results["gradient_steps"],
        "return_last": results["last"].get("return_mean"),
        "lost_epochs": lost_epochs,
        "lost_steps": lost_steps,
        "lost_files": bad_files,
        "leftover_dirs": leftovers,
        "weights_equal_reference": same,
    }


def run_kill_test(work: Path, kills: int, seed: int, say: Any = print, stops: int = 0, precision: str = "fp32") -> dict[str, Any]:
    """The run part: a reference run, then ``kills`` SIGKILLs and ``stops`` SIGTERMs spread over the phases."""
    rng = random.Random(seed)
    data = make_dataset(work)
    config = work / "config.json"
    config.write_text(json.dumps({**RUN_CONFIG, "precision": precision}))
    phase_file = work / "phase"
    reference, run = work / "reference", work / "killed"
    epochs, steps = RUN_CONFIG["epochs"], RUN_CONFIG["epochs"] * RUN_CONFIG["steps_per_epoch"]
    start = time.time()
    done = run_to_end(lambda: train_command(phase_file, data, config, reference))
    if done.returncode != 0:
        raise SystemExit(f"reference run failed: {done.stderr.strip().splitlines()[-1:]}")
    reference_seconds = time.time() - start
    say(f"reference run: {reference_seconds:.1f} s")

    # fitting happens only until the model is saved, the bound only after the last epoch: those
    # kills go first and last, the training phases in turn between them
    n_fit = max(1, kills // 6)
    training = [p for p in PHASES if p not in ("fit", "bound")]
    killing = [(t, signal.SIGKILL) for t in [training[i % len(training)] for i in range(max(0, kills - n_fit - 1))]]
    # graceful stops: one in the fit, the rest in the training phases, every third interruption
    stopping = [(t, signal.SIGTERM) for t in [training[(i + 1) % len(training)] for i in range(max(0, stops - 1))]]
    middle: list[tuple[str, int]] = []
    while killing or stopping:
        middle += [killing.pop(0) for _ in range(min(2, len(killing)))] + ([stopping.pop(0)] if stopping else [])
    targets = [("fit", signal.SIGKILL)] * n_fit + ([("fit", signal.SIGTERM)] if stops else []) + middle + [("bound", signal.SIGKILL)]
    entries: list[dict[str, Any]] = []
    resumes_finished = 0
    for target, sig in targets:
        if (run / "results.json").exists() and target != "bound":
            break
        entry = kill_in_phase(train_command(phase_file, data, config, run), phase_file, target, rng, sig=sig)
        progress = run / "checkpoint" / "progress.json"
        entry["checkpoint_epoch_after"] = json.loads(progress.read_text())["epoch"] if progress.exists() else None
        entries.append(entry)
        say(f"{entry.get('signal', 'SIGKILL')} {len(entries)}: aimed at {target}, landed in {entry['phase']} ({entry['outcome']})")
        if entry["outcome"].startswith("failed"):
            break
    final = run_to_end(lambda: train_command(phase_file, data, config, run))
    killed = [e for e in entries if e["outcome"] in ("killed", "stopped")]
    # each kill is followed by one continuation; it "finished" when the run went on from there
    # to the end without an error (the last continuation is the run to the end)
    resumes_finished = len(killed) if final.returncode == 0 and not any(e["outcome"].startswith("failed") for e in entries) else 0
    check = check_run(run, reference, epochs, steps) if final.returncode == 0 else {"error": final.stderr.strip().splitlines()[-1:]}
    return {
        "reference_seconds": round(reference_seconds, 1), "entries": entries,
        "kills": sum(e["outcome"] == "killed" for e in entries), "graceful_stops": sum(e["outcome"] == "stopped" for e in entries),
        "resumes_finished": resumes_finished, "check": check,
    }


def run_sweep_kill_test(work: Path, data: Path, rng: random.Random, kills: int = 2, say: Any = print) -> dict[str, Any]:
    """A two-trial sweep killed ``kills`` times (SIGKILL to the sweep process), rerun to the end."""
    base = {k: v for k, v in RUN_CONFIG.items() if k not in ("dynamics", "seed")}
    base["epochs"] = 4
    spec = {"name": "kill", "grid": {"dataset": [str(data)], "uncertainty": ["max_aleatoric", "zero"], "seed": [0]}, "base": base, "dynamics": RUN_CONFIG["dynamics"]["params"]}
    spec_file = work / "sweep.json"
    spec_file.write_text(json.dumps(spec))

    def sweep(out: Path) -> list[str]:
        return [sys.executable, "-m", "mopo_kit", "sweep", str(spec_file), "-o", str(out), "--workers", "2"]

    start = time.time()
    reference = subprocess.run(sweep(work / "sweep-ref"), env=ENV, capture_output=True, text=True, timeout=900)
    if reference.returncode != 0:
        raise SystemExit(f"reference sweep failed: {reference.stderr.strip().splitlines()[-1:]}")
    seconds = time.time() - start
    entries = []
    for _ in range(kills):
        proc = subprocess.Popen(sweep(work / "sweep-killed"), env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        moment = rng.uniform(0.25, 0.75) * seconds
        time.sleep(moment)
        alive = proc.poll() is None
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        time.sleep(1.0)  # the workers get SIGTERM from the kernel (parent-death signal) and exit
        entries.append({"phase": "sweep", "seconds_after_start": round(moment, 2), "outcome": "killed" if alive else "finished before the kill"})
        say(f"sweep kill {len(entries)} at {moment:.1f} s")
    final = subprocess.run(sweep(work / "sweep-killed"), env=ENV, capture_output=True, text=True, timeout=900)
    trials = {}
    for trial in sorted((work / "sweep-ref" / "trials").iterdir()):
        trials[trial.name] = check_run(work / "sweep-killed" / "trials" / trial.name, trial, base["epochs"], base["epochs"] * base["steps_per_epoch"]) if final.returncode == 0 else {"error": final.stderr.strip().splitlines()[-1:]}
    return {"entries": entries, "finished": final.returncode == 0, "trials": trials}


def lost_total(check: dict[str, Any]) -> int:
    if "error" in check:
        return 1
    return check["lost_epochs"] + check["lost_steps"] + len(check["lost_files"]) + len(check["leftover_dirs"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=24)
    parser.add_argument("--stops", type=int, default=8, help="graceful stops (SIGTERM) among the kills, each resumed the same way")
    parser.add_argument("--sweep-kills", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32", help="the run's precision (bf16: rollouts and SAC updates)")
    parser.add_argument("--save", action="store_true", help="write benchmarks/results/kill_test.json (kill_test_bf16.json for --precision bf16)")
    args = parser.parse_args(argv)
    from common import commit, machine

    with tempfile.TemporaryDirectory(prefix="mopo-kill-") as tmp:
        work = Path(tmp)
        result = run_kill_test(work, args.kills, args.seed, stops=args.stops, precision=args.precision)
        sweep = run_sweep_kill_test(work, work / "hopper-random-small.hdf5", random.Random(args.seed + 1), args.sweep_kills) if args.sweep_kills else None
    lost = lost_total(result["check"]) + (sum(lost_total(t) for t in sweep["trials"].values()) if sweep else 0)
    sweep_kills = sum(e["outcome"] == "killed" for e in sweep["entries"]) if sweep else 0
    report = {
        "command": "python benchmarks/kill_test.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "commit": commit(),
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "kills": result["kills"] + sweep_kills,
        "graceful_stops": result["graceful_stops"],
        "resumes_finished": result["resumes_finished"] + (sweep_kills if sweep and sweep["finished"] else 0),
        "lost": lost,
        "run": {"config": {**RUN_CONFIG, "precision": args.precision}, **result},
        "sweep": sweep,
        "deterministic": "a run on one thread is deterministic from its seed: the killed run must end with the reference run's exact actor weights",
        "phases": {p: sum(e["phase"] == p for e in result["entries"]) for p in (*PHASES, "other")},
    }
    text = json.dumps(report, indent=2)
    if args.save:
        (HERE / "results" / ("kill_test.json" if args.precision == "fp32" else f"kill_test_{args.precision}.json")).write_text(text + "\n")
    print(json.dumps({k: report[k] for k in ("kills", "graceful_stops", "resumes_finished", "lost", "phases")}, indent=1))
    print(json.dumps(result["check"], indent=1))
    return 0 if lost == 0 and result["check"].get("weights_equal_reference") else 1


if __name__ == "__main__":
    raise SystemExit(main())
