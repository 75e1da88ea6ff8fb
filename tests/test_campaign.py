"""Result campaigns (benchmarks/campaign.py): a finished trial is published, tabled and plotted."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from mopo_kit.experiments.sweep import SweepSpec, run_sweep
from tests.test_mopo import TINY, hopper_file  # noqa: F401  (module fixture)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))


def test_finished_trials_are_published_and_tabled_with_mean_and_std(hopper_file, tmp_path):  # noqa: F811
    from campaign import Campaign, Stage

    campaign = Campaign(
        name="toy", results=tmp_path / "results", stages={1: Stage((str(hopper_file),), 100)},
        methods={"mopo": "max_aleatoric", "mbpo": "zero"}, paper={}, plot_prefix="toy_",
    )
    base = {k: v for k, v in TINY.items() if k != "dynamics"}
    base.update(epochs=2, eval_every=1)
    spec = SweepSpec(name="toy", grid={"dataset": [str(hopper_file)], "uncertainty": ["max_aleatoric", "zero"], "seed": [0, 1]},
                     base=base, dynamics=TINY["dynamics"]["params"])
    published = []
    threads_before = torch.get_num_threads()

    def publish(summary):  # the publishing process runs with another thread count than its trials
        torch.set_num_threads(3)
        published.append(campaign.publish(Path(summary["run_dir"]), "toy"))

    try:
        run_sweep(spec, tmp_path / "sweep", workers=1, threads=1, on_trial_done=publish)
    finally:
        torch.set_num_threads(threads_before)
    assert len(published) == 4
    record = json.loads(published[0].read_text())
    assert record["machine"]["torch_threads"] == 1, "the trial's threads, not the publisher's"
    assert record["started"] == "from scratch", "a run not extended from a shorter one says so"
    assert record["steps"] == 2 * TINY["steps_per_epoch"] and [p["epoch"] for p in record["curve"]] == [1, 2]
    assert record["dynamics_fit"]["epochs"] >= 1 and record["commit"] and record["command"] == "toy"
    assert record["dynamics_fit"]["device"] == "cpu" and len(record["dynamics_fit"]["dataset_sha256"]) == 64
    by_seed = {r["seed"]: r for r in map(json.loads, (p.read_text() for p in published)) if r["method"] == "mopo"}
    mbpo = [json.loads(p.read_text()) for p in published if "__mbpo__" in p.name]
    assert {r["lam"] for r in mbpo} == {0.0} and {r["uncertainty"] for r in mbpo} == {"zero"}
    assert len({by_seed[0]["dynamics_sha256"], by_seed[1]["dynamics_sha256"]}) == 2, "one shared model per seed, each named"
    assert {r["dynamics_sha256"] for r in mbpo if r["seed"] == 0} == {by_seed[0]["dynamics_sha256"]}, "both methods on seed 0's model"

    table = campaign.build_table()
    (row,) = table["rows"]
    returns = [json.loads(p.read_text())["return_last"] for p in sorted(published) if "__mopo__" in p.name]
    assert row["mopo"]["n"] == 2 and row["mopo"]["mean"] == pytest.approx(sum(returns) / 2, abs=0.06)
    assert row["mopo"]["std"] == pytest.approx(abs(returns[0] - returns[1]) / 2, abs=0.06)
    assert row["batch_mean"] == record["batch_mean"]
    tails = [sum(p["return_mean"] for p in json.loads(f.read_text())["curve"][-5:]) / 2 for f in sorted(published) if "__mopo__" in f.name]
    assert row["mopo"]["last5_evals"]["mean"] == pytest.approx(sum(tails) / 2, abs=0.06)  # 2 evaluations per toy run
    assert f"{row['mopo']['mean']:,.1f} ± {row['mopo']['std']:,.1f} (2 seeds)" in campaign.markdown(table)
    (png,) = campaign.plot_curves(tmp_path / "img")
    assert png.read_bytes()[:4] == b"\x89PNG"

    # One row per shared model (dataset × seed): its fit, and what each method saw in it
    assert [(m["dataset"], m["seed"]) for m in table["models"]] == [(record["dataset"], 0), (record["dataset"], 1)]
    for model in table["models"]:
        runs = {r["method"]: r for r in map(json.loads, (p.read_text() for p in published)) if r["seed"] == model["seed"]}
        fit = runs["mopo"]["dynamics_fit"]
        assert model["epochs"] == fit["epochs"] and model["device"] == "cpu"
        assert model["elite_holdout_mse"] == pytest.approx(sum(fit["holdout_mse"][i] for i in fit["elites"]) / len(fit["elites"]), abs=1e-5)
        assert model["methods"]["mopo"]["u"] > 0
        assert model["methods"]["mopo"]["u"] == pytest.approx(runs["mopo"]["curve"][-1]["rollout_mean_penalty"], abs=1e-4)
        assert model["methods"]["mbpo"]["u"] is None and model["methods"]["mbpo"]["lam"] == 0.0  # not computed at λ = 0
        assert model["methods"]["mbpo"]["return_last"] == pytest.approx(runs["mbpo"]["return_last"], abs=0.06)
    assert f"| {record['dataset']} | 1 | " in campaign.models_markdown(table)

    # A run on a seed outside the campaign's (a setting check) is listed apart, not averaged in
    check = {**record, "seed": 7, "return_last": 1e6}
    campaign.published_path(check["dataset"], check["method"], 7, _budget_of(check)).write_text(json.dumps(check))
    again = campaign.build_table()
    assert again["rows"] == table["rows"] and again["runs"] == 4
    assert [(c["seed"], c["return_last"]) for c in again["setting_checks"]] == [(7, 1e6)]

    # Where each run stands, read-only: a finished run whose JSON was lost is published again
    assert [r["state"] for r in campaign.status(spec, tmp_path / "sweep", _budget_of(record))] == ["published"] * 4
    published[0].unlink()
    states = campaign.status(spec, tmp_path / "sweep", _budget_of(record))
    assert [r["state"] for r in states].count("finished") == 1 and {r["model"] for r in states} == {"fitted"}
    assert campaign.publish_finished(spec, tmp_path / "sweep", _budget_of(record), "toy") == [published[0]]
    assert json.loads(published[0].read_text())["return_last"] == record["return_last"]
    longer = SweepSpec(name="toy", grid=spec.grid, base={**base, "epochs": 3}, dynamics=spec.dynamics)
    extend = campaign.status(longer, tmp_path / "sweep", "other-budget")
    assert {(r["state"], r["epoch"], r["epochs"]) for r in extend} == {("started", 2, 3)}
    fresh = campaign.status(spec, tmp_path / "other-sweep", "1000k")
    assert {r["state"] for r in fresh} == {"waiting"} and {r["model"] for r in fresh} == {"missing"}

    # A published result is not run again, even from a fresh sweep directory (another session's)
    said: list[str] = []
    assert run_sweep(spec, tmp_path / "fresh-sweep", workers=1, say=said.append,
                     skip=lambda point: campaign.published_reason(point, _budget_of(record))) == []
    assert sum("published as" in line for line in said) == 4


def test_status_command_counts_published_and_waiting_runs_without_touching_the_sweep(tmp_path, capsys):
    from campaign import Campaign, Stage

    campaign = Campaign(name="toy", results=tmp_path / "results",
                        stages={0: Stage(("hopper-mixed",), 2000, seeds=(3,), methods=("mopo",)), 1: Stage(("hopper-mixed",), 2000)},
                        methods={"mopo": "max_aleatoric", "mbpo": "zero"}, seeds=(0, 1), default_stage=1)
    campaign.results.mkdir()
    (campaign.results / "hopper-mixed__mbpo__s1__2k.json").write_text("{}")
    assert campaign.main(["--status", "--sweep-dir", str(tmp_path / "sweep")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == "[toy] stage 1 at 2k: 1 published, 0 finished, 0 started, 3 waiting of 4"
    assert "published hopper-mixed__zero__s1  model missing" in out
    assert not (tmp_path / "sweep").exists()
    # a setting-check stage runs on its own seeds and methods unless told otherwise
    assert campaign.main(["--status", "--stage", "0", "--sweep-dir", str(tmp_path / "sweep")]) == 0
    assert capsys.readouterr().out.splitlines()[0].split() == ["waiting", "hopper-mixed__max_aleatoric__s3", "model", "missing"]
    assert campaign.main(["--status", "--stage", "0", "--seeds", "1", "--methods", "mbpo", "--sweep-dir", str(tmp_path / "sweep")]) == 0
    assert capsys.readouterr().out.splitlines()[0].split()[:2] == ["published", "hopper-mixed__zero__s1"]
    # several stages are taken in the order given, each with its own selection
    assert campaign.main(["--status", "--stage", "1", "0", "--sweep-dir", str(tmp_path / "sweep")]) == 0
    summaries = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[toy]")]
    assert summaries == ["[toy] stage 1 at 2k: 1 published, 0 finished, 0 started, 3 waiting of 4",
                         "[toy] stage 0 at 2k: 0 published, 0 finished, 0 started, 1 waiting of 1"]


def test_status_says_how_a_started_run_is_doing_and_how_long_it_has_left(tmp_path, capsys):
    """The last evaluation and the median epoch time of the last ten epochs, read from metrics.jsonl."""
    from campaign import Campaign, Stage

    campaign = Campaign(name="toy", results=tmp_path / "results", stages={1: Stage(("hopper-mixed",), 20_000)},
                        methods={"mopo": "max_aleatoric"}, seeds=(0,))
    run_dir = tmp_path / "sweep" / "trials" / "hopper-mixed__max_aleatoric__s0"
    run_dir.mkdir(parents=True)
    epochs = [{"epoch": e, "epoch_seconds": 100.0 if e == 1 else 12.0 + e % 2} for e in range(1, 13)]
    epochs[4]["return_mean"], epochs[9]["return_mean"] = 250.0, 1234.4
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in epochs))
    assert campaign.main(["--status", "--sweep-dir", str(tmp_path / "sweep")]) == 0
    line = capsys.readouterr().out.splitlines()[0]
    # 20 epochs, 12 done; the slow first epoch is outside the last ten (12 and 13 s, median 12.5)
    assert line == ("started   hopper-mixed__max_aleatoric__s0 epoch 12/20 (checkpoint 0), last evaluation 1,234 at epoch 10, "
                    "12.5 s/epoch (~2 min left at that pace)  model missing")

    # with the same run published at a smaller budget, the deeper run says whether it retraces it
    shorter = _synthetic_run("mopo", 0, 10, [250.0, 1234.0], [0.01, 0.01])
    campaign.results.mkdir()
    campaign.published_path("hopper-mixed", "mopo", 0, "10k").write_text(json.dumps(shorter))
    assert campaign.main(["--status", "--sweep-dir", str(tmp_path / "sweep")]) == 0
    line = capsys.readouterr().out.splitlines()[0]
    # past the 10k run's last epoch, both runs' mean of their last 5 evaluations up to there: (250 + 1234.4) / 2 here
    assert "last evaluation 1,234 at epoch 10, 1 of 2 evaluations equal to its 10k run; last 5 up to 10k: 742 here, 742 there, 12.5 s/epoch" in line, line

    # on a model fitted again (another machine) the deeper run is a new trajectory, and says so
    model = tmp_path / "sweep" / "dynamics" / "hopper-mixed-s0"
    model.mkdir(parents=True)
    (model / "fit_report.json").write_text(json.dumps({"holdout_mse": [0.5, 0.6]}))
    assert campaign.main(["--status", "--sweep-dir", str(tmp_path / "sweep")]) == 0
    line = capsys.readouterr().out.splitlines()[0]
    assert "1 of 2 evaluations equal to its 10k run (on another model fit than that run's: a new trajectory); last 5 up to 10k: 742 here, 742 there, 12.5 s/epoch" in line, line
    (model / "fit_report.json").write_text(json.dumps({"holdout_mse": shorter["dynamics_fit"]["holdout_mse"]}))
    assert campaign.main(["--status", "--sweep-dir", str(tmp_path / "sweep")]) == 0
    assert "new trajectory" not in capsys.readouterr().out.splitlines()[0], "the same fit: nothing to say"


def test_status_reads_a_long_run_in_windows_of_the_first_stages_budget(tmp_path, capsys):
    """A run several windows deep shows its course so far, as the docs' trajectories block reads it."""
    from campaign import Campaign, Stage

    campaign = Campaign(name="toy", results=tmp_path / "results", stages={1: Stage(("hopper-mixed",), 5_000), 4: Stage(("hopper-mixed",), 20_000)},
                        methods={"mopo": "max_aleatoric"}, seeds=(0,))
    run_dir = tmp_path / "sweep" / "trials" / "hopper-mixed__max_aleatoric__s0"
    run_dir.mkdir(parents=True)
    epochs = [{"epoch": e, "epoch_seconds": 12.0} for e in range(1, 18)]
    for e, value in ((2, 100.0), (4, 300.0), (6, 500.0), (16, 1000.0)):  # none in the third window (epochs 11-15)
        epochs[e - 1]["return_mean"] = value
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in epochs))
    assert campaign.main(["--stage", "4", "--status", "--sweep-dir", str(tmp_path / "sweep")]) == 0
    line = capsys.readouterr().out.splitlines()[0]
    assert "last evaluation 1,000 at epoch 16, means per 5k so far 200, 500, —, 1,000, 12.0 s/epoch" in line, line


