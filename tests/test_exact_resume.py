"""A run killed after a checkpoint and resumed continues the uninterrupted run's exact trajectory."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from mopo_kit.config import MOPOConfig
from mopo_kit.mopo import MOPO
from tests.test_mopo import TINY, hopper_file  # noqa: F401  (module fixture)


class _Killed(Exception):
    pass


def _config(data_file, precision: str = "fp32") -> MOPOConfig:
    cfg = copy.deepcopy(TINY)
    cfg["precision"] = precision
    # one retained rollout of ≤ 200 × 3 rows: the model pool wraps around from the second epoch on,
    # which is where a checkpoint that stores the pool "oldest first" loses the sampler's layout
    cfg["policy"]["params"]["retain_rollouts"] = 1
    cfg.update(epochs=5, checkpoint_every=2)
    return MOPOConfig(dataset=str(data_file), **cfg)


def _final_weights(run) -> dict[str, torch.Tensor]:
    return torch.load(run / "policy.pt", weights_only=True)["state_dict"]


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_killed_and_resumed_run_ends_with_the_uninterrupted_weights(hopper_file, tmp_path, precision):  # noqa: F811
    straight_run = MOPO(_config(hopper_file, precision))
    straight_run.fit(tmp_path / "straight")
    expected = torch.bfloat16 if precision == "bf16" else torch.float32
    assert straight_run.policy.sac.compute_dtype == expected, "the SAC updates compute in the run's precision"
    assert straight_run.dynamics.precision == precision, "... and so do the model rollouts"

    def kill_after_checkpoint(row):
        if row["epoch"] == 4:  # just after the epoch-4 checkpoint; epoch 5 is left to the resume
            raise _Killed

    with pytest.raises(_Killed):
        MOPO(_config(hopper_file, precision)).fit(tmp_path / "killed", callback=kill_after_checkpoint)
    pool = torch.load(tmp_path / "killed" / "checkpoint" / "state.pt", weights_only=True)
    assert int(pool["steps"]) == 4 * TINY["steps_per_epoch"]
    MOPO.resume(tmp_path / "killed")
    resolved = json.loads((tmp_path / "killed" / "config.json").read_text())["resolved"]
    assert resolved["precision"] == precision

    straight, resumed = _final_weights(tmp_path / "straight"), _final_weights(tmp_path / "killed")
    assert straight.keys() == resumed.keys()
    for key in straight:
        torch.testing.assert_close(resumed[key], straight[key], rtol=0, atol=0, msg=f"actor weight {key} differs after resume")


def test_a_run_killed_inside_its_own_dynamics_fit_resumes_the_fit_mid_way(hopper_file, tmp_path, monkeypatch):  # noqa: F811
    """A run that fits its own model keeps ``RUN/dynamics_fit.pt``: the resume fits only the epochs left.

    The end state is the uninterrupted run's: the same model weights and elites, and then the same
    policy (the fit's RNG state is part of the checkpoint, so nothing after it shifts).
    """
    from mopo_kit.dynamics.gaussian_ensemble import GaussianEnsemble

    cfg = copy.deepcopy(TINY)
    cfg["dynamics"]["params"]["max_epochs"] = 4
    cfg.update(epochs=2)
    config = MOPOConfig(dataset=str(hopper_file), **cfg)
    MOPO(config).fit(tmp_path / "straight")

    original_fit = GaussianEnsemble.fit
    epochs_run: list[int] = []

    def fit_watched(kill_at: int | None):
        def fit(self, data, *, callback=None, checkpoint=None):
            def watch(stats):
                epochs_run.append(stats.epoch)
                if callback is not None:
                    callback(stats)
                if stats.epoch == kill_at:
                    raise _Killed

            return original_fit(self, data, callback=watch, checkpoint=checkpoint)

        return fit

    run = tmp_path / "killed"
    monkeypatch.setattr(GaussianEnsemble, "fit", fit_watched(kill_at=2))
    with pytest.raises(_Killed):
        MOPO(config).fit(run)
    assert (run / "dynamics_fit.pt").exists() and not (run / "dynamics").exists()
    assert (run / "config.json").exists(), "the config is written before the fit: the run is resumable"
    assert epochs_run == [1, 2]

    epochs_run.clear()
    monkeypatch.setattr(GaussianEnsemble, "fit", fit_watched(kill_at=None))
    MOPO.resume(run)
    assert epochs_run == [3, 4], "the resumed run fitted only the epochs after the checkpoint"
    assert not (run / "dynamics_fit.pt").exists(), "the fit checkpoint goes once the model is saved"

    straight_model, resumed_model = (GaussianEnsemble.load(r / "dynamics") for r in (tmp_path / "straight", run))
    for (key, want), got in zip(straight_model.net.state_dict().items(), resumed_model.net.state_dict().values()):
        assert torch.equal(got, want), f"dynamics weight {key} differs after a resume mid-fit"
    assert resumed_model.elites.tolist() == straight_model.elites.tolist()
    straight, resumed = _final_weights(tmp_path / "straight"), _final_weights(run)
    for key in straight:
        torch.testing.assert_close(resumed[key], straight[key], rtol=0, atol=0, msg=f"actor weight {key} differs after resume")
