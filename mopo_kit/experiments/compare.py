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
"""

from __future__ import annotations

import math
import statistics
from typing import Sequence


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
