"""Out-of-distribution tasks (halfcheetah-jump, ant-angle) and their relabeled replay datasets.

Every reward is checked against the formula written out here from MuJoCo's own state (qpos before
and after the step, ``cfrc_ext``), never against the code under test.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import mopo_kit
from mopo_kit.data.actor import load_actor
from mopo_kit.data.load import load_dataset
from mopo_kit.data.ood import make_relabeled
from mopo_kit.data.recipes import run_segments
from mopo_kit.data.shipped import behavior_run, task_policies
from mopo_kit.errors import UnknownComponentError
from mopo_kit.mopo import infer_task_and_kind
from mopo_kit.plugins import get_registry


def _jump(before: np.ndarray, after: np.ndarray, action: np.ndarray, dt: float, z_init: float) -> float:
    v_x = (after[0] - before[0]) / dt
    return -0.1 * float(np.sum(np.square(action, dtype=np.float64))) + min(v_x, 3.0) + 15.0 * (after[1] - z_init)


def _angle(before: np.ndarray, after: np.ndarray, action: np.ndarray, dt: float, cfrc_ext: np.ndarray) -> float:
    v_x, v_y = (after[0] - before[0]) / dt, (after[1] - before[1]) / dt
    contact = 5e-4 * float(np.sum(np.square(np.clip(cfrc_ext, -1.0, 1.0))))
    ctrl = 0.5 * float(np.sum(np.square(action, dtype=np.float64)))
    return v_x * math.cos(math.pi / 6) + v_y * math.sin(math.pi / 6) - ctrl - contact + 1.0


def test_get_task_returns_every_registered_task():
    names = get_registry().names("task")
    assert {"halfcheetah", "hopper", "walker2d", "ant", "halfcheetah-jump", "ant-angle"} <= set(names)
    for name in names:
        assert mopo_kit.get_task(name).name == name
    jump, angle = mopo_kit.get_task("halfcheetah-jump"), mopo_kit.get_task("ant-angle")
    assert (jump.obs_dim, jump.act_dim, angle.obs_dim, angle.act_dim) == (17, 6, 27, 8)
    assert jump.ref_min_score is None and angle.ref_max_score is None  # the paper reports raw returns
    with pytest.raises(ValueError, match="no reference scores"):
        jump.normalized_score(1.0)
    with pytest.raises(UnknownComponentError, match="halfcheetah-jmp"):
        mopo_kit.get_task("halfcheetah-jmp")


def test_jump_reward_matches_mujoco_state_and_never_terminates():
    env = mopo_kit.get_task("halfcheetah-jump").make_env()
    data, dt = env.unwrapped.data, env.unwrapped.dt
    rng = np.random.default_rng(0)
    obs, _ = env.reset(seed=3)
    z_init = float(data.qpos[1])
    assert obs.shape == (17,) and obs[0] == pytest.approx(z_init)
    for t in range(1, 1001):
        action = rng.uniform(-1, 1, 6).astype(np.float32)
        before = data.qpos.copy()
        _, reward, terminated, truncated, info = env.step(action)
        assert reward == pytest.approx(_jump(before, data.qpos, action, dt, z_init), abs=1e-9)
        assert not terminated and truncated == (t == 1000)
        assert reward != pytest.approx(info["original_reward"])
        # the terms in info are the jump reward's (HalfCheetah's own reward_run is replaced)
        v_x = (data.qpos[0] - before[0]) / dt
        assert info["reward_run"] == pytest.approx(min(v_x, 3.0), abs=1e-9)
        assert info["reward_height"] == pytest.approx(15.0 * (data.qpos[1] - z_init), abs=1e-9)
        assert info["reward_run"] + info["reward_height"] + info["reward_ctrl"] == pytest.approx(reward, abs=1e-9)
    env.close()


def test_evaluation_reports_what_a_jump_return_is_made_of():
    from mopo_kit.evaluation import evaluate_in_env

    task = mopo_kit.get_task("halfcheetah-jump")
    still = evaluate_in_env(task, lambda obs: np.zeros((len(obs), 6), dtype=np.float32), episodes=2, seed=0)
    assert set(still.reward_terms) == {"reward_run", "reward_height", "reward_ctrl"}
    assert sum(still.reward_terms.values()) == pytest.approx(still.return_mean, rel=1e-9)
    assert still.reward_terms["reward_ctrl"] == 0.0 and abs(still.reward_terms["reward_run"]) < 50, "a zero action neither runs nor pays"
    flat = still.flat()
    assert flat["eval_reward_height"] == still.reward_terms["reward_height"] and "reward_terms" not in flat


def test_episodes_record_where_the_body_went_as_stepping_the_env_by_hand_does():
    """run_episodes' first/last info (Ant's x/y position) and lengths, against the env stepped directly."""
    from mopo_kit.data.episodes import episode_returns, run_episodes

    task = mopo_kit.get_task("hopper")  # random actions topple it in tens of steps: short episodes
    rng = np.random.default_rng(0)
    table = rng.uniform(-1, 1, size=(64, 3)).astype(np.float32)

    def policy(obs: np.ndarray) -> np.ndarray:  # deterministic in the state, so a hand replay is exact
        return table[(np.abs(obs[:, 0]) * 1e4).astype(np.int64) % len(table)]

    batch = run_episodes(task, policy, episodes=3, seed=5)
    np.testing.assert_array_equal(batch.returns, episode_returns(task, policy, episodes=3, seed=5))
    for i in range(3):
        env = task.make_env()
        low, high = env.action_space.low.astype(np.float32), env.action_space.high.astype(np.float32)
        obs, info = env.reset(seed=5 + i)
        assert batch.first_info["x_position"][i] == info["x_position"]
        steps, done = 0, False
        while not done:
            action = policy(obs[None].astype(np.float32))[0]
            obs, _, terminated, truncated, info = env.step(low + (action + 1.0) * 0.5 * (high - low))  # the runner's rescaling
            steps, done = steps + 1, terminated or truncated
        assert batch.lengths[i] == steps < 1000, "the episode ended where the env ended it"
        assert batch.last_info["x_position"][i] == info["x_position"]
    assert not any(key.startswith("reward_") for key in batch.last_info), "reward terms are summed, not recorded as positions"
    from mopo_kit.evaluation import evaluate_in_env

    evaluation = evaluate_in_env(task, policy, episodes=3, seed=5)  # hopper's actions are already in [-1, 1]
    assert evaluation.length_mean == batch.lengths.mean() < 1000 and evaluation.return_mean == batch.returns.mean()
    assert evaluation.flat()["length_mean"] == evaluation.length_mean, "metric rows (and the campaign's curves) carry it"


def test_evaluation_returns_do_not_depend_on_the_callers_torch_threads():
    from mopo_kit.evaluation import evaluate_in_env

    torch.manual_seed(0)  # an actor-sized MLP: its 10-row batch rounds differently on 1 and 2 threads
    net = torch.nn.Sequential(torch.nn.Linear(17, 256), torch.nn.ReLU(), torch.nn.Linear(256, 256), torch.nn.ReLU(), torch.nn.Linear(256, 6), torch.nn.Tanh())

    def policy(obs: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return net(torch.as_tensor(obs)).numpy()

    task = mopo_kit.get_task("halfcheetah")
    before = torch.get_num_threads()
    try:
        scores = {}
        for threads in (2, 1):
            torch.set_num_threads(threads)
            scores[threads] = evaluate_in_env(task, policy, episodes=10, seed=0)
            assert torch.get_num_threads() == threads, "the caller's thread count is given back"
    finally:
        torch.set_num_threads(before)
    assert scores[1].to_json() == scores[2].to_json()


def test_angle_reward_matches_mujoco_state_with_the_bonus_on_terminal_steps():
    task = mopo_kit.get_task("ant-angle")
    env = task.make_env()
    data, dt = env.unwrapped.data, env.unwrapped.dt
    rng = np.random.default_rng(1)
    obs, _ = env.reset(seed=4)
    terminal_rewards, rows = [], []
    for _ in range(1500):
        action = rng.uniform(-1, 1, 8).astype(np.float32)
        before = data.qpos.copy()
        next_obs, reward, terminated, truncated, info = env.step(action)
        assert next_obs.shape == (27,)
        assert reward == pytest.approx(_angle(before, data.qpos, action, dt, data.cfrc_ext), abs=1e-9)
        assert sum(v for k, v in info.items() if k.startswith("reward_")) == pytest.approx(reward, abs=1e-9)
        assert info["reward_healthy"] == 1.0 and info["reward_contact"] <= 0.0
        z = data.qpos[2]
        assert terminated == (not (np.isfinite(data.qpos).all() and np.isfinite(data.qvel).all() and 0.2 <= z <= 1.0))
        rows.append((obs, action, next_obs, terminated))
        obs = next_obs
        if terminated:
            terminal_rewards.append(reward)
        if terminated or truncated:
            obs, _ = env.reset(seed=int(rng.integers(1 << 30)))
    env.close()
    assert len(terminal_rewards) >= 3, "random actions should flip the ant over a few times"
    o, a, n, d = (np.array(x) for x in zip(*rows))
    predicted = task.termination_fn(torch.as_tensor(o), torch.as_tensor(a), torch.as_tensor(n)).numpy()
    np.testing.assert_array_equal(predicted, d)


def test_jump_rollouts_never_terminate():
    task = mopo_kit.get_task("halfcheetah-jump")
    wild = torch.full((3, 17), 1e6)
    assert not task.termination_fn(wild, torch.zeros(3, 6), wild).any()


def test_full_run_recipe_covers_the_expert_runs_training_steps_with_its_own_snapshots():
    for source, end in (("halfcheetah", 270_000), ("ant", 220_000)):
        run = behavior_run(source)
        expert = task_policies(source).expert
        assert run.end_step == end == expert.step and run.end_snapshot == expert.describe()["file"]
        for snapshot in run.snapshots:  # the expert's own run: same task, step as recorded
            _, meta = load_actor(snapshot.path)
            assert meta["task"] == source and meta["step"] == snapshot.step and meta["seed"] == run.seed
        segments = run_segments(run)
        assert sum(s.steps for s in segments) == end and segments[0].policy.actor_file is None
        assert segments[0].steps == run.learning_starts
        assert make_relabeled(mopo_kit.get_task({"halfcheetah": "halfcheetah-jump", "ant": "ant-angle"}[source])).steps == end


def _replayed_rewards(name: str, data) -> tuple[np.ndarray, np.ndarray]:
    """Each stored transition replayed in MuJoCo from its stored state (x, y are not observed; the
    floor is flat, so they are set to 0); the reward written out from qpos/cfrc_ext, and s'."""
    env = mopo_kit.get_task(name).make_env()
    sim = env.unwrapped
    env.reset(seed=0)
    skip = 1 if name == "halfcheetah-jump" else 2  # root coordinates left out of the observation
    nq = sim.model.nq
    starts = np.r_[True, data.episode_ends[:-1]]
    rewards, next_obs = [], []
    for i in range(len(data)):
        obs = data.observations[i].astype(np.float64)
        if starts[i]:
            z_init = obs[0]  # HalfCheetah's obs[0] is qpos[1] (rootz), at reset on an episode's first row
        sim.set_state(np.r_[np.zeros(skip), obs[: nq - skip]], obs[nq - skip:])
        before = sim.data.qpos.copy()
        action = data.actions[i]
        sim.do_simulation(action, sim.frame_skip)
        after = sim.data.qpos
        if name == "halfcheetah-jump":
            rewards.append(_jump(before, after, action, sim.dt, z_init))
        else:
            rewards.append(_angle(before, after, action, sim.dt, sim.data.cfrc_ext))
        next_obs.append(np.r_[after[skip:], sim.data.qvel])
    env.close()
    return np.array(rewards), np.array(next_obs)


