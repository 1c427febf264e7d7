"""Conformance kit: the checks every plugin's components should pass, ready for pytest.

Install it with the core's ``test`` extra (``pip install "du-framework[test]"``,
which brings pytest). A plugin's test module needs a few lines::

    from du_framework.testing import ProblemCase, SolverCase, parametrize_with_checks
    from my_plugin import MyProblem, MySolver

    @parametrize_with_checks([ProblemCase(MyProblem), SolverCase(MySolver, problem=MyProblem)])
    def test_conformance(case, check):
        check(case)

Each (case, check) pair becomes one pytest test; only the checks that apply to
a case are yielded, and a check that does not apply to one configuration (a
classical solver has nothing to learn) is skipped with the reason. A known
failure is marked with ``expected_failures={"check_loss_falls": "reason"}``
(or ``{"loss_falls": ...}``, the name in the test ids); a key that names no
check is refused with the list of valid names.

* :class:`SolverCase`: a solver class, its options and the problem to check it
  on (a problem class, built from its default options, or a zero-argument
  callable); by default :class:`~du_framework.testing.problems.SmallLeastSquares`,
  a small problem inside the core that is quadratic, regularised least squares
  and a linear observation model at once.
* :class:`ProblemCase`: a problem class and its options.
* :class:`ScheduleCase`: a schedule class and its options.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import Any

from ..errors import ConfigError, nearest
from ..interfaces import Problem, TrainingSchedule, UnfoldedSolver
from . import checks
from .problems import BareProblem, SmallLeastSquares

__all__ = ["SolverCase", "ProblemCase", "ScheduleCase", "parametrize_with_checks", "small_problem",
           "SmallLeastSquares", "BareProblem", "checks"]


def small_problem(**options: Any) -> SmallLeastSquares:
    """A :class:`SmallLeastSquares` problem (``n=8, m=16, lam=1`` unless given)."""
    return SmallLeastSquares(SmallLeastSquares.Options(**options))


@functools.cache
def _build_problem(factory: Any) -> Problem:
    if isinstance(factory, type) and issubclass(factory, Problem):
        return factory.from_options(factory.Options())
    problem = factory()
    if not isinstance(problem, Problem):
        raise TypeError(f"the case's problem factory returned {problem!r}, not a du_framework.Problem")
    return problem


def _short(check: Callable) -> str:
    """The name of a check as test ids show it (``loss_falls`` for ``check_loss_falls``)."""
    return check.__name__.removeprefix("check_")


@dataclasses.dataclass(frozen=True)
class _Case:
    id: str = dataclasses.field(default="", kw_only=True)
    expected_failures: tuple[tuple[str, str], ...] | dict = dataclasses.field(default=(), kw_only=True)

    def __post_init__(self):
        object.__setattr__(self, "expected_failures", self._resolve_expected(dict(self.expected_failures)))

    def _resolve_expected(self, given: dict) -> tuple[tuple[str, str], ...]:
        """``{key: reason}`` -> ``((check's full name, reason), ...)``, sorted.

        A key is a check's full name (``check_loss_falls``), its name in test ids
        (``loss_falls``) or the whole test id (``<case>-loss_falls``).

        Raises:
            ConfigError: a key that names no check of this kind of case (the
                message lists the valid names and the nearest), a check named
                twice, or a reason that is not a non-empty string.
        """
        if not given:
            return ()
        kind = type(self).__name__
        names, ids = {}, {}
        for check in self.checks():
            names[check.__name__] = names[_short(check)] = check.__name__
            ids[f"{self}-{_short(check)}"] = check.__name__
        resolved = {}
        for key, reason in given.items():
            if key in ids:
                key = ids[key]
            if key not in names:
                hint = nearest(str(key), names) if isinstance(key, str) else None
                hint = f" (did you mean {hint!r}?)" if hint else ""
                raise ConfigError(f"{kind}({self}).expected_failures: {key!r} is not a check of a {kind}{hint}. "
                                  f"Valid names: {', '.join(c.__name__ for c in self.checks())} (or the same "
                                  f"without 'check_', as the test ids show them)")
            if not isinstance(reason, str) or not reason.strip():
                raise ConfigError(f"{kind}({self}).expected_failures[{key!r}]: the reason must be a non-empty "
                                  f"string saying why the check fails, got {reason!r}")
            if names[key] in resolved:
                raise ConfigError(f"{kind}({self}).expected_failures names {names[key]} twice; keep one key")
            resolved[names[key]] = reason
        return tuple(sorted(resolved.items()))

    def checks(self) -> tuple[Callable, ...]:
        raise NotImplementedError


@dataclasses.dataclass(frozen=True)
class SolverCase(_Case):
    """A solver configuration to check.

    Attributes:
        solver: the solver class.
        options: its options (default: ``solver.Options()``).
        problem: a problem class (built from its default options) or a
            zero-argument callable returning the problem to check on.
        depth: unrolled depth (at least 2, so the schedule has several stages).
        steps_per_stage, batch_size: training settings of the short run.
        id: name of the case in test ids (default: the solver's name).
        expected_failures: ``{check: reason}`` for known failures (a strict
            xfail); a check is named in full (``"check_loss_falls"``) or as the
            test ids show it (``"loss_falls"``); a name that is no check raises
            :class:`~du_framework.errors.ConfigError` listing the valid ones.
    """

    solver: type[UnfoldedSolver] = None
    options: Any = None
    problem: Any = SmallLeastSquares
    depth: int = 5
    steps_per_stage: int = 30
    batch_size: int = 16

    def __str__(self) -> str:
        return self.id or self.solver.name

    def make_problem(self) -> Problem:
        problem = _build_problem(self.problem)
        if not self.solver.fits(problem):
            raise TypeError(f"SolverCase({self.solver.name}): the check problem {problem.name!r} lacks a capability "
                            f"the solver requires; pass problem=<a problem class or factory that has it>")
        return problem

    def make_options(self) -> Any:
        return self.options if self.options is not None else self.solver.Options()

    def build(self) -> UnfoldedSolver:
        return self.solver(self.make_options(), problem=self.make_problem(), depth=self.depth)

    def checks(self):
        return checks.SOLVER_CHECKS


@dataclasses.dataclass(frozen=True)
class ProblemCase(_Case):
    """A problem configuration to check (``options`` default: ``problem.Options()``).

    ``id`` and ``expected_failures`` as for :class:`SolverCase`.
    """

    problem: type[Problem] = None
    options: Any = None
    batch_size: int = 4

    def __str__(self) -> str:
        return self.id or self.problem.name

    def build(self) -> Problem:
        return self.problem.from_options(self.options if self.options is not None else self.problem.Options())

    def checks(self):
        return checks.PROBLEM_CHECKS


@dataclasses.dataclass(frozen=True)
class ScheduleCase(_Case):
    """A schedule configuration to check (``options`` default: ``schedule.Options()``).

    ``id`` and ``expected_failures`` as for :class:`SolverCase`.
    """

    schedule: type[TrainingSchedule] = None
    options: Any = None

    def __str__(self) -> str:
        return self.id or self.schedule.name

    def build(self) -> TrainingSchedule:
        return self.schedule(self.options if self.options is not None else self.schedule.Options())

    def checks(self):
        return checks.SCHEDULE_CHECKS


def parametrize_with_checks(cases: Sequence[_Case], checks: Sequence[Callable] | None = None):
    """``pytest.mark.parametrize("case, check", ...)`` over every (case, check) pair that applies.

    ``checks`` restricts the checks (default: every check of each case's kind).
    """
    import pytest

    params = []
    for case in cases:
        expected = dict(case.expected_failures)
        for check in case.checks():
            if checks is not None and check not in checks:
                continue
            name = check.__name__
            marks = [pytest.mark.xfail(reason=expected[name], strict=True)] if name in expected else []
            params.append(pytest.param(case, check, marks=marks, id=f"{case}-{_short(check)}"))
    return pytest.mark.parametrize("case, check", params)
