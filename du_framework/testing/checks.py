"""The checks of the conformance kit, one behaviour each (see :mod:`du_framework.testing`)."""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from ..errors import IncompatibleProblemError
from ..interfaces import Stage
from ..metrics import metric_table
from ..options import option_rows, parse_options
from ..params import learning_rates
from .problems import BareProblem

__all__ = ["SOLVER_CHECKS", "PROBLEM_CHECKS", "SCHEDULE_CHECKS", "mean_training_loss"]


def _not_applicable(reason: str) -> None:
    try:
        import pytest
    except ImportError:  # pragma: no cover - used outside pytest
        raise NotImplementedError(reason) from None
    pytest.skip(reason)


def _check_options_class(options_cls, owner: str) -> None:
    assert dataclasses.is_dataclass(options_cls), f"{owner}.Options must be a dataclass"
    assert options_cls.__dataclass_params__.frozen, f"{owner}.Options must be frozen (dataclass(frozen=True))"
    parse_options(options_cls, {})  # every option has a valid default
    for row in option_rows(options_cls):
        assert row["key"].isidentifier(), f"{owner}: option key {row['key']!r}"


# -- solvers ---------------------------------------------------------------------------------


def _settings(case):
    """The settings of the kit's short training run (the problem's own loss, descended as is)."""
    from ..settings import TrainSettings

    return TrainSettings(steps_per_stage=case.steps_per_stage, batch_size=case.batch_size, log_loss=False)


@functools.cache
def _trained(case):
    from ..engine import clear_program_cache, train
    from ..schedules import Incremental

    clear_program_cache()  # another case of the same structure must not have compiled it already
    return train(case.build(), case.make_problem(), Incremental(), _settings(case), key=0, progress=False)


def _require_trainable(case) -> None:
    if not case.build().is_trainable:
        _not_applicable(f"{case.solver.name} learns nothing (a classical method)")


def check_options_declared(case) -> None:
    """``Options`` is a frozen dataclass whose defaults pass validation."""
    _check_options_class(case.solver.Options, case.solver.name)


def check_capability_honoured(case) -> None:
    """A problem without the required capability is refused, naming both; the case's problem is accepted."""
    problem = case.make_problem()
    assert case.solver.fits(problem), f"{case.solver.name} does not fit its own check problem {problem.name!r}"
    if not case.solver.capabilities():
        _not_applicable(f"{case.solver.name} requires no capability")
    try:
        case.solver(case.make_options(), problem=BareProblem(), depth=case.depth)
    except IncompatibleProblemError as error:
        message = str(error)
        assert case.solver.name in message and BareProblem.name in message, (
            f"the refusal must name the solver and the problem: {message!r}")
        assert all(c.__name__ in message for c in case.solver.capabilities()), (
            f"the refusal must name the capability: {message!r}")
    else:
        raise AssertionError(f"{case.solver.name} accepted a problem lacking its capability")


def check_state_contract(case) -> None:
    """``step`` returns a state of exactly the structure, shapes and dtypes of ``init_state``'s."""
    solver, problem = case.build(), case.make_problem()
    instance = jax.eval_shape(lambda: problem.sample(jax.random.key(0), case.batch_size))

    def first_step(instance):
        context = solver.prepare(problem, instance)
        state = solver.init_state(problem, context)
        return state, solver.step(problem, context, state, jnp.int32(0)), solver.estimate(state)

    before, after, estimate = jax.eval_shape(first_step, instance)
    assert jax.tree.structure(before) == jax.tree.structure(after), (
        f"step changed the state's structure: {jax.tree.structure(before)} -> {jax.tree.structure(after)}")
    for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(after)):
        assert (a.shape, a.dtype) == (b.shape, b.dtype), f"step changed a state leaf: {a} -> {b}"
    assert estimate.shape == (case.batch_size, problem.dim), (
        f"estimate has shape {estimate.shape}, expected {(case.batch_size, problem.dim)}")


