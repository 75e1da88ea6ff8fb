"""The MOPO loop: composition in Python, run files, a killed run resumed, the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from mopo_kit.config import MOPOConfig
from mopo_kit.data.collect import collect_transitions, uniform_random_policy
from mopo_kit.data.d4rl_io import write_d4rl_hdf5
from mopo_kit.envs.tasks import HOPPER
from mopo_kit.mopo import MOPO
from mopo_kit.precision import DEFAULT_PRECISION, resolve_precision

TINY = {
    "task": "hopper",
    "dynamics": {"type": "gaussian_ensemble", "params": {"members": 3, "elites": 2, "hidden": 32, "layers": 2,
                                                          "weight_decays": [2.5e-5, 5e-5, 1e-4], "max_epochs": 2}},
    "policy": {"type": "sb3_sac", "params": {"net_arch": [32, 32], "rollout_batch_size": 200, "rollout_freq": 50, "batch_size": 64}},
    "epochs": 4,
    "steps_per_epoch": 50,
    "eval_episodes": 2,
    "checkpoint_every": 1,
    "bound_rollouts": 50,
    "horizon": 3,
    "lam": 1.0,
}


@pytest.fixture(scope="module")
def hopper_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "hopper-random-small.hdf5"
    data = collect_transitions(HOPPER, uniform_random_policy(3), 1500, seed=0, num_envs=4)
    write_d4rl_hdf5(data, path, metadata={"task": "hopper", "kind": "random"})
    return path


def test_python_composition_writes_a_complete_run(hopper_file, tmp_path, monkeypatch):
    import tempfile

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    config = MOPOConfig(dataset=str(hopper_file), uncertainty={"type": "ensemble_disagreement", "params": {}}, **TINY)
    result = MOPO(config).fit(tmp_path / "run")
    assert not list(scratch.glob("SB3-*")), "a run leaves no empty SB3 log folder in the temp dir"
    run = tmp_path / "run"
    assert result.gradient_steps == 4 * 50
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4]
    assert all(np.isfinite(r["return_mean"]) for r in rows)
    assert rows[-1]["rollout_mean_penalty"] > 0
    saved = json.loads((run / "config.json").read_text())
    assert saved["components"]["uncertainty"]["plugin"] == "mopo_kit.uncertainty.builtin"
    assert {"mopo_kit.envs.tasks", "example"} <= {p["name"] for p in saved["plugins"]}
    # SAC follows the default precision on this CPU; the model stays float32 under any default,
    # since ensemble_disagreement does not declare itself bf16-tolerant
    sac_precision = resolve_precision(DEFAULT_PRECISION, torch.device("cpu"))
    from mopo_kit.data.d4rl_io import arrays_checksum
    from mopo_kit.data.load import load_dataset
    from mopo_kit.dynamics.storage import dynamics_checksum

    assert saved["resolved"] == {"task": "hopper", "horizon": 3, "lam": 1.0, "transitions": 1500, "precision": sac_precision, "model_precision": "fp32",
                                 "dataset_sha256": arrays_checksum(load_dataset(str(hopper_file)).arrays()),
                                 "dynamics_sha256": dynamics_checksum(run / "dynamics")}  # the model the run fitted and saved
    results = json.loads((run / "results.json").read_text())
    assert results["last"]["epoch"] == 4 and "normalized_mean" in results["last"]
    bound = results["bound"]
    assert bound["bound"] == pytest.approx(bound["eta_hat"] - bound["lam"] * bound["epsilon"])
    assert (run / "metrics.csv").read_text().splitlines()[0].startswith("epoch,")


def test_components_can_be_objects(hopper_file, tmp_path):
    from mopo_kit.uncertainty.builtin import Wasserstein

    config = MOPOConfig(dataset=str(hopper_file), **{**TINY, "epochs": 1})
    result = MOPO(config, uncertainty=Wasserstein()).fit(tmp_path / "run")
    assert result.gradient_steps == 50
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["components"]["uncertainty"] == {"name": "mopo_kit.uncertainty.builtin.Wasserstein", "plugin": "(object)", "version": ""}


def test_killed_run_resumes_to_the_same_total(hopper_file, tmp_path):
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps({**TINY, "epochs": 6, "steps_per_epoch": 100}))
    run = tmp_path / "run"
    env = {**os.environ, "MOPO_KIT_QUIET": "1"}
    cmd = [sys.executable, "-m", "mopo_kit", "train", str(hopper_file), "--config", str(config_file), "-o", str(run)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    progress = run / "checkpoint" / "progress.json"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if progress.exists() and json.loads(progress.read_text())["epoch"] >= 2:
            break
        time.sleep(0.2)
    assert proc.poll() is None, "the run finished before it could be killed: " + proc.stderr.read().decode()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = json.loads(progress.read_text())["epoch"]
    assert 2 <= killed_at < 6
    resumed = subprocess.run([sys.executable, "-m", "mopo_kit", "train", "--resume", str(run)], env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert rows[-1]["gradient_steps"] == 600
    assert json.loads((run / "results.json").read_text())["gradient_steps"] == 600


def test_cli_train_evaluate_and_bad_input(hopper_file, tmp_path, run_cli):
    config_file = tmp_path / "tiny.json"
    config_file.write_text(json.dumps({**TINY, "epochs": 1}))
    proc = run_cli("train", str(hopper_file), "--config", str(config_file), "--uncertainty", "mmd", "--lam", "0.5", "--horizon", "2", "-o", "run", check_rc=0)
    assert "50 gradient steps" in proc.stdout
    report = json.loads(run_cli("evaluate", "run", "--episodes", "2", "--json", "--on-policy", "300", "--estimator", "max_aleatoric", check_rc=0).stdout)
    assert report["real"]["episodes"] == 2 and np.isfinite(report["real"]["return_mean"])
    assert report["bound"]["lam"] == 0.5
    check = report["on_policy"]
    assert check["estimator"] == "max_aleatoric" and check["transitions"] == 300 and check["episodes"] >= 1
    assert check["error_mean_policy"] > 0 and check["u_mean_policy"] > 0 and 0 <= check["bound_violations"] <= 1
    assert check["c95_data"] > 0 and np.isfinite(check["reward_bias_policy"])
    zero = json.loads(run_cli("evaluate", "run", "--episodes", "1", "--json", "--on-policy", "100", "--estimator", "zero", check_rc=0).stdout)
    assert zero["on_policy"]["u_mean_policy"] == 0
    assert zero["on_policy"]["c95_data"] is None and zero["on_policy"]["bound_violations"] is None, "a zero u bounds nothing: null, not NaN"
    table = run_cli("evaluate", "run", "--episodes", "1", "--on-policy", "100", check_rc=0).stdout
    assert "u (mmd): data → policy" in table and "error > c95·u on policy" in table
    unknown = run_cli("evaluate", "run", "--on-policy", "100", "--estimator", "wasserstien")
    assert unknown.returncode == 2 and "wasserstien" in unknown.stderr
    (tmp_path / "run" / "dynamics").rename(tmp_path / "moved")  # the model is gone: real episodes only
    no_model = run_cli("evaluate", "run", "--episodes", "1", check_rc=0).stdout
    assert "return (mean ± std)" in no_model and "η̂(π)" not in no_model
    needs_model = run_cli("evaluate", "run", "--episodes", "1", "--on-policy", "100")
    assert needs_model.returncode == 2 and "no dynamics model there" in needs_model.stderr and len(needs_model.stderr.splitlines()) == 1
    (tmp_path / "moved").rename(tmp_path / "run" / "dynamics")
    again = run_cli("train", str(hopper_file), "--config", str(config_file), "-o", "run")
    assert again.returncode == 2 and "already holds a run" in again.stderr
    typo = run_cli("train", str(hopper_file), "--uncertainty", "wassersten", "-o", "run2")
    assert typo.returncode == 2 and "did you mean 'wasserstein'" in typo.stderr
    bad_key = tmp_path / "bad.json"
    bad_key.write_text(json.dumps({"epochz": 3}))
    proc = run_cli("train", str(hopper_file), "--config", str(bad_key), "-o", "run3")
    assert proc.returncode == 2 and "unknown config key(s): epochz" in proc.stderr


class WrappedEnsemble:
    """A plugin's dynamics model that stores itself its own way (not a GaussianEnsemble subclass)."""

    def __init__(self, obs_dim: int, act_dim: int, **params):
        from mopo_kit.dynamics.gaussian_ensemble import GaussianEnsemble

        self.inner = GaussianEnsemble(obs_dim, act_dim, **params)
        self.loaded = False

    def fit(self, data, *, callback=None):
        return self.inner.fit(data, callback=callback)

    def predict(self, obs, act):
        return self.inner.predict(obs, act)

    def save(self, directory):
        from pathlib import Path

        self.inner.save(Path(directory) / "inner")

    @classmethod
    def load(cls, directory):
        from pathlib import Path

        from mopo_kit.dynamics.gaussian_ensemble import GaussianEnsemble

        model = cls.__new__(cls)
        model.inner, model.loaded = GaussianEnsemble.load(Path(directory) / "inner"), True
        return model


