"""The penalty study (benchmarks/penalty_design.py, penalty_table.py, penalty_docs.py) and its selection tools (mopo_kit.experiments.selection)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from mopo_kit.experiments.compare import improvement_across_tasks, paired, prob_improvement, versus
from mopo_kit.experiments.selection import rank_agreement, spearman, ucb_pick_curve
from mopo_kit.experiments.sweep import SweepSpec, run_sweep, trial_id
from tests.test_mopo import TINY, hopper_file  # noqa: F401  (module fixture)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))


def test_spearman_and_rank_agreement_on_known_orders():
    assert spearman([1, 2, 3], [10, 20, 30]) == pytest.approx(1.0)
    assert spearman([1, 2, 3], [30, 20, 10]) == pytest.approx(-1.0)
    assert spearman([1, 2, 3], [5, 5, 5]) is None
    assert spearman([1, 1, 2], [1, 2, 3]) == pytest.approx(np.corrcoef([1.5, 1.5, 3], [1, 2, 3])[0, 1])
    agreement = rank_agreement([0.1, 0.9, 0.5], [100.0, 50.0, 300.0])
    assert agreement["picks_best"] is False and agreement["regret"] == 250.0 and agreement["pick"] == 1
    assert rank_agreement([3, 2, 1], [9, 4, 1])["picks_best"] is True


def test_ucb_finds_the_best_arm_with_more_episodes():
    rng = np.random.default_rng(1)
    arms = [rng.normal(100, 50, 20), rng.normal(300, 50, 20), rng.normal(150, 50, 20)]
    values = [a.mean() for a in arms]
    curve = ucb_pick_curve(arms, 50, replicates=4000, seed=0)
    assert len(curve) == 50
    assert curve[0] == pytest.approx(np.mean(values), rel=0.03), "one episode: one arm pulled, picked at random"
    assert curve[-1] > curve[2] > curve[0]
    assert curve[-1] == pytest.approx(max(values), rel=0.02)
    assert all(min(values) - 1e-9 <= v <= max(values) + 1e-9 for v in curve)
    assert ucb_pick_curve([[5.0, 5.0], [5.0]], 3) == [5.0, 5.0, 5.0]
    with pytest.raises(ValueError, match="at least one recorded episode"):
        ucb_pick_curve([[1.0], []])


def test_prob_improvement_counts_pairs_and_ties_half():
    assert prob_improvement([3, 4], [1, 2]) == 1.0 and prob_improvement([1, 2], [3, 4]) == 0.0
    assert prob_improvement([1, 2, 3], [1, 2, 3]) == pytest.approx(0.5)
    assert prob_improvement([2, 5], [2, 3]) == pytest.approx((0.5 + 0 + 1 + 1) / 4)
    with pytest.raises(ValueError, match="at least one value"):
        prob_improvement([], [1.0])


def test_versus_gives_the_welch_interval_of_the_difference():
    from scipy.stats import t

    a, b = [950.0, 1000.0, 1050.0], [700.0, 720.0, 760.0]
    result = versus(a, b)
    va, vb = np.var(a, ddof=1) / 3, np.var(b, ddof=1) / 3
    df = (va + vb) ** 2 / (va**2 / 2 + vb**2 / 2)  # Welch–Satterthwaite
    half = t.ppf(0.975, df) * np.sqrt(va + vb)
    delta = np.mean(a) - np.mean(b)
    assert result["delta"] == pytest.approx(delta)
    assert result["ci"] == pytest.approx([delta - half, delta + half])
    assert result["ci"][0] > 0 and result["p_value"] < 0.05 and result["prob_improvement"] == 1.0
    overlapping = versus([700.0, 1000.0, 800.0], [750.0, 900.0, 820.0])
    assert overlapping["ci"][0] < 0 < overlapping["ci"][1], "no separation: the interval holds 0"
    single = versus([900.0], [700.0, 800.0])
    assert single["delta"] == pytest.approx(150.0) and single["ci"] is None and single["prob_improvement"] == 1.0
    assert versus([5.0, 5.0], [5.0, 5.0])["ci"] is None, "no variance on either side: no interval"


def test_improvement_across_tasks_averages_per_task_probabilities_with_a_bootstrap_interval():
    # returns on scales 100x apart: each task counts once, no normalization needed
    clear = {"hopper": ([900.0, 950.0, 1000.0], [600.0, 650.0, 700.0]), "cheetah": ([4e4, 4.1e4], [3e4, 3.2e4, 3.1e4])}
    result = improvement_across_tasks(clear, reps=500)
    assert result["prob_improvement"] == 1.0 and result["ci"] == [1.0, 1.0], "A above B on every resample"
    mixed = {"hopper": ([900.0, 950.0, 1000.0], [600.0, 650.0, 700.0]), "walker": ([100.0, 200.0, 300.0], [400.0, 500.0, 600.0])}
    result = improvement_across_tasks(mixed, reps=2000)
    assert result["per_task"] == {"hopper": 1.0, "walker": 0.0} and result["prob_improvement"] == 0.5
    assert result["ci"] == [0.5, 0.5], "each task's runs separate on every resample: the average cannot move"
    noisy = {"a": ([1.0, 5.0, 9.0], [2.0, 4.0, 8.0]), "b": ([3.0, 7.0], [1.0, 6.0, 10.0])}
    result = improvement_across_tasks(noisy, reps=4000, seed=1)
    expected = (prob_improvement(*noisy["a"]) + prob_improvement(*noisy["b"])) / 2
    low, high = result["ci"]
    assert result["prob_improvement"] == pytest.approx(expected) and 0.0 <= low < expected < high <= 1.0
    assert improvement_across_tasks(noisy, reps=4000, seed=1)["ci"] == result["ci"], "seeded: the same interval again"
    with pytest.raises(ValueError, match="'b' needs at least one run"):
        improvement_across_tasks({"a": ([1.0], [2.0]), "b": ([], [1.0])})


def _record(cell, name, kappa, seed, last5, final=None, eta=0.0, eps=0.0):
    return {
        "dataset": cell, "uncertainty": name, "kappa": kappa, "lam": kappa * 10, "seed": seed, "role": "tuning" if seed == 3 else "report",
        "return_last": last5, "return_last5": last5, "episode_returns": [final or last5] * 20,
        "final_eval": {"return_mean": final or last5}, "model_bound": {"eta_hat": eta, "epsilon": eps, "bound": eta - kappa * 10 * eps},
    }


def test_selection_takes_the_best_last5_once_every_kappa_is_published_and_unlocks_report_points(tmp_path, monkeypatch):
    import penalty_design as design

    grid = {"hopper-mixed": {"paper_lam": 1.0, "kappa_paper": 0.3, "grid": [0.1, 0.3, 0.9]}}
    records = [
        _record("hopper-mixed", "wasserstein", 0.1, 3, 500.0),
        _record("hopper-mixed", "wasserstein", 0.3, 3, 700.0),
        _record("hopper-mixed", "wasserstein", 0.9, 3, 700.0),  # a tie: the smaller κ wins
        _record("hopper-mixed", "mmd", 0.1, 3, 900.0),  # only one of mmd's three: no pick yet
    ]
    picks = design.selected(records, grid)
    assert picks == {"hopper-mixed": {"wasserstein": 0.3}}
    assert design.report_points(["hopper-mixed"], picks) == [], "the report waits for every estimator's pick"
    picks["hopper-mixed"].update(max_aleatoric=0.1, total_variation=0.9, mmd=0.1)
    points = design.report_points(["hopper-mixed"], picks)
    expected = {("zero", 0.0), ("wasserstein", 0.3), ("max_aleatoric", 0.1), ("total_variation", 0.9), ("mmd", 0.1)}
    assert {(p["uncertainty"], p["kappa"], p["seed"]) for p in points} == {(n, k, s) for s in (0, 1, 2) for n, k in expected}
    assert all(p["horizon"] == 5 for p in points)
    tuning = design.tuning_points(["hopper-mixed"], grid)
    assert len(tuning) == 3 * len(design.ESTIMATORS) and {p["seed"] for p in tuning} == {3}
    assert len({trial_id(p) for p in tuning}) == len(tuning), "κ is part of every trial's name"


def test_max_aleatoric_runs_at_kappa_paper_beside_the_report_where_tuning_picked_another_kappa(tmp_path, monkeypatch):
    import penalty_design as design

    grid = {"hopper-mixed": {"paper_lam": 1.0, "kappa_paper": 0.087, "grid": [0.029, 0.087, 0.26]},
            "walker2d-mixed": {"paper_lam": 1.0, "kappa_paper": 1.64, "grid": [0.55, 1.6, 4.9]}}
    monkeypatch.setattr(design, "KAPPA_FILE", tmp_path / "kappa_paper.json")
    (tmp_path / "kappa_paper.json").write_text(json.dumps(grid))
    picks = {"hopper-mixed": {"max_aleatoric": 0.26, "wasserstein": 0.26, "total_variation": 0.26, "mmd": 0.087},
             "walker2d-mixed": {"max_aleatoric": 1.6, "wasserstein": 0.55, "total_variation": 0.55, "mmd": 1.6}}
    points = design.paper_kappa_points(list(grid), picks, grid)
    assert {(p["dataset"], p["uncertainty"], p["kappa"], p["seed"]) for p in points} == {("hopper-mixed", "max_aleatoric", 0.087, s) for s in (0, 1, 2)}, \
        "walker2d-mixed's pick is κ_paper already: its report runs are the reference"
    assert design.paper_kappa_points(list(grid), {"hopper-mixed": {"max_aleatoric": 0.26}}, grid) == [], "not before every estimator has its pick"
    records = [_record("hopper-mixed", "max_aleatoric", k, 3, v) for k, v in ((0.029, 155.0), (0.087, 317.0), (0.26, 668.0))]
    assert design.role_of("hopper-mixed", "max_aleatoric", 0.26, 0, records) == "report"
    assert design.role_of("hopper-mixed", "max_aleatoric", 0.087, 0, records) == "paper_kappa"
    assert design.role_of("hopper-mixed", "max_aleatoric", 0.087, 3, records) == "tuning"
    assert design.role_of("hopper-mixed", "zero", 0.0, 1, records) == "report"


def test_the_study_queue_finishes_a_cell_before_the_next_and_puts_unlocked_reports_first(tmp_path, monkeypatch):
    """The order the sweep follows: a cell nearly tuned before the next cell's tuning; report runs ahead of both."""
    import penalty_design as design
    from penalty_study import StudyQueue

    monkeypatch.setattr(design.STUDY, "results", tmp_path)
    monkeypatch.setattr(design, "CELLS", {"hopper-mixed": 5, "walker2d-mixed": 1, "halfcheetah-random": 5})

    def publish(cell, name, kappa, seed, value):
        path = design.STUDY.published_path(cell, name, seed, "100k", kappa)
        path.write_text(json.dumps(_record(cell, name, kappa, seed, value)))

    grid = {"hopper-mixed": {"paper_lam": 1.0, "kappa_paper": 0.3, "grid": [0.1, 0.3, 0.9]},
            "walker2d-mixed": {"paper_lam": 1.0, "kappa_paper": 1.0, "grid": [0.3, 1.0, 3.0]}}
    for name in design.ESTIMATORS:  # hopper-mixed: all tuning but mmd at κ 0.9 published
        for kappa in grid["hopper-mixed"]["grid"]:
            if (name, kappa) != ("mmd", 0.9):
                publish("hopper-mixed", name, kappa, 3, 100.0 * kappa)
    frozen: list[str] = []

    def freeze(cells, sweep_dir):
        frozen.extend(cells)
        return {cell: {"paper_lam": 1.0, "kappa_paper": 1.0, "grid": [0.5, 1.0, 2.0]} for cell in cells}

    queue = StudyQueue(["hopper-mixed", "walker2d-mixed", "halfcheetah-random"], grid, tmp_path / "sweep", workers=2, freeze=freeze)
    first = queue(set())
    ids = [trial_id(p) for p in first]
    assert ids[0] == "hopper-mixed__mmd__kappa0.9__h5__s3", "the last of a nearly tuned cell goes ahead of the next cell's runs"
    assert len(ids) == 1 + 12 and all(i.startswith("walker2d-mixed__") for i in ids[1:])
    assert frozen == [], "nothing is frozen while runs of frozen cells wait to be queued"
    seen = set(ids)
    assert [trial_id(p) for p in queue(seen)] == ids, "queued runs keep their priority on every ask"
    assert frozen == [], "13 runs wait: the queue is not low"
    publish("hopper-mixed", "mmd", 0.9, 3, 50.0)  # hopper-mixed's tuning completes: its report is unlocked
    second = [trial_id(p) for p in queue(seen)]
    report = [i for i in second if i.startswith("hopper-mixed__")]
    assert second[:len(report)] == report and len(report) == 3 * (len(design.ESTIMATORS) + 1) + 3, \
        "the unlocked report runs first: MBPO's, and max_aleatoric at κ_paper 0.3 (its pick is 0.9)"
    assert sum("max_aleatoric__kappa0.3__" in i for i in report) == 3
    assert second[len(report):] == ids[1:], "then the tuning already queued, in its order"
    for point in queue(seen):  # everything queued so far finishes: walker2d-mixed's report is unlocked
        publish(point["dataset"], point["uncertainty"], point["kappa"], point["seed"], 100.0)
    third = queue(seen | set(second))
    assert frozen == [] and {p["dataset"] for p in third} == {"walker2d-mixed"} and {p["seed"] for p in third} == {0, 1, 2}, \
        "an unlocked report goes before the next cell is frozen"
    for point in third:
        publish(point["dataset"], point["uncertainty"], point["kappa"], point["seed"], 100.0)
    fourth = queue(seen | set(second) | {trial_id(p) for p in third})
    assert frozen == ["halfcheetah-random"] and [p["dataset"] for p in fourth] == ["halfcheetah-random"] * 12, "the queue ran dry: the next cell"
    assert StudyQueue(["halfcheetah-random"], {}, tmp_path, status=True, freeze=freeze)(set()) == [], "--status freezes nothing"


