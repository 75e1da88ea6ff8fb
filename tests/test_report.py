"""``mopo-kit report``'s table from finished trials: rows per setting, and each row against a baseline."""

from __future__ import annotations

import pytest

from mopo_kit.errors import MopoKitError
from mopo_kit.experiments.report import against_baseline, summarize


def _trial(uncertainty: str, seed: int, last_return: float, *, lam: float = 1.0, horizon: int = 5, dataset: str = "hopper-mixed") -> dict:
    last = {"return_mean": last_return, "normalized_mean": last_return / 10.0}
    return {"name": f"{uncertainty}-{lam}-{seed}", "dataset": dataset, "uncertainty": uncertainty, "lam": lam, "kappa": None,
            "horizon": horizon, "seed": seed, "results": {"last": last, "best": last}, "metrics": []}


def test_rows_are_set_against_the_baseline_of_their_dataset_and_horizon():
    trials = [_trial("zero", s, r, lam=0.0) for s, r in enumerate((500.0, 600.0, 700.0))]
    trials += [_trial("wasserstein", s, r) for s, r in enumerate((900.0, 1000.0, 1100.0))]
    trials += [_trial("mmd", s, r) for s, r in enumerate((400.0, 650.0, 700.0))]
    trials += [_trial("mmd", 0, 50.0, horizon=1)]  # no MBPO row at h = 1: nothing to compare with
    rows = {(r["uncertainty"], r["horizon"]): r for r in against_baseline(summarize(trials), "zero")}
    assert rows[("zero", 5)]["versus_baseline"] is None and rows[("mmd", 1)]["versus_baseline"] is None
    clear = rows[("wasserstein", 5)]["versus_baseline"]
    assert clear["delta"] == pytest.approx(400.0) and clear["ci"][0] > 0 and clear["prob_improvement"] == 1.0
    mixed = rows[("mmd", 5)]["versus_baseline"]
    assert mixed["delta"] == pytest.approx(1750.0 / 3 - 600.0) and mixed["ci"][0] < 0 < mixed["ci"][1]
    assert mixed["prob_improvement"] == pytest.approx((0 + 2 + 2.5) / 9), "400 beats none; 650 beats 500, 600; 700 beats 500, 600 and ties 700"
    assert rows[("mmd", 5)]["last_return_per_seed"] == [400.0, 650.0, 700.0]


def test_a_baseline_at_several_strengths_is_matched_by_strength_or_refused():
    trials = [_trial("zero", 0, 500.0, lam=lam) for lam in (0.5, 1.0)] + [_trial("max_aleatoric", 0, 800.0, lam=lam) for lam in (0.5, 1.0)]
    trials[1]["results"]["last"]["return_mean"] = 300.0  # the λ = 1 MBPO run
    rows = against_baseline(summarize(trials), "zero")
    by_lam = {r["lam"]: r["versus_baseline"]["delta"] for r in rows if r["uncertainty"] == "max_aleatoric"}
    assert by_lam == {0.5: pytest.approx(300.0), 1.0: pytest.approx(500.0)}
    with pytest.raises(MopoKitError, match="hopper-mixed h=5 has it at several strengths, none of them λ=3"):
        against_baseline(summarize([*trials, _trial("mmd", 0, 100.0, lam=3.0)]), "zero")
    with pytest.raises(MopoKitError, match="no trial of this sweep uses that estimator"):
        against_baseline(summarize(trials), "wasserstein")


def test_seeds_keep_a_rows_pool_and_its_baseline_on_the_same_seeds(run_cli, tmp_path):
    from mopo_kit.experiments.report import only_seeds

    trials = [_trial("zero", s, 500.0, lam=0.0) for s in (0, 1, 2)] + [_trial("mmd", s, 700.0 + 100 * s) for s in (0, 1, 2, 3)]
    rows = {r["uncertainty"]: r for r in summarize(only_seeds(trials, [0, 1, 2]))}
    assert rows["mmd"]["seed_list"] == [0, 1, 2] and rows["mmd"]["last_return_mean"] == pytest.approx(800.0), "the tuning seed 3 is left out"
    assert only_seeds(trials, None) is trials
    with pytest.raises(MopoKitError, match=r"--seeds 7: no finished trial has these seeds \(the sweep's finished trials have: 0, 1, 2, 3\)"):
        only_seeds(trials, [7])
    bad = run_cli("report", str(tmp_path), "--seeds", "0,x", check_rc=2)
    assert "'0,x' is not a comma-separated list of integer seeds" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


def test_a_task_without_reference_scores_is_scored_in_raw_return_and_plotted(tmp_path):
    from mopo_kit.experiments.report import _plots

    ood = [_trial(u, s, r, lam=lam, dataset="halfcheetah-jump") for u, lam, s, r in
           [("zero", 0.0, 0, 1392.0), ("zero", 0.0, 1, -1321.0), ("wasserstein", 1.0, 0, 1266.0), ("wasserstein", 1.0, 1, 931.0)]]
    for trial in ood:  # an OOD task: D4RL has no reference scores for it
        trial["results"]["last"]["normalized_mean"] = None
        trial["metrics"] = [{"gradient_steps": 1000, "return_mean": trial["results"]["last"]["return_mean"], "normalized_mean": None,
                             "rollout_mean_penalty": 0.5}]
    d4rl = [_trial("zero", s, r, lam=0.0) for s, r in enumerate((500.0, 700.0))]
    rows = {(r["dataset"], r["uncertainty"]): r for r in summarize(ood + d4rl)}
    jump = rows[("halfcheetah-jump", "wasserstein")]
    assert jump["score"] == "return" and jump["last_score_mean"] == pytest.approx(1098.5) and jump["last_score_std"] == pytest.approx(167.5)
    hopper = rows[("hopper-mixed", "zero")]
    assert hopper["score"] == "normalized" and hopper["last_score_mean"] == pytest.approx(60.0), "D4RL tasks keep the normalized score"
    _plots(ood + d4rl, list(rows.values()), tmp_path)
    assert all((tmp_path / name).stat().st_size > 0 for name in ("learning_curves.png", "final_scores.png", "penalty_vs_return.png"))
