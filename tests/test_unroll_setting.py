"""train.unroll: iterations traced per body of the loop over the depth. The same gradient, to rounding, as the
loop, in every backward mode (against a float64 NumPy adjoint where one is written out); no loop over the depth
left with ``true``; each setting its own program; bad values refused."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from core_solvers import StepGD
from test_backward import eta, numpy_gradient
from test_implicit import DampedGD

from du_framework import ConfigError, Stage
from du_framework.engine import TrainSettings, train, unroll
from du_framework.engine.unroll import unrolled_iterations
from du_framework.options import parse_options
from du_framework.testing import small_problem

LR = 1e-3
DEPTH = 6


@pytest.fixture(scope="module")
def problem():
    return small_problem(n=6, m=12, lam=1.0, seed=3)


def one_sgd_step(problem, active, **settings):
    """The gradient of the first step's loss in eta, read from one plain SGD step of rate LR."""
    start = StepGD(StepGD.Options(lr=LR), problem=problem, depth=DEPTH)
    result = train(start, problem, [Stage(active, 1)], batch_size=8, key=0, optimizer="sgd", log_loss=False,
                   progress=False, **settings)
    return (eta(start) - eta(result.solver)) / LR


@pytest.mark.parametrize("mode", [{}, {"remat": True}, {"backward": "truncated", "truncate": 2}],
                         ids=["full", "remat", "truncated"])
@pytest.mark.parametrize("active", [4, DEPTH], ids=["skipping", "full-depth"])
def test_an_unrolled_loop_gives_the_float64_gradient_of_the_loop(problem, mode, active):
    first = problem.sample(jax.random.split(jax.random.key(0))[1], 8)  # the first step's instances
    start = np.asarray(StepGD(StepGD.Options(lr=LR), problem=problem, depth=DEPTH).eta[...], np.float64)
    expected = numpy_gradient(problem, start, {k: np.asarray(v, np.float64) for k, v in first.items()}, active,
                              mode.get("truncate", active))
    looped = one_sgd_step(problem, active, **mode)
    for unroll_setting in (True, 4, 100):
        gradient = one_sgd_step(problem, active, unroll=unroll_setting, **mode)
        np.testing.assert_allclose(gradient, expected, rtol=2e-3, atol=1e-6)
        np.testing.assert_allclose(gradient, looped, rtol=1e-5, atol=1e-9)


def test_unrolled_losses_of_every_iteration_are_those_of_the_loop(problem):
    looped = one_sgd_step(problem, 5, loss_weights="all")
    for unroll_setting in (True, 3):
        np.testing.assert_allclose(one_sgd_step(problem, 5, loss_weights="all", unroll=unroll_setting), looped,
                                   rtol=1e-5, atol=1e-9)


def test_the_implicit_gradient_unrolled_is_the_loops(problem):
    def gradient(**settings):
        start = DampedGD(DampedGD.Options(lr=LR), problem=problem, depth=DEPTH)
        result = train(start, problem, [Stage(DEPTH, 1)], batch_size=8, key=0, optimizer="sgd", log_loss=False,
                       backward="implicit", progress=False, **settings)
        return np.array([(float(start.mu[0]) - float(result.solver.mu[0])) / LR])

    looped = gradient()
    assert looped[0] != 0.0
    np.testing.assert_allclose(gradient(unroll=True), looped, rtol=1e-5)


def test_each_setting_is_its_own_program(problem):
    """True == 1 in Python: the program cache must still tell unroll=True from 1, and remat=True (2 levels)
    from 1 (one level)."""
    module = StepGD(StepGD.Options(lr=LR), problem=problem, depth=DEPTH)
    runs = [("unroll", 1), ("unroll", True), ("unroll", DEPTH), ("remat", 1), ("remat", True)]
    compiled = [train(module, problem, [Stage(DEPTH, 1)], batch_size=8, key=0, progress=False,
                      **{name: value}).compilations for name, value in runs]
    assert compiled == [1, 1, 0, 1, 1], "unroll=True and unroll=DEPTH are the same program; the rest differ"


def scan_unrolls(function) -> list[int]:
    """The ``unroll`` of every scan in ``function()``'s program, outermost first."""
    found = []

    def visit(jaxpr):
        for equation in jaxpr.eqns:
            if equation.primitive.name == "scan":
                found.append(equation.params["unroll"])
            for value in equation.params.values():
                for inner in (value if isinstance(value, (list, tuple)) else [value]):
                    if hasattr(inner, "jaxpr") and hasattr(inner.jaxpr, "eqns"):
                        visit(inner.jaxpr)
                    elif hasattr(inner, "eqns"):
                        visit(inner)

    visit(jax.make_jaxpr(function)().jaxpr)
    return found


def test_the_setting_reaches_the_loop_over_the_depth(problem):
    module = StepGD(StepGD.Options(), problem=problem, depth=DEPTH)
    instance = problem.sample(jax.random.key(1), 4)
    assert scan_unrolls(lambda: unroll(module, problem, instance)) == [1]
    assert scan_unrolls(lambda: unroll(module, problem, instance, unroll=True)) == [DEPTH], "no loop is left"
    assert scan_unrolls(lambda: unroll(module, problem, instance, unroll=4)) == [4]
    # with remat, the innermost loop (over a block's iterations; blocks of 3 for 2 levels at depth 6)
    assert scan_unrolls(lambda: unroll(module, problem, instance, remat=True, unroll=True)) == [1, 3]
    # truncated: the loop of the early iterations (the whole depth) and the differentiated one (truncate)
    assert scan_unrolls(lambda: unroll(module, problem, instance, truncate=2, unroll=True)) == [DEPTH, 2]
    damped = DampedGD(DampedGD.Options(), problem=problem, depth=DEPTH)
    assert scan_unrolls(lambda: unroll(damped, problem, instance, implicit=True, unroll=True)) == [DEPTH]
    values = [unroll(module, problem, instance, unroll=setting)[0] for setting in (1, True)]
    np.testing.assert_allclose(values[1], values[0], rtol=1e-6)


def test_iterations_per_body_are_clipped_to_the_loop():
    assert [unrolled_iterations(setting, 6) for setting in (True, False, 1, 4, 6, 100)] == [6, 1, 1, 4, 6, 6]
    with pytest.raises(ValueError, match="true, false or a number of iterations >= 1, got 0"):
        unrolled_iterations(0, 6)


@pytest.mark.parametrize("value", [0, -2, 2.5, "all"])
def test_a_bad_unroll_is_refused_naming_what_is_valid(problem, value):
    with pytest.raises(ConfigError, match="unroll must be"):
        parse_options(TrainSettings, {"unroll": value})
    if isinstance(value, int):
        with pytest.raises(ConfigError, match=r"train\.unroll must be >= 1"):
            one_sgd_step(problem, 3, unroll=value)
        module = StepGD(StepGD.Options(lr=LR), problem=problem, depth=DEPTH)
        with pytest.raises(ConfigError, match=r"train\.unroll must be true, false or a number of iterations >= 1"):
            # built in Python, past the parser: refused before compiling
            train(module, problem, [Stage(3, 1)], TrainSettings(unroll=value), progress=False)