def test_compute_left_takes_each_started_runs_pace_and_its_cells_median_for_waiting_runs():
    from campaign_status import compute_left

    rows = [
        {"dataset": "walker", "state": "started", "epochs": 100, "epoch": 40, "seconds_per_epoch": 10.0},
        {"dataset": "walker", "state": "started", "epochs": 100, "epoch": 90, "seconds_per_epoch": 30.0},
        {"dataset": "walker", "state": "waiting", "epochs": 100},  # the cell's median pace: 20 s
        {"dataset": "walker", "state": "published", "epochs": 100},
        {"dataset": "hopper", "state": "waiting", "epochs": 100},  # no hopper run started: no pace
        {"dataset": "hopper", "state": "started", "epochs": 100, "epoch": 1},  # started, not yet timed
    ]
    left = compute_left(rows)
    assert left["core_hours"] == pytest.approx((60 * 10 + 10 * 30 + 100 * 20) / 3600)
    assert (left["runs"], left["without_pace"]) == (3, 2)


def test_a_run_recorded_in_flight_on_one_machine_is_reported_lost_on_another(tmp_path, capsys):
    """--record-in-flight writes each started run's checkpoint epoch beside the results; a sweep
    directory without that run (another machine) then hears how many epochs are gone and where."""
    from campaign import Campaign, Stage

    campaign = Campaign(name="toy", results=tmp_path / "results", stages={1: Stage(("hopper-mixed",), 20_000)},
                        methods={"mopo": "max_aleatoric", "mbpo": "zero"}, seeds=(0,))

    def started(sweep: Path, trial: str, checkpoint: int) -> None:
        run_dir = sweep / "trials" / trial
        (run_dir / "checkpoint").mkdir(parents=True)
        (run_dir / "metrics.jsonl").write_text("".join(json.dumps({"epoch": e}) + "\n" for e in range(1, checkpoint + 2)))
        (run_dir / "checkpoint" / "progress.json").write_text(json.dumps({"epoch": checkpoint}))

    here, there = tmp_path / "here", tmp_path / "there"
    started(here, "hopper-mixed__max_aleatoric__s0", 10)
    started(here, "hopper-mixed__zero__s0", 4)
    assert campaign.main(["--status", "--record-in-flight", "--sweep-dir", str(here)]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("[toy] recorded 2 unfinished run(s) at 20k in ")
    runs = json.loads((campaign.results / "in_flight.json").read_text())["runs"]
    assert {k: v["checkpoint_epoch"] for k, v in runs.items()} == {"hopper-mixed__max_aleatoric__s0@20k": 10, "hopper-mixed__zero__s0@20k": 4}
    assert campaign.main(["--status", "--sweep-dir", str(here)]) == 0
    assert "lost elsewhere" not in capsys.readouterr().out, "the machine that recorded them lost nothing"

    started(there, "hopper-mixed__zero__s0", 6)  # the other machine got further with one run than the record
    assert campaign.main(["--status", "--sweep-dir", str(there)]) == 0
    lost = [line for line in capsys.readouterr().out.splitlines() if "lost elsewhere" in line]
    assert len(lost) == 1 and lost[0].startswith("[toy] lost elsewhere: hopper-mixed__max_aleatoric__s0: was at checkpoint epoch 10 in ")
    assert lost[0].endswith("this sweep holds epoch 0, 10 epochs behind: they are lost here and rerun from epoch 0") and str(here.resolve()) in lost[0]

    # recorded there: the lost run's record stays (it is still what was lost), the other moves on to epoch 6;
    # a published run is dropped from the record
    campaign.results.joinpath("hopper-mixed__mbpo__s0__20k.json").write_text("{}")
    assert campaign.main(["--status", "--record-in-flight", "--sweep-dir", str(there)]) == 0
    capsys.readouterr()
    runs = json.loads((campaign.results / "in_flight.json").read_text())["runs"]
    assert {k: v["checkpoint_epoch"] for k, v in runs.items()} == {"hopper-mixed__max_aleatoric__s0@20k": 10}


def test_progress_lines_count_each_reported_stage_and_name_what_is_missing():
    """The docs' progress block comes from the published runs: a stale hand-kept count cannot happen."""
    from campaign import Campaign, Stage

    stages = {
        0: Stage(("hopper-mixed",), 2000, seeds=(3,), methods=("mopo",)),  # a setting check: never reported
        1: Stage(("hopper-mixed", "walker2d-mixed"), 2000, label="mixed"),
        3: Stage(("hopper-mixed",), 4000, label="extended"),
    }
    campaign = Campaign(name="toy", results=Path("unused"), stages=stages, methods={"mopo": "max_aleatoric", "mbpo": "zero"}, seeds=(0, 1))
    table = {"rows": [
        {"dataset": "hopper-mixed", "steps": 2000, "mopo": {"seeds": [0, 1]}, "mbpo": {"seeds": [1]}},
        {"dataset": "walker2d-mixed", "steps": 2000, "mopo": {"seeds": [0, 1]}, "mbpo": {"seeds": [0, 1]}},
        {"dataset": "hopper-mixed", "steps": 4000, "mopo": {"seeds": [0, 1]}, "mbpo": {"seeds": [0, 1]}},
    ]}
    assert campaign.progress_markdown(table).splitlines() == [
        "* **Stage 1** (mixed, 2k steps): **7 of 8 runs published**; missing: hopper-mixed (MBPO seed 0).",
        "* **Stage 3** (extended, 4k steps): **4 of 4 runs published**, complete.",
    ]
    table["rows"] = table["rows"][:1]
    assert campaign.progress_markdown(table).splitlines() == [
        "* **Stage 1** (mixed, 2k steps): **3 of 8 runs published**; missing: hopper-mixed (MBPO seed 0); every run of walker2d-mixed.",
        "* **Stage 3** (extended, 4k steps): **0 of 4 runs published**; missing: every run of hopper-mixed.",
    ]
    # one reported stage is named by its label alone
    single = Campaign(name="ood", results=Path("unused"), stages={1: stages[1]}, methods={"mopo": "max_aleatoric"}, seeds=(0,))
    assert single.progress_markdown(table) == "* **mixed** (2k steps): **1 of 2 runs published**; missing: every run of walker2d-mixed."


@pytest.mark.parametrize("killed_fit_epochs", [None, 2])
def test_status_sees_a_model_fit_in_progress_through_its_lock(tmp_path, killed_fit_epochs):
    """A process fitting a shared model holds its lock; the status probe sees it without waiting,
    and says how far the fit got when it has a checkpoint (a killed fit continues from there)."""
    import fcntl

    from campaign_status import model_state
    from mopo_kit.testing_models import linear_system_dataset, tiny_ensemble

    target = tmp_path / "sweep" / "dynamics" / "hopper-mixed-s0"
    saved = ""
    if killed_fit_epochs:
        checkpoint = tmp_path / "sweep" / ".fits" / "hopper-mixed-s0.pt"
        tiny_ensemble(max_epochs=killed_fit_epochs).fit(linear_system_dataset(n=600), checkpoint=checkpoint)
        saved = f" (fit saved at epoch {killed_fit_epochs})"
    assert model_state(target) == "missing" + saved
    lock_path = tmp_path / "sweep" / ".locks" / "hopper-mixed-s0.lock"
    lock_path.parent.mkdir(parents=True)
    with open(lock_path, "w") as fitter:
        fcntl.flock(fitter, fcntl.LOCK_EX)
        assert model_state(target) == "fitting" + (f" (epoch {killed_fit_epochs} saved)" if killed_fit_epochs else "")
    assert model_state(target) == "missing" + saved  # the fitter died or finished without a model


def _synthetic_run(method: str, seed: int, epochs: int, returns: list[float], holdout: list[float]) -> dict:
    """A published run's JSON, reduced to what the table reads: one evaluation every 5 epochs."""
    curve = [{"epoch": 5 * (i + 1), "return_mean": r, "rollout_mean_penalty": 0.5, "rollout_mean_raw_reward": 2.0} for i, r in enumerate(returns)]
    return {
        "dataset": "hopper-mixed", "method": method, "seed": seed, "steps": epochs * 1000, "horizon": 5, "lam": 1.0 if method == "mopo" else 0.0,
        "return_last": returns[-1], "return_best": max(returns), "batch_mean": 300.0, "batch_max": 1000.0, "curve": curve,
        "dynamics_fit": {"epochs": 60, "stop_reason": "max_epochs", "holdout_mse": holdout, "elites": [0, 1], "device": "cpu"},
    }


def test_deeper_runs_are_tabled_beside_their_own_model_and_checked_against_the_shorter_run(tmp_path):
    from campaign import Campaign, Stage

    campaign = Campaign(name="toy", results=tmp_path, stages={1: Stage(("hopper-mixed",), 10_000), 3: Stage(("hopper-mixed",), 20_000)},
                        methods={"mopo": "max_aleatoric", "mbpo": "zero"}, seeds=(0, 1))
    cpu_fit, gpu_fit = [0.010, 0.012], [0.011, 0.013]
    runs = [
        _synthetic_run("mopo", 0, 10, [100.0, 200.0], cpu_fit),
        _synthetic_run("mbpo", 0, 10, [150.0, 250.0], cpu_fit),
        _synthetic_run("mopo", 0, 20, [100.0, 200.0, 300.0, 400.0], cpu_fit),  # the same fit retraced: the 10k run extended
        _synthetic_run("mopo", 1, 10, [90.0, 180.0], gpu_fit),
        _synthetic_run("mopo", 1, 20, [90.0, 170.0, 260.0, 350.0], cpu_fit),  # refitted elsewhere: another trajectory
    ]
    for run in runs:
        campaign.published_path(run["dataset"], run["method"], run["seed"], _budget_of(run)).write_text(json.dumps(run))

    table = campaign.table()
    rows = {(m["seed"], m["steps"]): m for m in table["models"]}
    assert sorted(rows) == [(0, 10_000), (0, 20_000), (1, 10_000), (1, 20_000)]
    assert set(rows[(0, 20_000)]["methods"]) == {"mopo"}, "a 20k row holds only the 20k runs, never the 10k MBPO run"
    assert rows[(0, 20_000)]["methods"]["mopo"]["return_last"] == 400.0 and rows[(0, 10_000)]["methods"]["mbpo"]["return_last"] == 250.0
    assert rows[(1, 10_000)]["elite_holdout_mse"] == pytest.approx(0.012) and rows[(1, 20_000)]["elite_holdout_mse"] == pytest.approx(0.011)

    checks = {c["seed"]: c for c in table["deeper_runs"]}
    assert len(table["deeper_runs"]) == 2, "one check per deeper run with a shorter sibling"
    assert checks[0]["same_model_fit"] and (checks[0]["evaluations_compared"], checks[0]["evaluations_equal"]) == (2, 2)
    assert not checks[1]["same_model_fit"] and (checks[1]["evaluations_compared"], checks[1]["evaluations_equal"]) == (2, 1)
    assert (checks[1]["return_last_at_shorter_steps"], checks[1]["return_last"]) == (180.0, 350.0)
    assert (checks[1]["last5_of_shorter"], checks[1]["deeper_last5_at_shorter_steps"]) == (135.0, 130.0), "each run's own standing at 10k"

    text = campaign.models_markdown(table)
    assert "| hopper-mixed | 0 | 20k | 60 (cap) |" in text and "| hopper-mixed | 0 | 10k | 60 (cap) |" in text
    assert "* hopper-mixed MOPO seed 0, 20k vs 10k: the same model fit (equal holdout MSE); all 2 evaluations up to 10k equal, bit for bit" in text
    assert "* hopper-mixed MOPO seed 1, 20k vs 10k: a refitted model (another holdout MSE); 1 of 2 evaluations up to 10k equal; at 10k its last 5 evaluations average 130, the 10k run's 135." in text


def test_across_budgets_says_seed_by_seed_who_is_ahead_at_each_budget_and_who_declined_late(tmp_path):
    """The deeper stage's question per seed: the leader at each budget (by last return and by last-5
    mean) and each method's best window of 5 evaluations against its last 5 (a late decline)."""
    from campaign import Campaign, Stage

    campaign = Campaign(name="toy", results=tmp_path, stages={1: Stage(("hopper-mixed",), 10_000), 3: Stage(("hopper-mixed",), 20_000)},
                        methods={"mopo": "max_aleatoric", "mbpo": "zero"}, seeds=(0, 1, 2))
    fit, refit = [0.010, 0.012], [0.011, 0.012]
    mbpo_long = [100.0, 900.0, 950.0, 1000.0, 980.0, 990.0, 700.0, 650.0, 600.0, 150.0]  # peaks, then falls
    mopo_long = [100.0, 400.0, 450.0, 500.0, 520.0, 510.0, 500.0, 505.0, 498.0, 502.0]
    runs = [
        _synthetic_run("mopo", 0, 30, mopo_long[:6], fit), _synthetic_run("mbpo", 0, 30, mbpo_long[:6], fit),
        _synthetic_run("mopo", 0, 50, mopo_long, fit), _synthetic_run("mbpo", 0, 50, mbpo_long, fit),
        _synthetic_run("mopo", 1, 30, [100.0, 200.0], fit), _synthetic_run("mbpo", 1, 30, [150.0, 250.0], fit),  # one budget only
        # seed 2's deeper runs stand on a refit (another machine): two trajectories, marked as such
        _synthetic_run("mopo", 2, 30, [100.0, 200.0], fit), _synthetic_run("mbpo", 2, 30, [150.0, 250.0], fit),
        _synthetic_run("mopo", 2, 50, [110.0, 190.0, 300.0], refit), _synthetic_run("mbpo", 2, 50, [140.0, 260.0, 240.0], refit),
    ]
    for run in runs:
        campaign.published_path(run["dataset"], run["method"], run["seed"], _budget_of(run)).write_text(json.dumps(run))

    table = campaign.table()
    row, refitted = table["across_budgets"]
    assert (row["dataset"], row["seed"], refitted["seed"]) == ("hopper-mixed", 0, 2), "seed 1 has one budget: nothing to compare across"
    assert [b["mopo"].get("same_model_fit_as_shorter") for b in row["budgets"]] == [None, True], "seed 0's 50k run is its 30k run extended"
    assert [b["mbpo"].get("same_model_fit_as_shorter") for b in refitted["budgets"]] == [None, False]
    assert refitted["budgets"][1]["mopo"]["own_return_at_shorter"] == 190.0 and "own_return_at_shorter" not in row["budgets"][1]["mopo"]
    short, deep = row["budgets"]
    assert (short["steps"], deep["steps"]) == (30_000, 50_000)
    assert (short["ahead_last"], short["ahead_last5"]) == ("mbpo", "mbpo")
    assert (deep["ahead_last"], deep["ahead_last5"]) == ("mopo", "mbpo"), "MBPO's last-5 still holds some of its peak"
    assert deep["mbpo"] == {"return_last": 150.0, "last5": pytest.approx((990 + 700 + 650 + 600 + 150) / 5, abs=0.06), "same_model_fit_as_shorter": True}
    mbpo_end, mopo_end = row["ends"]["mbpo"], row["ends"]["mopo"]
    assert mbpo_end["best_window_mean"] == pytest.approx((900 + 950 + 1000 + 980 + 990) / 5, abs=0.06) and mbpo_end["best_window_end_epoch"] == 30
    assert mbpo_end["decline"] == pytest.approx(964.0 - 618.0, abs=0.1) and mbpo_end["steps"] == 50_000
    assert mopo_end["decline"] < 15, "a flat policy has no late decline"

    text = campaign.budgets_markdown(table)
    assert "| hopper-mixed | 0 | 510 → 502 | 990 → 150 | MBPO → MOPO/MBPO | 507 (40) → 503 at 50k | 964 (30) → 618 at 50k |" in text
    assert "| hopper-mixed | 1 |" not in text
    assert "| hopper-mixed | 2 | 200 → 300† (from 190) | 250 → 240† (from 260) | MBPO → MOPO/MBPO |" in text, "the refit run's own evaluation at 30k"
    assert "† this run stands on another model fit than the same method's run at the budget before it" in text
    assert campaign.budgets_markdown({"across_budgets": []}) == "No cell has runs at more than one budget yet."


def test_deepest_runs_are_read_window_by_window_on_their_own_trajectory(tmp_path):
    """The 1M runs' course: each deepest run's mean return and episode length per window of the first
    stage's budget, a seed's methods side by side (the higher in bold); shorter runs stay out."""
    from campaign import Campaign, Stage

    campaign = Campaign(name="toy", results=tmp_path, stages={1: Stage(("hopper-mixed",), 10_000), 4: Stage(("hopper-mixed",), 30_000)},
                        methods={"mopo": "max_aleatoric", "mbpo": "zero"}, seeds=(0, 1))
    fit = [0.010, 0.012]
    mopo = _synthetic_run("mopo", 0, 30, [100.0, 200.0, 300.0, 300.0, 400.0, 500.0], fit)
    mbpo = _synthetic_run("mbpo", 0, 30, [500.0, 700.0, 400.0, 200.0, 100.0, 100.0], fit)  # peaks early, then falls
    for point, length in zip(mopo["curve"], [100, 200, 300, 400, 500, 600]):
        point["length_mean"] = length
    lone = _synthetic_run("mopo", 1, 30, [10.0, 20.0, 30.0, 40.0], fit)  # stopped evaluating early: its last window is empty
    runs = [mopo, mbpo, lone, _synthetic_run("mopo", 0, 10, [100.0, 200.0], fit), _synthetic_run("mbpo", 1, 10, [1.0, 2.0], fit)]
    for run in runs:
        run["dynamics_sha256"] = f"{run['seed']}" * 64
        campaign.published_path(run["dataset"], run["method"], run["seed"], _budget_of(run)).write_text(json.dumps(run))

    table = campaign.table()
    rows = table["trajectories"]
    assert [(r["seed"], r["method"], r["steps"]) for r in rows] == [(0, "mopo", 30_000), (0, "mbpo", 30_000), (1, "mopo", 30_000)], \
        "the deepest runs only, MOPO before MBPO"
    mopo_row, mbpo_row, lone_row = rows
    assert [w["end_steps"] for w in mopo_row["windows"]] == [10_000, 20_000, 30_000]
    assert [w["return_mean"] for w in mopo_row["windows"]] == [150.0, 300.0, 450.0]
    assert [w["length_mean"] for w in mopo_row["windows"]] == [150.0, 350.0, 550.0]
    assert [w["return_mean"] for w in mbpo_row["windows"]] == [600.0, 300.0, 100.0] and mbpo_row["windows"][0]["length_mean"] is None
    assert [w["evaluations"] for w in lone_row["windows"]] == [2, 2, 0] and lone_row["windows"][2]["return_mean"] is None
    assert mopo_row["model"] == "00000000"

    text = campaign.trajectories_markdown(table)
    assert "| cell | seed | method | model | ≤ 10k | ≤ 20k | ≤ 30k | episode length (window means) |" in text
    assert "| hopper-mixed | 0 | MOPO | 00000000 | 150 | 300 | **450** | 150–550 |" in text, "a tie is nobody's lead"
    assert "| hopper-mixed | 0 | MBPO | 00000000 | **600** | 300 | 100 | — |" in text
    assert "| hopper-mixed | 1 | MOPO | 11111111 | 15 | 35 | — | — |" in text, "alone on its seed: nothing to lead"
    assert "(each seed's methods on one model)" in text

    # the plot gets a second panel below the curves, the window means: a taller PNG
    (png,) = campaign.plot_curves(tmp_path / "img")
    height = int.from_bytes(png.read_bytes()[20:24], "big")  # the PNG header's IHDR height
    for run in runs:
        if run["steps"] == 30_000:
            campaign.published_path(run["dataset"], run["method"], run["seed"], "30k").unlink()
    (shallow,) = campaign.plot_curves(tmp_path / "img_shallow")
    assert height > 1.4 * int.from_bytes(shallow.read_bytes()[20:24], "big"), "the 10k runs alone: one panel"
    mbpo_row["model"] = "deadbeef"  # a seed whose methods stand on two fits: the bold compares two models, and the note says so
    assert "where a seed's methods differ, they stand on two fits" in campaign.trajectories_markdown(table)
    assert campaign.trajectories_markdown({"trajectories": []}) == "No run is deep enough yet to be read in windows."


def test_same_model_fit_trusts_the_checksums_where_both_runs_have_one():
    from run_stats import same_model_fit

    fit = [0.010, 0.012]
    old, extended = _synthetic_run("mopo", 0, 10, [1.0], fit), _synthetic_run("mopo", 0, 20, [1.0, 2.0], fit)
    assert same_model_fit(old, extended), "runs published before checksums: equal holdout MSEs"
    assert not same_model_fit(old, _synthetic_run("mopo", 0, 10, [1.0], [0.011, 0.012]))
    assert same_model_fit({**old, "dynamics_sha256": "a" * 64}, extended), "one checksum missing: the holdout MSEs decide"
    assert not same_model_fit({**old, "dynamics_sha256": "a" * 64}, {**extended, "dynamics_sha256": "b" * 64}), \
        "equal holdout MSEs on two models: the checksums decide"
    assert same_model_fit({**old, "dynamics_sha256": "a" * 64}, {**extended, "dynamics_fit": {}, "dynamics_sha256": "a" * 64})

    from budgets import deeper_run_checks

    (check,) = deeper_run_checks([{**old, "dynamics_sha256": "a" * 64}, {**extended, "dynamics_sha256": "b" * 64}])
    assert (check["same_model_fit"], check["fit_compared_by"]) == (False, "checksum"), "the table says what it compared"
    (check,) = deeper_run_checks([old, {**extended, "dynamics_sha256": "b" * 64}])
    assert (check["same_model_fit"], check["fit_compared_by"]) == (True, "holdout MSE")


def test_best_window_is_the_first_best_run_of_five_evaluations_or_all_of_a_shorter_curve():
    from run_stats import best_window

    curve = [{"epoch": 5 * (i + 1), "return_mean": r} for i, r in enumerate([1.0, 5.0, 5.0, 5.0, 5.0, 5.0, 1.0, 5.0, 5.0, 5.0, 5.0, 5.0])]
    assert best_window(curve) == {"mean": 5.0, "end_epoch": 30}, "ties: the earliest window"
    assert best_window(curve[:3]) == {"mean": pytest.approx(11 / 3), "end_epoch": 15}
    assert best_window([{"epoch": 5, "return_mean": None}]) is None


def _budget_of(record: dict) -> str:
    from run_stats import budget_label

    return budget_label(record["steps"])


def test_models_only_fits_the_selections_models_and_runs_nothing(hopper_file, tmp_path, monkeypatch):  # noqa: F811
    import campaign as campaign_module
    from campaign import Campaign, Stage

    monkeypatch.setattr(campaign_module, "MODEL_MAX_EPOCHS", 2)
    campaign = Campaign(name="toy", results=tmp_path / "results", stages={1: Stage((str(hopper_file),), 100)}, methods={"mopo": "max_aleatoric", "mbpo": "zero"})
    sweep = tmp_path / "sweep"
    assert campaign.main(["--models-only", "--seeds", "0", "1", "--workers", "2", "--threads", "1", "--device", "cpu", "--sweep-dir", str(sweep)]) == 0
    reports = {p.parent.name: json.loads(p.read_text()) for p in sweep.glob("dynamics/*/fit_report.json")}
    assert sorted(reports) == [f"{hopper_file.stem}-s0", f"{hopper_file.stem}-s1"]
    assert {r["epochs"] for r in reports.values()} == {2} and {r["device"] for r in reports.values()} == {"cpu"}
    assert not (sweep / "trials").exists() and not (tmp_path / "results").exists(), "no run, nothing published"


def test_plot_keeps_the_shorter_curve_of_a_run_refitted_elsewhere_and_drops_a_retraced_one():
    from campaign_docs import curves_to_plot

    cpu_fit, gpu_fit = [0.010, 0.012], [0.011, 0.013]
    runs = [
        _synthetic_run("mopo", 0, 10, [100.0, 200.0], cpu_fit),
        _synthetic_run("mopo", 0, 20, [100.0, 200.0, 300.0, 400.0], cpu_fit),  # the 10k run extended
        _synthetic_run("mopo", 1, 10, [90.0, 180.0], gpu_fit),
        _synthetic_run("mopo", 1, 20, [90.0, 170.0, 260.0, 350.0], cpu_fit),  # another trajectory
        _synthetic_run("mopo", 2, 10, [80.0, 160.0], cpu_fit),
        _synthetic_run("mopo", 2, 20, [80.0, 160.0, 240.0, 320.0], cpu_fit),  # the 10k run extended ...
        _synthetic_run("mopo", 2, 40, [70.0, 150.0, 230.0, 310.0, 390.0, 470.0, 550.0, 630.0], gpu_fit),  # ... then a third fit
    ]
    curves = {(c["seed"], c["record"]["steps"]): c for c in curves_to_plot(runs)}
    assert sorted(curves) == [(0, 20_000), (1, 10_000), (1, 20_000), (2, 20_000), (2, 40_000)], \
        "seed 0's 10k curve is inside its 20k curve; seed 2's 10k curve is inside its 20k curve, drawn faint under the 40k run"
    assert curves[(2, 20_000)]["superseded"] and curves[(2, 40_000)]["label"] == "mopo seed 2 (refit)"
    assert curves[(1, 10_000)]["superseded"] and not curves[(1, 20_000)]["superseded"]
    assert curves[(1, 10_000)]["label"] == "mopo seed 1, 10k run (other fit)"
    assert curves[(1, 20_000)]["label"] == "mopo seed 1 (refit)" and curves[(0, 20_000)]["label"] == "mopo seed 0"


def test_a_campaign_under_sigterm_stops_the_graceful_way(capsys):
    """``kill PID`` on a campaign script sets the stop flag its sweep passes on, instead of killing it."""
    import os
    import signal

    from campaign import stoppable

    from mopo_kit.stop import StopRequested, stop_requested

    with stoppable("toy") as stopped:
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop_requested() == signal.SIGTERM, "the process is alive and the flag is set"
        raise StopRequested("sweep stopped by SIGTERM, running trials checkpointed; rerun the same command to continue", signal.SIGTERM)
    assert stopped == [143]
    assert "[toy] sweep stopped by SIGTERM" in capsys.readouterr().err
    assert stop_requested() is None, "the flag does not outlive the campaign"


@pytest.mark.parametrize("module, campaign", [("d4rl_table", "D4RL"), ("ood_table", "OOD"), ("penalty_design", "STUDY")])
def test_result_campaigns_write_float32_into_every_trial_not_the_toolkits_default(module, campaign):
    """A campaign's runs share one precision: its trials carry ``precision`` explicitly, so new
    trials of a running table stay float32 when ``MOPOConfig``'s default changes (to ``auto``)."""
    import importlib

    from mopo_kit.config import MOPOConfig

    table = getattr(importlib.import_module(module), campaign)
    for stage in table.stages.values():
        spec = table.sweep_spec(list(stage.cells), list(table.methods), [0], stage.steps)
        assert spec.base["precision"] == "fp32"
        for point in spec.trials():
            assert MOPOConfig.from_dict({**spec.base, **point}).precision == "fp32", (module, point)


def test_started_runs_go_to_another_machine_and_back_into_the_sweep_which_finishes_them(hopper_file, tmp_path, capsys):  # noqa: F811
    """--pack-started, a leg elsewhere (here a resume in another folder, as on a lent GPU), --unpack:
    the sweep continues from the returned checkpoint and the published run records the move."""
    import tarfile

    from campaign import Campaign, Stage

    from mopo_kit.experiments.pack import pack_run
    from mopo_kit.mopo import MOPO

    # the campaign's stage counts 1,000-step epochs: three, of which the toy trial below runs one
    campaign = Campaign(name="toy", results=tmp_path / "results", stages={1: Stage((str(hopper_file),), 3000)},
                        methods={"mopo": "max_aleatoric"}, seeds=(0,))
    base = {k: v for k, v in TINY.items() if k != "dynamics"}
    base.update(epochs=1, eval_every=1)
    spec = SweepSpec(name="toy", grid={"dataset": [str(hopper_file)], "uncertainty": ["max_aleatoric"], "seed": [0]},
                     base=base, dynamics=TINY["dynamics"]["params"])
    sweep = tmp_path / "sweep"
    run_sweep(spec, sweep, workers=1, threads=1)  # one epoch done of the stage's three: "started"
    (trial,) = [p.name for p in (sweep / "trials").iterdir()]

    assert campaign.main(["--pack-started", str(tmp_path / "out"), "--sweep-dir", str(sweep)]) == 0
    assert f"[toy] packed {trial} at epoch 1: " in capsys.readouterr().out
    with tarfile.open(tmp_path / "out" / f"{trial}.tar.gz") as tar:
        tar.extractall(tmp_path / "elsewhere", filter="data")
    MOPO.resume(tmp_path / "elsewhere" / trial, epochs=2)  # the leg on the other machine
    pack_run(tmp_path / "elsewhere" / trial, tmp_path / "back.tar.gz")

    from mopo_kit.dir_lock import directory_lock

    with directory_lock(sweep / "trials" / trial, "a MOPO run"):  # the copy here still training: not replaced under it
        assert campaign.main(["--unpack", str(tmp_path / "back.tar.gz"), "--sweep-dir", str(sweep)]) == 2
    assert "in use by process" in capsys.readouterr().err
    assert sorted(p.name for p in (sweep / "trials").iterdir()) == [trial], "no staging folder left behind"
    assert campaign.main(["--unpack", str(tmp_path / "back.tar.gz"), "--sweep-dir", str(sweep)]) == 0
    assert f"[toy] unpacked {trial} at epoch 2 (replacing its copy at epoch 1)" in capsys.readouterr().out
    assert campaign.main(["--unpack", str(tmp_path / "out" / f"{trial}.tar.gz"), "--sweep-dir", str(sweep)]) == 2
    assert f"holds {trial} at epoch 1, but {sweep / 'trials' / trial} is already at epoch 2; nothing replaced" in capsys.readouterr().err
    assert sorted(p.name for p in (sweep / "trials").iterdir()) == [trial], "no staging or replaced folder left behind"

    spec.base["epochs"] = 3
    published = []
    run_sweep(spec, sweep, workers=1, threads=1, on_trial_done=lambda s: published.append(campaign.publish(Path(s["run_dir"]), "toy")))
    record = json.loads(published[0].read_text())
    assert [p["epoch"] for p in record["curve"]] == [1, 2, 3], "every epoch once: the sweep went on from the returned epoch 2"
    epoch_seconds = [json.loads(line)["epoch_seconds"] for line in (sweep / "trials" / trial / "metrics.jsonl").read_text().splitlines()]
    assert len(epoch_seconds) == 3 and record["epoch_seconds_total"] == round(sum(epoch_seconds), 1), "every stretch's epochs, not the last one's"
    assert [m["at_epoch"] for m in record["moves"]] == [1, 2] and {m["model_pool"] for m in record["moves"]} == {"dropped"}


def test_a_campaign_started_twice_is_one_line_naming_the_holder(tmp_path, capsys):
    """The scripts' entry points (common.one_line_errors): a busy sweep, like any toolkit error, is
    ``script: error: …`` and exit 2, not a traceback around the same message."""
    from campaign import Campaign, Stage
    from common import one_line_errors

    from mopo_kit.dir_lock import directory_lock

    campaign = Campaign(name="toy", results=tmp_path / "results", stages={1: Stage(("hopper-mixed",), 1000)},
                        methods={"mopo": "max_aleatoric"}, seeds=(0,))
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    with directory_lock(sweep, "a sweep"):  # the first campaign, still running
        assert one_line_errors("toy.py", campaign.main, ["--sweep-dir", str(sweep)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"toy.py: error: {sweep}: in use by process ") and "(a sweep, since" in err[0], err
    assert not (sweep / "trials").exists() and not campaign.results.exists(), "nothing started, nothing written"


def test_a_carried_run_continues_from_its_archive_on_a_machine_without_its_sweep(hopper_file, tmp_path, capsys):  # noqa: F811
    """--carry-in-flight packs a started run (a few MB: no pool, no shared model, no logs) beside
    the results; a campaign on another machine fits the shared model again, unpacks the run and
    continues it from the archive's epoch instead of from scratch; once published, the archive goes."""
    from campaign import Campaign, Stage

    steps = TINY["steps_per_epoch"]

    class Toy(Campaign):
        def sweep_spec(self, cells, methods, seeds, budget):
            base = {k: v for k, v in TINY.items() if k != "dynamics"}
            base.update(epochs=budget // steps, eval_every=1, checkpoint_every=1)
            grid = {"dataset": cells, "uncertainty": [self.methods[m] for m in methods], "seed": seeds}
            return SweepSpec(name="toy", grid=grid, base=base, dynamics=TINY["dynamics"]["params"])

    campaign = Toy(name="toy", results=tmp_path / "results", stages={1: Stage((str(hopper_file),), 3 * steps)},
                   methods={"mopo": "max_aleatoric"}, seeds=(0,))
    here, there = tmp_path / "here", tmp_path / "there"
    run_sweep(campaign.sweep_spec([str(hopper_file)], ["mopo"], [0], 2 * steps), here, workers=1, threads=1)  # 2 of its 3 epochs
    assert campaign.main(["--status", "--carry-in-flight", "--sweep-dir", str(here)]) == 0
    out = capsys.readouterr().out
    assert "[toy] carried " in out and "[toy] carried model " in out
    recorded = json.loads((campaign.results / "in_flight.json").read_text())
    (record,) = recorded["runs"].values()
    ((model_name, model),) = recorded["models"].items()
    from mopo_kit.dynamics.storage import dynamics_checksum

    assert model["dynamics_sha256"] == dynamics_checksum(here / "dynamics" / model_name)
    archive = campaign.results / record["archive"]
    assert record["archive_epoch"] == 2 == record["checkpoint_epoch"] and archive.stat().st_size == record["archive_bytes"]
    import hashlib

    assert hashlib.sha256(archive.read_bytes()).hexdigest() == record["archive_sha256"]
    assert campaign.main(["--status", "--carry-in-flight", "--sweep-dir", str(here)]) == 0
    assert "[toy] carried " not in capsys.readouterr().out, "an archive that holds the checkpoint's epoch (or the model) is not packed again"

    assert campaign.main(["--status", "--sweep-dir", str(there)]) == 0
    (lost,) = [line for line in capsys.readouterr().out.splitlines() if "lost elsewhere" in line]
    assert f"its carried archive {archive.name} holds epoch 2, and the campaign continues it from there" in lost

    assert campaign.main(["--sweep-dir", str(there), "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert "continued from its carried archive:" in out and "lost elsewhere" not in out
    assert f"model {model_name}: taken from its carried archive" in out
    report = json.loads((there / "dynamics" / model_name / "fit_report.json").read_text())
    assert report["reused_from"] == str((there / "carried" / model_name).resolve()), "the carried model, not a fit of its own"
    assert dynamics_checksum(there / "dynamics" / model_name) == model["dynamics_sha256"]
    (published,) = campaign.results.glob("*__mopo__s0__*.json")
    run = json.loads(published.read_text())
    assert [p["epoch"] for p in run["curve"]] == [1, 2, 3], "epochs 1-2 from the archive, 3 trained here"
    move = json.loads((there / "trials" / archive.name.split("@")[0] / "config.json").read_text())["moves"][-1]
    assert move["dynamics"] == "left out" and move["at_epoch"] == 2 and move["model_pool"] == "dropped"
    assert move["pool_refilled"]["at_step"] == 2 * steps, "resumed at the archive's step, not started over"
    assert move["dynamics_dir_here"].startswith(str(there)), "the run continued on the model fitted there"

    assert campaign.main(["--status", "--record-in-flight", "--sweep-dir", str(there)]) == 0
    after = json.loads((campaign.results / "in_flight.json").read_text())
    assert after["runs"] == {} and "models" not in after and not archive.exists()
    assert not list((campaign.results / "in_flight").rglob("*.tar.gz")), "archives go once their runs are published"


def test_what_carry_in_flight_writes_is_not_ignored_by_git():
    """A carry exists to be committed: every archive --carry-in-flight writes (runs and shared
    models) must be a path git tracks, or a new machine finds in_flight.json naming files that
    never left this one (the models were ignored by the `models/` rule for a session)."""
    import shutil
    import subprocess

    import in_flight
    from d4rl_table import D4RL
    from ood_table import OOD

    root = Path(__file__).resolve().parents[1]
    if shutil.which("git") is None or subprocess.run(["git", "-C", str(root), "rev-parse"], capture_output=True).returncode != 0:
        pytest.skip("not a git work tree")
    for campaign in (D4RL, OOD):
        paths = [in_flight.archive_path(campaign.results, "walker2d-mixed__zero__s0", "1000k"), in_flight.model_archive_path(campaign.results, "walker2d-mixed-s0")]
        for path in paths:
            ignored = subprocess.run(["git", "-C", str(root), "check-ignore", "-q", "--no-index", str(path.relative_to(root))]).returncode == 0
            assert not ignored, f"{path.relative_to(root)} is ignored by git: a carry would not travel"


def test_status_says_whether_a_carried_model_can_be_taken_or_is_missing(tmp_path):
    """--status on a machine without the model: a carried one that is there will be taken; one
    that in_flight.json names but the checkout lacks is said up front (it would be fitted again)."""
    from campaign_status import _carried_model_note

    (tmp_path / "in_flight" / "models").mkdir(parents=True)
    (tmp_path / "in_flight" / "models" / "walker2d-mixed-s0.tar.gz").write_bytes(b"archive")
    carried = {name: {"archive": f"in_flight/models/{name}.tar.gz", "host": "vm"} for name in ("walker2d-mixed-s0", "walker2d-mixed-s1")}
    row = {"model": "missing", "state": "waiting"}
    assert "(carried: in_flight/models/walker2d-mixed-s0.tar.gz" in _carried_model_note(tmp_path, {**row, "model_name": "walker2d-mixed-s0"}, carried)
    note = _carried_model_note(tmp_path, {**row, "model_name": "walker2d-mixed-s1"}, carried)
    assert "carried from vm, but in_flight/models/walker2d-mixed-s1.tar.gz is not here" in note and "refuse" in note
    assert _carried_model_note(tmp_path, {**row, "model_name": "walker2d-mixed-s2"}, carried) == "", "not carried: nothing to say"
    assert _carried_model_note(tmp_path, {"model": "fitted", "state": "waiting", "model_name": "walker2d-mixed-s1"}, carried) == ""
