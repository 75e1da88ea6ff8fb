"""Is method A better than method B, from a handful of seeds?

Offline RL results come as three to five seeds per method, and a mean ± std beside another says
little about the *difference*. :func:`versus` gives what a reader needs to judge it:

* ``delta``: the difference of the means (A − B);
* ``ci``: its Welch interval (unequal variances; scipy's ``ttest_ind(..., equal_var=False)``) —
  with three seeds a side the t quantile is about 2.8, so only large, consistent differences
  exclude 0, which is the honest answer at that sample size;
* ``prob_improvement``: P(a run of A beats a run of B) over every pair of seeds, ties counted
  half — the Mann–Whitney U statistic ÷ (n·m), as rliable (Agarwal et al., NeurIPS 2021) reports
  it. It does not assume normality and reads plainly: 1 = every seed of A above every seed of B.

Where A and B ran on the same seeds *and the same model per seed* (the penalty study's shared
models), :func:`paired` compares seed for seed: the mean of the per-seed differences with its
paired t interval (scipy's ``ttest_rel``), and on how many seeds A came out ahead. Pairing removes
what the seed's model does to both methods alike; with three pairs the t quantile is 4.3, so the
interval is no narrower than Welch's unless the seeds agree closely.

Over several tasks (the study's cells), :func:`improvement_across_tasks` averages that probability
and gives it a stratified bootstrap interval — rliable's summary of "does A beat B" on a benchmark.
"""

from __future__ import annotations

import math
import statistics
from typing import Any, Mapping, Sequence

import numpy as np


def prob_improvement(a: Sequence[float], b: Sequence[float]) -> float:
    """P(X > Y) + ½ P(X = Y) for X drawn from ``a`` and Y from ``b`` (every pair equally likely)."""
    if not a or not b:
        raise ValueError("prob_improvement: both sides need at least one value")
    wins = sum((x > y) + 0.5 * (x == y) for x in a for y in b)
    return wins / (len(a) * len(b))


def versus(a: Sequence[float], b: Sequence[float], confidence: float = 0.95) -> dict[str, float | int | list[float] | None]:
    """A against B: ``delta`` (mean A − mean B), its Welch ``ci`` and ``p_value`` (None with fewer
    than two values a side, or when neither side varies), ``prob_improvement``, and ``n_a``/``n_b``."""
    a, b = [float(x) for x in a], [float(x) for x in b]
    if not a or not b:
        raise ValueError("versus: both sides need at least one value")
    result: dict[str, float | int | list[float] | None] = {
        "n_a": len(a), "n_b": len(b),
        "delta": statistics.fmean(a) - statistics.fmean(b),
        "ci": None, "confidence": confidence, "p_value": None,
        "prob_improvement": prob_improvement(a, b),
    }
    if len(a) >= 2 and len(b) >= 2 and (statistics.pvariance(a) > 0 or statistics.pvariance(b) > 0):
        from scipy.stats import ttest_ind

        test = ttest_ind(a, b, equal_var=False)
        interval = test.confidence_interval(confidence)
        if math.isfinite(interval.low) and math.isfinite(interval.high):
            result["ci"] = [float(interval.low), float(interval.high)]
            result["p_value"] = float(test.pvalue)
    return result


def paired(a: Mapping[int, float], b: Mapping[int, float], confidence: float = 0.95) -> dict[str, Any]:
    """A against B on their common seeds (seed → value): ``delta`` (mean of A − B per seed), its
    paired ``ci`` and ``p_value`` (None with fewer than two pairs or identical differences),
    ``wins`` (seeds where A > B; ties count half) of ``n`` pairs, and ``differences`` by seed."""
    seeds = sorted(set(a) & set(b))
    if not seeds:
        raise ValueError("paired: no seed in common")
    differences = [float(a[s]) - float(b[s]) for s in seeds]
    result: dict[str, Any] = {
        "n": len(seeds), "seeds": seeds, "differences": differences, "delta": statistics.fmean(differences),
        "wins": sum((d > 0) + 0.5 * (d == 0) for d in differences), "ci": None, "confidence": confidence, "p_value": None,
    }
    if len(seeds) >= 2 and statistics.pvariance(differences) > 0:
        from scipy.stats import ttest_rel

        test = ttest_rel([float(a[s]) for s in seeds], [float(b[s]) for s in seeds])
        interval = test.confidence_interval(confidence)
        result["ci"] = [float(interval.low), float(interval.high)]
        result["p_value"] = float(test.pvalue)
    return result


def improvement_across_tasks(
    pairs: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    *,
    confidence: float = 0.95,
    reps: int = 2000,
    seed: int = 0,
) -> dict[str, Any]:
    """P(A beats B) averaged over tasks, with a stratified bootstrap interval — rliable's aggregate.

    ``pairs`` maps each task to (A's runs, B's runs) on it. The average of the per-task
    :func:`prob_improvement` needs no normalization of scores across tasks (whose returns differ
    by orders of magnitude), and each task counts once however many runs it has. The interval
    resamples each task's runs of A and of B independently, with replacement (rliable's
    ``StratifiedIndependentBootstrap``, percentile method). rliable itself is not a dependency: it
    needs arch, pandas and seaborn for these twenty lines, and asks for the same runs on every task.
    """
    if not pairs:
        raise ValueError("improvement_across_tasks: no tasks")
    for task, (a, b) in pairs.items():
        if not a or not b:
            raise ValueError(f"improvement_across_tasks: task {task!r} needs at least one run on each side")
    rng = np.random.default_rng(seed)
    per_task = {task: prob_improvement(a, b) for task, (a, b) in pairs.items()}
    replicates = np.zeros(reps)
    for a, b in pairs.values():
        a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
        xa = a[rng.integers(len(a), size=(reps, len(a)))][:, :, None]
        yb = b[rng.integers(len(b), size=(reps, len(b)))][:, None, :]
        replicates += ((xa > yb) + 0.5 * (xa == yb)).mean(axis=(1, 2))
    replicates /= len(pairs)
    tail = (1.0 - confidence) / 2.0
    return {
        "prob_improvement": statistics.fmean(per_task.values()),
        "ci": [float(np.quantile(replicates, tail)), float(np.quantile(replicates, 1.0 - tail))],
        "confidence": confidence,
        "per_task": per_task,
        "reps": reps,
    }
