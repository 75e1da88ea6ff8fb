"""The MOPO algorithm: compose the components, train, evaluate, checkpoint, resume.

    dataset ─fit─▶ dynamics T̂ ─▶ estimator u(s, a) ─▶ penalized MDP (r − λ·u, termination, starts)
                                                 └─▶ policy optimizer (SB3 SAC on real + model data)
    every epoch: ``steps_per_epoch`` gradient steps (rollouts on the optimizer's schedule), then
    deterministic episodes in the real environment; at the end the talk's bound η̂ − λ·ε.

Components are given by name (``{"type": name, "params": {...}}`` in :class:`MOPOConfig`) or as
objects (``MOPO(config, uncertainty=MyEstimator())``); either way they meet only here.

Devices: ``config.device`` is resolved here once. Factories that take a ``device`` keyword get
it (the ensemble, SAC; a plugin's only if its signature names it, so older plugins keep
working); a dynamics object that has ``to(device)`` is moved; the model MDP, start states and
replay buffer are built on it. Estimators compute on whatever device their inputs are on.
"""

from __future__ import annotations

import csv
import io
import json
import math
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from mopo_kit.config import MOPOConfig, default_horizon_and_lambda
from mopo_kit.data.actor import save_actor
from mopo_kit.data.dataset import TransitionDataset
from mopo_kit.data.d4rl_io import arrays_checksum
from mopo_kit.data.load import load_dataset
from mopo_kit.device import generator_on, resolve_device, with_device as _with_device
from mopo_kit.dynamics.storage import COMPONENT_FILE, dynamics_checksum, fit_and_save, is_dynamics_dir, load_dynamics
from mopo_kit.envs.model_env import ModelStep, PenalizedModelEnv, StartStates
from mopo_kit.envs.tasks import Task
from mopo_kit.dir_lock import directory_lock
from mopo_kit.errors import MopoKitError
from mopo_kit.evaluation import evaluate_in_env, model_bound
from mopo_kit.fileio import atomic_write_bytes
from mopo_kit.penalty_scale import PenaltyScale, penalty_scale
from mopo_kit.plugins import get_plugins, get_registry
from mopo_kit.precision import model_precision, resolve_precision
from mopo_kit.progress import progress_bar
from mopo_kit.run_check import check_run_dir
from mopo_kit.stop import StopRequested, signal_name, stop_requested

EpochCallback = Callable[[dict[str, Any]], None]


@dataclass
class MOPOResult:
    """What a finished run reports (also written to ``results.json``)."""

    last: dict[str, Any]
    best: dict[str, Any]
    bound: dict[str, Any]
    epochs: int
    gradient_steps: int
    seconds: float
    #: torch threads the run computed with: ``seconds`` means little without it, and the process
    #: that reports a run (a sweep's parent) may run with another count than its trial did
    torch_threads: int | None = None
    history: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "history"}


def infer_task_and_kind(data: TransitionDataset, spec: str, task_name: str | None) -> tuple[str, str | None]:
    """The task from the config, the dataset's metadata, or a ``<task>-<kind>`` name."""
    registry = get_registry()
    kind = data.metadata.get("kind")
    if task_name:
        return task_name, kind
    if data.metadata.get("task"):
        return str(data.metadata["task"]), kind
    stem = Path(spec).stem if spec.endswith((".hdf5", ".h5")) else spec
    head, _, tail = stem.partition("-")
    if ("task", head) in registry:
        return head, kind or (tail or None)
    raise MopoKitError(f"dataset '{spec}': cannot tell its task; set it with --task or the config key 'task'")


