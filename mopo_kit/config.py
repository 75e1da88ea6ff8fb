"""Run configuration: dataclasses, with ``{"type": name, "params": {...}}`` for each swappable part.

A config round-trips through JSON (``to_dict`` / ``from_dict``) and is written into every run
directory, so a run can be reproduced (or resumed) from its directory alone.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

import tomllib

from mopo_kit.device import check_device_spec
from mopo_kit.errors import MopoKitError
from mopo_kit.precision import DEFAULT_PRECISION, check_precision
from mopo_kit.validation import NON_NEGATIVE, POSITIVE_INT, SEED, Range, check_fields


@dataclass
class ComponentConfig:
    """A component by registered name and the params its factory receives."""

    type: str
    params: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, value: Any, key: str) -> "ComponentConfig":
        if isinstance(value, ComponentConfig):
            return value
        if isinstance(value, str):
            return cls(value)
        if isinstance(value, Mapping) and "type" in value and set(value) <= {"type", "params"}:
            return cls(str(value["type"]), dict(value.get("params") or {}))
        raise MopoKitError(f"config key '{key}': expected a name or {{\"type\": name, \"params\": {{...}}}}, got {value!r}")


#: Original MOPO (D4RL v0) rollout horizon h and penalty λ per task and dataset kind
#: (``examples/config/d4rl/<env>_<quality>.py``; reference sheet §2).
MOPO_HYPERPARAMETERS: dict[tuple[str, str], tuple[int, float]] = {
    ("halfcheetah", "random"): (5, 0.5),
    ("halfcheetah", "medium"): (1, 1.0),
    ("halfcheetah", "mixed"): (5, 1.0),
    ("halfcheetah", "medium-expert"): (5, 5.0),
    ("hopper", "random"): (5, 1.0),
    ("hopper", "medium"): (5, 5.0),
    ("hopper", "mixed"): (5, 1.0),
    ("hopper", "medium-expert"): (5, 1.0),
    ("walker2d", "random"): (1, 1.0),
    ("walker2d", "medium"): (5, 5.0),
    ("walker2d", "mixed"): (1, 1.0),
    ("walker2d", "medium-expert"): (1, 2.0),
}
#: Used when a (task, kind) pair has no published setting: polixir/OfflineRL's defaults.
FALLBACK_HYPERPARAMETERS: tuple[int, float] = (5, 1.0)


def default_horizon_and_lambda(task: str, kind: str | None) -> tuple[int, float]:
    """MOPO's (h, λ) for a task and dataset kind, or the fallback (5, 1.0)."""
    return MOPO_HYPERPARAMETERS.get((task, kind or ""), FALLBACK_HYPERPARAMETERS)


#: Every numeric key of :class:`MOPOConfig` and what it may hold (checked on construction).
CONFIG_RANGES: dict[str, Range] = {
    "lam": NON_NEGATIVE,
    "kappa": NON_NEGATIVE,
    "horizon": POSITIVE_INT,
    "epochs": POSITIVE_INT,
    "steps_per_epoch": POSITIVE_INT,
    "eval_every": POSITIVE_INT,
    "eval_episodes": POSITIVE_INT,
    "checkpoint_every": POSITIVE_INT,
    "bound_rollouts": POSITIVE_INT,
    "bound_horizon": POSITIVE_INT,
    "seed": SEED,
}
#: Keys whose ``None`` means "the per-task default" (resolved once the task is known).
OPTIONAL_KEYS = ("lam", "kappa", "horizon", "bound_horizon")


@dataclass
class MOPOConfig:
    """Everything a MOPO run needs; the defaults reproduce the original code's schedule."""

    dataset: str = "halfcheetah-random"
    task: str | None = None
    dynamics: ComponentConfig = field(default_factory=lambda: ComponentConfig("gaussian_ensemble"))
    uncertainty: ComponentConfig = field(default_factory=lambda: ComponentConfig("max_aleatoric"))
    policy: ComponentConfig = field(default_factory=lambda: ComponentConfig("sb3_sac"))
    lam: float | None = None
    #: Penalty strength on one scale for every estimator (``mopo_kit.penalty_scale``): λ is set at
    #: the start of the run so that λ · mean u = κ · mean |r| over the dataset. Give lam or kappa.
    kappa: float | None = None
    horizon: int | None = None
    epochs: int = 1000
    steps_per_epoch: int = 1000
    eval_every: int = 1
    eval_episodes: int = 10
    checkpoint_every: int = 5
    bound_rollouts: int = 1000
    bound_horizon: int | None = None  # None: the rollout horizon h (MOPO's branched rollouts)
    dynamics_dir: str | None = None
    loggers: list[ComponentConfig] = field(default_factory=list)
    run_name: str | None = None
    group: str | None = None
    job_type: str | None = None  # default: the uncertainty estimator's name (W&B groups by it)
    seed: int = 0
    #: Where every component computes: "auto" (CUDA when available, else CPU), "cpu", "cuda",
    #: "cuda:N". Resolved once in ``MOPO._build`` and handed to the dynamics model, the model
    #: MDP, the replay buffer and SAC; results and checkpoints load on any device.
    device: str = "auto"
    #: Precision of the hidden-layer GEMMs of the model rollouts and the SAC updates: "fp32",
    #: "bf16" or "auto" (the default: bf16 on a CPU with bfloat16 matrix units, for the model only
    #: where the penalty is bf16-tolerant). Resolved and recorded in the run (``mopo_kit.precision``).
    precision: str = DEFAULT_PRECISION

    def __post_init__(self) -> None:
        for key in ("dynamics", "uncertainty", "policy"):  # accept names and plain dicts too
            setattr(self, key, ComponentConfig.parse(getattr(self, key), key))
        self.loggers = [ComponentConfig.parse(value, "loggers") for value in self.loggers]
        check_fields(self, CONFIG_RANGES, where="config key", optional=OPTIONAL_KEYS)
        if self.lam is not None and self.kappa is not None:
            raise MopoKitError(f"config keys 'lam' ({self.lam}) and 'kappa' ({self.kappa}) are both set: give one (kappa sets λ from the model and the data)")
        self.device = check_device_spec(self.device)
        self.precision = check_precision(self.precision)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "MOPOConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise MopoKitError(f"unknown config key(s): {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        return cls(**dict(data))

    @classmethod
    def from_file(cls, path: str | Path) -> "MOPOConfig":
        """Read a JSON or TOML config file."""
        path = Path(path)
        if not path.exists():
            raise MopoKitError(f"{path}: config file not found")
        try:
            text = path.read_text()
            data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
        except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise MopoKitError(f"{path}: not valid {'TOML' if path.suffix == '.toml' else 'JSON'} ({exc})") from None
        if not isinstance(data, dict):
            raise MopoKitError(f"{path}: expected a mapping at the top level")
        return cls.from_dict(data)
