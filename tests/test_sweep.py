"""Sweeps: local process pool, one shared model per dataset × seed, W&B offline, resume, report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mopo_kit.errors import MopoKitError
from mopo_kit.experiments.shared_models import fit_shared_dynamics
from mopo_kit.experiments.sweep import SweepSpec, run_sweep, trial_id
from tests.test_mopo import TINY, hopper_file  # noqa: F401  (module fixture)


def _spec(path, data_file) -> SweepSpec:
    base = {k: v for k, v in TINY.items() if k not in ("dynamics", "lam", "horizon")}
    base.update(epochs=2, loggers=["jsonl"])
    spec_text = {
        "name": "toy-ablation",
        "grid": {"dataset": [str(data_file)], "uncertainty": ["max_aleatoric", "ensemble_disagreement"], "lam": [1.0], "horizon": [2], "seed": [0]},
        "base": base,
        "dynamics": TINY["dynamics"]["params"],
    }
    path.write_text(json.dumps(spec_text))
    import yaml

    yaml_path = path.with_suffix(".yaml")
    yaml_path.write_text(yaml.safe_dump(spec_text))
    return SweepSpec.from_file(yaml_path)


def test_local_sweep_with_wandb_offline_resume_and_report(hopper_file, tmp_path, monkeypatch, run_cli):  # noqa: F811
    monkeypatch.setenv("WANDB_MODE", "offline")
    spec = _spec(tmp_path / "sweep.json", hopper_file)
    sweep_dir = tmp_path / "sweep"
    summaries = run_sweep(spec, sweep_dir, workers=2, wandb=True)
    assert len(summaries) == 2
    models = list((sweep_dir / "dynamics").iterdir())
    assert len(models) == 1, "one model per dataset × seed, shared by the trials"
    for point in spec.trials():
        run = sweep_dir / "trials" / trial_id(point)
        saved = json.loads((run / "config.json").read_text())
        assert saved["config"]["dynamics_dir"] == str(models[0])
        start = json.loads((run / "log.jsonl").read_text().splitlines()[0])
        assert start["group"] == "toy-ablation" and start["job_type"] == point["uncertainty"]
        assert start["config"]["components"]["uncertainty"]["name"] == point["uncertainty"]
        assert len(list((run / "wandb").glob("offline-run-*"))) == 1

    # a second call skips finished trials; a trial without results resumes
    first = sweep_dir / "trials" / trial_id(spec.trials()[0])
    second = sweep_dir / "trials" / trial_id(spec.trials()[1])
    mtime = (first / "results.json").stat().st_mtime_ns
    (second / "results.json").unlink()
    again = run_sweep(spec, sweep_dir, workers=1)
    assert [s["run_dir"] for s in again] == [str(second)]
    assert (first / "results.json").stat().st_mtime_ns == mtime

    report = json.loads(run_cli("report", str(sweep_dir), "--json", check_rc=0).stdout)
    assert report["trials"] == 2
    by_estimator = {r["uncertainty"]: r for r in report["rows"]}
    for point in spec.trials():
        results = json.loads((sweep_dir / "trials" / trial_id(point) / "results.json").read_text())
        row = by_estimator[point["uncertainty"]]
        assert row["last_normalized_mean"] == pytest.approx(results["last"]["normalized_mean"])
        assert row["seeds"] == 1 and row["last_normalized_std"] == 0.0
        assert row["seed_list"] == [point["seed"]]
    for name in ("learning_curves.png", "final_scores.png", "penalty_vs_return.png"):
        assert (sweep_dir / name).read_bytes()[:4] == b"\x89PNG"
    assert "method: grid" in (sweep_dir / "wandb_sweep.yaml").read_text()

    against = json.loads(run_cli("report", str(sweep_dir), "--baseline", "ensemble_disagreement", "--json", check_rc=0).stdout)
    rows = {r["uncertainty"]: r for r in against["rows"]}
    assert against["baseline"] == "ensemble_disagreement" and rows["ensemble_disagreement"]["versus_baseline"] is None
    delta = rows["max_aleatoric"]["last_return_mean"] - rows["ensemble_disagreement"]["last_return_mean"]
    assert rows["max_aleatoric"]["versus_baseline"]["delta"] == pytest.approx(delta)
    assert rows["max_aleatoric"]["versus_baseline"]["ci"] is None, "one seed a side: no interval"
    printed = run_cli("report", str(sweep_dir), "--baseline", "zero", check_rc=2)
    assert "no trial of this sweep uses that estimator (it has: ensemble_disagreement, max_aleatoric)" in printed.stderr


def test_models_only_fits_each_shared_model_once_in_parallel_and_trials_reuse_them(hopper_file, tmp_path):  # noqa: F811
    spec = _spec(tmp_path / "sweep.json", hopper_file)
    spec.grid["seed"] = [0, 1]
    sweep_dir = tmp_path / "sweep"
    said: list[str] = []
    assert fit_shared_dynamics(spec, sweep_dir, said.append, "cpu", workers=2, threads=1) == []
    models = sorted(p.name for p in (sweep_dir / "dynamics").iterdir())
    assert models == [f"{hopper_file.stem}-s0", f"{hopper_file.stem}-s1"], "one per dataset × seed, not per trial"
    assert sorted(m for m in said if m.startswith("model")) == [f"model {name} ready" for name in models]
    from mopo_kit.data.d4rl_io import arrays_checksum
    from mopo_kit.data.load import load_dataset

    report = json.loads((sweep_dir / "dynamics" / models[0] / "fit_report.json").read_text())
    assert report["dataset_sha256"] == arrays_checksum(load_dataset(str(hopper_file)).arrays())
    assert report["device"] == "cpu"
    stamps = {name: (sweep_dir / "dynamics" / name / "dynamics.pt").stat().st_mtime_ns for name in models}
    assert fit_shared_dynamics(spec, sweep_dir, said.append, "cpu") == [], "fitted models are found, not refitted"
    spec.grid["seed"] = [1]
    run_sweep(spec, sweep_dir, workers=1)
    assert {name: (sweep_dir / "dynamics" / name / "dynamics.pt").stat().st_mtime_ns for name in models} == stamps


def test_sweep_cli_models_only(hopper_file, tmp_path, run_cli):  # noqa: F811
    _spec(tmp_path / "sweep.json", hopper_file)
    proc = run_cli("sweep", str(tmp_path / "sweep.yaml"), "-o", str(tmp_path / "out"), "--models-only", "--device", "cpu", check_rc=0)
    assert [p.name for p in (tmp_path / "out" / "dynamics").iterdir()] == [f"{hopper_file.stem}-s0"]
    assert not (tmp_path / "out" / "trials").exists() and "without --models-only" in proc.stdout


def test_a_sweep_takes_another_sweeps_model_only_where_it_is_the_same_fit(hopper_file, tmp_path, monkeypatch):  # noqa: F811
    first = _spec(tmp_path / "sweep.json", hopper_file)
    assert fit_shared_dynamics(first, tmp_path / "first", lambda m: None, "cpu") == []
    name = f"{hopper_file.stem}-s0"
    source = tmp_path / "first" / "dynamics" / name

    import mopo_kit.dynamics.storage as storage

    real_fit = storage.fit_and_save
    fits: list[str] = []
    monkeypatch.setattr(storage, "fit_and_save", lambda *a, **k: (fits.append(str(a[3])), real_fit(*a, **k))[1])
    import shutil

    broken = tmp_path / "first" / "dynamics" / "a-broken-copy"  # looked at first: a truncated copy is passed over
    shutil.copytree(source, broken)
    (broken / "dynamics.pt").write_bytes((source / "dynamics.pt").read_bytes()[:100])
    same = _spec(tmp_path / "sweep.json", hopper_file)
    same.reuse_models = [str(tmp_path / "first")]
    said: list[str] = []
    assert fit_shared_dynamics(same, tmp_path / "same", said.append, "cpu") == []
    copy = tmp_path / "same" / "dynamics" / name
    assert fits == [] and any(m.startswith(f"reused the shared dynamics model {name}") for m in said)
    assert (copy / "dynamics.pt").read_bytes() == (source / "dynamics.pt").read_bytes()
    report = json.loads((copy / "fit_report.json").read_text())
    assert report["reused_from"] == str(source.resolve())
    assert report["holdout_mse"] == json.loads((source / "fit_report.json").read_text())["holdout_mse"]

    # another seed, another epoch cap: the first sweep's model is not that fit, whatever its name
    other_seed = _spec(tmp_path / "sweep.json", hopper_file)
    other_seed.grid["seed"], other_seed.reuse_models = [1], [str(tmp_path / "first")]
    longer = _spec(tmp_path / "sweep.json", hopper_file)
    longer.dynamics["max_epochs"] += 1
    longer.reuse_models = [str(tmp_path / "first" / "dynamics")]  # a folder of models works as well as a sweep's
    for spec, out in ((other_seed, "other_seed"), (longer, "longer")):
        assert fit_shared_dynamics(spec, tmp_path / out, lambda m: None, "cpu") == []
        model = next((tmp_path / out / "dynamics").iterdir())
        assert "reused_from" not in json.loads((model / "fit_report.json").read_text())
    assert len(fits) == 2

    missing = _spec(tmp_path / "sweep.json", hopper_file)
    missing.reuse_models = [str(tmp_path / "no-such-sweep")]
    with pytest.raises(MopoKitError, match="reuse_models: .*no-such-sweep is not a directory"):
        run_sweep(missing, tmp_path / "missing", workers=1)
    assert not (tmp_path / "missing" / "dynamics").exists()


def test_sweep_file_and_cli_name_models_to_reuse(hopper_file, tmp_path, run_cli):  # noqa: F811
    _spec(tmp_path / "sweep.json", hopper_file)
    run_cli("sweep", str(tmp_path / "sweep.yaml"), "-o", str(tmp_path / "first"), "--models-only", "--device", "cpu", check_rc=0)
    proc = run_cli("sweep", str(tmp_path / "sweep.yaml"), "-o", str(tmp_path / "second"), "--models-only", "--device", "cpu",
                   "--reuse-models", str(tmp_path / "first"), check_rc=0)
    assert "reused the shared dynamics model" in proc.stderr
    assert "reused_from" in (tmp_path / "second" / "dynamics" / f"{hopper_file.stem}-s0" / "fit_report.json").read_text()
    text = json.loads((tmp_path / "sweep.json").read_text())
    (tmp_path / "reuse.json").write_text(json.dumps({**text, "reuse_models": [str(tmp_path / "first")]}))
    assert SweepSpec.from_file(tmp_path / "reuse.json").reuse_models == [str(tmp_path / "first")]
    (tmp_path / "reuse.json").write_text(json.dumps({**text, "reuse_models": 3}))
    with pytest.raises(MopoKitError, match="reuse_models must be a list of directories"):
        SweepSpec.from_file(tmp_path / "reuse.json")


def test_bad_sweep_files(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\n[grid]\ndataset = ["a"]\nuncertainty = ["zero"]\nbatch = [1]\n')
    with pytest.raises(MopoKitError, match="grid key\\(s\\) batch not supported"):
        SweepSpec.from_file(bad)
    bad.write_text("[grid\n")
    with pytest.raises(MopoKitError, match="not a valid sweep file"):
        SweepSpec.from_file(bad)


def test_example_smoke_sweep_parses():
    from pathlib import Path

    spec = SweepSpec.from_file(Path(__file__).resolve().parents[1] / "examples" / "sweep_smoke.toml")
    assert len(spec.trials()) == 2 and {t["uncertainty"] for t in spec.trials()} == {"max_aleatoric", "wasserstein"}


def test_example_penalty_ablation_is_a_valid_grid_of_registered_components():
    from pathlib import Path

    from mopo_kit.config import MOPOConfig
    from mopo_kit.plugins import get_registry

    spec = SweepSpec.from_file(Path(__file__).resolve().parents[1] / "examples" / "penalty_ablation.toml")
    trials = spec.trials()
    assert len(trials) == 2 * 5 * 2
    registry = get_registry()
    for point in trials:
        assert ("dataset", point["dataset"]) in registry and ("uncertainty", point["uncertainty"]) in registry
        MOPOConfig.from_dict({**spec.base, **point})  # every trial is a valid run config


def test_ray_backend_runs_the_same_trials(hopper_file, tmp_path, run_cli):  # noqa: F811
    pytest.importorskip("ray")
    spec_path = tmp_path / "sweep.json"
    _spec(spec_path, hopper_file)
    proc = run_cli("sweep", str(spec_path.with_suffix(".yaml")), "-o", "ray-sweep", "--backend", "ray", "--workers", "2", check_rc=0)
    assert "2 trial(s) run" in proc.stdout
    sweep_dir = tmp_path / "ray-sweep"
    spec = SweepSpec.from_file(spec_path.with_suffix(".yaml"))
    for point in spec.trials():
        results = json.loads((sweep_dir / "trials" / trial_id(point) / "results.json").read_text())
        assert results["gradient_steps"] == 100
    report = json.loads(run_cli("report", str(sweep_dir), "--json", check_rc=0).stdout)
    assert report["trials"] == 2


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


@pytest.mark.skipif(not __import__("sys").platform.startswith("linux"), reason="parent-death signal is Linux-only")
def test_killing_the_sweep_process_ends_its_trial_workers(hopper_file, tmp_path):  # noqa: F811
    import os
    import signal
    import subprocess
    import sys
    import time

    spec_path = tmp_path / "sweep.json"
    _spec(spec_path, hopper_file)
    spec = json.loads(spec_path.read_text())
    spec["base"]["epochs"] = 50  # long enough to be killed mid-trial
    spec_path.write_text(json.dumps(spec))
    env = {**os.environ, "MOPO_KIT_QUIET": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "mopo_kit", "sweep", str(spec_path), "-o", str(tmp_path / "s"), "--workers", "2"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    workers: list[int] = []
    while time.time() < deadline and proc.poll() is None:
        started = list((tmp_path / "s" / "trials").glob("*/config.json")) if (tmp_path / "s" / "trials").exists() else []
        workers = [pid for pid in _children(proc.pid) if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()]
        if len(started) == 2 and len(workers) == 2:
            break
        time.sleep(0.5)
    assert proc.poll() is None and len(workers) == 2, proc.stderr.read().decode() if proc.poll() is not None else "workers not started"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 90  # each finishes its update or evaluation and writes a checkpoint first: slow on a busy machine
    while time.time() < deadline and any(Path(f"/proc/{pid}").exists() and b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes() for pid in workers):
        time.sleep(0.2)
    alive = [pid for pid in workers if Path(f"/proc/{pid}").exists() and Path(f"/proc/{pid}/cmdline").read_bytes()]
    assert not alive, f"trial workers {alive} outlived the killed sweep"


def test_a_graceful_stop_ends_parallel_model_fits_at_their_checkpoints(hopper_file, tmp_path):  # noqa: F811
    """A stop asked once both parallel fits have a checkpoint reaches the workers: the call raises
    StopRequested at once instead of waiting for fits that would run for minutes, and leaves each
    fit's checkpoint (for the rerun) and no half-written model."""
    import threading
    import time

    from mopo_kit.dynamics.fit_checkpoint import saved_epoch
    from mopo_kit.stop import StopRequested, graceful_stop, request_stop

    spec = _spec(tmp_path / "sweep.json", hopper_file)
    spec.grid["seed"] = [0, 1]
    spec.dynamics.update(max_epochs=1000, patience=1000)  # minutes of fitting unless the stop is passed on
    sweep_dir = tmp_path / "sweep"
    checkpoints = [sweep_dir / ".fits" / f"{hopper_file.stem}-s{seed}.pt" for seed in (0, 1)]
    asked: list[float] = []

    def stop_once_both_fits_checkpointed() -> None:
        deadline = time.monotonic() + 240
        while not all(c.exists() for c in checkpoints) and time.monotonic() < deadline:
            time.sleep(0.2)
        asked.append(time.monotonic())
        request_stop()

    watcher = threading.Thread(target=stop_once_both_fits_checkpointed, daemon=True)
    with graceful_stop():
        watcher.start()
        with pytest.raises(StopRequested, match="model fits stopped by SIGTERM"):
            fit_shared_dynamics(spec, sweep_dir, lambda m: None, "cpu", workers=2, threads=1)
    assert time.monotonic() - asked[0] < 30, "the fits did not stop when asked"
    assert all(saved_epoch(c) for c in checkpoints), "each fit keeps its last whole epoch"
    assert not (sweep_dir / "dynamics").exists() or not any((sweep_dir / "dynamics").iterdir())
