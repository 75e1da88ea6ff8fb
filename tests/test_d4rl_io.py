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
    # rows 3 (terminal) and 6 (timeout, last row) have no next observation in the file
    assert len(data) == 5
    assert data.metadata["dropped_rows_without_next_observation"] == 2
    np.testing.assert_array_equal(data.observations[:, 0], [0, 1, 2, 104, 105])
    np.testing.assert_array_equal(data.next_observations[:, 0], [1, 2, 3, 105, 106])
    # no transition leads into the second episode's first observation (104)
    assert not np.any(data.next_observations[:, 0] == 104)
    assert data.summary().episodes == 2
    np.testing.assert_array_equal(data.episode_returns(), [1 + 2 + 3, 5 + 6])


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
    np.testing.assert_array_equal(data.episode_returns(), [999, 999, 499])


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
