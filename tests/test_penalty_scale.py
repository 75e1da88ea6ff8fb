"""κ, one penalty strength for every estimator: the rule, a run's resolved λ, resume, CLI and sweep input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mopo_kit.config import MOPOConfig
from mopo_kit.data.dataset import TransitionDataset
from mopo_kit.dynamics.storage import load_dynamics
from mopo_kit.errors import MopoKitError
from mopo_kit.mopo import MOPO
from mopo_kit.penalty_scale import PenaltyScale, penalty_scale
from mopo_kit.uncertainty.builtin import MaxAleatoric, TotalVariation, Wasserstein, Zero
from tests.test_mopo import TINY, hopper_file  # noqa: F401  (module fixture)


def _mean_penalty_on_data(run, estimator) -> float:
    """λ·u averaged over the run's dataset, recomputed from its saved model (independent of the run)."""
    saved = json.loads((run / "config.json").read_text())
    from mopo_kit.data.load import load_dataset

    data = load_dataset(saved["config"]["dataset"])
    model = load_dynamics(run / "dynamics", dims=(data.obs_dim, data.act_dim))
    model.set_precision(saved["resolved"]["model_precision"])  # as the run's κ → λ saw it (bf16 under auto on a bf16 CPU)
    with torch.inference_mode():
        obs, act = torch.as_tensor(data.observations), torch.as_tensor(data.actions)
        u = estimator(obs, act, model.predict(obs, act)).double()
    return saved["resolved"]["lam"] * float(u.mean()), float(np.abs(data.rewards).mean())


def test_two_estimators_at_the_same_kappa_take_the_same_mean_penalty_on_the_data(hopper_file, tmp_path):  # noqa: F811
    runs = {}
    for name, estimator in (("max_aleatoric", MaxAleatoric()), ("total_variation", TotalVariation())):
        config = MOPOConfig(dataset=str(hopper_file), uncertainty=name, **{**TINY, "lam": None, "kappa": 0.2, "epochs": 1})
        MOPO(config).fit(tmp_path / name)
        runs[name] = _mean_penalty_on_data(tmp_path / name, estimator)
    (pen_a, reward), (pen_b, _) = runs["max_aleatoric"], runs["total_variation"]
    assert pen_a == pytest.approx(0.2 * reward, rel=1e-4)
    assert pen_b == pytest.approx(pen_a, rel=1e-4)
    lams = [json.loads((tmp_path / n / "config.json").read_text())["resolved"]["lam"] for n in runs]
    assert lams[0] != pytest.approx(lams[1], rel=0.5), "the two estimators' raw scales differ, so must their λ"
    saved = json.loads((tmp_path / "total_variation" / "config.json").read_text())["resolved"]
    assert saved["kappa"] == 0.2 and saved["penalty_scale"]["estimator"] == "total_variation"
    assert saved["penalty_scale"]["transitions"] == 1500


def test_kappa_zero_is_mbpo_and_a_bigger_kappa_a_proportionally_bigger_lambda():
    scale = PenaltyScale("wasserstein", mean_penalty=0.5, mean_abs_reward=2.0, transitions=10)
    assert scale.lam_for(0.0) == 0.0
    assert scale.lam_for(0.25) == pytest.approx(1.0)
    assert scale.lam_for(0.75) == pytest.approx(3 * scale.lam_for(0.25))
    assert scale.kappa_of(scale.lam_for(0.3)) == pytest.approx(0.3)
    with pytest.raises(MopoKitError, match="'zero' is 0 on every transition"):
        PenaltyScale("zero", 0.0, 2.0, 10).lam_for(0.1)


def test_the_scale_does_not_depend_on_the_batch_split(monkeypatch):
    import mopo_kit.penalty_scale as module

    rng = np.random.default_rng(0)
    n = 257
    data = TransitionDataset.from_arrays(
        observations=rng.normal(size=(n, 3)).astype(np.float32), actions=rng.normal(size=(n, 2)).astype(np.float32),
        rewards=rng.normal(size=n).astype(np.float32), next_observations=rng.normal(size=(n, 3)).astype(np.float32),
        terminals=np.zeros(n, bool),
    )

    class Model:  # members disagree by an amount that depends on the input
        def predict(self, obs, act):
            from mopo_kit.types import EnsemblePrediction

            base = torch.cat([obs, act.sum(-1, keepdim=True)], -1)
            mean = torch.stack([base, base * 1.5, base - 0.3])
            return EnsemblePrediction(mean=mean, var=mean.square() + 0.1, elites=torch.arange(3))

    whole = penalty_scale(data, Model(), Wasserstein())
    monkeypatch.setattr(module, "BATCH_ROWS", 50)
    split = penalty_scale(data, Model(), Wasserstein())
    assert split.mean_penalty == pytest.approx(whole.mean_penalty, rel=1e-6) and whole.mean_penalty > 0
    assert whole.mean_abs_reward == pytest.approx(float(np.abs(data.rewards.astype(np.float64)).mean()))
    assert penalty_scale(data, Model(), Zero()).mean_penalty == 0.0


