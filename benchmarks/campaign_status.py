"""Where a campaign's runs stand, and how they move: ``--status``, ``--record-in-flight``, ``--carry-in-flight``, ``--pack-started``, ``--unpack``.

:class:`CampaignStatus` is mixed into :class:`campaign.Campaign` (as :class:`campaign_docs.CampaignDocs`
is): it reads trial directories read-only — state, checkpoint epoch, last evaluation, pace,
whether a deeper run still retraces its shorter one — says what a stage still needs, and moves a
stage's started runs to another machine and back (``mopo-kit pack``). Nothing here runs a trial.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import in_flight
from budgets import curve_agreement, window_means
from common import ROOT, commit
from run_stats import TAIL_EVALS, budget_label, file_safe, same_model_fit, tail_mean, up_to_end_of

if TYPE_CHECKING:
    from mopo_kit.experiments.sweep import SweepSpec


class CampaignStatus:
    """Status and moves for :class:`campaign.Campaign` (its fields are declared here for the type checker only)."""

    name: str
    results: Path

    def method_of(self, uncertainty: str) -> str:  # provided by Campaign
        raise NotImplementedError

    def published_reason(self, point: dict[str, Any], budget: str) -> str | None:  # provided by Campaign
        raise NotImplementedError

    def _stage_spec(self, args: argparse.Namespace, number: int) -> tuple["SweepSpec", str]:  # provided by Campaign
        raise NotImplementedError

    def window_steps(self) -> int:  # provided by Campaign
        raise NotImplementedError

    def status(self, spec: SweepSpec, sweep_dir: Path, budget: str) -> list[dict[str, Any]]:
        """Where each grid point stands, read-only (safe while the campaign runs in the background).

        ``published`` (its JSON exists at this budget), ``finished`` (done here but not yet
        published: the next run of the campaign publishes it), ``started`` (a trial directory with
        ``epoch`` of ``epochs`` done, in progress or killed; a resume restarts from
        ``checkpoint_epoch``, and a run finished at a smaller budget is extended from there; with
        its last evaluation and pace where its metrics hold them, :func:`_pace`), or
        ``waiting``; ``model`` says whether its shared dynamics model in ``sweep_dir`` is
        ``fitted``, ``fitting`` (a process holds its fit lock) or ``missing``, with the epoch its fit
        checkpoint holds when there is one.
        """
        from mopo_kit.experiments.shared_models import model_job
        from mopo_kit.experiments.sweep import finished_epochs, trial_id

        epochs = int(spec.base["epochs"])
        rows = []
        for point in spec.trials():
            run_dir = sweep_dir / "trials" / trial_id(point)
            model_dir = Path(model_job(spec, sweep_dir, point)["target"])
            row: dict[str, Any] = {
                "trial": trial_id(point),
                "dataset": str(point["dataset"]),
                "model": model_state(model_dir),
                "model_name": model_dir.name,
                "epochs": epochs,
            }
            if self.published_reason(point, budget):
                row["state"] = "published"
            elif (run_dir / "metrics.jsonl").exists():
                metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
                progress = run_dir / "checkpoint" / "progress.json"
                row["epoch"] = metrics[-1].get("epoch", len(metrics)) if metrics else 0
                row["checkpoint_epoch"] = json.loads(progress.read_text()).get("epoch", 0) if progress.exists() else 0
                row.update(_pace(metrics))
                windows = window_means(metrics, self.window_steps(), epochs * int(spec.base["steps_per_epoch"]))
                row["windows"] = windows[: max((i + 1 for i, w in enumerate(windows) if w["evaluations"]), default=0)]  # up to the run's last evaluation
                row["state"] = "finished" if finished_epochs(run_dir) >= epochs else "started"
                shorter = self._shorter_published(point, epochs * int(spec.base["steps_per_epoch"]))
                if shorter is not None:
                    compared, equal = curve_agreement(shorter["curve"], metrics)
                    report = model_dir / "fit_report.json"  # None: no model here to compare (not yet fitted)
                    same = same_model_fit(shorter, {"dynamics_fit": json.loads(report.read_text())}) if report.exists() else None
                    row["retrace"] = {"shorter": budget_label(shorter["steps"]), "compared": compared, "equal": equal, "same_model_fit": same}
                    if row["epoch"] >= max(p["epoch"] for p in shorter["curve"]):  # past the shorter budget: both runs' standing there
                        row["retrace"]["last5"] = (tail_mean(up_to_end_of(metrics, shorter["curve"])), tail_mean(shorter["curve"]))
            else:
                row["state"] = "waiting"
            rows.append(row)
        return rows

    def _shorter_published(self, point: dict[str, Any], steps: int) -> dict[str, Any] | None:
        """The published run of this grid point at the largest budget below ``steps``, if any."""
        dataset, method, seed = str(point["dataset"]), self.method_of(str(point["uncertainty"])), int(point["seed"])
        shorter = [json.loads(p.read_text()) for p in self.results.glob(f"{file_safe(dataset)}__{method}__s{seed}__*.json")]
        shorter = [r for r in shorter if r.get("dataset") == dataset and r.get("steps", steps) < steps and r.get("curve")]
        return max(shorter, key=lambda r: r["steps"]) if shorter else None

    def print_status(
        self, spec: "SweepSpec", sweep_dir: Path, budget: str, number: int, *, workers: int, record: bool, carry: bool = False,
    ) -> None:
        """``--status``: one line per run, the stage's counts, the compute left, runs lost elsewhere;
        with ``record``, the started runs noted in ``in_flight.json``; with ``carry``, each also
        packed beside it to continue on another machine (:meth:`carry_in_flight`)."""
        rows = self.status(spec, sweep_dir, budget)
        losses = in_flight.lost(self.results, rows, budget)
        carried_models = in_flight.read_models(self.results)
        for row in rows:
            progress = f" epoch {row['epoch']}/{row['epochs']} (checkpoint {row['checkpoint_epoch']})" if "epoch" in row else ""
            if "last_return" in row:
                progress += f", last evaluation {row['last_return']:,.0f} at epoch {row['last_return_epoch']}"
            if len(row.get("windows", [])) > 1:  # a long run's course so far, as the docs' trajectories block reads it
                means = ", ".join("—" if w["return_mean"] is None else f"{w['return_mean']:,.0f}" for w in row["windows"])
                progress += f", means per {budget_label(self.window_steps())} so far {means}"
            if "retrace" in row:  # a deeper run from scratch on the same fit should retrace its shorter run, bit for bit
                retrace = row["retrace"]
                progress += f", {retrace['equal']} of {retrace['compared']} evaluations equal to its {retrace['shorter']} run"
                if retrace["same_model_fit"] is False:  # e.g. refitted on another machine: a new trajectory, not that run extended
                    progress += " (on another model fit than that run's: a new trajectory)"
                own, other = retrace.get("last5", (None, None))
                if own is not None and other is not None and retrace["equal"] < retrace["compared"]:
                    progress += f"; last {TAIL_EVALS} up to {retrace['shorter']}: {own:,.0f} here, {other:,.0f} there"
            if "seconds_per_epoch" in row and row["state"] == "started":
                left = (row["epochs"] - row["epoch"]) * row["seconds_per_epoch"] / 60
                progress += f", {row['seconds_per_epoch']:.1f} s/epoch (~{left:.0f} min left at that pace)"
            print(f"{row['state']:9} {row['trial']}{progress}  model {row['model']}{_carried_model_note(self.results, row, carried_models)}")
        counts = {state: sum(r["state"] == state for r in rows) for state in ("published", "finished", "started", "waiting")}
        print(f"[{self.name}] stage {number} at {budget}: " + ", ".join(f"{n} {state}" for state, n in counts.items()) + f" of {len(rows)}")
        left = compute_left(rows)
        if left["runs"]:
            print(f"[{self.name}] left at the started runs' pace: ≈ {left['core_hours']:.1f} core-hours for {left['runs']} run(s) "
                  f"(≈ {left['core_hours'] / max(1, workers):.1f} h on {workers} worker(s); model fits not counted)"
                  + (f"; {left['without_pace']} run(s) of cells with no pace yet not counted" if left["without_pace"] else ""))
        for trial, loss in losses.items():
            print(f"[{self.name}] lost elsewhere: {in_flight.lost_line(trial, loss)}")
        if record or carry:
            carried, models = self.carry_in_flight(sweep_dir, budget, rows) if carry else ({}, {})
            command = f"python benchmarks/{Path(sys.argv[0]).name} " + " ".join(sys.argv[1:])
            recorded = in_flight.record(self.results, rows, budget, sweep_dir.resolve(), commit(), carried, models, command)
            print(f"[{self.name}] recorded {sum(k.endswith('@' + budget) for k in recorded)} unfinished run(s) at {budget} in "
                  f"{(self.results / in_flight.FILE).relative_to(ROOT) if self.results.is_relative_to(ROOT) else self.results / in_flight.FILE}")

    def carry_in_flight(self, sweep_dir: Path, budget: str, rows: list[dict[str, Any]]) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
        """Pack each started run, as it trains, into the results' ``in_flight/``, and each fitted shared
        model an unpublished run of the selection uses into ``in_flight/models/``; (runs, models) packed now.

        Lean (``pack_run(live=True, with_model=False, with_logs=False)``): a few MB to commit, so
        that a campaign on a machine without this sweep directory continues the runs
        (:meth:`adopt_carried`) instead of starting them over, on these very models. A run whose
        archive already holds its checkpoint epoch, or a model whose archive holds it, is not packed again.
        """
        import hashlib

        from mopo_kit.dynamics.storage import dynamics_checksum
        from mopo_kit.errors import MopoKitError
        from mopo_kit.experiments.pack import pack_model, pack_run

        recorded, recorded_models = in_flight.read(self.results), in_flight.read_models(self.results)
        carried: dict[str, dict[str, Any]] = {}
        models: dict[str, dict[str, Any]] = {}

        def commit_archive(fresh: Path, target: Path, packed: dict[str, Any]) -> dict[str, Any]:
            fresh.replace(target)
            return {**packed, "archive": str(target), "sha256": hashlib.sha256(target.read_bytes()).hexdigest()}

        for row in rows:
            if row["state"] in ("published", "finished") or not str(row.get("model", "")).startswith("fitted"):
                continue
            name, model_dir = row["model_name"], sweep_dir / "dynamics" / row["model_name"]
            target = in_flight.model_archive_path(self.results, name)
            if name in models or (target.exists() and recorded_models.get(name, {}).get("dynamics_sha256") == dynamics_checksum(model_dir)):
                continue
            fresh = target.with_name(target.name + ".new")
            fresh.unlink(missing_ok=True)
            models[name] = commit_archive(fresh, target, pack_model(model_dir, fresh))
            print(f"[{self.name}] carried model {name}: {target.name} ({models[name]['bytes'] / 2**20:.1f} MiB)")
        for row in rows:
            name = in_flight.key(row["trial"], budget)
            target = in_flight.archive_path(self.results, row["trial"], budget)
            if row["state"] != "started" or not row.get("checkpoint_epoch"):
                continue
            if target.exists() and recorded.get(name, {}).get("archive_epoch") == row["checkpoint_epoch"]:
                continue
            fresh = target.with_name(target.name + ".new")
            fresh.unlink(missing_ok=True)
            try:
                packed = pack_run(sweep_dir / "trials" / row["trial"], fresh, live=True, with_model=False, with_logs=False)
            except MopoKitError as exc:
                print(f"[{self.name}] not carried: {exc}", file=sys.stderr)
                continue
            carried[row["trial"]] = commit_archive(fresh, target, packed)
            print(f"[{self.name}] carried {row['trial']} at epoch {packed['epoch']}: {target.name} ({packed['bytes'] / 2**20:.1f} MiB)")
        return carried, models

    def adopt_carried(self, spec: "SweepSpec", sweep_dir: Path, budget: str) -> list[str]:
        """Take what another machine carried in ``in_flight/``: its shared models, then its runs; the lines said.

        Each carried model of the selection is unpacked into ``SWEEP_DIR/carried/`` and that folder
        added to the sweep's ``reuse_models``, so the sweep takes it (same type, settings, seed and
        data: ``ensure_shared_dynamics`` checks) instead of fitting another — a fit here may differ.
        Each run lost here but carried is put into the sweep's trials, pointed at the sweep's shared
        model; it continues from the archive's epoch (the resume refuses a model whose checksum
        differs from the one packed), its model pool refilled by fresh rollouts: not bit-exact.
        """
        from mopo_kit.dynamics.storage import dynamics_checksum, is_dynamics_dir
        from mopo_kit.errors import MopoKitError
        from mopo_kit.experiments.pack import unpack_model, unpack_run
        from mopo_kit.experiments.shared_models import shared_model_dir
        from mopo_kit.experiments.sweep import trial_id

        points = {trial_id(point): point for point in spec.trials()}
        rows = self.status(spec, sweep_dir, budget)
        said = []
        carried_models = in_flight.read_models(self.results)
        for name in sorted({row["model_name"] for row in rows if row["state"] not in ("published", "finished")} & set(carried_models)):
            archive = self.results / carried_models[name]["archive"]
            here = sweep_dir / "dynamics" / name
            if is_dynamics_dir(here):
                if dynamics_checksum(here) != carried_models[name]["dynamics_sha256"]:
                    said.append(f"model {name}: this sweep's differs from the one carried from {carried_models[name].get('host')}; "
                                "runs carried on it will stop with one line (move this sweep's model away to take the carried one)")
                continue
            try:
                unpack_model(archive, sweep_dir / "carried")
            except MopoKitError as exc:
                said.append(f"model {name} not taken from its archive: {exc}")
                continue
            said.append(f"model {name}: taken from its carried archive (fitted on {carried_models[name].get('host')}), not fitted here")
        if (sweep_dir / "carried").is_dir() and str(sweep_dir / "carried") not in spec.reuse_models:
            spec.reuse_models.append(str(sweep_dir / "carried"))
        for trial, loss in in_flight.lost(self.results, rows, budget).items():
            if "archive" not in loss:
                continue
            try:
                back = unpack_run(loss["archive"], sweep_dir / "trials", dynamics_dir=shared_model_dir(sweep_dir, points[trial]))
            except MopoKitError as exc:
                said.append(f"not continued from its archive: {exc}")
                continue
            said.append(f"continued from its carried archive: {trial} at epoch {back['epoch']} "
                        f"({loss['recorded_at_epoch'] - back['epoch']} epochs behind its record on {loss['host']}; not bit-exact: model pool refilled)")
        return said

    def move_runs(self, args: argparse.Namespace) -> int:
        """``--pack-started`` / ``--unpack``: a stage's runs to another machine and back (each one line)."""
        from mopo_kit.errors import MopoKitError
        from mopo_kit.experiments.pack import pack_run, unpack_run

        sweep_dir, failures = Path(args.sweep_dir), 0
        for archive in args.unpack or []:
            try:
                back = unpack_run(Path(archive), sweep_dir / "trials")
            except MopoKitError as exc:
                print(f"[{self.name}] {exc}", file=sys.stderr)
                failures += 1
                continue
            before = "new here" if back["replaced_epoch"] is None else f"replacing its copy at epoch {back['replaced_epoch']}"
            print(f"[{self.name}] unpacked {back['run']} at epoch {back['epoch']} ({before})")
        for number in args.stage if args.pack_started else ():
            spec, budget = self._stage_spec(args, number)
            for row in self.status(spec, sweep_dir, budget):
                if row["state"] != "started" or not row.get("checkpoint_epoch"):
                    continue
                try:
                    packed = pack_run(sweep_dir / "trials" / row["trial"], Path(args.pack_started) / f"{row['trial']}.tar.gz")
                except MopoKitError as exc:
                    print(f"[{self.name}] {exc}", file=sys.stderr)
                    failures += 1
                    continue
                print(f"[{self.name}] packed {row['trial']} at epoch {packed['epoch']}: {packed['archive']} ({packed['bytes'] / 2**20:.1f} MiB)")
        return 2 if failures else 0


