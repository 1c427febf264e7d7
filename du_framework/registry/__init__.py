"""Plugin discovery and the registry of problems, solvers, schedules, experiments and observers.

A plugin is a module (or any object) implementing the hooks of
:mod:`du_framework.hookspecs` with ``@du_framework.hookimpl``. Plugins come from:

1. the core itself: :mod:`du_framework.schedules` and (through the core's own entry-point
   group ``du_framework.builtin``, so the kernel imports no upper layer)
   :mod:`du_framework.workbench.observers` register the built-in schedules and observers
   through the same hooks as any plugin, as plugin :data:`BUILTIN_PLUGIN`;
2. installed distributions: entry points in the group :data:`ENTRY_POINT_GROUP`,
   loaded in order of entry-point name;
3. in-process registrations (:func:`register_plugin`, :func:`plugin_registered`),
   in the order they were made, for notebooks and tests.

:func:`get_registry` loads them once, lazily, and caches the :class:`Registry`;
:func:`reset` (and every in-process registration) makes the next call load again.
In a notebook or a test, without installing anything::

    from du_framework.registry import get_registry, plugin_registered

    with plugin_registered(my_plugin_module):
        solver_cls = get_registry().solver("my-solver")

Isolation. A plugin that fails at any step is named in :attr:`Registry.failures`
with the reason, a ``RuntimeWarning`` says so, and the plugin is skipped *as a
whole* (none of its names is registered); every other plugin is unaffected, so
``unfold list`` keeps working and shows the failure. The steps: importing the
entry point (any exception, ``SystemExit`` included; ``KeyboardInterrupt`` is
not caught), registering it with pluggy (a hookimpl whose arguments do not match
the hookspec, or a hook name that no hookspec declares), calling each of its
hooks (any exception or ``SystemExit``), and validating each thing it registers:

* problems, solvers and schedules must be concrete subclasses of
  :class:`~du_framework.Problem`, :class:`~du_framework.UnfoldedSolver` and
  :class:`~du_framework.TrainingSchedule` with a non-empty string ``name``;
  a solver's ``prepare``, ``init_state`` and ``step`` must accept the
  contract's arguments (``step(problem, context, state, k)``);
* their ``Options`` must be a frozen dataclass whose annotations resolve and
  whose defaults, given explicitly, pass :func:`du_framework.options.parse_options`
  (types, constraints, ``validate()``); an ``Options`` with a required field
  (no default) is allowed, and only its annotations are checked;
* experiments must be :class:`~du_framework.Experiment` instances with a name
  and a configuration that is valid TOML;
* observers must be concrete subclasses of
  :class:`~du_framework.RunObserver` with a non-empty string ``name``,
  constructible without arguments, whose ``on_*`` methods take one event.

All the problems of one plugin are collected into its one reason, so an author
sees everything at once. Skipping the whole plugin rather than only the bad
registration is deliberate: a plugin's parts depend on each other (a solver on
the plugin's capability, an experiment on its solvers), and "plugin X skipped:
reason" is clearer than a half-loaded plugin that later fails with "unknown
solver". :meth:`Registry.get` names the failed plugin when asked for a name it
would have registered.

Duplicate names. A name registered by two plugins for the same kind is an error
naming both plugins and both classes (as datasette does), but it is raised where
the name is *used*, not at load time: :meth:`Registry.get` raises
:class:`~du_framework.DuplicateNameError` for it, the name is given to neither
plugin (so the outcome never depends on installation order), the conflict is
recorded in :attr:`Registry.failures` under the later plugin in load order with
a warning, and both plugins' other names load normally. Raising from
:func:`get_registry` would let one conflicting installation take down
``unfold list`` and every other command, which the isolation promise forbids.
One plugin registering two different things under one name is a broken plugin
and is skipped.

Allow-list. ``DU_PLUGINS`` names the entry points to load, separated by commas
and/or whitespace (a distribution name is accepted too); set but empty loads
none. The built-in plugin and in-process plugins are not affected. A name that
matches no installed entry point gets a warning naming it and the installed ones
(and a line in :attr:`Registry.failures`).

The package: :mod:`._registry` holds :class:`Entry` and :class:`Registry`,
:mod:`._validate` what a plugin may register, :mod:`._loading` one load.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator
from typing import Any

from ..errors import PluginError, UnknownNameError
from ._loading import load
from ._registry import BUILTIN_PLUGIN, ENTRY_POINT_GROUP, KINDS, Entry, Registry

__all__ = ["ENTRY_POINT_GROUP", "BUILTIN_PLUGIN", "KINDS", "Entry", "Registry", "get_registry", "reset",
           "register_plugin", "unregister_plugin", "plugin_registered", "in_process_plugins", "loaded_registry", "describe_solver",
           "describe_component"]

_registry: Registry | None = None
_loading = False


def get_registry() -> Registry:
    """Load the plugins once (lazily) and return the registry.

    Raises:
        PluginError: called from a plugin's hook while the plugins are loading
            (recorded as that plugin's failure).
    """
    global _registry, _loading
    if _registry is None:
        if _loading:
            raise PluginError("get_registry() was called while the plugins are loading; "
                              "a hook must only call its register argument")
        _loading = True
        try:
            _registry = load(_in_process)
        finally:
            _loading = False
    return _registry


def loaded_registry() -> Registry | None:
    """The registry if the plugins are already loaded, else ``None``; never loads them."""
    return _registry


def reset() -> None:
    """Forget the loaded registry (the next :func:`get_registry` loads again)."""
    global _registry
    _registry = None


# --- in-process registration ---------------------------------------------------------------------

_in_process: dict[str, Any] = {}


def _default_name(plugin: Any) -> str:
    if inspect.ismodule(plugin):
        return plugin.__name__
    cls = plugin if inspect.isclass(plugin) else type(plugin)
    return f"{cls.__module__}.{cls.__qualname__}"


def register_plugin(plugin: Any, name: str | None = None) -> str:
    """Register ``plugin`` in this process, as if it were installed; return its name.

    ``plugin`` is a module, or any object (a class instance, say) whose
    attributes include ``@hookimpl`` functions. It is loaded after the
    installed plugins by every registry load, with the same isolation (a
    failure is recorded, not raised), until :func:`unregister_plugin`.
    ``DU_PLUGINS`` does not apply to it. Registering the same object under the
    same name again does nothing.

    Args:
        name: the plugin's name (default: the module's name, or the object's
            class as ``module.Class``).

    Raises:
        PluginError: another object is registered under ``name``, or this
            object under another name.
    """
    name = name if name is not None else _default_name(plugin)
    if not isinstance(name, str) or not name:
        raise PluginError(f"a plugin name must be a non-empty string, got {name!r}")
    existing = _in_process.get(name)
    if existing is not None and existing is not plugin:
        raise PluginError(f"a plugin named {name!r} is already registered in process ({existing!r}); "
                          f"unregister it first, or pass another name=")
    other = next((n for n, p in _in_process.items() if p is plugin and n != name), None)
    if other is not None:
        raise PluginError(f"{plugin!r} is already registered in process as {other!r}")
    _in_process[name] = plugin
    reset()
    return name


def unregister_plugin(name: str) -> Any:
    """Remove an in-process plugin (by name, or the object itself); return the plugin.

    Raises:
        UnknownNameError: no in-process plugin has that name.
    """
    if not isinstance(name, str):
        name = next((n for n, p in _in_process.items() if p is name), repr(name))
    if name not in _in_process:
        raise UnknownNameError("in-process plugin", name, _in_process)
    plugin = _in_process.pop(name)
    reset()
    return plugin


@contextlib.contextmanager
def plugin_registered(plugin: Any, name: str | None = None) -> Iterator[str]:
    """Register ``plugin`` for the duration of a ``with`` block (yields its name)."""
    name = register_plugin(plugin, name)
    try:
        yield name
    finally:
        if _in_process.get(name) is plugin:
            unregister_plugin(name)


def in_process_plugins() -> dict[str, Any]:
    """The in-process plugins, ``{name: plugin}``, in registration order (a copy)."""
    return dict(_in_process)


# --- runtime helpers -----------------------------------------------------------------------------

def describe_component(component: Any, kind: str = "solver", *, load: bool = True) -> str:
    """``"'name' (plugin 'x')"`` for a registered class (or instance) of ``kind``, else its module.

    Meant for error messages: it never raises. With ``load=False`` the plugins are
    not loaded for it: the registry is consulted only if already loaded (the
    engine words its messages so, and a run given objects loads no plugin).
    """
    cls = component if inspect.isclass(component) else type(component)
    name = getattr(cls, "name", "")
    shown = repr(name) if isinstance(name, str) and name else cls.__qualname__
    try:
        registry = get_registry() if load else _registry
        entry = registry.entries[kind].get(name) if registry is not None else None
    except Exception:  # noqa: BLE001 - a description must never fail
        entry = None
    if entry is not None and entry.cls is cls:
        return f"{shown} (plugin {entry.plugin!r})"
    return f"{shown} (module {cls.__module__!r})"


def describe_solver(solver: Any, *, load: bool = True) -> str:
    """:func:`describe_component` for a solver."""
    return describe_component(solver, "solver", load=load)
