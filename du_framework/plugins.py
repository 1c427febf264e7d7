"""Plugin discovery and the registry of problems, solvers and schedules.

Plugins are found through the entry-point group ``du_framework``. Each entry
point is loaded on its own: one that fails to import is reported by name (a
warning, and :attr:`Registry.failures`) and skipped while the others load. The
environment variable ``DU_PLUGINS`` is an allow-list of entry-point names
(comma-separated; set but empty loads none) to recover from a broken plugin.
The shared schedules of :mod:`du_framework.schedules` always load, through the
same hooks.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import inspect
import os
import warnings
from typing import Any

import pluggy

from . import hookspecs
from .errors import DuplicateNameError, PluginError, UnknownNameError
from .interfaces import Problem, TrainingSchedule, UnfoldedSolver

__all__ = ["ENTRY_POINT_GROUP", "Registry", "get_registry", "get_plugin_manager", "reset"]

ENTRY_POINT_GROUP = "du_framework"
BUILTIN_PLUGIN = "du-framework (built-in)"

_KINDS = {
    "problem": ("register_problems", Problem),
    "solver": ("register_solvers", UnfoldedSolver),
    "schedule": ("register_schedules", TrainingSchedule),
}


@dataclasses.dataclass(frozen=True)
class Entry:
    """A registered class and the plugin that provided it."""

    kind: str
    name: str
    cls: type
    plugin: str


@dataclasses.dataclass
class Registry:
    """Everything registered, by kind and name, plus the plugins that failed."""

    entries: dict[str, dict[str, Entry]]
    failures: dict[str, str]

    def names(self, kind: str) -> list[str]:
        return sorted(self.entries[kind])

    def get(self, kind: str, name: str) -> Entry:
        try:
            return self.entries[kind][name]
        except KeyError:
            raise UnknownNameError(kind, name, self.entries[kind]) from None

    def problem(self, name: str) -> type[Problem]:
        return self.get("problem", name).cls

    def solver(self, name: str) -> type[UnfoldedSolver]:
        return self.get("solver", name).cls

    def schedule(self, name: str) -> type[TrainingSchedule]:
        return self.get("schedule", name).cls


def get_plugin_manager() -> pluggy.PluginManager:
    """A plugin manager with the hook specifications and the built-in plugin."""
    from . import schedules

    pm = pluggy.PluginManager("du_framework")
    pm.add_hookspecs(hookspecs)
    pm.register(schedules, name=BUILTIN_PLUGIN)
    return pm


def _allow_list() -> set[str] | None:
    raw = os.environ.get("DU_PLUGINS")
    if raw is None:
        return None
    return {name.strip() for name in raw.split(",") if name.strip()}


def _load_entry_points(pm: pluggy.PluginManager, failures: dict[str, str]) -> None:
    allowed = _allow_list()
    seen: set[str] = set()
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if allowed is not None and ep.name not in allowed:
            continue
        if ep.name in seen:  # the same distribution found twice on sys.path
            continue
        seen.add(ep.name)
        try:
            plugin = ep.load()
            pm.register(plugin, name=ep.name)
        except Exception as error:  # a broken plugin must not take the others down
            dist = getattr(ep, "dist", None)
            where = f" (distribution {dist.name})" if dist is not None else ""
            failures[ep.name] = f"{type(error).__name__}: {error}"
            warnings.warn(
                f"du-framework plugin {ep.name!r}{where} failed to load and was skipped: "
                f"{type(error).__name__}: {error}. Set DU_PLUGINS to the plugins to load "
                f"(comma-separated) to silence this.",
                RuntimeWarning,
                stacklevel=2,
            )


def _collect(pm: pluggy.PluginManager) -> dict[str, dict[str, Entry]]:
    entries: dict[str, dict[str, Entry]] = {kind: {} for kind in _KINDS}
    for kind, (hook_name, base) in _KINDS.items():
        hook = getattr(pm.hook, hook_name)
        for impl in reversed(hook.get_hookimpls()):  # registration order

            def register(cls: Any, *, _plugin=impl.plugin_name, _kind=kind, _base=base) -> None:
                if not (inspect.isclass(cls) and issubclass(cls, _base)):
                    raise PluginError(
                        f"plugin {_plugin!r} registered {cls!r} as a {_kind}; "
                        f"it must be a subclass of du_framework.{_base.__name__}"
                    )
                name = getattr(cls, "name", "")
                if not isinstance(name, str) or not name:
                    raise PluginError(
                        f"plugin {_plugin!r} registered {_kind} class {cls.__name__} "
                        f"without a 'name' class attribute (a non-empty string)"
                    )
                previous = entries[_kind].get(name)
                if previous is not None:
                    raise DuplicateNameError(
                        f"{_kind} name {name!r} is registered twice: by plugin "
                        f"{previous.plugin!r} ({previous.cls.__module__}.{previous.cls.__name__}) "
                        f"and by plugin {_plugin!r} ({cls.__module__}.{cls.__name__}); "
                        f"uninstall one, or list the plugins to load in DU_PLUGINS"
                    )
                entries[_kind][name] = Entry(_kind, name, cls, _plugin)

            impl.function(register=register)
    return entries


_registry: Registry | None = None


def get_registry() -> Registry:
    """Load the plugins once (lazily) and return the registry."""
    global _registry
    if _registry is None:
        pm = get_plugin_manager()
        failures: dict[str, str] = {}
        _load_entry_points(pm, failures)
        _registry = Registry(_collect(pm), failures)
    return _registry


def reset() -> None:
    """Forget the loaded registry (the next :func:`get_registry` loads again)."""
    global _registry
    _registry = None
