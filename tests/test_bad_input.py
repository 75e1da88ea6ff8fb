"""Every class of bad input: one line on stderr naming the file/key/name, exit 2, no traceback."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import two_episode_arrays, with_next_observations, write_h5


def _assert_one_line_error(proc, *needles: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("mopo-kit: error: "), lines[0]
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def _case(name, tmp_path):
    arrays = two_episode_arrays()
    if name == "missing_key":
        del arrays["rewards"]
        return write_h5(tmp_path / "f.hdf5", arrays), ("f.hdf5", "missing key 'rewards'")
    if name == "wrong_dtype":
        arrays["actions"] = np.array([b"abc"] * 7)
        return write_h5(tmp_path / "f.hdf5", arrays), ("f.hdf5", "'actions'", "dtype")
    if name == "wrong_shape":
        arrays["rewards"] = np.ones(5, np.float32)
        return write_h5(tmp_path / "f.hdf5", arrays), ("f.hdf5", "'rewards'", "5 rows", "expected 7")
    if name == "wrong_obs_rank":
        arrays["next_observations"] = np.ones((7, 2, 2), np.float32)
        arrays["observations"] = np.ones((7, 2, 2), np.float32)
        return write_h5(tmp_path / "f.hdf5", arrays), ("f.hdf5", "'observations'", "shape")
    if name == "nan":
        arrays["observations"][2, 1] = np.nan
        return write_h5(tmp_path / "f.hdf5", arrays), ("f.hdf5", "'observations'", "non-finite", "row 2")
    if name == "inf":
        arrays["rewards"][5] = np.inf
        return write_h5(tmp_path / "f.hdf5", arrays), ("f.hdf5", "'rewards'", "non-finite", "row 5")
    if name == "bad_flags":
        arrays["terminals"] = np.array([0, 0, 2, 1, 0, 0, 0])
        return write_h5(tmp_path / "f.hdf5", arrays), ("f.hdf5", "'terminals'", "0/1")
    if name == "zero_rows":
        empty = {k: v[:0] for k, v in arrays.items()}
        return write_h5(tmp_path / "f.hdf5", empty), ("f.hdf5", "0 transitions")
    if name == "truncated":
        path = write_h5(tmp_path / "f.hdf5", {k: np.repeat(v, 2000, axis=0) for k, v in arrays.items()})
        raw = path.read_bytes()
        path.write_bytes(raw[: len(raw) // 2])
        return path, ("f.hdf5", "truncated")
    if name == "not_hdf5":
        path = tmp_path / "f.hdf5"
        path.write_text("observations,actions\n1,2\n")
        return path, ("f.hdf5", "not an HDF5 file")
    if name == "missing_file":
        return tmp_path / "nope.hdf5", ("nope.hdf5", "file not found")
    raise AssertionError(name)


CASES = [
    "missing_key",
    "wrong_dtype",
    "wrong_shape",
    "wrong_obs_rank",
    "nan",
    "inf",
    "bad_flags",
    "zero_rows",
    "truncated",
    "not_hdf5",
    "missing_file",
]


@pytest.mark.parametrize("case", CASES)
def test_dataset_info_rejects_bad_files(case, tmp_path, run_cli):
    path, needles = _case(case, tmp_path)
    before = {p: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    proc = run_cli("dataset", "info", str(path), "--json")
    _assert_one_line_error(proc, *needles)
    assert proc.stdout == ""
    after = {p: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    assert after == before, "a failed read must not modify files"


def test_unknown_dataset_name(run_cli):
    proc = run_cli("dataset", "info", "halfcheetah-randm")
    _assert_one_line_error(proc, "unknown dataset 'halfcheetah-randm'", "halfcheetah-random")


def test_unknown_minari_dataset(tmp_path, run_cli):
    proc = run_cli("dataset", "info", "minari:mujoco/nothing/here-v0", env={"MINARI_DATASETS_PATH": str(tmp_path)})
    _assert_one_line_error(proc, "minari:mujoco/nothing/here-v0", "no local dataset")


def test_unknown_component_kind_and_name(run_cli):
    _assert_one_line_error(run_cli("list", "penalties"), "unknown component kind 'penalties'")
    _assert_one_line_error(run_cli("collect", "cheetah", "--kind", "random"), "unknown task 'cheetah'")


def test_demo_unknown_task_is_one_line_and_writes_nothing(run_cli, tmp_path):
    _assert_one_line_error(run_cli("demo", "--task", "cheetah", "-o", str(tmp_path / "demo")), "unknown task 'cheetah'")
    assert not (tmp_path / "demo").exists()


def test_usage_error_is_one_line(run_cli):
    proc = run_cli("dataset", "info")
    assert proc.returncode == 2
    assert len([line for line in proc.stderr.splitlines() if line.strip()]) == 1


def test_dataset_info_json_on_good_files(tmp_path, run_cli):
    arrays = two_episode_arrays()
    path = write_h5(tmp_path / "v0.hdf5", arrays)
    info = json.loads(run_cli("dataset", "info", str(path), "--json", check_rc=0).stdout)
    assert {k: info[k] for k in ("transitions", "episodes", "obs_dim", "act_dim")} == {
        "transitions": 6,  # the terminal row is kept, the time-limit row dropped
        "episodes": 2,
        "obs_dim": 3,
        "act_dim": 2,
    }
    assert info["return_mean"] == pytest.approx((10 + 18) / 2)  # the episodes as written
    assert info["return_max"] == pytest.approx(18)
    v2 = with_next_observations(arrays)
    info2 = json.loads(run_cli("dataset", "info", str(write_h5(tmp_path / "v2.hdf5", v2)), "--json", check_rc=0).stdout)
    assert info2["transitions"] == 7 and info2["return_max"] == pytest.approx(18)
