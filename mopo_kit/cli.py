"""``mopo-kit``: the command line. Every user error is one line on stderr and exit status 2."""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

from mopo_kit import __version__
from mopo_kit.device import add_device_argument, resolve_device
from mopo_kit.errors import MopoKitError
from mopo_kit.progress import QUIET_ENV
from mopo_kit.validation import NON_NEGATIVE, POSITIVE, POSITIVE_INT, SEED, Range, option

COUNT = option(POSITIVE_INT)  # steps, episodes, workers, threads, epochs: at least one
SEED_OPTION = option(SEED)

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (plus the hint to --help), exit 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"{self.prog}: error: {message} (see {self.prog} --help)\n")
        raise SystemExit(EXIT_USAGE)


PRECISION_HELP = "the hidden-layer GEMMs of the model rollouts and SAC updates: fp32, bf16, or auto (default: bf16 on a CPU with AMX-BF16/AVX512-BF16, for the model only where the penalty is bf16-tolerant; fp32 elsewhere; docs/performance.md)"


def _add_precision_argument(p: argparse.ArgumentParser, help: str = PRECISION_HELP) -> None:
    p.add_argument("--precision", choices=["fp32", "bf16", "auto"], help=help)


def _set_model_precision(model: Any, spec: str | None, device: Any, estimators: list[str]) -> str:
    """Apply ``--precision`` to a loaded model (one without ``set_precision`` computes as it does).

    ``auto`` keeps it float32 unless every estimator named is bf16-tolerant (mopo_kit.precision).
    """
    from mopo_kit.plugins import get_registry
    from mopo_kit.precision import DEFAULT_PRECISION, model_precision

    registry = get_registry()
    precision = model_precision(spec or DEFAULT_PRECISION, device, [registry.get("uncertainty", name).factory for name in estimators])
    if callable(getattr(model, "set_precision", None)):
        model.set_precision(precision)
    return precision


def _seed_list(text: str) -> list[int]:
    """``--seeds 0,1,2`` → [0, 1, 2]; anything else is a one-line usage error."""
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        seeds = []
    if not seeds:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integer seeds (e.g. 0,1,2)")
    return seeds


def _print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, sort_keys=False) + "\n")


def _console():
    from rich.console import Console

    return Console()


def _table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]):
    from rich.table import Table

    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*[str(cell) for cell in row])
    return table


# ------------------------------------------------------------------------------------ commands
def cmd_plugins(args: argparse.Namespace) -> int:
    from mopo_kit.plugins import get_plugins

    plugins = get_plugins().plugins
    if args.json:
        _print_json([p.to_json() for p in plugins])
        return 0
    rows = [
        (
            p.name,
            p.version,
            "built-in" if p.builtin else (p.distribution or ""),
            "; ".join(f"{kind}: {', '.join(names)}" for kind, names in p.registers.items()) or "-",
        )
        for p in plugins
    ]
    _console().print(_table("mopo-kit plugins", ("plugin", "version", "from", "registers"), rows))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from mopo_kit.plugins import get_registry
    from mopo_kit.registry import normalize_kind

    kind = normalize_kind(args.kind)
    components = get_registry().components(kind)
    if args.json:
        _print_json(
            [
                {"name": c.name, "kind": c.kind, "plugin": c.plugin, "version": c.version, "description": c.description}
                for c in components
            ]
        )
        return 0
    rows = [(c.name, c.plugin, c.description) for c in components]
    _console().print(_table(f"{kind} components", ("name", "plugin", "description"), rows))
    return 0


def cmd_dataset_info(args: argparse.Namespace) -> int:
    from mopo_kit.data.load import load_dataset

    summary = load_dataset(args.dataset).summary()
    if args.json:
        _print_json(summary.to_json())
        return 0
    rows = [
        ("transitions", f"{summary.transitions:,}"),
        ("episodes", f"{summary.episodes:,}"),
        ("obs_dim / act_dim", f"{summary.obs_dim} / {summary.act_dim}"),
        ("batch mean return", f"{summary.return_mean:.1f}"),
        ("batch max return", f"{summary.return_max:.1f}"),
        ("terminals / timeouts", f"{summary.terminals:,} / {summary.timeouts:,}"),
    ]
    _console().print(_table(f"dataset {summary.source}", ("", "value"), rows))
    return 0


def _get_task(name: str):
    from mopo_kit.plugins import get_registry

    return get_registry().create("task", name)


