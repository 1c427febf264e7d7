"""The conformance kit itself: a problem without an MSE passes it; expected failures by either name."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from core_solvers import StepGD

from du_framework import ConfigError, Metric, Problem, QuadraticProblem, option
from du_framework.engine import evaluate
from du_framework.metrics import metric_table
from du_framework.testing import ProblemCase, ScheduleCase, SolverCase, checks, parametrize_with_checks
from du_framework.schedules import Incremental


def _bit_errors(estimate, instance):
    return jnp.mean((estimate > 0) != (instance["target"] > 0), axis=-1).astype(jnp.float32)


BER = Metric("ber", _bit_errors, label="bit error rate", format=".2e")


class BitDetection(Problem, QuadraticProblem):
    """Antipodal bits ``x`` seen as ``y = A x + sigma n``; a cross-entropy loss and a bit error rate, no MSE.

    As a quadratic problem: ``H = A^T A + sigma^2 I``, ``b = A^T y`` (the regularised
    least-squares objective whose minimiser is the LMMSE estimate).
    """

    @dataclasses.dataclass(frozen=True)
    class Options:
        n: int = option(4, ge=1, help="bits per instance")
        m: int = option(8, ge=1, help="observations per instance")
        sigma: float = option(0.5, gt=0, help="noise standard deviation")

    name = "test-bit-detection"
    metrics = (BER,)

    def __init__(self, options):
        matrix = np.random.default_rng(4).standard_normal((options.m, options.n)) / np.sqrt(options.m)
        hessian = matrix.T @ matrix + options.sigma**2 * np.eye(options.n)
        eigenvalues = np.linalg.eigvalsh(hessian)
        self.n, self.m, self.sigma = options.n, options.m, float(options.sigma)
        self.bounds = (float(eigenvalues[0]), float(eigenvalues[-1]))
        self.A = jnp.asarray(matrix, jnp.float32)
        self.H = jnp.asarray(hessian, jnp.float32)

    @classmethod
    def from_options(cls, options):
        return cls(options)

    @property
    def dim(self):
        return self.n

    def sample(self, key, batch_size):
        bits_key, noise_key = jax.random.split(key)
        x = 2.0 * jax.random.bernoulli(bits_key, 0.5, (batch_size, self.n)).astype(jnp.float32) - 1.0
        y = x @ self.A.T + self.sigma * jax.random.normal(noise_key, (batch_size, self.m), jnp.float32)
        return {"y": y, "target": x}

    def loss(self, estimate, instance):
        """Binary cross-entropy of the bits with logits ``4 x``, summed over bits, mean over the batch."""
        return jnp.mean(jnp.sum(jax.nn.softplus(-4.0 * instance["target"] * estimate), axis=-1))

    def hessian_apply(self, x):
        return x @ self.H

    def linear_term(self, instance):
        return instance["y"] @ self.A

    def spectrum_bounds(self):
        return self.bounds


BIT_CASES = [ProblemCase(BitDetection), SolverCase(StepGD, problem=BitDetection, id="bits")]


def test_the_bit_problem_declares_no_mse():
    problem = BitDetection(BitDetection.Options())
    assert set(metric_table(problem)) == {"ber"}
    with pytest.raises(ConfigError, match="has no metric 'mse'"):  # what the kit used to evaluate
        evaluate(StepGD(StepGD.Options(), problem=problem, depth=3), problem, key=0, batch_size=4, batches=1,
                 metrics=("mse",))


@parametrize_with_checks(BIT_CASES)
def test_a_problem_without_mse_passes_the_kit(case, check):
    check(case)


def test_the_loss_check_measures_the_training_loss_against_numpy():
    # The kit's loss at full depth, recomputed in float64: GD from x = 0 with the solver's steps.
    case = SolverCase(StepGD, problem=BitDetection, depth=3)
    problem, solver = case.make_problem(), case.build()
    measured = checks.mean_training_loss(solver, problem, problem.loss, case.batch_size)
    A, H = np.asarray(problem.A, np.float64), np.asarray(problem.H, np.float64)
    eta = np.asarray(solver.eta[...], np.float64)
    values = []
    for key in jax.random.split(jax.random.key(11), 2):
        instance = problem.sample(key, case.batch_size)
        y, t = np.asarray(instance["y"], np.float64), np.asarray(instance["target"], np.float64)
        x = np.zeros_like(t)
        for k in range(3):
            x = x - eta[k] * (x @ H - y @ A)
        values.append(np.mean(np.sum(np.logaddexp(0.0, -4.0 * t * x), axis=-1)))
    assert measured == pytest.approx(np.mean(values), rel=1e-5)


# -- expected failures ---------------------------------------------------------------------------


def _marks(decorator):
    """``{test id: xfail reason or None}`` of a ``parametrize_with_checks`` decorator."""
    _, params = decorator.args
    return {p.id: next((m.kwargs["reason"] for m in p.marks if m.name == "xfail"), None) for p in params}


@pytest.mark.parametrize("key", ["check_loss_falls", "loss_falls", "test-step-gd-loss_falls"])
def test_an_expected_failure_is_named_in_full_or_as_the_test_ids_show_it(key):
    case = SolverCase(StepGD, expected_failures={key: "known: too few steps"})
    assert case.expected_failures == (("check_loss_falls", "known: too few steps"),)
    marks = _marks(parametrize_with_checks([case]))
    assert marks["test-step-gd-loss_falls"] == "known: too few steps"
    assert [reason for test_id, reason in marks.items() if test_id != "test-step-gd-loss_falls"] == \
        [None] * (len(checks.SOLVER_CHECKS) - 1)


def test_an_expected_failure_of_a_problem_or_schedule_case_by_its_short_name():
    problem = ProblemCase(BitDetection, expected_failures={"sample_shapes": "why"})
    assert problem.expected_failures == (("check_sample_shapes", "why"),)
    assert _marks(parametrize_with_checks([problem]))["test-bit-detection-sample_shapes"] == "why"
    schedule = ScheduleCase(Incremental, expected_failures={"check_stages_valid": "why"})
    assert schedule.expected_failures == (("check_stages_valid", "why"),)


def test_an_expected_failure_that_names_no_check_is_refused_with_the_valid_names():
    with pytest.raises(ConfigError) as caught:
        SolverCase(StepGD, expected_failures={"loss_fall": "typo"})
    message = str(caught.value)
    assert "'loss_fall' is not a check of a SolverCase" in message and "did you mean 'loss_falls'" in message
    assert all(check.__name__ in message for check in checks.SOLVER_CHECKS)
    # A solver check is no check of a problem case.
    with pytest.raises(ConfigError, match=r"'check_loss_falls' is not a check of a ProblemCase.*check_sample_shapes"):
        ProblemCase(BitDetection, expected_failures={"check_loss_falls": "wrong kind"})


def test_an_expected_failure_named_twice_or_without_a_reason_is_refused():
    with pytest.raises(ConfigError, match="names check_loss_falls twice"):
        SolverCase(StepGD, expected_failures={"loss_falls": "a", "check_loss_falls": "b"})
    with pytest.raises(ConfigError, match="the reason must be a non-empty string"):
        SolverCase(StepGD, expected_failures={"loss_falls": ""})