class MOPO:
    """A MOPO run: ``MOPO(config).fit(run_dir)``; components by name or object."""

    def __init__(
        self,
        config: MOPOConfig | None = None,
        *,
        dataset: TransitionDataset | None = None,
        task: Task | None = None,
        dynamics: Any | None = None,
        uncertainty: Any | None = None,
        policy: Any | None = None,
    ) -> None:
        self.config = config or MOPOConfig()
        self._objects = {"dataset": dataset, "task": task, "dynamics": dynamics, "uncertainty": uncertainty, "policy": policy}
        #: loggers of the config left out of this leg only (MOPO.resume(without_loggers=...)), e.g. on a
        #: machine without their package; the config keeps them, so a later resume logs again
        self._without_loggers: tuple[str, ...] = ()

    # ------------------------------------------------------------------------------ building
    def _check_names(self) -> None:
        """Fail on a misspelled component or a bad param before minutes of model fitting, not after."""
        registry = get_registry()
        resolve_device(self.config.device, flag="config key 'device' =")  # CUDA asked for but absent: one line, now
        for kind in ("dynamics", "uncertainty", "policy"):
            if self._objects[kind] is None:
                component = getattr(self.config, kind)
                params = component.params if kind == "uncertainty" else {"seed": self.config.seed, **component.params}
                registry.get(kind, component.type).check_params(params)
        for logger in self._active_loggers():
            factory = registry.get("logger", logger.type).factory
            if hasattr(factory, "check_available"):  # an optional package (wandb, tensorboard): missing is one line, now
                factory.check_available()
        early = self._task_from_name()
        if early is not None:  # the model pool's size needs only the task's dims and h
            task, kind = early
            horizon = self.config.horizon if self.config.horizon is not None else default_horizon_and_lambda(task.name, kind)[0]
            self._check_memory(task.obs_dim, task.act_dim, horizon, real_rows=0)

    def _task_from_name(self) -> tuple[Task, str | None] | None:
        """The task (and dataset kind) when the config or the dataset's name says it, without the data."""
        registry = get_registry()
        if self._objects["task"] is not None:
            return self._objects["task"], None
        spec = str(self.config.dataset)
        stem = Path(spec).stem if spec.endswith((".hdf5", ".h5")) else spec
        head, _, tail = stem.partition("-")
        name = self.config.task or (head if ("task", head) in registry else None)
        if name is None or ("task", name) not in registry:
            return None
        return registry.create("task", name), (tail or None)

    def _check_memory(self, obs_dim: int, act_dim: int, horizon: int, real_rows: int) -> None:
        """A setting whose buffers cannot fit is one line before any data, model or rollout (``mopo_kit.memory``)."""
        from mopo_kit.memory import check_fits

        if self._objects["policy"] is not None:
            return
        policy = self.config.policy
        estimate = getattr(get_registry().get("policy", policy.type).factory, "memory_estimate", None)
        if estimate is None:
            return
        items, hints = estimate(dict(policy.params), obs_dim=obs_dim, act_dim=act_dim, horizon=horizon, real_rows=real_rows)
        check_fits(items, resolve_device(self.config.device), hints)

    def _build(self, run_dir: Path | None) -> None:
        cfg = self.config
        self._saved_scale: PenaltyScale | None = getattr(self, "_saved_scale", None)
        registry = get_registry()
        self.device = resolve_device(cfg.device, flag="config key 'device' =")  # before any work
        self.precision = resolve_precision(cfg.precision, self.device)
        # the model's: under ``auto``, bf16 only where the run's penalty tolerates it (mopo_kit.precision)
        penalty = self._objects["uncertainty"] or registry.get("uncertainty", cfg.uncertainty.type).factory
        self.model_precision = model_precision(cfg.precision, self.device, [penalty])
        self._keep_saved_precision(run_dir)
        torch.manual_seed(cfg.seed)
        np.random.seed(cfg.seed)
        self.data = self._objects["dataset"] or load_dataset(cfg.dataset)
        self.dataset_sha256 = arrays_checksum(self.data.arrays())
        self._check_same_data(run_dir)
        task_obj = self._objects["task"]
        if task_obj is None:
            task_name, kind = infer_task_and_kind(self.data, cfg.dataset, cfg.task)
            task_obj = registry.create("task", task_name)
        else:
            kind = self.data.metadata.get("kind")
        self.task = task_obj
        if (self.data.obs_dim, self.data.act_dim) != (self.task.obs_dim, self.task.act_dim):
            raise MopoKitError(
                f"dataset '{cfg.dataset}' has obs/act dims ({self.data.obs_dim}, {self.data.act_dim}); task '{self.task.name}' expects ({self.task.obs_dim}, {self.task.act_dim})"
            )
        h, lam = default_horizon_and_lambda(self.task.name, kind)
        self.horizon = cfg.horizon if cfg.horizon is not None else h
        self.lam = cfg.lam if cfg.lam is not None else lam
        if cfg.kappa is not None and self._saved_scale is not None:
            self.lam = self._saved_scale.lam_for(cfg.kappa)
        self._check_memory(self.data.obs_dim, self.data.act_dim, self.horizon, real_rows=len(self.data))
        if run_dir is not None:
            # before the (long) model fit: a run killed inside it is a run ``--resume`` continues
            self._write_run_files(run_dir)

        self.dynamics = self._objects["dynamics"] or self._dynamics(run_dir)
        self._check_same_model(run_dir)
        if self._objects["dynamics"] is not None and callable(getattr(self.dynamics, "to", None)):
            self.dynamics.to(self.device)  # an object handed in computes where the run does
        if callable(getattr(self.dynamics, "set_precision", None)):  # a model without it computes as it does
            self.dynamics.set_precision(self.model_precision)
        if self._objects["uncertainty"] is not None:
            self.estimator = self._objects["uncertainty"]
        else:
            self.estimator = registry.create_on("uncertainty", cfg.uncertainty.type, cfg.uncertainty.params, self.device)
        self.estimator.fit(self.data, self.dynamics)
        self.penalty_scale: PenaltyScale | None = None
        if cfg.kappa is not None:
            self.penalty_scale = self._saved_scale or penalty_scale(
                self.data, self.dynamics, self.estimator, name=cfg.uncertainty.type, device=self.device
            )
            self.lam = self.penalty_scale.lam_for(cfg.kappa)
            if run_dir is not None:
                self._write_run_files(run_dir)  # the λ that κ resolved to, before any training
        self.model_step = ModelStep(self.dynamics, self.estimator, self.lam, self.task.termination_fn, generator_on(self.device, cfg.seed + 1), name=None if self._objects["uncertainty"] else cfg.uncertainty.type)
        self.starts = StartStates(self.data, generator_on(self.device, cfg.seed + 2))
        env = PenalizedModelEnv(self.model_step, self.data, self.horizon, action_space=self.task.make_env().action_space)
        params = dict(cfg.policy.params)
        params.setdefault("seed", cfg.seed)
        if self._objects["policy"] is None:
            params = _with_device(registry.get("policy", cfg.policy.type).factory, params, self.device)
        self.policy = self._objects["policy"] or registry.create("policy", cfg.policy.type, **params)
        self.policy.setup(env, self.model_step, self.starts, self.data, self.horizon)
        if callable(getattr(self.policy, "set_precision", None)):  # an optimizer without it computes as it does
            self.policy.set_precision(self.precision)

    def _keep_saved_precision(self, run_dir: Path | None) -> None:
        """A resumed ``auto`` run on a CPU keeps the precisions it resolved at its start, as a κ run keeps its λ.

        ``auto`` follows the machine; re-resolved on another CPU (one without bf16 units) it would
        change the run's arithmetic half-way without a word. Kept, the run computes as it began
        (bf16 runs on any CPU, slower without the units), and the difference is said. A run moved
        to a GPU (``--device cuda``) takes that device's ``auto`` (float32: bf16 is not measured
        there); the device change already restarted its random streams, and that is said too.
        """
        saved = getattr(self, "_saved_precision", None)
        here = (self.precision, self.model_precision)
        if self.config.precision != "auto" or saved is None or saved == here:
            return
        began = f"precision 'auto' resolved to SAC {saved[0]}, model {saved[1]} when this run started"
        if self.device.type != "cpu":
            print(f"mopo-kit: {run_dir}: {began}; on {self.device.type} it continues in SAC {here[0]}, model {here[1]} "
                  "(auto's choice there: bf16 is not measured on this device)", file=sys.stderr)
            return
        print(f"mopo-kit: {run_dir}: {began}; it continues so (this machine would pick {here[0]}, {here[1]} for a new run)", file=sys.stderr)
        self.precision, self.model_precision = saved

    def _check_same_data(self, run_dir: Path | None) -> None:
        """A resumed run must train on the data it started on: one line, before any work, if not.

        A named dataset is regenerated from its recipe on each machine, and another torch build
        (a lent GPU machine's) writes other floats; a file path may hold another file there. The
        run records its data's checksum at its start (``resolved.dataset_sha256``); a run started
        before it did is checked against its model's fit report, which names the data it was fit on.
        """
        if run_dir is None or not getattr(self, "_resuming", False):
            return
        expected, source = self._saved_dataset_sha256, "the run started on"
        if expected is None:
            fit_dir = Path(self.config.dynamics_dir) if self.config.dynamics_dir else run_dir / "dynamics"
            report = fit_dir / "fit_report.json"
            expected = json.loads(report.read_text()).get("dataset_sha256") if report.exists() else None
            source = "the run's model was fit on"
        if expected and expected != self.dataset_sha256:
            raise MopoKitError(
                f"{run_dir}: dataset '{self.config.dataset}' here has sha256 {self.dataset_sha256[:12]}…, not {expected[:12]}… as the data {source} "
                "(a named dataset regenerated by another torch build, or another file at that path); carry the run's data file "
                "and point MOPO_KIT_DATA at its folder, or continue the run where it started"
            )

    def _check_same_model(self, run_dir: Path | None) -> None:
        """A resumed run must continue on the model it started on: one line, before any training, if not.

        A run moved without its model (``mopo-kit pack --without-model``, a campaign's carried run)
        finds it fitted again on the other machine, and another torch build or CPU may fit other
        weights. The run records its model's checksum (``resolved.dynamics_sha256``,
        :func:`~mopo_kit.dynamics.storage.dynamics_checksum`) once the model is there; a run started
        before that record is checked against the checksum its move recorded, if any.
        """
        source = self._dynamics_source(run_dir)
        self.dynamics_sha256: str | None = dynamics_checksum(source) if source is not None else None
        if run_dir is None or self.dynamics_sha256 is None:
            return
        if getattr(self, "_resuming", False):
            expected, what = getattr(self, "_saved_dynamics_sha256", None), "the run started on"
            if expected is None:
                expected = next((m["dynamics_sha256"] for m in reversed(getattr(self, "_moves", [])) if m.get("dynamics_sha256")), None)
                what = "the run was packed with"
            if expected and expected != self.dynamics_sha256:
                raise MopoKitError(
                    f"{run_dir}: its dynamics model {source} has sha256 {self.dynamics_sha256[:12]}…, not {expected[:12]}… as the model {what} "
                    "(fitted again by another torch build or CPU); move the run with its model (mopo-kit pack without --without-model), "
                    "or continue it where it started"
                )
        self._write_run_files(run_dir)  # the record, before any training

    def _dynamics_source(self, run_dir: Path | None) -> Path | None:
        """The directory the run's model was loaded from or saved to; None for a model object handed in."""
        if self._objects["dynamics"] is not None:
            return None
        source = Path(self.config.dynamics_dir) if self.config.dynamics_dir else (run_dir / "dynamics" if run_dir else None)
        return source if source is not None and is_dynamics_dir(source) else None

    def _dynamics(self, run_dir: Path | None) -> Any:
        cfg = self.config
        registry = get_registry()
        source = Path(cfg.dynamics_dir) if cfg.dynamics_dir else (run_dir / "dynamics" if run_dir else None)
        if source is not None and is_dynamics_dir(source):
            return load_dynamics(source, dims=(self.data.obs_dim, self.data.act_dim), data_name=f"dataset '{cfg.dataset}'", device=self.device)
        if cfg.dynamics_dir:
            raise MopoKitError(f"{cfg.dynamics_dir}: not a dynamics model directory ({COMPONENT_FILE} missing)")
        factory = registry.get("dynamics", cfg.dynamics.type).factory
        params = _with_device(factory, {"seed": cfg.seed, **cfg.dynamics.params}, self.device)
        model = registry.create("dynamics", cfg.dynamics.type, obs_dim=self.data.obs_dim, act_dim=self.data.act_dim, **params)
        # a run killed while fitting continues the fit from its last epoch (``dynamics_fit.pt``)
        checkpoint = run_dir / "dynamics_fit.pt" if run_dir is not None else None
        target = run_dir / "dynamics" if run_dir is not None else None
        with progress_bar("fit dynamics", total=cfg.dynamics.params.get("max_epochs")) as bar:

            def progress(stats: Any) -> None:
                bar.update(description=f"dynamics epoch {stats.epoch}, holdout MSE {min(stats.holdout_mse):.4g}")
                bar.advance(1)
                if (signum := stop_requested()) is not None and checkpoint is not None:  # the epoch's fit checkpoint is written
                    raise StopRequested(f"stopped by {signal_name(signum)} after dynamics fit epoch {stats.epoch}, fit checkpoint written", signum)

            try:
                fit_and_save(model, self.data, cfg.dynamics.type, target, checkpoint=checkpoint, device=self.device, callback=progress)
            except StopRequested as exc:  # after an epoch, or within one (the ensemble drops it)
                if run_dir is None:  # nothing written to continue from
                    raise
                raise StopRequested(f"{exc}; continue with: mopo-kit train --resume {run_dir}", exc.signum) from None
        return model

    # ------------------------------------------------------------------------------ running
    def fit(self, run_dir: str | Path | None = None, *, resume: bool = False, callback: EpochCallback | None = None) -> MOPOResult:
        """Train for ``config.epochs`` epochs; with ``run_dir`` write config, metrics, checkpoints."""
        self._check_names()
        run = Path(run_dir) if run_dir is not None else None
        if run is None:
            return self._fit(None, resume, callback)
        run.mkdir(parents=True, exist_ok=True)
        with directory_lock(run, "a MOPO run"):  # one writer per run directory
            if not resume and (run / "checkpoint").exists():
                raise MopoKitError(f"{run}: already holds a run (use --resume to continue it, or another -o)")
            return self._fit(run, resume, callback)

    def _fit(self, run: Path | None, resume: bool, callback: EpochCallback | None) -> MOPOResult:
        cfg = self.config
        if run is not None and resume:
            recover_checkpoint(run)
        # read once, before _build rewrites config.json: a resumed κ run keeps the λ it started with,
        # an `auto` run its precisions, and a moved run (mopo_kit.experiments.pack) the record of its moves
        saved = _saved_run_record(run) if resume else {}
        self._saved_scale = _saved_penalty_scale(saved)
        self._saved_dataset_sha256: str | None = saved.get("resolved", {}).get("dataset_sha256")
        self._saved_dynamics_sha256: str | None = saved.get("resolved", {}).get("dynamics_sha256")
        self._resuming = bool(saved)
        self._saved_precision = _saved_precisions(saved)
        self._moves: list[dict[str, Any]] = list(saved.get("moves", []))
        saved_epoch = (checkpoint_epoch(run) or 0) if saved else 0
        self._extensions = _extensions(saved, cfg.epochs, saved_epoch)
        self._logger_gaps = _logger_gaps(saved, self._without_loggers, saved_epoch)
        if self._without_loggers:
            print(f"mopo-kit: {run}: continuing without logger(s) {', '.join(self._without_loggers)} from epoch "
                  f"{self._logger_gaps[-1]['from_epoch']} (--without-logger); the run's config keeps them for later resumes", file=sys.stderr)
        self._build(run)
        start_epoch, history, partial = 0, [], 0
        if run is not None:
            if resume and (run / "checkpoint" / "progress.json").exists():
                progress = json.loads((run / "checkpoint" / "progress.json").read_text())
                self.policy.load(run / "checkpoint")
                if refill := getattr(self.policy, "pool_refill_pending", 0):
                    # a checkpoint moved without its model pool: said, and recorded with the move
                    print(f"mopo-kit: {run}: checkpoint without its model pool (moved with mopo-kit pack); "
                          f"refilling it with {refill} fresh rollout(s) of the current policy: the run continues, not bit-exact", file=sys.stderr)
                    if self._moves:
                        self._moves[-1]["pool_refilled"] = {"rollouts": refill, "at_step": self.policy.num_steps}
                    self._write_run_files(run)
                start_epoch = int(progress["epoch"])
                partial = int(progress.get("partial_steps", 0))  # a graceful stop inside the next epoch
                history = [row for row in _read_jsonl(run / "metrics.jsonl") if row["epoch"] <= start_epoch]
            _write_metrics(run, history)
        loggers = self._start_loggers(run)
        best: dict[str, Any] | None = max((r for r in history if "return_mean" in r), key=lambda r: r["return_mean"], default=None)
        start = time.perf_counter()
        algorithm = "MBPO" if self.lam == 0 else "MOPO"  # λ·u = 0: no penalty is MBPO, whatever estimator is named
        with progress_bar(f"{algorithm} {self.task.name} ({cfg.uncertainty.type}, λ={self.lam})", total=cfg.epochs) as bar:
            bar.update(completed=start_epoch)
            last_return = next((r["return_mean"] for r in reversed(history) if "return_mean" in r), float("nan"))
            for epoch in range(start_epoch + 1, cfg.epochs + 1):
                t0 = time.perf_counter()
                self.model_step.context = f"at epoch {epoch}"  # named in a guard's error line
                before = self.policy.num_steps
                row: dict[str, Any] = {"epoch": epoch, **self.policy.learn(cfg.steps_per_epoch - partial)}
                made, partial = partial + self.policy.num_steps - before, 0
                if stop_requested() is not None:  # mid-epoch (or just at its end): keep what the updates did
                    self._stop(run, epoch - 1, made)
                row["gradient_steps"] = self.policy.num_steps
                if epoch % cfg.eval_every == 0 or epoch == cfg.epochs:
                    evaluation = evaluate_in_env(self.task, self.policy.predict, cfg.eval_episodes, seed=cfg.seed * 1000 + epoch)
                    row.update(evaluation.flat())
                    if best is None or row["return_mean"] > best["return_mean"]:
                        best = dict(row)
                row["epoch_seconds"] = round(time.perf_counter() - t0, 3)
                history.append(row)
                for logger in loggers:
                    logger.log(row["gradient_steps"], row)
                if run is not None:
                    _append_metrics(run, row)
                    if epoch % cfg.checkpoint_every == 0 or epoch == cfg.epochs:
                        self._checkpoint(run, epoch)
                if callback is not None:
                    callback(row)
                if stop_requested() is not None:  # during the evaluation: the epoch is whole
                    self._stop(run, epoch, 0, written=run is not None and (epoch % cfg.checkpoint_every == 0 or epoch == cfg.epochs))
                last_return = row.get("return_mean", last_return)
                rate = cfg.steps_per_epoch / max(row["epoch_seconds"], 1e-9)
                shown = "none yet" if math.isnan(last_return) else f"{last_return:.0f}"
                bar.update(description=f"{algorithm} epoch {epoch}, last evaluation {shown}, {rate:.0f} steps/s")
                bar.advance(1)
        bound = model_bound(self.policy.predict, self.model_step, self.starts, rollouts=cfg.bound_rollouts, horizon=cfg.bound_horizon or self.horizon)
        last_eval = next((r for r in reversed(history) if "return_mean" in r), {})
        result = MOPOResult(
            last=_eval_fields(last_eval),
            best=_eval_fields(best or {}),
            bound=bound.to_json(),
            epochs=cfg.epochs,
            gradient_steps=self.policy.num_steps,
            seconds=round(time.perf_counter() - start, 2),
            torch_threads=torch.get_num_threads(),
            history=history,
        )
        if run is not None:
            atomic_write_bytes(run / "results.json", json.dumps(result.to_json(), indent=2).encode())
        summary = {**{f"last_{k}": v for k, v in result.last.items()}, **{f"best_{k}": v for k, v in result.best.items()}, **result.bound}
        for logger in loggers:
            logger.finish(summary)
        return result

    @classmethod
    def resume(
        cls, run_dir: str | Path, callback: EpochCallback | None = None, *, epochs: int | None = None, device: str | None = None,
        without_loggers: tuple[str, ...] | list[str] = (),
    ) -> MOPOResult:
        """Continue a killed run from its last checkpoint (same config, same total steps).

        With ``epochs`` larger than the run's, a *finished* run is extended to that budget: it
        continues from its final checkpoint, keeps its metrics and rewrites ``results.json``.
        ``device`` overrides the saved config's (a run started on a GPU continues on a CPU-only
        machine; its random streams then restart, see :func:`mopo_kit.device.restore_generator`).
        ``without_loggers`` leaves those of the config's loggers out of this leg only (a lent GPU
        machine without W&B): said on stderr and recorded in ``config.json`` (``logger_gaps``);
        the run's own metrics files are complete either way.
        """
        run = Path(run_dir)
        if run.is_dir():
            recover_checkpoint(run)
        check_run_dir(run)  # a damaged checkpoint is one line, before any work
        config_path = run / "config.json"
        config = MOPOConfig.from_dict(json.loads(config_path.read_text())["config"])
        if epochs is not None:
            if epochs < config.epochs:
                raise MopoKitError(f"{run}: cannot shorten a run of {config.epochs} epochs to {epochs}")
            config.epochs = epochs
        if device is not None:
            config.device = device
            config.__post_init__()
        elif config.device.startswith("cuda") and not torch.cuda.is_available():
            # a run continued on a lent GPU and moved back: say how to continue it here
            raise MopoKitError(f"{config_path}: the run last ran on {config.device}, and CUDA is not available on this machine; "
                               "continue it here with --device cpu (or auto)")
        unknown = sorted(set(without_loggers) - {c.type for c in config.loggers})
        if unknown:
            raise MopoKitError(f"{config_path}: --without-logger {', '.join(unknown)}: the run has no such logger "
                               f"(its loggers: {', '.join(c.type for c in config.loggers) or 'none'})")
        mopo = cls(config)
        mopo._without_loggers = tuple(without_loggers)
        return mopo.fit(run, resume=True, callback=callback)

    # ------------------------------------------------------------------------------- files
    def _active_loggers(self) -> list[Any]:
        """The config's loggers this leg starts: all but those ``resume(without_loggers=...)`` leaves out."""
        return [c for c in self.config.loggers if c.type not in self._without_loggers]

    def _start_loggers(self, run: Path | None) -> list[Any]:
        cfg = self.config
        registry = get_registry()
        loggers = [registry.create("logger", c.type, **c.params) for c in self._active_loggers()]
        name = cfg.run_name or (run.name if run is not None else f"{self.task.name}-{cfg.uncertainty.type}-s{cfg.seed}")
        for logger in loggers:
            logger.start(run, self._run_payload(), name, group=cfg.group, job_type=cfg.job_type or cfg.uncertainty.type)
        return loggers

    def _run_payload(self) -> dict[str, Any]:
        return {
            "config": self.config.to_dict(),
            "resolved": {
                "task": self.task.name,
                "horizon": self.horizon,
                "lam": self.lam,
                "transitions": len(self.data),
                # the data this run trains on: a resume elsewhere must find the same (see _check_same_data)
                **({"dataset_sha256": self.dataset_sha256} if getattr(self, "dataset_sha256", None) else {}),
                # and the model it continues on (see _check_same_model); a record read from a resumed run is kept
                **({"dynamics_sha256": sha} if (sha := getattr(self, "dynamics_sha256", None) or getattr(self, "_saved_dynamics_sha256", None)) else {}),
                **({"precision": self.precision, "model_precision": self.model_precision} if hasattr(self, "model_precision") else {}),
                **({"kappa": self.config.kappa, "penalty_scale": scale.to_json()} if (scale := getattr(self, "penalty_scale", None) or getattr(self, "_saved_scale", None)) else {}),
            },
            "components": {
                kind: _component_owner(kind, getattr(self.config, kind).type, self._objects[kind])
                for kind in ("dynamics", "uncertainty", "policy")
            },
            "plugins": [{"name": p.name, "version": p.version} for p in get_plugins().plugins],
            **({"moves": self._moves} if getattr(self, "_moves", None) else {}),
            # legs run without some of the config's loggers (resume --without-logger): where their records have a gap
            **({"logger_gaps": self._logger_gaps} if getattr(self, "_logger_gaps", None) else {}),
            # a finished run extended to a larger budget (MOPO.resume(epochs=...)): the run's JSON can say
            # it continued a shorter run rather than started from scratch
            **({"extensions": self._extensions} if getattr(self, "_extensions", None) else {}),
        }

    def _write_run_files(self, run: Path) -> None:
        atomic_write_bytes(run / "config.json", json.dumps(self._run_payload(), indent=2).encode())

    def _stop(self, run: Path | None, epoch: int, partial_steps: int, *, written: bool = False) -> None:
        """A graceful stop (:mod:`mopo_kit.stop`): checkpoint after ``epoch`` whole epochs and
        ``partial_steps`` updates of the next, then raise :class:`StopRequested`."""
        signum = stop_requested() or signal.SIGTERM
        if run is not None and not written:
            self._checkpoint(run, epoch, partial_steps)
        where = f"epoch {epoch + 1} after {partial_steps} of {self.config.steps_per_epoch} steps" if partial_steps else f"after epoch {epoch}"
        resume = f"; continue with: mopo-kit train --resume {run}" if run is not None else ""
        raise StopRequested(f"stopped by {signal_name(signum)} in {where}, checkpoint written{resume}", signum)

    def _checkpoint(self, run: Path, epoch: int, partial_steps: int = 0) -> None:
        """Write the checkpoint beside the old one, then swap: a kill at any moment leaves one whole.

        The sequence is staging → (checkpoint → old) → (staging → checkpoint) → remove old; a kill
        between the two renames leaves only ``checkpoint.old``, which :func:`recover_checkpoint`
        puts back before a resume.
        """
        checkpoint = run / "checkpoint"
        staging = run / "checkpoint.tmp"
        recover_checkpoint(run)
        if staging.exists():
            _rmtree(staging)
        self.policy.save(staging)
        progress = {"epoch": epoch, "gradient_steps": self.policy.num_steps, **({"partial_steps": partial_steps} if partial_steps else {})}
        atomic_write_bytes(staging / "progress.json", json.dumps(progress).encode())
        if hasattr(self.policy, "actor_state_dict"):
            save_actor(self.policy.actor_state_dict(), run / "policy.pt", {"task": self.task.name, "epoch": epoch})
        old = run / "checkpoint.old"
        if checkpoint.exists():
            checkpoint.rename(old)
        staging.rename(checkpoint)
        if old.exists():
            _rmtree(old)


