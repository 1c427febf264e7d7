"""The loss figure: the training loss versus optimiser step (or the mean per stage), every seed."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..loading import Run, RunFileError
from ..text import plain_text
from .axes import as_runs, place_legend, selected_solvers, series_looks, set_integer_axis, set_limits
from .saving import save_figure
from .style import pyplot, series_styles, styled, titled

__all__ = ["losses_figure", "plot_losses"]


def losses_figure(runs: Run | Sequence[Run], *, solvers: Sequence[str] | str | None = None, title: bool = True,
                  style: str | Path | dict | None = None):
    """A figure of the training loss versus optimiser step (``training.csv``), every seed of every solver.

    Each seed is a thin line in its solver's colour and line style; stage
    boundaries of the first series are faint vertical lines. Without
    ``training.csv`` but with ``stages.csv``, the mean loss per stage is drawn
    instead (x: stage).

    Raises:
        RunFileError: no run holds a loss history (it names the runs).
    """
    runs = as_runs(runs)
    chosen = [(label, run, solver) for label, run, solver in selected_solvers(runs, solvers)
              if solver.losses or solver.stages]
    if not chosen:
        from ..loading import no_history_reason

        def reason(run: Run) -> str:
            kept = [label for label, solver in run.solvers.items() if solver.losses or solver.stages]
            if kept:  # the run has histories, of solvers not chosen
                return f"the solvers chosen have none; those of {', '.join(kept)} are saved"
            return no_history_reason(run)

        raise RunFileError("; ".join(f"{r.label!r}: no loss history saved ({reason(r)})" for r in runs))
    by_step = all(solver.losses for _, _, solver in chosen)
    with styled(style):
        plt = pyplot()
        fig, ax = plt.subplots()
        styles = series_styles([True] * len(chosen), 1, series_looks(runs, chosen))
        everything: list[np.ndarray] = []
        boundaries = None
        longest = 1
        for (label, run, solver), style_ in zip(chosen, styles):
            style_ = {key: style_[key] for key in ("color", "zorder", "linestyle")}
            first = True
            if by_step:
                for seed, history in solver.losses.items():
                    x = history.step if np.all(np.diff(history.step) > 0) else np.arange(1, len(history.loss) + 1)
                    ax.plot(x, history.loss, linewidth=0.9, alpha=0.85, label=plain_text(label) if first else None,
                            **style_)
                    first = False
                    everything.append(history.loss)
                    longest = max(longest, int(x[-1]) if len(x) else 1)
                    if boundaries is None and len(history.stage) > 1:
                        changes = np.flatnonzero(np.diff(history.stage)) + 1
                        boundaries = x[changes] - 0.5
            else:
                for seed, summary in solver.stages.items():
                    ax.plot(summary.stage, summary.mean_loss, marker="o", markersize=3, linewidth=1.0,
                            label=plain_text(label) if first else None, **style_)
                    first = False
                    everything.append(summary.mean_loss)
                    longest = max(longest, int(summary.stage.max()) if len(summary.stage) else 1)
        values = np.concatenate([np.ravel(v) for v in everything])
        values = values[np.isfinite(values)]
        log = bool(values.size and np.all(values > 0))
        if log:
            ax.set_yscale("log")
        if boundaries is not None and 0 < len(boundaries) <= 200:  # one collection, drawn at about a line's cost
            ax.vlines(boundaries, 0.0, 1.0, transform=ax.get_xaxis_transform(),
                      colors="0.8", linewidths=0.5, zorder=0)
        set_limits(ax, everything, log=log)
        set_integer_axis(ax, longest)
        ax.set_xlabel("optimiser step" if by_step else "stage")
        ax.set_ylabel("training loss" + ("" if by_step else " (mean over the stage's last chunk)"))
        if titled(style, title):
            ax.set_title("training loss" + (" (each line one seed; grey lines: stage boundaries)" if by_step else ""))
        place_legend(ax, len(chosen))
        fig.tight_layout()
    return fig


def plot_losses(run: Run | Sequence[Run], path: str | Path, *, solvers: Sequence[str] | str | None = None,
                style: str | Path | dict | None = None, title: bool = True) -> Path:
    """Draw :func:`losses_figure` and save it to ``path`` (format from the suffix); returns ``path``."""
    with styled(style):
        return save_figure(losses_figure(run, solvers=solvers, title=titled(style, title)), path)