def cmd_collect(args: argparse.Namespace) -> int:
    from mopo_kit.data.d4rl_io import write_d4rl_hdf5
    from mopo_kit.data.named import make_named

    device = resolve_device(args.device)  # before any work: `--device cuda` without CUDA is one line
    task = _get_task(args.task)
    spec = make_named(task, args.kind, args.steps, args.seed, policy_file=args.policy)
    metadata = spec.metadata()
    if args.policy:
        _, metadata["policy_meta"] = _load_policy_file(Path(args.policy), task)
    out = Path(args.output or f"{spec.name}.hdf5")
    if out.exists() and not args.force:
        raise MopoKitError(f"{out}: file exists (use --force to overwrite it)")
    data = spec.generate(workers=args.workers, device=str(device))
    checksum = write_d4rl_hdf5(data, out, metadata=metadata)
    summary = data.summary()
    print(
        f"wrote {out}: {summary.transitions:,} transitions, {summary.episodes} episodes, "
        f"return mean {summary.return_mean:.1f} max {summary.return_max:.1f}, sha256 {checksum[:12]}"
    )
    return 0


def _load_policy_file(path: Path, task):
    from mopo_kit.data.actor import load_actor

    if not path.exists():
        raise MopoKitError(f"{path}: policy file not found")
    try:
        actor, meta = load_actor(path)
    except Exception as exc:  # not a policy file: say which and why, in one line
        raise MopoKitError(f"{path}: not a mopo_kit policy file ({type(exc).__name__}: {exc})") from None
    if (actor.obs_dim, actor.act_dim) != (task.obs_dim, task.act_dim):
        raise MopoKitError(
            f"{path}: policy dims ({actor.obs_dim}, {actor.act_dim}) do not match task '{task.name}' ({task.obs_dim}, {task.act_dim})"
        )
    return actor, meta


def cmd_train_behavior(args: argparse.Namespace) -> int:
    from mopo_kit.data.behavior import BehaviorConfig, best_snapshot, train_behavior

    device = resolve_device(args.device)
    task = _get_task(args.task)
    out = Path(args.output or f"behavior-{task.name}")
    if out.exists() and any(out.iterdir()) and not args.resume:
        raise MopoKitError(f"{out}: directory exists and is not empty (use --resume to continue it)")
    config = BehaviorConfig(
        task=task.name, steps=args.steps, seed=args.seed, eval_every=args.eval_every, threads=args.threads
    )
    evals = train_behavior(task, out, config, resume=args.resume, device=device)
    if evals:
        best = best_snapshot(evals)
        print(f"{task.name}: best deterministic return {best['det_return_mean']:.1f} at step {best['step']} ({out})")
    return 0


def _stderr_console():
    from rich.console import Console

    return Console(stderr=True)


def cmd_train_dynamics(args: argparse.Namespace) -> int:
    from mopo_kit.dir_lock import directory_lock

    device = resolve_device(args.device)
    out = Path(args.output)
    with directory_lock(out, "train-dynamics", inside=False):  # one writer per model directory
        return _train_dynamics(args, device, out)


def _train_dynamics(args: argparse.Namespace, device: Any, out: Path) -> int:
    import torch

    from mopo_kit.data.load import load_dataset
    from mopo_kit.dynamics.gaussian_ensemble import TrainingDivergedError
    from mopo_kit.dynamics.storage import fit_and_save, is_dynamics_dir, save_dynamics, write_fit_report
    from mopo_kit.plugins import get_registry
    from mopo_kit.progress import progress_bar, progress_enabled
    from mopo_kit.stop import StopRequested, signal_name, stop_requested

    if is_dynamics_dir(out) and not args.force:
        raise MopoKitError(f"{out}: already holds a dynamics model (use --force to overwrite it)")
    if args.threads:
        torch.set_num_threads(args.threads)
    data = load_dataset(args.dataset)
    params: dict[str, Any] = {"seed": args.seed}
    if args.max_epochs is not None:
        params["max_epochs"] = args.max_epochs
    if args.max_seconds is not None:
        params["max_seconds"] = args.max_seconds
    if args.precision is not None:  # of the fit: the ensemble's fit_precision param
        params["fit_precision"] = args.precision
    model = get_registry().create_on("dynamics", args.model, {"obs_dim": data.obs_dim, "act_dim": data.act_dim, **params}, device)
    console = _stderr_console()
    log_lines = not progress_enabled() and not args.quiet

    with progress_bar(f"train {args.model}", total=args.max_epochs, lines=False) as bar:  # its own per-epoch lines

        def on_epoch(stats) -> None:
            mse = sorted(stats.holdout_mse)
            line = (
                f"epoch {stats.epoch}: train loss {stats.train_loss:.4g}, holdout MSE best {mse[0]:.4g} "
                f"median {mse[len(mse) // 2]:.4g} ({stats.seconds:.1f} s)"
            )
            bar.update(description=f"epoch {stats.epoch} holdout MSE {mse[0]:.4g}")
            bar.advance(1)
            if log_lines:
                console.print(line, highlight=False)
            if (signum := stop_requested()) is not None:  # the epoch's fit checkpoint is already written
                raise StopRequested(f"stopped by {signal_name(signum)} after fit epoch {stats.epoch}, fit checkpoint written", signum)

        # killed midway, the same command continues the fit from its last epoch
        checkpoint = out / "fit_checkpoint.pt"
        if checkpoint.exists() and not args.quiet:
            console.print(f"continuing the killed fit in {checkpoint}", highlight=False)
        try:
            report = fit_and_save(model, data, args.model, out, checkpoint=checkpoint, device=device, callback=on_epoch)
        except StopRequested as exc:  # after an epoch, or within one (the ensemble drops it)
            raise StopRequested(f"{exc}; continue with the same command", exc.signum) from None
        except TrainingDivergedError as exc:
            save_dynamics(model, out, args.model)
            write_fit_report(out, exc.report, data, device=device)
            checkpoint.unlink(missing_ok=True)  # it would only diverge again
            raise MopoKitError(f"{exc}; the last good model is saved in {out}") from None
    print(
        f"{out}: {report.epochs} epochs ({report.stop_reason}), {report.seconds:.0f} s; "
        f"holdout MSE {', '.join(f'{v:.4g}' for v in report.holdout_mse)}; elites {report.elites}"
    )
    return 0