def test_table_reports_offline_selection_and_the_bandit_from_published_runs(tmp_path, monkeypatch):
    import penalty_docs as docs
    import penalty_table as table_of
    from penalty_design import PAPER_MOPO, STUDY

    monkeypatch.setattr(STUDY, "results", tmp_path)
    grid = {"hopper-mixed": {"paper_lam": 1.0, "kappa_paper": 0.3, "grid": [0.1, 0.3, 0.9]}}
    # η̂ orders the policies as their real returns do; the penalty does the opposite of ε's sign rule
    for kappa, real, eta, eps in ((0.1, 300.0, 1.0, 0.5), (0.3, 900.0, 3.0, 0.1), (0.9, 600.0, 2.0, 0.3)):
        record = _record("hopper-mixed", "mmd", kappa, 3, real, final=real, eta=eta, eps=eps)
        (tmp_path / f"hopper-mixed__mmd__kappa{kappa:g}__s3__100k.json").write_text(json.dumps(record))
    for seed, value in ((0, 800.0), (1, 1000.0)):
        (tmp_path / f"hopper-mixed__mmd__kappa0.3__s{seed}__100k.json").write_text(json.dumps(_record("hopper-mixed", "mmd", 0.3, seed, value)))
    table = table_of.build_table(grid)
    assert table["selected"] == {"hopper-mixed": {"mmd": 0.3}}
    offline = table["offline_selection"]["hopper-mixed"]["mmd"]
    assert offline["eta_hat"]["spearman"] == pytest.approx(1.0) and offline["eta_hat"]["picks_best"]
    assert offline["epsilon"]["picks_best"], "the smallest penalty is read as the best"
    bandit = table["bandit"]["hopper-mixed"]["mmd"]
    assert bandit["true_values"] == [300.0, 900.0, 600.0] and bandit["expected_return_of_pick"][-1] == pytest.approx(900.0)
    assert "| hopper-mixed | `mmd` | +1.00 |" in docs.offline_markdown(table), "all three κ in: a plain row"
    for kappa, real in ((0.1, 300.0), (0.3, 900.0)):  # a second estimator with two of its three κ
        (tmp_path / f"hopper-mixed__tv__kappa{kappa:g}__s3__100k.json").write_text(json.dumps(_record("hopper-mixed", "total_variation", kappa, 3, real)))
    partial = table_of.build_table(grid)
    assert "| hopper-mixed | `total_variation` (2 of 3 κ) |" in docs.offline_markdown(partial), "ρ over two policies is ±1: the row says it is partial"
    assert "| hopper-mixed | `total_variation` (2 of 3 κ) |" in docs.bandit_markdown(partial)
    for kappa in (0.1, 0.3):
        (tmp_path / f"hopper-mixed__tv__kappa{kappa:g}__s3__100k.json").unlink()
    assert table["report"]["hopper-mixed"]["mmd"]["return_last"] == {"mean": 900.0, "std": 100.0, "n": 2}
    assert table["versus_mbpo"] == {}, "no MBPO report run yet: nothing to compare with"
    for seed, value in ((0, 500.0), (1, 700.0), (2, 600.0)):
        mbpo = _record("hopper-mixed", "zero", 0.0, seed, value)
        (tmp_path / f"hopper-mixed__zero__kappa0__s{seed}__100k.json").write_text(json.dumps(mbpo))
    d4rl = tmp_path / "d4rl"
    d4rl.mkdir()
    monkeypatch.setattr(table_of, "TABLE_RESULTS", {"d4rl": d4rl, "ood": tmp_path / "ood"})
    for seed, value in ((0, 1000.0), (1, 900.0), (2, 800.0)):  # the D4RL table's MOPO runs at the paper's λ
        curve = [{"return_mean": 0.0}] * 3 + [{"return_mean": value}] * 5
        (d4rl / f"hopper-mixed__mopo__s{seed}__100k.json").write_text(json.dumps({"seed": seed, "lam": 1.0, "horizon": 5, "return_last": value, "curve": curve}))
    table = table_of.build_table(grid)
    paper = table["versus_mbpo"]["hopper-mixed"][PAPER_MOPO]
    assert paper["return_last5"]["delta"] == pytest.approx(300.0) and paper["final_mean"] is None and paper["kappa"] == 0.3
    assert "| hopper-mixed | MOPO at the paper's λ" in docs.versus_markdown(table)
    against = table["versus_mbpo"]["hopper-mixed"]["mmd"]
    assert against["kappa"] == 0.3 and against["return_last5"]["delta"] == pytest.approx(300.0)
    assert (against["return_last5"]["n_a"], against["return_last5"]["n_b"]) == (2, 3)
    assert against["return_last5"]["prob_improvement"] == 1.0 and against["final_mean"]["delta"] == pytest.approx(300.0)
    assert "| hopper-mixed | `mmd` | 0.3 | 2 / 3 | +300 [" in docs.versus_markdown(table)
    assert table["across_cells"] == {}, "mmd has two of three report seeds: the cell is not complete for it"
    assert "no cell has all report seeds" in docs.across_markdown(table)
    (tmp_path / "hopper-mixed__mmd__kappa0.3__s2__100k.json").write_text(json.dumps(_record("hopper-mixed", "mmd", 0.3, 2, 550.0)))
    table = table_of.build_table(grid)
    across = table["across_cells"]["mmd"]
    assert across["cells"] == ["hopper-mixed"] and set(table["across_cells"]) == {"mmd"}
    assert across["return_last5"]["prob_improvement"] == pytest.approx(7 / 9), "800, 1000 beat all three MBPO runs; 550 beats 500"
    assert "| `mmd` | hopper-mixed | 0.78 [" in docs.across_markdown(table)
    at_paper = {**_record("hopper-mixed", "max_aleatoric", 0.3, 0, 650.0), "role": "paper_kappa"}
    (tmp_path / "hopper-mixed__max_aleatoric__kappa0.3__s0__100k.json").write_text(json.dumps(at_paper))
    table = table_of.build_table(grid)
    assert table["paper_kappa"]["hopper-mixed"]["return_last5"] == {"mean": 650.0, "std": 0.0, "n": 1}
    assert "max_aleatoric" not in table["report"]["hopper-mixed"], "a κ_paper run is not a report run"
    assert table["versus_mbpo"]["hopper-mixed"]["paper_kappa"]["return_last5"]["delta"] == pytest.approx(50.0)
    assert "| hopper-mixed | `max_aleatoric` at κ_paper (study's models) | 0.3 |" in docs.report_markdown(table)
    assert json.loads((tmp_path / "table.json").read_text()) == table


