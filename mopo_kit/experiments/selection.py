"""Choosing a hyperparameter among trained policies: offline statistics and the price of online tuning.

Two questions a penalty study asks once it has a few policies per estimator (one per strength κ):

* **Offline**: does a number available without the real environment — the model's return η̂,
  the penalty ε, or η̂ − λ·ε (:func:`mopo_kit.evaluation.model_bound`) — order the policies as their
  real returns do? :func:`rank_agreement` gives Spearman's ρ and whether the statistic's argmax is
  the real best.
* **Online**: how good is the policy picked after n real episodes? :func:`ucb_pick_curve` follows
  Unifloral (Jackson et al., 2025): a UCB1 bandit over the candidate policies, each pull one real
  episode, drawn with replacement from that policy's recorded episode returns (a bootstrap of
  the real evaluations already run); after n pulls it recommends the arm with the best empirical
  mean, worth that arm's mean over all its recorded episodes. Averaged over ``replicates``.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np


def spearman(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Spearman's ρ (scipy's, ties averaged); None when either side is constant or shorter than 2."""
    from scipy.stats import spearmanr

    if len(a) != len(b):
        raise ValueError(f"spearman: lengths differ ({len(a)} vs {len(b)})")
    if len(a) < 2 or len(set(a)) == 1 or len(set(b)) == 1:
        return None
    return float(spearmanr(a, b).statistic)


def rank_agreement(statistic: Sequence[float], real: Sequence[float]) -> dict[str, float | bool | None]:
    """How well ``statistic`` (higher = predicted better) orders candidates whose real returns are ``real``.

    ``picks_best``: the candidate with the largest statistic has the largest real return;
    ``regret``: real best − real return of the statistic's pick (0 when it picks the best).
    """
    pick, best = int(np.argmax(statistic)), int(np.argmax(real))
    return {
        "spearman": spearman(statistic, real),
        "picks_best": bool(real[pick] == real[best]),
        "regret": float(real[best] - real[pick]),
        "pick": pick,
    }


def ucb_pick_curve(
    episode_returns: Sequence[Sequence[float]],
    max_episodes: int = 50,
    *,
    replicates: int = 2000,
    seed: int = 0,
) -> list[float]:
    """Expected true value of the arm UCB1 recommends after n = 1 … ``max_episodes`` real episodes.

    ``episode_returns[i]``: arm i's recorded per-episode real returns. Returns are scaled to
    [0, 1] by the pooled min and max before the bandit sees them, so UCB1's exploration term
    (sqrt(2 ln t / n_i)) means the same on every task; each arm's *value* is its mean recorded
    return in raw units. The first ``len(arms)`` pulls take each arm once (in a random order per
    replicate); with fewer episodes than arms the recommendation is among the arms pulled.
    Vectorized over replicates.
    """
    arms = [np.asarray(r, dtype=np.float64) for r in episode_returns]
    if not arms or any(len(a) == 0 for a in arms):
        raise ValueError("ucb_pick_curve: every arm needs at least one recorded episode")
    k = len(arms)
    values = np.array([a.mean() for a in arms])
    low = min(a.min() for a in arms)
    span = max(a.max() for a in arms) - low
    scaled = [(a - low) / span if span > 0 else np.zeros_like(a) for a in arms]
    rng = np.random.default_rng(seed)
    sums = np.zeros((replicates, k))
    counts = np.zeros((replicates, k))
    first = np.argsort(rng.random((replicates, k)), axis=1)  # each replicate's order of first pulls
    rows = np.arange(replicates)
    curve = []
    for t in range(1, max_episodes + 1):
        if t <= k:
            arm = first[:, t - 1]
        else:
            means = sums / counts
            bonus = np.sqrt(2.0 * math.log(t) / counts)
            arm = np.argmax(means + bonus, axis=1)
        draws = np.empty(replicates)
        for i in range(k):  # one vectorized draw per arm
            chosen = arm == i
            draws[chosen] = scaled[i][rng.integers(len(scaled[i]), size=int(chosen.sum()))]
        sums[rows, arm] += draws
        counts[rows, arm] += 1
        empirical = np.where(counts > 0, sums / np.maximum(counts, 1), -np.inf)
        recommended = np.argmax(empirical, axis=1)
        curve.append(float(values[recommended].mean()))
    return curve