def _pace(metrics: list[dict[str, Any]], window: int = 10) -> dict[str, Any]:
    """The last evaluation's return and the median seconds per epoch over the last ``window`` epochs.

    Why: a 300k-step run takes about an hour on two CPU cores, and whoever watches a background
    campaign wants to know whether a run is learning and when the next one will be published.
    Keys are left out when the metrics do not hold them yet (no evaluation, no timed epoch).
    """
    out: dict[str, Any] = {}
    evaluations = [m for m in metrics if "return_mean" in m]
    if evaluations:
        out["last_return"] = float(evaluations[-1]["return_mean"])
        out["last_return_epoch"] = int(evaluations[-1].get("epoch", len(metrics)))
    seconds = [float(m["epoch_seconds"]) for m in metrics if "epoch_seconds" in m][-window:]
    if seconds:
        out["seconds_per_epoch"] = float(statistics.median(seconds))
    return out


def compute_left(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The compute a stage still needs, from its status rows: each started run's epochs left at its
    own pace, each waiting run's at the median pace of its cell's started runs (a campaign is
    planned in sessions of a few hours, and the pace of one cell says little of another's: a
    hopper-mixed epoch at h = 5 takes 2.5× a walker2d-mixed one at h = 1)."""
    paces: dict[str, list[float]] = {}
    for row in rows:
        if row["state"] == "started" and "seconds_per_epoch" in row:
            paces.setdefault(row["dataset"], []).append(row["seconds_per_epoch"])
    seconds, runs, without = 0.0, 0, 0
    for row in rows:
        if row["state"] == "started" and "seconds_per_epoch" in row:
            seconds += (row["epochs"] - row["epoch"]) * row["seconds_per_epoch"]
        elif row["state"] in ("started", "waiting") and row["dataset"] in paces:
            seconds += (row["epochs"] - row.get("epoch", 0)) * statistics.median(paces[row["dataset"]])
        elif row["state"] in ("started", "waiting"):
            without += 1
            continue
        else:
            continue
        runs += 1
    return {"core_hours": seconds / 3600, "runs": runs, "without_pace": without}


def model_state(target: Path) -> str:
    """``fitted``, ``fitting`` (another process holds the fit lock of ``ensure_shared_dynamics``) or ``missing``.

    A fit's per-epoch checkpoint adds how far it got: ``fitting (epoch 23 saved)``, or for a
    killed fit that the next run continues, ``missing (fit saved at epoch 23)``.
    """
    from mopo_kit.dynamics.fit_checkpoint import saved_epoch
    from mopo_kit.dynamics.storage import is_dynamics_dir
    from mopo_kit.experiments.shared_models import fit_checkpoint_path, fit_lock_path

    if is_dynamics_dir(target):
        return "fitted"
    epoch = saved_epoch(fit_checkpoint_path(target))
    if _fit_lock_held(fit_lock_path(target)):
        return "fitting" if epoch is None else f"fitting (epoch {epoch} saved)"
    return "missing" if epoch is None else f"missing (fit saved at epoch {epoch})"


def _fit_lock_held(lock: Path) -> bool:
    """Whether a process holds ``lock``: a shared, non-blocking probe that never waits or blocks the fitter."""
    import fcntl

    if not lock.exists():
        return False
    with open(lock) as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False


def _carried_model_note(results: Path, row: dict[str, Any], carried: dict[str, dict[str, Any]]) -> str:
    """For a model not fitted here that another machine carried: whether the campaign can take it.

    ``in_flight.json`` naming an archive that is not there (never committed, or removed) means the
    model is fitted again here, and runs carried on the other fit refuse it: said before it happens.
    """
    record = carried.get(row["model_name"])
    if record is None or row["model"] == "fitted" or row["state"] in ("published", "finished"):
        return ""
    if (results / record["archive"]).exists():
        return f" (carried: {record['archive']}, taken at the campaign's start)"
    return f" (carried from {record.get('host')}, but {record['archive']} is not here: the campaign fits it again, and runs carried on it will refuse that fit)"
