"""Runs on shared machines and schedulers: one writer per directory, graceful stop, progress in
logs, memory checked first (docs/reliability.md)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from mopo_kit.dir_lock import DirectoryBusyError, directory_lock
from mopo_kit.errors import MopoKitError
from mopo_kit.memory import GB, check_fits
from tests.test_mopo import TINY, hopper_file  # noqa: F401  (module fixture)

ENV = {**os.environ, "MOPO_KIT_QUIET": "1"}
HOLD = "import sys, time; from pathlib import Path; from mopo_kit.dir_lock import directory_lock\n" \
       "with directory_lock(Path(sys.argv[1]), 'a test holder', inside=sys.argv[2] == 'in'):\n    print('held', flush=True); time.sleep(600)"


def _holder(directory: Path, inside: bool = True) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(directory), "in" if inside else "out"], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_held_directory_is_refused_at_once_and_a_killed_holder_never_blocks(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    holder = _holder(run)
    try:
        with pytest.raises(DirectoryBusyError, match=rf"^{run}: in use by process {holder.pid} on .*\(a test holder, since .*\)"):
            with directory_lock(run, "second"):
                pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with directory_lock(run, "after the kill"):  # the OS released the dead holder's lock
        assert json.loads((run / ".lock").read_text())["pid"] == os.getpid()


def test_a_second_train_into_a_busy_run_directory_is_one_line_and_touches_nothing(hopper_file, tmp_path, run_cli):  # noqa: F811
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"epoch": 1}\n')
    holder = _holder(run)
    try:
        start = time.monotonic()
        proc = run_cli("train", str(hopper_file), "--lam", "1", "-o", "run", check_rc=2)
        assert time.monotonic() - start < 60
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert proc.stderr.startswith(f"mopo-kit: error: run: in use by process {holder.pid}") and len(proc.stderr.splitlines()) == 1
    assert sorted(p.name for p in run.iterdir()) == [".lock", "metrics.jsonl"] and (run / "metrics.jsonl").read_text() == '{"epoch": 1}\n'
    model = tmp_path / "model"
    holder = _holder(model, inside=False)
    try:
        busy = run_cli("train-dynamics", str(hopper_file), "-o", "model", "--max-epochs", "1", check_rc=2)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert "model: in use by process" in busy.stderr and not model.exists()


def test_a_setting_that_cannot_fit_in_memory_is_one_line_before_any_data_is_made(tmp_path, run_cli):
    proc = run_cli("train", "hopper-random", "--horizon", "100000", "-o", "run", env={"MOPO_KIT_DATA": str(tmp_path / "data")}, check_rc=2)
    line = proc.stderr.strip()
    assert len(line.splitlines()) == 1 and "model pool 2514.6 GB" in line and "GB is available; lower --horizon" in line
    assert not (tmp_path / "data").exists() and not (tmp_path / "run").exists()
    with pytest.raises(MopoKitError, match=r"needs 3.0 GB on cpu \(a 2.0 GB, b 1.0 GB\) but 2.5 GB is available; lower option A$"):
        check_fits({"a": 2 * GB, "b": GB}, torch.device("cpu"), {"a": "option A"}, available=int(2.5 * GB))
    check_fits({"a": 2 * GB}, torch.device("cpu"), {}, available=3 * GB)  # fits: nothing happens


def _train(hopper_file, run: Path, config: Path, *extra: str, env: dict | None = None) -> subprocess.Popen:  # noqa: F811
    cmd = [sys.executable, "-m", "mopo_kit", "train", str(hopper_file), "--config", str(config), "--threads", "1", "-o", str(run), *extra]
    return subprocess.Popen(cmd, env=env or ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_epoch(proc: subprocess.Popen, run: Path, epoch: int, timeout: float = 240) -> None:
    metrics, deadline = run / "metrics.jsonl", time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= epoch:
            return
        time.sleep(0.05)
    raise AssertionError("the run ended before the signal: " + (proc.stderr.read() if proc.poll() is not None else "timeout"))


def test_sigterm_checkpoints_mid_epoch_and_the_resume_ends_with_the_uninterrupted_weights(hopper_file, tmp_path):  # noqa: F811
    config = tmp_path / "config.json"
    config.write_text(json.dumps({**TINY, "epochs": 4, "steps_per_epoch": 400, "checkpoint_every": 4, "eval_episodes": 1}))
    straight = _train(hopper_file, tmp_path / "straight", config)
    assert straight.wait(timeout=600) == 0, straight.stderr.read()
    run = tmp_path / "stopped"
    proc = _train(hopper_file, run, config)
    _wait_for_epoch(proc, run, 1)
    time.sleep(0.3)  # inside epoch 2's updates
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 143
    stderr = proc.stderr.read().strip()
    assert stderr.startswith("mopo-kit: stopped by SIGTERM in epoch 2 after ") and stderr.endswith(f"checkpoint written; continue with: mopo-kit train --resume {run}")
    progress = json.loads((run / "checkpoint" / "progress.json").read_text())
    assert progress["epoch"] == 1 and 0 < progress["partial_steps"] <= 400 and progress["gradient_steps"] == 400 + progress["partial_steps"]
    assert not (run / "results.json").exists()
    resumed = subprocess.run([sys.executable, "-m", "mopo_kit", "train", "--resume", str(run), "--threads", "1"], env=ENV, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4] and rows[-1]["gradient_steps"] == 1600
    a = torch.load(tmp_path / "straight" / "policy.pt", weights_only=True)["state_dict"]
    b = torch.load(run / "policy.pt", weights_only=True)["state_dict"]
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=0, atol=0, msg=f"actor weight {key} differs after a graceful stop")


def test_sigint_stops_a_model_fit_at_once_and_the_same_command_continues_it(hopper_file, tmp_path):  # noqa: F811
    out = tmp_path / "model"
    cmd = [sys.executable, "-m", "mopo_kit", "train-dynamics", str(hopper_file), "-o", str(out), "--max-epochs", "30", "--threads", "1"]
    proc = subprocess.Popen(cmd, env={**ENV, "MOPO_KIT_QUIET": ""}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = proc.stderr.readline()  # the first per-epoch line: epoch 1 is done and checkpointed
    assert first.startswith("epoch 1:"), first
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=120) == 130
    last = proc.stderr.read().strip().splitlines()[-1]
    # within the next epoch's minibatches (dropped), or at its end if the signal came that late
    assert re.fullmatch(
        r"mopo-kit: stopped by SIGINT (in dynamics fit epoch \d+ after \d+ of \d+ minibatches \(dropped; epoch \d+'s fit checkpoint stands\)"
        r"|after fit epoch \d+, fit checkpoint written); continue with the same command",
        last,
    ), last
    assert (out / "fit_checkpoint.pt").exists()
    again = subprocess.run([*cmd[:-4], "--max-epochs", "3", "--threads", "1"], env=ENV, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert json.loads((out / "fit_report.json").read_text())["epochs"] >= 2


def test_progress_lines_in_a_log_and_none_with_quiet(hopper_file, tmp_path):  # noqa: F811
    config = tmp_path / "config.json"
    config.write_text(json.dumps({**TINY, "epochs": 2}))
    env = {**ENV, "MOPO_KIT_QUIET": "", "MOPO_KIT_PROGRESS_SECONDS": "0"}
    proc = _train(hopper_file, tmp_path / "run", config, env=env)
    assert proc.wait(timeout=600) == 0
    lines = [line for line in proc.stderr.read().splitlines() if line.startswith("[mopo-kit] ")]
    assert any(line.startswith("[mopo-kit] dynamics epoch 2, holdout MSE") and "2/2 (100 %)" in line for line in lines), lines
    training = [line for line in lines if line.startswith("[mopo-kit] MOPO epoch")]
    assert len(training) >= 2 and "steps/s" in training[-1] and "elapsed" in training[-1] and "last evaluation" in training[-1]
    quiet = _train(hopper_file, tmp_path / "quiet", config, "--quiet", env=env)
    assert quiet.wait(timeout=600) == 0
    assert not [line for line in quiet.stderr.read().splitlines() if line.startswith("[mopo-kit]")]


def test_a_sweep_passes_sigterm_to_its_workers_and_the_rerun_finishes_them(hopper_file, tmp_path):  # noqa: F811
    base = {k: v for k, v in TINY.items() if k not in ("dynamics", "lam")}
    base.update(epochs=3, steps_per_epoch=300, checkpoint_every=3, eval_episodes=1)
    sweep = tmp_path / "sweep.json"
    sweep.write_text(json.dumps({"name": "stop", "grid": {"dataset": [str(hopper_file)], "uncertainty": ["max_aleatoric", "zero"], "lam": [1.0]},
                                 "base": base, "dynamics": TINY["dynamics"]["params"]}))
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "mopo_kit", "sweep", str(sweep), "-o", str(out), "--workers", "2"]
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    trials = out / "trials"
    deadline = time.time() + 400
    while time.time() < deadline and proc.poll() is None:
        if trials.exists() and sum((t / "metrics.jsonl").exists() for t in trials.iterdir()) == 2:
            break
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=180) == 143, proc.stderr.read()
    assert "sweep stopped by SIGTERM" in proc.stderr.read()
    for trial in trials.iterdir():
        assert (trial / "checkpoint" / "progress.json").exists() and not (trial / "results.json").exists(), trial.name
    again = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert all(json.loads((t / "results.json").read_text())["gradient_steps"] == 900 for t in trials.iterdir())
