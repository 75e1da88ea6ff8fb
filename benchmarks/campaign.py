"""Result campaigns over the sweep machinery: runs, per-run JSON, table, plots (shared by the tables).

A :class:`Campaign` names its cells (datasets) per stage, its methods (method name → uncertainty
estimator), the budget and the paper's numbers. Running a campaign is one sweep
(:func:`mopo_kit.experiments.sweep.run_sweep`) over cells × methods × seeds: one dynamics model
per dataset × seed shared by every method, two trials at a time with one torch thread each (on 2
cores two 1-thread trials give ~1.2× the throughput of one 2-thread trial), resumable after a
kill, extensible to a larger budget. Each finished run is published at once as
``<results>/<dataset>__<method>__s<seed>__<k>k.json``; the table and the learning-curve plots
are rebuilt from those files alone. ``benchmarks/d4rl_table.py`` and ``benchmarks/ood_table.py``
are thin definitions over this module; what a campaign shows (tables, plots) is in
``campaign_docs.py``, where its runs stand and how they move to another machine in
``campaign_status.py``, the shared statistics over run records in ``run_stats.py``, and how one
seed's runs compare across budgets (the deeper stages' checks) in ``budgets.py``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shlex
import statistics
import sys
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Iterator

sys.path.insert(0, str(Path(__file__).resolve().parent))
from budgets import across_budgets, deeper_run_checks, trajectories  # noqa: E402
import in_flight  # noqa: E402
from campaign_docs import CampaignDocs  # noqa: E402
from campaign_status import CampaignStatus  # noqa: E402
from common import ROOT, commit, machine  # noqa: E402
from run_stats import TAIL_EVALS, budget_label, file_safe, mean_std, round_or_none, tail_mean  # noqa: E402

from mopo_kit.experiments.shared_models import fit_shared_dynamics  # noqa: E402
from mopo_kit.experiments.sweep import SweepSpec, run_sweep  # noqa: E402

#: The same for every cell: MOPO's early stopping (1 %, 5 epochs), capped so a campaign's models
#: fit a few sessions of 2 CPU cores (each run's JSON states how its model stopped).
MODEL_MAX_EPOCHS = 60
EVAL_EVERY = 5
EVAL_EPISODES = 10
CURVE_KEYS = ("epoch", "gradient_steps", "return_mean", "return_std", "normalized_mean", "length_mean", "rollout_mean_penalty", "rollout_mean_raw_reward")


@dataclass(frozen=True)
class Stage:
    cells: tuple[str, ...]
    steps: int
    #: a stage that checks a setting runs on its own seeds and methods (e.g. MOPO on seed 3 only)
    seeds: tuple[int, ...] | None = None
    methods: tuple[str, ...] | None = None
    label: str = ""  # what the docs' progress lines call it, e.g. "random and mixed"
    #: run the cells in the order given, every seed of one before the next (runs of hours, cells with
    #: a priority) instead of one seed of every cell at a time
    cells_in_order: bool = False


@dataclass
class Campaign(CampaignDocs, CampaignStatus):
    """What a result table runs: cells per stage, methods, budget, fixed grid values, paper numbers."""

    name: str
    results: Path
    stages: dict[int, Stage]
    methods: dict[str, str]  # method name in the table → uncertainty estimator
    paper: dict[str, dict[str, float]] = field(default_factory=dict)  # dataset → {method or "batch_mean": number}
    fixed: dict[str, list[Any]] = field(default_factory=dict)  # extra grid values, e.g. {"lam": [1.0], "horizon": [5]}
    seeds: tuple[int, ...] = (0, 1, 2)
    plot_prefix: str = ""
    default_stage: int | None = None  # what runs without --stage (default: the lowest stage)
    script: str = ""  # the campaign's script, e.g. "d4rl_table.py": named in the docs' generated blocks
    #: (file relative to the repository, block) pairs that ``--write-docs`` regenerates from table.json;
    #: blocks: "table" (:meth:`markdown`), "models" (:meth:`models_markdown`), "budgets" (:meth:`budgets_markdown`), "trajectories" (:meth:`trajectories_markdown`), "summary" (:meth:`summary_markdown`),
    #: "progress" (:meth:`progress_markdown`)
    docs: tuple[tuple[str, str], ...] = ()
    paper_label: str = "paper"  # what the summary calls the reference numbers ("talk" for the D4RL table)
    #: every trial's ``precision``, written into the sweep's base settings rather than left to
    #: ``MOPOConfig``'s default: a campaign's runs share one code path and precision, so a later
    #: change of the toolkit's default (e.g. to ``auto``) never mixes precisions inside one table.
    #: float32 for the result tables, so a deeper stage's run retraces the shorter one to the bit
    #: (``deeper_run_checks``); ``benchmarks/precision_check.py`` sets bf16.
    precision: str = "fp32"

    def method_of(self, uncertainty: str) -> str:
        return next((m for m, u in self.methods.items() if u == uncertainty), uncertainty)

    def sweep_spec(self, cells: list[str], methods: list[str], seeds: list[int], steps: int) -> SweepSpec:
        base: dict[str, Any] = {
            "epochs": -(-steps // 1000),
            "steps_per_epoch": 1000,
            "eval_every": EVAL_EVERY,
            "eval_episodes": EVAL_EPISODES,
            "checkpoint_every": EVAL_EVERY,
            "precision": self.precision,
        }
        grid = {"dataset": cells, "uncertainty": [self.methods[m] for m in methods], **self.fixed, "seed": seeds}
        return SweepSpec(name=self.name, grid=grid, base=base, dynamics={"max_epochs": MODEL_MAX_EPOCHS})

    # ---------------------------------------------------------------------------- publishing
    def run_record(self, run_dir: Path, command: str) -> dict[str, Any]:
        """One finished run: settings, last/best return, curve, the model's fit, provenance."""
        payload = json.loads((run_dir / "config.json").read_text())
        config, resolved = payload["config"], payload["resolved"]
        results = json.loads((run_dir / "results.json").read_text())
        metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
        method = self.method_of(config["uncertainty"]["type"])
        # a sweep's shared model, or the run's own (also where a moved run carries its shared one)
        fit_path = (Path(config["dynamics_dir"]) if config.get("dynamics_dir") else run_dir / "dynamics") / "fit_report.json"
        fit = json.loads(fit_path.read_text()) if fit_path.exists() else {}
        summary = _dataset_summary(config["dataset"])
        penalties = [row["rollout_mean_penalty"] for row in metrics if "rollout_mean_penalty" in row]
        return {
            "dataset": config["dataset"],
            "method": method,
            "uncertainty": config["uncertainty"]["type"],
            "lam": 0.0 if config["uncertainty"]["type"] == "zero" else resolved["lam"],
            "horizon": resolved["horizon"],
            "precision": resolved.get("precision", "fp32"),
            **({"model_precision": resolved["model_precision"]} if "model_precision" in resolved else {}),
            "seed": config["seed"],
            "steps": results["gradient_steps"],
            # extended from a shorter finished run whose trial directory survived, or a run from scratch
            "started": _started(payload.get("extensions", []), int(config["steps_per_epoch"])),
            "return_last": results["last"].get("return_mean"),
            "return_best": results["best"].get("return_mean"),
            "normalized_last": results["last"].get("normalized_mean"),
            "normalized_best": results["best"].get("normalized_mean"),
            "batch_mean": summary[0],
            "batch_max": summary[1],
            "mean_penalty_last_epoch": penalties[-1] if penalties else None,
            # the model the run trained on, checked on each resume: two runs with one checksum share a fit
            **({"dynamics_sha256": resolved["dynamics_sha256"]} if resolved.get("dynamics_sha256") else {}),
            "dynamics_fit": {k: fit.get(k) for k in ("epochs", "stop_reason", "holdout_mse", "elites", "seconds", "device", "dataset_sha256", "precision", "reused_from") if k in fit},
            "eval": {"episodes": config["eval_episodes"], "every_epochs": config["eval_every"], "deterministic": True},
            # the last process's wall time: a run resumed across sessions counts only its last stretch there
            "seconds": results.get("seconds"),
            # the run's training time over every stretch (each epoch's own seconds, evaluations included)
            "epoch_seconds_total": round(sum(float(row.get("epoch_seconds", 0.0)) for row in metrics), 1),
            "curve": [{k: row.get(k) for k in CURVE_KEYS} for row in metrics if "return_mean" in row],
            # machines the run moved between (mopo-kit pack); "model_pool": "dropped" = not bit-exact
            **({"moves": payload["moves"]} if payload.get("moves") else {}),
            # legs run without some loggers (e.g. W&B on a lent GPU): the run's curve is complete, those loggers' records are not
            **({"logger_gaps": payload["logger_gaps"]} if payload.get("logger_gaps") else {}),
            "command": command,
            "commit": commit(),
            # the trial's thread count, not this (publishing) process's
            "machine": {**machine(), **({"torch_threads": results["torch_threads"]} if results.get("torch_threads") else {})},
        }

    def publish(self, run_dir: Path, command: str) -> Path:
        record = self.run_record(run_dir, command)
        self.results.mkdir(parents=True, exist_ok=True)
        out = self.published_path(record["dataset"], record["method"], record["seed"], budget_label(record["steps"]))
        out.write_text(json.dumps(record, indent=2) + "\n")
        return out

    def published_path(self, dataset: str, method: str, seed: int, budget: str) -> Path:
        return self.results / f"{file_safe(dataset)}__{method}__s{seed}__{budget}.json"

    def published_reason(self, point: dict[str, Any], budget: str) -> str | None:
        """Why a sweep point needs no run: its result at this budget is already published."""
        path = self.published_path(str(point["dataset"]), self.method_of(str(point["uncertainty"])), int(point["seed"]), budget)
        return f"published as {path.name}" if path.exists() else None

    def publish_finished(self, spec: SweepSpec, sweep_dir: Path, budget: str, command: str) -> list[Path]:
        """Publish the trials that finished here but were not published (a kill fell in between).

        The record's ``commit`` and ``command`` are those of the publishing call, which continues
        the same campaign.
        """
        rows = self.status(spec, sweep_dir, budget)
        return [self.publish(sweep_dir / "trials" / row["trial"], command) for row in rows if row["state"] == "finished"]

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(p.read_text()) for p in sorted(self.results.glob("*__s*__*.json"))]

    # ------------------------------------------------------------------------------- tables
    def build_table(self) -> dict[str, Any]:
        """Write table.json (:meth:`table`) and return it."""
        table = self.table()
        self.results.mkdir(parents=True, exist_ok=True)
        (self.results / "table.json").write_text(json.dumps(table, indent=2) + "\n")
        return table

    def table(self) -> dict[str, Any]:
        """Per dataset × budget, each method's mean ± std over seeds beside the paper's, from the published runs alone."""
        cells: dict[tuple[str, int], dict[str, Any]] = {}
        everything = self.records()
        records = [r for r in everything if r["seed"] in self.seeds]
        # runs on other seeds chose or checked a setting (e.g. ood_table.py's stage 0, seed 3):
        # listed apart, never averaged into a reported cell
        checks = [
            {k: r.get(k) for k in ("dataset", "method", "seed", "steps", "horizon", "lam", "return_last", "return_best", "mean_penalty_last_epoch")}
            for r in everything
            if r["seed"] not in self.seeds
        ]
        for rec in records:
            cell = cells.setdefault((rec["dataset"], rec["steps"]), {"batch_mean": rec["batch_mean"], "batch_max": rec["batch_max"], "runs": {}})
            cell["runs"].setdefault(rec["method"], []).append(rec)
        rows = []
        for (dataset, steps), cell in sorted(cells.items()):
            row: dict[str, Any] = {"dataset": dataset, "steps": steps, "batch_mean": cell["batch_mean"], "batch_max": cell["batch_max"]}
            for method, runs in cell["runs"].items():
                runs.sort(key=lambda r: r["seed"])
                returns = [r["return_last"] for r in runs]
                tails = [tail_mean(r["curve"]) for r in runs]
                row[method] = {
                    **mean_std(returns), "seeds": [r["seed"] for r in runs], "returns": returns, "h": runs[0]["horizon"], "lam": runs[0]["lam"],
                    f"last{TAIL_EVALS}_evals": mean_std(tails),
                }
            if dataset in self.paper:
                row["paper"] = self.paper[dataset]
            rows.append(row)
        table = {
            "rows": rows, "models": self.model_rows(records), "runs": len(records), "setting_checks": checks,
            "deeper_runs": deeper_run_checks(records),
            "across_budgets": across_budgets(records, list(self.methods)),
            "trajectories": trajectories(records, list(self.methods), self.window_steps()),
            "note": (
                f"return_last: mean of 10 deterministic episodes after the last epoch; last{TAIL_EVALS}_evals: each run's mean of its last {TAIL_EVALS} evaluations; "
                "mean ± population std over seeds; models: one row per shared model and budget (dataset × seed × steps) with its fit and each method's "
                "mean u(s, a) (before λ) and raw model reward per model step at the last epoch; deeper_runs: each run at a larger budget against the "
                "same dataset, method and seed at a smaller one (same model fit? equal evaluations where the curves overlap?); "
                f"across_budgets: per dataset × seed run at several budgets, each method's last return and last-{TAIL_EVALS} mean at each budget, which "
                f"method is ahead there, and its deepest run's best {TAIL_EVALS} consecutive evaluations against its last {TAIL_EVALS} (a late decline); "
                "trajectories: each run at the deepest budget, its mean return and episode length over the evaluations in each window of the "
                "first stage's budget (end_steps: where the window ends)"
            ),
        }
        return table

    def window_steps(self) -> int:
        """The window the deepest runs are read in (``trajectories``): the first stage's budget, where the shortest rows end."""
        return min(stage.steps for stage in self.stages.values())

    def model_rows(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """One row per shared model and budget (dataset × seed × steps): its fit, and what each method saw in it.

        The model's fit sets the penalty's scale (a worse fit, larger variances, larger u), so the
        penalty is read beside the fit: epochs and why it stopped, the elites' mean holdout MSE, the
        device, and per method its λ, the mean u(s, a) (before λ; not computed at λ = 0) and mean
        raw model reward per model step at the last epoch, and the last return. A deeper stage may
        run on a refitted model (another machine's fit of the same seed), so each budget is its own
        row: a row never mixes one budget's run with another's model.
        """
        models: dict[tuple[str, int, int], dict[str, Any]] = {}
        for rec in sorted(records, key=lambda r: (r["dataset"], r["seed"], r["steps"], r["method"])):
            dataset, method, seed = rec["dataset"], rec["method"], rec["seed"]
            fit = rec.get("dynamics_fit") or {}
            holdout = fit.get("holdout_mse") or []
            elites = fit.get("elites") or range(len(holdout))
            row = models.setdefault((dataset, seed, rec["steps"]), {
                "dataset": dataset, "seed": seed, "steps": rec["steps"], "epochs": fit.get("epochs"), "stop_reason": fit.get("stop_reason"),
                "elite_holdout_mse": round(statistics.fmean(holdout[i] for i in elites), 5) if holdout else None,
                "device": "cuda" if str(fit.get("device", "cpu")).startswith("cuda") else fit.get("device", "cpu"),
                "methods": {},
            })
            last = rec["curve"][-1] if rec.get("curve") else {}
            row["methods"][method] = {
                "steps": rec["steps"], "return_last": round(rec["return_last"], 1), "lam": rec["lam"],
                "u": round_or_none(last.get("rollout_mean_penalty")) if rec["lam"] else None, "raw_model_reward": round_or_none(last.get("rollout_mean_raw_reward")),
            }
        return list(models.values())

    # ---------------------------------------------------------------------------------- CLI
    def _stage_spec(self, args: argparse.Namespace, number: int) -> tuple[SweepSpec, str]:
        """The sweep of one stage as the command line narrows it, and its budget label (``100k``)."""
        stage = self.stages[number]
        steps = args.steps or stage.steps
        methods = args.methods or list(stage.methods or self.methods)
        seeds = args.seeds or list(stage.seeds or self.seeds)
        spec = self.sweep_spec(args.cell or list(stage.cells), methods, seeds, steps)
        spec.reuse_models = list(args.reuse_models or [])
        spec.dataset_major = stage.cells_in_order
        return spec, budget_label(steps)

    def _inspect_or_fit_stage(self, args: argparse.Namespace, number: int) -> int:
        """``--status`` (print where each run stands) or ``--models-only`` for one stage; failures."""
        spec, budget = self._stage_spec(args, number)
        if args.models_only:
            say = lambda m: print(f"[{self.name}] {m}", flush=True)  # noqa: E731
            return len(fit_shared_dynamics(spec, Path(args.sweep_dir), say, args.device, workers=args.workers, threads=args.threads))
        self.print_status(spec, Path(args.sweep_dir), budget, number, workers=args.workers, record=args.record_in_flight,
                          carry=args.carry_in_flight)
        return 0

    def main(self, argv: list[str] | None = None, description: str = "") -> int:
        parser = argparse.ArgumentParser(description=description)
        default_stage = min(self.stages) if self.default_stage is None else self.default_stage
        parser.add_argument(
            "--stage",
            type=int,
            nargs="+",
            choices=sorted(self.stages),
            default=[default_stage],
            help="one or more stages, run in this order (--stage 1 2: stage 2 starts once stage 1 is done, so a background job never idles)",
        )
        parser.add_argument("--cell", action="append", metavar="DATASET", help="run only these datasets (repeatable)")
        parser.add_argument("--methods", nargs="+", choices=list(self.methods), help="default: the stage's, else all")
        parser.add_argument("--seeds", nargs="+", type=int, help="default: the stage's, else the campaign's")
        parser.add_argument("--steps", type=int, help="gradient steps per run (default: the stage's)")
        parser.add_argument("--workers", type=int, default=2, help="concurrent trials (default 2: one torch thread each on 2 cores)")
        parser.add_argument("--threads", type=int, help="torch threads per trial (default: cores / workers; 1 when two campaigns share 2 cores)")
        parser.add_argument("--sweep-dir", default=str(ROOT / "sweeps" / self.name))
        parser.add_argument(
            "--reuse-models", action="append", metavar="DIR",
            help="take each shared model from this sweep directory (repeatable) where it holds the same fit (type, settings, seed, data) instead of fitting it",
        )
        parser.add_argument("--wandb", action="store_true", help="log every run to W&B (offline without an API key)")
        parser.add_argument("--device", help="where trials and models compute: auto (default), cpu, cuda, cuda:N")
        parser.add_argument("--table", action="store_true", help="only rebuild table.json and the plots from the published runs")
        parser.add_argument("--markdown", action="store_true", help="print the docs table")
        parser.add_argument("--models-table", action="store_true", help="print the docs table of shared models: fit, penalty and raw model reward per method")
        parser.add_argument(
            "--write-docs", action="store_true", help="rebuild table.json and the plots, then regenerate the tables between the docs' generated-block markers"
        )
        parser.add_argument("--status", action="store_true", help="only say where each run of the selection stands (published, in progress, waiting); read-only")
        parser.add_argument(
            "--record-in-flight", action="store_true",
            help=f"with --status: write each started run's checkpoint epoch into the results' {in_flight.FILE} (commit it; on a machine without "
                 "this sweep directory --status and the campaign then say how many epochs of each run were lost)",
        )
        parser.add_argument(
            "--carry-in-flight", action="store_true",
            help=f"with --status: --record-in-flight, and pack each started run as it trains (without its model pool, shared model "
                 f"and logger folders: a few MB) into the results' {in_flight.ARCHIVES}/, and each shared model they need once "
                 "(commit them; a campaign on a machine without this sweep directory takes those models and continues the runs "
                 "from there, not bit-exact)",
        )
        parser.add_argument(
            "--pack-started", metavar="DIR",
            help="stop the campaign first; pack each started run of the selection into DIR/<trial>.tar.gz (mopo-kit pack, without its model pool) "
                 "to continue elsewhere, e.g. on a lent GPU (benchmarks/device_session.sh continue)",
        )
        parser.add_argument(
            "--unpack", nargs="+", metavar="ARCHIVE",
            help="put runs packed elsewhere back into this sweep's trials (each replaces its older copy); the next campaign run continues them",
        )
        parser.add_argument("--rerun", action="store_true", help="also run the grid points whose result at this budget is already published")
        parser.add_argument(
            "--models-only", action="store_true", help="only fit the selection's shared dynamics models (--workers at once), e.g. on a GPU before the runs go to CPUs"
        )
        args = parser.parse_args(argv)
        if (args.record_in_flight or args.carry_in_flight) and not args.status:
            parser.error("--record-in-flight and --carry-in-flight go with --status")
        if args.pack_started or args.unpack:
            return self.move_runs(args)
        if args.status or args.models_only:
            failures = 0
            with stoppable(self.name) as stopped:  # --models-only: fits checkpoint and stop, exit 143
                failures = sum(self._inspect_or_fit_stage(args, stage) for stage in args.stage)
            return stopped[0] if stopped else (1 if failures else 0)
        command = f"python benchmarks/{Path(sys.argv[0]).name} " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))

        def done(summary: dict[str, Any]) -> None:
            print(f"[{self.name}] published {self.publish(Path(summary['run_dir']), command).name}", flush=True)
            self.build_table()

        with stoppable(self.name) as stopped:
            for number in args.stage if not (args.table or args.write_docs) else ():
                spec, budget = self._stage_spec(args, number)
                for path in self.publish_finished(spec, Path(args.sweep_dir), budget, command):
                    print(f"[{self.name}] published {path.name}", flush=True)
                # a run carried from another machine (in_flight/) continues here from its archive; one recorded
                # further along without an archive starts over: each said once, up front
                for line in self.adopt_carried(spec, Path(args.sweep_dir), budget):
                    print(f"[{self.name}] {line}", flush=True)
                for trial, loss in in_flight.lost(self.results, self.status(spec, Path(args.sweep_dir), budget), budget).items():
                    print(f"[{self.name}] lost elsewhere: {in_flight.lost_line(trial, loss)}", flush=True)
                run_sweep(
                    spec,
                    Path(args.sweep_dir),
                    workers=args.workers,
                    wandb=args.wandb,
                    say=lambda m: print(f"[{self.name}] {m}", flush=True),
                    on_trial_done=done,
                    device=args.device,
                    threads=args.threads,
                    skip=None if args.rerun else partial(self.published_reason, budget=budget),
                )
        if stopped:
            return stopped[0]
        table = self.build_table()
        self.plot_curves(ROOT / "docs" / "img")
        if args.write_docs:
            for path in self.write_docs(table):
                print(f"[{self.name}] wrote {path.relative_to(ROOT)}")
            return 0
        if args.models_table:
            print(self.models_markdown(table))
        else:
            print(self.markdown(table) if args.markdown else json.dumps(table["rows"], indent=1, default=str)[:4000])
        return 0