def _saved_run_record(run_dir: Path | None) -> dict[str, Any]:
    """A run's ``config.json`` as its start wrote it, read once per resume ({} for a run without one).

    Read before ``_build`` rewrites the file: what the run resolved at its start (κ's scale, the
    precisions) and the record of its moves (``mopo-kit pack``) must outlive the rewrite."""
    path = run_dir / "config.json" if run_dir is not None else None
    if path is None or not path.exists():
        return {}
    return dict(json.loads(path.read_text()))


def _extensions(record: dict[str, Any], epochs: int, at_epoch: int) -> list[dict[str, int]]:
    """The budgets a run was extended through: the saved ones, and this resume's if it asks for
    more epochs than the run was started (or last extended) with, with the epoch its checkpoint
    held then (``at_epoch`` below ``from_epochs``: raised before the shorter budget finished). A
    resume of a killed extension finds the larger budget already written, so it adds nothing."""
    extensions = list(record.get("extensions", []))
    started = record.get("config", {}).get("epochs")
    if started is not None and epochs > int(started):
        extensions.append({"from_epochs": int(started), "to_epochs": int(epochs), "at_epoch": int(at_epoch)})
    return extensions


def _logger_gaps(record: dict[str, Any], without: tuple[str, ...], at_epoch: int) -> list[dict[str, Any]]:
    """The legs a run ran without some of its loggers: the saved ones, and this resume's (once,
    also when a killed leg is resumed the same way)."""
    gaps = list(record.get("logger_gaps", []))
    leg = {"left_out": sorted(without), "from_epoch": int(at_epoch)}
    if without and leg not in gaps:
        gaps.append(leg)
    return gaps


