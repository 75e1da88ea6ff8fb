"""Shared helpers: tiny D4RL-layout files and fake installed plugin distributions."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from mopo_kit.plugins import get_plugins

os.environ.setdefault("MUJOCO_GL", "egl")


def two_episode_arrays(obs_dim: int = 3, act_dim: int = 2) -> dict[str, np.ndarray]:
    """Two consecutive episodes in D4RL row order: 4 steps ending terminal, 3 steps ending by timeout.

    Observation rows are the integers 0..6 (times ones) so pairings are easy to check; the first
    obs of episode 2 (row 4) is 100 so it is obvious when it gets paired with episode 1.
    """
    obs = np.arange(7, dtype=np.float32)[:, None] * np.ones(obs_dim, np.float32)
    obs[4:] += 100.0
    return {
        "observations": obs,
        "actions": np.zeros((7, act_dim), np.float32),
        "rewards": np.arange(1, 8, dtype=np.float32),
        "terminals": np.array([0, 0, 0, 1, 0, 0, 0], bool),
        "timeouts": np.array([0, 0, 0, 0, 0, 0, 1], bool),
    }


def with_next_observations(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The same episodes as a v2 file: s' is the next row inside an episode, a fresh state at its end."""
    obs = arrays["observations"]
    next_obs = np.roll(obs, -1, axis=0)
    ends = arrays["terminals"] | arrays["timeouts"]
    next_obs[ends] = obs[ends] + 0.5
    return {**arrays, "next_observations": next_obs}


def write_h5(path: Path, arrays: dict[str, object]) -> Path:
    with h5py.File(path, "w") as handle:
        for key, value in arrays.items():
            handle.create_dataset(key, data=value)
    return path


@pytest.fixture
def run_cli(tmp_path):
    """Run ``python -m mopo_kit ARGS`` in a subprocess; returns CompletedProcess (text)."""

    def run(*args: str, env: dict[str, str] | None = None, check_rc: int | None = None):
        full_env = {**os.environ, "MOPO_KIT_QUIET": "1", **(env or {})}
        proc = subprocess.run(
            [sys.executable, "-m", "mopo_kit", *args],
            capture_output=True,
            text=True,
            env=full_env,
            cwd=tmp_path,
            timeout=300,
        )
        if check_rc is not None:
            assert proc.returncode == check_rc, proc.stderr + proc.stdout
        return proc

    return run


def make_plugin_dist(site: Path, dist: str, module: str, code: str, version: str = "1.2.3", ep_name: str | None = None) -> None:
    """Lay out an installed distribution (package + dist-info with an entry point) under ``site``."""
    (site / module).mkdir(parents=True)
    (site / module / "__init__.py").write_text(code)
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[mopo_kit]\n{ep_name or module} = {module}\n")


@pytest.fixture
def fresh_plugins():
    """Reload the process-wide plugin set after a test that changed sys.path or env vars.

    List it *before* ``monkeypatch`` in a test's arguments so it is torn down after the undo.
    """
    yield
    get_plugins(refresh=True)