def cmd_penalty_scale(args: argparse.Namespace) -> int:
    """κ ↔ λ per estimator on one model and dataset (mopo_kit.penalty_scale)."""
    from mopo_kit.data.load import load_dataset
    from mopo_kit.dynamics.storage import load_dynamics
    from mopo_kit.penalty_scale import penalty_scale
    from mopo_kit.plugins import get_registry

    device = resolve_device(args.device)
    registry = get_registry()
    names = args.estimators.split(",") if args.estimators else [c.name for c in registry.components("uncertainty") if c.name != "zero"]
    for name in names:
        registry.get("uncertainty", name)  # a misspelled name is one line before any work
    data = load_dataset(args.dataset)
    model = load_dynamics(args.dynamics, dims=(data.obs_dim, data.act_dim), data_name=f"dataset '{args.dataset}'", device=device)
    _set_model_precision(model, args.precision, device, names)
    rows = []
    for name in names:
        estimator = registry.create_on("uncertainty", name, {}, device)
        estimator.fit(data, model)
        scale = penalty_scale(data, model, estimator, name=name, device=device)
        row = scale.to_json()
        if args.lam is not None:
            row.update(lam=args.lam, kappa=scale.kappa_of(args.lam))
        if args.kappa is not None:
            row.update(kappa=args.kappa, lam=scale.lam_for(args.kappa))
        rows.append(row)
    if args.json:
        _print_json(rows)
        return 0
    columns = ["estimator", "mean u on the data", "mean |r|"] + (["λ", "κ"] if args.lam is not None or args.kappa is not None else [])
    table_rows = [
        [r["estimator"], f"{r['mean_penalty']:.4g}", f"{r['mean_abs_reward']:.4g}", *([f"{r['lam']:.4g}", f"{r['kappa']:.4g}"] if "lam" in r else [])]
        for r in rows
    ]
    _console().print(_table(f"penalty scale on {args.dataset} ({len(data):,} transitions)", columns, table_rows))
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from mopo_kit.experiments.calibration import calibrate, write_report
    from mopo_kit.data.load import load_dataset
    from mopo_kit.dynamics.storage import load_dynamics
    from mopo_kit.plugins import get_registry

    device = resolve_device(args.device)
    model = load_dynamics(args.dynamics, device=device)
    data, ood = load_dataset(args.data), load_dataset(args.ood)
    for name, d in (("--data", data), ("--ood", ood)):
        if (d.obs_dim, d.act_dim) != (model.obs_dim, model.act_dim):
            raise MopoKitError(
                f"{name} {d.source}: obs/act dims ({d.obs_dim}, {d.act_dim}) differ from the model's ({model.obs_dim}, {model.act_dim})"
            )
    registry = get_registry()
    names = args.estimators.split(",") if args.estimators else registry.names("uncertainty")
    precision = _set_model_precision(model, args.precision, device, names)
    estimators = {name: registry.create_on("uncertainty", name, {}, device) for name in names}
    report, raw = calibrate(model, estimators, data, ood, max_points=args.max_points, seed=args.seed, dynamics_name=str(args.dynamics))
    report.precision = precision
    out = Path(args.output or Path(args.dynamics) / "calibration")
    written = write_report(report, raw, out)
    for name, why in report.skipped.items():
        sys.stderr.write(f"mopo-kit: warning: estimator '{name}' failed and is left out: {why}\n")
    if args.json:
        _print_json(report.to_json())
        return 0
    rows = [
        (
            r.name,
            r.ipm,
            f"{r.spearman_id:.2f}",
            f"{r.spearman_ood:.2f}",
            f"{r.c95_all:.3g}",
            f"{r.ood_ratio:.2f}",
        )
        for r in report.estimators
    ]
    title = (
        f"calibration: error OOD/ID = {report.error_ood_ratio:.2f} "
        f"({report.points_id} ID / {report.points_ood} OOD points)"
    )
    _console().print(_table(title, ("estimator", "ipm", "ρ ID", "ρ OOD", "c95", "u OOD/ID"), rows))
    print(f"wrote {written[0]} and {len(written) - 1} plots")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from mopo_kit.config import MOPOConfig
    from mopo_kit.mopo import MOPO

    if args.quiet:
        os.environ[QUIET_ENV] = "1"

    if args.device is not None:
        resolve_device(args.device)  # before any work (the config's own device is checked by MOPO)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.without_logger and not args.resume:
        raise MopoKitError("--without-logger goes with --resume (a new run takes the loggers it is given)")
    if args.resume:
        epochs = None
        if args.steps is not None:  # --steps with --resume extends a finished run
            saved = json.loads((Path(args.resume) / "config.json").read_text())["config"] if (Path(args.resume) / "config.json").exists() else {}
            epochs = max(1, -(-args.steps // int(saved.get("steps_per_epoch", 1000))))
        result = MOPO.resume(args.resume, epochs=epochs, device=args.device, without_loggers=args.without_logger or ())
        _print_result(Path(args.resume), result)
        return 0
    args.dataset = args.dataset or args.dataset_option
    if not args.dataset:
        raise MopoKitError("DATASET is required unless --resume RUN_DIR is given")
    config = MOPOConfig.from_file(args.config) if args.config else MOPOConfig()
    config.dataset = args.dataset
    if args.lam is not None and args.kappa is not None:
        raise MopoKitError("--lam and --kappa both given: give one (--kappa sets λ from the model and the data)")
    for key in ("task", "lam", "kappa", "horizon", "seed", "eval_episodes", "device", "precision"):
        value = getattr(args, key)
        if value is not None:
            setattr(config, key, value)
    # a strength on the command line replaces the config file's other one
    if args.kappa is not None:
        config.lam = None
    elif args.lam is not None:
        config.kappa = None
    if args.uncertainty:
        config.uncertainty = type(config.uncertainty)(args.uncertainty)
    if args.dynamics:
        config.dynamics_dir = args.dynamics
    if args.steps is not None:
        config.epochs = max(1, -(-args.steps // config.steps_per_epoch))
    for name in (args.logger or []) + (["wandb"] if args.wandb else []):
        if name not in [c.type for c in config.loggers]:
            config.loggers.append(name)
    config.__post_init__()
    from mopo_kit.plugins import get_registry

    get_registry().get("uncertainty", config.uncertainty.type)  # fail fast on a typo
    run_dir = Path(args.output or f"runs/{Path(config.dataset).stem}-{config.uncertainty.type}-s{config.seed}")
    result = MOPO(config).fit(run_dir)
    _print_result(run_dir, result)
    return 0


def _print_result(run_dir: Path, result) -> None:
    last, best, bound = result.last, result.best, result.bound
    print(
        f"{run_dir}: {result.gradient_steps} gradient steps; last return {last.get('return_mean', float('nan')):.1f} "
        f"(normalized {last.get('normalized_mean') or float('nan'):.1f}), best {best.get('return_mean', float('nan')):.1f}; "
        f"η̂ {bound['eta_hat']:.2f}, ε {bound['epsilon']:.3f}, η̂ − λε {bound['bound']:.2f}"
    )


def cmd_evaluate(args: argparse.Namespace) -> int:
    from mopo_kit.experiments.run_evaluation import evaluate_run

    device = resolve_device(args.device)
    report = evaluate_run(
        Path(args.run_dir), episodes=args.episodes, seed=args.seed, device=device, on_policy_steps=args.on_policy, on_policy_estimator=args.estimator,
        precision=args.precision,
    )
    if args.json:
        _print_json(report)
        return 0
    real = report["real"]
    rows = [
        ("return (mean ± std)", f"{real['return_mean']:.1f} ± {real['return_std']:.1f} over {real['episodes']} episodes of {real['length_mean']:.0f} steps on average"),
        ("D4RL-normalized", f"{real['normalized_mean']:.1f}" if real["normalized_mean"] is not None else "-"),
    ]
    if "bound" in report:
        bound = report["bound"]
        rows += [
            ("η̂(π) in the model", f"{bound['eta_hat']:.2f}"),
            ("ε(π) = E[Σγᵗu]", f"{bound['epsilon']:.3f}"),
            ("η̂ − λ·ε", f"{bound['bound']:.2f} (λ = {bound['lam']})"),
        ]
    if "on_policy" in report:
        rows += _on_policy_rows(report["on_policy"])
    _console().print(_table(f"evaluation of {args.run_dir}", ("", "value"), rows))
    return 0


def _on_policy_rows(check: dict[str, Any]) -> list[tuple[str, str]]:
    def number(value: float | None, fmt: str) -> str:
        return "-" if value is None else format(value, fmt)

    name = check["estimator"]
    return [
        ("on-policy transitions", f"{check['transitions']} real steps, {check['episodes']} episodes, reward {check['reward_mean_policy']:.3f}/step"),
        ("one-step error: data → policy", f"{check['error_mean_data']:.3f} → {check['error_mean_policy']:.3f}"),
        (f"u ({name}): data → policy", f"{check['u_mean_data']:.3f} → {check['u_mean_policy']:.3f}"),
        ("reward bias r̂ − r: data → policy", f"{check['reward_bias_data']:+.3f} → {check['reward_bias_policy']:+.3f}"),
        ("ρ(u, error) on policy", number(check["spearman_policy"], ".2f")),
        ("error > c95·u on policy", f"{number(check['bound_violations'], '.1%')} (c95 = {number(check['c95_data'], '.3g')} from data; 5 % there)"),
    ]


def cmd_pack(args: argparse.Namespace) -> int:
    from mopo_kit.experiments.pack import pack_run

    summary = pack_run(Path(args.run_dir), Path(args.archive), with_pool=args.with_pool, with_model=not args.without_model,
                       with_logs=not args.without_logs, live=args.live)
    if args.json:
        _print_json(summary)
        return 0
    pool = "model pool kept (bit-exact resume)" if summary["model_pool"] == "kept" else (
        f"model pool left out ({summary['pool_rows_dropped']:,} rows; refilled by fresh rollouts on resume, not bit-exact)")
    print(f"{summary['archive']}: run {summary['run']} at epoch {summary['epoch']}, {summary['bytes'] / 2**20:.1f} MiB, {pool}")
    if summary["dynamics_sha256"]:
        print(f"model left out (sha256 {summary['dynamics_sha256'][:12]}…): fit it again there and point the run's dynamics_dir at it; "
              "the resume refuses another model")
    print(f"continue it elsewhere with: tar -xzf {Path(args.archive).name} && mopo-kit train --resume {summary['run']}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from mopo_kit.experiments.demo import DemoSettings, run_demo

    device = resolve_device(args.device)
    out = Path(args.output)
    results = run_demo(out, DemoSettings(task=args.task, device=str(device), precision=args.precision or DemoSettings.precision))
    rows = [
        ("data: batch mean", f"{results['return_mean']:.1f}", ""),
        ("data: batch max", f"{results['return_max']:.1f}", ""),
    ]
    for label, m in results["methods"].items():
        rows.append((label, f"{m['return']:.1f} ± {m['return_std']:.1f}", f"{m['normalized']:.1f}"))
    _console().print(_table(f"mopo-kit demo ({results['seconds']:.0f} s): {results['dataset']['name']}, {results['settings']['epochs'] * results['settings']['steps_per_epoch']:,} SAC steps, seed {results['settings']['seed']}", ("", "return", "normalized"), rows))
    print(f"wrote {out / 'results.json'} and {out / 'results.png'}")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from mopo_kit.experiments.shared_models import fit_shared_dynamics
    from mopo_kit.experiments.sweep import SweepSpec, run_sweep

    if args.device is not None:
        resolve_device(args.device)
    spec = SweepSpec.from_file(args.file)
    if args.precision is not None:  # every trial's; the sweep file's base key otherwise
        spec.base["precision"] = args.precision
    spec.reuse_models += args.reuse_models or []
    out = Path(args.output or f"sweeps/{spec.name}")
    console = _stderr_console()
    if args.models_only:
        workers = args.workers or 1
        say = lambda m: console.print(f"[sweep] {m}", highlight=False)  # noqa: E731
        failures = fit_shared_dynamics(spec, out, say, args.device, workers=workers, threads=max(1, (os.cpu_count() or 1) // workers))
        if failures:
            raise MopoKitError(f"{len(failures)} shared model(s) could not be fitted; first: {failures[0]}")
        print(f"{out / 'dynamics'}: the sweep's shared models are fitted; run the same command without --models-only for the trials")
        return 0
    summaries = run_sweep(
        spec, out, workers=args.workers, wandb=args.wandb, backend=args.backend, address=args.address, device=args.device,
        say=lambda m: console.print(f"[sweep] {m}", highlight=False),
    )
    print(f"{out}: {len(summaries)} trial(s) run; `mopo-kit report {out}` for the table and plots")
    return 0


def _score_cell(row: dict, which: str) -> str:
    """A row's score: D4RL-normalized where its task has reference scores, else the raw return, marked."""
    mean, std = row[f"{which}_score_mean"], row[f"{which}_score_std"]
    return f"{mean:.1f} ± {std:.1f} (norm.)" if row["score"] == "normalized" else f"{mean:.0f} ± {std:.0f} (return)"


def cmd_report(args: argparse.Namespace) -> int:
    from mopo_kit.experiments.report import write_report

    report = write_report(Path(args.sweep_dir), baseline=args.baseline, seeds=args.seeds)
    if args.json:
        _print_json(report)
        return 0

    def against(row: dict) -> tuple[str, ...]:
        found = row.get("versus_baseline")
        if found is None:
            return ("–", "–")
        ci = f" [{found['ci'][0]:+.0f}, {found['ci'][1]:+.0f}]" if found["ci"] else ""
        return (f"{found['delta']:+.0f}{ci}", f"{found['prob_improvement']:.2f}")

    rows = [
        (
            Path(str(r["dataset"])).stem, r["uncertainty"],
            f"κ {r['kappa']:g} (λ {r['lam']:.3g})" if r.get("kappa") is not None else f"λ {r['lam']:g}", r["horizon"],
            ", ".join(map(str, r["seed_list"])),
            _score_cell(r, "last"), _score_cell(r, "best"),
            *(against(r) if args.baseline else ()),
        )
        for r in report["rows"]
    ]
    columns = ("dataset", "estimator", "strength", "h", "seeds", "last", "best")
    if args.baseline:
        columns += (f"Δ last return vs {args.baseline} [95 % CI]", f"P(beats {args.baseline})")
    _console().print(_table(f"sweep {args.sweep_dir}: {report['trials']} trials", columns, rows))
    print(f"wrote report.json, learning_curves.png, final_scores.png, penalty_vs_return.png, wandb_sweep.yaml in {args.sweep_dir}")
    return 0


# -------------------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="mopo-kit", description="Model-based offline RL (MOPO) with pluggable components.")
    parser.add_argument("--version", action="version", version=f"mopo-kit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("plugins", help="installed plugins, versions, and what each registers")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_plugins)

    p = sub.add_parser("list", help="components of one kind (uncertainty, dynamics, policy, task, dataset, logger)")
    p.add_argument("kind", metavar="KIND")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("dataset", help="dataset tools")
    dsub = p.add_subparsers(dest="dataset_command", metavar="SUBCOMMAND", parser_class=_Parser, required=True)
    q = dsub.add_parser("info", help="size, dims and batch mean/max return of a dataset")
    q.add_argument("dataset", metavar="DATASET", help="registered name, D4RL-layout .hdf5 path, or minari:<id>")
    q.add_argument("--json", action="store_true", help="print JSON instead of a table")
    q.set_defaults(func=cmd_dataset_info)

    p = sub.add_parser("collect", help="collect a D4RL-style dataset in the real environment")
    p.add_argument("task", metavar="TASK")
    p.add_argument("--kind", required=True, choices=["random", "medium", "mixed", "medium-expert"])
    p.add_argument(
        "--steps", type=COUNT, default=None,
        help="transitions (default: 200,000; medium-expert 400,000; mixed: the replay buffer's length. D4RL: 1M/2M)",
    )
    p.add_argument("--seed", type=SEED_OPTION, default=0)
    p.add_argument("--workers", type=COUNT, default=None, help="worker processes (default: CPU cores)")
    p.add_argument("-o", "--output", metavar="FILE", help="output .hdf5 (default: TASK-KIND.hdf5)")
    p.add_argument("--policy", metavar="FILE", help="behavior actor file (.pt) to roll out, actions sampled")
    p.add_argument("--force", action="store_true", help="overwrite FILE")
    add_device_argument(p, "cpu", "the behavior actor's device; on the CPU the same seed gives the same file for one torch build")
    p.set_defaults(func=cmd_collect)

    p = sub.add_parser("train-behavior", help="train a SAC behavior policy in the real environment (resumable)")
    p.add_argument("task", metavar="TASK")
    p.add_argument("--steps", type=COUNT, default=300_000)
    p.add_argument("--seed", type=SEED_OPTION, default=0)
    p.add_argument("--eval-every", type=COUNT, default=10_000, help="snapshot + evaluation period in env steps")
    p.add_argument("--threads", type=COUNT, default=1, help="torch threads")
    p.add_argument("-o", "--output", metavar="DIR")
    p.add_argument("--resume", action="store_true", help="continue the run in DIR from its last checkpoint")
    add_device_argument(p)
    p.set_defaults(func=cmd_train_behavior)

    p = sub.add_parser("train-dynamics", help="fit a dynamics model (MOPO's ensemble by default) on a dataset")
    p.add_argument("dataset", metavar="DATASET", help="registered name, D4RL-layout .hdf5 path, or minari:<id>")
    p.add_argument("-o", "--output", metavar="DIR", required=True, help="directory for the model and its fit report")
    p.add_argument("--model", default="gaussian_ensemble", help="registered dynamics model (see `mopo-kit list dynamics`)")
    p.add_argument("--max-epochs", type=COUNT, default=None, help="cap on epochs (default: MOPO's early stopping only)")
    p.add_argument("--max-seconds", type=option(POSITIVE), default=None, help="cap on training time")
    p.add_argument("--seed", type=SEED_OPTION, default=0)
    p.add_argument("--threads", type=COUNT, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--force", action="store_true", help="overwrite a model already in DIR")
    p.add_argument("--quiet", action="store_true", help="no per-epoch lines")
    add_device_argument(p)
    _add_precision_argument(p, "of the fit's hidden-layer matrix products (default fp32; the loss, gradients and weights stay float32; docs/performance.md)")
    p.set_defaults(func=cmd_train_dynamics, graceful=True)

    p = sub.add_parser("penalty-scale", help="mean u(s,a) per estimator on a dataset, and κ ↔ λ (one penalty size for every estimator)")
    p.add_argument("dataset", metavar="DATASET")
    p.add_argument("--dynamics", required=True, metavar="DIR", help="the model the penalty is computed with")
    p.add_argument("--estimators", help="comma-separated names (default: every installed estimator but zero)")
    strength = p.add_mutually_exclusive_group()
    strength.add_argument("--lam", type=option(NON_NEGATIVE), help="the κ each estimator's λ = X amounts to")
    strength.add_argument("--kappa", type=option(NON_NEGATIVE), help="the λ each estimator needs for κ = X")
    p.add_argument("--json", action="store_true")
    add_device_argument(p)
    _add_precision_argument(p)
    p.set_defaults(func=cmd_penalty_scale)

    p = sub.add_parser("calibrate", help="check u(s,a) against the true one-step error, in and out of distribution")
    p.add_argument("dynamics", metavar="DYNAMICS_DIR")
    p.add_argument("--data", required=True, metavar="DATASET", help="in-distribution data (held out from training)")
    p.add_argument("--ood", required=True, metavar="DATASET", help="out-of-distribution data")
    p.add_argument("--estimators", help="comma-separated names (default: every installed estimator)")
    p.add_argument("--max-points", type=option(Range(integer=True, low=2)), default=20_000, help="points per dataset")
    p.add_argument("--seed", type=SEED_OPTION, default=0)
    p.add_argument("-o", "--output", metavar="DIR", help="report directory (default: DYNAMICS_DIR/calibration)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    add_device_argument(p)
    _add_precision_argument(p)
    p.set_defaults(func=cmd_calibrate)

    p = sub.add_parser("train", help="run MOPO: fit (or reuse) the dynamics model, then SAC in the penalized model")
    p.add_argument("dataset", metavar="DATASET", nargs="?", help="registered name, D4RL-layout .hdf5 path, or minari:<id>")
    p.add_argument("--dataset", dest="dataset_option", metavar="DATASET", help=argparse.SUPPRESS)  # for `wandb agent`'s --key=value
    p.add_argument("--uncertainty", metavar="NAME", help="uncertainty estimator (default: max_aleatoric)")
    p.add_argument("--lam", type=option(NON_NEGATIVE), help="penalty coefficient λ (default: MOPO's per-task value)")
    p.add_argument(
        "--kappa", type=option(NON_NEGATIVE),
        help="penalty strength on one scale for every estimator, instead of --lam: λ is set so that λ · mean u = κ · mean |r| on the dataset (docs/penalties.md)",
    )
    p.add_argument("--horizon", type=COUNT, help="rollout horizon h (default: MOPO's per-task value)")
    p.add_argument("--task", help="task, when the dataset does not say")
    p.add_argument("--dynamics", metavar="DIR", help="reuse a model from `mopo-kit train-dynamics`")
    p.add_argument("--config", metavar="FILE", help="JSON or TOML config (see docs/cli.md)")
    p.add_argument("--seed", type=SEED_OPTION)
    p.add_argument("--steps", type=COUNT, help="total gradient steps (default: 1,000 epochs × 1,000)")
    p.add_argument("--eval-episodes", type=COUNT)
    p.add_argument("--threads", type=COUNT, help="torch threads")
    p.add_argument("--logger", action="append", metavar="NAME", help="extra logger (console, jsonl, tensorboard, wandb); repeatable")
    p.add_argument("--wandb", action="store_true", help="log to W&B (offline when there is no API key)")
    p.add_argument("-o", "--output", metavar="RUN_DIR")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a killed run from its last checkpoint; with --steps, extend a finished run to that budget")
    p.add_argument(
        "--without-logger", action="append", metavar="NAME",
        help="with --resume: continue this leg without one of the run's loggers (e.g. wandb on a machine without it); "
             "recorded in config.json (logger_gaps), the config keeps it; repeatable",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar on a terminal, no progress lines in a log")
    _add_precision_argument(p)
    add_device_argument(p, None, "the config's 'device', else auto; with --resume, the run's")
    p.set_defaults(func=cmd_train, graceful=True)

    p = sub.add_parser("evaluate", help="evaluate a run's policy in the real environment, and the model bound")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--episodes", type=COUNT, default=10)
    p.add_argument("--seed", type=SEED_OPTION, default=12345)
    p.add_argument(
        "--on-policy", type=COUNT, default=0, metavar="STEPS",
        help="also collect STEPS real transitions of the policy and check u against the model's error on them",
    )
    p.add_argument("--estimator", metavar="NAME", help="estimator for --on-policy (default: the run's own; MBPO's is zero)")
    p.add_argument("--json", action="store_true")
    add_device_argument(p)
    _add_precision_argument(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("pack", help="one .tar.gz of a run (without its model pool) that 'train --resume' continues on another machine")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("archive", metavar="ARCHIVE.tar.gz")
    p.add_argument("--with-pool", action="store_true", help="keep the model pool: a bit-exact resume, at the checkpoint's full size")
    p.add_argument("--without-model", action="store_true",
                   help="leave a sweep's shared model out (its checksum is recorded; the resume refuses a refit that differs)")
    p.add_argument("--without-logs", action="store_true", help="leave the loggers' folders (wandb/, tensorboard/) behind")
    p.add_argument("--live", action="store_true", help="pack a run while it trains: its last whole checkpoint, without its lock")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_pack)

    p = sub.add_parser("sweep", help="run a grid of MOPO trials (estimators × λ × h × seeds × datasets) from a TOML/YAML file")
    p.add_argument("file", metavar="FILE")
    p.add_argument("-o", "--output", metavar="SWEEP_DIR")
    p.add_argument("--backend", choices=["local", "ray"], default="local", help="local process pool, or Ray Tune (pip install 'mopo-kit[ray]')")
    p.add_argument("--address", help="Ray cluster address (default: a local Ray instance)")
    p.add_argument("--workers", type=COUNT, help="parallel trials (default: one per core)")
    p.add_argument("--wandb", action="store_true", help="log every trial to W&B (offline without an API key), grouped by sweep")
    p.add_argument("--models-only", action="store_true", help="only fit the shared models (--workers at once; e.g. on a GPU, then run the trials on CPUs)")
    p.add_argument("--reuse-models", action="append", metavar="DIR", help="take a shared model from this sweep directory (repeatable) where it holds "
                   "the same fit (type, settings, seed, data checksum) instead of fitting it again; added to the sweep file's reuse_models")
    add_device_argument(p, None, "the sweep file's 'device', else auto")
    _add_precision_argument(p)
    p.set_defaults(func=cmd_sweep, graceful=True)

    p = sub.add_parser("report", help="mean ± std over seeds per estimator × λ × dataset, plots, W&B sweep YAML")
    p.add_argument("sweep_dir", metavar="SWEEP_DIR")
    p.add_argument("--baseline", metavar="ESTIMATOR", help="set every row against this estimator's row of the same dataset and h, seed for seed "
                   "(e.g. zero = MBPO): difference of the last returns with its Welch 95%% interval, and P(a run beats a baseline run)")
    p.add_argument("--seeds", type=_seed_list, metavar="S,S,...", help="only these seeds' trials (e.g. a study's report seeds 0,1,2 without its tuning seed)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("demo", help="the main job: small random dataset, model, MOPO vs MBPO, real-env evaluation")
    p.add_argument("-o", "--output", metavar="DIR", default="mopo-demo")
    p.add_argument("--task", default="hopper", help="registered task whose random data the demo collects (default hopper: the D4RL table's cell where MOPO leads MBPO at 10k and 100k steps)")
    add_device_argument(p)
    _add_precision_argument(p)
    p.set_defaults(func=cmd_demo)
    return parser


def _format_warning(message, category, filename, lineno, line=None) -> str:  # noqa: ANN001
    return f"mopo-kit: warning: {message}\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    warnings.formatwarning = _format_warning  # one line per warning, no source echo
    func: Callable[[argparse.Namespace], int] = args.func
    from mopo_kit.stop import StopRequested, graceful_stop

    try:
        if getattr(args, "graceful", False):  # long work that checkpoints: SIGTERM/SIGINT stop it cleanly
            with graceful_stop():
                return func(args)
        return func(args)
    except StopRequested as exc:
        sys.stderr.write(f"mopo-kit: {exc}\n")
        return exc.exit_code
    except MopoKitError as exc:
        sys.stderr.write(f"mopo-kit: error: {exc}\n")
        return EXIT_USAGE
    except KeyboardInterrupt:
        sys.stderr.write("mopo-kit: interrupted\n")
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