def check_learning_rates_declared(case) -> None:
    """Every learned parameter has a learning rate among the solver's options; Flax layers sit in a ``Network``."""
    from ..networks import check_networks_declared

    _require_trainable(case)
    check_networks_declared(case.build())
    rates = learning_rates(case.build())
    assert all(rate > 0 for rate in rates.values()), f"learning rates must be > 0: {rates}"


def check_single_compilation(case) -> None:
    """A whole incremental schedule (depth changes each stage) compiles the step once."""
    _require_trainable(case)
    result = _trained(case)
    assert result.compilations == 1, f"training traced {result.compilations} times across {case.depth} stages"


def check_parameters_stable(case) -> None:
    """Training keeps every parameter's shape and dtype."""
    from ..interfaces import flat_params

    _require_trainable(case)
    before = {k: (v.shape, v.dtype) for k, v in flat_params(case.build()).items()}
    after = {k: (v.shape, v.dtype) for k, v in flat_params(_trained(case).solver).items()}
    assert before == after, f"parameters changed shape or dtype: {before} -> {after}"


def check_gradients_finite_nonzero(case) -> None:
    """At full depth every learned parameter gets a finite, nonzero gradient (after a short training)."""
    from ..engine import split_solver, unroll
    from ..interfaces import flat_params

    _require_trainable(case)
    solver, problem = _trained(case).solver, case.make_problem()
    merge, params, rest = split_solver(solver)
    instance = problem.sample(jax.random.key(7), case.batch_size)

    def loss(params):
        x, _ = unroll(merge(params, rest), problem, instance)
        return problem.loss(x, instance)

    grads = flat_params(merge(jax.grad(loss)(params), rest))
    for name, grad in grads.items():
        grad = np.asarray(grad)
        assert np.all(np.isfinite(grad)), f"gradient of {name} is not finite: {grad}"
        assert np.any(grad != 0), f"gradient of {name} is identically zero"


def mean_training_loss(solver, problem, loss_of, batch_size: int, batches: int = 2) -> float:
    """``loss_of`` at full depth, averaged over ``batches`` fixed batches (a host float; what
    :func:`check_loss_falls` compares). Batch ``b`` is ``problem.sample(split(key(11), batches)[b], batch_size)``."""
    from ..engine import split_solver, unroll

    merge, params, rest = split_solver(solver)

    @jax.jit
    def losses(params, rest, problem):
        def one(key):
            instance = problem.sample(key, batch_size)
            x, _ = unroll(merge(params, rest), problem, instance)
            return jnp.asarray(loss_of(x, instance), jnp.float32)

        return jax.lax.map(one, jax.random.split(jax.random.key(11), batches))

    return float(np.mean(np.asarray(losses(params, rest, problem), np.float64)))


def check_loss_falls(case) -> None:
    """The training loss at full depth, on fixed batches, is lower after the short training than before.

    The loss is the one the solver is trained on (the problem's own ``loss``,
    or the metric named by the settings' ``loss``), so a problem that reports
    no MSE (error rates, a cross-entropy loss) is checked by its own measure.
    """
    from ..engine.program import training_loss

    _require_trainable(case)
    problem = case.make_problem()
    loss_of = training_loss(problem, _settings(case).loss)
    # The training run draws its networks' weights from its key (0): "before" starts from those.
    before = mean_training_loss(_as_initialised(case.build(), 0), problem, loss_of, case.batch_size)
    after = mean_training_loss(_trained(case).solver, problem, loss_of, case.batch_size)
    assert np.isfinite(after), f"the training loss at depth {case.depth} is not finite after training: {after}"
    assert after < before, f"training did not lower the training loss at depth {case.depth}: {before:.4g} -> {after:.4g}"


def _as_initialised(solver, seed: int):
    """``solver`` with its networks' weights as a training run of key ``seed`` draws them."""
    from ..engine import split_solver
    from ..engine.keys import host_key
    from ..networks import initialise_networks

    merge, params, rest = split_solver(solver)
    return merge(initialise_networks(params, solver, host_key(seed)), rest)


