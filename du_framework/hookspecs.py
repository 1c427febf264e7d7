"""The plugin author's contract: one pluggy hook per kind of component.

A plugin is a module (named by an entry point in the group ``du_framework``, or
registered in process with :func:`du_framework.registry.register_plugin`) that
implements any of these hooks with ``@du_framework.hookimpl``. Each hook
receives a ``register`` callback; call it once per thing the plugin provides::

    @hookimpl
    def register_solvers(register):
        register(MySolver)

A class's ``name`` attribute is its registry name. The host passes a fresh
``register`` to each plugin, so it knows which plugin registered which name and
refuses a name registered twice, naming both plugins. A hook that raises, or
registers something of the wrong kind, gets its plugin named and skipped; the
other plugins keep working.
"""

from __future__ import annotations

import pluggy

__all__ = ["hookspec", "hookimpl", "register_problems", "register_solvers", "register_schedules",
           "register_experiments", "register_observers"]

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


@hookspec
def register_experiments(register):
    """Register ready-to-run configurations: ``register(Experiment(name, toml_text, description, default))``."""


@hookspec
def register_observers(register):
    """Register :class:`~du_framework.RunObserver` subclasses (experiment trackers):
    ``register(ObserverClass)``; chosen per run with ``--observe NAME`` (docs/observers.md)."""