def test_a_kappa_trial_is_published_with_its_lambda_final_episodes_and_model_bound(hopper_file, tmp_path, monkeypatch):  # noqa: F811
    import penalty_design as design

    monkeypatch.setattr(design.STUDY, "results", tmp_path / "results")
    monkeypatch.setattr(design, "FINAL_EPISODES", 3)
    base = {k: v for k, v in TINY.items() if k not in ("dynamics", "lam", "horizon")}
    base.update(epochs=2, eval_every=1)
    points = [{"dataset": str(hopper_file), "uncertainty": "total_variation", "kappa": 0.2, "horizon": 2, "seed": 3}]
    spec = SweepSpec(name="toy", grid={"dataset": [str(hopper_file)], "uncertainty": ["total_variation"]}, base=base,
                     dynamics=TINY["dynamics"]["params"], points=points, group_by_dataset=True)
    published = []
    run_sweep(spec, tmp_path / "sweep", workers=1, threads=1, on_trial_done=lambda s: published.append(design.STUDY.publish(Path(s["run_dir"]), "toy")))
    record = json.loads(published[0].read_text())
    assert published[0].name == f"{Path(str(hopper_file)).stem}__total_variation__kappa0.2__s3__0k.json"
    assert record["role"] == "tuning" and record["kappa"] == 0.2 and record["lam"] > 0
    assert record["lam"] == pytest.approx(0.2 * record["penalty_scale"]["mean_abs_reward"] / record["penalty_scale"]["mean_penalty"])
    assert len(record["episode_returns"]) == 3 and record["final_eval"]["return_mean"] == pytest.approx(np.mean(record["episode_returns"]), abs=1e-2)
    assert record["model_bound"]["lam"] == pytest.approx(record["lam"])
    assert record["return_last5"] == pytest.approx(np.mean([row["return_mean"] for row in record["curve"]]), abs=0.01)
    saved = json.loads((tmp_path / "sweep" / "trials" / trial_id(points[0]) / "config.json").read_text())
    assert saved["config"]["group"] == f"toy/{Path(str(hopper_file)).stem}"
    assert design.STUDY.published_reason(points[0], "0k") is not None