def _require_networks(case, per_slot: bool = False):
    from ..networks import networks

    found = {path: network for path, network in networks(case.build()).items()
             if not per_slot or network.slots > 1}
    if not found:
        _not_applicable(f"{case.solver.name} holds no network" + (" with one copy per slot" if per_slot else ""))
    return found


def check_network_weights_drawn_from_seed(case) -> None:
    """Every network's weights are drawn from the run's key: the same key gives the same, another key others."""
    from ..engine import split_solver
    from ..engine.keys import host_key
    from ..networks import initialise_networks, params_at

    found = _require_networks(case)
    solver = case.build()
    _, params, _ = split_solver(solver)

    def weights(seed):
        drawn = initialise_networks(params, solver, host_key(seed))
        return {path: jax.tree.leaves(params_at(drawn, path)) for path in found}

    first, again, other = weights(1), weights(1), weights(2)
    for path in found:
        assert all(np.array_equal(a, b) for a, b in zip(first[path], again[path])), (
            f"network {path}: the same key drew different weights")
        assert not all(np.array_equal(a, b) for a, b in zip(first[path], other[path])), (
            f"network {path}: two keys drew the same weights (an ensemble over seeds would start its members alike)")


def check_network_copies_independent(case) -> None:
    """A network with one copy per slot: iteration ``k`` uses copy ``k mod P`` alone.

    After ``t`` active iterations the loss has a nonzero gradient with respect to
    copy ``t - 1`` and none with respect to the copies of later iterations.
    """
    from ..engine import split_solver, unroll
    from ..networks import params_at

    found = _require_networks(case, per_slot=True)
    solver, problem = _as_initialised(case.build(), 0), case.make_problem()
    merge, params, rest = split_solver(solver)
    instance = problem.sample(jax.random.key(7), case.batch_size)

    @jax.jit
    def gradient(params, active_depth):
        def loss(params):
            x, _ = unroll(merge(params, rest), problem, instance, active_depth)
            return problem.loss(x, instance)
        return jax.grad(loss)(params)

    for path, network in found.items():
        for active in range(1, min(network.slots, case.depth) + 1):
            copies = [np.abs(np.asarray(leaf)).reshape(network.slots, -1).max(axis=1)
                      for leaf in jax.tree.leaves(params_at(gradient(params, active), path))]
            largest = np.max(np.stack(copies), axis=0)  # the largest gradient entry of each copy
            assert largest[active - 1] > 0, (
                f"network {path}: after {active} active iteration(s), copy {active - 1} gets no gradient")
            assert not np.any(largest[active:]), (
                f"network {path}: after {active} active iteration(s), copies {np.flatnonzero(largest[active:]) + active}"
                f" of later iterations get a gradient: iteration k must use copy k mod {network.slots} alone")


def check_evaluation_curves(case) -> None:
    """Evaluation returns every metric of the problem, one finite value per iteration."""
    from ..engine import evaluate

    problem = case.make_problem()
    curves = evaluate(case.build(), problem, key=3, batch_size=case.batch_size, batches=1)
    assert set(curves) == set(metric_table(problem)), f"metrics {sorted(curves)}, expected {sorted(metric_table(problem))}"
    for name, curve in curves.items():
        assert curve.shape == (case.depth,), f"{name} curve shape {curve.shape}, expected ({case.depth},)"
        assert np.all(np.isfinite(curve)), f"{name} curve not finite: {curve}"


def check_reported_parameters(case) -> None:
    """``learned_parameters()`` reports finite host arrays, one name per parameter."""
    values = case.build().learned_parameters()
    for name, value in values.items():
        assert isinstance(name, str) and name, f"parameter name {name!r}"
        assert np.all(np.isfinite(np.asarray(value, np.float64))), f"parameter {name} is not finite: {value}"


