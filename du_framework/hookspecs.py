"""The plugin author's contract: one pluggy hook per kind of component.

A plugin is a module (named by an entry point in the group ``du_framework``)
that implements any of these hooks with ``@du_framework.hookimpl``. Each hook
receives a ``register`` callback; call it once per class the plugin provides::

    @hookimpl
    def register_solvers(register):
        register(MySolver)

The class's ``name`` attribute is its registry name. The host passes a fresh
``register`` to each plugin, so it knows which plugin registered which name and
can refuse a name registered twice, naming both plugins.
"""

from __future__ import annotations

import pluggy

__all__ = ["hookspec", "hookimpl", "register_problems", "register_solvers", "register_schedules"]

hookspec = pluggy.HookspecMarker("du_framework")
hookimpl = pluggy.HookimplMarker("du_framework")


@hookspec
def register_problems(register):
    """Register :class:`~du_framework.Problem` subclasses: ``register(ProblemClass)``."""


@hookspec
def register_solvers(register):
    """Register :class:`~du_framework.UnfoldedSolver` subclasses: ``register(SolverClass)``."""


@hookspec
def register_schedules(register):
    """Register :class:`~du_framework.TrainingSchedule` subclasses: ``register(ScheduleClass)``."""
