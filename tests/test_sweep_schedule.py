"""Long sweeps: models fit in the workers, dispatch order, extending finished trials, kill leftovers."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from mopo_kit.errors import MopoKitError
from mopo_kit.mopo import _read_jsonl, recover_checkpoint
from mopo_kit.experiments.sweep import SweepSpec, dispatch_order, next_startable, plan_trials, run_sweep, trial_id, trial_status
from tests.test_mopo import TINY, hopper_file  # noqa: F401  (module fixture)


def test_dispatch_order_starts_concurrent_workers_on_different_models_seed_major():
    points = [{"dataset": d, "uncertainty": u, "seed": s} for d in ("a", "b", "c") for u in ("mopo", "mbpo") for s in (0, 1)]
    order = [(p["dataset"], p["uncertainty"], p["seed"]) for p in dispatch_order(points, workers=2)]
    assert order[:4] == [("a", "mopo", 0), ("b", "mopo", 0), ("a", "mbpo", 0), ("b", "mbpo", 0)]
    # groups go seed-major, two at a time: (a0, b0), (c0, a1), (b1, c1)
    assert [(o[0], o[2]) for o in order[4:8]] == [("c", 0), ("a", 1), ("c", 0), ("a", 1)]
    assert [o[2] for o in order[8:]] == [1] * 4
    assert sorted(order) == sorted((p["dataset"], p["uncertainty"], p["seed"]) for p in points)
    assert [(p["dataset"], p["uncertainty"]) for p in dispatch_order(points, workers=1)][:2] == [("a", "mopo"), ("a", "mbpo")]
    cells_first = [(p["dataset"], p["seed"]) for p in dispatch_order(points, workers=2, dataset_major=True)]
    # groups go dataset-major, two at a time: (a0, a1), (b0, b1), (c0, c1)
    assert cells_first == [("a", 0), ("a", 1)] * 2 + [("b", 0), ("b", 1)] * 2 + [("c", 0), ("c", 1)] * 2


def test_points_left_out_before_ordering_so_workers_still_start_on_different_models(tmp_path):
    """a/mopo/s0 already published: the two workers start on a0 (mbpo) and b0, not both on a0's model."""
    spec = SweepSpec(name="t", grid={"dataset": ["a", "b"], "uncertainty": ["mopo", "mbpo"], "seed": [0]}, base={"epochs": 2})
    said: list[str] = []
    plan = plan_trials(spec, tmp_path, workers=2, skip=lambda p: "published" if (p["dataset"], p["uncertainty"]) == ("a", "mopo") else None, say=said.append)
    assert [(p["dataset"], p["uncertainty"], status) for p, status in plan] == [("a", "mbpo", "new"), ("b", "mopo", "new"), ("b", "mbpo", "new")]
    assert said == ["skip a__mopo__s0 (published)"]


def test_trials_with_a_checkpoint_are_resumed_before_new_ones(tmp_path):
    """A restarted campaign finishes its half-done runs first: c/s1 holds a checkpoint, so it leads
    although seed-major order puts every seed-0 run before it; the rest keep that order."""
    spec = SweepSpec(name="t", grid={"dataset": ["a", "b", "c"], "uncertainty": ["mopo", "mbpo"], "seed": [0, 1]}, base={"epochs": 2})
    started = tmp_path / "trials" / "c__mbpo__s1" / "checkpoint"
    started.mkdir(parents=True)
    (started / "progress.json").write_text("{}")
    plan = plan_trials(spec, tmp_path, workers=2)
    fresh = [(p["dataset"], p["uncertainty"], p["seed"]) for p in dispatch_order(spec.trials(), workers=2) if trial_id(p) != "c__mbpo__s1"]
    assert [(p["dataset"], p["uncertainty"], p["seed"], status) for p, status in plan] == [("c", "mbpo", 1, "resume")] + [(*f, "new") for f in fresh]

    spec.dataset_major = True  # the cells' order is a priority: c's started run leads only c's runs
    plan = [(p["dataset"], p["uncertainty"], p["seed"], status) for p, status in plan_trials(spec, tmp_path, workers=2)]
    assert plan[:4] == [("a", "mopo", 0, "new"), ("a", "mopo", 1, "new"), ("a", "mbpo", 0, "new"), ("a", "mbpo", 1, "new")]
    assert plan[8] == ("c", "mbpo", 1, "resume") and [row[0] for row in plan] == ["a"] * 4 + ["b"] * 4 + ["c"] * 4