def test_a_resumed_kappa_run_keeps_its_lambda_and_ends_where_the_uninterrupted_one_does(hopper_file, tmp_path):  # noqa: F811
    cfg = {**TINY, "lam": None, "kappa": 0.1, "epochs": 3, "checkpoint_every": 1}

    class Killed(Exception):
        pass

    def kill(row):
        if row["epoch"] == 2:
            raise Killed

    MOPO(MOPOConfig(dataset=str(hopper_file), **cfg)).fit(tmp_path / "straight")
    with pytest.raises(Killed):
        MOPO(MOPOConfig(dataset=str(hopper_file), **cfg)).fit(tmp_path / "killed", callback=kill)
    MOPO.resume(tmp_path / "killed")
    a = json.loads((tmp_path / "straight" / "config.json").read_text())["resolved"]
    b = json.loads((tmp_path / "killed" / "config.json").read_text())["resolved"]
    assert a["lam"] == b["lam"] and a["penalty_scale"] == b["penalty_scale"]
    wa = torch.load(tmp_path / "straight" / "policy.pt", weights_only=True)["state_dict"]
    wb = torch.load(tmp_path / "killed" / "policy.pt", weights_only=True)["state_dict"]
    for key in wa:
        torch.testing.assert_close(wb[key], wa[key], rtol=0, atol=0)


def test_lam_and_kappa_together_are_one_line_errors(hopper_file, tmp_path, run_cli):  # noqa: F811
    with pytest.raises(MopoKitError, match="'lam' .* and 'kappa' .* are both set"):
        MOPOConfig(lam=1.0, kappa=0.1)
    proc = run_cli("train", str(hopper_file), "--lam", "1", "--kappa", "0.1", "-o", "run", check_rc=2)
    assert proc.stderr.strip() == "mopo-kit: error: --lam and --kappa both given: give one (--kappa sets λ from the model and the data)"
    assert not (tmp_path / "run").exists()
    sweep = tmp_path / "sweep.toml"
    sweep.write_text('[grid]\ndataset = ["hopper-random"]\nuncertainty = ["zero"]\nlam = [1.0]\nkappa = [0.1]\n')
    proc = run_cli("sweep", str(sweep), "-o", "out", check_rc=2)
    assert "sets both 'lam' and 'kappa'" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_cli_kappa_replaces_the_config_files_lambda(hopper_file, tmp_path, run_cli):  # noqa: F811
    config_file = tmp_path / "tiny.json"
    config_file.write_text(json.dumps({**TINY, "epochs": 1}))  # the file sets lam = 1.0
    run_cli("train", str(hopper_file), "--config", str(config_file), "--uncertainty", "wasserstein", "--kappa", "0.05", "-o", "run", check_rc=0)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["config"]["lam"] is None and saved["config"]["kappa"] == 0.05
    scale = PenaltyScale(**saved["resolved"]["penalty_scale"])
    assert saved["resolved"]["lam"] == pytest.approx(scale.lam_for(0.05)) and saved["resolved"]["lam"] != 1.0
    rows = json.loads(run_cli("penalty-scale", str(hopper_file), "--dynamics", "run/dynamics", "--estimators", "max_aleatoric,wasserstein", "--kappa", "0.05", "--json", check_rc=0).stdout)
    assert [r["estimator"] for r in rows] == ["max_aleatoric", "wasserstein"]
    for row in rows:
        assert row["lam"] * row["mean_penalty"] == pytest.approx(0.05 * row["mean_abs_reward"])
    assert rows[1]["lam"] == pytest.approx(saved["resolved"]["lam"], rel=1e-6), "the CLI and the run agree on λ"



def test_report_groups_kappa_trials_over_seeds_and_names_the_strength(tmp_path, capsys, monkeypatch):
    """``mopo-kit report`` on a κ sweep (the penalty study): one row per κ across seeds, whose λ differ."""
    import json

    from mopo_kit.cli import main as cli_main

    for seed, lam, score in ((0, 2.9, 40.0), (1, 3.3, 60.0)):
        run = tmp_path / "trials" / f"hopper-mixed__wasserstein__kappa0.26__s{seed}"
        run.mkdir(parents=True)
        (run / "config.json").write_text(json.dumps({
            "config": {"dataset": "hopper-mixed", "uncertainty": {"type": "wasserstein"}, "seed": seed},
            "resolved": {"lam": lam, "kappa": 0.26, "horizon": 5},
        }))
        result = {"normalized_mean": score, "return_mean": score * 30}
        (run / "results.json").write_text(json.dumps({"last": result, "best": result}))
        (run / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "gradient_steps": 1000, "normalized_mean": score, "rollout_mean_penalty": 0.1}) + "\n")
    monkeypatch.setenv("COLUMNS", "200")  # one table row per line
    assert cli_main(["report", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "κ 0.26 (λ 3.1)" in out and "0, 1" in out and "50.0 ± 10.0" in out, out
    report = json.loads((tmp_path / "report.json").read_text())
    assert [(r["kappa"], r["seed_list"], round(r["lam"], 2)) for r in report["rows"]] == [(0.26, [0, 1], 3.1)]
