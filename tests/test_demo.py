"""The demo pipeline on a toy budget: results.json has the contract's keys and honest numbers."""

from __future__ import annotations

import json
import math

from mopo_kit.data.d4rl_io import read_d4rl_hdf5
from mopo_kit.experiments.demo import DemoSettings, run_demo


def test_demo_writes_results_and_plot(tmp_path):
    settings = DemoSettings(
        transitions=2000, dynamics_epochs=2, epochs=1, steps_per_epoch=100, rollout_batch_size=500, eval_episodes=2,
        methods=(("MOPO (max_aleatoric)", "max_aleatoric", None), ("MBPO (λ = 0)", "zero", 0.0)),
    )
    results = run_demo(tmp_path, settings)
    on_disk = json.loads((tmp_path / "results.json").read_text())
    assert on_disk["return_mean"] == results["return_mean"]
    summary = read_d4rl_hdf5(tmp_path / "dataset.hdf5").summary()
    assert math.isclose(on_disk["return_mean"], summary.return_mean) and math.isclose(on_disk["return_max"], summary.return_max)
    assert set(on_disk["methods"]) == {"MOPO (max_aleatoric)", "MBPO (λ = 0)"}
    for method in on_disk["methods"].values():
        assert math.isfinite(method["return"])
    assert on_disk["methods"]["MBPO (λ = 0)"]["bound"]["epsilon"] == 0.0
    # hopper-random by default, with MOPO's published h and λ for it (as the D4RL table uses)
    assert on_disk["dataset"]["name"] == "hopper-random (demo)" and on_disk["env_id"] == "Hopper-v5"
    assert (on_disk["settings"]["horizon"], on_disk["settings"]["lam"]) == (5, 1.0)
    assert on_disk["methods"]["MOPO (max_aleatoric)"]["lam"] == 1.0 and on_disk["methods"]["MOPO (max_aleatoric)"]["bound"]["epsilon"] > 0.0
    assert (tmp_path / "results.png").read_bytes()[:4] == b"\x89PNG"
