"""Metrics: how a problem scores an estimate, per instance, and how to print it.

A :class:`Metric` is declared once on a problem (its ``metrics`` attribute; the
first is the primary one unless ``primary_metric`` names another)::

    SYMBOL_ERROR_RATE = Metric(
        "ser", lambda estimate, instance: jnp.mean(decide(estimate) != instance["symbols"], axis=-1),
        label="symbol error rate", lower_is_better=True, format=".2e")

The evaluation computes every metric of the problem after every iteration on
the shared evaluation instances, in the one compiled evaluation program:

* ``per_instance(estimate, instance)`` returns one value per instance, shape
  ``(batch,)`` (traceable; ``estimate`` has shape ``(batch, dim)``);
* the reported value is the mean over all evaluation instances; with a
  ``normalizer`` it is ``mean(per_instance) / mean(normalizer)``, and with
  ``scale="db"`` it is ``10 log10`` of that ratio;
* an error rate declares ``counts_errors=True``: ``per_instance`` is then the
  number of errors of each instance and ``normalizer`` its number of trials
  (bits, symbols, frames; default one per instance), so the sums the evaluation
  accumulates are an error count and a trial count, which results report beside
  the rate and ``[evaluation] target_errors`` stops on.

:data:`MSE` and :data:`NMSE_DB` are shared built-ins; :func:`metric_table`
gives a problem's metrics by name.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["Metric", "MSE", "NMSE_DB", "squared_error", "target_energy", "metric_table"]


def squared_error(estimate: jax.Array, instance: Any) -> jax.Array:
    """``||target - estimate||^2`` per instance (summed over coordinates), shape ``(batch,)``."""
    return jnp.sum(jnp.square(estimate - instance["target"]), axis=-1)


def target_energy(estimate: jax.Array, instance: Any) -> jax.Array:
    """``||target||^2`` per instance, shape ``(batch,)``."""
    return jnp.sum(jnp.square(instance["target"]), axis=-1)


@dataclasses.dataclass(frozen=True)
class Metric:
    """A named score of an estimate against an instance.

    Attributes:
        name: the key in results files and for ``--metric`` (letters, digits, ``_``, ``-``).
        per_instance: ``(estimate, instance) -> (batch,)`` values (traceable).
        label: how tables and plot axes name it (default: ``name``).
        lower_is_better: the direction of improvement.
        format: a format spec for one value in tables (``".3e"``, ``".2f"``).
        normalizer: optional ``(estimate, instance) -> (batch,)``; the report is
            ``mean(per_instance) / mean(normalizer)``.
        scale: ``"linear"`` or ``"db"`` (``10 log10`` of the reported ratio).
        log_axis: plot on a logarithmic axis (linear metrics that span decades).
        counts_errors: an error rate: ``per_instance`` returns the number of errors of each instance and
            ``normalizer`` the number of trials (default: one per instance), so the sum of ``per_instance``
            over the evaluation is an error count (linear scale only).
    """

    name: str
    per_instance: Callable[[jax.Array, Any], jax.Array]
    label: str = ""
    lower_is_better: bool = True
    format: str = ".3e"
    normalizer: Callable[[jax.Array, Any], jax.Array] | None = None
    scale: Literal["linear", "db"] = "linear"
    log_axis: bool = False
    counts_errors: bool = False

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name or not all(c.isalnum() or c in "_-" for c in self.name):
            raise ValueError(f"a metric name is letters, digits, '_' and '-', got {self.name!r}")
        if not callable(self.per_instance):
            raise TypeError(f"metric {self.name!r}: per_instance must be callable, got {self.per_instance!r}")
        if self.normalizer is not None and not callable(self.normalizer):
            raise TypeError(f"metric {self.name!r}: normalizer must be callable or None")
        if self.scale not in ("linear", "db"):
            raise ValueError(f"metric {self.name!r}: scale must be 'linear' or 'db', got {self.scale!r}")
        if not isinstance(self.counts_errors, bool):
            raise TypeError(f"metric {self.name!r}: counts_errors must be True or False, got {self.counts_errors!r}")
        if self.counts_errors and self.scale != "linear":
            raise ValueError(f"metric {self.name!r}: a metric that counts errors is an error rate on the linear "
                             f"scale; leave scale='linear' (plot it with log_axis=True)")
        import re

        # The pattern the run loader accepts (du_framework.workbench.loading): a short float spec such as
        # ".3e" or ".2f"; a longer precision would write runs that `unfold plot` refuses.
        if not isinstance(self.format, str) or not re.fullmatch(r"[+\- ]?#?0?\d{0,2},?(?:\.\d{1,2})?[eEfFgG%]?",
                                                                 self.format):
            raise ValueError(f"metric {self.name!r}: format {self.format!r} is not a short float format spec "
                             f"such as '.3e' or '.2f' (at most two digits of width and of precision)")
        try:
            format(1.0, self.format)
        except (ValueError, TypeError) as error:
            raise ValueError(f"metric {self.name!r}: format {self.format!r} is not a float format spec") from error

    @property
    def title(self) -> str:
        return self.label or self.name

    def statistics(self, estimate: jax.Array, instance: Any) -> tuple[jax.Array, jax.Array]:
        """Batch sums ``(sum per_instance, sum normalizer)`` as float32 scalars (traceable)."""
        values = jnp.asarray(self.per_instance(estimate, instance), jnp.float32)
        normal = (jnp.asarray(self.normalizer(estimate, instance), jnp.float32) if self.normalizer is not None
                  else jnp.ones_like(values))
        return jnp.sum(values), jnp.sum(normal)

    def finish(self, total: np.ndarray, normal: np.ndarray) -> np.ndarray:
        """The reported values from accumulated sums (host, float64)."""
        ratio = np.asarray(total, np.float64) / np.asarray(normal, np.float64)
        if self.scale == "db":
            return 10 * np.log10(np.maximum(ratio, np.finfo(float).tiny))
        return ratio

    def show(self, value: float) -> str:
        """One value formatted for a table."""
        return format(float(value), self.format)

    def describe(self) -> dict[str, Any]:
        """JSON-friendly facts (for results files); ``counts_errors`` only for a metric that counts errors."""
        facts = {"label": self.title, "lower_is_better": self.lower_is_better, "scale": self.scale,
                 "normalized": self.normalizer is not None, "log_axis": self.log_axis, "format": self.format}
        if self.counts_errors:
            facts["counts_errors"] = True
        return facts


MSE = Metric("mse", squared_error, label="MSE", format=".3e", log_axis=True)
"""Mean over instances of ``||target - x^(t)||^2``."""

NMSE_DB = Metric("nmse_db", squared_error, label="NMSE (dB)", format=".2f", normalizer=target_energy, scale="db")
"""``10 log10(mean ||target - x^(t)||^2 / mean ||target||^2)``."""


def metric_table(problem: Any) -> dict[str, Metric]:
    """The metrics a problem declares, by name (refusing duplicates and non-metrics)."""
    metrics = tuple(getattr(problem, "metrics", (MSE,)))
    table: dict[str, Metric] = {}
    for metric in metrics:
        if not isinstance(metric, Metric):
            raise TypeError(f"problem {getattr(problem, 'name', problem)!r} declares {metric!r} in metrics; "
                            f"each must be a du_framework.Metric")
        if metric.name in table:
            raise ValueError(f"problem {getattr(problem, 'name', problem)!r} declares metric {metric.name!r} twice")
        table[metric.name] = metric
    if not table:
        raise ValueError(f"problem {getattr(problem, 'name', problem)!r} declares no metric")
    return table

