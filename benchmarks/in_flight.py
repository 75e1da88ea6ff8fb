"""Where a campaign's unfinished runs stood, committed beside its results: what a new machine lost.

A run's checkpoint lives in its sweep directory, on the machine that ran it. The same machine
continues it after a kill; another machine (the next session's, a cluster node) finds no trial
directory and starts it from scratch. Nothing on that machine can tell that hours of it existed
elsewhere. ``--record-in-flight`` writes each started run's checkpoint epoch into
``<results>/in_flight.json`` (small, committed with the results); a later ``--status`` or campaign
run anywhere compares it with its own sweep directory and says, per run, how many epochs are gone
and where they were, instead of silently starting over.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any

FILE = "in_flight.json"


def key(trial: str, budget: str) -> str:
    """One run of one stage: a trial id at a budget (the 300k and 1M runs of a seed are two runs)."""
    return f"{trial}@{budget}"


def read(results: Path) -> dict[str, dict[str, Any]]:
    """The recorded runs (key → record), or none when nothing was recorded."""
    path = results / FILE
    return json.loads(path.read_text()).get("runs", {}) if path.exists() else {}


def record(results: Path, rows: list[dict[str, Any]], budget: str, sweep_dir: Path, commit: str) -> dict[str, dict[str, Any]]:
    """Merge the selection's status rows into ``in_flight.json`` and return its runs.

    A started run is recorded at its checkpoint epoch; a published or finished one is dropped
    (nothing of it can be lost any more); a run waiting here keeps its record, since that record is
    exactly what a new machine lost. Runs outside the selection are left as they are.
    """
    runs = read(results)
    stamp = {"recorded": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "host": socket.gethostname(), "sweep_dir": str(sweep_dir), "commit": commit}
    for row in rows:
        name = key(row["trial"], budget)
        if row["state"] in ("published", "finished"):
            runs.pop(name, None)
        elif row["state"] == "started" and row.get("checkpoint_epoch", 0) >= runs.get(name, {}).get("checkpoint_epoch", 0):
            runs[name] = {"checkpoint_epoch": row.get("checkpoint_epoch", 0), "epochs": row["epochs"], **stamp}
    results.mkdir(parents=True, exist_ok=True)
    note = ("each unfinished run's checkpoint epoch where it ran (python benchmarks/<campaign>.py --status --record-in-flight); "
            "a machine without that sweep directory starts such a run over, and --status there says how many epochs were lost")
    (results / FILE).write_text(json.dumps({"note": note, "runs": dict(sorted(runs.items()))}, indent=2) + "\n")
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
    return out


def lost_line(trial: str, loss: dict[str, Any]) -> str:
    """One line for a run that restarts below where it stood elsewhere."""
    return (f"{trial}: was at checkpoint epoch {loss['recorded_at_epoch']} in {loss['sweep_dir']} on {loss['host']} "
            f"(recorded {loss['recorded']}); this sweep holds epoch {loss['here_at_epoch']}, {loss['epochs_lost']} epochs behind: "
            f"they are lost here and rerun from epoch {loss['here_at_epoch']}")
