"""The shared dynamics models of a sweep: one per dataset × seed, fitted once, used by every trial.

Estimators are compared on the same model only if every trial on a dataset × seed loads the very
same fit. This module owns that model's place (``SWEEP_DIR/dynamics/<dataset>-s<seed>``), its fit
(under a file lock, so concurrent trials wait instead of fitting it twice; per-epoch checkpoints in
``SWEEP_DIR/.fits``, so a killed fit continues) and fitting a whole sweep's models up front, in
parallel worker processes if asked (``mopo-kit sweep --models-only``). ``sweep.py`` schedules the
trials that use them.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import shutil
import signal
from dataclasses import asdict, is_dataclass
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

from mopo_kit.errors import MopoKitError, first_line
from mopo_kit.fileio import atomic_write_bytes
from mopo_kit.stop import StopRequested, die_with_parent, graceful_stop, signal_name, stop_requested

if TYPE_CHECKING:
    from mopo_kit.experiments.sweep import SweepSpec


def dataset_slug(dataset: Any) -> str:
    """A dataset (a name like ``hopper-mixed``, ``minari:…`` or a file path) as one file-name part."""
    return Path(str(dataset)).stem.replace(":", "_").replace("/", "_")


def shared_model_dir(sweep_dir: Path, point: Mapping[str, Any]) -> Path:
    """``SWEEP_DIR/dynamics/<dataset>-s<seed>``: the one model every trial on that dataset × seed uses."""
    return sweep_dir / "dynamics" / f"{dataset_slug(point['dataset'])}-s{point['seed']}"


def model_job(spec: "SweepSpec", sweep_dir: Path, point: Mapping[str, Any]) -> dict[str, Any]:
    """What a worker needs to fit the shared model of ``point``'s dataset × seed (plain, picklable)."""
    from mopo_kit.config import ComponentConfig

    base = ComponentConfig.parse(spec.base.get("dynamics", "gaussian_ensemble"), "dynamics")
    return {
        "dataset": str(point["dataset"]),
        "seed": int(point["seed"]),
        "type": base.type,
        "params": {**base.params, **spec.dynamics},
        "target": str(shared_model_dir(sweep_dir, point)),
        "reuse": [str(Path(directory).resolve()) for directory in spec.reuse_models],
    }


def check_reuse_dirs(directories: list[str]) -> None:
    """One line for a ``reuse_models`` entry that is not a directory (a typo would silently refit)."""
    for directory in directories:
        if not Path(directory).is_dir():
            raise MopoKitError(f"reuse_models: {directory} is not a directory (give sweep directories, or folders of model directories)")


def awaits_fit(job: Mapping[str, Any]) -> bool:
    """Whether a trial starting on ``job`` has to fit its shared model (minutes to hours) rather than
    find it stored or copy it from a reuse directory (seconds).

    The sweep's scheduler asks this of running trials: a free worker skips queued trials whose model
    a running trial is fitting, so as not to idle on the fit's lock — but a model being copied is
    no reason to skip, and skipping there put a new run ahead of a carried one for hours. A reuse
    directory holding a model of the target's name counts as a copy (``find_same_fit`` checks it
    when the trial starts; only where it differs does that trial fit after all, and a worker may
    then wait on its lock, as without this check).
    """
    from mopo_kit.dynamics.storage import is_dynamics_dir

    target = Path(job["target"])
    if is_dynamics_dir(target):
        return False
    roots = [Path(root) for root in job.get("reuse", ())]
    return not any(is_dynamics_dir(root / target.name) or is_dynamics_dir(root / "dynamics" / target.name) for root in roots)


def fit_checkpoint_path(target: Path) -> Path:
    """Where the shared model ``target``'s fit writes its per-epoch checkpoint (beside ``dynamics/``)."""
    return target.parent.parent / ".fits" / f"{target.name}.pt"


def fit_lock_path(target: Path) -> Path:
    """The file lock held while the shared model ``target`` is fitted (beside ``dynamics/``, which holds only models)."""
    return target.parent.parent / ".locks" / f"{target.name}.lock"


