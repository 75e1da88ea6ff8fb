"""Where a campaign's unfinished runs stood, committed beside its results: what a new machine lost.

A run's checkpoint lives in its sweep directory, on the machine that ran it. The same machine
continues it after a kill; another machine (the next session's, a cluster node) finds no trial
directory and starts it from scratch. Nothing on that machine can tell that hours of it existed
elsewhere. ``--record-in-flight`` writes each started run's checkpoint epoch into
``<results>/in_flight.json`` (small, committed with the results); a later ``--status`` or campaign
run anywhere compares it with its own sweep directory and says, per run, how many epochs are gone
and where they were, instead of silently starting over.

``--carry-in-flight`` also packs each started run, while it trains, into
``<results>/in_flight/<trial>@<budget>.tar.gz`` (``mopo-kit pack --live --without-model
--without-logs``: SAC weights, optimizer and random states, metrics), and each shared model its
unpublished runs use into ``in_flight/models/`` (once: a fitted model does not change), committed
too. A campaign on another machine takes the carried models as its shared models (a fit is not
reproducible across CPUs: another instruction set gives other floats, and MOPO and MBPO of a seed
must stand on one model), unpacks the runs and continues each from its archive's epoch (the
resume checks the model's checksum), with the model pool refilled by fresh rollouts: not
bit-exact (recorded in the run's ``moves``). An archive goes when its run is published.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any

FILE = "in_flight.json"
ARCHIVES = "in_flight"  # the carried runs' archives, beside FILE


def key(trial: str, budget: str) -> str:
    """One run of one stage: a trial id at a budget (the 300k and 1M runs of a seed are two runs)."""
    return f"{trial}@{budget}"


def archive_path(results: Path, trial: str, budget: str) -> Path:
    """Where ``--carry-in-flight`` keeps a run's archive (one per run: a later carry replaces it)."""
    return results / ARCHIVES / f"{key(trial, budget)}.tar.gz"


def model_archive_path(results: Path, model: str) -> Path:
    """Where ``--carry-in-flight`` keeps a shared model (``walker2d-mixed-s0``) its carried and waiting runs need."""
    return results / ARCHIVES / "models" / f"{model}.tar.gz"


def read(results: Path) -> dict[str, dict[str, Any]]:
    """The recorded runs (key → record), or none when nothing was recorded."""
    path = results / FILE
    return json.loads(path.read_text()).get("runs", {}) if path.exists() else {}


def read_models(results: Path) -> dict[str, dict[str, Any]]:
    """The carried shared models (name → record: archive, checksum), or none."""
    path = results / FILE
    return json.loads(path.read_text()).get("models", {}) if path.exists() else {}


