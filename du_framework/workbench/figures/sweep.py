"""The sweep figure: one metric after the final iteration versus the swept problem option (``[evaluation]
sweep``), one line per solver in the curves figure's colours and markers, a log y axis for error rates."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..loading import Run, RunFileError
from ..text import plain_text
from .axes import place_legend, series_looks, set_limits
from .curves import metric_axis_label
from .saving import save_figure
from .style import pyplot, series_styles, styled, titled

__all__ = ["sweep_figure", "plot_sweep", "sweep_stem"]


def sweep_stem(metric: str, option: str) -> str:
    """The file name (without extension) of the sweep figure: ``<metric>-vs-<option>`` as a safe file name."""
    def safe(text: str) -> str:
        return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("._") or "x"
    return f"{safe(metric)}-vs-{safe(option)}"


def _positions(values: tuple) -> tuple[np.ndarray, list[str] | None]:
    """x positions of the swept values: the numbers themselves, or 0, 1, ... with the values as tick labels."""
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return np.asarray(values, np.float64), None
    return np.arange(len(values), dtype=np.float64), [str(v) for v in values]


def sweep_figure(run: Run, *, metric: str | None = None, title: bool = True, style: str | Path | dict | None = None):
    """``metric`` (default: the primary one) after the final iteration versus the swept value, one line per
    solver (a solver with several seeds: its median, with a band from the minimum to the maximum).

    Raises:
        RunFileError: the run holds no sweep, or no solver has points of ``metric``.
    """
    if run.sweep is None:
        raise RunFileError(f"run {run.label!r} holds no sweep ([evaluation] sweep was not set)")
    info = run.metric(metric)
    chosen = [(label, solver) for label, solver in run.solvers.items()
              if solver.sweep and all(info.name in point.metrics for point in solver.sweep)]
    if not chosen:
        raise RunFileError(f"no solver of run {run.label!r} has sweep points of {info.name!r}")
    x, ticks = _positions(run.sweep.values)
    log = bool(info.log_axis or info.counts_errors)
    with styled(style):
        plt = pyplot()
        fig, ax = plt.subplots()
        styles = series_styles([solver.trainable for _, solver in chosen], len(x),
                               series_looks([run], [(label, run, solver) for label, solver in chosen]))
        extent = []
        for (label, solver), style_ in zip(chosen, styles):
            style_ = {**style_, "markevery": None}  # a marker at every swept value
            y = np.array([point.metrics[info.name][-1] for point in solver.sweep], np.float64)
            if log:
                y[~(y > 0)] = np.nan  # an error rate of 0 has no place on a log axis: a gap
            ax.plot(x, y, label=plain_text(label), **style_)
            extent.append(y)
            spreads = [(point.spread or {}).get(info.name) for point in solver.sweep]
            if len(solver.ok_seeds) > 1 and all(s is not None for s in spreads):
                low = np.array([s[0][-1] for s in spreads], np.float64)
                high = np.array([s[1][-1] for s in spreads], np.float64)
                ax.fill_between(x, low, high, color=style_["color"], alpha=0.18, linewidth=0,
                                zorder=style_["zorder"] - 0.5)
        if log:
            ax.set_yscale("log")
        set_limits(ax, extent, log=log)
        if ticks is not None:
            ax.set_xticks(x, [plain_text(t) for t in ticks])
        ax.set_xlabel(plain_text(run.sweep.option))
        ax.set_ylabel(metric_axis_label(info))
        if titled(style, title):
            problem = run.problem.get("name") or (run.config.get("problem") or {}).get("name") or ""
            ax.set_title(plain_text(f"{problem}: {info.title} after iteration {run.depth} versus "
                                    f"{run.sweep.option}".lstrip(": ")))
        place_legend(ax, len(chosen))
        fig.tight_layout()
    return fig


def plot_sweep(run: Run, path: str | Path, *, metric: str | None = None, style: str | Path | dict | None = None,
               title: bool = True) -> Path:
    """Draw :func:`sweep_figure` and save it to ``path`` (format from the suffix); returns ``path``."""
    with styled(style):
        return save_figure(sweep_figure(run, metric=metric, title=titled(style, title)), path)
