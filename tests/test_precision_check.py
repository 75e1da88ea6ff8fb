"""The bf16 learning check (benchmarks/precision_check.py): its runs are bf16, its verdict follows its rule."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from mopo_kit.config import MOPOConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))


def test_every_run_of_the_check_is_bf16_at_the_tables_settings():
    import precision_check as check

    spec = check.CHECK.sweep_spec(list(check.CELLS), ["mopo"], [0, 1, 2], 100_000)
    points = spec.trials()
    assert len(points) == 6
    for point in points:
        config = MOPOConfig.from_dict({**spec.base, **point})
        assert config.precision == "bf16" and config.uncertainty.type == "max_aleatoric"
        assert config.lam is None and config.horizon is None, "the table's per-task h and λ, resolved by the run"


def _record(seed: int, last5: float, mse: float, precision: str) -> dict:
    return {"seed": seed, "precision": precision, "dynamics_fit": {"holdout_mse": mse},
            "curve": [{"return_mean": last5 - 50.0}, *({"return_mean": last5} for _ in range(5))]}


@pytest.mark.parametrize(("bf16_returns", "verdict"), [((420.0, 440.0, 460.0), True), ((200.0, 210.0, 220.0), False)])
def test_the_verdict_is_non_inferiority_by_one_float32_seed_std(tmp_path, monkeypatch, bf16_returns, verdict):
    import precision_check as check

    fp32_dir, bf16_dir = tmp_path / "d4rl", tmp_path / "bf16"
    fp32_dir.mkdir()
    bf16_dir.mkdir()
    monkeypatch.setattr(check, "FLOAT32_RESULTS", fp32_dir)
    monkeypatch.setattr(check.CHECK, "results", bf16_dir)
    for cell in check.CELLS:
        for seed, (ref, low) in enumerate(zip((400.0, 500.0, 600.0), bf16_returns)):
            (fp32_dir / f"{cell}__mopo__s{seed}__100k.json").write_text(json.dumps(_record(seed, ref, 0.01, "fp32")))
            (bf16_dir / f"{cell}__mopo__s{seed}__100k.json").write_text(json.dumps(_record(seed, low, 0.01 if seed else 0.02, "bf16")))
    row = check.compare()["cells"][check.CELLS[0]]
    # fp32: mean 500, population std 81.6 → the bar is 418.4
    assert row["fp32"]["mean"] == 500.0 and row["fp32"]["std"] == pytest.approx(81.6, abs=0.05)
    assert row["learns_as_well"] is verdict
    assert row["same_model_fits"] == [False, True, True]
    assert 0.0 < row["welch_p"] <= 1.0
    low, high = row["difference_ci95"]
    assert low < row["difference"] < high
    assert ("yes" if verdict else "**no**") in check.markdown(check.compare())


def test_the_verdict_waits_for_every_seed(tmp_path, monkeypatch):
    import precision_check as check

    monkeypatch.setattr(check.CHECK, "results", tmp_path)
    (tmp_path / f"{check.CELLS[0]}__mopo__s0__100k.json").write_text(json.dumps(_record(0, 400.0, 0.01, "bf16")))
    row = check.compare()["cells"][check.CELLS[0]]
    assert row["learns_as_well"] is None and row["bf16"]["seeds"] == [0]
