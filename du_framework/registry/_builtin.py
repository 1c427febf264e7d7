"""The core's own plugin, :data:`~du_framework.registry.BUILTIN_PLUGIN`: the built-in schedules and
observers, registered through the same hooks as any plugin's."""

from ..workbench.observers import register_observers
from ..schedules import register_schedules

__all__ = ["register_observers", "register_schedules"]