def test_on_policy_checks_are_grouped_into_own_paper_kappa_and_mbpo_policies(tmp_path, monkeypatch):
    import penalty_docs as docs
    import penalty_table as table_of
    from penalty_design import ON_POLICY_DIR, STUDY

    monkeypatch.setattr(STUDY, "results", tmp_path)
    grid = {"hopper-mixed": {"paper_lam": 1.0, "kappa_paper": 0.3, "grid": [0.1, 0.3, 0.9]}}
    at_paper = {**_record("hopper-mixed", "max_aleatoric", 0.3, 0, 650.0), "role": "paper_kappa", "horizon": 5}
    (tmp_path / "hopper-mixed__max_aleatoric__kappa0.3__s0__100k.json").write_text(json.dumps(at_paper))

    def check(run, uncertainty, seed, rho, violations, err, u):
        return {"run": run, "uncertainty": uncertainty, "seed": seed, "on_policy": {
            "spearman_policy": rho, "bound_violations": violations, "error_mean_policy": err, "error_mean_data": 2.0, "u_mean_policy": u, "u_mean_data": 1.0}}

    runs = [check("hopper-mixed__max_aleatoric__kappa0.9__h5__s0", "max_aleatoric", 0, 0.6, 0.02, 1.0, 0.5),
            check("hopper-mixed__max_aleatoric__kappa0.9__h5__s1", "max_aleatoric", 1, 0.8, 0.04, 3.0, 1.5),
            check("hopper-mixed__max_aleatoric__kappa0.3__h5__s0", "max_aleatoric", 0, 0.7, None, 2.0, 1.0),
            check("hopper-mixed__zero__kappa0.0__h5__s1", "zero", 1, 0.5, 0.20, 4.0, 2.0),
            check("hopper-mixed__zero__kappa0.0__h5__s0", "zero", 0, None, 0.10, 6.0, 3.0)]
    (tmp_path / ON_POLICY_DIR).mkdir()
    (tmp_path / ON_POLICY_DIR / "hopper-mixed__max_aleatoric.json").write_text(json.dumps({"runs": runs}))
    groups = table_of.build_table(grid)["on_policy"]["hopper-mixed"]["max_aleatoric"]
    assert set(groups) == {"own", "paper_kappa", "mbpo"}, "the κ_paper trial is told apart from the report runs of the same estimator"
    assert groups["own"]["spearman"] == {"mean": 0.7, "std": 0.1, "n": 2}
    assert groups["own"]["error_ratio"] == {"mean": 1.0, "std": 0.5, "n": 2} and groups["own"]["u_ratio"]["mean"] == 1.0
    assert groups["mbpo"]["seeds"] == [0, 1] and groups["mbpo"]["violations"] == [0.1, 0.2], "per seed, in seed order"
    assert groups["mbpo"]["spearman"] == {"mean": 0.5, "std": 0.0, "n": 1}, "a run without a ρ is left out of the mean, not counted as 0"
    assert groups["paper_kappa"]["violations"] == [None]
    markdown = docs.on_policy_markdown(table_of.build_table(grid))
    assert "| hopper-mixed | `max_aleatoric` | MBPO's (0, 1) | 0.50 ± 0.00 | 10%, 20% | 2.50 ± 0.50 | 2.50 ± 0.50 |" in markdown
    assert "| `max_aleatoric` at κ_paper (0) | 0.70 ± 0.00 | – |" in markdown


