"""train.backward: truncated backpropagation through the last K active iterations, against a float64 NumPy adjoint."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from core_solvers import StepGD

from du_framework import ConfigError, Stage
from du_framework.engine import TrainSettings, train, unroll
from du_framework.options import parse_options
from du_framework.testing import small_problem

LR = 1e-3


@pytest.fixture(scope="module")
def problem():
    return small_problem(n=6, m=12, lam=1.0, seed=3)


def solver(problem, depth=6, **options):
    return StepGD(StepGD.Options(**options), problem=problem, depth=depth)


def eta(module):
    return np.asarray(module.eta[...], np.float64)


def numpy_gradient(problem, steps, instance, active, truncate):
    """d loss / d eta_t of ``x <- x - eta_t (H x - b)`` from 0 after ``active`` iterations, the loss the mean
    squared error, backpropagated (float64, by hand) through iterations ``active-truncate .. active-1`` only."""
    A = np.asarray(problem.A, np.float64)
    H, b = A.T @ A + problem.lam * np.eye(A.shape[1]), instance["y"] @ A
    xs = [np.zeros_like(instance["target"])]
    for t in range(active):
        xs.append(xs[-1] - steps[t] * (xs[-1] @ H - b))
    adjoint = 2.0 * (xs[active] - instance["target"]) / len(xs[0])  # d loss / d x_active
    gradient = np.zeros(len(steps))
    for t in reversed(range(max(active - truncate, 0), active)):
        gradient[t] = np.sum(adjoint * -(xs[t] @ H - b))
        adjoint = adjoint - steps[t] * adjoint @ H
    return gradient


@pytest.mark.parametrize("active, truncate", [(5, 2), (3, 5)])
def test_the_truncated_gradient_is_the_float64_adjoint_through_the_last_iterations(problem, active, truncate):
    start = solver(problem, lr=LR)
    result = train(start, problem, [Stage(active, 1)], batch_size=8, key=0, optimizer="sgd", log_loss=False,
                   backward="truncated", truncate=truncate, progress=False)
    gradient = (eta(start) - eta(result.solver)) / LR  # plain SGD moves eta by LR times the gradient
    first = problem.sample(jax.random.split(jax.random.key(0))[1], 8)  # the first step's instances
    expected = numpy_gradient(problem, eta(start), {k: np.asarray(v, np.float64) for k, v in first.items()},
                              active, truncate)
    np.testing.assert_allclose(gradient, expected, rtol=2e-3, atol=1e-6)
    assert np.all(gradient[:max(active - truncate, 0)] == 0.0) and np.all(gradient[active - truncate:active] != 0)


def test_a_truncated_unroll_computes_the_values_of_the_full_one(problem):
    module = solver(problem, depth=7, init_step=0.02)
    instance = problem.sample(jax.random.key(1), 4)
    record = lambda x: jnp.sum(x**2, axis=-1)
    run = jax.jit(lambda m, i, a, t: unroll(m, problem, i, a, record=record, truncate=t), static_argnums=3)
    for active in (jnp.int32(7), jnp.int32(5), jnp.int32(2)):
        plain, cut = run(module, instance, active, None), run(module, instance, active, 3)
        np.testing.assert_allclose(cut[0], plain[0], rtol=1e-6)
        np.testing.assert_allclose(cut[1], plain[1], rtol=1e-6)  # past the active depth: the final value


def test_truncated_backpropagation_stores_only_its_last_iterations():
    problem = small_problem(n=20, m=40, lam=1.0, seed=1)
    module, instance = solver(problem, depth=200), problem.sample(jax.random.key(0), 64)

    def memory(truncate):
        gradient = jax.jit(jax.grad(lambda m: jnp.sum(unroll(m, problem, instance, truncate=truncate)[0] ** 2)))
        stats = gradient.lower(module).compile().memory_analysis()
        return stats.temp_size_in_bytes + stats.output_size_in_bytes

    full, cut = memory(None), memory(4)
    # 200 stored states of 64 x 20 floats (5 KiB each) with the full backward pass; a handful truncated.
    assert full > 200 * 64 * 20 * 4 and cut < full / 10, (cut, full)


@pytest.mark.parametrize("settings, message", [
    ({"backward": "implicite"}, "train.backward must be one of 'full', 'truncated', 'implicit'"),
    ({"backward": "truncated"}, r"train.truncate = 0: .* give the iterations to backpropagate through, 1..50"),
    ({"backward": "truncated", "truncate": 9, "depth": 8}, r"1..8 \(train.depth\)"),
    ({"truncate": 3}, "applies only with train.backward = 'truncated'"),
    ({"backward": "truncated", "truncate": 3, "remat": True}, "do not combine"),
])
def test_bad_backward_settings_are_refused_naming_what_is_valid(settings, message):
    with pytest.raises(ConfigError, match=message):
        parse_options(TrainSettings, settings, prefix="train.")


def test_a_truncation_deeper_than_the_solver_is_refused_before_compiling(problem):
    with pytest.raises(ConfigError, match=r"train.truncate = 9 is more than the solver's 6 iterations"):
        train(solver(problem), problem, [Stage(6, 1)], backward="truncated", truncate=9, progress=False)
