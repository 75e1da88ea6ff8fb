"""How the runs of one (dataset, method, seed) compare across budgets: the deeper stages' checks.

A campaign's deeper stage (300k, 1M steps) reruns a shorter one's cells. Two questions follow,
answered here from published run records (and, for ``curve_agreement``, a running trial's
metrics): is the deeper run the shorter one extended (its evaluations equal where the curves
overlap), and seed by seed, does the method ahead change with the budget or a policy decline
late? :mod:`campaign` puts both into ``table.json``; :mod:`campaign_docs` renders them.
"""

from __future__ import annotations

import itertools
import statistics
from typing import Any

from run_stats import TAIL_EVALS, best_window, fit_compared_by, round_or_none, runs_by_seed, same_model_fit, tail_mean, up_to_end_of


def curve_agreement(shorter: list[dict[str, Any]], deeper: list[dict[str, Any]]) -> tuple[int, int]:
    """How many evaluations two runs share by epoch, and how many of those returned exactly the same.

    ``deeper`` may be a published curve or a running trial's metrics rows (rows without an
    evaluation are skipped), so ``--status`` can say while a deeper run is still going whether it
    is retracing the shorter one.
    """
    short_curve = {p["epoch"]: p["return_mean"] for p in shorter if p.get("return_mean") is not None}
    overlap = [p for p in deeper if p.get("return_mean") is not None and p.get("epoch") in short_curve]
    return len(overlap), sum(p["return_mean"] == short_curve[p["epoch"]] for p in overlap)