def test_a_finished_trial_is_extended_to_a_larger_budget(hopper_file, tmp_path):  # noqa: F811
    base = {k: v for k, v in TINY.items() if k not in ("dynamics",)}
    base.update(epochs=2, checkpoint_every=2)
    spec = SweepSpec(name="extend", grid={"dataset": [str(hopper_file)], "uncertainty": ["zero"], "seed": [0]}, base=base, dynamics=TINY["dynamics"]["params"])
    published = []
    run_sweep(spec, tmp_path, workers=1, on_trial_done=published.append)
    run = tmp_path / "trials" / trial_id(spec.trials()[0])
    assert trial_status(run, 2) == "finished" and trial_status(run, 4) == "extend"
    assert [p["run_dir"] for p in published] == [str(run)]

    # as a trial comes back from a lent GPU (`mopo-kit train --resume RUN --device cuda` there, then
    # packed back): its config says cuda, and the sweep here must still continue it on its own device
    moved = json.loads((run / "config.json").read_text())
    moved["config"]["device"] = "cuda:0"
    (run / "config.json").write_text(json.dumps(moved))
    spec.base["epochs"] = 4
    run_sweep(spec, tmp_path, workers=1)
    results = json.loads((run / "results.json").read_text())
    assert results["epochs"] == 4 and results["gradient_steps"] == 4 * TINY["steps_per_epoch"]
    assert [row["epoch"] for row in _read_jsonl(run / "metrics.jsonl")] == [1, 2, 3, 4]
    saved = json.loads((run / "config.json").read_text())
    assert saved["config"]["epochs"] == 4
    assert saved["config"]["device"] == "auto", "the sweep's device (its default: auto), not the one the trial last ran on"
    assert saved["extensions"] == [{"from_epochs": 2, "to_epochs": 4, "at_epoch": 2}], "the run records that it continued a finished 2-epoch run"
    assert run_sweep(spec, tmp_path, workers=1) == [], "nothing left to run"

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from campaign import _started

    steps = TINY["steps_per_epoch"]
    assert _started(saved["extensions"], steps) == f"extended from {2 * steps}steps" and _started([], steps) == "from scratch"
    assert _started([{"from_epochs": 100, "to_epochs": 300}, {"from_epochs": 300, "to_epochs": 1000}], 1000) == "extended from 100k then 300k"
    assert _started([{"from_epochs": 300, "to_epochs": 1000, "at_epoch": 150}], 1000) == (
        "from scratch (budget raised before it finished: 300k → 1000k at epoch 150)"), "a killed 300k run resumed at 1M is not a 300k run extended"
    assert _started([{"from_epochs": 100, "to_epochs": 300, "at_epoch": 100}, {"from_epochs": 300, "to_epochs": 1000, "at_epoch": 40}], 1000) == (
        "extended from 100k (budget raised before it finished: 300k → 1000k at epoch 40)")


def test_a_resumed_extension_is_recorded_once():
    from mopo_kit.mopo import _extensions

    once = [{"from_epochs": 2, "to_epochs": 4, "at_epoch": 2}]
    assert _extensions({"config": {"epochs": 2}}, 4, 2) == once, "extending a finished 2-epoch run to 4"
    assert _extensions({"config": {"epochs": 4}, "extensions": once}, 4, 3) == once, "killed mid-extension and resumed: nothing new"
    assert _extensions({"config": {"epochs": 4}}, 4, 1) == [] and _extensions({}, 4, 0) == [], "a plain resume, a run without a record"
    assert _extensions({"config": {"epochs": 2}}, 4, 1) == [{"from_epochs": 2, "to_epochs": 4, "at_epoch": 1}], "raised before epoch 2 finished"


