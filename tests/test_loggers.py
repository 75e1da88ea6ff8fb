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
