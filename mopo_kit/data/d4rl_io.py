"""Read and write D4RL-layout HDF5 files, without importing ``d4rl``.

Layout (D4RL ``README.md``, ``offline_env.py::get_dataset``): ``observations`` (N, obs),
``actions`` (N, act), ``rewards`` (N,), ``terminals`` (N,), ``timeouts`` (N,), optionally
``next_observations`` (N, obs) (v2 files) and ``infos/*``, ``metadata/*``.

Files without ``next_observations`` pair row i with row i+1 inside an episode. Unlike
``d4rl.qlearning_dataset`` (pitfall P10 of the reference sheet), an episode's last row is never
paired with the *next* episode's first observation: a terminal row is kept — it is the only place
the data says "this ends the episode" — with its next observation marked unknown
(``TransitionDataset.next_known``), and a time-limit row is dropped, because bootstrapping from it
needs the s' the file does not have. ``summary()`` still reports the returns of the episodes as
written (``written_returns``). Files with neither ``timeouts`` nor
``next_observations`` (some v0 files) get D4RL's own fallback: a time-limit end every 1,000
steps since the last terminal.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Mapping

import h5py
import numpy as np

from mopo_kit.data.dataset import ALL_KEYS, TransitionDataset, as_flags
from mopo_kit.errors import DatasetError

REQUIRED_KEYS = ("observations", "actions", "rewards", "terminals")
DEFAULT_MAX_EPISODE_STEPS = 1000
CHECKSUM_ATTR = "sha256"
#: Optional arrays beside the D4RL keys (other readers ignore them): TransitionDataset field -> key.
EXTRA_KEYS = {"next_known": "mopo_kit_next_known", "written_returns": "mopo_kit_written_returns"}


def arrays_checksum(arrays: Mapping[str, np.ndarray]) -> str:
    """SHA-256 over the six arrays (name, dtype, shape and bytes), independent of HDF5 layout."""
    digest = hashlib.sha256()
    for key in ALL_KEYS:
        value = np.ascontiguousarray(arrays[key])
        digest.update(f"{key}|{value.dtype.str}|{value.shape}|".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


def _open(path: Path) -> h5py.File:
    if not path.exists():
        raise DatasetError(f"{path}: file not found")
    if path.is_dir():
        raise DatasetError(f"{path}: is a directory, expected a D4RL-layout .hdf5 file")
    if not h5py.is_hdf5(path):
        raise DatasetError(f"{path}: not an HDF5 file (no HDF5 signature)")
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise DatasetError(f"{path}: truncated or corrupt HDF5 file ({_short(exc)})") from None


def _short(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:160]


def _read_key(handle: h5py.File, key: str, path: Path) -> np.ndarray:
    node = handle.get(key)
    if node is None:
        found = ", ".join(sorted(k for k in handle.keys())) or "nothing"
        raise DatasetError(f"{path}: missing key '{key}' (found: {found})")
    if not isinstance(node, h5py.Dataset):
        raise DatasetError(f"{path}: key '{key}' is a group, expected an array")
    try:
        return node[()]
    except (OSError, ValueError, TypeError) as exc:
        raise DatasetError(f"{path}: key '{key}' could not be read, file truncated or corrupt ({_short(exc)})") from None


def _infer_timeouts(terminals: np.ndarray, max_steps: int) -> np.ndarray:
    """D4RL's v0 fallback: an episode also ends after ``max_steps`` steps since the last end."""
    timeouts = np.zeros(terminals.shape, dtype=bool)
    step = 0
    for i, terminal in enumerate(terminals):
        step += 1
        if terminal:
            step = 0
        elif step == max_steps:
            timeouts[i] = True
            step = 0
    return timeouts


def read_metadata(path: Path) -> dict[str, Any]:
    """The JSON metadata mopo_kit writes into the file's attributes ({} for foreign files)."""
    with _open(Path(path)) as handle:
        raw = handle.attrs.get("mopo_kit_metadata")
        return json.loads(raw) if raw is not None else {}


def _with_extras(dataset: TransitionDataset, extras: dict[str, np.ndarray], path: Path) -> TransitionDataset:
    """Attach the optional arrays mopo_kit wrote beside the D4RL keys (see :func:`write_d4rl_hdf5`)."""
    known = extras.get(EXTRA_KEYS["next_known"])
    if known is not None:
        known = as_flags(known, EXTRA_KEYS["next_known"], str(path))
    return TransitionDataset(
        **dataset.arrays(),
        source=dataset.source,
        metadata=dataset.metadata,
        next_known=known,
        written_returns=extras.get(EXTRA_KEYS["written_returns"]),
    )