class UnloadableEnsemble(WrappedEnsemble):
    load = None  # can be fitted and saved, but not reloaded


def test_a_plugin_dynamics_model_is_saved_and_reloaded_through_the_registry(hopper_file, tmp_path, mopo_kit_plugin):
    from mopo_kit.dynamics.storage import load_dynamics, stored_type
    from mopo_kit.errors import MopoKitError
    from mopo_kit.hookspecs import hookimpl
    from mopo_kit.experiments.run_evaluation import evaluate_run

    class Plugin:
        @hookimpl
        def register_dynamics_models(self, register):
            register("wrapped_ensemble", WrappedEnsemble)
            register("unloadable_ensemble", UnloadableEnsemble)

    mopo_kit_plugin(Plugin(), name="wrapped-plugin")
    tiny = {**TINY, "dynamics": {**TINY["dynamics"], "type": "wrapped_ensemble"}, "epochs": 1}
    MOPO(MOPOConfig(dataset=str(hopper_file), **tiny)).fit(tmp_path / "run")
    assert stored_type(tmp_path / "run" / "dynamics") == "wrapped_ensemble"
    reloaded = load_dynamics(tmp_path / "run" / "dynamics")
    assert isinstance(reloaded, WrappedEnsemble) and reloaded.loaded
    reused = MOPO(MOPOConfig(dataset=str(hopper_file), dynamics_dir=str(tmp_path / "run" / "dynamics"), **tiny))
    reused.fit(tmp_path / "reuse")
    assert reused.dynamics.loaded, "dynamics_dir reloads the plugin's class, not a GaussianEnsemble"
    assert np.isfinite(evaluate_run(tmp_path / "run", episodes=1)["bound"]["bound"])

    bad = {**tiny, "dynamics": {**tiny["dynamics"], "type": "unloadable_ensemble"}}
    MOPO(MOPOConfig(dataset=str(hopper_file), **bad)).fit(tmp_path / "bad")
    with pytest.raises(MopoKitError, match="'unloadable_ensemble' \\(plugin 'wrapped-plugin'\\) has no load"):
        load_dynamics(tmp_path / "bad" / "dynamics")