@pytest.mark.parametrize("name,source,obs_dim", [("halfcheetah-jump", "halfcheetah", 17), ("ant-angle", "ant", 27)])
def test_relabeled_dataset_rewards_dims_and_metadata(name, source, obs_dim, tmp_path, monkeypatch):
    monkeypatch.setenv("MOPO_KIT_DATA", str(tmp_path))
    data = load_dataset(name, steps=2_000)
    assert len(data) == 2_000 and (data.obs_dim, data.act_dim) == (obs_dim, {17: 6, 27: 8}[obs_dim])
    meta = data.metadata
    assert meta["task"] == name and meta["source_task"] == source and meta["scaled_down"]
    run = behavior_run(source)
    assert meta["source_run"]["command"] == run.command and meta["source_run"]["end_step"] == run.end_step
    assert [s["step"] for s in meta["source_run"]["snapshots"]] == [p.step for p in run.snapshots]
    assert "run snapshot (SAC step 10,000)" in meta["policy"]
    assert infer_task_and_kind(data, name, None) == (name, "full-replay")
    rewards, next_obs = _replayed_rewards(name, data)
    # stored states are float32, so the replay is exact only up to that rounding
    np.testing.assert_allclose(data.rewards, rewards, atol=2e-3)
    np.testing.assert_allclose(data.next_observations, next_obs, atol=2e-2)