def checkpoint_epoch(run: Path | None) -> int | None:
    """The whole epochs a run's checkpoint holds, None without one (call :func:`recover_checkpoint` first
    where a kill may have fallen between its two renames)."""
    progress = run / "checkpoint" / "progress.json" if run is not None else None
    return int(json.loads(progress.read_text()).get("epoch", 0)) if progress is not None and progress.exists() else None


def _saved_penalty_scale(record: dict[str, Any]) -> PenaltyScale | None:
    """The scale a run resolved κ with: a resume keeps its λ to the bit."""
    saved = record.get("resolved", {}).get("penalty_scale")
    return PenaltyScale(**saved) if saved else None  # the config (hence the estimator) is the run's own


def _saved_precisions(record: dict[str, Any]) -> tuple[str, str] | None:
    """The (SAC, model) precisions a run resolved at its start; None before they were recorded."""
    resolved = record.get("resolved", {})
    if "precision" not in resolved or "model_precision" not in resolved:
        return None
    return str(resolved["precision"]), str(resolved["model_precision"])


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path)


def recover_checkpoint(run: Path) -> None:
    """Undo what a kill in the middle of :meth:`MOPO._checkpoint` left behind.

    ``checkpoint`` missing but ``checkpoint.old`` present: the kill fell between the two renames,
    and ``old`` is the last whole checkpoint. Both present: the kill fell while ``old`` was being
    removed, and ``old`` is stale.
    """
    checkpoint, old = run / "checkpoint", run / "checkpoint.old"
    if not old.exists():
        return
    if checkpoint.exists():
        _rmtree(old)
    else:
        old.rename(checkpoint)


