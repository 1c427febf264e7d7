"""The core's own plugin, :data:`~du_framework.registry.BUILTIN_PLUGIN`: the kernel's schedules and, through
the entry-point group ``du_framework.builtin`` that only the du-framework distribution declares, what the
core ships above the kernel (the workbench's ``tensorboard`` observer); the kernel imports none of it."""

from __future__ import annotations

import importlib.metadata

from ..hookspecs import hookimpl
from ..schedules import register_schedules

__all__ = ["BUILTIN_GROUP", "register_observers", "register_schedules"]

BUILTIN_GROUP = "du_framework.builtin"
_DISTRIBUTION = "du-framework"


@hookimpl
def register_observers(register):
    """The observers of the core's upper layers: each ``du_framework.builtin`` entry point of this distribution
    names a module whose ``register_observers(register)`` registers them."""
    for entry_point in sorted(importlib.metadata.entry_points(group=BUILTIN_GROUP), key=lambda ep: ep.name):
        if entry_point.dist is not None and entry_point.dist.name != _DISTRIBUTION:
            continue  # the group is the core's own; another distribution's entry there is not loaded
        entry_point.load().register_observers(register)
