"""Load plugins with pluggy and fill the :class:`~mopo_kit.registry.Registry`.

Built-in components live in ordinary modules (listed in :data:`BUILTIN_PLUGINS`) that implement the
same ``register_*`` hooks as outside plugins. Outside plugins are distributions that declare an
entry point in the ``mopo_kit`` group::

    [project.entry-points.mopo_kit]
    my_plugin = "my_package.plugin"

Environment control (as in simonw/llm):

* ``MOPO_KIT_LOAD_PLUGINS=a,b`` loads only these outside plugins (built-ins always load); set it
  to the empty string to load no outside plugin at all.
* ``MOPO_KIT_DISABLE_PLUGINS=a,b`` skips these plugins, built-ins included (so a plugin can replace
  a built-in component of the same name).

A plugin that fails to import, implements a hook that does not exist (a misspelling caught by
pluggy's ``check_pending``), or raises while registering is reported with one
:class:`PluginWarning` naming it and is skipped; everything else still loads. Two plugins
registering the same component name is an error (:class:`~mopo_kit.errors.PluginError`), because
silently picking one would change results without a trace.
"""

from __future__ import annotations

import importlib
import importlib.metadata as metadata
import os
import threading
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import pluggy

from mopo_kit import __version__, hookspecs
from mopo_kit.errors import PluginError
from mopo_kit.hookspecs import PROJECT_NAME
from mopo_kit.registry import KIND_HOOKS, Component, Registry, first_doc_line

ENTRY_POINT_GROUP = "mopo_kit"
LOAD_ENV = "MOPO_KIT_LOAD_PLUGINS"
DISABLE_ENV = "MOPO_KIT_DISABLE_PLUGINS"

#: Modules that provide the built-in components, registered under their module name.
BUILTIN_PLUGINS: tuple[str, ...] = (
    "mopo_kit.envs.tasks",
    "mopo_kit.data.named",
    "mopo_kit.data.ood",
    "mopo_kit.uncertainty.builtin",
    "mopo_kit.dynamics.gaussian_ensemble",
    "mopo_kit.policy.sac",
    "mopo_kit.loggers",
)


class PluginWarning(UserWarning):
    """A plugin was skipped because it is broken; the message names it and says why."""


@dataclass
class PluginInfo:
    """What ``mopo-kit plugins`` shows for one plugin."""

    name: str
    version: str
    builtin: bool
    module: str
    distribution: str | None = None
    registers: dict[str, list[str]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "builtin": self.builtin,
            "module": self.module,
            "distribution": self.distribution,
            "registers": self.registers,
        }


@dataclass
class PluginSet:
    """The loaded plugins and the registry they filled."""

    manager: pluggy.PluginManager
    registry: Registry
    plugins: list[PluginInfo]


def _env_names(var: str) -> set[str] | None:
    """Comma-separated names from an env var; None when the var is unset."""
    raw = os.environ.get(var)
    if raw is None:
        return None
    return {part.strip() for part in raw.split(",") if part.strip()}


def _warn(message: str) -> None:
    warnings.warn(message, PluginWarning, stacklevel=3)