@contextlib.contextmanager
def stoppable(name: str) -> Iterator[list[int]]:
    """A campaign's runs under :func:`mopo_kit.stop.graceful_stop`, as ``mopo-kit sweep`` runs.

    SIGTERM/SIGINT (``kill PID``, a scheduler, Ctrl-C) then stop the sweep the graceful way — each
    running trial finishes its update and writes a checkpoint, a shared model being fitted stops
    after its epoch's fit checkpoint, nothing new starts — instead of killing the campaign process
    mid-way. The yielded list receives the exit status (143/130) when that happened.
    """
    from mopo_kit.stop import StopRequested, graceful_stop

    stopped: list[int] = []
    try:
        with graceful_stop():
            yield stopped
    except StopRequested as exc:
        print(f"[{name}] {exc}", file=sys.stderr, flush=True)
        stopped.append(exc.exit_code)


def _dataset_summary(dataset: str) -> tuple[float, float]:
    from mopo_kit.data.load import load_dataset

    summary = load_dataset(dataset).summary()
    return round(summary.return_mean, 1), round(summary.return_max, 1)


def _started(extensions: list[dict[str, int]], steps_per_epoch: int) -> str:
    """How a run began, for its JSON: ``from scratch``, or ``extended from 300k`` (each budget it passed).

    A budget raised before the run finished it (killed at epoch 150 of 300, resumed with 1,000
    epochs) is not a finished shorter run extended: the run is one from scratch whose budget was
    raised on the way, and says so with the epoch (records written before ``at_epoch`` existed
    were all of finished runs).
    """
    budget = lambda epochs: budget_label(epochs * steps_per_epoch)  # noqa: E731
    finished = [e for e in extensions if e.get("at_epoch", e["from_epochs"]) >= e["from_epochs"]]
    raised = [e for e in extensions if e not in finished]
    text = "extended from " + " then ".join(budget(e["from_epochs"]) for e in finished) if finished else "from scratch"
    if raised:
        text += " (budget raised before it finished: " + ", ".join(f"{budget(e['from_epochs'])} → {budget(e['to_epochs'])} at epoch {e['at_epoch']}" for e in raised) + ")"
    return text
