"""bf16 model rollouts (mopo_kit.precision): close to float32, weights recast only when they change."""

from __future__ import annotations

import pytest
import torch

from mopo_kit.config import MOPOConfig
from mopo_kit.dynamics.gaussian_ensemble import GaussianEnsemble
from mopo_kit.errors import MopoKitError
from mopo_kit.precision import cpu_bf16_units, resolve_precision
from tests.test_mopo import hopper_file  # noqa: F401  (module fixture)


def _model() -> GaussianEnsemble:
    torch.manual_seed(0)
    model = GaussianEnsemble(5, 2, members=3, elites=2, hidden=64, layers=3, weight_decays=[1e-5, 1e-5, 1e-5, 1e-5], predict_chunk=37)
    for p in (*model.net.weights, *model.net.biases):  # a non-trivial net without a fit
        with torch.no_grad():
            p.normal_(0.0, 0.3)
    return model


def test_bf16_predict_is_close_to_float32_and_keeps_float32_outputs():
    model = _model()
    obs, act = torch.randn(500, 5), torch.randn(500, 2)
    ref = model.predict(obs, act)
    model.set_precision("bf16")
    low = model.predict(obs, act)
    assert low.mean.dtype == torch.float32 and low.var.dtype == torch.float32
    assert not torch.equal(low.mean, ref.mean), "the hidden layers did run in bf16"
    rel = (low.mean - ref.mean).abs().mean() / ref.mean.abs().mean()
    assert rel < 0.02
    assert ((low.var / ref.var) - 1).abs().median() < 0.05
    model.set_precision("fp32")
    assert torch.equal(model.predict(obs, act).mean, ref.mean)


def test_bf16_weights_are_cast_again_only_after_the_weights_change():
    model = _model()
    model.set_precision("bf16")
    first = model._hidden_weights()
    assert model._hidden_weights() is first
    with torch.no_grad():
        model.net.weights[1].mul_(2.0)  # what an optimizer step does: an in-place update
    second = model._hidden_weights()
    assert second is not first and torch.equal(second[0][1], model.net.weights[1].detach().to(torch.bfloat16))
    # the input layer stays float32 (its rounding is what moved max_aleatoric's p99 most)
    assert second[0][0].dtype == second[1][0].dtype == torch.float32 and second[0][1].dtype == torch.bfloat16


def test_precision_is_checked_and_auto_follows_the_cpu():
    with pytest.raises(MopoKitError, match="config key 'precision' must be one of fp32, bf16, auto, got 'fp16'"):
        MOPOConfig(precision="fp16")
    expected = "bf16" if cpu_bf16_units() else "fp32"
    assert resolve_precision("auto", torch.device("cpu")) == expected
    assert resolve_precision("auto", torch.device("cuda")) == "fp32"
    assert resolve_precision("bf16", torch.device("cpu")) == "bf16"


def test_runs_and_the_demo_share_one_default_precision():
    """MOPOConfig, the demo and the reporting commands take ``DEFAULT_PRECISION`` when none is
    given: switching the toolkit to ``auto`` changes that one constant and nothing can lag."""
    from mopo_kit.experiments.demo import DemoSettings
    from mopo_kit.precision import DEFAULT_PRECISION, PRECISIONS

    assert DEFAULT_PRECISION in PRECISIONS
    assert MOPOConfig().precision == DEFAULT_PRECISION
    assert MOPOConfig.from_dict({}).precision == DEFAULT_PRECISION
    assert DemoSettings().precision == DEFAULT_PRECISION


