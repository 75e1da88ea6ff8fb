"""Penalty ablations: a grid of MOPO trials from one file, run in a local process pool.

A sweep file (TOML, YAML or JSON) declares the grid and the budget::

    name = "penalty-ablation"
    [grid]                      # every combination is one trial
    dataset = ["halfcheetah-random"]
    uncertainty = ["max_aleatoric", "wasserstein", "zero"]
    lam = [0.5]                 # or kappa = [...]: one penalty size for every estimator
    horizon = [5]
    seed = [0, 1]
    [base]                      # MOPOConfig fields shared by all trials
    epochs = 20
    [dynamics]                  # params of the one model fitted per dataset × seed
    max_epochs = 30

One dynamics model is fitted per dataset × seed (``SWEEP_DIR/dynamics/...``) and reused by every
trial on it, so estimators are compared on the same model. The first trial that needs a model fits
it inside its worker (under a file lock, so a second trial waits instead of fitting it again), and
trials are dispatched so that concurrent workers start on *different* models: model fits run in
parallel and results arrive from the first minutes of a long sweep, not after every model is fit.
Trials run in a process pool sized to the cores (each with cores / workers torch threads); groups
are ordered seed-major, so one full seed of the grid finishes before the next starts (dataset-major
where the spec says its datasets' order is a priority), and trials with a checkpoint go first.

A finished trial (``results.json``) is skipped and a killed one resumes from its checkpoint, so
rerunning the command continues a sweep; a finished trial whose file now asks for more epochs is
*extended* by resuming it to the new budget. With W&B, trials share the sweep's name as *group*
and the estimator as *job type*.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
from collections import deque
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import tomllib

from mopo_kit.errors import MopoKitError, first_line
from mopo_kit.experiments.shared_models import awaits_fit, check_reuse_dirs, dataset_slug, ensure_shared_dynamics, fit_shared_dynamics, model_job, shared_model_dir
from mopo_kit.stop import StopRequested, die_with_parent, graceful_stop, signal_name, stop_requested

GRID_KEYS = ("dataset", "uncertainty", "lam", "kappa", "horizon", "seed")


@dataclass
class SweepSpec:
    """A parsed sweep file."""

    name: str
    grid: dict[str, list[Any]]
    base: dict[str, Any] = field(default_factory=dict)
    dynamics: dict[str, Any] = field(default_factory=dict)
    #: Explicit grid points instead of the product of ``grid`` (from Python only): a study whose
    #: values differ per cell, e.g. κ values derived from each dataset's own model.
    points: list[dict[str, Any]] | None = None
    #: W&B group per dataset (``<name>/<dataset>``) instead of one group for the whole sweep
    group_by_dataset: bool = False
    #: Other sweeps' directories (or folders of model directories) whose shared models this sweep
    #: takes instead of fitting them again, where one is the same fit: same type, settings, seed
    #: and data checksum (:func:`~mopo_kit.experiments.shared_models.find_same_fit`). Two studies
    #: on one model compare seed for seed, and the fit's compute is spent once.
    reuse_models: list[str] = field(default_factory=list)
    #: Dispatch dataset-major (every seed of the first dataset, then the next) instead of
    #: seed-major: for a campaign whose cells have a priority and whose runs take hours each.
    dataset_major: bool = False

    @classmethod
    def from_file(cls, path: str | Path) -> "SweepSpec":
        path = Path(path)
        if not path.exists():
            raise MopoKitError(f"{path}: sweep file not found")
        text = path.read_text()
        try:
            if path.suffix in (".yaml", ".yml"):
                import yaml

                data = yaml.safe_load(text)
            elif path.suffix == ".json":
                data = json.loads(text)
            else:
                data = tomllib.loads(text)
        except Exception as exc:  # both parsers raise their own error types
            raise MopoKitError(f"{path}: not a valid sweep file ({type(exc).__name__}: {exc})") from None
        if not isinstance(data, dict) or not isinstance(data.get("grid"), dict):
            raise MopoKitError(f"{path}: a sweep file needs a [grid] table")
        unknown = sorted(set(data) - {"name", "grid", "base", "dynamics", "reuse_models"})
        if unknown:
            raise MopoKitError(f"{path}: unknown top-level key(s) {', '.join(unknown)} (known: name, grid, base, dynamics, reuse_models)")
        reuse = data.get("reuse_models", [])
        reuse = [reuse] if isinstance(reuse, str) else reuse
        if not isinstance(reuse, list) or not all(isinstance(entry, str) for entry in reuse):
            raise MopoKitError(f"{path}: reuse_models must be a list of directories, got {reuse!r}")
        grid = {k: v if isinstance(v, list) else [v] for k, v in data["grid"].items()}
        bad = sorted(set(grid) - set(GRID_KEYS))
        if bad:
            raise MopoKitError(f"{path}: grid key(s) {', '.join(bad)} not supported (grid over: {', '.join(GRID_KEYS)})")
        if "dataset" not in grid or "uncertainty" not in grid:
            raise MopoKitError(f"{path}: the grid needs at least 'dataset' and 'uncertainty'")
        if "lam" in grid and "kappa" in grid:
            raise MopoKitError(f"{path}: the grid sets both 'lam' and 'kappa': give one (kappa sets each trial's λ from its model and data)")
        return cls(
            name=str(data.get("name", path.stem)), grid=grid, base=dict(data.get("base", {})), dynamics=dict(data.get("dynamics", {})), reuse_models=reuse
        )

    def trials(self) -> list[dict[str, Any]]:
        """Every grid point as {key: value} (seed defaults to 0): ``points`` when given, else the product of ``grid``."""
        keys = [k for k in GRID_KEYS if k in self.grid]
        if self.points is not None:
            points = [{k: point[k] for k in GRID_KEYS if k in point} for point in self.points]
        else:
            points = [dict(zip(keys, values)) for values in itertools.product(*(self.grid[k] for k in keys))]
        for point in points:
            point.setdefault("seed", self.base.get("seed", 0))
        return points


def trial_id(point: Mapping[str, Any]) -> str:
    """A readable, file-system-safe id: dataset__uncertainty__lam__h__seed."""
    dataset = dataset_slug(point["dataset"])
    parts = [dataset, str(point["uncertainty"])]
    if "lam" in point:
        parts.append(f"lam{point['lam']}")
    if "kappa" in point:
        parts.append(f"kappa{point['kappa']}")
    if "horizon" in point:
        parts.append(f"h{point['horizon']}")
    parts.append(f"s{point['seed']}")
    return "__".join(parts)


def dispatch_order(points: list[dict[str, Any]], workers: int, dataset_major: bool = False) -> list[dict[str, Any]]:
    """Trials ordered so that ``workers`` concurrent workers start on different shared models.

    Groups (dataset × seed) go seed-major in grid order (``dataset_major``: every seed of a
    dataset before the next dataset); each run of ``workers`` groups is interleaved (g0 t0, g1 t0,
    g0 t1, g1 t1, ...), so the first trials of a run fit their models in parallel and the later ones
    find them fitted.
    """
    groups: dict[tuple[int, str], list[dict[str, Any]]] = {}
    datasets = list(dict.fromkeys(str(p["dataset"]) for p in points))
    for point in points:
        groups.setdefault((int(point["seed"]), str(point["dataset"])), []).append(point)
    rank = (lambda k: (datasets.index(k[1]), k[0])) if dataset_major else (lambda k: (k[0], datasets.index(k[1])))
    ordered = [groups[key] for key in sorted(groups, key=rank)]
    result: list[dict[str, Any]] = []
    for start in range(0, len(ordered), max(1, workers)):
        batch = ordered[start : start + max(1, workers)]
        for column in itertools.zip_longest(*batch):
            result += [p for p in column if p is not None]
    return result


def next_startable(queue: deque[Any], fitting: set[str]) -> int:
    """Index in ``queue`` (items ``(point, config, run_dir, job)``) of the trial to start next.

    The first trial whose shared model no running trial is fitting: one that waits on a running
    fit holds its worker idle on the fit's lock for the whole fit, while a later trial on another
    model (fitted already, or one it fits itself) uses the worker at once — so two workers starting
    on a new seed fit two models in parallel whatever the queue's order. The queue's order is kept
    otherwise; when every queued trial waits on a running fit, the first starts (and waits).
    """
    for index, item in enumerate(queue):
        job = item[3]
        if job is None or job["target"] not in fitting:
            return index
    return 0


def fitting_targets(running_jobs: Iterable[Mapping[str, Any]]) -> set[str]:
    """The shared models that running trials (their model jobs) are fitting, for :func:`next_startable`:
    a model stored already, or copied from a reuse directory (a carried one), is no fit to wait out."""
    return {str(job["target"]) for job in running_jobs if awaits_fit(job)}


def plan_trials(
    spec: SweepSpec,
    sweep_dir: Path,
    workers: int,
    skip: Callable[[dict[str, Any]], str | None] | None = None,
    say: Callable[[str], None] = lambda message: None,
) -> list[tuple[dict[str, Any], str]]:
    """The grid points that need a run, with their :func:`trial_status`, in dispatch order.

    Ordered *after* leaving out what needs no run (finished here, or ``skip``ped), so that
    concurrent workers still start on different shared models. Trials with a checkpoint
    (``resume``) go first — of the whole plan, or of their dataset where the spec is
    ``dataset_major`` (its cell order is a priority) — keeping dispatch order otherwise: their
    earlier epochs are paid for, and under the seed-major order alone a restarted long campaign
    would park a half-done run of a later seed behind new runs of other datasets for hours (stage
    4's walker2d-mixed seed 2 sat behind hopper- and halfcheetah-mixed seed 0 that way).
    """
    epochs = int(spec.base.get("epochs", 1000))
    to_run: list[dict[str, Any]] = []
    statuses: dict[str, str] = {}
    for point in spec.trials():
        run_dir = sweep_dir / "trials" / trial_id(point)
        reason = skip(point) if skip is not None else None
        status = "finished" if reason else trial_status(run_dir, epochs)
        if status == "finished":
            say(f"skip {run_dir.name} ({reason or 'finished'})")
        else:
            to_run.append(point)
            statuses[run_dir.name] = status
    ordered = dispatch_order(to_run, workers, spec.dataset_major)
    datasets = list(dict.fromkeys(str(p["dataset"]) for p in ordered))
    cell = (lambda point: datasets.index(str(point["dataset"]))) if spec.dataset_major else (lambda point: 0)
    ordered.sort(key=lambda point: (cell(point), statuses[trial_id(point)] != "resume"))  # stable: dispatch order kept otherwise
    for point in ordered:
        if statuses[trial_id(point)] == "extend":
            say(f"extend {trial_id(point)} to {epochs} epochs")
    return [(point, statuses[trial_id(point)]) for point in ordered]


def trial_status(run_dir: Path, epochs: int) -> str:
    """``finished``, ``extend`` (finished at fewer epochs than asked), ``resume`` or ``new``."""
    from mopo_kit.mopo import recover_checkpoint

    if run_dir.exists():
        recover_checkpoint(run_dir)
    if (run_dir / "results.json").exists():
        return "finished" if finished_epochs(run_dir) >= epochs else "extend"
    if (run_dir / "checkpoint" / "progress.json").exists():
        return "resume"
    return "new"


def finished_epochs(run_dir: Path) -> int:
    """Epochs of the trial's last finished training (0 if it never finished); reads only."""
    results = run_dir / "results.json"
    return int(json.loads(results.read_text()).get("epochs", 0)) if results.exists() else 0


def _trial_config(spec: SweepSpec, sweep_dir: Path, point: Mapping[str, Any], wandb: bool) -> dict[str, Any]:
    config = {**spec.base, **{k: v for k, v in point.items()}}
    config["dynamics_dir"] = str(shared_model_dir(sweep_dir, point))
    config["group"] = f"{spec.name}/{Path(str(point['dataset'])).stem}" if spec.group_by_dataset else spec.name
    config["run_name"] = trial_id(point)
    loggers = list(config.get("loggers", []))
    if wandb and "wandb" not in [l if isinstance(l, str) else l.get("type") for l in loggers]:
        loggers.append("wandb")
    config["loggers"] = loggers
    return config


def _run_trial(config: dict[str, Any], run_dir: str, threads: int, job: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """One trial in a worker process: fit its shared model if needed, then run, resume or extend."""
    import torch

    from mopo_kit.config import MOPOConfig
    from mopo_kit.mopo import MOPO

    torch.set_num_threads(threads)
    os.environ.setdefault("MOPO_KIT_QUIET", "1")
    # in a worker process: SIGTERM (forwarded by the sweep, or sent when it dies) stops the trial
    # after its current update with a checkpoint; in the sweep's own process this is a no-op
    parent = os.getppid()
    try:
        with graceful_stop(signals=(signal.SIGTERM,)):
            if job is not None:
                ensure_shared_dynamics(job)
            run = Path(run_dir)
            if trial_status(run, int(config.get("epochs", MOPOConfig.epochs))) != "new":
                # the sweep's device, not the one saved in the trial: a trial continued on a lent GPU
                # and moved back (mopo-kit pack) says cuda, and continues here on what a new trial gets
                device = config.get("device", MOPOConfig.device)
                result = MOPO.resume(run, epochs=int(config.get("epochs", MOPOConfig.epochs)), device=device)
            else:
                result = MOPO(MOPOConfig.from_dict(config)).fit(run)
    except StopRequested as exc:
        if os.getppid() != parent:
            # the sweep died (its death signal stopped us): the checkpoint is written, and nobody
            # will read this result — back in the pool's loop the worker would wait for tasks forever
            os._exit(exc.exit_code)
        raise
    return {"run_dir": run_dir, "last": result.last, "best": result.best}


def run_sweep(
    spec: SweepSpec,
    sweep_dir: Path,
    *,
    workers: int | None = None,
    wandb: bool = False,
    backend: str = "local",
    address: str | None = None,
    say: Callable[[str], None] = lambda message: None,
    on_trial_done: Callable[[dict[str, Any]], None] | None = None,
    device: str | None = None,
    skip: Callable[[dict[str, Any]], str | None] | None = None,
    threads: int | None = None,
    refill: Callable[[set[str]], list[dict[str, Any]]] | None = None,
) -> list[dict[str, Any]]:
    """Run every unfinished trial of ``spec`` into ``sweep_dir/trials``; returns their summaries.

    ``on_trial_done(summary)`` is called in this process as each trial finishes (e.g. to publish
    its result at once, so a campaign killed hours later loses nothing that had finished).

    ``backend="local"``: a process pool on this machine. ``backend="ray"``: the same trials as Ray
    Tune trials, on a local Ray instance or the cluster at ``address`` (``pip install
    'mopo-kit[ray]'``; the sweep directory must then be on storage every node can reach).

    ``device`` (default: the spec's ``device`` key, else "auto") is where every trial and shared
    model computes; trials in parallel workers share it.

    ``threads``: torch threads per trial (default: cores / workers; set it when other work shares
    the machine, e.g. two campaigns with one worker each on 2 cores).

    ``skip(point)`` returns a reason to leave a grid point out (e.g. a campaign whose result for it
    is already published, from another machine or an earlier sweep directory), else None. It is
    asked again as each trial is about to start (on Ray: in the trial's worker, so ``skip`` must
    pickle), so a result published meanwhile elsewhere (a GPU call running some of the same
    trials) is not run twice. Both backends call ``on_trial_done`` as each trial finishes (Ray: from
    a Tune callback in this process).

    ``refill(seen)`` (local backend): asked after each trial ends and whenever the queue runs dry,
    with the ids of every trial this call has queued so far. The points it returns go to the *front*
    of the queue in the order returned — the new ones (unfinished, not skipped) and the queued ones
    alike, so the order is the study's priority (e.g. the rest of a cell nearly done before the next
    cell's first runs) — behind only the queued trials that hold a checkpoint (a killed sweep's
    half-done runs resume first); queued trials it does not name keep their order behind. A study
    whose next runs depend on results (report seeds once tuning has picked κ) so keeps both
    workers busy without waiting for a batch to drain.
    """
    if backend not in ("local", "ray"):
        raise MopoKitError(f"unknown sweep backend '{backend}' (choose local or ray)")
    sweep_dir = sweep_dir.resolve()
    sweep_dir.mkdir(parents=True, exist_ok=True)
    from mopo_kit.dir_lock import directory_lock

    with directory_lock(sweep_dir, "a sweep"):  # one sweep process per directory (its trials lock their own)
        return _run_sweep_locked(spec, sweep_dir, workers, wandb, backend, address, say, on_trial_done, device, skip, threads, refill)


def _run_sweep_locked(
    spec: SweepSpec,
    sweep_dir: Path,
    workers: int | None,
    wandb: bool,
    backend: str,
    address: str | None,
    say: Callable[[str], None],
    on_trial_done: Callable[[dict[str, Any]], None] | None,
    device: str | None,
    skip: Callable[[dict[str, Any]], str | None] | None,
    threads: int | None,
    refill: Callable[[set[str]], list[dict[str, Any]]] | None = None,
) -> list[dict[str, Any]]:
    check_reuse_dirs(spec.reuse_models)
    record = {"name": spec.name, "grid": spec.grid, "base": spec.base, "dynamics": spec.dynamics}
    (sweep_dir / "sweep.json").write_text(json.dumps({**record, **({"reuse_models": spec.reuse_models} if spec.reuse_models else {})}, indent=2))
    if wandb:
        os.environ.setdefault("WANDB_DIR", str(sweep_dir))
    cores = os.cpu_count() or 1
    workers = max(1, min(workers or cores, cores))
    threads = max(1, threads or cores // workers)
    def prepare(point: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], str, dict[str, Any]]:
        run_dir = sweep_dir / "trials" / trial_id(point)
        config, job = _trial_config(spec, sweep_dir, point, wandb), model_job(spec, sweep_dir, point)
        if device is not None:
            config["device"] = device
        job["device"] = str(config.get("device", "auto"))
        return point, config, str(run_dir), job

    pending = [prepare(point) for point, _status in plan_trials(spec, sweep_dir, workers, skip, say)]
    seen = {trial_id(point) for point in spec.trials()}
    say(f"{len(pending)} trial(s) to run on {workers} worker(s) × {threads} thread(s) ({backend})")
    if backend == "ray":
        model_failures = fit_shared_dynamics(spec, sweep_dir, say, device)
        if model_failures:
            raise MopoKitError(f"{len(model_failures)} shared model(s) could not be fitted; first: {model_failures[0]}")
        return _run_on_ray(spec, sweep_dir, [(p, c, r) for p, c, r, _ in pending], threads, address, say, skip, on_trial_done)
    summaries: list[dict[str, Any]] = []
    failures: list[str] = []

    def finished(summary: dict[str, Any]) -> None:
        summaries.append(summary)
        say(f"done {Path(summary['run_dir']).name}")
        if on_trial_done is not None:
            on_trial_done(summary)

    def failed(run_dir: str, exc: BaseException) -> None:
        """A failing trial is reported in one line; the others go on (its checkpoint stays)."""
        failures.append(f"{Path(run_dir).name}: {first_line(exc)}")
        say(f"failed {failures[-1]}")

    def still_needed(point: dict[str, Any]) -> bool:
        """Asked as a trial is about to start: its result may have been published since the plan."""
        reason = skip(point) if skip is not None else None
        if reason:
            say(f"skip {trial_id(point)} ({reason}, since this sweep started)")
        return not reason

    queue = deque(pending)
    epochs = int(spec.base.get("epochs", 1000))

    def top_up() -> None:
        """Put the points of ``refill`` first in the queue, in its order (see the docstring)."""
        if refill is None or stop_requested() is not None:
            return
        new = []
        try:
            points = refill(set(seen))
        except StopRequested:  # a stop during the refill's own work (e.g. a model fit, checkpointed):
            return  # the loop passes it on to the running trials
        for point in points:
            tid = trial_id(point)
            if tid in seen:
                continue
            seen.add(tid)
            reason = skip(point) if skip is not None else None
            if reason or trial_status(sweep_dir / "trials" / tid, epochs) == "finished":
                continue
            new.append(prepare(point))
        if new:
            say(f"queued {len(new)} more trial(s) first: {', '.join(trial_id(p) for p, *_ in new[:3])}{' …' if len(new) > 3 else ''}")
            pending.extend(new)
        rank = {trial_id(point): i for i, point in reversed(list(enumerate(points)))}
        # ... after the queued trials that hold a checkpoint: their progress is work already paid
        # for, and a study's next points may wait on their results
        resumable = [item for item in queue if trial_status(Path(item[2]), epochs) in ("resume", "extend")]
        rest = [item for item in [*new, *queue] if not any(item is other for other in resumable)]
        rest.sort(key=lambda item: rank.get(trial_id(item[0]), len(rank)))  # stable: unnamed ones keep their order
        queue.clear()
        queue.extend([*resumable, *rest])

    top_up()
    if workers == 1:
        while queue:
            point, config, run_dir, job = queue.popleft()
            if not still_needed(point):
                continue
            try:
                ensure_shared_dynamics(job, say)
                finished(_run_trial(config, run_dir, threads, job))
            except StopRequested:
                raise
            except Exception as exc:  # any trial's failure, a plugin's included: report, go on
                failed(run_dir, exc)
            top_up()
    else:
        import multiprocessing

        # spawn, not fork: forking a process whose torch/OpenMP threads are running can deadlock.
        # A trial worker gets SIGTERM when the sweep dies (kill PID, not only Ctrl-C): it stops after
        # its update with a checkpoint instead of running on orphaned, writing into trial
        # directories that the rerun sweep resumes at the same time.
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=die_with_parent, initargs=(signal.SIGTERM, os.getpid())) as pool:
            running: dict[Any, str] = {}
            models: dict[Any, dict[str, Any]] = {}  # running future → its shared model's job

            def start_next() -> None:
                """Keep every worker busy, in dispatch order, with trials still needed — skipping
                over those whose shared model a running trial is still fitting (:func:`next_startable`)."""
                while queue and len(running) < workers:
                    fitting = fitting_targets(job for future, job in models.items() if future in running)
                    index = next_startable(queue, fitting)
                    point, config, run_dir, job = queue[index]
                    del queue[index]
                    if still_needed(point):
                        future = pool.submit(_run_trial, config, run_dir, threads, job)
                        running[future] = run_dir
                        if job is not None:
                            models[future] = job

            start_next()
            stopping = False
            while running:
                done, _ = wait(running, timeout=1.0, return_when=FIRST_COMPLETED)
                if stop_requested() is not None and not stopping:  # graceful stop: pass it on, start nothing new
                    stopping = True
                    queue.clear()
                    say(f"stopping: {len(running)} running trial(s) write their checkpoints")
                    for process in list(getattr(pool, "_processes", {}).values()):
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(process.pid, signal.SIGTERM)
                for future in done:
                    run_dir = running.pop(future)
                    models.pop(future, None)
                    try:
                        summary = future.result()
                    except StopRequested:
                        say(f"stopped {Path(run_dir).name} (checkpoint written)")
                    except Exception as exc:
                        failed(run_dir, exc)
                    else:
                        finished(summary)
                if not stopping:
                    if done or (not queue and len(running) < workers):
                        top_up()
                    start_next()
    if (signum := stop_requested()) is not None:
        raise StopRequested(f"sweep stopped by {signal_name(signum)}, running trials checkpointed; rerun the same command to continue", signum)
    if failures:
        more = f" (and {len(failures) - 1} more, above)" if len(failures) > 1 else ""
        raise MopoKitError(f"{len(failures)} of {len(pending)} trial(s) failed, the others finished; first: {failures[0]}{more}")
    return summaries


def _run_on_ray(
    spec: SweepSpec,
    sweep_dir: Path,
    pending: list[tuple[dict[str, Any], dict[str, Any], str]],
    threads: int,
    address: str | None,
    say: Callable[[str], None],
    skip: Callable[[dict[str, Any]], str | None] | None = None,
    on_trial_done: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """The pending trials as one Ray Tune grid (one Tune trial per MOPO trial, ``threads`` CPUs each)."""
    try:
        import ray
        from ray import tune
    except ImportError:
        raise MopoKitError("--backend ray needs Ray Tune: pip install 'mopo-kit[ray]'") from None
    if not pending:
        return []
    os.environ.setdefault("RAY_CHDIR_TO_TRIAL_DIR", "0")  # trials use absolute run directories
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        return _tune_grid(tune, spec, sweep_dir, pending, threads, say, skip, on_trial_done)
    finally:
        if started_here:  # stop the local Ray we started now, not in an exit hook (that can hang under load)
            ray.shutdown()


def _tune_grid(
    tune: Any,
    spec: SweepSpec,
    sweep_dir: Path,
    pending: list[tuple[dict[str, Any], dict[str, Any], str]],
    threads: int,
    say: Callable[[str], None],
    skip: Callable[[dict[str, Any]], str | None] | None = None,
    on_trial_done: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """One Tune trial per MOPO trial on an initialized Ray; their summaries, or one error line."""

    def trainable(params: dict[str, Any]) -> dict[str, Any]:
        trial = params["trial"]
        reason = skip(trial["point"]) if skip is not None else None
        if reason:  # published elsewhere since the plan: nothing to run
            return {"run_dir": trial["run_dir"], "skipped": reason}
        summary = _run_trial(trial["config"], trial["run_dir"], threads)
        last = summary["last"]
        return {"run_dir": summary["run_dir"], "return_mean": last.get("return_mean"), "normalized_mean": last.get("normalized_mean")}

    from mopo_kit.experiments.ray_callback import ReportEachTrial

    summaries: list[dict[str, Any]] = []
    tuner = tune.Tuner(
        tune.with_resources(trainable, {"cpu": threads}),
        param_space={"trial": tune.grid_search([{"point": p, "config": c, "run_dir": r} for p, c, r in pending])},
        run_config=tune.RunConfig(name=spec.name, storage_path=str(sweep_dir / "ray"), verbose=0, callbacks=[ReportEachTrial(say, on_trial_done, summaries)]),
    )
    results = tuner.fit()
    errors = [str(r.error) for r in results if r.error is not None]
    if errors:
        raise MopoKitError(f"ray backend: {len(errors)} trial(s) failed; first: {errors[0].splitlines()[-1] if errors[0] else '?'}")
    return summaries