def read_d4rl_hdf5(path: str | os.PathLike[str], *, verify_checksum: bool = True) -> TransitionDataset:
    """Load a D4RL-layout file as a validated :class:`TransitionDataset`."""
    path = Path(path)
    with _open(path) as handle:
        raw = {key: _read_key(handle, key, path) for key in REQUIRED_KEYS}
        has_next = "next_observations" in handle
        has_timeouts = "timeouts" in handle
        if has_next:
            raw["next_observations"] = _read_key(handle, "next_observations", path)
        if has_timeouts:
            raw["timeouts"] = _read_key(handle, "timeouts", path)
        extras = {key: _read_key(handle, key, path) for key in EXTRA_KEYS.values() if key in handle}
        attrs_meta = handle.attrs.get("mopo_kit_metadata")
        stored_checksum = handle.attrs.get(CHECKSUM_ATTR)
    metadata: dict[str, Any] = json.loads(attrs_meta) if attrs_meta is not None else {}
    source = str(path)

    n = np.asarray(raw["observations"]).shape[0] if np.asarray(raw["observations"]).ndim else 0
    for key in ("actions", "rewards", "terminals", "timeouts", "next_observations"):
        if key in raw and np.asarray(raw[key]).shape[:1] != (n,):
            raise DatasetError(
                f"{source}: key '{key}' has {np.asarray(raw[key]).shape[0] if np.asarray(raw[key]).ndim else 0} rows, "
                f"expected {n} to match 'observations'"
            )
    if n == 0:
        raise DatasetError(f"{source}: dataset has 0 transitions")

    if has_next:
        dataset = TransitionDataset.from_arrays(**raw, source=source, metadata=metadata)
        if extras:
            dataset = _with_extras(dataset, extras, path)
        if verify_checksum and stored_checksum is not None:
            actual = arrays_checksum(dataset.arrays())
            if actual != stored_checksum:
                raise DatasetError(f"{source}: checksum mismatch, the file was modified or corrupted")
        return dataset

    # No next_observations: pair row i with row i+1 and drop rows whose successor is unknown.
    terminals = np.asarray(raw["terminals"])
    if has_timeouts:
        timeouts = np.asarray(raw["timeouts"])
    else:
        timeouts = _infer_timeouts(np.asarray(terminals, dtype=bool), DEFAULT_MAX_EPISODE_STEPS)
        metadata["inferred_timeouts_every"] = DEFAULT_MAX_EPISODE_STEPS
    full = TransitionDataset.from_arrays(
        observations=raw["observations"],
        actions=raw["actions"],
        rewards=raw["rewards"],
        next_observations=raw["observations"],  # placeholder, validated for shape/finiteness
        terminals=terminals,
        timeouts=timeouts,
        source=source,
    )
    return _pair_rows(full, metadata)


def _written_returns(rewards: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Return of every episode as the file has it (a trailing unfinished episode included)."""
    ends = ends.copy()
    ends[-1] = True
    at_ends = np.cumsum(rewards, dtype=np.float64)[ends]
    return np.diff(np.concatenate([[0.0], at_ends]))


def _pair_rows(full: TransitionDataset, metadata: dict[str, Any]) -> TransitionDataset:
    """Row i's next observation is row i + 1's, inside an episode (see the module docstring).

    Terminal rows are kept with ``next_known`` False (their s' is a placeholder, the observation
    itself: with terminal = 1 the SAC target ignores it, and models train only on known rows);
    time-limit ends and an unfinished last row are dropped — bootstrapping needs their s'.
    """
    source, n = full.source, len(full)
    ends = full.terminals | full.timeouts
    keep = ~ends | full.terminals
    if not full.terminals[-1]:
        keep[-1] = False  # the file stops mid-episode or at a time limit: s' unknown, not terminal
    known = ~ends
    known[-1] = False
    if not (keep & known).any():
        raise DatasetError(f"{source}: no transition has a known next observation (every row ends an episode)")
    idx = np.flatnonzero(keep)
    next_obs = full.observations[np.minimum(idx + 1, n - 1)]
    next_obs[~known[idx]] = full.observations[idx][~known[idx]]
    metadata["dropped_rows_without_next_observation"] = int(n - idx.size)
    metadata["terminal_rows_without_next_observation"] = int((~known[idx]).sum())
    # Kept non-terminal rows are never episode ends; a dropped time-limit end survives as a
    # discontinuity next_observations[i] != observations[i + 1], which TransitionDataset detects.
    return TransitionDataset(
        observations=full.observations[idx],
        actions=full.actions[idx],
        rewards=full.rewards[idx],
        next_observations=next_obs,
        terminals=full.terminals[idx],
        timeouts=np.zeros(idx.size, dtype=bool),
        source=source,
        metadata=metadata,
        next_known=known[idx],
        written_returns=_written_returns(full.rewards, ends),
    )


def write_d4rl_hdf5(
    dataset: TransitionDataset,
    path: str | os.PathLike[str],
    metadata: Mapping[str, Any] | None = None,
) -> str:
    """Write ``dataset`` in the D4RL layout (with ``next_observations``) atomically.

    A dataset read from a file without ``next_observations`` also gets ``mopo_kit_next_known``
    and ``mopo_kit_written_returns``, so its terminal rows stay unknown when read back.

    The metadata (task, kind, policy, seed, versions ...) goes into the file attribute
    ``mopo_kit_metadata`` as JSON and the array checksum into ``sha256``; returns the checksum.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = dataset.arrays()
    checksum = arrays_checksum(arrays)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        with h5py.File(tmp, "w") as handle:
            for key, value in arrays.items():
                handle.create_dataset(key, data=value, compression="gzip", compression_opts=1, shuffle=True)
            for field_name, key in EXTRA_KEYS.items():  # only where rows lost information
                value = getattr(dataset, field_name)
                if value is not None:
                    handle.create_dataset(key, data=value)
            handle.attrs["mopo_kit_metadata"] = json.dumps(dict(metadata or dataset.metadata), sort_keys=True)
            handle.attrs[CHECKSUM_ATTR] = checksum
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return checksum
