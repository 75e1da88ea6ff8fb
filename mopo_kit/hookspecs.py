"""The plugin contract: one registrar hook per component family.

Each hook receives a ``register`` callback. A plugin calls it once per component::

    from mopo_kit import hookimpl

    @hookimpl
    def register_uncertainty_estimators(register):
        register("my_penalty", MyPenalty, description="max predicted std, elites only")

``register(name, factory, *, description=None)``: ``factory`` is called with the component's
params (a class or a function); ``description`` defaults to the first line of its docstring.
Built-in components register through exactly these hooks, so a plugin is never second-class.
"""

from __future__ import annotations

from typing import Callable

import pluggy

PROJECT_NAME = "mopo_kit"
hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

Register = Callable[..., None]


@hookspec
def register_dynamics_models(register: Register) -> None:
    """Register dynamics models (fit on a dataset, predict per-member Gaussians)."""


@hookspec
def register_uncertainty_estimators(register: Register) -> None:
    """Register uncertainty estimators u(s, a) >= 0, the penalty of the model MDP."""


@hookspec
def register_policy_optimizers(register: Register) -> None:
    """Register policy optimizers (e.g. SB3 SAC) that learn in the penalized model MDP."""


@hookspec
def register_tasks(register: Register) -> None:
    """Register tasks: env factory, termination function, reference scores."""


@hookspec
def register_datasets(register: Register) -> None:
    """Register named datasets (a factory returning a TransitionDataset)."""


@hookspec
def register_loggers(register: Register) -> None:
    """Register metric loggers (console, files, TensorBoard, W&B, ...)."""