@pytest.mark.parametrize("workers", [1, 2])
def test_a_trial_published_elsewhere_while_the_sweep_runs_is_not_started(hopper_file, tmp_path, workers):  # noqa: F811
    """A GPU call publishes some of a CPU campaign's trials while it runs: they are skipped at dispatch."""
    base = {k: v for k, v in TINY.items() if k != "dynamics"}
    base.update(epochs=1)
    spec = SweepSpec(name="late", grid={"dataset": [str(hopper_file)], "uncertainty": ["zero"], "seed": [0, 1, 2]}, base=base, dynamics=TINY["dynamics"]["params"])
    published_elsewhere: set[int] = set()

    def done(summary):  # stands in for another machine: when the first trial ends, seed 2 appears published
        published_elsewhere.add(2)

    said: list[str] = []
    summaries = run_sweep(spec, tmp_path, workers=workers, threads=1, say=said.append, on_trial_done=done,
                          skip=lambda point: "published elsewhere" if point["seed"] in published_elsewhere else None)
    ran = sorted(json.loads((Path(s["run_dir"]) / "config.json").read_text())["config"]["seed"] for s in summaries)
    assert ran == [0, 1], "seed 2 was queued behind the first trial(s) and published before it started"
    assert not (tmp_path / "trials" / trial_id(spec.trials()[2])).exists()
    assert [line for line in said if line.startswith("skip")] == [f"skip {trial_id(spec.trials()[2])} (published elsewhere, since this sweep started)"]


def test_checkpoint_left_half_swapped_by_a_kill_is_recovered(tmp_path):
    (tmp_path / "checkpoint.old").mkdir()
    (tmp_path / "checkpoint.old" / "progress.json").write_text('{"epoch": 3}')
    recover_checkpoint(tmp_path)  # killed between the two renames: old is the last whole one
    assert json.loads((tmp_path / "checkpoint" / "progress.json").read_text())["epoch"] == 3
    (tmp_path / "checkpoint.old").mkdir()
    recover_checkpoint(tmp_path)  # killed while removing old: old is stale
    assert not (tmp_path / "checkpoint.old").exists() and (tmp_path / "checkpoint").exists()


