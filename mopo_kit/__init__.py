"""mopo_kit: model-based offline RL (MOPO) with swappable, plugin-provided components.

The public API is imported lazily, so ``import mopo_kit`` (and the CLI) stay fast::

    from mopo_kit import MOPO, MOPOConfig, load_dataset, PenalizedModelEnv, get_task
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

from mopo_kit.hookspecs import hookimpl  # noqa: E402  (plugins write ``from mopo_kit import hookimpl``)

_LAZY = {
    "MOPO": "mopo_kit.mopo",
    "MOPOResult": "mopo_kit.mopo",
    "MOPOConfig": "mopo_kit.config",
    "ComponentConfig": "mopo_kit.config",
    "load_dataset": "mopo_kit.data.load",
    "TransitionDataset": "mopo_kit.data.dataset",
    "PenalizedModelEnv": "mopo_kit.envs.model_env",
    "PenalizedModelVecEnv": "mopo_kit.envs.model_env",
    "ModelStep": "mopo_kit.envs.model_env",
    "GaussianEnsemble": "mopo_kit.dynamics.gaussian_ensemble",
    "EnsemblePrediction": "mopo_kit.types",
    "get_registry": "mopo_kit.plugins",
    "get_task": "mopo_kit.envs.tasks",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mopo_kit' has no attribute '{name}'")


__all__ = ["__version__", "hookimpl", *_LAZY]