def test_on_policy_check_waits_for_every_report_seed_of_the_estimator_and_mbpo():
    from penalty_on_policy import checked_runs

    records = [_record("walker2d-mixed", "wasserstein", 0.55, s, 1000.0) for s in (0, 1, 2)]
    records += [_record("walker2d-mixed", "zero", 0.0, s, 700.0) for s in (0, 1)]
    records.append(_record("walker2d-mixed", "wasserstein", 0.55, 3, 1200.0))  # tuning: never checked here
    assert checked_runs(records, "walker2d-mixed", "wasserstein") == [], "MBPO's seed 2 is not published yet"
    records.append(_record("walker2d-mixed", "zero", 0.0, 2, 650.0))
    runs = checked_runs(records, "walker2d-mixed", "wasserstein")
    assert {(r["uncertainty"], r["seed"]) for r in runs} == {("wasserstein", 0), ("wasserstein", 1), ("wasserstein", 2), ("zero", 0), ("zero", 1), ("zero", 2)}
    assert checked_runs(records, "walker2d-mixed", "mmd") == [], "no mmd report runs"


def test_on_policy_driver_refuses_a_sweep_folder_without_trials_in_one_line(tmp_path, capsys):
    from penalty_on_policy import main

    with pytest.raises(SystemExit) as stop:
        main(["--sweep-dir", str(tmp_path / "nowhere")])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.endswith(f"--sweep-dir {tmp_path / 'nowhere'}: no trials/ folder there (name the study's sweep folder)")


