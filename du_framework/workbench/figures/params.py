"""The parameter figure: each learned parameter versus slot k, a band over the training seeds, references."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..loading import Run, SolverRun
from ..text import plain_text
from .axes import as_runs, math_name, place_legend, selected_solvers, series_looks, set_integer_axis, set_limits
from .saving import save_figure
from .style import REFERENCE_LINES, pyplot, series_styles, styled, titled

SLOT_AXIS = "slot $k$ (iteration $t$ uses slot $((t-1) \\; \\mathrm{mod} \\; P) + 1$)"
ITERATION_AXIS = "iteration $t$"

__all__ = ["params_figure", "plot_params"]


def _param_series(solver: SolverRun) -> tuple[dict[str, np.ndarray], dict[str, tuple[np.ndarray, np.ndarray]], bool]:
    """``(values per slot, (low, high) per slot over ok seeds, raw)`` of a solver's parameters."""
    raw = not solver.params and bool(solver.stored_params)
    params = solver.stored_params if raw else solver.params
    per_slot = {name: _per_slot(values) for name, values in params.items()}
    bands = {}
    if solver.per_seed_params and len(solver.ok_seeds) > 1:
        ok = [p for p, status in zip(solver.per_seed_params, solver.seed_status) if status == "ok"]
        for name in per_slot:
            rows = [_per_slot(p[name]) for p in ok if name in p]
            if len(rows) > 1 and len({len(r) for r in rows}) == 1:
                stacked = np.stack(rows)
                bands[name] = (np.nanmin(stacked, axis=0), np.nanmax(stacked, axis=0))
    return per_slot, bands, raw


def _per_slot(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, np.float64)
    return values.reshape(len(values), -1).mean(axis=1) if values.ndim else values[None]


def params_figure(runs: Run | Sequence[Run], *, solvers: Sequence[str] | str | None = None, title: bool = True,
                  style: str | Path | dict | None = None):
    """A figure of the learned parameters versus slot ``k`` (1..period), one panel per parameter name.

    A panel whose every line has one slot per iteration of its run (a per-iteration
    parameter, no period) is drawn against ``iteration t``, its name subscripted ``t``.

    The central line is the parameters the run reports (schema 3: its
    representative seed); a band spans the minimum to maximum over the seeds
    that did not diverge. Reference values (for example Chebyshev steps beside
    DU-GD's steps) are horizontal lines inside the y limits. A parameter with
    several values per slot is drawn as their mean. For a run of ``unfold
    train`` the checkpoints' stored (raw, unconstrained) values are drawn and
    the axis says so.
    """
    runs = as_runs(runs)
    chosen = [(label, run, solver) for label, run, solver in selected_solvers(runs, solvers)
              if solver.trainable and (solver.params or solver.stored_params)]
    series = {label: _param_series(solver) for label, _, solver in chosen}
    names = list(dict.fromkeys(name for values, _, _ in series.values() for name in values))
    with styled(style):
        plt = pyplot()
        if not names:
            fig, ax = plt.subplots(figsize=(6.4, 1.6))
            ax.axis("off")
            ax.text(0.5, 0.5, "no solver in this comparison learns parameters", ha="center", va="center")
            return fig
        width = plt.rcParams["figure.figsize"][0]
        fig, axes = plt.subplots(len(names), 1, figsize=(width, max(1.8, 0.45 * width) * len(names)), squeeze=False)
        for ax, name in zip(axes[:, 0], names):
            drawing = [(label, run, solver) for label, run, solver in chosen if name in series[label][0]]
            longest = max(len(series[label][0][name]) for label, _, _ in drawing)
            styles = series_styles([True] * len(drawing), longest, series_looks(runs, drawing))
            per_iteration = all(len(series[label][0][name]) == run.depth > 1 for label, run, _ in drawing)
            extent: list[np.ndarray] = []
            references: dict[tuple[str, tuple[float, ...]], None] = {}
            raw_any = False
            for (label, run, solver), style_ in zip(drawing, styles):
                values, bands, raw = series[label]
                raw_any |= raw
                k = np.arange(1, len(values[name]) + 1)
                style_ = dict(style_, markevery=None)
                ax.plot(k, values[name], label=plain_text(label) + (" (stored raw values)" if raw else ""), **style_)
                extent.append(values[name])
                if name in bands:
                    ax.fill_between(k, *bands[name], color=style_["color"], alpha=0.18, linewidth=0,
                                    zorder=style_["zorder"] - 0.5)
                    extent += list(bands[name])
                for reference, levels in solver.references.get(name, {}).items():
                    references[reference, tuple(np.ravel(levels).tolist())] = None
            for (reference, levels), line in zip(references, REFERENCE_LINES * len(references)):
                for i, level in enumerate(levels):
                    ax.axhline(level, color="0.35", linestyle=line, linewidth=1.0, zorder=1,
                               label=plain_text(reference) if i == 0 else None)
                extent.append(np.array(levels))
            set_limits(ax, extent, log=False)
            set_integer_axis(ax, longest)
            ax.set_xlabel(ITERATION_AXIS if per_iteration else SLOT_AXIS)
            symbol = math_name(name, "t" if per_iteration else "k")
            ax.set_ylabel(("stored " if raw_any else "") + symbol)
            if titled(style, title):
                ax.set_title(("stored (unconstrained) value of " if raw_any else "learned ") + symbol)
            place_legend(ax, len(drawing) + len(references))
        fig.tight_layout()
    return fig


def plot_params(run: Run | Sequence[Run], path: str | Path, *, solvers: Sequence[str] | str | None = None,
                style: str | Path | dict | None = None, title: bool = True) -> Path:
    """Draw :func:`params_figure` and save it to ``path`` (format from the suffix); returns ``path``."""
    with styled(style):
        return save_figure(params_figure(run, solvers=solvers, title=titled(style, title)), path)
