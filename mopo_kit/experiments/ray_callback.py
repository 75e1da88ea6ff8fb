"""The Tune callback that gives the Ray backend the local backend's per-trial reporting.

Imported only when a sweep runs on Ray (it imports Ray). A module of its own, not a class inside
the sweep function: Tune pickles its run config, callbacks included, and a class defined at module
level pickles by reference, without the console or publisher it reports to.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from ray import tune


class ReportEachTrial(tune.Callback):
    """In the driver process, as each Tune trial completes: say it and hand its summary on.

    What it reports to (a console, a campaign's publisher) lives only in this process, so it is
    left out of Tune's pickle; a copy restored elsewhere reports nothing.
    """

    def __init__(self, say: Callable[[str], None], on_trial_done: Callable[[dict[str, Any]], None] | None, summaries: list[dict[str, Any]]):
        self.say, self.on_trial_done, self.summaries = say, on_trial_done, summaries

    def __getstate__(self) -> dict[str, Any]:
        return {"say": None, "on_trial_done": None, "summaries": []}

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        metrics = trial.last_result or {}
        if self.say is None or "run_dir" not in metrics:
            return  # a restored copy, or a failed trial (reported with the others after the grid)
        name = Path(metrics["run_dir"]).name
        if metrics.get("skipped"):
            self.say(f"skip {name} ({metrics['skipped']}, since this sweep started)")
            return
        summary = {"run_dir": metrics["run_dir"], "last": {"return_mean": metrics.get("return_mean"), "normalized_mean": metrics.get("normalized_mean")}}
        self.summaries.append(summary)
        self.say(f"done {name}")
        if self.on_trial_done is not None:
            self.on_trial_done(summary)
