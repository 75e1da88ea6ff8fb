"""Metric loggers, registered through ``register_loggers``: console, JSON-lines, TensorBoard, W&B.

A run always writes its own ``metrics.jsonl`` / ``metrics.csv`` (resume reads them back); the
loggers named in ``MOPOConfig.loggers`` receive the same rows in addition, several at once
(d3rlpy's ``CombineAdapter`` idea). Every logger gets the full run config — component names,
params and plugin versions — at ``start``.

W&B never blocks a run: without an API key (``WANDB_API_KEY`` or a ``wandb login``), or with
``WANDB_MODE=offline``, it writes an offline run under ``<run_dir>/wandb`` that
``wandb sync`` can upload later.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path
from typing import Any, Mapping, Protocol, runtime_checkable

from mopo_kit.errors import MopoKitError
from mopo_kit.hookspecs import hookimpl


@runtime_checkable
class MetricLogger(Protocol):
    """What the MOPO loop calls: ``start`` once, ``log`` every epoch, ``finish`` at the end."""

    def start(self, run_dir: Path | None, config: Mapping[str, Any], name: str, group: str | None = None, job_type: str | None = None) -> None: ...

    def log(self, step: int, metrics: Mapping[str, Any]) -> None: ...

    def finish(self, summary: Mapping[str, Any]) -> None: ...


def _scalars(metrics: Mapping[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


class ConsoleLogger:
    """One line per epoch on stderr: return, normalized score, episode length, penalty, losses."""

    KEYS = ("return_mean", "normalized_mean", "length_mean", "rollout_mean_penalty", "rollout_mean_reward", "critic_loss", "actor_loss", "ent_coef")

    def start(self, run_dir, config, name, group=None, job_type=None) -> None:
        self.name = name

    def log(self, step: int, metrics: Mapping[str, Any]) -> None:
        parts = [f"{k}={metrics[k]:.4g}" for k in self.KEYS if isinstance(metrics.get(k), (int, float))]
        print(f"[{self.name}] epoch {metrics.get('epoch', step)}: " + " ".join(parts), file=sys.stderr, flush=True)

    def finish(self, summary: Mapping[str, Any]) -> None:
        pass


class JsonLinesLogger:
    """Rows appended to a JSON-lines file (default ``<run_dir>/log.jsonl``), flushed each epoch."""

    def __init__(self, path: str | None = None) -> None:
        self.path = path

    def start(self, run_dir, config, name, group=None, job_type=None) -> None:
        target = Path(self.path) if self.path else (Path(run_dir) / "log.jsonl" if run_dir else None)
        if target is None:
            raise MopoKitError("logger 'jsonl': give it a path or run with a run directory")
        target.parent.mkdir(parents=True, exist_ok=True)
        self._handle = target.open("a")
        self._handle.write(json.dumps({"event": "start", "name": name, "group": group, "job_type": job_type, "config": config}) + "\n")

    def log(self, step: int, metrics: Mapping[str, Any]) -> None:
        self._handle.write(json.dumps({"event": "metrics", "step": step, **metrics}) + "\n")
        self._handle.flush()

    def finish(self, summary: Mapping[str, Any]) -> None:
        self._handle.write(json.dumps({"event": "finish", **summary}) + "\n")
        self._handle.close()


def _require(package: str, logger: str, install: str) -> None:
    """A logger whose package is not installed: one line before any work, naming how to get it
    (and, for a run moved to a machine without it, how to continue that leg without the logger)."""
    if importlib.util.find_spec(package) is None:
        raise MopoKitError(
            f"logger '{logger}' needs the {package} package, not installed here ({install}); "
            f"a resumed run can continue without it: mopo-kit train --resume RUN --without-logger {logger}"
        )


class TensorBoardLogger:
    """Scalars to TensorBoard event files (``<run_dir>/tensorboard``); needs the tensorboard package."""

    @classmethod
    def check_available(cls) -> None:
        _require("tensorboard", "tensorboard", "pip install 'mopo-kit[tensorboard]'")

    def start(self, run_dir, config, name, group=None, job_type=None) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise MopoKitError("logger 'tensorboard' needs the tensorboard package (pip install 'mopo-kit[tensorboard]')") from None
        log_dir = Path(run_dir) / "tensorboard" if run_dir else None
        self._writer = SummaryWriter(log_dir=str(log_dir) if log_dir else None)
        self._writer.add_text("config", "```\n" + json.dumps(config, indent=2) + "\n```")

    def log(self, step: int, metrics: Mapping[str, Any]) -> None:
        for key, value in _scalars(metrics).items():
            self._writer.add_scalar(key, value, step)
        self._writer.flush()

    def finish(self, summary: Mapping[str, Any]) -> None:
        self._writer.close()


def _has_wandb_key() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    netrc = Path.home() / ".netrc"
    return netrc.exists() and "api.wandb.ai" in netrc.read_text(errors="ignore")


class WandbLogger:
    """Weights & Biases: config with component names, params and plugin versions; group/job_type for sweeps.

    Runs offline (files under ``<run_dir>/wandb``) when there is no API key or ``WANDB_MODE`` says so,
    so it never waits for a network that is not there.
    """

    @classmethod
    def check_available(cls) -> None:
        _require("wandb", "wandb", "pip install wandb")

    def __init__(self, project: str = "mopo-kit", entity: str | None = None, mode: str | None = None, tags: list[str] | None = None) -> None:
        self.project, self.entity, self.tags = project, entity, tags
        self.mode = mode or os.environ.get("WANDB_MODE") or ("online" if _has_wandb_key() else "offline")

    def start(self, run_dir, config, name, group=None, job_type=None) -> None:
        import wandb

        directory = Path(run_dir) if run_dir else Path.cwd()
        directory.mkdir(parents=True, exist_ok=True)
        settings = wandb.Settings(init_timeout=30, silent=True, console="off")
        self._run = wandb.init(
            project=self.project, entity=self.entity, name=name, group=group, job_type=job_type, tags=self.tags,
            config=dict(config), dir=str(directory), mode=self.mode, settings=settings, reinit="create_new",
        )

    def log(self, step: int, metrics: Mapping[str, Any]) -> None:
        self._run.log(_scalars(metrics), step=step)

    def finish(self, summary: Mapping[str, Any]) -> None:
        for key, value in _scalars(summary).items():
            self._run.summary[key] = value
        self._run.finish()


@hookimpl
def register_loggers(register) -> None:
    register("console", ConsoleLogger)
    register("jsonl", JsonLinesLogger)
    register("tensorboard", TensorBoardLogger)
    register("wandb", WandbLogger)