def _new_manager() -> pluggy.PluginManager:
    manager = pluggy.PluginManager(PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    return manager


def _register(manager: pluggy.PluginManager, obj: object, name: str) -> bool:
    """Register one plugin object; a hook with a bad signature skips the plugin with a warning."""
    try:
        manager.register(obj, name=name)
    except pluggy.PluginValidationError as exc:
        _warn(f"plugin '{name}' was skipped: {exc}")
        return False
    except ValueError as exc:  # pluggy: name already registered
        _warn(f"plugin '{name}' was skipped: {exc}")
        return False
    return True


def _drop_unknown_hooks(manager: pluggy.PluginManager) -> None:
    """Unregister every plugin that implements a hook no spec declares (usually a typo)."""
    while True:
        try:
            manager.check_pending()
            return
        except pluggy.PluginValidationError as exc:
            name = manager.get_name(exc.plugin) or repr(exc.plugin)
            manager.unregister(exc.plugin)
            known = ", ".join(KIND_HOOKS.values())
            _warn(f"plugin '{name}' was skipped: {exc} (known hooks: {known})")


def _collect(
    manager: pluggy.PluginManager, infos: dict[str, PluginInfo]
) -> Registry:
    """Call every plugin's registrar hooks, one plugin at a time, so each component has an owner."""
    registry = Registry()
    failed: set[str] = set()
    for kind, hook_name in KIND_HOOKS.items():
        caller = getattr(manager.hook, hook_name)
        for impl in caller.get_hookimpls():
            plugin = impl.plugin_name
            if plugin in failed:
                continue
            info = infos[plugin]
            staged: list[Component] = []

            def register(
                name: str,
                factory: Callable[..., Any],
                *,
                description: str | None = None,
                _kind: str = kind,
                _info: PluginInfo = info,
                _staged: list[Component] = staged,
                **metadata_: Any,
            ) -> None:
                if not isinstance(name, str) or not name:
                    raise TypeError(f"component name must be a non-empty string, got {name!r}")
                if not callable(factory):
                    raise TypeError(f"factory for '{name}' is not callable: {factory!r}")
                _staged.append(
                    Component(
                        kind=_kind,
                        name=name,
                        factory=factory,
                        plugin=_info.name,
                        version=_info.version,
                        description=description or first_doc_line(factory),
                        metadata=dict(metadata_),
                    )
                )

            try:
                impl.function(register=register)
            except Exception as exc:  # a plugin's own bug must not break the others
                failed.add(plugin)
                _warn(
                    f"plugin '{plugin}' was skipped: {hook_name} raised "
                    f"{type(exc).__name__}: {exc}"
                )
                continue
            for component in staged:
                registry.add(component)  # duplicates across plugins raise PluginError
    if failed:
        # A plugin that failed part-way must not leave half its components behind.
        clean = Registry()
        for kind in KIND_HOOKS:
            for component in registry.components(kind):
                if component.plugin not in failed:
                    clean.add(component)
        registry = clean
        for plugin in failed:
            infos.pop(plugin, None)
    return registry


def load_plugins() -> PluginSet:
    """Load built-in and outside plugins (honouring the env vars) and fill a new registry."""
    manager = _new_manager()
    infos: dict[str, PluginInfo] = {}
    allow = _env_names(LOAD_ENV)
    disabled = _env_names(DISABLE_ENV) or set()

    for module_name in BUILTIN_PLUGINS:
        if module_name in disabled:
            continue
        module = importlib.import_module(module_name)
        if _register(manager, module, module_name):
            infos[module_name] = PluginInfo(
                name=module_name,
                version=__version__,
                builtin=True,
                module=module_name,
                distribution="mopo-kit",
            )

    seen: set[str] = set()
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in seen:
            continue  # the same distribution visible twice on sys.path
        seen.add(ep.name)
        if (allow is not None and ep.name not in allow) or ep.name in disabled:
            continue
        dist_name = ep.dist.metadata["Name"] if ep.dist is not None else None
        version = ep.dist.version if ep.dist is not None else "unknown"
        try:
            obj = ep.load()
        except Exception as exc:
            _warn(
                f"plugin '{ep.name}' ({dist_name or ep.value}) failed to import and was skipped: "
                f"{type(exc).__name__}: {exc}"
            )
            continue
        if _register(manager, obj, ep.name):
            infos[ep.name] = PluginInfo(
                name=ep.name,
                version=version,
                builtin=False,
                module=ep.value,
                distribution=dist_name,
            )
    if allow:
        for missing in sorted(allow - seen):
            _warn(f"{LOAD_ENV} names plugin '{missing}', which is not installed")

    _drop_unknown_hooks(manager)
    for name in list(infos):
        if manager.get_plugin(name) is None:
            infos.pop(name)
    registry = _collect(manager, infos)
    for info in infos.values():
        info.registers = registry.by_plugin(info.name)
    return PluginSet(manager=manager, registry=registry, plugins=list(infos.values()))


_lock = threading.Lock()
_current: PluginSet | None = None


def get_plugins(refresh: bool = False) -> PluginSet:
    """The process-wide plugin set, loaded on first use (``refresh=True`` reloads it)."""
    global _current
    with _lock:
        if _current is None or refresh:
            _current = load_plugins()
        return _current


def get_registry(refresh: bool = False) -> Registry:
    """The process-wide registry of components."""
    return get_plugins(refresh).registry


def register_plugin(obj: object, name: str, version: str = "0+local") -> PluginSet:
    """Add a plugin object to the process-wide set at run time (tests, notebooks).

    Returns the new plugin set; components it registers are visible through :func:`get_registry`.
    Duplicate component names raise :class:`~mopo_kit.errors.PluginError`, as for installed plugins.
    """
    global _current
    current = get_plugins()
    with _lock:
        if current.manager.get_plugin(name) is not None:
            raise PluginError(f"a plugin named '{name}' is already registered")
        if not _register(current.manager, obj, name):
            raise PluginError(f"plugin '{name}' could not be registered (see the warning above)")
        infos = {info.name: info for info in current.plugins}
        infos[name] = PluginInfo(name=name, version=version, builtin=False, module=repr(obj))
        try:
            current.manager.check_pending()
            registry = _collect(current.manager, infos)
        except Exception:
            current.manager.unregister(name=name)
            raise
        for info in infos.values():
            info.registers = registry.by_plugin(info.name)
        _current = PluginSet(manager=current.manager, registry=registry, plugins=list(infos.values()))
        return _current


def unregister_plugin(name: str) -> None:
    """Remove a plugin added with :func:`register_plugin` and rebuild the registry."""
    global _current
    current = get_plugins()
    with _lock:
        if current.manager.get_plugin(name) is None:
            return
        current.manager.unregister(name=name)
        infos = {info.name: info for info in current.plugins if info.name != name}
        registry = _collect(current.manager, infos)
        for info in infos.values():
            info.registers = registry.by_plugin(info.name)
        _current = PluginSet(manager=current.manager, registry=registry, plugins=list(infos.values()))
