"""The transition dataset every component reads: validated, float32, episode-aware.

A :class:`TransitionDataset` holds N transitions (s, a, r, s', terminal, timeout). It checks
itself on construction — shapes, dtypes, finiteness, N > 0 — and raises a one-line
:class:`~mopo_kit.errors.DatasetError` naming the source and the array, so a bad file never
reaches model training.

Episode boundaries are ``terminals | timeouts`` plus any row whose ``next_observations`` is not the
next row's observation; this makes returns right for files that omit ``timeouts``.

Two optional fields carry what a file without ``next_observations`` cannot give row by row:
``next_known`` (bool (N,), ``None`` = every row) marks the rows whose next observation is in the
data — a terminal row's is not, so it holds a placeholder that nothing may learn from (the SAC
target ignores s' when terminal = 1; models train on :meth:`with_known_next`) —, and
``written_returns`` holds the returns of the file's episodes as written, including the reward of
a time-limit row that had to be dropped, so the batch mean/max are the file's own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from mopo_kit.errors import DatasetError

FLOAT_KEYS = ("observations", "actions", "rewards", "next_observations")
FLAG_KEYS = ("terminals", "timeouts")
ALL_KEYS = FLOAT_KEYS + FLAG_KEYS


def as_float32(array: Any, key: str, source: str) -> np.ndarray:
    """Convert a numeric array to float32; reject strings, objects and complex numbers."""
    array = np.asarray(array)
    if array.dtype.kind not in "biuf":
        raise DatasetError(
            f"{source}: key '{key}' has dtype {array.dtype}, expected a real-valued numeric array"
        )
    return np.ascontiguousarray(array, dtype=np.float32)


def as_flags(array: Any, key: str, source: str) -> np.ndarray:
    """Convert 0/1 (or bool) flags to bool; reject any other value."""
    array = np.asarray(array)
    if array.dtype.kind not in "biuf":
        raise DatasetError(f"{source}: key '{key}' has dtype {array.dtype}, expected bool or 0/1 flags")
    if array.dtype.kind != "b":
        bad = ~np.isin(array, (0, 1))
        if bad.any():
            row = int(np.flatnonzero(bad.reshape(-1))[0])
            raise DatasetError(
                f"{source}: key '{key}' must hold only 0/1 flags, found {array.reshape(-1)[row]!r} at row {row}"
            )
    return np.ascontiguousarray(array, dtype=bool)


@dataclass(frozen=True)
class DatasetSummary:
    """The numbers ``mopo-kit dataset info`` prints (the left columns of the MOPO tables)."""

    source: str
    transitions: int
    episodes: int
    obs_dim: int
    act_dim: int
    return_mean: float
    return_max: float
    return_min: float
    terminals: int
    timeouts: int
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "transitions": self.transitions,
            "episodes": self.episodes,
            "obs_dim": self.obs_dim,
            "act_dim": self.act_dim,
            "return_mean": self.return_mean,
            "return_max": self.return_max,
            "return_min": self.return_min,
            "terminals": self.terminals,
            "timeouts": self.timeouts,
            "metadata": dict(self.metadata),
        }


@dataclass(frozen=True, eq=False)
class TransitionDataset:
    """N transitions in flat arrays, float32 (flags bool), validated on construction."""

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    next_observations: np.ndarray
    terminals: np.ndarray
    timeouts: np.ndarray
    source: str = "<memory>"
    metadata: Mapping[str, Any] = field(default_factory=dict)
    next_known: np.ndarray | None = None  # bool (N,); None: every next observation is known
    written_returns: np.ndarray | None = None  # the source's episode returns, when rows lost some reward

    @classmethod
    def from_arrays(
        cls,
        *,
        observations: Any,
        actions: Any,
        rewards: Any,
        next_observations: Any,
        terminals: Any,
        timeouts: Any | None = None,
        source: str = "<memory>",
        metadata: Mapping[str, Any] | None = None,
    ) -> "TransitionDataset":
        """Build from any array-likes, converting dtypes (rewards of shape (N, 1) are flattened)."""
        obs = as_float32(observations, "observations", source)
        rewards_arr = as_float32(rewards, "rewards", source)
        if rewards_arr.ndim == 2 and rewards_arr.shape[1] == 1:
            rewards_arr = rewards_arr[:, 0]
        terminal_arr = as_flags(terminals, "terminals", source)
        if timeouts is None:
            timeout_arr = np.zeros(terminal_arr.shape, dtype=bool)
        else:
            timeout_arr = as_flags(timeouts, "timeouts", source)
        return cls(
            observations=obs,
            actions=as_float32(actions, "actions", source),
            rewards=rewards_arr,
            next_observations=as_float32(next_observations, "next_observations", source),
            terminals=terminal_arr,
            timeouts=timeout_arr,
            source=source,
            metadata=dict(metadata or {}),
        )

    def __post_init__(self) -> None:
        self._validate()
        self._validate_optional()

    def _validate_optional(self) -> None:
        src, n = self.source, len(self)
        if self.next_known is not None:
            known = np.asarray(self.next_known)
            if known.dtype != np.bool_ or known.shape != (n,):
                raise DatasetError(f"{src}: 'next_known' must be a bool array of shape ({n},), got {known.dtype} {known.shape}")
            object.__setattr__(self, "next_known", None if known.all() else known)
        if self.written_returns is not None:
            returns = np.asarray(self.written_returns, dtype=np.float64)
            if returns.ndim != 1 or returns.size == 0 or not np.isfinite(returns).all():
                raise DatasetError(f"{src}: 'written_returns' must be a non-empty 1-D array of finite returns")
            object.__setattr__(self, "written_returns", returns)

    def _validate(self) -> None:
        src = self.source
        obs, act = self.observations, self.actions
        for key in ALL_KEYS:
            value = getattr(self, key)
            if not isinstance(value, np.ndarray):
                raise DatasetError(f"{src}: key '{key}' is a {type(value).__name__}, expected a NumPy array")
            expected = np.float32 if key in FLOAT_KEYS else np.bool_
            if value.dtype != expected:
                raise DatasetError(
                    f"{src}: key '{key}' has dtype {value.dtype}, expected {np.dtype(expected)} "
                    "(use TransitionDataset.from_arrays to convert)"
                )
        if obs.ndim != 2:
            raise DatasetError(f"{src}: key 'observations' has shape {obs.shape}, expected (N, obs_dim)")
        n = obs.shape[0]
        if n == 0:
            raise DatasetError(f"{src}: dataset has 0 transitions")
        expected_shapes = {
            "actions": None,
            "rewards": (n,),
            "next_observations": obs.shape,
            "terminals": (n,),
            "timeouts": (n,),
        }
        if act.ndim != 2 or act.shape[0] != n:
            raise DatasetError(
                f"{src}: key 'actions' has shape {act.shape}, expected ({n}, act_dim) to match 'observations' {obs.shape}"
            )
        for key, shape in expected_shapes.items():
            if shape is None:
                continue
            value = getattr(self, key)
            if value.shape != shape:
                raise DatasetError(
                    f"{src}: key '{key}' has shape {value.shape}, expected {shape} to match 'observations' {obs.shape}"
                )
        for key in FLOAT_KEYS:
            value = getattr(self, key)
            finite = np.isfinite(value)
            if not finite.all():
                bad_rows = np.flatnonzero(~finite.reshape(n, -1).all(axis=1))
                raise DatasetError(
                    f"{src}: key '{key}' has non-finite values (NaN or inf) in {bad_rows.size} rows, "
                    f"first at row {int(bad_rows[0])}"
                )

    # ----------------------------------------------------------------------------------- shape
    def __len__(self) -> int:
        return int(self.observations.shape[0])

    @property
    def obs_dim(self) -> int:
        return int(self.observations.shape[1])

    @property
    def act_dim(self) -> int:
        return int(self.actions.shape[1])

    # -------------------------------------------------------------------------------- episodes
    @property
    def episode_ends(self) -> np.ndarray:
        """Bool (N,): True on the last transition of each episode (the final row always)."""
        ends = self.terminals | self.timeouts
        discontinuous = np.any(self.next_observations[:-1] != self.observations[1:], axis=1)
        ends = ends.copy()
        ends[:-1] |= discontinuous
        ends[-1] = True
        return ends

    @property
    def known_next(self) -> np.ndarray:
        """Bool (N,): True where ``next_observations`` is real (False: a terminal row of a v0 file)."""
        return np.ones(len(self), dtype=bool) if self.next_known is None else self.next_known

    def with_known_next(self) -> "TransitionDataset":
        """The rows whose next observation is known: what a dynamics model may train on."""
        return self if self.next_known is None else self.select(self.next_known)

    def episode_returns(self) -> np.ndarray:
        """Undiscounted return of every episode, in order (a trailing partial episode included).

        For a dataset read from a file that had to drop rows, the returns of the file's episodes
        as written (``written_returns``).
        """
        if self.written_returns is not None:
            return self.written_returns
        ends = self.episode_ends
        cumulative = np.cumsum(self.rewards, dtype=np.float64)
        at_ends = cumulative[ends]
        return np.diff(np.concatenate([[0.0], at_ends]))

    def summary(self) -> DatasetSummary:
        """Counts, dims and the batch mean/max of episode returns."""
        returns = self.episode_returns()
        return DatasetSummary(
            source=self.source,
            transitions=len(self),
            episodes=int(returns.size),
            obs_dim=self.obs_dim,
            act_dim=self.act_dim,
            return_mean=float(returns.mean()),
            return_max=float(returns.max()),
            return_min=float(returns.min()),
            terminals=int(self.terminals.sum()),
            timeouts=int(self.timeouts.sum()),
            metadata=dict(self.metadata),
        )

    # ---------------------------------------------------------------------------- combining
    def select(self, rows: np.ndarray | slice) -> "TransitionDataset":
        """A new dataset with the given rows (indices, mask or slice); its returns are its rows' own."""
        return TransitionDataset(
            **{key: getattr(self, key)[rows] for key in ALL_KEYS},
            source=self.source,
            metadata=dict(self.metadata),
            next_known=None if self.next_known is None else self.next_known[rows],
        )

    @staticmethod
    def concatenate(
        parts: Sequence["TransitionDataset"], source: str = "<memory>", metadata: Mapping[str, Any] | None = None
    ) -> "TransitionDataset":
        """Stack datasets row-wise (e.g. medium + expert = medium-expert)."""
        if not parts:
            raise DatasetError(f"{source}: nothing to concatenate")
        known = None if all(p.next_known is None for p in parts) else np.concatenate([p.known_next for p in parts])
        return TransitionDataset(
            **{key: np.concatenate([getattr(p, key) for p in parts]) for key in ALL_KEYS},
            source=source,
            metadata=dict(metadata or {}),
            next_known=known,
        )

    def arrays(self) -> dict[str, np.ndarray]:
        """The six arrays by their D4RL key."""
        return {key: getattr(self, key) for key in ALL_KEYS}