def _component_owner(kind: str, name: str, obj: Any = None) -> dict[str, str]:
    """Which plugin (and version) provided a component; objects passed in are named by class."""
    if obj is not None:
        cls = type(obj)
        return {"name": f"{cls.__module__}.{cls.__qualname__}", "plugin": "(object)", "version": ""}
    registry = get_registry()
    if (kind, name) not in registry:
        return {"name": name, "plugin": "(object)", "version": ""}
    comp = registry.get(kind, name)
    return {"name": name, "plugin": comp.plugin, "version": comp.version}


def _eval_fields(row: dict[str, Any]) -> dict[str, Any]:
    keys = ("epoch", "return_mean", "return_std", "normalized_mean", "normalized_std", "length_mean", "gradient_steps")
    return {k: row[k] for k in keys if k in row}


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Rows of a JSONL file; a last line cut short by a kill mid-append is dropped, not fatal."""
    if not path.exists():
        return []
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    rows = []
    for i, line in enumerate(lines):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if i < len(lines) - 1:
                raise MopoKitError(f"{path}: line {i + 1} is not valid JSON") from None
    return rows


def _write_metrics(run: Path, rows: list[dict[str, Any]]) -> None:
    atomic_write_bytes(run / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in rows).encode())
    _write_csv(run, rows)


def _append_metrics(run: Path, row: dict[str, Any]) -> None:
    with (run / "metrics.jsonl").open("a") as handle:
        handle.write(json.dumps(row) + "\n")
    _write_csv(run, _read_jsonl(run / "metrics.jsonl"))


def _write_csv(run: Path, rows: list[dict[str, Any]]) -> None:
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()})
    atomic_write_bytes(run / "metrics.csv", buffer.getvalue().encode())
