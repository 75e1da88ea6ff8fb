"""Collection in the real environment and registered, cached datasets."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from mopo_kit.data.collect import collect_transitions, uniform_random_policy
from mopo_kit.data.load import load_dataset
from mopo_kit.data.named import CacheWarning
from mopo_kit.envs.tasks import HOPPER


def test_random_collection_has_d4rl_structure():
    data = collect_transitions(HOPPER, uniform_random_policy(3), steps=600, seed=0, num_envs=4)
    assert len(data) == 600
    ends = data.episode_ends
    # inside an episode s' is the next row's s; every episode ends with a terminal or a timeout
    inside = ~ends[:-1]
    np.testing.assert_array_equal(data.next_observations[:-1][inside], data.observations[1:][inside])
    assert np.array_equal(ends, data.terminals | data.timeouts)
    assert data.terminals.sum() >= 10  # random hopper falls within ~20-60 steps
    assert (np.abs(data.actions) <= 1).all()


def test_same_seed_same_data_other_seed_other_data():
    a = collect_transitions(HOPPER, uniform_random_policy(3), steps=300, seed=5, num_envs=3)
    b = collect_transitions(HOPPER, uniform_random_policy(3), steps=300, seed=5, num_envs=3)
    c = collect_transitions(HOPPER, uniform_random_policy(3), steps=300, seed=6, num_envs=3)
    for key, value in a.arrays().items():
        np.testing.assert_array_equal(getattr(b, key), value)
    assert not np.array_equal(a.observations, c.observations)


def test_named_dataset_is_cached_and_a_corrupt_cache_regenerated(tmp_path, monkeypatch):
    monkeypatch.setenv("MOPO_KIT_DATA", str(tmp_path))
    from mopo_kit.plugins import get_registry

    first = get_registry().create("dataset", "hopper-random", steps=400)
    files = list(tmp_path.glob("hopper-random-*.hdf5"))
    assert len(files) == 1
    assert first.metadata["scaled_down"] and first.metadata["kind"] == "random"
    mtime = files[0].stat().st_mtime_ns
    again = get_registry().create("dataset", "hopper-random", steps=400)
    assert files[0].stat().st_mtime_ns == mtime, "second load must come from the cache"
    np.testing.assert_array_equal(again.observations, first.observations)

    with h5py.File(files[0], "r+") as handle:
        handle["observations"][0, 0] += 1.0
    with pytest.warns(CacheWarning, match="checksum mismatch"):
        healed = get_registry().create("dataset", "hopper-random", steps=400)
    np.testing.assert_array_equal(healed.observations, first.observations)


def test_load_dataset_by_name_path_and_minari(tmp_path, monkeypatch):
    import minari
    from minari.data_collector import EpisodeBuffer

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    env = HOPPER.make_env()
    rng = np.random.default_rng(0)
    buffers = []
    for ep in range(3):  # EpisodeBuffer built whole: add_step_data would need jax
        obs, _ = env.reset(seed=ep)
        ep_obs, acts, rews, terms, truncs = [obs], [], [], [], []
        for _ in range(1000):
            act = rng.uniform(-1, 1, 3).astype(np.float32)
            obs, rew, terminated, truncated, _ = env.step(act)
            ep_obs.append(obs), acts.append(act), rews.append(rew), terms.append(terminated), truncs.append(truncated)
            if terminated or truncated:
                break
        buffers.append(
            EpisodeBuffer(
                id=ep, observations=ep_obs, actions=acts, rewards=rews, terminations=terms, truncations=truncs, infos={}
            )
        )
    minari.create_dataset_from_buffers(
        "test/hopper/random-v0", buffers, env=env, eval_env=env.spec, algorithm_name="random",
        author="tests", author_email="tests@example.org", description="three random hopper episodes",
        code_permalink="https://example.org/tests",
    )
    data = load_dataset("minari:test/hopper/random-v0")
    lengths = [len(b.rewards) for b in buffers]
    assert len(data) == sum(lengths)  # T transitions from T+1 observations per episode
    assert data.summary().episodes == 3
    first = np.asarray(buffers[0].observations)
    np.testing.assert_allclose(data.observations[: lengths[0]], first[:-1])
    np.testing.assert_allclose(data.next_observations[: lengths[0]], first[1:])
    assert data.terminals.sum() == sum(bool(b.terminations[-1]) for b in buffers)
