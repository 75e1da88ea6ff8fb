"""D4RL recipes (medium, mixed, medium-expert), snapshot choice, sharded collection, shipped policies."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mopo_kit.data import shipped
from mopo_kit.data.actor import load_actor
from mopo_kit.data.behavior import medium_snapshot, replay_snapshots
from mopo_kit.data.collect import PolicySource, Segment, collect_segments, shard_sizes
from mopo_kit.data.recipes import dataset_segments, replay_segments
from mopo_kit.data.shipped import ShippedPolicy, TaskPolicies, shipped_tasks, task_policies
from mopo_kit.envs.tasks import BUILTIN_TASKS, HOPPER
from mopo_kit.errors import DatasetError


def _policy(step: int) -> ShippedPolicy:
    return ShippedPolicy(Path(f"/nowhere/step_{step}.pt"), step, 0.0, 0.0)


def _policies(replay_steps=(10_000, 30_000, 50_000), medium=60_000) -> TaskPolicies:
    return TaskPolicies("hopper", _policy(200_000), _policy(medium), tuple(map(_policy, replay_steps)), 5_000, {})


def test_replay_segments_follow_training_and_scale_exactly():
    full = replay_segments(_policies(), 60_000)
    assert [seg.steps for seg in full] == [5_000, 25_000, 20_000, 10_000]  # warm-up, then each snapshot's stretch
    assert full[0].policy.actor_file is None and full[1].policy.actor_file.endswith("step_10000.pt")
    scaled = replay_segments(_policies(), 6_001)
    assert sum(seg.steps for seg in scaled) == 6_001
    assert [seg.steps for seg in scaled] == [500, 2_501, 2_000, 1_000]  # largest remainder gets the extra row
    with pytest.raises(ValueError, match="training order"):
        replay_segments(_policies(replay_steps=(30_000, 10_000)), 1_000)


def test_medium_expert_is_half_medium_half_expert():
    segs = dataset_segments("medium-expert", 1_001, _policies())
    assert [s.steps for s in segs] == [500, 501]
    assert "step_60000" in segs[0].policy.actor_file and "step_200000" in segs[1].policy.actor_file


def test_medium_is_the_first_snapshot_at_a_third_and_replay_is_spread_evenly():
    evals = [{"step": s, "stoch_return_mean": r} for s, r in [(10, 0.0), (20, 40.0), (30, 20.0), (40, 35.0), (50, 90.0)]]
    assert medium_snapshot(evals, expert_return=100.0)["step"] == 20  # first to reach 33.3, not the best
    with pytest.raises(ValueError, match="no snapshot reaches"):
        medium_snapshot(evals, expert_return=1_000.0)
    steps = [{"step": s} for s in range(2, 42, 2)]
    picked = [e["step"] for e in replay_snapshots(steps, until_step=40, learning_starts=5, count=4)]
    assert picked[0] == 6 and picked[-1] == 38 and len(picked) == 4 and picked == sorted(picked)
    assert len(replay_snapshots(steps, until_step=10, learning_starts=5, count=4)) == 2


def test_sharded_collection_is_the_same_for_any_number_of_workers():
    segments = [Segment(PolicySource(), 4_500), Segment(PolicySource(), 500)]
    assert shard_sizes(HOPPER, 4_500) == [4_500] and shard_sizes(HOPPER, 9_001) == [4_501, 4_500]
    one = collect_segments(HOPPER, segments, seed=3, workers=1)
    two = collect_segments(HOPPER, segments, seed=3, workers=2)
    assert len(one) == 5_000
    for key, value in one.arrays().items():
        np.testing.assert_array_equal(getattr(two, key), value)
    ends = one.episode_ends
    inside = ~ends[:-1]
    np.testing.assert_array_equal(one.next_observations[:-1][inside], one.observations[1:][inside])


def test_every_shipped_task_has_loadable_policies_with_medium_near_a_third_of_expert():
    assert {"halfcheetah", "hopper", "walker2d"} <= set(shipped_tasks())
    tasks = {t.name: t for t in BUILTIN_TASKS}
    for name in shipped_tasks():
        policies = task_policies(name)
        for policy in (policies.expert, policies.medium, *policies.replay):
            actor, meta = load_actor(policy.path)
            assert (actor.obs_dim, actor.act_dim) == (tasks[name].obs_dim, tasks[name].act_dim)
            assert meta["step"] == policy.step and meta["task"] == name
        ratio = policies.medium.stoch_return / policies.expert.stoch_return
        assert 0.25 <= ratio <= 0.5, f"{name}: medium at {ratio:.2f} of expert"
        assert [p.step for p in policies.replay] == sorted(p.step for p in policies.replay)
        assert policies.replay[-1].step < policies.medium.step


def test_medium_data_beats_random_and_medium_expert_ends_with_the_expert(tmp_path, monkeypatch):
    monkeypatch.setenv("MOPO_KIT_DATA", str(tmp_path))
    from mopo_kit.plugins import get_registry

    registry = get_registry()
    random = registry.create("dataset", "hopper-random", steps=3_000)
    medium = registry.create("dataset", "hopper-medium", steps=3_000)
    assert medium.metadata["behavior_policies"]["medium"]["step"] == task_policies("hopper").medium.step
    assert medium.summary().return_mean > 3 * random.summary().return_mean
    both = registry.create("dataset", "hopper-medium-expert", steps=6_000)
    first, second = both.select(slice(0, 3_000)), both.select(slice(3_000, None))
    assert second.episode_returns().mean() > 1.25 * first.episode_returns().mean()  # the expert half
    mixed = registry.create("dataset", "hopper-mixed", steps=3_000)
    assert "regenerated" in mixed.metadata["replay_regenerated"]
    assert random.summary().return_mean < mixed.summary().return_mean < medium.summary().return_mean * 1.2


def test_missing_or_malformed_manifest_is_one_clear_error(tmp_path, monkeypatch):
    with pytest.raises(DatasetError, match="no shipped behavior policies for task 'nosuch'"):
        task_policies("nosuch")
    bad = tmp_path / "manifest.json"
    bad.write_text(json.dumps({"tasks": {"hopper": {"expert": {"file": "x.pt"}}}}))
    monkeypatch.setattr(shipped, "MANIFEST", bad)
    shipped._manifest.cache_clear()
    try:
        with pytest.raises(DatasetError, match="task 'hopper' has a malformed entry"):
            task_policies("hopper")
    finally:
        shipped._manifest.cache_clear()


def test_dataset_info_generates_halfcheetah_medium_from_the_shipped_policy_alone(tmp_path, run_cli):
    proc = run_cli("dataset", "info", "halfcheetah-medium", "--json", env={"MOPO_KIT_DATA": str(tmp_path / "cache")}, check_rc=0)
    info = json.loads(proc.stdout)
    assert info["transitions"] == 200_000 and info["episodes"] == 200  # 1,000-step episodes, none cut
    medium = task_policies("halfcheetah").medium
    # 200 sampled-action episodes of the medium policy: near the return it was chosen by (5 episodes)
    assert 0.8 * medium.stoch_return < info["return_mean"] < 1.2 * medium.stoch_return
    assert info["metadata"]["behavior_policies"]["medium"]["step"] == medium.step


def test_a_task_that_cannot_be_pickled_is_collected_in_process():
    from dataclasses import replace

    task = replace(HOPPER, termination_fn=lambda obs, act, next_obs: next_obs[:, 0] < 0)  # a lambda: no pickling
    segments = [Segment(PolicySource(), 9_000)]
    data = collect_segments(task, segments, seed=1, workers=2)
    reference = collect_segments(HOPPER, segments, seed=1, workers=1)
    np.testing.assert_array_equal(data.observations, reference.observations)


def test_cache_file_name_changes_with_the_behavior_policy(monkeypatch):
    from dataclasses import replace

    from mopo_kit.data import named

    before = named.make_named(HOPPER, "medium").path
    assert before.name.startswith("hopper-medium-s0-n200000-")
    policies = task_policies("hopper")
    monkeypatch.setattr(named, "task_policies", lambda task: replace(policies, medium=policies.expert))
    assert named.make_named(HOPPER, "medium").path != before, "another policy must never hit the old cache file"


def test_collecting_leaves_the_callers_torch_threads_alone():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        collect_segments(HOPPER, [Segment(PolicySource(), 4_500)], seed=0, workers=1)
        collect_segments(HOPPER, [Segment(PolicySource(), 9_000)], seed=0, workers=2)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_a_graceful_stop_ends_a_sharded_collection_and_leaves_no_worker():
    """The first SIGTERM/SIGINT (here: a timer asking 1 s in) ends a 400k-step collection that
    would run for minutes: StopRequested names the dataset, and every worker process is gone."""
    import multiprocessing
    import threading

    from mopo_kit.stop import StopRequested, graceful_stop, request_stop

    timer = threading.Timer(1.0, request_stop)
    with graceful_stop():
        timer.start()
        try:
            with pytest.raises(StopRequested, match="while collecting hopper-big; nothing was written") as stopped:
                collect_segments(HOPPER, [Segment(PolicySource(), 400_000)], seed=0, workers=2, description="hopper-big")
        finally:
            timer.cancel()
    assert stopped.value.exit_code == 143
    assert multiprocessing.active_children() == []


def test_a_single_process_collection_stops_on_the_signal_it_was_given():
    import signal

    from mopo_kit.stop import StopRequested, graceful_stop, request_stop

    with graceful_stop():
        request_stop(signal.SIGINT)
        with pytest.raises(StopRequested, match="stopped by SIGINT while collecting tiny") as stopped:
            collect_segments(HOPPER, [Segment(PolicySource(), 9_000)], seed=0, workers=1, description="tiny")
    assert stopped.value.exit_code == 130


def test_a_collection_worker_stops_when_its_parent_sets_the_event(monkeypatch):
    """In a worker the stop arrives as the parent's event, not a signal: within a few rounds."""
    import multiprocessing

    from mopo_kit.data import collect
    from mopo_kit.stop import StopRequested

    event = multiprocessing.get_context("fork").Event()
    monkeypatch.setattr(collect, "_worker_stop", event)
    data = collect.collect_transitions(HOPPER, collect.uniform_random_policy(HOPPER.act_dim), 2_000, seed=0)
    assert len(data) == 2_000  # the event unset: the collection runs whole
    event.set()
    with pytest.raises(StopRequested, match="stopped by SIGTERM"):
        collect.collect_transitions(HOPPER, collect.uniform_random_policy(HOPPER.act_dim), 100_000, seed=0)


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads worker processes from /proc (Linux)")
def test_collection_workers_die_with_a_parent_killed_outright():
    """SIGKILL to the collecting process (no handler can run) still ends its shard workers."""
    import os
    import signal
    import subprocess
    import sys
    import time

    script = (
        "from mopo_kit.data.collect import PolicySource, Segment, collect_segments\n"
        "from mopo_kit.envs.tasks import HOPPER\n"
        "collect_segments(HOPPER, [Segment(PolicySource(), 400_000)], seed=0, workers=2)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], env={**os.environ, "MOPO_KIT_QUIET": "1"})

    def children() -> list[int]:
        found: list[int] = []
        for task in Path(f"/proc/{parent.pid}/task").glob("*/children"):
            found += [int(pid) for pid in task.read_text().split()]
        return found

    try:
        deadline = time.monotonic() + 120
        while len(workers := children()) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(workers) >= 2, "the collection never started its worker processes"
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    deadline = time.monotonic() + 30
    while (alive := [pid for pid in workers if Path(f"/proc/{pid}").exists() and "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2]]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert alive == [], f"collection workers {alive} outlived their parent"


@pytest.mark.skipif(not __import__("sys").platform.startswith("linux"), reason="the parent-death signal is Linux's")
def test_a_worker_whose_parent_died_before_it_armed_exits_whoever_adopted_it():
    """The race between fork and prctl: a worker re-parented before it armed the death signal
    exits at once — judged by the pid it was started by, so a subreaper adopting it (a container's
    init, systemd --user) is recognized like PID 1. Here the "starting parent" is a pid that is not
    the worker's parent: it must exit 1; given its real parent it returns and goes on."""
    import os
    import signal

    from mopo_kit.stop import die_with_parent

    def run_in_child(claimed_parent: str) -> int:
        pid = os.fork()
        if pid == 0:  # the worker
            try:
                die_with_parent(signal.SIGTERM, os.getppid() if claimed_parent == "real" else os.getppid() + 999_999)
                os._exit(0)
            except BaseException:
                os._exit(2)
        _, status = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(status)

    assert run_in_child("real") == 0
    assert run_in_child("gone") == 1