def ensure_shared_dynamics(job: Mapping[str, Any], say: Callable[[str], None] = lambda message: None) -> None:
    """Fit the shared model of ``job`` unless it exists; a file lock makes concurrent callers wait.

    The lock is held while fitting, so a second trial on the same model blocks until the first has
    saved it and then loads it; a fit killed midway leaves no model directory (saves are atomic),
    only its per-epoch checkpoint ``.fits/<model>.pt``, from which the next caller continues it.
    """
    import fcntl

    from mopo_kit.data.load import load_dataset
    from mopo_kit.dynamics.storage import fit_and_save, is_dynamics_dir
    from mopo_kit.plugins import get_registry

    target = Path(job["target"])
    if is_dynamics_dir(target):
        return
    lock_path, checkpoint = fit_lock_path(target), fit_checkpoint_path(target)
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if is_dynamics_dir(target):
            return
        from mopo_kit.device import resolve_device, with_device

        data = load_dataset(job["dataset"])
        registry = get_registry()
        device = resolve_device(job.get("device", "auto"))
        params = with_device(registry.get("dynamics", job["type"]).factory, {"seed": job["seed"], **job["params"]}, device)
        model = registry.create("dynamics", job["type"], obs_dim=data.obs_dim, act_dim=data.act_dim, **params)
        if job.get("reuse") and (source := find_same_fit(job, model, data)) is not None:
            copy_shared_model(source, target)
            checkpoint.unlink(missing_ok=True)  # a half-done fit of the same model is not needed any more
            say(f"reused the shared dynamics model {target.name} from {source} (same settings, same data)")
            return
        say(f"fitting the shared dynamics model {target.name} ({job['type']})")
        fit_and_save(model, data, job["type"], target, checkpoint=checkpoint, device=device, callback=_stop_after_fit_epoch)


def fit_settings(model: Any) -> dict[str, Any] | None:
    """Everything that decides a model's fit (seed, sizes, optimizer, epochs, fit precision), or None
    for a model that does not expose its settings as a dataclass ``config`` (then it is never reused:
    nothing could show that it is the model this sweep would fit)."""
    config = getattr(model, "config", None)
    return asdict(config) if is_dataclass(config) and not isinstance(config, type) else None


def find_same_fit(job: Mapping[str, Any], model: Any, data: Any) -> Path | None:
    """A stored model in ``job["reuse"]`` fitted with exactly ``model``'s settings on exactly ``data``.

    Candidates are the model directories in each reuse directory and in its ``dynamics/`` (a
    sweep's). One is the same fit when its type is the job's, its ``fit_report.json`` names the
    same data checksum and its stored settings equal those of the unfitted ``model`` built from the
    job — seed and epoch cap included. The device it was fitted on is not compared (its report
    keeps it): a model is shared so that every method meets the same one, and this is that model.
    """
    from mopo_kit.data.d4rl_io import arrays_checksum
    from mopo_kit.dynamics.storage import is_dynamics_dir, load_dynamics, stored_type

    wanted = fit_settings(model)
    if wanted is None:
        return None
    target = Path(job["target"]).resolve()
    checksum: str | None = None
    for root in map(Path, job["reuse"]):
        for report_path in sorted({*root.glob("*/fit_report.json"), *root.glob("dynamics/*/fit_report.json")}):
            candidate = report_path.parent
            if candidate.resolve() == target or not is_dynamics_dir(candidate):
                continue
            try:
                report = json.loads(report_path.read_text())
                if stored_type(candidate) != job["type"]:
                    continue
                checksum = checksum or arrays_checksum(data.arrays())
                if report.get("dataset_sha256") != checksum:
                    continue
                stored = load_dynamics(candidate, dims=(data.obs_dim, data.act_dim), device="cpu")
            except (MopoKitError, OSError, EOFError, ValueError, RuntimeError, pickle.UnpicklingError):  # unreadable JSON, truncated weights
                continue  # an unreadable candidate is not this model; the fit goes on as without it
            if fit_settings(stored) == wanted:
                return candidate
    return None


