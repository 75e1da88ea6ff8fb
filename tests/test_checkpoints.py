"""Damaged run directories and model files: one line naming the file, exit 2, no traceback, no work."""

from __future__ import annotations

import json
import shutil

import pytest

from mopo_kit.cli import main
from mopo_kit.config import MOPOConfig
from mopo_kit.dynamics.gaussian_ensemble import GaussianEnsemble
from mopo_kit.dynamics.storage import load_dynamics, save_dynamics
from mopo_kit.errors import MopoKitError
from mopo_kit.mopo import MOPO
from mopo_kit.testing_models import linear_system_dataset, tiny_ensemble
from tests.test_guards import hopper_small  # noqa: F401  (module fixture: 600 hopper transitions)
from tests.test_mopo import TINY


@pytest.fixture(scope="module")
def finished_run(hopper_small, tmp_path_factory):  # noqa: F811
    run = tmp_path_factory.mktemp("runs") / "run"
    MOPO(MOPOConfig(dataset=str(hopper_small), **{**TINY, "epochs": 1, "eval_episodes": 1})).fit(run)
    return run


@pytest.fixture
def run_copy(finished_run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(finished_run, copy)
    return copy


def _one_line_error(capsys, argv: list[str], *needles: str) -> str:
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("mopo-kit: error: "), err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def _truncate(path, keep: int = 200) -> None:
    path.write_bytes(path.read_bytes()[:keep])


def test_resume_with_a_truncated_sac_checkpoint(run_copy, capsys):
    _truncate(run_copy / "checkpoint" / "sac.zip")
    _one_line_error(capsys, ["train", "--resume", str(run_copy), "--steps", "100"], "checkpoint/sac.zip: corrupt or truncated checkpoint file")


def test_resume_with_a_truncated_state_file(run_copy, capsys):
    _truncate(run_copy / "checkpoint" / "state.pt")
    _one_line_error(capsys, ["train", "--resume", str(run_copy), "--steps", "100"], "checkpoint/state.pt: corrupt or truncated checkpoint file")


def test_resume_with_a_corrupt_progress_file(run_copy, capsys):
    (run_copy / "checkpoint" / "progress.json").write_text("garbage")
    _one_line_error(capsys, ["train", "--resume", str(run_copy)], "checkpoint/progress.json: corrupt or truncated JSON")


def test_resume_and_evaluate_with_a_truncated_run_config(run_copy, capsys):
    _truncate(run_copy / "config.json", 50)
    _one_line_error(capsys, ["train", "--resume", str(run_copy)], "config.json: corrupt or truncated JSON")
    _one_line_error(capsys, ["evaluate", str(run_copy), "--episodes", "1"], "config.json: unreadable run config")


def test_resume_of_a_directory_that_is_not_a_run(tmp_path, capsys):
    _one_line_error(capsys, ["train", "--resume", str(tmp_path)], "not a run directory (config.json missing)")


def test_evaluate_with_a_truncated_policy_file(run_copy, capsys):
    _truncate(run_copy / "policy.pt", 300)
    _one_line_error(capsys, ["evaluate", str(run_copy), "--episodes", "1"], "policy.pt: unreadable policy file, corrupt or truncated")


@pytest.fixture(scope="module")
def other_task_model(tmp_path_factory):
    """A fitted 3-dim-observation model: not hopper's (11, 3)."""
    directory = tmp_path_factory.mktemp("models") / "linear"
    model = tiny_ensemble(max_epochs=1)
    data = linear_system_dataset(n=300)
    model.fit(data)
    save_dynamics(model, directory, "gaussian_ensemble")
    return directory


def test_train_with_a_model_from_another_task(other_task_model, hopper_small, tmp_path, capsys):  # noqa: F811
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps({**TINY, "epochs": 1}))
    _one_line_error(
        capsys,
        ["train", str(hopper_small), "--config", str(config), "--dynamics", str(other_task_model), "-o", str(tmp_path / "run")],
        "the dynamics model has obs/act dims (3, 2), dataset", "has (11, 3) (a model from another task?)",
    )
    assert not (tmp_path / "run" / "checkpoint").exists()


def test_evaluate_a_run_whose_model_was_replaced_by_another_tasks(run_copy, other_task_model, capsys):
    shutil.rmtree(run_copy / "dynamics")
    shutil.copytree(other_task_model, run_copy / "dynamics")
    _one_line_error(capsys, ["evaluate", str(run_copy), "--episodes", "1"], "(a model from another task?)")


@pytest.fixture
def model_copy(other_task_model, tmp_path):
    copy = tmp_path / "model"
    shutil.copytree(other_task_model, copy)
    return copy


def _edit_meta(directory, **changes) -> None:
    path = directory / "dynamics.json"
    meta = json.loads(path.read_text())
    for key, value in changes.items():
        if key == "config":
            meta["config"].update(value)
        else:
            meta[key] = value
    path.write_text(json.dumps(meta))


@pytest.mark.parametrize(
    "damage,needle",
    [
        ("truncated_weights", "unreadable dynamics model, corrupt or truncated (RuntimeError"),
        ("truncated_meta", "dynamics.json: unreadable dynamics model metadata"),
        ("weights_of_another_size", "unreadable dynamics model, corrupt or truncated (RuntimeError: Error(s) in loading state_dict"),
        ("newer_format", "dynamics model format 2 was written by a newer mopo_kit (this one reads formats up to 1)"),
        ("bad_config_value", "dynamics.json: gaussian_ensemble param 'lr' must be a finite number > 0, got -1"),
        ("corrupt_component_file", "component.json: unreadable, corrupt or truncated"),
        ("missing_plugin", "unknown dynamics model 'gp_dynamics'"),
    ],
)
def test_damaged_model_directory_is_one_line(model_copy, damage, needle, capsys):
    if damage == "truncated_weights":
        _truncate(model_copy / "dynamics.pt", 500)
    elif damage == "truncated_meta":
        _truncate(model_copy / "dynamics.json", 40)
    elif damage == "weights_of_another_size":
        _edit_meta(model_copy, config={"hidden": 64})
    elif damage == "newer_format":
        _edit_meta(model_copy, format_version=2)
    elif damage == "bad_config_value":
        _edit_meta(model_copy, config={"lr": -1})
    elif damage == "corrupt_component_file":
        _truncate(model_copy / "component.json", 5)
    elif damage == "missing_plugin":
        (model_copy / "component.json").write_text(json.dumps({"type": "gp_dynamics"}))
    with pytest.raises(MopoKitError) as info:
        load_dynamics(model_copy)
    assert needle in str(info.value) and "\n" not in str(info.value)
    _one_line_error(capsys, ["calibrate", str(model_copy), "--data", "x.hdf5", "--ood", "y.hdf5"], needle)


def test_saved_models_carry_their_format_version(other_task_model):
    meta = json.loads((other_task_model / "dynamics.json").read_text())
    assert meta["format_version"] == 1
    assert isinstance(GaussianEnsemble.load(other_task_model), GaussianEnsemble)
