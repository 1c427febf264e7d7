"""The conformance kit, run over everything registered in this environment.

Every solver that fits the core's small problem, every registered problem and
every registered schedule is checked; the test names no plugin, so it covers
whatever is installed (only the built-in schedules when no plugin is).
"""

from du_framework.registry import get_registry, reset
from du_framework.testing import ProblemCase, ScheduleCase, SmallLeastSquares, SolverCase, parametrize_with_checks, small_problem


def _registered_cases():
    registry = get_registry()
    problem = small_problem()
    cases = [SolverCase(entry.cls) for _, entry in sorted(registry.entries["solver"].items())
             if entry.cls.fits(problem)]
    cases += [ProblemCase(entry.cls) for _, entry in sorted(registry.entries["problem"].items())]
    cases += [ScheduleCase(entry.cls) for _, entry in sorted(registry.entries["schedule"].items())]
    reset()
    return cases


CASES = _registered_cases()


def test_every_registered_component_that_fits_is_checked():
    registry = get_registry()
    problem = SmallLeastSquares(SmallLeastSquares.Options())
    solvers = {case.solver.name for case in CASES if isinstance(case, SolverCase)}
    assert solvers == {n for n, e in registry.entries["solver"].items() if e.cls.fits(problem)}
    assert {case.problem.name for case in CASES if isinstance(case, ProblemCase)} == set(registry.names("problem"))
    schedules = {case.schedule.name for case in CASES if isinstance(case, ScheduleCase)}
    assert schedules == set(registry.names("schedule")) and "incremental-restart" in schedules


@parametrize_with_checks(CASES)
def test_conformance(case, check):
    check(case)