def test_precision_is_taken_and_recorded_by_train_and_evaluate(tmp_path, run_cli):
    import json

    from tests.test_mopo import TINY
    from mopo_kit.data.collect import collect_transitions, uniform_random_policy
    from mopo_kit.data.d4rl_io import write_d4rl_hdf5
    from mopo_kit.envs.tasks import HOPPER

    data = tmp_path / "hopper-random-small.hdf5"
    write_d4rl_hdf5(collect_transitions(HOPPER, uniform_random_policy(3), 600, seed=0, num_envs=2), data, metadata={"task": "hopper", "kind": "random"})
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps({**TINY, "epochs": 1}))
    run_cli("train", str(data), "--config", str(config), "--precision", "bf16", "-o", "run", check_rc=0)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["resolved"]["precision"] == "bf16"
    own = json.loads(run_cli("evaluate", "run", "--episodes", "1", "--json", check_rc=0).stdout)
    asked = json.loads(run_cli("evaluate", "run", "--episodes", "1", "--json", "--precision", "fp32", check_rc=0).stdout)
    assert own["precision"] == "bf16" and asked["precision"] == "fp32"
    bad = run_cli("evaluate", "run", "--precision", "fp16")
    assert bad.returncode == 2 and "invalid choice: 'fp16'" in bad.stderr


def test_train_dynamics_fits_in_the_precision_asked_and_records_it(tmp_path, run_cli):
    import json

    from mopo_kit.data.d4rl_io import write_d4rl_hdf5
    from mopo_kit.testing_models import linear_system_dataset

    write_d4rl_hdf5(linear_system_dataset(n=800, seed=0), tmp_path / "train.hdf5")
    run_cli("train-dynamics", "train.hdf5", "-o", "dyn", "--max-epochs", "1", "--precision", "bf16", check_rc=0)
    assert json.loads((tmp_path / "dyn" / "fit_report.json").read_text())["precision"] == "bf16"
    assert json.loads((tmp_path / "dyn" / "dynamics.json").read_text())["config"]["fit_precision"] == "bf16"
    run_cli("train-dynamics", "train.hdf5", "-o", "dyn32", "--max-epochs", "1", check_rc=0)
    assert json.loads((tmp_path / "dyn32" / "fit_report.json").read_text())["precision"] == "fp32"
    bad = run_cli("train-dynamics", "train.hdf5", "-o", "x", "--precision", "fp16")
    assert bad.returncode == 2 and "invalid choice: 'fp16'" in bad.stderr


def test_the_fit_precision_benchmark_compares_two_fits_of_one_seed(tmp_path):
    import sys
    from pathlib import Path

    from mopo_kit.data.d4rl_io import write_d4rl_hdf5
    from mopo_kit.testing_models import linear_system_dataset

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import bench_fit_precision

    write_d4rl_hdf5(linear_system_dataset(n=1400, seed=0), tmp_path / "data.hdf5")
    result = bench_fit_precision.quality(str(tmp_path / "data.hdf5"), rows=1000, test_rows=400, epochs=3, seeds=[0, 1])
    assert [row["seed"] for row in result["seeds"]] == [0, 1]
    for row in result["seeds"]:
        assert row["fp32"]["epochs"] == row["bf16"]["epochs"] == 3
        assert row["test_mse_ratio"] == row["bf16"]["test_mse"] / row["fp32"]["test_mse"]
        assert 0.5 < row["test_mse_ratio"] < 2 and 0.5 < row["penalty_ratio"] < 2  # the same model, two precisions
    assert result["fp32_seed_spread"]["test_mse"] > 0
    speed = bench_fit_precision.step_seconds(3, 2, steps=2, repeats=1)
    assert set(speed["ms_per_step"]) == {"fp32", "bf16"} and speed["ratio"] > 0


def test_auto_runs_the_model_in_bf16_only_for_penalties_that_tolerate_it(monkeypatch):
    import mopo_kit.precision as precision
    from mopo_kit.uncertainty.builtin import MMD, MaxAleatoric, TotalVariation, Wasserstein, Zero

    cpu = torch.device("cpu")
    monkeypatch.setattr(precision, "cpu_bf16_units", lambda: ("avx512_bf16",))
    assert precision.model_precision("auto", cpu, [MaxAleatoric]) == "bf16"
    assert precision.model_precision("auto", cpu, [TotalVariation(), Zero]) == "bf16"  # objects or factories
    assert precision.model_precision("auto", cpu, [Wasserstein]) == "fp32"  # the members' disagreement: 2-3 % off
    assert precision.model_precision("auto", cpu, [MaxAleatoric, MMD]) == "fp32"  # every penalty computed must tolerate it
    assert precision.model_precision("auto", cpu, [lambda **_: None]) == "fp32"  # a plugin that does not say
    assert precision.model_precision("bf16", cpu, [Wasserstein]) == "bf16"  # asked for explicitly: as asked
    assert precision.model_precision("fp32", cpu, [MaxAleatoric]) == "fp32"
    monkeypatch.setattr(precision, "cpu_bf16_units", lambda: ())
    assert precision.model_precision("auto", cpu, [MaxAleatoric]) == "fp32"  # no bf16 units: float32 throughout


