"""One load of every plugin into a fresh :class:`Registry`, isolating each (see :mod:`du_framework.registry`)."""

from __future__ import annotations

import importlib.metadata
import os
import re
import warnings
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pluggy

from .. import hookspecs
from ..errors import nearest
from ._registry import (BUILTIN_PLUGIN, ENTRY_POINT_GROUP, KINDS, Entry, Registry, conflict_message,
                        qualified_name)
from ._validate import validate

__all__ = ["load"]

_HOOKS = {"problem": "register_problems", "solver": "register_solvers", "schedule": "register_schedules",
          "experiment": "register_experiments", "observer": "register_observers"}


class _Loader:
    """One load of every plugin into a fresh :class:`Registry`."""

    def __init__(self):
        self.pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
        self.pm.add_hookspecs(hookspecs)
        self.registry = Registry({kind: {} for kind in KINDS})

    def fail(self, plugin: str, reason: str, *, skipped: bool = True) -> None:
        failures = self.registry.failures
        failures[plugin] = f"{failures[plugin]}; {reason}" if plugin in failures else reason
        what = "was skipped" if skipped else "has a conflict"
        warnings.warn(f"du-framework plugin {plugin!r} {what}: {reason}. The other plugins are unaffected; "
                      f"DU_PLUGINS chooses the installed plugins to load", RuntimeWarning, stacklevel=4)

    def load(self, name: str, plugin: Any) -> None:
        """Register ``plugin`` with pluggy, call its hooks, validate and commit what it registers."""
        already = self.pm.get_name(plugin)
        if already is not None:  # pluggy's own message would list every plugin it holds
            self.fail(name, f"cannot be registered: the same module or object was already loaded as plugin "
                            f"{already!r} (an entry point of an installed distribution, or a .egg-info left "
                            f"beside its source); register it once", skipped=False)
            return
        try:
            self.pm.register(plugin, name=name)
        except Exception as error:  # noqa: BLE001 - PluginValidationError, or name already registered
            self.fail(name, f"cannot be registered: {' '.join(str(error).split())}")
            return
        reasons = self._unknown_hooks(plugin)
        staged: list[Entry] = []
        if not reasons:
            for kind in KINDS:
                for impl in getattr(self.pm.hook, _HOOKS[kind]).get_hookimpls():
                    if impl.plugin is plugin:
                        reasons += self._call(impl, kind, name, staged)
        if reasons:
            self.pm.unregister(plugin)
            self.fail(name, "; ".join(reasons))
            return
        self.registry.plugins.append(name)
        for entry in staged:
            self.registry.skipped.pop((entry.kind, entry.name), None)
            self._commit(entry)

    def _unknown_hooks(self, plugin: Any) -> list[str]:
        reasons = []
        for caller in self.pm.get_hookcallers(plugin) or ():
            if caller.has_spec() or all(i.optionalhook for i in caller.get_hookimpls() if i.plugin is plugin):
                continue
            hint = nearest(caller.name, _HOOKS.values())
            reasons.append(f"implements {caller.name!r}, which is not a du-framework hook"
                           + (f" (did you mean {hint!r}?)" if hint else ""))
        return reasons

    def _call(self, impl: Any, kind: str, plugin: str, staged: list[Entry]) -> list[str]:
        reasons: list[str] = []
        hook = _HOOKS[kind]

        def register(obj: Any) -> None:
            name = getattr(obj, "name", None)
            if isinstance(name, str) and name:  # named by get() if the plugin is skipped
                self.registry.skipped.setdefault((kind, name), plugin)
            reason = validate(kind, obj)
            if reason is not None:
                reasons.append(f"{hook}: {reason}")
                return
            previous = next((e for e in staged if e.kind == kind and e.name == obj.name), None)
            if previous is None:
                staged.append(Entry(kind, obj.name, obj, plugin))
            elif previous.cls is not obj:
                reasons.append(f"{hook}: registers two {kind}s named {obj.name!r}: {previous.qualified_name()} "
                               f"and {qualified_name(obj)}")

        try:
            impl.function(register=register)
        except (Exception, SystemExit) as error:  # a plugin's bug must not end the process
            reasons.append(f"{hook} raised {_describe_exception(error)}")
        return reasons

    def _commit(self, entry: Entry) -> None:
        table, conflicts = self.registry.entries[entry.kind], self.registry.conflicts[entry.kind]
        if entry.name in conflicts:
            conflicts[entry.name] += (entry,)
        elif entry.name in table:
            conflicts[entry.name] = (table.pop(entry.name), entry)
        else:
            table[entry.name] = entry
            return
        self.fail(entry.plugin, conflict_message(entry.kind, entry.name, conflicts[entry.name]), skipped=False)


def _describe_exception(error: BaseException) -> str:
    if isinstance(error, SystemExit):
        return f"SystemExit (sys.exit({error.code!r}))"
    return f"{type(error).__name__}: {error}"


def _allow_list() -> list[str] | None:
    raw = os.environ.get("DU_PLUGINS")
    if raw is None:
        return None
    return list(dict.fromkeys(name for name in re.split(r"[,\s]+", raw) if name))


def _entry_points(loader: _Loader) -> Iterator[tuple[str, Callable[[], Any]]]:
    """``(name, load)`` for each entry point to load, in name order, after the allow-list."""
    available = sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name)
    allowed = _allow_list()
    if allowed is not None:
        known = {ep.name for ep in available} | {ep.dist.name for ep in available if ep.dist is not None}
        installed = ", ".join(dict.fromkeys(ep.name for ep in available)) or "(none)"
        for name in allowed:
            if name not in known:
                loader.fail(name, f"DU_PLUGINS names {name!r}, but no installed plugin has that name; "
                                  f"installed plugins: {installed}")
    seen: dict[str, str | None] = {}
    for ep in available:
        dist = ep.dist.name if ep.dist is not None else None
        if allowed is not None and ep.name not in allowed and dist not in allowed:
            continue
        if ep.name in seen:
            if seen[ep.name] != dist:  # pluggy would skip it silently
                loader.fail(f"{ep.name} ({dist})", f"distribution {dist!r} declares entry point {ep.name!r}, "
                                                   f"already loaded from distribution {seen[ep.name]!r}")
            continue  # else the same distribution found twice on sys.path
        seen[ep.name] = dist
        yield ep.name, (lambda ep=ep, dist=dist: _import(ep, dist))


def _import(ep: importlib.metadata.EntryPoint, dist: str | None) -> Any:
    try:
        return ep.load()
    except (Exception, SystemExit) as error:  # not KeyboardInterrupt
        where = f" (distribution {dist})" if dist else ""
        raise _ImportFailed(f"import of {ep.value!r}{where} failed: {_describe_exception(error)}") from error


class _ImportFailed(Exception):
    pass


def load(in_process: Mapping[str, Any]) -> Registry:
    """Load the built-in plugin, the entry points, then the in-process plugins; never raises for a plugin."""
    from . import _builtin

    loader = _Loader()
    loader.load(BUILTIN_PLUGIN, _builtin)
    for name, import_plugin in _entry_points(loader):
        try:
            plugin = import_plugin()
        except _ImportFailed as error:
            loader.fail(name, str(error))
            continue
        loader.load(name, plugin)
    for name, plugin in list(in_process.items()):
        loader.load(name, plugin)
    return loader.registry
