"""Read a Minari dataset from a local root (``minari:<dataset id>``), never downloading.

Minari stores T+1 observations per episode (the reset observation plus one per step), so an
episode of T steps becomes T transitions with ``next_observations = observations[1:]`` and no
pairing across episodes. ``terminations`` / ``truncations`` map to ``terminals`` / ``timeouts``.
The root is ``MINARI_DATASETS_PATH`` (Minari's own variable) or ``~/.minari/datasets``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from mopo_kit.data.dataset import TransitionDataset
from mopo_kit.errors import DatasetError

PREFIX = "minari:"


def minari_root() -> Path:
    """Where Minari keeps local datasets."""
    return Path(os.environ.get("MINARI_DATASETS_PATH", Path.home() / ".minari" / "datasets"))


def read_minari(spec: str) -> TransitionDataset:
    """Load ``minari:<dataset id>`` from the local root as a :class:`TransitionDataset`."""
    dataset_id = spec[len(PREFIX):] if spec.startswith(PREFIX) else spec
    source = f"{PREFIX}{dataset_id}"
    if not dataset_id:
        raise DatasetError(f"{source}: empty Minari dataset id (use minari:<namespace/name-vN>)")
    try:
        import minari
    except ImportError:
        raise DatasetError(f"{source}: the 'minari' package is not installed (pip install minari)") from None
    local = minari_root() / dataset_id
    if not local.exists():
        raise DatasetError(
            f"{source}: no local dataset under {minari_root()} (downloads are disabled here; "
            "copy the dataset there or set MINARI_DATASETS_PATH)"
        )
    try:
        data = minari.load_dataset(dataset_id, download=False)
    except Exception as exc:  # Minari raises several types for a broken local copy
        raise DatasetError(f"{source}: could not load from {local}: {type(exc).__name__}: {exc}") from None

    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("obs", "next", "act", "rew", "term", "trunc")}
    for episode in data.iterate_episodes():
        obs = episode.observations
        if isinstance(obs, dict):
            raise DatasetError(f"{source}: dict observations are not supported (keys: {sorted(obs)})")
        obs = np.asarray(obs)
        steps = len(episode.actions)
        if obs.shape[0] != steps + 1:
            raise DatasetError(
                f"{source}: episode {episode.id} has {obs.shape[0]} observations for {steps} steps, expected {steps + 1}"
            )
        parts["obs"].append(obs[:-1])
        parts["next"].append(obs[1:])
        parts["act"].append(np.asarray(episode.actions).reshape(steps, -1))
        parts["rew"].append(np.asarray(episode.rewards).reshape(steps))
        parts["term"].append(np.asarray(episode.terminations).reshape(steps))
        parts["trunc"].append(np.asarray(episode.truncations).reshape(steps))
    if not parts["obs"]:
        raise DatasetError(f"{source}: dataset has 0 episodes")
    return TransitionDataset.from_arrays(
        observations=np.concatenate(parts["obs"]),
        next_observations=np.concatenate(parts["next"]),
        actions=np.concatenate(parts["act"]),
        rewards=np.concatenate(parts["rew"]),
        terminals=np.concatenate(parts["term"]),
        timeouts=np.concatenate(parts["trunc"]),
        source=source,
        metadata={"minari_id": dataset_id, "env_spec": str(getattr(data, "env_spec", None) or "")},
    )