def test_the_table_flags_a_seed_whose_runs_stand_on_two_model_fits():
    """A shared model refitted after its directory was lost may differ: the table says so per seed."""
    from penalty_table import shared_model_check

    fit_a, fit_b = {"holdout_mse": [0.31, 0.28]}, {"holdout_mse": [0.31, 0.29]}
    records = [
        {"dataset": "cell", "seed": 0, "dynamics_fit": fit_a},
        {"dataset": "cell", "seed": 0, "dynamics_fit": fit_a},
        {"dataset": "cell", "seed": 3, "dynamics_fit": fit_a},
        {"dataset": "other", "seed": 3, "dynamics_fit": {}},  # no fit recorded: not counted
    ]
    grid = {"cell": {"model": {"holdout_mse": [0.31, 0.28]}}}
    assert shared_model_check(grid, records) == {"fits_per_seed": {"cell": {"0": 1, "3": 1}}, "consistent": True}
    grid["cell"]["model"]["holdout_mse"] = fit_b["holdout_mse"]  # seed 3's runs are not on the fit κ was frozen from
    assert shared_model_check(grid, records) == {"fits_per_seed": {"cell": {"0": 1, "3": 2}}, "consistent": False}
    records.append({"dataset": "cell", "seed": 0, "dynamics_fit": fit_b})
    assert shared_model_check(grid, records)["fits_per_seed"]["cell"]["0"] == 2


