"""The curve figure: one metric versus iteration, a band over the training seeds, reference lines."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ...errors import ConfigError
from ..loading import MetricInfo, Run, RunFileError
from ..text import plain_text
from .axes import as_runs, place_legend, problem_names, selected_solvers, series_looks, set_integer_axis, set_limits
from .saving import save_figure
from .style import REFERENCE_LINES, pyplot, series_styles, styled, titled

__all__ = ["curves_figure", "plot_curves", "metric_axis_label", "check_one_problem", "FLOAT32_DB_FLOOR"]

FLOAT32_DB_FLOOR = 20 * math.log10(2.0**-23)
"""The float32 resolution as a normalized error in dB: ``20 log10(eps)``, eps = 2^-23 (about -138.5 dB).

No float32 estimate is resolved more finely relative to its target; a normalized
dB metric's curve that reaches it has hit the arithmetic, not the method."""

_FLOOR_SHOWN_WITHIN_DB = 30.0  # the float32 line is drawn when a curve comes this close to it


def metric_axis_label(info: MetricInfo) -> str:
    """The y-axis label of a metric: its title, with " (dB)" for a dB metric that does not say so."""
    title = info.title
    if info.scale == "db" and "db" not in title.lower():
        title += " (dB)"
    return plain_text(title)


def check_one_problem(runs: Sequence[Run]) -> None:
    """Refuse to draw runs of different problems, or with different primary metrics, in one figure by default.

    Raises:
        ConfigError: naming each run's problem and primary metric, and what to do instead.
    """
    runs = [run for run in runs if run.has_curves]  # a run without curves is refused by name elsewhere
    kinds = {(problem_names([run])[0], run.primary_metric) for run in runs}
    if len(kinds) < 2:
        return
    each = "; ".join(f"{run.label!r} is {problem_names([run])[0] or '(unnamed problem)'} (primary metric "
                     f"{run.primary_metric})" for run in runs)
    shared = [name for name in runs[0].metrics if all(name in run.metrics for run in runs[1:])]
    raise ConfigError(f"these runs are of different problems or primary metrics, which one figure would mix: {each}; "
                      "draw each run on its own" + (f", or name a metric they all have (--metric NAME, metric= in "
                                                    f"Python): {', '.join(shared)}" if shared else ""))


def _reference_levels(info: MetricInfo, curves: list[np.ndarray]) -> list[tuple[float, str]]:
    finite = np.concatenate([np.ravel(c) for c in curves]) if curves else np.zeros(0)
    finite = finite[np.isfinite(finite)]
    if info.floor is not None:
        return [(info.floor, "float32 floor (recorded)")]
    if info.scale == "db" and info.normalized and finite.size and \
            finite.min() - FLOAT32_DB_FLOOR <= _FLOOR_SHOWN_WITHIN_DB:
        return [(FLOAT32_DB_FLOOR, f"float32 resolution ({FLOAT32_DB_FLOOR:.1f} dB)")]
    return []


def curves_figure(runs: Run | Sequence[Run], *, metric: str | None = None, solvers: Sequence[str] | str | None = None,
                  title: bool = True, style: str | Path | dict | None = None):
    """A figure of one metric versus iteration for the solvers of one or several runs.

    ``metric``: its name (default: the runs' primary metric; every run must
    have it). ``solvers``: labels to draw (default: all); with several runs each
    legend entry is prefixed with its run's label, each solver keeps its colour
    and marker and each run has its own line style. ``title``: a title naming the
    problem(s) and the metric (never with the ``paper`` style).

    Raises:
        RunFileError: a run without curves (a run of ``unfold train``) or
            without the metric.
        ConfigError: an unknown solver label or style; without ``metric``, runs of
            different problems or primary metrics (:func:`check_one_problem`).
    """
    runs = as_runs(runs)
    if metric is None:
        check_one_problem(runs)
    name = metric or runs[0].metric().name
    infos = [run.metric(name) for run in runs]
    info = infos[0]
    chosen = [(label, run, solver) for label, run, solver in selected_solvers(runs, solvers) if name in solver.metrics]
    if not chosen:
        raise RunFileError(f"no solver of {', '.join(repr(r.label) for r in runs)} has a curve of {name!r}")
    log = bool(info.log_axis)
    with styled(style):
        plt = pyplot()
        fig, ax = plt.subplots()
        length = max(len(solver.metrics[name]) for _, _, solver in chosen)
        styles = series_styles([solver.trainable for _, _, solver in chosen], length, series_looks(runs, chosen))
        extent: list[np.ndarray] = []
        banded = set()
        for (label, run, solver), style_ in zip(chosen, styles):
            curve = _masked(solver.metrics[name], log)
            t = np.arange(1, len(curve) + 1)
            seeds, diverged = len(solver.seeds), len(solver.diverged_seeds)
            legend = plain_text(label) + (f" [{diverged} of {seeds} seeds diverged]" if diverged else "")
            ax.plot(t, curve, label=legend, **style_)
            extent.append(curve)
            bounds = (solver.spread or {}).get(name)
            if bounds is not None and len(solver.ok_seeds) > 1:
                low, high = _masked(bounds[0], log), _masked(bounds[1], log)
                ax.fill_between(t, low, high, color=style_["color"], alpha=0.18, linewidth=0,
                                zorder=style_["zorder"] - 0.5)
                extent += [low, high]
                banded.add(len(solver.ok_seeds))
        for (level, text), line in zip(_reference_levels(info, extent), REFERENCE_LINES):
            ax.axhline(level, color="0.35", linestyle=line, linewidth=1.0, label=text, zorder=1)
            extent.append(np.array([level]))
        if log:
            ax.set_yscale("log")
        set_limits(ax, extent, log=log)
        set_integer_axis(ax, length)
        ax.set_xlabel("iteration $t$")
        ax.set_ylabel(metric_axis_label(info))
        if titled(style, title):
            problem = ", ".join(name for name in problem_names(runs) if name)
            direction = "lower" if info.lower_is_better else "higher"
            band = (f"; shaded: min to max over {'/'.join(map(str, sorted(banded)))} seeds, line: median"
                    if banded else "")
            ax.set_title(plain_text(f"{problem}: {info.title} versus iteration ({direction} is better{band})".lstrip(": ")))
        place_legend(ax, len(chosen))
        fig.tight_layout()
    return fig


def _masked(values: np.ndarray, log: bool) -> np.ndarray:
    values = np.asarray(values, np.float64).copy()
    if log:
        values[~(values > 0)] = np.nan  # a log axis cannot show 0 or less: a gap, not a fake value
    return values


def plot_curves(runs: Run | Sequence[Run], path: str | Path, *, metric: str | None = None,
                solvers: Sequence[str] | str | None = None, style: str | Path | dict | None = None,
                title: bool = True) -> Path:
    """Draw :func:`curves_figure` and save it to ``path`` (format from the suffix); returns ``path``."""
    with styled(style):
        return save_figure(curves_figure(runs, metric=metric, solvers=solvers, title=titled(style, title)), path)