@pytest.mark.parametrize(("estimator", "expected"), [("max_aleatoric", "bf16"), ("wasserstein", "fp32")])
def test_a_run_under_auto_records_the_model_precision_its_penalty_allows(hopper_file, tmp_path, monkeypatch, estimator, expected):  # noqa: F811
    import json

    import mopo_kit.precision as precision
    from mopo_kit.mopo import MOPO
    from tests.test_mopo import TINY

    monkeypatch.setattr(precision, "cpu_bf16_units", lambda: ("avx512_bf16",))
    config = MOPOConfig(dataset=str(hopper_file), uncertainty={"type": estimator, "params": {}}, precision="auto", **{**TINY, "epochs": 1})
    model = MOPO(config)
    model.fit(tmp_path / "run")
    resolved = json.loads((tmp_path / "run" / "config.json").read_text())["resolved"]
    assert resolved["precision"] == "bf16" and resolved["model_precision"] == expected  # SAC in bf16 either way
    assert model.dynamics.precision == expected


def test_a_resumed_auto_run_keeps_the_precision_it_started_with_on_another_machine(hopper_file, tmp_path, monkeypatch, capsys):  # noqa: F811
    import json

    import mopo_kit.precision as precision
    from mopo_kit.mopo import MOPO
    from tests.test_mopo import TINY

    run = tmp_path / "run"
    monkeypatch.setattr(precision, "cpu_bf16_units", lambda: ("avx512_bf16",))
    config = MOPOConfig(dataset=str(hopper_file), uncertainty={"type": "max_aleatoric", "params": {}}, precision="auto", **{**TINY, "epochs": 1})
    MOPO(config).fit(run)
    capsys.readouterr()
    MOPO.resume(run, epochs=2)  # the same machine: nothing to say
    assert "precision 'auto'" not in capsys.readouterr().err
    monkeypatch.setattr(precision, "cpu_bf16_units", lambda: ())  # moved to a CPU without bf16 units
    result = MOPO.resume(run, epochs=3)
    err = capsys.readouterr().err
    assert "precision 'auto' resolved to SAC bf16, model bf16 when this run started" in err and "would pick fp32, fp32" in err
    resolved = json.loads((run / "config.json").read_text())["resolved"]
    assert (resolved["precision"], resolved["model_precision"]) == ("bf16", "bf16")
    assert len(result.history) == 3
    fresh = MOPO(MOPOConfig(dataset=str(hopper_file), precision="auto", **{**TINY, "epochs": 1}))
    fresh.fit(tmp_path / "fresh")  # a new run on this machine resolves afresh
    assert json.loads((tmp_path / "fresh" / "config.json").read_text())["resolved"]["precision"] == "fp32"


def test_a_bf16_auto_run_moved_to_a_gpu_takes_the_gpus_auto_and_says_so(capsys):
    """No GPU is needed to check the rule: a resumed run on cuda re-resolves ``auto`` (float32 there)."""
    from types import SimpleNamespace

    from mopo_kit.mopo import MOPO

    run = MOPO.__new__(MOPO)  # only the state the rule reads, as _build leaves it on a cuda resume
    run.config = SimpleNamespace(precision="auto")
    run.device = torch.device("cuda")
    run._saved_precision = ("bf16", "bf16")
    run.precision, run.model_precision = resolve_precision("auto", run.device), "fp32"
    run._keep_saved_precision(None)
    assert (run.precision, run.model_precision) == ("fp32", "fp32")
    assert "on cuda it continues in SAC fp32, model fp32" in capsys.readouterr().err
    run.device = torch.device("cpu")
    run._keep_saved_precision(None)  # the same resume on a CPU keeps the run's own
    assert (run.precision, run.model_precision) == ("bf16", "bf16")