def test_paired_compares_seed_for_seed_on_common_seeds_with_the_t_interval():
    """Per-seed differences on the same model: mean, paired t interval (df = n − 1), seeds won."""
    a = {0: 3732.0, 1: 4078.0, 2: 4447.0, 5: 1.0}  # seed 5 has no partner: left out
    b = {0: 3465.0, 1: 4021.0, 2: 3886.0}
    result = paired(a, b)
    differences = [267.0, 57.0, 561.0]
    assert result["seeds"] == [0, 1, 2] and result["differences"] == differences and result["wins"] == 3 and result["n"] == 3
    mean, sd = np.mean(differences), np.std(differences, ddof=1)
    half = 4.302652729911275 * sd / np.sqrt(3)  # t(0.975, df 2)
    assert result["delta"] == pytest.approx(mean)
    assert result["ci"] == pytest.approx([mean - half, mean + half])
    # a consistent shift is decisive when paired, though the seeds' spread hides it from Welch's test
    shifted = {seed: value + 100.0 + seed for seed, value in b.items()}
    assert paired(shifted, b)["ci"][0] > 0
    assert versus(list(shifted.values()), list(b.values()))["ci"][0] < 0
    assert paired({0: 1.0, 1: 1.0}, {0: 1.0, 1: 2.0})["wins"] == 0.5
    assert paired({0: 2.0}, {0: 1.0})["ci"] is None
    with pytest.raises(ValueError, match="no seed in common"):
        paired({0: 1.0}, {1: 1.0})


