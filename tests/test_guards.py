"""Guarded rollouts: a bad model or estimator output stops the run with one line, before it is stored."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mopo_kit.experiments.calibration import calibrate
from mopo_kit.envs.model_env import ModelStep
from mopo_kit.errors import ComponentOutputError, MopoKitError
from mopo_kit.hookspecs import hookimpl
from mopo_kit.testing_models import linear_system_dataset, tiny_ensemble
from mopo_kit.types import EnsemblePrediction
from mopo_kit.uncertainty.base import ClosedFormEstimator
from mopo_kit.uncertainty.builtin import MaxAleatoric

ROWS = 50
NEVER = lambda o, a, n: torch.zeros(o.shape[0], dtype=torch.bool)  # noqa: E731


class _Model:
    """Member k predicts mean k, variance 1e-4; ``bad_rows`` of the mean are set to ``value``."""

    def __init__(self, value: float | None = None, bad_rows: int = 0, var_value: float | None = None) -> None:
        self.value, self.bad_rows, self.var_value = value, bad_rows, var_value

    def predict(self, obs, act):
        mean = torch.arange(3.0).view(3, 1, 1).expand(3, obs.shape[0], obs.shape[1] + 1).clone()
        var = torch.full_like(mean, 1e-4)
        if self.value is not None:
            mean[1, : self.bad_rows, 0] = self.value
        if self.var_value is not None:
            var[0, : self.bad_rows, -1] = self.var_value
        return EnsemblePrediction(mean, var, torch.tensor([0, 1]))


class _Penalty(ClosedFormEstimator):
    """0.5 everywhere, except ``bad_rows`` rows set to ``value``; or a wrong shape / type."""

    ipm = "none"

    def __init__(self, value: float = 0.5, bad_rows: int = 0, shape: str = "ok") -> None:
        self.value, self.bad_rows, self.shape = value, bad_rows, shape

    def __call__(self, obs, act, pred):
        u = torch.full((pred.batch,), 0.5)
        u[: self.bad_rows] = self.value
        if self.shape == "column":
            return u[:, None]
        if self.shape == "numpy":
            return u.numpy()
        return u


def _step(model=None, estimator=None, lam=1.0) -> ModelStep:
    return ModelStep(model or _Model(), estimator or _Penalty(), lam, NEVER, name="my_plugin", dynamics_name="toy_model")


def _run(step: ModelStep):
    return step(torch.zeros(ROWS, 2), torch.zeros(ROWS, 1))


@pytest.mark.parametrize(
    "estimator,message",
    [
        (_Penalty(float("nan"), 7), "uncertainty estimator 'my_plugin' returned NaN for 7 of 50 rows"),
        (_Penalty(-1.0, 3), "uncertainty estimator 'my_plugin' returned negative values for 3 of 50 rows"),
        (_Penalty(float("inf"), 2), "uncertainty estimator 'my_plugin' returned inf for 2 of 50 rows"),
        (_Penalty(-float("inf"), 1), "uncertainty estimator 'my_plugin' returned inf for 1 of 50 rows, negative values for 1 of 50 rows"),
        (_Penalty(shape="column"), "uncertainty estimator 'my_plugin' returned shape (50, 1), expected (50,)"),
        (_Penalty(shape="numpy"), "uncertainty estimator 'my_plugin' returned a ndarray, expected a tensor of shape (50,)"),
    ],
    ids=["nan", "negative", "inf", "minus-inf", "wrong-shape", "not-a-tensor"],
)
def test_bad_estimator_output_is_one_line_naming_it(estimator, message):
    with pytest.raises(ComponentOutputError) as info:
        _run(_step(estimator=estimator))
    assert str(info.value) == message


@pytest.mark.parametrize(
    "model,message",
    [
        (_Model(float("inf"), 4), "dynamics model 'toy_model' predicted mean inf for 4 of 50 rows"),
        (_Model(float("nan"), 50), "dynamics model 'toy_model' predicted mean NaN for 50 of 50 rows"),
        (_Model(var_value=-1.0, bad_rows=5), "dynamics model 'toy_model' predicted variance negative values for 5 of 50 rows"),
    ],
    ids=["inf-mean", "nan-mean", "negative-variance"],
)
def test_bad_model_prediction_is_one_line_naming_it(model, message):
    with pytest.raises(ComponentOutputError) as info:
        _run(_step(model=model))
    assert str(info.value) == message


def test_caller_context_is_appended_and_names_default_to_classes():
    step = ModelStep(_Model(), _Penalty(float("nan"), 1), 1.0, NEVER)
    step.context = "at epoch 3"
    with pytest.raises(ComponentOutputError, match=r"^uncertainty estimator '_Penalty' returned NaN for 1 of 50 rows at epoch 3$"):
        _run(step)


def test_guard_changes_nothing_on_good_output_and_can_be_switched_off():
    guarded, unguarded = _step(), ModelStep(_Model(), _Penalty(), 1.0, NEVER, guard=False)
    a, b = _run(guarded), _run(unguarded)
    assert torch.equal(a.next_obs, b.next_obs) and torch.equal(a.reward, b.reward)
    _run(ModelStep(_Model(), _Penalty(float("nan"), 1), 1.0, NEVER, guard=False))  # no check: no error
    _run(_step(estimator=_Penalty(float("nan"), 1), lam=0.0))  # λ = 0 never calls the estimator


def test_calibrate_leaves_a_bad_estimator_out_with_the_same_line():
    model = tiny_ensemble(max_epochs=2)
    data = linear_system_dataset(n=400, seed=1)
    model.fit(data)
    report, _ = calibrate(model, {"nan_plugin": _Penalty(float("nan"), 7), "max_aleatoric": MaxAleatoric()}, data, data, max_points=100)
    assert [r.name for r in report.estimators] == ["max_aleatoric"]
    assert report.skipped["nan_plugin"] == "uncertainty estimator 'nan_plugin' returned NaN for 7 of 100 rows on linear-system"
    with pytest.raises(MopoKitError, match=r"^uncertainty estimator 'nan_plugin' returned NaN for 7 of 100 rows on linear-system$"):
        calibrate(model, {"nan_plugin": _Penalty(float("nan"), 7)}, data, data, max_points=100)


# ---------------------------------------------------------------------------- in a MOPO run
class _Flaky(ClosedFormEstimator):
    """max_aleatoric, but NaN on some rows once ``broken`` is set (a plugin bug that appears mid-run)."""

    ipm = "wasserstein"
    broken = False

    def __call__(self, obs, act, pred):
        u = MaxAleatoric()(obs, act, pred)
        if _Flaky.broken:
            u[:7] = float("nan")
        return u


@pytest.fixture
def flaky(mopo_kit_plugin):
    class Plugin:
        @hookimpl
        def register_uncertainty_estimators(self, register):
            register("flaky_plugin", _Flaky)

    mopo_kit_plugin(Plugin(), name="flaky")
    _Flaky.broken = False
    yield _Flaky
    _Flaky.broken = False


@pytest.fixture(scope="module")
def hopper_small(tmp_path_factory):
    from mopo_kit.data.collect import collect_transitions, uniform_random_policy
    from mopo_kit.data.d4rl_io import write_d4rl_hdf5
    from mopo_kit.envs.tasks import HOPPER

    path = tmp_path_factory.mktemp("data") / "hopper-random-small.hdf5"
    write_d4rl_hdf5(collect_transitions(HOPPER, uniform_random_policy(3), 600, seed=0, num_envs=2), path, metadata={"task": "hopper", "kind": "random"})
    return path


def test_a_nan_mid_run_stops_before_the_checkpoint_and_resume_works_once_fixed(flaky, hopper_small, tmp_path, capsys):
    from mopo_kit.cli import main
    from mopo_kit.config import MOPOConfig
    from mopo_kit.mopo import MOPO
    from tests.test_mopo import TINY

    config = tmp_path / "tiny.json"
    config.write_text(json.dumps({**TINY, "epochs": 3, "eval_episodes": 1, "uncertainty": "flaky_plugin"}))
    run = tmp_path / "run"

    def break_after_first_epoch(row):
        _Flaky.broken = row["epoch"] >= 1

    settings = MOPOConfig(**{**json.loads(config.read_text()), "dataset": str(hopper_small)})
    with pytest.raises(ComponentOutputError):  # through the Python API: the epoch-2 rollout fails
        MOPO(settings).fit(run, callback=break_after_first_epoch)
    progress = json.loads((run / "checkpoint" / "progress.json").read_text())
    assert progress["epoch"] == 1, "the epoch that failed must not overwrite the last checkpoint"
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1] and all(np.isfinite(r["rollout_mean_penalty"]) for r in rows)

    capsys.readouterr()
    assert main(["train", "--resume", str(run)]) == 2  # still broken: one line, exit 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["mopo-kit: error: uncertainty estimator 'flaky_plugin' returned NaN for 7 of 200 rows at epoch 2"]
    assert json.loads((run / "checkpoint" / "progress.json").read_text())["epoch"] == 1

    _Flaky.broken = False  # the cause fixed: the run resumes from its intact checkpoint
    result = MOPO.resume(run)
    assert result.gradient_steps == 3 * 50
    assert [json.loads(line)["epoch"] for line in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3]
