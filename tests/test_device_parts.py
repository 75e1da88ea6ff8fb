"""Data larger than one device call, carried in parts: split here, stashed call by call, joined there.

The device machine is not needed: the scripts run in a throwaway git repository, and "the next
call" is simulated the way that machine behaves (the previous call's carried folder is gone).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(shutil.which("git") is None or shutil.which("tar") is None, reason="needs git and tar")


def _repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    (repo / "benchmarks").mkdir(parents=True)
    for script in ("device_parts.sh", "device_session.sh"):
        shutil.copy(ROOT / "benchmarks" / script, repo / "benchmarks" / script)
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run(["git", "-C", str(repo), "add", "benchmarks"], check=True)
    return repo


def _bash(repo: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", *args], cwd=repo, capture_output=True, text=True, env={**os.environ, **env})


def test_files_split_into_parts_come_back_whole_after_one_call_per_part(tmp_path):
    repo = _repo(tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    rng = __import__("random").Random(0)
    files = {"a.hdf5": 2_200_000, "b.bin": 1_300_000}
    for name, size in files.items():
        (data / name).write_bytes(rng.randbytes(size))

    split = _bash(repo, "benchmarks/device_parts.sh", *(str(data / n) for n in files), PARTS_FIRST_MB="1", PARTS_MB="2")
    assert split.returncode == 0, split.stderr
    parts = sorted(repo.glob(".carry_part*/part-*"))
    assert [p.parent.name for p in parts] == [".carry_part1", ".carry_part2", ".carry_part3"]
    assert [p.stat().st_size for p in parts[:2]] == [1_000_000, 2_000_000]
    assert "call 1: carry [\".carry_part1\", \".whl\"]" in split.stdout and "stash join .data_carry" in split.stdout.splitlines()[-1]
    assert "/.carry_part*/" in (repo / ".git" / "info" / "exclude").read_text(), "parts must not travel as untracked files"

    stash = str(tmp_path / "device-tmp")
    held = {p.parent.name: (p.name, p.read_bytes()) for p in parts}

    def only(folder: str) -> None:
        """This call's tree: its own part folder alone (the last call's is gone on that machine)."""
        for old in repo.glob(".carry_part*"):
            shutil.rmtree(old)
        (repo / folder).mkdir()
        name, content = held[folder]
        (repo / folder / name).write_bytes(content)

    for folder in (".carry_part1", ".carry_part2"):
        only(folder)
        call = _bash(repo, "benchmarks/device_session.sh", "stash", CARRY_PARTS_DIR=stash)
        assert call.returncode == 0 and call.stdout.startswith("stash:"), call.stdout + call.stderr
    only(".carry_part3")
    last = _bash(repo, "benchmarks/device_session.sh", "stash", "join", ".data_carry", CARRY_PARTS_DIR=stash)
    assert last.returncode == 0, last.stdout + last.stderr
    for name in files:
        assert (repo / ".data_carry" / name).read_bytes() == (data / name).read_bytes()
    assert not Path(stash).exists(), "the parts are removed once joined"


def test_a_missing_part_is_one_error_line_not_a_half_dataset(tmp_path):
    repo = _repo(tmp_path)
    (tmp_path / "big.bin").write_bytes(os.urandom(2_500_000))
    assert _bash(repo, "benchmarks/device_parts.sh", str(tmp_path / "big.bin"), PARTS_FIRST_MB="1", PARTS_MB="1").returncode == 0
    shutil.rmtree(repo / ".carry_part3")  # its call never happened
    stash = str(tmp_path / "device-tmp")
    out = _bash(repo, "benchmarks/device_session.sh", "stash", "join", ".data_carry", CARRY_PARTS_DIR=stash)
    assert out.returncode == 3
    assert "do not make a whole archive (is a part missing?)" in out.stdout and "part-001 part-002" in out.stdout


def test_splitting_a_missing_file_names_it(tmp_path):
    repo = _repo(tmp_path)
    out = _bash(repo, "benchmarks/device_parts.sh", str(tmp_path / "nope.hdf5"))
    assert out.returncode == 2 and out.stderr.strip() == f"device_parts: no such file: {tmp_path / 'nope.hdf5'}"


def test_join_without_a_folder_is_one_line_and_exit_2(tmp_path):
    out = _bash(_repo(tmp_path), "benchmarks/device_session.sh", "join", CARRY_PARTS_DIR=str(tmp_path / "parts"))
    assert out.returncode == 2 and out.stderr.strip() == "join: name the folder to unpack into (join DIR)"
