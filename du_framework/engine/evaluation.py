"""Evaluation: every metric of the problem after every iteration, on shared fresh instances.

One module-level jitted program, its structure static (the solver's graph, the
metrics, the batch size and count), so JAX's jit cache compiles it once per
solver structure and problem shape: a second evaluation of the same structure
compiles nothing.

:func:`evaluate_counts` also returns the accumulated sums (for a metric that
counts errors, the error and trial counts) and may evaluate batch after batch
until a target error count or a callback stops it (the stopping rule of BER
simulations): a second program, compiled once per solver structure too, runs a
fixed chunk of batches per call and returns each batch's sums, which the host
accumulates in float64 and checks after every batch.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from ..errors import ConfigError, nearest
from ..interfaces import Problem, check_fit, UnfoldedSolver
from ..metrics import Metric, metric_table
from .keys import host_key
from .unroll import unroll

__all__ = ["evaluate", "evaluate_counts", "Evaluation", "EVALUATION_CHUNK"]

EVALUATION_CHUNK = 8
"""Batches per compiled call when evaluating until a target (the last call is padded, its extra batches unused)."""


def _batch_statistics(module, problem, batch_key, metrics: tuple[Metric, ...], batch_size: int):
    """One fresh batch's ``(sum per_instance, sum normalizer)`` per metric after every iteration, ``(depth, 2)``."""
    instance = problem.sample(batch_key, batch_size)

    def record(x):
        return tuple(jnp.stack(metric.statistics(x, instance)) for metric in metrics)

    _, recorded = unroll(module, problem, instance, record=record)
    return recorded


@functools.partial(jax.jit, static_argnames=("graphdef", "metrics", "batch_size", "batches"))
def _curves(param_state, rest, problem, key, *, graphdef, metrics: tuple[Metric, ...], batch_size: int,
            batches: int):
    module = nnx.merge(graphdef, param_state, rest)

    def one_batch(total, batch_key):
        return jax.tree.map(jnp.add, total, _batch_statistics(module, problem, batch_key, metrics, batch_size)), None

    zeros = tuple(jnp.zeros((module.depth, 2), jnp.float32) for _ in metrics)
    total, _ = jax.lax.scan(one_batch, zeros, jax.random.split(key, batches))
    return total


@functools.partial(jax.jit, static_argnames=("graphdef", "metrics", "batch_size"))
def _batch_sums(param_state, rest, problem, keys, *, graphdef, metrics: tuple[Metric, ...], batch_size: int):
    """Each batch's sums (one per key, in order), per metric ``(len(keys), depth, 2)``."""
    module = nnx.merge(graphdef, param_state, rest)

    def one_batch(_, batch_key):
        return None, _batch_statistics(module, problem, batch_key, metrics, batch_size)

    _, per_batch = jax.lax.scan(one_batch, None, keys)
    return per_batch


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """What :func:`evaluate_counts` measured.

    Attributes:
        values: every metric's reported curve, ``(depth,)`` float64 by name (what :func:`evaluate` returns).
        sums: per metric, the sum of ``per_instance`` over every evaluated instance, ``(depth,)`` float64: for
            a metric that counts errors, the error count after each iteration.
        normals: per metric, the sum of its ``normalizer`` (the number of instances without one): for a
            metric that counts errors, the number of trials.
        batches: batches evaluated.
        stopped: why the evaluation ended: ``"batches"`` (the fixed count), ``"target"`` (the error count
            reached ``target_errors``), ``"until"`` (the callback said so) or ``"max_batches"``.
    """

    values: dict[str, np.ndarray]
    sums: dict[str, np.ndarray]
    normals: dict[str, np.ndarray]
    batches: int
    stopped: str

    def errors(self, name: str) -> np.ndarray:
        """The error count of metric ``name`` after each iteration (the sum of its ``per_instance``)."""
        return self.sums[name]

    def trials(self, name: str) -> np.ndarray:
        """The number of trials of metric ``name`` after each iteration (the sum of its ``normalizer``)."""
        return self.normals[name]


def _chosen_metrics(problem: Problem, metrics: Sequence[str] | None) -> tuple[Metric, ...]:
    table = metric_table(problem)
    names = list(metrics) if metrics is not None else list(table)
    for name in names:
        if name not in table:
            hint = nearest(name, table)
            raise ConfigError(f"problem {problem.name!r} has no metric {name!r}"
                              + (f" (did you mean {hint!r}?)" if hint else "") + f"; its metrics: {', '.join(table)}")
    return tuple(table[name] for name in names)


def _finished(chosen: tuple[Metric, ...], sums: Sequence[np.ndarray], normals: Sequence[np.ndarray], batches: int,
              stopped: str) -> Evaluation:
    return Evaluation({m.name: m.finish(total, normal) for m, total, normal in zip(chosen, sums, normals)},
                      {m.name: np.asarray(total, np.float64) for m, total in zip(chosen, sums)},
                      {m.name: np.asarray(normal, np.float64) for m, normal in zip(chosen, normals)}, batches, stopped)


