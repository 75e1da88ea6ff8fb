"""D4RL-layout HDF5 files: round trip, files without next_observations, episode boundaries."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from mopo_kit.data.d4rl_io import read_d4rl_hdf5, write_d4rl_hdf5
from mopo_kit.data.dataset import TransitionDataset
from mopo_kit.errors import DatasetError
from tests.conftest import two_episode_arrays, with_next_observations, write_h5

_with_next = with_next_observations


def test_round_trip_keeps_arrays_and_metadata(tmp_path):
    data = TransitionDataset.from_arrays(**_with_next(two_episode_arrays()))
    checksum = write_d4rl_hdf5(data, tmp_path / "d.hdf5", metadata={"task": "toy", "seed": 3})
    back = read_d4rl_hdf5(tmp_path / "d.hdf5")
    for key, value in data.arrays().items():
        np.testing.assert_array_equal(getattr(back, key), value)
    assert back.metadata == {"task": "toy", "seed": 3}
    assert len(checksum) == 64
    assert not list(tmp_path.glob(".*tmp")), "temp file left behind"


def test_file_with_next_observations_keeps_every_row(tmp_path):
    path = write_h5(tmp_path / "v2.hdf5", _with_next(two_episode_arrays()))
    data = read_d4rl_hdf5(path)
    assert len(data) == 7
    np.testing.assert_array_equal(data.episode_returns(), [1 + 2 + 3 + 4, 5 + 6 + 7])


def test_file_without_next_observations_never_pairs_across_episodes(tmp_path):
    path = write_h5(tmp_path / "v0.hdf5", two_episode_arrays())
    data = read_d4rl_hdf5(path)
    # row 3 is terminal: kept, its s' unknown; row 6 (timeout, last row) is dropped
    assert len(data) == 6
    assert data.metadata["dropped_rows_without_next_observation"] == 1
    assert data.metadata["terminal_rows_without_next_observation"] == 1
    np.testing.assert_array_equal(data.observations[:, 0], [0, 1, 2, 3, 104, 105])
    np.testing.assert_array_equal(data.next_observations[:, 0], [1, 2, 3, 3, 105, 106])
    np.testing.assert_array_equal(data.terminals, [0, 0, 0, 1, 0, 0])
    np.testing.assert_array_equal(data.known_next, [1, 1, 1, 0, 1, 1])
    # no transition leads into the second episode's first observation (104)
    assert not np.any(data.next_observations[:, 0] == 104)
    assert data.summary().episodes == 2
    np.testing.assert_array_equal(data.episode_returns(), [1 + 2 + 3 + 4, 5 + 6 + 7])  # as written


def _three_episodes() -> dict[str, np.ndarray]:
    """Returns 10 (terminal), 30 (time limit) and -5 (terminal, the file's last row), D4RL v0 layout."""
    rewards = [4, 3, 2, 1] + [10, 10, 10] + [-2, -3]
    n = len(rewards)
    terminals, timeouts = np.zeros(n, bool), np.zeros(n, bool)
    terminals[[3, 8]] = True
    timeouts[6] = True
    return {
        "observations": np.arange(n, dtype=np.float32)[:, None] * np.ones(2, np.float32),
        "actions": np.zeros((n, 1), np.float32),
        "rewards": np.asarray(rewards, np.float32),
        "terminals": terminals,
        "timeouts": timeouts,
    }


def test_v0_file_keeps_terminal_rows_and_reports_the_returns_as_written(tmp_path):
    from mopo_kit.dynamics.gaussian_ensemble import GaussianEnsemble

    data = read_d4rl_hdf5(write_h5(tmp_path / "three.hdf5", _three_episodes()))
    summary = data.summary()
    assert summary.episodes == 3
    assert summary.return_mean == pytest.approx((10 + 30 - 5) / 3)  # 11.667, not 11.0
    assert summary.return_max == 30 and summary.return_min == -5
    # both terminals are kept (SAC sees the real episode end); the time-limit row 6 is dropped
    assert len(data) == 8 and summary.terminals == 2 and 6.0 not in data.observations[:, 0]
    np.testing.assert_array_equal(data.observations[data.terminals, 0], [3, 8])
    np.testing.assert_array_equal(data.known_next, [1, 1, 1, 0, 1, 1, 1, 0])
    # a terminal row's placeholder s' is its own observation, never the next episode's start
    np.testing.assert_array_equal(data.next_observations[data.terminals], data.observations[data.terminals])
    # the dynamics model trains only on rows whose next observation is known
    known = data.with_known_next()
    assert len(known) == 6 and not known.terminals.any()
    fitted_on: list[int] = []
    original = GaussianEnsemble._split

    def spy(self, d, gen):
        fitted_on.append(len(d))
        return original(self, d, gen)

    model = GaussianEnsemble(2, 1, members=2, elites=1, hidden=4, layers=1, weight_decays=(0.0, 0.0), max_epochs=1)
    GaussianEnsemble._split = spy
    try:
        model.fit(data)
    finally:
        GaussianEnsemble._split = original
    assert fitted_on == [6]


def test_rewritten_v0_dataset_keeps_unknown_next_observations_and_returns(tmp_path):
    data = read_d4rl_hdf5(write_h5(tmp_path / "three.hdf5", _three_episodes()))
    write_d4rl_hdf5(data, tmp_path / "copy.hdf5")
    back = read_d4rl_hdf5(tmp_path / "copy.hdf5")
    np.testing.assert_array_equal(back.known_next, data.known_next)
    assert back.summary().return_mean == pytest.approx(35 / 3)
    assert len(back.with_known_next()) == 6
    assert back.select(np.arange(4)).summary().episodes == 1  # a subset's returns are its rows' own


def test_missing_timeouts_fall_back_to_1000_step_episodes(tmp_path):
    n = 2500
    obs = np.arange(n, dtype=np.float32)[:, None]
    arrays = {
        "observations": obs,
        "actions": np.zeros((n, 1), np.float32),
        "rewards": np.ones(n, np.float32),
        "terminals": np.zeros(n, bool),
    }
    data = read_d4rl_hdf5(write_h5(tmp_path / "v0.hdf5", arrays))
    assert data.metadata["inferred_timeouts_every"] == 1000
    # rows 999 and 1999 end time-limited episodes, 2499 is the last row: all dropped
    assert len(data) == n - 3
    assert not np.isin([999.0, 1999.0], data.observations[:, 0]).any()
    np.testing.assert_array_equal(data.episode_returns(), [1000, 1000, 500])  # the episodes as written


def test_checksum_mismatch_is_detected(tmp_path):
    data = TransitionDataset.from_arrays(**_with_next(two_episode_arrays()))
    path = tmp_path / "d.hdf5"
    write_d4rl_hdf5(data, path)
    with h5py.File(path, "r+") as handle:
        handle["rewards"][0] = 42.0
    with pytest.raises(DatasetError, match="checksum mismatch"):
        read_d4rl_hdf5(path)


def test_concatenate_and_select():
    a = TransitionDataset.from_arrays(**_with_next(two_episode_arrays()))
    both = TransitionDataset.concatenate([a, a])
    assert len(both) == 14
    assert both.summary().episodes == 4
    assert len(both.select(np.arange(3))) == 3