def test_models_only_fits_each_cells_tuning_and_report_models_with_the_trials_own_jobs(tmp_path, monkeypatch):
    """``--models-only`` hands the shared-model fitter one job per cell × seed (3, 0, 1, 2), and each
    job is exactly the one a trial of that cell and seed would fit — so the trial finds it fitted."""
    import penalty_study
    from penalty_design import report_points, spec_for, tuning_points

    from mopo_kit.experiments.shared_models import model_job

    calls = []

    def fake_fit(spec, sweep_dir, say, device=None, workers=1, threads=None):
        calls.append({"jobs": {model_job(spec, sweep_dir, p)["target"]: model_job(spec, sweep_dir, p) for p in spec.trials()},
                      "workers": workers, "threads": threads, "device": device})
        return []

    monkeypatch.setattr(penalty_study, "fit_shared_dynamics", fake_fit)
    sweep = tmp_path / "sweep"
    cells = ["halfcheetah-jump", "hopper-mixed"]
    argv = ["--models-only", "--sweep-dir", str(sweep), "--workers", "2", "--threads", "1", "--device", "cpu"]
    assert penalty_study.main(argv + [a for c in cells for a in ("--cell", c)]) == 0
    (call,) = calls
    assert (call["workers"], call["threads"], call["device"]) == (2, 1, "cpu")
    assert sorted(call["jobs"]) == sorted(str(sweep / "dynamics" / f"{c}-s{s}") for c in cells for s in (3, 0, 1, 2))
    grid = {c: {"grid": [0.1]} for c in cells}
    trial_points = tuning_points(cells, grid) + report_points(cells, {c: {"max_aleatoric": 0.1} for c in cells})
    trial_spec = spec_for(trial_points, sweep)
    for point in trial_points:
        job = model_job(trial_spec, sweep, point)
        assert call["jobs"][job["target"]] == job, f"{job['target']}: the trial would fit another model"


def test_status_says_what_is_published_and_left_even_when_nothing_is_left():
    from penalty_study import status_summary

    records = [{"dataset": "hopper-mixed", "role": role} for role in ["tuning"] * 12 + ["report"] * 15 + ["paper_kappa"] * 3]
    records.append({"dataset": "walker2d-mixed", "role": "tuning"})  # another cell: not counted for this selection
    line = status_summary(records, ["hopper-mixed"], {"hopper-mixed": {}}, left=0)
    assert line == "30 run(s) published (12 tuning, 15 report, 3 paper_kappa); 0 to run in the frozen cells"
    unstarted = status_summary([], ["hopper-mixed", "ant-angle"], {"hopper-mixed": {}}, left=4)
    assert unstarted.startswith("0 run(s) published (none); 4 to run") and unstarted.endswith("not frozen yet): ant-angle")