def deeper_run_checks(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each run at a larger budget against the same (dataset, method, seed) at the next smaller one.

    A deeper stage resumes a shorter run where its trial directory survives, else starts from
    scratch; with the same model fit and deterministic training the fresh run retraces the shorter
    one, so equal evaluations where the curves overlap show it *is* that run extended, and unequal
    ones that the deeper number comes from another trajectory (e.g. a model refitted elsewhere).
    Both runs' mean of the last evaluations up to the shorter budget stand beside it: for another
    trajectory, their difference is what the fit (and chance) made, before any longer training.
    """
    checks = []
    for (dataset, method, seed), runs in runs_by_seed(records).items():
        for shorter, deeper in itertools.pairwise(runs):
            compared, equal = curve_agreement(shorter.get("curve", []), deeper.get("curve", []))
            # where the deeper run stood at the shorter budget: for a refit, the spread between two
            # fits at one budget, apart from what training longer did
            upto = up_to_end_of(deeper.get("curve", []), shorter.get("curve", []))
            checks.append({
                "dataset": dataset, "method": method, "seed": seed, "steps": deeper["steps"], "shorter_steps": shorter["steps"],
                "same_model_fit": same_model_fit(shorter, deeper),
                "fit_compared_by": fit_compared_by(shorter, deeper),
                "evaluations_compared": compared,
                "evaluations_equal": equal,
                "return_last_at_shorter_steps": round_or_none(shorter["return_last"], 1),
                "return_last": round_or_none(deeper["return_last"], 1),
                f"last{TAIL_EVALS}_of_shorter": round_or_none(tail_mean(shorter.get("curve", [])), 1),
                f"deeper_last{TAIL_EVALS}_at_shorter_steps": round_or_none(tail_mean(upto), 1),
            })
    return checks


def across_budgets(records: list[dict[str, Any]], methods: list[str]) -> list[dict[str, Any]]:
    """Per (dataset, seed) run at more than one budget: how each method stands at each budget, who is ahead, and how each ended.

    What a deeper stage is for, seed by seed rather than in a mean over three: at each budget each
    method's last return and last-5 mean (each from that budget's own published run, as the table
    rows are) and which method is ahead by each; and per method its deepest run's best window of
    :data:`run_stats.TAIL_EVALS` evaluations against its last ones, so a policy that was once much better
    than where it ended (the talk's late MBPO degradation) shows as a ``decline`` with its epoch.
    Each method's number at a larger budget says whether its run stands on the same model fit as
    the method's run at the budget before (``same_model_fit_as_shorter``): where it does not (a
    model refitted on another machine), the two numbers come from two trajectories, and a change
    between them is not something the longer training did; the run's own evaluation at the
    shorter budget's last epoch (``own_return_at_shorter``) is then what it changed from.
    """
    by_seed: dict[tuple[str, int], dict[str, list[dict[str, Any]]]] = {}
    for (dataset, method, seed), runs in runs_by_seed(records).items():
        if method in methods:
            by_seed.setdefault((dataset, seed), {})[method] = runs
    rows = []
    for (dataset, seed), runs in sorted(by_seed.items()):
        steps = sorted({r["steps"] for method_runs in runs.values() for r in method_runs})
        if len(steps) < 2:
            continue
        budgets = []
        for budget in steps:
            entry: dict[str, Any] = {"steps": budget}
            for method, method_runs in runs.items():
                run = next((r for r in method_runs if r["steps"] == budget), None)
                if run is not None:
                    entry[method] = {"return_last": round_or_none(run["return_last"], 1), "last5": round_or_none(tail_mean(run["curve"]), 1)}
                    shorter = [r for r in method_runs if r["steps"] < budget]
                    if shorter:  # is this number the shorter run extended, or another trajectory on another fit?
                        entry[method]["same_model_fit_as_shorter"] = same_model_fit(shorter[-1], run)
                        if not entry[method]["same_model_fit_as_shorter"]:  # the same trajectory's own evaluation there
                            own = up_to_end_of(run["curve"], shorter[-1].get("curve", []))
                            entry[method]["own_return_at_shorter"] = round_or_none(own[-1]["return_mean"], 1) if own else None
            if all(m in entry for m in methods):
                entry["ahead_last"] = max(methods, key=lambda m: entry[m]["return_last"])
                entry["ahead_last5"] = max(methods, key=lambda m: entry[m]["last5"])
            budgets.append(entry)
        ends = {}
        for method, method_runs in runs.items():
            deepest = method_runs[-1]
            window, last5 = best_window(deepest["curve"]), tail_mean(deepest["curve"])
            if window is None or last5 is None:
                continue
            ends[method] = {
                "steps": deepest["steps"], "best_window_mean": round(window["mean"], 1), "best_window_end_epoch": window["end_epoch"],
                "last5": round(last5, 1), "decline": round(window["mean"] - last5, 1),
            }
        rows.append({"dataset": dataset, "seed": seed, "budgets": budgets, "ends": ends})
    return rows


def evaluation_steps(point: dict[str, Any], steps_per_epoch: int = 1000) -> int:
    """The gradient steps an evaluation was taken after (its own count, else epoch × the campaigns' 1,000 steps per epoch)."""
    return int(point.get("gradient_steps") or point["epoch"] * steps_per_epoch)


def window_means(curve: list[dict[str, Any]], window_steps: int, steps: int) -> list[dict[str, Any]]:
    """The mean return and episode length of ``curve``'s evaluations in each ``window_steps`` up to ``steps``.

    ``curve`` is a published run's curve or a running trial's metrics rows (rows without an
    evaluation are skipped), so the docs and ``--status`` read a run's course the same way. A
    window without an evaluation has None for both means.
    """
    windows: list[dict[str, Any]] = []
    for index in range(-(-steps // window_steps)):
        inside = [p for p in curve if p.get("return_mean") is not None and index * window_steps < evaluation_steps(p) <= (index + 1) * window_steps]
        lengths = [p["length_mean"] for p in inside if p.get("length_mean") is not None]
        windows.append({
            "end_steps": min((index + 1) * window_steps, steps),
            "evaluations": len(inside),
            "return_mean": round_or_none(statistics.fmean(p["return_mean"] for p in inside), 1) if inside else None,
            "length_mean": round_or_none(statistics.fmean(lengths), 1) if lengths else None,
        })
    return windows


def trajectories(records: list[dict[str, Any]], methods: list[str], window_steps: int) -> list[dict[str, Any]]:
    """Each run at the deepest budget published, read in windows of ``window_steps`` gradient steps.

    A 1M-step run's course in ten numbers: the mean return (and episode length) of its evaluations
    in each window — the first stage's budget, so the first window is where a 100k run ends.
    Whether a policy rose, held or fell, and when, is read here on one trajectory, so no refit
    stands between two numbers (unlike the budgets block, whose shorter runs may be another fit);
    and one seed's methods share one model, so window by window they compare on the same fit
    (``model``: the checksum's head, or None for a run published before checksums). The talk's
    late MBPO decline is a window mean well below an earlier one of the same run.
    """
    deepest = max((r["steps"] for r in records if r["method"] in methods), default=0)
    if deepest < 2 * window_steps:
        return []
    rows = []
    for (dataset, method, seed), runs in runs_by_seed(records).items():
        run = runs[-1]
        if method not in methods or run["steps"] != deepest:
            continue
        checksum = run.get("dynamics_sha256")
        rows.append({"dataset": dataset, "seed": seed, "method": method, "steps": deepest,
                     "model": checksum[:8] if checksum else None, "windows": window_means(run.get("curve", []), window_steps, deepest)})
    order = {m: i for i, m in enumerate(methods)}
    return sorted(rows, key=lambda r: (r["dataset"], r["seed"], order[r["method"]]))
