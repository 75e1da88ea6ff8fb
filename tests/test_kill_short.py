"""The short kill test: a run SIGKILLed in three phases and stopped once by SIGTERM, resumed each time, ends where an uninterrupted one does."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SIGKILL and /proc-style process control")
def test_a_run_killed_in_fit_training_and_bound_resumes_to_the_uninterrupted_weights(tmp_path):
    from kill_test import lost_total, run_kill_test

    result = run_kill_test(tmp_path, kills=3, seed=1, say=lambda message: None, stops=1)
    landed = [e["phase"] for e in result["entries"]]
    assert result["kills"] == 3 and result["graceful_stops"] == 1, result["entries"]
    assert [(e["aimed_at"], e["signal"]) for e in result["entries"]] == [("fit", "SIGKILL"), ("fit", "SIGTERM"), ("rollout", "SIGKILL"), ("bound", "SIGKILL")]
    stop = result["entries"][1]
    assert stop["exit"] == 143 and stop["line"].startswith(("mopo-kit: stopped by SIGTERM in dynamics fit epoch", "mopo-kit: stopped by SIGTERM after dynamics fit epoch"))
    # hopper's model rollouts terminate early, so the bound may last only milliseconds: a kill
    # aimed at it can land just after it (while results are written, "other"); either way it
    # is the run's last moments, which is what this kill tests
    assert landed[-1] in ("bound", "other"), landed
    assert result["entries"][0]["checkpoint_epoch_after"] is None, "the first kill came before any checkpoint"
    assert result["resumes_finished"] == 4
    check = result["check"]
    assert check["epochs_logged"] == list(range(1, 21)), "every epoch exactly once"
    assert lost_total(check) == 0, check
    assert check["weights_equal_reference"] is True
