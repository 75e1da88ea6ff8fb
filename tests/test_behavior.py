"""Behavior-policy training (snapshots, evaluations, resume) and collection with a saved policy."""

from __future__ import annotations

import json

import numpy as np

from mopo_kit.data.actor import load_actor
from mopo_kit.data.d4rl_io import read_d4rl_hdf5


def test_train_behavior_snapshots_resume_and_collect(tmp_path, run_cli):
    run_cli("train-behavior", "hopper", "--steps", "600", "--eval-every", "300", "-o", "beh", check_rc=0)
    evals = json.loads((tmp_path / "beh" / "evals.json").read_text())
    assert [e["step"] for e in evals] == [300, 600]
    assert all(np.isfinite(e["det_return_mean"]) and np.isfinite(e["stoch_return_mean"]) for e in evals)
    assert (tmp_path / "beh" / "resume" / "sac.zip").exists(), "the end of a run is a checkpoint"
    refused = run_cli("train-behavior", "hopper", "--steps", "900", "-o", "beh")
    assert refused.returncode == 2 and "--resume" in refused.stderr
    run_cli("train-behavior", "hopper", "--steps", "900", "--eval-every", "300", "-o", "beh", "--resume", check_rc=0)
    resumed = json.loads((tmp_path / "beh" / "evals.json").read_text())
    assert [e["step"] for e in resumed] == [300, 600, 900]
    assert resumed[:2] == evals, "a resumed run continues after step 600 instead of starting over"
    actor, meta = load_actor(tmp_path / "beh" / "snapshots" / "step_00000900.pt")
    assert (actor.obs_dim, actor.act_dim, meta["step"]) == (11, 3, 900)

    proc = run_cli("collect", "hopper", "--kind", "medium", "--policy", "beh/snapshots/step_00000900.pt", "--steps", "500", "-o", "m.hdf5", check_rc=0)
    assert "500 transitions" in proc.stdout
    data = read_d4rl_hdf5(tmp_path / "m.hdf5")
    assert len(data) == 500 and data.metadata["kind"] == "medium" and data.metadata["policy_meta"]["step"] == 900
    again = run_cli("collect", "hopper", "--kind", "medium", "--policy", "beh/snapshots/step_00000900.pt", "--steps", "500", "-o", "m2.hdf5", check_rc=0)
    assert again.returncode == 0
    np.testing.assert_array_equal(read_d4rl_hdf5(tmp_path / "m2.hdf5").actions, data.actions)  # same seed, same data
    wrong = run_cli("collect", "halfcheetah", "--kind", "medium", "--policy", "beh/snapshots/step_00000900.pt", "-o", "x.hdf5")
    assert wrong.returncode == 2 and "do not match task 'halfcheetah'" in wrong.stderr
    exists = run_cli("collect", "hopper", "--kind", "random", "--steps", "100", "-o", "m.hdf5")
    assert exists.returncode == 2 and "file exists" in exists.stderr
