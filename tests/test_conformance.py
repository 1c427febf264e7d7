"""The conformance kit, run over every solver registered in this environment."""

from du_framework.plugins import get_registry, reset
from du_framework.testing import SolverCase, parametrize_with_checks


def _registered_cases():
    registry = get_registry()
    cases = [SolverCase(entry.cls) for _, entry in sorted(registry.entries["solver"].items())
             if issubclass(registry.problem("ridge"), entry.cls.requires)]
    reset()
    return cases


CASES = _registered_cases()


def test_every_registered_solver_of_the_ridge_problem_is_checked():
    registry = get_registry()
    names = {case.solver.name for case in CASES}
    assert {"dugd", "gd"} <= names
    ridge = registry.problem("ridge")
    assert names == {n for n, e in registry.entries["solver"].items() if issubclass(ridge, e.cls.requires)}


@parametrize_with_checks(CASES)
def test_conformance(case, check):
    check(case)
