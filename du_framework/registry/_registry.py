"""The registry's data: :class:`Entry` and :class:`Registry` (see :mod:`du_framework.registry`)."""

from __future__ import annotations

import dataclasses
import inspect
import warnings
from typing import Any

from ..errors import DuplicateNameError, UnknownNameError
from ..interfaces import Experiment, Problem, TrainingSchedule, UnfoldedSolver

__all__ = ["ENTRY_POINT_GROUP", "BUILTIN_PLUGIN", "KINDS", "Entry", "Registry"]

ENTRY_POINT_GROUP = "du_framework"
BUILTIN_PLUGIN = "du-framework (built-in)"
KINDS = ("problem", "solver", "schedule", "experiment", "observer")


@dataclasses.dataclass(frozen=True)
class Entry:
    """A registered thing and the plugin that provided it.

    Attributes:
        kind: one of :data:`KINDS`.
        name: its registry name.
        cls: the registered class; for an experiment, the
            :class:`~du_framework.Experiment` itself.
        plugin: the name of the plugin that registered it.
    """

    kind: str
    name: str
    cls: Any
    plugin: str

    def qualified_name(self) -> str:
        """The registered class as ``module.Class`` (an experiment as ``Experiment(name)``)."""
        return qualified_name(self.cls)


def qualified_name(obj: Any) -> str:
    if isinstance(obj, Experiment):
        return f"Experiment({obj.name!r})"
    return f"{obj.__module__}.{obj.__qualname__}" if inspect.isclass(obj) else repr(obj)


def conflict_message(kind: str, name: str, entries: tuple[Entry, ...]) -> str:
    owners = " and ".join(f"plugin {e.plugin!r} ({e.qualified_name()})" for e in entries)
    return (f"{kind} name {name!r} is registered by more than one plugin: {owners}; neither is used under "
            f"that name. Uninstall one, or list the plugins to load in DU_PLUGINS")


@dataclasses.dataclass
class Registry:
    """Everything registered, by kind and name, and the plugins that failed.

    Attributes:
        entries: ``{kind: {name: Entry}}`` for every kind of :data:`KINDS`.
        failures: ``{plugin: reason}`` for every plugin skipped (and every
            name conflict, under the later plugin), in load order.
        conflicts: ``{kind: {name: entries}}``: names registered by several
            plugins; :meth:`get` raises :class:`DuplicateNameError` for them.
        plugins: the plugins loaded, in load order.
        skipped: ``{(kind, name): plugin}``: what skipped plugins tried to register.
    """

    entries: dict[str, dict[str, Entry]]
    failures: dict[str, str] = dataclasses.field(default_factory=dict)
    conflicts: dict[str, dict[str, tuple[Entry, ...]]] = dataclasses.field(default_factory=dict)
    plugins: list[str] = dataclasses.field(default_factory=list)
    skipped: dict[tuple[str, str], str] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        for kind in KINDS:
            self.entries.setdefault(kind, {})
            self.conflicts.setdefault(kind, {})

    def _table(self, kind: str) -> dict[str, Entry]:
        if kind not in self.entries:
            raise ValueError(f"unknown kind {kind!r}; kinds: {', '.join(KINDS)}")
        return self.entries[kind]

    def names(self, kind: str) -> list[str]:
        """The registered names of a kind, sorted."""
        return sorted(self._table(kind))

    def get(self, kind: str, name: str) -> Entry:
        """The entry of ``name``.

        Raises:
            DuplicateNameError: several plugins register ``name`` (naming them).
            UnknownNameError: nothing registers ``name``; the message lists the
                known names, the nearest one, and the failed plugin if one
                would have registered it.
        """
        table = self._table(kind)
        if name in table:
            return table[name]
        if name in self.conflicts[kind]:
            raise DuplicateNameError(conflict_message(kind, name, self.conflicts[kind][name]))
        error = UnknownNameError(kind, name, table)
        plugin = self.skipped.get((kind, name))
        if plugin is not None:
            error.args = (f"{error.args[0]}; plugin {plugin!r} registers it but was skipped: "
                          f"{self.failures.get(plugin, '(no reason recorded)')}",)
        elif self.failures:
            error.args = (f"{error.args[0]}; plugins that failed to load: {', '.join(self.failures)} "
                          f"(see `unfold list`)",)
        raise error

    def problem(self, name: str) -> type[Problem]:
        return self.get("problem", name).cls

    def solver(self, name: str) -> type[UnfoldedSolver]:
        return self.get("solver", name).cls

    def schedule(self, name: str) -> type[TrainingSchedule]:
        return self.get("schedule", name).cls

    def experiment(self, name: str) -> Experiment:
        return self.get("experiment", name).cls

    def observer(self, name: str) -> type:
        """The :class:`~du_framework.RunObserver` subclass registered as ``name``."""
        return self.get("observer", name).cls

    def plugin_of(self, kind: str, name: str) -> str:
        """The plugin that registered ``name`` (raises as :meth:`get` does)."""
        return self.get(kind, name).plugin

    def default_experiment(self) -> Experiment | None:
        """The experiment registered with ``default=True``, or ``None``.

        If several say so, the first in load order wins and a ``RuntimeWarning``
        names them all.
        """
        defaults = [entry for entry in self.entries["experiment"].values() if entry.cls.default]
        if len(defaults) > 1:
            named = ", ".join(f"{e.name!r} (plugin {e.plugin!r})" for e in defaults)
            warnings.warn(f"several experiments are registered with default=True: {named}; using "
                          f"{defaults[0].name!r}. Choose one with `unfold compare --experiment NAME`",
                          RuntimeWarning, stacklevel=2)
        return defaults[0].cls if defaults else None
