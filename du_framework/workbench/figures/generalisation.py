"""The generalisation figure (``unfold generalise``): a metric versus depth, one line per solver, the trained
depth marked, one panel per problem setting; each solver in the look it has in the run's other figures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..text import plain_text
from .axes import place_legend, set_limits
from .saving import save_figure
from .style import pyplot, series_styles, solver_looks, styled, titled

__all__ = ["generalisation_figure", "plot_generalisation"]


def _axis_label(metric: Any) -> str:
    title = metric.title
    return plain_text(title + (" (dB)" if metric.scale == "db" and "db" not in title.lower() else ""))


def generalisation_figure(result: Any, *, metric: str | None = None, title: bool = True,
                          style: str | Path | dict | None = None):
    """``metric`` (default: the primary one) of every solver of a
    :class:`~du_framework.workbench.generalise.Generalisation` versus the depth.

    Each solver's line is its curve after every iteration ``t`` of its deepest evaluation, so the
    iterations past the trained depth show how it carries on; a marker sits at the final value of each
    depth evaluated on its own (on the line unless the solver's iterations depend on its depth, as
    Chebyshev steps do). A dotted vertical line marks the trained depth.
    """
    info = result.metrics[metric or result.primary]
    log = bool(info.log_axis or info.counts_errors)
    deepest = result.depths[-1]
    with styled(style):
        plt = pyplot()
        count = len(result.settings)
        width, height = plt.rcParams["figure.figsize"]
        fig, axes = plt.subplots(1, count, sharey=True, squeeze=False, figsize=(width * (1 + 0.6 * (count - 1)),
                                                                                  height))
        looks = solver_looks(result.solvers)
        styles = series_styles([trainable for _, trainable in result.solvers], deepest,
                               [looks[label] for label, _ in result.solvers])
        extent = []
        for ax, setting in zip(axes[0], result.settings):
            for (label, _), line in zip(result.solvers, styles):
                curve = np.array(result.curves[(setting.label, label, deepest)][info.name], np.float64)
                finals = np.array([result.final(setting.label, label, d, info.name) for d in result.depths])
                if log:
                    curve[~(curve > 0)], finals[~(finals > 0)] = np.nan, np.nan
                # The curve carries the solver's marker for the legend; the markers sit at the depths.
                ax.plot(np.arange(1, deepest + 1), curve, label=plain_text(label), **{**line, "markevery": []})
                ax.plot(result.depths, finals, linestyle="none", marker=line["marker"], color=line["color"],
                        markersize=line["markersize"], markerfacecolor=line.get("markerfacecolor", line["color"]),
                        zorder=line["zorder"] + 0.5)
                extent += [curve, finals]
            ax.axvline(result.trained_depth, color="0.35", linestyle=":", linewidth=1.0, zorder=1,
                       label=f"trained depth {result.trained_depth}")
            if log:
                ax.set_yscale("log")
            ax.set_xlabel("depth (iterations)")
            if count > 1:
                ax.set_title(plain_text(setting.label), fontsize="small")
        set_limits(axes[0][0], extent, log=log)
        axes[0][0].set_ylabel(_axis_label(info))
        if titled(style, title):
            fig.suptitle(plain_text(f"{result.problem}: {info.title} at each depth (trained at depth "
                                    f"{result.trained_depth})"))
        place_legend(axes[0][-1], len(result.solvers) + 1)
        fig.tight_layout()
    return fig


def plot_generalisation(result: Any, path: str | Path, *, metric: str | None = None,
                        style: str | Path | dict | None = None, title: bool = True) -> Path:
    """Draw :func:`generalisation_figure` and save it to ``path`` (format from the suffix); returns ``path``."""
    with styled(style):
        return save_figure(generalisation_figure(result, metric=metric, title=titled(style, title)), path)
