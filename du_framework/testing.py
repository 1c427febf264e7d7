"""Conformance kit: the checks every solver plugin should pass, ready for pytest.

A plugin's test module needs three lines::

    from du_framework.testing import SolverCase, parametrize_with_checks
    from my_plugin import MySolver

    @parametrize_with_checks([SolverCase(MySolver)])
    def test_conformance(case, check):
        check(case)

Each (case, check) pair becomes one pytest test. A :class:`SolverCase` names the
solver class, the options to build it with, and the problem to check it on (by
default a small instance of the registered ``ridge`` problem; pass ``problem=``
a zero-argument callable for solvers of other problems).

The checks (:data:`CHECKS`):

* the declared capability is honoured: a problem without it is refused with a
  message naming both sides, and the case's problem is accepted;
* one compilation of the training program for a whole multi-stage schedule
  (active depth changing between stages);
* parameter shapes and dtypes are unchanged by training;
* every learned parameter receives a finite, nonzero gradient;
* the loss at full depth falls with training;
* the evaluation curve has one finite value per iteration.

Checks that do not apply (a classical solver has nothing to learn) are skipped
with the reason.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np

from .engine import TrainResult, evaluate, split_solver, train, unroll
from .errors import IncompatibleProblemError
from .interfaces import Problem, UnfoldedSolver, flat_params
from .schedules import Incremental

__all__ = [
    "SolverCase",
    "CHECKS",
    "parametrize_with_checks",
    "small_ridge",
    "check_capability_honoured",
    "check_single_compilation",
    "check_parameters_stable",
    "check_gradients_finite_nonzero",
    "check_loss_falls",
    "check_evaluation_curve",
]


def small_ridge(n: int = 8, m: int = 16, lam: float = 1.0, seed: int = 0) -> Problem:
    """A small instance of the registered ``ridge`` problem (from the reference plugin)."""
    from .plugins import get_registry

    cls = get_registry().problem("ridge")
    return cls.from_options(cls.Options(n=n, m=m, lam=lam, seed=seed))


@dataclasses.dataclass(frozen=True)
class SolverCase:
    """A solver configuration to check.

    Attributes:
        solver: the solver class.
        options: its options (default: ``solver.Options()``).
        problem: zero-argument callable returning the problem to check on.
        depth: unrolled depth (at least 2, so the schedule has several stages).
        steps_per_stage, batch_size: training settings of the short run.
        id: name of the case in test ids (default: the solver's name).
    """

    solver: type[UnfoldedSolver]
    options: Any = None
    problem: Callable[[], Problem] = small_ridge
    depth: int = 5
    steps_per_stage: int = 30
    batch_size: int = 16
    id: str = ""

    def __str__(self) -> str:
        return self.id or self.solver.name

    def make_problem(self) -> Problem:
        return _problem(self.problem)

    def build(self) -> UnfoldedSolver:
        options = self.options if self.options is not None else self.solver.Options()
        return self.solver(options, problem=self.make_problem(), depth=self.depth)


@functools.cache
def _problem(factory: Callable[[], Problem]) -> Problem:
    return factory()


@functools.cache
def _trained(case: SolverCase) -> TrainResult:
    return train(case.build(), case.make_problem(), Incremental(), steps_per_stage=case.steps_per_stage,
                 batch_size=case.batch_size, key=0, progress=False)


def _not_applicable(reason: str) -> None:
    try:
        import pytest
    except ImportError:  # pragma: no cover - used outside pytest
        raise NotImplementedError(reason) from None
    pytest.skip(reason)


def _require_trainable(case: SolverCase) -> None:
    if not case.build().is_trainable:
        _not_applicable(f"{case.solver.name} learns nothing (a classical method)")


class _BareProblem(Problem):
    """A problem with no capability at all."""

    name = "conformance-bare"

    def __init__(self, dim: int = 3):
        self._dim = dim

    @classmethod
    def from_options(cls, options):
        return cls()

    @property
    def dim(self) -> int:
        return self._dim

    def sample(self, key, batch_size):
        return {"target": jax.random.normal(key, (batch_size, self._dim))}


def check_capability_honoured(case: SolverCase) -> None:
    """A problem without the required capability is refused; the case's problem is accepted."""
    problem = case.make_problem()
    assert case.solver.fits(problem), f"{case.solver.name} does not fit its own check problem {problem.name!r}"
    if case.solver.requires is object:
        _not_applicable(f"{case.solver.name} requires no capability")
    options = case.options if case.options is not None else case.solver.Options()
    try:
        case.solver(options, problem=_BareProblem(), depth=case.depth)
    except IncompatibleProblemError as error:
        message = str(error)
        assert case.solver.name in message and _BareProblem.name in message, (
            f"the refusal must name the solver and the problem: {message!r}")
        assert case.solver.requires.__name__ in message, f"the refusal must name the capability: {message!r}"
    else:
        raise AssertionError(f"{case.solver.name} accepted a problem lacking {case.solver.requires.__name__}")


def check_single_compilation(case: SolverCase) -> None:
    """A whole incremental schedule (depth changes each stage) compiles the step once."""
    _require_trainable(case)
    result = _trained(case)
    assert result.compilations == 1, f"training traced {result.compilations} times across {case.depth} stages"


def check_parameters_stable(case: SolverCase) -> None:
    """Training keeps every parameter's shape and dtype."""
    _require_trainable(case)
    before = {k: (v.shape, v.dtype) for k, v in flat_params(case.build()).items()}
    after = {k: (v.shape, v.dtype) for k, v in flat_params(_trained(case).solver).items()}
    assert before == after, f"parameters changed shape or dtype: {before} -> {after}"


def check_gradients_finite_nonzero(case: SolverCase) -> None:
    """At full depth every learned parameter gets a finite, nonzero gradient (after a short training)."""
    _require_trainable(case)
    solver, problem = _trained(case).solver, case.make_problem()
    merge, params, rest = split_solver(solver)
    instance = problem.sample(jax.random.key(7), case.batch_size)

    def loss(params):
        x, _ = unroll(merge(params, rest), problem, instance)
        return problem.loss(x, instance["target"])

    grads = flat_params(merge(jax.grad(loss)(params), rest))
    for name, grad in grads.items():
        grad = np.asarray(grad)
        assert np.all(np.isfinite(grad)), f"gradient of {name} is not finite: {grad}"
        assert np.any(grad != 0), f"gradient of {name} is identically zero"


def check_loss_falls(case: SolverCase) -> None:
    """The evaluation MSE at full depth is lower after training than before."""
    _require_trainable(case)
    problem = case.make_problem()
    before = evaluate(case.build(), problem, key=11, batch_size=case.batch_size, batches=2)[-1]
    after = evaluate(_trained(case).solver, problem, key=11, batch_size=case.batch_size, batches=2)[-1]
    assert after < before, f"training did not lower the loss at depth {case.depth}: {before:.4g} -> {after:.4g}"


def check_evaluation_curve(case: SolverCase) -> None:
    """Evaluation returns one finite, non-negative MSE per iteration."""
    curve = evaluate(case.build(), case.make_problem(), key=3, batch_size=case.batch_size, batches=1)
    assert curve.shape == (case.depth,), f"curve shape {curve.shape}, expected ({case.depth},)"
    assert np.all(np.isfinite(curve)) and np.all(curve >= 0), f"curve not finite and non-negative: {curve}"


CHECKS: tuple[Callable[[SolverCase], None], ...] = (
    check_capability_honoured,
    check_single_compilation,
    check_parameters_stable,
    check_gradients_finite_nonzero,
    check_loss_falls,
    check_evaluation_curve,
)


def parametrize_with_checks(cases: Sequence[SolverCase], checks: Sequence[Callable] = CHECKS):
    """``pytest.mark.parametrize("case, check", ...)`` over every (case, check) pair."""
    import pytest

    pairs = [(case, check) for case in cases for check in checks]
    ids = [f"{case}-{check.__name__.removeprefix('check_')}" for case, check in pairs]
    return pytest.mark.parametrize("case, check", pairs, ids=ids)