def evaluate_counts(solver: UnfoldedSolver, problem: Problem, *, key: jax.Array | int, batch_size: int = 100,
                    batches: int = 10, metrics: Sequence[str] | None = None, target_errors: int | None = None,
                    max_batches: int = 1000, error_metric: str | None = None,
                    until: Callable[[Evaluation], bool] | None = None) -> Evaluation:
    """Every metric of ``problem`` after each iteration, with the sums behind each value.

    Without ``target_errors`` and ``until`` it evaluates ``batches`` batches exactly as :func:`evaluate`
    (the same instances, the same program, the same values). With ``target_errors`` (a count >= 1) it
    evaluates batch after batch, batch ``b`` being ``problem.sample(jax.random.split(key, max_batches)[b],
    batch_size)``, and stops after the first batch at which the error count of ``error_metric`` (default:
    the problem's primary metric; it must count errors, see :class:`~du_framework.Metric`) after the final
    iteration reaches ``target_errors``, or after ``max_batches`` batches; ``until(evaluation_so_far)``
    returning true stops it the same way. The batches run ``EVALUATION_CHUNK`` per compiled call, one
    program per solver structure and problem shape whatever the number of batches.

    Raises:
        ConfigError: an unknown metric name; ``target_errors`` with a metric that does not count errors,
            or ``target_errors`` / ``max_batches`` below 1.
    """
    check_fit(solver, problem)
    problem = problem.held_out()  # data kept apart from training, for a problem that has some
    chosen = _chosen_metrics(problem, metrics)
    if isinstance(key, (int, np.integer)):
        key = host_key(int(key))
    graphdef, param_state, rest = nnx.split(solver, nnx.Param, ...)
    if target_errors is None and until is None:
        totals = _curves(param_state, rest, problem, key, graphdef=graphdef, metrics=chosen, batch_size=batch_size,
                         batches=batches)
        totals = jax.device_get(totals)  # one transfer; slicing on the host compiles nothing
        return _finished(chosen, [t[:, 0] for t in totals], [t[:, 1] for t in totals], batches, "batches")
    counted = _counted_metric(problem, chosen, error_metric, target_errors, max_batches)
    keys = jax.random.split(key, max_batches)
    chunk = min(EVALUATION_CHUNK, max_batches)
    sums = [np.zeros(solver.depth, np.float64) for _ in chosen]
    normals = [np.zeros(solver.depth, np.float64) for _ in chosen]
    done = 0
    while done < max_batches:
        indices = np.minimum(np.arange(done, done + chunk), max_batches - 1)  # the last call padded, its extra unused
        per_batch = jax.device_get(_batch_sums(param_state, rest, problem, keys[indices], graphdef=graphdef,
                                               metrics=chosen, batch_size=batch_size))
        for row in range(min(chunk, max_batches - done)):
            for i, statistics in enumerate(per_batch):
                sums[i] += statistics[row, :, 0]
                normals[i] += statistics[row, :, 1]
            done += 1
            if target_errors is not None and sums[counted][-1] >= target_errors:
                return _finished(chosen, sums, normals, done, "target")
            if until is not None and until(_finished(chosen, sums, normals, done, "until")):
                return _finished(chosen, sums, normals, done, "until")
    return _finished(chosen, sums, normals, done, "max_batches")


def _counted_metric(problem: Problem, chosen: tuple[Metric, ...], error_metric: str | None,
                    target_errors: int | None, max_batches: int) -> int:
    """The position in ``chosen`` of the metric whose errors are counted (``-1`` without a target)."""
    if isinstance(max_batches, bool) or not isinstance(max_batches, (int, np.integer)) or max_batches < 1:
        raise ConfigError(f"max_batches must be a whole number >= 1, got {max_batches!r}")
    if target_errors is None:
        return -1
    if isinstance(target_errors, bool) or not isinstance(target_errors, (int, np.integer)) or target_errors < 1:
        raise ConfigError(f"target_errors must be a whole number of errors >= 1, got {target_errors!r}")
    name = error_metric or problem.primary()
    names = [m.name for m in chosen]
    if name not in names:
        raise ConfigError(f"target_errors counts the errors of metric {name!r}, which is not among the metrics "
                          f"evaluated ({', '.join(names)})")
    if not chosen[names.index(name)].counts_errors:
        counting = [m.name for m in chosen if m.counts_errors]
        raise ConfigError(f"target_errors counts errors, but metric {name!r} of problem {problem.name!r} does not "
                          f"count errors (Metric.counts_errors)" + (f"; metrics that do: {', '.join(counting)}"
                                                                     if counting else "; none of its metrics does"))
    return names.index(name)


def evaluate(solver: UnfoldedSolver, problem: Problem, *, key: jax.Array | int, batch_size: int = 100,
             batches: int = 10, metrics: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """Every metric of ``problem`` after each iteration ``t = 1..depth``, by metric name.

    Batch ``b`` is ``problem.sample(jax.random.split(key, batches)[b], batch_size)``:
    the instances depend only on ``key``, ``batch_size`` and ``batches``, so every
    solver evaluated with the same arguments sees the same instances. Each curve
    is a float64 host array of shape ``(depth,)`` (see :class:`~du_framework.Metric`
    for how values are averaged).

    Args:
        metrics: names of the metrics to compute (default: all the problem declares).

    Raises:
        ConfigError: a name in ``metrics`` is not a metric of the problem.
    """
    return evaluate_counts(solver, problem, key=key, batch_size=batch_size, batches=batches, metrics=metrics).values
