"""Loggers: several at once, W&B offline with the run's config, files that hold every epoch."""

from __future__ import annotations

import json

import pytest

from mopo_kit.config import MOPOConfig
from mopo_kit.mopo import MOPO
from tests.test_mopo import TINY, hopper_file  # noqa: F401  (module fixture)


def test_wandb_offline_jsonl_and_tensorboard_together(hopper_file, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    config = MOPOConfig(
        dataset=str(hopper_file), **{**TINY, "epochs": 2},
        loggers=["wandb", "jsonl", {"type": "tensorboard", "params": {}}], group="ablation-1",
    )
    MOPO(config).fit(tmp_path / "run")
    run = tmp_path / "run"
    offline = list((run / "wandb").glob("offline-run-*"))
    assert len(offline) == 1 and list(offline[0].glob("*.wandb"))
    events = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [e["event"] for e in events] == ["start", "metrics", "metrics", "finish"]
    start = events[0]
    assert start["group"] == "ablation-1" and start["job_type"] == "max_aleatoric"
    assert start["config"]["components"]["uncertainty"]["plugin"] == "mopo_kit.uncertainty.builtin"
    assert any(p["name"] == "mopo_kit.loggers" for p in start["config"]["plugins"])
    assert [e["epoch"] for e in events[1:3]] == [1, 2]
    assert "last_return_mean" in events[-1]
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))


def test_unknown_logger_is_one_clear_error(hopper_file, tmp_path):  # noqa: F811
    from mopo_kit.errors import UnknownComponentError

    with pytest.raises(UnknownComponentError, match="unknown logger 'wandbb'"):
        MOPO(MOPOConfig(dataset=str(hopper_file), **{**TINY, "epochs": 1}, loggers=["wandbb"])).fit(tmp_path / "run")


def test_console_line_shows_return_and_episode_length(capsys):
    from mopo_kit.loggers import ConsoleLogger

    logger = ConsoleLogger()
    logger.start(None, {}, "run-a")
    logger.log(2000, {"epoch": 2, "return_mean": -5.8, "length_mean": 6.0, "rollout_mean_penalty": 3.03, "note": "text is skipped"})
    logger.log(3000, {"epoch": 3, "rollout_mean_penalty": 3.0})  # an epoch without evaluation
    first, second = capsys.readouterr().err.splitlines()
    assert first == "[run-a] epoch 2: return_mean=-5.8 length_mean=6 rollout_mean_penalty=3.03"
    assert second == "[run-a] epoch 3: rollout_mean_penalty=3"


def test_a_missing_logger_package_is_one_line_before_any_work_and_a_resume_can_leave_it_out(hopper_file, tmp_path, monkeypatch, capsys):  # noqa: F811
    """A run moved to a machine without W&B (a lent GPU): one line naming the package and the way
    on; ``--without-logger wandb`` continues that leg without it, recorded, the config unchanged."""
    import sys

    from mopo_kit.cli import main as cli_main

    monkeypatch.setitem(sys.modules, "wandb", None)  # as on a machine without the package
    fresh = tmp_path / "fresh"
    assert cli_main(["train", str(hopper_file), "--steps", "50", "--wandb", "-o", str(fresh)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "logger 'wandb' needs the wandb package, not installed here (pip install wandb)" in err[0], err
    assert not fresh.exists(), "nothing made before the line"

    run = tmp_path / "run"
    MOPO(MOPOConfig(dataset=str(hopper_file), **{**TINY, "epochs": 1}, loggers=["jsonl"])).fit(run)
    payload = json.loads((run / "config.json").read_text())
    payload["config"]["loggers"] = [{"type": "wandb", "params": {}}, {"type": "jsonl", "params": {}}]  # as logged on its first machine
    (run / "config.json").write_text(json.dumps(payload))
    before = (run / "metrics.jsonl").read_bytes()
    assert cli_main(["train", "--resume", str(run), "--steps", str(2 * TINY["steps_per_epoch"])]) == 2
    assert "--without-logger wandb" in capsys.readouterr().err and (run / "metrics.jsonl").read_bytes() == before
    assert cli_main(["train", "--resume", str(run), "--without-logger", "tensorboard"]) == 2
    assert "--without-logger tensorboard: the run has no such logger (its loggers: wandb, jsonl)" in capsys.readouterr().err

    assert cli_main(["train", "--resume", str(run), "--steps", str(2 * TINY["steps_per_epoch"]), "--without-logger", "wandb"]) == 0
    assert "continuing without logger(s) wandb from epoch 1" in capsys.readouterr().err
    saved = json.loads((run / "config.json").read_text())
    assert saved["logger_gaps"] == [{"left_out": ["wandb"], "from_epoch": 1}]
    assert [c.type for c in MOPOConfig.from_dict(saved["config"]).loggers] == ["wandb", "jsonl"], "the config keeps W&B for later legs"
    assert [json.loads(line)["epoch"] for line in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2]
    jsonl = [json.loads(line)["event"] for line in (run / "log.jsonl").read_text().splitlines()]
    assert jsonl.count("start") == 2, "the other loggers still run on the leg"
