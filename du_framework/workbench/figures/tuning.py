"""Figures of a tuning study: the optimisation history and the importance of the searched settings.

They take the plain records of :mod:`du_framework.workbench.tuning` (a study's searches, each
with its ``trials``, ``direction``, ``label`` and ``name``; a metric with ``title``,
``score`` and ``lower_is_better``), read by attribute, and draw with matplotlib (Agg).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..text import plain_text
from .style import pyplot, styled

__all__ = ["best_so_far", "history_figure", "importance_figure"]


def best_so_far(trials: list[Any], lower_is_better: bool) -> tuple[np.ndarray, np.ndarray]:
    """``(trial numbers, metric values)`` of the best complete trial after each complete trial, by score
    (``value``; ties keep the earlier trial), in trial order."""
    done = sorted((t for t in trials if t.state == "complete" and t.value is not None and t.metric_value is not None),
                  key=lambda t: t.number)
    numbers, values, best = [], [], None
    for trial in done:
        better = best is None or (trial.value < best.value if lower_is_better else trial.value > best.value)
        best = trial if better else best
        numbers.append(trial.number)
        values.append(best.metric_value)
    return np.asarray(numbers, np.int64), np.asarray(values, np.float64)


def history_figure(searches: Mapping[str, Any], metric: Any, *, style: Any = None):
    """One panel per solver: the metric of every complete trial versus its number (the configuration as
    given and the rate grid's trials marked apart), the best so far as a step line, and the trials without
    a score (pruned, failed) as crosses along the bottom. A log y axis for a metric scored as ``log10``."""
    chosen = [(label, search) for label, search in searches.items() if search.trials]
    with styled(style):
        plt = pyplot()
        from matplotlib.ticker import MaxNLocator

        fig, axes = plt.subplots(max(1, len(chosen)), 1, figsize=(6.4, 2.6 * max(1, len(chosen)) + 0.4),
                                 squeeze=False)
        colors = plt.rcParams["axes.prop_cycle"].by_key().get("color", ["k"])
        for row, (label, search) in enumerate(chosen):
            ax = axes[row][0]
            color = colors[row % len(colors)]
            scored = [t for t in search.trials if t.state == "complete" and t.metric_value is not None]
            # a search with nothing to search runs one trial: the configuration as given
            given = [t for t in scored if t.baseline or not search.dimensions]
            kinds = [("the configuration as given", given, {"marker": "*", "s": 110}),
                     ("rate grid", [t for t in scored if t.grid and t not in given], {"marker": "s", "s": 30}),
                     ("sampled", [t for t in scored if not t.grid and t not in given], {"marker": "o", "s": 26})]
            for name, members, look in kinds:
                if members:
                    ax.scatter([t.number for t in members], [t.metric_value for t in members], color=color,
                               edgecolors="black" if name.startswith("the configuration") else color,
                               linewidths=0.6, zorder=3, label=name, **look)
            numbers, best = best_so_far(search.trials, metric.lower_is_better)
            last = max(t.number for t in search.trials)
            if numbers.size:
                ax.step(np.append(numbers, last), np.append(best, best[-1]), where="post", color="black",
                        linewidth=1.2, zorder=2, label="best so far")
            unscored = [t.number for t in search.trials if t not in scored]
            if unscored:
                ax.scatter(unscored, np.full(len(unscored), 0.03), transform=ax.get_xaxis_transform(), marker="x",
                           color="0.45", s=22, zorder=3, label="pruned or failed (no score)")
            log = metric.score == "log10" and all(t.metric_value > 0 for t in scored)
            if log and scored:
                ax.set_yscale("log")
            ax.set_title(plain_text(f"{label} ({search.name})"))
            ax.set_ylabel(plain_text(metric.title))
            ax.set_xlim(-0.5, last + 0.5)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.legend(loc="best", fontsize="x-small")
        axes[-1][0].set_xlabel("trial")
        if not chosen:
            axes[0][0].text(0.5, 0.5, "no trials", ha="center", va="center", transform=axes[0][0].transAxes)
        fig.tight_layout()
    return fig


def importance_figure(importances: Mapping[str, Mapping[str, float]], *, style: Any = None):
    """One panel per solver: a horizontal bar per searched setting, its importance (normalised to sum to 1),
    the most important on top."""
    chosen = [(label, values) for label, values in importances.items() if values]
    with styled(style):
        plt = pyplot()
        heights = [0.9 + 0.32 * len(values) for _, values in chosen] or [1.5]
        fig, axes = plt.subplots(max(1, len(chosen)), 1, figsize=(6.4, sum(heights) + 0.5), squeeze=False,
                                 gridspec_kw={"height_ratios": heights})
        colors = plt.rcParams["axes.prop_cycle"].by_key().get("color", ["k"])
        for row, (label, values) in enumerate(chosen):
            ax = axes[row][0]
            names = list(values)[::-1]  # the most important on top
            shares = [float(values[name]) for name in names]
            ax.barh(range(len(names)), shares, color=colors[row % len(colors)], height=0.6)
            ax.set_yticks(range(len(names)), [plain_text(name) for name in names])
            for y, share in enumerate(shares):
                ax.text(share + 0.01, y, f"{share:.2f}", va="center", fontsize="x-small")
            ax.set_xlim(0, 1.08)
            ax.grid(axis="y", visible=False)
            ax.set_title(plain_text(label))
        axes[-1][0].set_xlabel("importance (normalised: the settings' shares sum to 1)")
        fig.tight_layout()
    return fig
