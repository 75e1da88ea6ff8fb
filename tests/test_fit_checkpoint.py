"""A dynamics fit killed midway continues from its per-epoch checkpoint to the uninterrupted result."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from mopo_kit.dynamics.base import EpochStats
from mopo_kit.errors import MopoKitError
from mopo_kit.testing_models import linear_system_dataset, tiny_ensemble


class Killed(Exception):
    """Stands in for SIGKILL inside one process: raised from the epoch callback."""


def _kill_after(epoch: int):
    def callback(stats: EpochStats) -> None:
        if stats.epoch == epoch:
            raise Killed

    return callback


def _weights(model) -> list[torch.Tensor]:
    return [t.clone() for t in model.net.state_dict().values()]


@pytest.fixture(scope="module")
def uninterrupted():
    data = linear_system_dataset(n=1500, seed=3)
    model = tiny_ensemble(max_epochs=12)
    report = model.fit(data)
    return data, model, report


def test_a_fit_killed_twice_resumes_to_the_uninterrupted_weights_elites_and_report(uninterrupted, tmp_path):
    data, reference, ref_report = uninterrupted
    checkpoint = tmp_path / "fit.pt"
    for kill_at in (3, 7):
        with pytest.raises(Killed):
            tiny_ensemble(max_epochs=12).fit(data, callback=_kill_after(kill_at), checkpoint=checkpoint)
        assert checkpoint.exists()
    seen: list[int] = []
    model = tiny_ensemble(max_epochs=12)  # a fresh process would build a fresh model
    report = model.fit(data, callback=lambda stats: seen.append(stats.epoch), checkpoint=checkpoint)
    assert seen == list(range(8, 13)), "only the epochs after the last checkpoint run again"
    assert report.epochs == ref_report.epochs == 12
    assert report.stop_reason == ref_report.stop_reason
    assert [h.holdout_mse for h in report.history] == [h.holdout_mse for h in ref_report.history]
    assert report.holdout_mse == ref_report.holdout_mse
    assert model.elites.tolist() == reference.elites.tolist()
    for got, want in zip(_weights(model), _weights(reference)):
        assert torch.equal(got, want)


def test_a_finished_checkpoint_continues_under_a_larger_epoch_cap(uninterrupted, tmp_path):
    data, _, _ = uninterrupted
    checkpoint = tmp_path / "fit.pt"
    tiny_ensemble(max_epochs=5).fit(data, checkpoint=checkpoint)
    longer = tiny_ensemble(max_epochs=9)
    report = longer.fit(data, checkpoint=checkpoint)
    straight = tiny_ensemble(max_epochs=9)
    straight_report = straight.fit(data)
    assert [h.epoch for h in report.history] == list(range(1, 10))
    assert report.holdout_mse == straight_report.holdout_mse
    for got, want in zip(_weights(longer), _weights(straight)):
        assert torch.equal(got, want)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"lr": 3e-4}, "other settings (lr: 0.001 vs 0.0003)"),
        ({"data_seed": 4}, "other data (sha256"),
        ({"fit_precision": "bf16"}, "other settings (fit_precision: None vs 'bf16')"),
    ],
)
def test_a_checkpoint_of_another_fit_is_refused_in_one_line_and_kept(uninterrupted, tmp_path, change, message):
    data, _, _ = uninterrupted
    checkpoint = tmp_path / "fit.pt"
    tiny_ensemble(max_epochs=2).fit(data, checkpoint=checkpoint)
    before = checkpoint.read_bytes()
    other = linear_system_dataset(n=1500, seed=change.pop("data_seed")) if "data_seed" in change else data
    with pytest.raises(MopoKitError) as info:
        tiny_ensemble(max_epochs=4, **change).fit(other, checkpoint=checkpoint)
    assert str(info.value).startswith(f"{checkpoint}: a checkpoint of a fit with {message}")
    assert "\n" not in str(info.value)
    assert checkpoint.read_bytes() == before, "hours of fitting are not thrown away on a mismatch"


def test_a_truncated_checkpoint_is_one_line(uninterrupted, tmp_path):
    data, _, _ = uninterrupted
    checkpoint = tmp_path / "fit.pt"
    tiny_ensemble(max_epochs=2).fit(data, checkpoint=checkpoint)
    checkpoint.write_bytes(checkpoint.read_bytes()[:300])
    with pytest.raises(MopoKitError, match=r"fit\.pt: unreadable dynamics fit checkpoint, corrupt or truncated"):
        tiny_ensemble(max_epochs=4).fit(data, checkpoint=checkpoint)


def test_a_shared_sweep_model_is_fitted_resumably_and_its_checkpoint_removed(tmp_path, monkeypatch):
    """``ensure_shared_dynamics`` continues a killed fit from ``.fits/`` and cleans it up."""
    from mopo_kit.dynamics.gaussian_ensemble import GaussianEnsemble
    from mopo_kit.experiments import shared_models

    data = linear_system_dataset(n=1500, seed=3)
    monkeypatch.setattr("mopo_kit.data.load.load_dataset", lambda name: data)
    params = dict(members=5, elites=3, hidden=32, layers=2, weight_decays=[2.5e-5, 5e-5, 1e-4], batch_size=64, max_epochs=6)
    job = {"dataset": "linear", "seed": 0, "type": "gaussian_ensemble", "params": params, "target": str(tmp_path / "dynamics" / "linear-s0"), "device": "cpu"}
    original_fit = GaussianEnsemble.fit
    epochs: list[int] = []

    def fit_killed_at_4(self, data, *, callback=None, checkpoint=None):
        return original_fit(self, data, callback=_kill_after(4), checkpoint=checkpoint)

    monkeypatch.setattr(GaussianEnsemble, "fit", fit_killed_at_4)
    with pytest.raises(Killed):
        shared_models.ensure_shared_dynamics(job)
    checkpoint = tmp_path / ".fits" / "linear-s0.pt"
    assert checkpoint.exists() and not (tmp_path / "dynamics" / "linear-s0").exists()

    def fit_counting(self, data, *, callback=None, checkpoint=None):
        return original_fit(self, data, callback=lambda stats: epochs.append(stats.epoch), checkpoint=checkpoint)

    monkeypatch.setattr(GaussianEnsemble, "fit", fit_counting)
    shared_models.ensure_shared_dynamics(job)
    assert epochs == [5, 6]
    assert not checkpoint.exists()
    report = (tmp_path / "dynamics" / "linear-s0" / "fit_report.json").read_text()
    assert '"epochs": 6' in report


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SIGKILL")
def test_a_fit_sigkilled_mid_epoch_resumes_to_the_uninterrupted_weights(uninterrupted, tmp_path):
    """A real kill, at whatever instruction it lands on (mid-epoch or mid-write of the checkpoint)."""
    data, _, _ = uninterrupted
    script = tmp_path / "fit.py"
    script.write_text(
        "import sys, torch\n"
        "torch.set_num_threads(1)\n"
        "from mopo_kit.testing_models import linear_system_dataset, tiny_ensemble\n"
        "data = linear_system_dataset(n=1500, seed=3)\n"
        "model = tiny_ensemble(max_epochs=40)\n"
        "model.fit(data, checkpoint=sys.argv[1], callback=lambda s: print(s.epoch, flush=True))\n"
        "model.save(sys.argv[2])\n"
    )
    checkpoint, out = tmp_path / "fit.pt", tmp_path / "model"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen([sys.executable, str(script), str(checkpoint), str(out)], stdout=subprocess.PIPE, text=True, env=env)
    for line in proc.stdout:  # let it run a few epochs, then kill it mid-whatever
        if int(line) >= 5:
            break
    time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL and not out.exists()
    done = subprocess.run([sys.executable, str(script), str(checkpoint), str(out)], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    resumed_epochs = [int(x) for x in done.stdout.split()]
    assert resumed_epochs[0] > 1, "the second process continued, it did not start over"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the script: the same kernels, the same rounding
    try:
        straight = tiny_ensemble(max_epochs=40)
        straight.fit(data)
    finally:
        torch.set_num_threads(threads)
    from mopo_kit.dynamics.gaussian_ensemble import GaussianEnsemble

    resumed = GaussianEnsemble.load(out)
    for got, want in zip(_weights(resumed), _weights(straight)):
        assert torch.equal(got, want)
    assert np.array_equal(resumed.elites.numpy(), straight.elites.numpy())


def test_train_dynamics_run_again_after_a_kill_continues_the_fit(tmp_path, run_cli):
    import json

    from mopo_kit.data.d4rl_io import write_d4rl_hdf5
    from mopo_kit.data.load import load_dataset
    from mopo_kit.dynamics.gaussian_ensemble import GaussianEnsemble

    write_d4rl_hdf5(linear_system_dataset(n=800, seed=0), tmp_path / "train.hdf5")
    data = load_dataset(str(tmp_path / "train.hdf5"))
    checkpoint = tmp_path / "dyn" / "fit_checkpoint.pt"
    killed: list[EpochStats] = []

    def record_then_kill(stats: EpochStats) -> None:
        killed.append(stats)
        _kill_after(2)(stats)

    with pytest.raises(Killed):  # what `train-dynamics` builds: MOPO's ensemble, seed 0
        GaussianEnsemble(data.obs_dim, data.act_dim, seed=0, max_epochs=4).fit(data, callback=record_then_kill, checkpoint=checkpoint)
    proc = run_cli("train-dynamics", "train.hdf5", "-o", "dyn", "--max-epochs", "4", "--device", "cpu", check_rc=0)
    assert f"continuing the killed fit in {Path('dyn') / 'fit_checkpoint.pt'}" in proc.stderr
    assert "4 epochs" in proc.stdout
    history = json.loads((tmp_path / "dyn" / "fit_report.json").read_text())["history"]
    assert [row["epoch"] for row in history] == [1, 2, 3, 4]
    assert [row["holdout_mse"] for row in history[:2]] == [stats.holdout_mse for stats in killed]
    assert not checkpoint.exists(), "the checkpoint goes once the model is saved"


def test_a_graceful_stop_within_an_epoch_drops_it_and_the_resume_redoes_it_exactly(uninterrupted, tmp_path):
    """SIGTERM/SIGINT mid-epoch: StopRequested within 16 minibatches, not at the epoch's end;
    the checkpoint of the last whole epoch stands and the resumed fit ends as the uninterrupted one."""
    from mopo_kit.dynamics.gaussian_ensemble import STOP_CHECK_BATCHES
    from mopo_kit.stop import StopRequested, graceful_stop, request_stop

    data, reference, ref_report = uninterrupted
    checkpoint = tmp_path / "fit.pt"

    def stop_after_epoch_4(stats: EpochStats) -> None:
        if stats.epoch == 4:
            request_stop()  # as the signal handler does, while epoch 5 is about to start

    batches = -(-1200 // 64)  # 1,500 rows less a 300-row holdout, 64 per minibatch
    assert batches > STOP_CHECK_BATCHES, "the fit must have a check inside its epoch"
    with graceful_stop():
        pattern = rf"stopped by SIGTERM in dynamics fit epoch 5 after {STOP_CHECK_BATCHES - 1} of {batches} minibatches \(dropped; epoch 4's fit checkpoint stands\)"
        with pytest.raises(StopRequested, match=pattern):
            tiny_ensemble(max_epochs=12).fit(data, callback=stop_after_epoch_4, checkpoint=checkpoint)
    seen: list[int] = []
    model = tiny_ensemble(max_epochs=12)
    report = model.fit(data, callback=lambda stats: seen.append(stats.epoch), checkpoint=checkpoint)
    assert seen == list(range(5, 13)), "the dropped epoch runs again, once"
    assert [h.holdout_mse for h in report.history] == [h.holdout_mse for h in ref_report.history]
    for got, want in zip(_weights(model), _weights(reference)):
        assert torch.equal(got, want)


def test_a_fit_without_a_checkpoint_leaves_the_stop_to_its_caller(uninterrupted):
    """Nothing to resume from: the ensemble does not drop work; the caller's callback decides."""
    from mopo_kit.stop import graceful_stop, request_stop

    data = uninterrupted[0]
    with graceful_stop():
        request_stop()
        report = tiny_ensemble(max_epochs=2).fit(data)
    assert report.epochs == 2
