"""Evaluation: every metric of the problem after every iteration, on shared fresh instances.

One module-level jitted program, its structure static (the solver's graph, the
metrics, the batch size and count), so JAX's jit cache compiles it once per
solver structure and problem shape: a second evaluation of the same structure
compiles nothing.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from ..errors import ConfigError, nearest
from ..interfaces import Problem, check_fit, UnfoldedSolver
from ..metrics import Metric, metric_table
from .keys import host_key
from .unroll import unroll

__all__ = ["evaluate"]


@functools.partial(jax.jit, static_argnames=("graphdef", "metrics", "batch_size", "batches"))
def _curves(param_state, rest, problem, key, *, graphdef, metrics: tuple[Metric, ...], batch_size: int,
            batches: int):
    module = nnx.merge(graphdef, param_state, rest)

    def one_batch(total, batch_key):
        instance = problem.sample(batch_key, batch_size)

        def record(x):
            return tuple(jnp.stack(metric.statistics(x, instance)) for metric in metrics)

        _, recorded = unroll(module, problem, instance, record=record)
        return jax.tree.map(jnp.add, total, recorded), None

    zeros = tuple(jnp.zeros((module.depth, 2), jnp.float32) for _ in metrics)
    total, _ = jax.lax.scan(one_batch, zeros, jax.random.split(key, batches))
    return total


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
    check_fit(solver, problem)
    table = metric_table(problem)
    names = list(metrics) if metrics is not None else list(table)
    for name in names:
        if name not in table:
            hint = nearest(name, table)
            raise ConfigError(f"problem {problem.name!r} has no metric {name!r}"
                              + (f" (did you mean {hint!r}?)" if hint else "") + f"; its metrics: {', '.join(table)}")
    if isinstance(key, (int, np.integer)):
        key = host_key(int(key))
    graphdef, param_state, rest = nnx.split(solver, nnx.Param, ...)
    chosen = tuple(table[name] for name in names)
    totals = _curves(param_state, rest, problem, key, graphdef=graphdef, metrics=chosen, batch_size=batch_size,
                     batches=batches)
    totals = jax.device_get(totals)  # one transfer; slicing on the host compiles nothing
    return {metric.name: metric.finish(total[:, 0], total[:, 1]) for metric, total in zip(chosen, totals)}