SOLVER_CHECKS = (
    check_options_declared,
    check_capability_honoured,
    check_state_contract,
    check_learning_rates_declared,
    check_single_compilation,
    check_parameters_stable,
    check_gradients_finite_nonzero,
    check_loss_falls,
    check_evaluation_curves,
    check_reported_parameters,
    check_network_weights_drawn_from_seed,
    check_network_copies_independent,
)


# -- problems --------------------------------------------------------------------------------


def check_problem_options_declared(case) -> None:
    """``Options`` is a frozen dataclass whose defaults pass validation."""
    _check_options_class(case.problem.Options, case.problem.name)


def check_sample_shapes(case) -> None:
    """``sample`` returns a dict with ``target`` of shape ``(batch, dim)``; every leaf has the batch axis."""
    problem = case.build()
    instance = problem.sample(jax.random.key(0), case.batch_size)
    assert isinstance(instance, dict) and "target" in instance, f"sample must return a dict with 'target': {instance!r}"
    assert instance["target"].shape == (case.batch_size, problem.dim), (
        f"target has shape {instance['target'].shape}, expected {(case.batch_size, problem.dim)}")
    for key, leaf in instance.items():
        assert jnp.shape(leaf)[:1] == (case.batch_size,), f"instance[{key!r}] lacks the leading batch axis"
        assert np.all(np.isfinite(np.asarray(leaf))), f"instance[{key!r}] is not finite"


def check_sample_pure_and_traceable(case) -> None:
    """The same key gives the same instances, jitted or not; another key gives others."""
    problem = case.build()
    key = jax.random.key(1)
    eager = problem.sample(key, case.batch_size)
    jitted = jax.jit(lambda problem, key: problem.sample(key, case.batch_size))(problem, key)
    for name in eager:
        np.testing.assert_allclose(np.asarray(eager[name]), np.asarray(jitted[name]), rtol=1e-5, atol=1e-6)
    other = problem.sample(jax.random.key(2), case.batch_size)
    assert not np.allclose(np.asarray(eager["target"]), np.asarray(other["target"])), "two keys gave the same targets"


def check_metrics_declared(case) -> None:
    """The metrics are valid, the primary one exists, and each gives one finite value per instance."""
    problem = case.build()
    table = metric_table(problem)
    assert problem.primary() in table, f"primary metric {problem.primary()!r} is not among {sorted(table)}"
    instance = problem.sample(jax.random.key(3), case.batch_size)
    estimate = jnp.zeros_like(instance["target"])
    for name, metric in table.items():
        values = np.asarray(metric.per_instance(estimate, instance))
        assert values.shape == (case.batch_size,), f"metric {name}: per_instance gave shape {values.shape}"
        assert np.all(np.isfinite(values)), f"metric {name}: not finite at the zero estimate: {values}"
    loss = problem.loss(instance["target"], instance)
    assert np.ndim(loss) == 0 and np.isfinite(loss), f"loss at the target must be a finite scalar, got {loss}"


PROBLEM_CHECKS = (check_problem_options_declared, check_sample_shapes, check_sample_pure_and_traceable,
                  check_metrics_declared)


# -- schedules -------------------------------------------------------------------------------


def check_schedule_options_declared(case) -> None:
    """``Options`` is a frozen dataclass whose defaults pass validation."""
    _check_options_class(case.schedule.Options, case.schedule.name)


def check_stages_valid(case) -> None:
    """For depths 1..6 the stages are :class:`Stage` records within the depth, reaching it, with steps."""
    schedule = case.build()
    for depth in range(1, 7):
        stages = list(schedule.stages(depth, 3))
        assert stages, f"no stages for depth {depth}"
        assert all(isinstance(stage, Stage) for stage in stages), f"stages must be Stage records: {stages}"
        assert all(1 <= stage.active_depth <= depth for stage in stages), f"active depth outside 1..{depth}"
        assert max(stage.active_depth for stage in stages) == depth, f"depth {depth} is never trained"
        assert sum(stage.steps for stage in stages) > 0, "no optimiser step at all"


SCHEDULE_CHECKS = (check_schedule_options_declared, check_stages_valid)