def record(
    results: Path, rows: list[dict[str, Any]], budget: str, sweep_dir: Path, commit: str,
    carried: dict[str, dict[str, Any]] | None = None, models: dict[str, dict[str, Any]] | None = None, command: str = "",
) -> dict[str, dict[str, Any]]:
    """Merge the selection's status rows into ``in_flight.json`` and return its runs.

    A started run is recorded at its checkpoint epoch, with its archive where ``carried`` (trial →
    :func:`mopo_kit.experiments.pack.pack_run`'s summary) holds one; a published or finished one is
    dropped, and its archive removed (nothing of it can be lost any more); a run waiting here keeps
    its record, since that record is exactly what a new machine lost. Runs outside the selection
    are left as they are. ``models`` (name → :func:`~mopo_kit.experiments.pack.pack_model`'s
    summary) are recorded as carried; a carried model none of whose runs in the selection is left
    unpublished goes, with its archive.
    """
    runs = read(results)
    carried_models = read_models(results)
    carried = carried or {}
    for name, packed in (models or {}).items():
        carried_models[name] = {"archive": f"{ARCHIVES}/models/{Path(packed['archive']).name}", "dynamics_sha256": packed["dynamics_sha256"],
                                "bytes": packed["bytes"], "sha256": packed["sha256"], "host": socket.gethostname(), "sweep_dir": str(sweep_dir),
                                "packed": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "commit": commit, **({"command": command} if command else {})}
    for model in {row["model_name"] for row in rows if row.get("model_name")}:
        if all(row["state"] in ("published", "finished") for row in rows if row.get("model_name") == model):
            carried_models.pop(model, None)
            model_archive_path(results, model).unlink(missing_ok=True)
    stamp = {"recorded": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "host": socket.gethostname(), "sweep_dir": str(sweep_dir), "commit": commit,
             **({"command": command} if command else {})}
    for row in rows:
        name = key(row["trial"], budget)
        if row["state"] in ("published", "finished"):
            runs.pop(name, None)
            archive_path(results, row["trial"], budget).unlink(missing_ok=True)
        elif row["state"] == "started" and (row["trial"] in carried or row.get("checkpoint_epoch", 0) >= runs.get(name, {}).get("checkpoint_epoch", 0)):
            # a run carried now is recorded where it is carried from, even below a record from a machine
            # that kept no archive: the archive is what another machine can continue (that machine, if
            # it comes back, holds its later checkpoint and continues that)
            kept = {k: v for k, v in runs.get(name, {}).items() if k.startswith("archive")}  # an archive not replaced this time
            runs[name] = {"checkpoint_epoch": row.get("checkpoint_epoch", 0), "epochs": row["epochs"], **stamp, **kept}
            if row["trial"] in carried:
                packed = carried[row["trial"]]
                runs[name].update(archive=f"{ARCHIVES}/{Path(packed['archive']).name}", archive_epoch=packed["epoch"],
                                  archive_bytes=packed["bytes"], archive_sha256=packed["sha256"])
    results.mkdir(parents=True, exist_ok=True)
    note = ("each unfinished run's checkpoint epoch where it ran (python benchmarks/<campaign>.py --status --record-in-flight); "
            "a machine without that sweep directory starts such a run over, and --status there says how many epochs were lost; "
            "with --carry-in-flight, the run's archive (in_flight/) lets a campaign there continue it from archive_epoch instead")
    payload: dict[str, Any] = {"note": note, "runs": dict(sorted(runs.items()))}
    if carried_models:
        payload["models"] = dict(sorted(carried_models.items()))
    (results / FILE).write_text(json.dumps(payload, indent=2) + "\n")
    return runs


def lost(results: Path, rows: list[dict[str, Any]], budget: str) -> dict[str, dict[str, Any]]:
    """Trial → what this machine lacks of it: the recorded checkpoint epoch above this sweep's, and where it was.

    Only runs not yet published or finished here count: a run that got past its record here (or
    was published) lost nothing.
    """
    runs = read(results)
    out = {}
    for row in rows:
        rec = runs.get(key(row["trial"], budget))
        if rec is None or row["state"] in ("published", "finished"):
            continue
        here = row.get("checkpoint_epoch", 0) if row["state"] == "started" else 0
        if here < rec["checkpoint_epoch"]:
            out[row["trial"]] = {"epochs_lost": rec["checkpoint_epoch"] - here, "recorded_at_epoch": rec["checkpoint_epoch"],
                                 "here_at_epoch": here, "host": rec.get("host"), "sweep_dir": rec.get("sweep_dir"), "recorded": rec.get("recorded")}
            archive = results / rec["archive"] if rec.get("archive") else None
            if archive is not None and archive.exists() and rec.get("archive_epoch", 0) > here:
                out[row["trial"]].update(archive=archive, archive_epoch=int(rec["archive_epoch"]))
    return out


def lost_line(trial: str, loss: dict[str, Any]) -> str:
    """One line for a run that restarts below where it stood elsewhere (or continues from its archive)."""
    where = (f"{trial}: was at checkpoint epoch {loss['recorded_at_epoch']} in {loss['sweep_dir']} on {loss['host']} "
             f"(recorded {loss['recorded']}); this sweep holds epoch {loss['here_at_epoch']}, {loss['epochs_lost']} epochs behind: ")
    if "archive" in loss:
        return where + (f"its carried archive {loss['archive'].name} holds epoch {loss['archive_epoch']}, and the campaign continues it "
                        "from there (on its carried model, checksum checked; model pool refilled: not bit-exact)")
    return where + f"they are lost here and rerun from epoch {loss['here_at_epoch']}"
