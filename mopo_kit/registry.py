"""Components by kind and name, with the plugin (and version) that registered each.

The registry is filled by :mod:`mopo_kit.plugins` from the ``register_*`` hooks; everything that
looks a component up by name (the CLI, configs, sweeps) goes through :meth:`Registry.get`, so an
unknown name always fails the same way: one line that names the kind, the name and close matches.
"""

from __future__ import annotations

import difflib
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from mopo_kit.errors import MopoKitError, PluginError, UnknownComponentError

#: kind -> registrar hook name. The kind is what users type: ``mopo-kit list uncertainty``.
KIND_HOOKS: dict[str, str] = {
    "dynamics": "register_dynamics_models",
    "uncertainty": "register_uncertainty_estimators",
    "policy": "register_policy_optimizers",
    "task": "register_tasks",
    "dataset": "register_datasets",
    "logger": "register_loggers",
}

#: Human names used in messages ("uncertainty estimator 'x' ...").
KIND_LABELS: dict[str, str] = {
    "dynamics": "dynamics model",
    "uncertainty": "uncertainty estimator",
    "policy": "policy optimizer",
    "task": "task",
    "dataset": "dataset",
    "logger": "logger",
}

#: Kinds whose constructors only store settings, so building one to check its params is cheap.
CHEAP_TO_BUILD = ("uncertainty", "policy")

_KIND_ALIASES: dict[str, str] = {
    "dynamics-models": "dynamics",
    "models": "dynamics",
    "uncertainties": "uncertainty",
    "uncertainty-estimators": "uncertainty",
    "estimators": "uncertainty",
    "policies": "policy",
    "policy-optimizers": "policy",
    "optimizers": "policy",
    "tasks": "task",
    "datasets": "dataset",
    "loggers": "logger",
}


def normalize_kind(kind: str) -> str:
    """Map what a user typed (``datasets``, ``estimators``, ...) to a canonical kind."""
    key = kind.strip().lower().replace("_", "-")
    if key in KIND_HOOKS:
        return key
    if key in _KIND_ALIASES:
        return _KIND_ALIASES[key]
    choices = ", ".join(KIND_HOOKS)
    raise UnknownComponentError(f"unknown component kind '{kind}' (choose from: {choices})")


def first_doc_line(obj: Any) -> str:
    """The first line of an object's docstring, or '' when it has none."""
    doc = inspect.getdoc(obj) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


@dataclass(frozen=True)
class Component:
    """One registered component: what it is, how to build it, and who provided it."""

    kind: str
    name: str
    factory: Callable[..., Any]
    plugin: str
    version: str
    description: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)

    def create(self, **params: Any) -> Any:
        """Build the component with ``params`` (the ``params`` of a ``{"type", "params"}`` config)."""
        return self.factory(**params)

    def check_params(self, params: Mapping[str, Any]) -> None:
        """Check ``params`` before any data or model work; a bad one is one line naming it.

        A factory may define ``check_params(params)`` (the built-in ensemble does). Otherwise
        estimators and policy optimizers are built once and dropped: their constructors only
        store settings — the work happens in ``fit()`` / ``setup()`` — so that is cheap.
        """
        checker = getattr(self.factory, "check_params", None)
        if callable(checker):
            checker(dict(params))
            return
        if self.kind in CHEAP_TO_BUILD:
            try:
                self.factory(**params)
            except TypeError as exc:  # unknown or missing keyword: the params, not the code
                raise MopoKitError(f"{KIND_LABELS[self.kind]} '{self.name}': invalid params ({exc})") from None


class Registry:
    """All components, keyed by kind then name."""

    def __init__(self) -> None:
        self._components: dict[str, dict[str, Component]] = {kind: {} for kind in KIND_HOOKS}

    def add(self, component: Component) -> None:
        """Add a component; a name already taken is an error naming both plugins."""
        table = self._components[component.kind]
        existing = table.get(component.name)
        if existing is not None:
            label = KIND_LABELS[component.kind]
            if existing.plugin == component.plugin:
                raise PluginError(
                    f"plugin '{component.plugin}' registers {label} '{component.name}' twice"
                )
            raise PluginError(
                f"{label} '{component.name}' is registered by both plugin '{existing.plugin}' and "
                f"plugin '{component.plugin}'; disable one with MOPO_KIT_DISABLE_PLUGINS"
            )
        table[component.name] = component

    def get(self, kind: str, name: str) -> Component:
        """Look a component up; an unknown name raises one line with close matches."""
        kind = normalize_kind(kind)
        table = self._components[kind]
        if name in table:
            return table[name]
        label = KIND_LABELS[kind]
        close = difflib.get_close_matches(name, list(table), n=3)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise UnknownComponentError(
            f"unknown {label} '{name}'{hint} (see `mopo-kit list {kind}`)"
        )

    def create(self, kind: str, name: str, **params: Any) -> Any:
        """Build the component ``name`` of ``kind`` with ``params``."""
        return self.get(kind, name).create(**params)

    def create_on(self, kind: str, name: str, params: Mapping[str, Any], device: Any) -> Any:
        """:meth:`create`, adding ``device`` when the factory takes one (a run's components compute
        where the run does; an explicit ``device`` param wins)."""
        from mopo_kit.device import with_device  # device imports torch; the registry alone does not

        component = self.get(kind, name)
        return component.create(**with_device(component.factory, params, device))

    def __contains__(self, key: tuple[str, str]) -> bool:
        kind, name = key
        return name in self._components[normalize_kind(kind)]

    def names(self, kind: str) -> list[str]:
        """Sorted component names of one kind."""
        return sorted(self._components[normalize_kind(kind)])

    def components(self, kind: str) -> list[Component]:
        """Components of one kind, sorted by name."""
        table = self._components[normalize_kind(kind)]
        return [table[name] for name in sorted(table)]

    def by_plugin(self, plugin: str) -> dict[str, list[str]]:
        """What one plugin registers: kind -> sorted names (kinds with nothing are left out)."""
        out: dict[str, list[str]] = {}
        for kind, table in self._components.items():
            names = sorted(name for name, comp in table.items() if comp.plugin == plugin)
            if names:
                out[kind] = names
        return out