def test_metrics_line_cut_by_a_kill_is_dropped_but_a_corrupt_middle_line_is_an_error(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"epoch": 1}\n{"epoch": 2}\n{"epo')
    assert [r["epoch"] for r in _read_jsonl(path)] == [1, 2]
    path.write_text('{"epoch": 1}\n{"epo\n{"epoch": 3}\n')
    with pytest.raises(Exception, match="line 2 is not valid JSON"):
        _read_jsonl(path)


def test_a_failing_trial_is_reported_in_one_line_and_the_others_finish(hopper_file, tmp_path):  # noqa: F811
    base = {k: v for k, v in TINY.items() if k != "dynamics"}
    base.update(epochs=1)
    missing = tmp_path / "gone.hdf5"
    spec = SweepSpec(name="partial", grid={"dataset": [str(hopper_file), str(missing)], "uncertainty": ["zero"], "seed": [0]}, base=base, dynamics=TINY["dynamics"]["params"])
    said: list[str] = []
    with pytest.raises(MopoKitError, match=r"1 of 2 trial\(s\) failed, the others finished; first: gone__zero__s0: .*gone.hdf5"):
        run_sweep(spec, tmp_path / "sweep", workers=1, threads=1, say=said.append)
    assert "2 trial(s) to run on 1 worker(s) × 1 thread(s) (local)" in said  # threads set, not cores / workers
    good = tmp_path / "sweep" / "trials" / trial_id(spec.trials()[0])
    assert json.loads((good / "results.json").read_text())["gradient_steps"] == TINY["steps_per_epoch"]
    assert [line for line in said if line.startswith("failed ")] == [next(line for line in said if line.startswith("failed gone__zero__s0: "))]


def test_ray_backend_also_skips_at_trial_start_and_hands_each_finished_trial_on(hopper_file, tmp_path):  # noqa: F811
    """The Ray backend keeps the local one's contract: skip asked again in the worker, on_trial_done per trial."""
    pytest.importorskip("ray")
    base = {k: v for k, v in TINY.items() if k != "dynamics"}
    base.update(epochs=1)
    spec = SweepSpec(name="ray-late", grid={"dataset": [str(hopper_file)], "uncertainty": ["zero"], "seed": [0, 1]}, base=base, dynamics=TINY["dynamics"]["params"])
    marker = tmp_path / "published-elsewhere"
    skipped = trial_id(spec.trials()[1])

    def say(line: str) -> None:  # after the plan, before Tune starts: seed 1 appears published elsewhere
        said.append(line)
        if "trial(s) to run" in line:
            marker.mkdir()
            (marker / skipped).touch()

    said: list[str] = []
    handed_on: list[dict] = []
    summaries = run_sweep(spec, tmp_path / "sweep", workers=2, threads=1, backend="ray", say=say, on_trial_done=handed_on.append,
                          skip=lambda point: "published elsewhere" if (marker / trial_id(point)).exists() else None)
    ran = tmp_path / "sweep" / "trials" / trial_id(spec.trials()[0])
    assert [s["run_dir"] for s in summaries] == [str(ran)] and handed_on == summaries
    assert json.loads((ran / "results.json").read_text())["gradient_steps"] == TINY["steps_per_epoch"]
    assert not (tmp_path / "sweep" / "trials" / skipped / "results.json").exists()
    assert f"skip {skipped} (published elsewhere, since this sweep started)" in said and f"done {ran.name}" in said


def test_refill_puts_points_unlocked_by_results_first_and_runs_each_once(hopper_file, tmp_path):  # noqa: F811
    """A study's report run, unlocked by the first trial's result, runs before the rest of the queue."""
    base = {k: v for k, v in TINY.items() if k not in ("dynamics",)}
    base.update(epochs=1, steps_per_epoch=20, eval_episodes=1)
    data = str(hopper_file)
    spec = SweepSpec(name="refill", grid={"dataset": [data], "uncertainty": ["zero", "max_aleatoric"], "seed": [0]}, base=base, dynamics=TINY["dynamics"]["params"])
    order: list[str] = []
    asked: list[set[str]] = []

    def refill(seen: set[str]) -> list[dict]:
        asked.append(seen)
        if order:  # after the first result: a "report" point, and one already queued (ignored)
            return [{"dataset": data, "uncertainty": "wasserstein", "seed": 0}, {"dataset": data, "uncertainty": "max_aleatoric", "seed": 0}]
        return []

    run_sweep(spec, tmp_path / "sweep", workers=1, threads=1, refill=refill, on_trial_done=lambda s: order.append(Path(s["run_dir"]).name))
    assert order == ["hopper-random-small__zero__s0", "hopper-random-small__wasserstein__s0", "hopper-random-small__max_aleatoric__s0"]
    assert "hopper-random-small__wasserstein__s0" in asked[-1] and len(order) == 3


def test_a_free_worker_skips_trials_waiting_on_a_running_fit():
    """A study queue is seed-major (s0's runs, then s1's): when a running trial is fitting s0's
    model, the next worker takes the first trial on another model instead of idling on the lock."""
    from collections import deque

    def item(name: str, model: str | None) -> tuple:
        return ({"uncertainty": name}, {}, f"/trials/{name}", None if model is None else {"target": f"/dynamics/{model}"})

    queue = deque([item("s0-mopo", "s0"), item("s0-mbpo", "s0"), item("s1-mopo", "s1"), item("s1-mbpo", "s1")])
    assert next_startable(queue, fitting=set()) == 0, "nothing fitting: the queue's order"
    assert next_startable(queue, fitting={"/dynamics/s0"}) == 2, "s0 is being fitted: the first s1 trial fits s1 beside it"
    assert next_startable(queue, fitting={"/dynamics/s0", "/dynamics/s1"}) == 0, "everything waits: the first starts (and waits)"
    assert next_startable(deque([item("s0", "s0"), item("own", None)]), fitting={"/dynamics/s0"}) == 1, "a trial without a shared model never waits"


def test_a_model_to_be_copied_from_a_reuse_directory_is_not_a_fit_to_wait_out(tmp_path):
    """A carried model (or one in ``reuse_models``) is copied in seconds when its trial starts: the
    scheduler must not count it as a running fit, or a free worker skips the next trial on it for a
    new run on another model (stage 4 put hopper-mixed s0 ahead of the carried walker2d-mixed s2)."""
    from collections import deque

    from mopo_kit.dynamics.storage import COMPONENT_FILE
    from mopo_kit.experiments.shared_models import awaits_fit
    from mopo_kit.experiments.sweep import fitting_targets

    def stored(directory):
        directory.mkdir(parents=True)
        (directory / COMPONENT_FILE).write_text("{}")

    sweep, carried, other_sweep = tmp_path / "sweep", tmp_path / "sweep" / "carried", tmp_path / "older"
    job = {"target": str(sweep / "dynamics" / "walker2d-mixed-s2"), "reuse": [str(carried)]}
    assert awaits_fit(job), "nothing stored, nothing to copy: a fit"
    stored(carried / "hopper-mixed-s2")
    assert awaits_fit(job), "a reuse directory without a model of this name: still a fit"
    stored(carried / "walker2d-mixed-s2")
    assert not awaits_fit(job), "the carried model of this name is copied, not fitted"
    assert awaits_fit({**job, "reuse": []}), "without the reuse directory the same target is a fit"
    stored(other_sweep / "dynamics" / "walker2d-mixed-s2")
    assert not awaits_fit({**job, "reuse": [str(other_sweep)]}), "an older sweep's dynamics/ counts too"
    # the scheduler: with the carried MOPO s2 running, the next worker takes MBPO s2 (same model),
    # not the new hopper run queued behind it; without the carried model it would fit hopper's beside
    queue = deque([({}, {}, "/trials/mbpo-s2", job), ({}, {}, "/trials/hopper-s0", {"target": str(sweep / "dynamics" / "hopper-mixed-s0")})])
    assert next_startable(queue, fitting_targets([job])) == 0
    assert next_startable(queue, fitting_targets([{**job, "reuse": []}])) == 1
    stored(sweep / "dynamics" / "walker2d-mixed-s2")
    assert not awaits_fit({**job, "reuse": []}), "stored in place: nothing to fit"


def test_refill_reorders_the_queued_trials_it_names(hopper_file, tmp_path):  # noqa: F811
    """A study's priority can change with results: queued trials run in the order refill names them."""
    base = {k: v for k, v in TINY.items() if k not in ("dynamics",)}
    base.update(epochs=1, steps_per_epoch=20, eval_episodes=1)
    data = str(hopper_file)
    spec = SweepSpec(name="reorder", grid={"dataset": [data], "uncertainty": ["zero", "max_aleatoric", "wasserstein", "mmd"], "seed": [0]},
                     base=base, dynamics=TINY["dynamics"]["params"])
    order: list[str] = []

    def refill(seen: set[str]) -> list[dict]:  # after the first result: wasserstein, then max_aleatoric; mmd unnamed
        return [{"dataset": data, "uncertainty": name, "seed": 0} for name in ("wasserstein", "max_aleatoric")] if order else []

    run_sweep(spec, tmp_path / "sweep", workers=1, threads=1, refill=refill, on_trial_done=lambda s: order.append(Path(s["run_dir"]).name.split("__")[1]))
    assert order == ["zero", "wasserstein", "max_aleatoric", "mmd"], "named ones first in refill's order, the unnamed one keeps its place behind"


def test_refilled_points_queue_behind_trials_that_hold_a_checkpoint(hopper_file, tmp_path):  # noqa: F811
    """A restarted study resumes its half-done trials before the points its refill adds."""
    base = {k: v for k, v in TINY.items() if k not in ("dynamics",)}
    base.update(epochs=2, steps_per_epoch=20, eval_episodes=1, checkpoint_every=1)
    data = str(hopper_file)
    spec = SweepSpec(name="refill", grid={"dataset": [data], "uncertainty": ["zero", "max_aleatoric"], "seed": [0]}, base=base, dynamics=TINY["dynamics"]["params"])
    sweep = tmp_path / "sweep"
    half_done = sweep / "trials" / "hopper-random-small__max_aleatoric__s0"
    run_sweep(SweepSpec(name="refill", grid={**spec.grid, "uncertainty": ["max_aleatoric"]}, base={**base, "epochs": 1}, dynamics=spec.dynamics),
              sweep, workers=1, threads=1)
    (half_done / "results.json").unlink()  # as if killed after its epoch-1 checkpoint
    order: list[str] = []
    run_sweep(spec, sweep, workers=1, threads=1, refill=lambda seen: [{"dataset": data, "uncertainty": "wasserstein", "seed": 0}],
              on_trial_done=lambda s: order.append(Path(s["run_dir"]).name))
    assert order == ["hopper-random-small__max_aleatoric__s0", "hopper-random-small__wasserstein__s0", "hopper-random-small__zero__s0"]