def copy_shared_model(source: Path, target: Path) -> None:
    """Copy the model directory ``source`` to ``target`` in one rename; its fit report says where from."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{target.name}.copy-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(source, staging)
    report_path = staging / "fit_report.json"
    report = json.loads(report_path.read_text())
    report["reused_from"] = str(source.resolve())
    atomic_write_bytes(report_path, json.dumps(report, indent=2).encode())
    os.replace(staging, target)


def _stop_after_fit_epoch(stats: Any) -> None:
    """Called after each fit epoch's checkpoint is written: a graceful stop ends the fit there."""
    from mopo_kit.stop import StopRequested, signal_name, stop_requested

    if (signum := stop_requested()) is not None:
        raise StopRequested(f"stopped by {signal_name(signum)} after shared-model fit epoch {stats.epoch}, fit checkpoint written", signum)


def fit_shared_dynamics(
    spec: "SweepSpec", sweep_dir: Path, say: Callable[[str], None], device: str | None = None, workers: int = 1, threads: int | None = None
) -> list[str]:
    """Fit (or find) every shared model of the sweep; returns the targets that failed, one line each.

    ``workers`` > 1 fits that many models at once in spawned processes (``threads`` torch threads
    each): on a GPU one ensemble's small kernels leave most of the device idle, so several fits
    share it well — e.g. fit a campaign's models on a lent GPU, then run its trials on CPUs.
    """
    check_reuse_dirs(spec.reuse_models)
    jobs: dict[str, dict[str, Any]] = {}
    for point in spec.trials():
        job = model_job(spec, sweep_dir, point)
        job["device"] = str(device or spec.base.get("device", "auto"))
        jobs.setdefault(job["target"], job)
    failures: list[str] = []
    if workers <= 1:
        for target, job in jobs.items():
            try:
                _fit_job(job, threads, say)
            except StopRequested:
                raise  # a graceful stop ends the whole run, not just this model
            except Exception as exc:
                failures.append(f"{Path(target).name}: {first_line(exc)}")
                say(f"failed {failures[-1]}")
        return failures
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=die_with_parent, initargs=(signal.SIGTERM, os.getpid())) as pool:
        futures = {pool.submit(_fit_job, job, threads): target for target, job in jobs.items()}
        pending, stopping = set(futures), False
        while pending:
            done, pending = wait(pending, timeout=1.0, return_when=FIRST_COMPLETED)
            if stop_requested() is not None and not stopping:
                # a graceful stop: pass it on (each fit drops its epoch in progress, its last whole
                # epoch's checkpoint stands) and start no other model, instead of waiting for every fit
                stopping = True
                for future in pending:
                    future.cancel()
                for process in list(getattr(pool, "_processes", {}).values()):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(process.pid, signal.SIGTERM)
            for future in done:
                name = Path(futures[future]).name
                if future.cancelled():
                    continue
                try:
                    future.result()
                except StopRequested:
                    say(f"stopped {name} (fit checkpoint written)")
                except Exception as exc:
                    if stopping:  # e.g. a worker that took the stop between two fits: it is gone, nothing was lost
                        say(f"stopped {name} ({first_line(exc)})")
                        continue
                    failures.append(f"{name}: {first_line(exc)}")
                    say(f"failed {failures[-1]}")
                else:
                    say(f"model {name} ready")
    if (signum := stop_requested()) is not None:
        raise StopRequested(f"model fits stopped by {signal_name(signum)}, each at its last fit checkpoint; rerun the same command to continue", signum)
    return failures


def _fit_job(job: Mapping[str, Any], threads: int | None, say: Callable[[str], None] = lambda message: None) -> None:
    """One shared model in this (possibly worker) process, with ``threads`` torch threads.

    In a worker, SIGTERM (passed on by :func:`fit_shared_dynamics`, or sent when it dies) stops the
    fit gracefully: within 16 minibatches, the epoch in progress dropped. In the caller's own
    process the caller's graceful stop already covers it."""
    if threads:
        import torch

        torch.set_num_threads(threads)
    with graceful_stop(signals=(signal.SIGTERM,)):
        ensure_shared_dynamics(job, say)
