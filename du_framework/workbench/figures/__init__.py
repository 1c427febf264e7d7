"""Figures of saved runs, fit for a paper: curves, learned parameters, training losses.

Every function takes :class:`~du_framework.workbench.loading.Run` objects (from
:func:`~du_framework.workbench.loading.load_run`, or :meth:`Run.from_results` for a fresh
comparison) and draws with matplotlib's Agg backend, imported only when a figure
is drawn (never by ``import du_framework``). The ``*_figure`` functions return the
matplotlib :class:`~matplotlib.figure.Figure`; the ``plot_*`` functions save it
atomically to a path whose suffix chooses the format (``.pdf``, ``.svg``: vector;
``.png``: at least 200 dpi) and return the path.

Conventions (docs/publishing.md, "Figure conventions"):

* each solver label has one colour and marker in every figure of a run (and across
  the runs of an overlay): the looks are assigned over all of a run's solvers, in
  order, whichever of them a figure draws (:func:`solver_looks`);
* learned solvers are solid lines with filled markers, classical ones dashed or
  dotted lines with open markers, so the two kinds differ in greyscale; within a
  kind each solver has its own marker (and, for classical ones, line style); in an
  overlay of several runs each run has its own line style instead;
* runs of different problems or primary metrics are not mixed in one curve figure
  unless a metric is named (:func:`check_one_problem`);
* overlapping curves stay visible: earlier curves are drawn thicker and below,
  later ones thinner and on top, and markers sit at staggered iterations;
* a solver trained with several seeds is drawn as its central curve (the median
  the run recorded) with a band from the minimum to the maximum over the seeds
  that did not diverge; the legend counts diverged seeds;
* the x axis is ``iteration t`` with integer ticks starting at 1 (parameter
  panels: ``slot k``, from 1, or ``iteration t`` for a parameter with one slot per
  iteration); the y axis carries the metric's own label and
  unit (``(dB)`` for a dB metric), on a log scale for metrics that span decades;
* reference lines (a solver's reference values for its parameters, the float32
  resolution of a normalized dB metric, a ``floor`` a run records) are drawn and
  the y limits always include them;
* names that users choose (solver labels, metric labels) are drawn literally
  (``$`` escaped); learned parameter names are set as math (``eta`` as
  :math:`\\eta_k`);
* ``style``: ``"paper"`` (one column, 3.5 in wide, 8 pt text, no titles), a
  matplotlib style name (``"seaborn-v0_8-paper"``), a ``.mplstyle`` file or any
  matplotlibrc-format file of rcParams; applied over these defaults.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from ...errors import ConfigError
from ..loading import Run
from .axes import iteration_ticks, math_name, problem_names, run_labels
from .curves import FLOAT32_DB_FLOOR, check_one_problem, curves_figure, plot_curves
from .generalisation import generalisation_figure, plot_generalisation
from .losses import losses_figure, plot_losses
from .params import params_figure, plot_params
from .saving import FORMATS, figure_bytes, figure_format, save_figure
from .style import PAPER, pyplot, series_styles, solver_looks, style_spec, styled, titled
from .sweep import plot_sweep, sweep_figure, sweep_stem

__all__ = ["plot_curves", "plot_params", "plot_losses", "write_figures", "curves_figure", "params_figure",
           "losses_figure", "save_figure", "figure_bytes", "figure_format", "run_labels", "iteration_ticks",
           "math_name", "curves_stem", "sweep_figure", "plot_sweep", "sweep_stem", "pyplot", "style_spec", "styled",
           "titled", "series_styles", "generalisation_figure", "plot_generalisation", "problem_names", "solver_looks", "check_one_problem", "PAPER", "FORMATS", "FLOAT32_DB_FLOOR"]


def curves_stem(metric: str) -> str:
    """The file name (without extension) of the curves figure of ``metric``: its name, as a safe file name."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", metric).strip("._")
    return stem if stem and stem not in ("params", "losses") else f"curves_{stem}"


def write_figures(run: Run, folder: str | Path, *, metric: str | None = None, formats: Sequence[str] = ("png",),
                  style: str | Path | dict | None = None, warn=None, title: bool = True) -> dict[str, Path]:
    """Write the figures of ``run`` into ``folder``: ``<metric>.<fmt>`` (the curves of ``metric``, default the
    primary one, named after it: ``mse.png``, ``ber.png``; see :func:`curves_stem`), with a sweep
    ``<metric>-vs-<option>.<fmt>`` (:func:`sweep_figure`, e.g. ``ber-vs-snr_db.png``), ``params.<fmt>`` and,
    when the run holds a loss history, ``losses.<fmt>``, for each format in ``formats`` (``png``, ``pdf``,
    ``svg``).

    Returns ``{file name: path}`` of the files written. Each figure is drawn once and
    saved in every format; ``title=False`` (or the ``paper`` style) leaves out the titles.
    With ``warn`` (a callable taking a message), a figure that cannot be drawn (anything but
    ``OSError``/``MemoryError``, which propagate) is left out and reported through it; without, the
    error propagates.

    Raises:
        ConfigError: an unknown format or style.
        RunFileError: an unknown metric.
    """
    formats = [str(f).lower().lstrip(".") for f in formats]
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise ConfigError(f"figure formats {bad or formats!r}: choose among {', '.join(FORMATS)}")
    style_spec(style)  # an unknown style is refused before anything is drawn
    if run.has_curves:
        run.metric(metric)  # refused before anything is drawn
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    drawings = []
    title = titled(style, title)
    if run.has_curves:
        drawings.append((curves_stem(run.metric(metric).name), lambda: curves_figure(run, metric=metric, title=title)))
        if run.sweep is not None and any(solver.sweep for solver in run.solvers.values()):
            drawings.append((sweep_stem(run.metric(metric).name, run.sweep.option),
                             lambda: sweep_figure(run, metric=metric, title=title)))
    drawings.append(("params", lambda: params_figure(run, title=title)))
    if run.has_losses or any(s.stages for s in run.solvers.values()):
        drawings.append(("losses", lambda: losses_figure(run, title=title)))
    written = {}
    plt = pyplot()
    for stem, draw in drawings:
        try:
            with styled(style):
                fig = draw()
                try:
                    for kind in formats:
                        written[f"{stem}.{kind}"] = save_figure(fig, folder / f"{stem}.{kind}", close=False)
                finally:
                    plt.close(fig)
        except (OSError, MemoryError):
            raise
        except Exception as error:  # noqa: BLE001 - matplotlib's many failures; the data files are safe
            if warn is None:
                raise
            text = str(error).strip().splitlines()
            warn(f"{stem} figure could not be drawn ({type(error).__name__}: {text[0] if text else 'no message'}); "
                 f"the results files are complete")
    return written
