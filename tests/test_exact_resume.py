"""A run killed after a checkpoint and resumed continues the uninterrupted run's exact trajectory."""

from __future__ import annotations

import copy

import pytest
import torch

from mopo_kit.config import MOPOConfig
from mopo_kit.mopo import MOPO
from tests.test_mopo import TINY, hopper_file  # noqa: F401  (module fixture)


class _Killed(Exception):
    pass


def _config(data_file) -> MOPOConfig:
    cfg = copy.deepcopy(TINY)
    # one retained rollout of ≤ 200 × 3 rows: the model pool wraps around from the second epoch on,
    # which is where a checkpoint that stores the pool "oldest first" loses the sampler's layout
    cfg["policy"]["params"]["retain_rollouts"] = 1
    cfg.update(epochs=5, checkpoint_every=2)
    return MOPOConfig(dataset=str(data_file), **cfg)


def _final_weights(run) -> dict[str, torch.Tensor]:
    return torch.load(run / "policy.pt", weights_only=True)["state_dict"]


def test_killed_and_resumed_run_ends_with_the_uninterrupted_weights(hopper_file, tmp_path):  # noqa: F811
    MOPO(_config(hopper_file)).fit(tmp_path / "straight")

    def kill_after_checkpoint(row):
        if row["epoch"] == 4:  # just after the epoch-4 checkpoint; epoch 5 is left to the resume
            raise _Killed

    with pytest.raises(_Killed):
        MOPO(_config(hopper_file)).fit(tmp_path / "killed", callback=kill_after_checkpoint)
    pool = torch.load(tmp_path / "killed" / "checkpoint" / "state.pt", weights_only=True)
    assert int(pool["steps"]) == 4 * TINY["steps_per_epoch"]
    MOPO.resume(tmp_path / "killed")

    straight, resumed = _final_weights(tmp_path / "straight"), _final_weights(tmp_path / "killed")
    assert straight.keys() == resumed.keys()
    for key in straight:
        torch.testing.assert_close(resumed[key], straight[key], rtol=0, atol=0, msg=f"actor weight {key} differs after resume")
