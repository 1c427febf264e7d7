"""Figures of saved runs, fit for a paper: curves, learned parameters, training losses.

Every function takes :class:`~du_framework.workbench.loading.Run` objects (from
:func:`~du_framework.workbench.loading.load_run`, or :meth:`Run.from_results` for a fresh
comparison) and draws with matplotlib's Agg backend, imported only when a figure
is drawn (never by ``import du_framework``). The ``*_figure`` functions return the
matplotlib :class:`~matplotlib.figure.Figure`; the ``plot_*`` functions save it
atomically to a path whose suffix chooses the format (``.pdf``, ``.svg``: vector;
``.png``: at least 200 dpi) and return the path.

Conventions (docs/publishing.md, "Figure conventions"):

* learned solvers are solid lines with filled markers, classical ones dashed or
  dotted lines with open markers, so the two kinds differ in greyscale; within a
  kind each solver has its own marker (and, for classical ones, line style);
* overlapping curves stay visible: earlier curves are drawn thicker and below,
  later ones thinner and on top, and markers sit at staggered iterations;
* a solver trained with several seeds is drawn as its central curve (the median
  the run recorded) with a band from the minimum to the maximum over the seeds
  that did not diverge; the legend counts diverged seeds;
* the x axis is ``iteration t`` with integer ticks starting at 1 (parameter
  panels: ``slot k``, from 1); the y axis carries the metric's own label and
  unit (``(dB)`` for a dB metric), on a log scale for metrics that span decades;
* reference lines (a solver's reference values for its parameters, the float32
  resolution of a normalized dB metric, a ``floor`` a run records) are drawn and
  the y limits always include them;
* names that users choose (solver labels, metric labels) are drawn literally
  (``$`` escaped); learned parameter names are set as math (``eta`` as
  :math:`\\eta_k`);
* ``style``: a matplotlib style name (``"seaborn-v0_8-paper"``), a ``.mplstyle``
  file or any matplotlibrc-format file of rcParams; applied over these defaults.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError
from .loading import MetricInfo, Run, RunFileError, SolverRun

__all__ = ["plot_curves", "plot_params", "plot_losses", "write_figures", "curves_figure", "params_figure",
           "losses_figure", "save_figure", "figure_bytes", "run_labels", "iteration_ticks", "math_name", "FORMATS", "FLOAT32_DB_FLOOR"]

FORMATS = ("pdf", "svg", "png")
"""File formats by suffix."""

MIN_PNG_DPI = 200

FLOAT32_DB_FLOOR = 20 * math.log10(2.0**-23)
"""The float32 resolution as a normalized error in dB: ``20 log10(eps)``, eps = 2^-23 (about -138.5 dB).

No float32 estimate is resolved more finely relative to its target; a normalized
dB metric's curve that reaches it has hit the arithmetic, not the method."""

_FLOOR_SHOWN_WITHIN_DB = 30.0  # the float32 line is drawn when a curve comes this close to it

_BASE_RC = {
    "figure.figsize": (6.4, 4.0),
    "font.size": 10.0,
    "axes.titlesize": "medium",  # relative: a style's font.size scales every text
    "axes.labelsize": "medium",
    "legend.fontsize": "small",
    "legend.framealpha": 0.9,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.5,
    "lines.markersize": 5.0,
    "savefig.bbox": "tight",
    "savefig.dpi": MIN_PNG_DPI,
    "pdf.fonttype": 42,  # TrueType: journals refuse Type 3 fonts
    "ps.fonttype": 42,
    "svg.hashsalt": "du-framework",  # the same figure gives the same SVG
}

_LEARNED_MARKERS = ("o", "s", "^", "D", "v", "P", "h", "X", "<", ">")
_CLASSICAL_MARKERS = ("x", "+", "d", "*", "p", "|", "h", "1", "_", "8")
_CLASSICAL_LINES = ("--", ":", "-.", (0, (6, 2, 1, 2, 1, 2)), (0, (1, 1)), (0, (8, 3)))
_REFERENCE_LINES = (":", "--", "-.", (0, (3, 1, 1, 1)))

_GREEK = {"alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa", "lambda", "mu",
          "nu", "xi", "pi", "rho", "sigma", "tau", "upsilon", "phi", "chi", "psi", "omega", "Gamma", "Delta",
          "Theta", "Lambda", "Xi", "Pi", "Sigma", "Upsilon", "Phi", "Psi", "Omega"}
_ALIASES = {"lam": "lambda", "lmbda": "lambda", "eps": "epsilon"}


# --- matplotlib, styles, saving -----------------------------------------------------------------


def _pyplot():
    """matplotlib.pyplot, on the non-interactive Agg backend unless the caller already chose one.

    Agg is set only before pyplot's first import (a script, the CLI, a machine without a
    display); a notebook or program that imported pyplot keeps its backend (inline,
    interactive). Saving does not depend on it: ``savefig`` picks the canvas of the file's format.
    """
    import sys

    import matplotlib

    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _plain(text: Any) -> str:
    from .report import plain_text  # lazily: report imports the comparison machinery

    return plain_text(text)


def _style_spec(style: str | Path | dict | None) -> list[Any]:
    if style is None or style == "":
        return []
    if isinstance(style, dict):
        return [style]
    plt = _pyplot()
    text = str(style)
    if text in plt.style.available or text in ("default", "classic"):
        return [text]
    path = Path(text).expanduser()
    if path.is_file():
        import matplotlib

        try:
            params = matplotlib.rc_params_from_file(str(path), use_default_template=False)
        except (OSError, UnicodeDecodeError, ValueError) as error:
            raise ConfigError(f"style file {text!r} cannot be read ({error})") from None
        if not params:
            raise ConfigError(f"style file {text!r} sets no rcParams (lines `key: value`, e.g. `font.size: 9`)")
        return [dict(params)]
    from ..errors import nearest

    hint = nearest(text, plt.style.available)
    raise ConfigError(f"style {text!r} is neither a matplotlib style nor a file; styles: "
                      f"{', '.join(sorted(plt.style.available))}" + (f" (did you mean {hint!r}?)" if hint else ""))


@contextlib.contextmanager
def _styled(style: str | Path | dict | None) -> Iterator[None]:
    """Our paper defaults, then ``style`` over them, for the figures drawn (and saved) inside."""
    plt = _pyplot()
    with plt.style.context([_BASE_RC, *_style_spec(style)]):
        yield


def _format_of(path: Path) -> str:
    suffix = path.suffix.lower().lstrip(".")
    if suffix not in FORMATS:
        raise ConfigError(f"figure file {str(path)!r}: the suffix chooses the format; use .pdf, .svg or .png")
    return suffix


def figure_bytes(fig, kind: str = "svg") -> bytes:
    """``fig`` as the bytes of a ``pdf``, ``svg`` or ``png`` file (same settings as :func:`save_figure`)."""
    import io

    buffer = io.BytesIO()
    _savefig(fig, buffer, kind)
    return buffer.getvalue()


def _savefig(fig, target, kind: str) -> None:
    plt = _pyplot()
    dpi = plt.rcParams["savefig.dpi"]
    dpi = max(MIN_PNG_DPI, float(fig.dpi if dpi == "figure" else dpi))
    metadata = {"pdf": {"CreationDate": None}, "svg": {"Date": None}, "png": {}}[kind]
    fig.savefig(target, format=kind, dpi=dpi, metadata=metadata)


def save_figure(fig, path: str | Path, *, close: bool = True) -> Path:
    """Save ``fig`` atomically to ``path`` in the format of its suffix (``.pdf``, ``.svg``, ``.png`` at >= 200 dpi).

    Raises:
        ConfigError: another suffix.
    """
    from ..io.atomic import atomic_write

    path = Path(path)
    kind = _format_of(path)
    plt = _pyplot()
    try:
        with atomic_write(path, "wb") as handle:
            _savefig(fig, handle, kind)
    finally:
        if close:
            plt.close(fig)
    return path


# --- labels and ticks ---------------------------------------------------------------------------


def math_name(name: str, index: str = "k") -> str:
    """A learned parameter's name as mathtext with subscript ``index``: ``eta`` -> ``$\\eta_k$``.

    Greek letter names (and ``lam``) become letters, one-letter names stay
    italic, other simple names upright (``$\\mathrm{step}_k$``); a name that is
    not letters-and-digits is returned as literal text (``$`` escaped).
    """
    match = re.fullmatch(r"([A-Za-z]+)(\d*)", name)
    if not match:
        return _plain(name)
    base, digits = match.groups()
    base = _ALIASES.get(base, base)
    symbol = "\\" + base if base in _GREEK else (base if len(base) == 1 else f"\\mathrm{{{base}}}")
    sub = f"{digits},{index}" if digits else index
    return f"${symbol}_{{{sub}}}$"


def iteration_ticks(last: int, most: int = 8) -> list[int]:
    """Integer ticks for 1..``last``: 1, then multiples of a round step (1, 2, 5, 10, 20, 25, 50, ...)."""
    last = max(1, int(last))
    step = 1
    for candidate in (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 2500, 5000, 10000):
        step = candidate
        if last / candidate <= most - 1:
            break
    else:
        step = 10 ** math.ceil(math.log10(last / (most - 1)))
    ticks = [1] + [k for k in range(step, last + 1, step) if k - 1 >= step / 2 or step == 1]
    return sorted(set(ticks))


def _set_integer_axis(ax, last: int) -> None:
    ax.set_xticks(iteration_ticks(last))
    pad = max(0.25, 0.02 * (last - 1))
    ax.set_xlim(1 - pad, last + pad)


def _metric_axis_label(info: MetricInfo) -> str:
    title = info.title
    if info.scale == "db" and "db" not in title.lower():
        title += " (dB)"
    return _plain(title)


def _set_limits(ax, values: list[np.ndarray], *, log: bool) -> None:
    """y limits covering every finite value in ``values`` (curves, bands, reference lines), with a margin."""
    finite = np.concatenate([np.ravel(np.asarray(v, np.float64)) for v in values]) if values else np.zeros(0)
    finite = finite[np.isfinite(finite)]
    if log:
        finite = finite[finite > 0]
    if not finite.size:
        return
    low, high = float(finite.min()), float(finite.max())
    if not log:
        ax.ticklabel_format(axis="y", useOffset=False)  # "+2.999" above the axis reads badly in print
    if log:
        span = max(math.log10(high) - math.log10(low), 1e-3)
        pad = 0.05 * span
        ax.set_ylim(10 ** (math.log10(low) - pad), 10 ** (math.log10(high) + pad))
    else:
        span = high - low or max(abs(high), 1.0) * 0.1
        ax.set_ylim(low - 0.06 * span, high + 0.06 * span)


# --- series styles ------------------------------------------------------------------------------


def _series_styles(kinds: Sequence[bool], length: int) -> list[dict[str, Any]]:
    """Line properties of each series (``kinds``: trainable or not), in drawing order."""
    plt = _pyplot()
    colors = plt.rcParams["axes.prop_cycle"].by_key().get("color", ["k"])
    count = len(kinds)
    every = max(1, round(length / 8))
    styles, learned, classical = [], 0, 0
    for i, trainable in enumerate(kinds):
        width = 2.6 - 1.5 * i / (count - 1) if count > 1 else 1.8
        style = {"color": colors[i % len(colors)], "linewidth": width, "zorder": 2 + i,
                 "markevery": (min(length - 1, (i * every) // max(count, 1)) if length > 1 else 0, every),
                 "markersize": 6.0 - 1.5 * i / max(count - 1, 1)}
        if trainable:
            style.update(linestyle="-", marker=_LEARNED_MARKERS[learned % len(_LEARNED_MARKERS)])
            learned += 1
        else:
            style.update(linestyle=_CLASSICAL_LINES[classical % len(_CLASSICAL_LINES)],
                         marker=_CLASSICAL_MARKERS[classical % len(_CLASSICAL_MARKERS)], markerfacecolor="none",
                         markeredgewidth=1.2)
            classical += 1
        styles.append(style)
    return styles


def _as_runs(runs: Run | Sequence[Run]) -> list[Run]:
    if isinstance(runs, Run):
        return [runs]
    runs = list(runs)
    if not runs or not all(isinstance(r, Run) for r in runs):
        raise ConfigError("give one Run or a non-empty list of Runs (du_framework.workbench.loading.load_run)")
    return runs


def run_labels(runs: Sequence[Run]) -> list[str]:
    """Distinct labels of ``runs`` (a repeated label gets ``#2``, ``#3``)."""
    seen: dict[str, int] = {}
    labels = []
    for run in runs:
        seen[run.label] = seen.get(run.label, 0) + 1
        labels.append(run.label if seen[run.label] == 1 else f"{run.label}#{seen[run.label]}")
    return labels


def _selected(runs: list[Run], solvers: Sequence[str] | None) -> list[tuple[str, Run, SolverRun]]:
    """``(legend label, run, solver)`` of every solver drawn, in order."""
    labels = run_labels(runs)
    if solvers is not None:
        wanted = [s.strip() for s in (solvers.split(",") if isinstance(solvers, str) else solvers) if s.strip()]
        known = list(dict.fromkeys(label for run in runs for label in run.solvers))
        unknown = [name for name in wanted if name not in known]
        if unknown:
            from ..errors import nearest

            hint = nearest(unknown[0], known)
            raise ConfigError(f"no solver {', '.join(map(repr, unknown))} in the run(s); solvers: {', '.join(known)}"
                              + (f" (did you mean {hint!r}?)" if hint else ""))
    chosen = []
    for run_label, run in zip(labels, runs):
        for label, solver in run.solvers.items():
            if solvers is None or label in wanted:
                chosen.append((f"{run_label}: {label}" if len(runs) > 1 else label, run, solver))
    return chosen


def _legend(ax, entries: int) -> None:
    if entries > 7:  # beside the axes, the figure widened so the axes keep their size
        width, height = ax.figure.get_size_inches()
        ax.figure.set_size_inches(width * 1.5, height)
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    else:
        ax.legend(loc="best")


# --- curves -------------------------------------------------------------------------------------


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

    ``metric``: its name (default: the first run's primary metric; every run must
    have it). ``solvers``: labels to draw (default: all); with several runs each
    legend entry is prefixed with its run's label.

    Raises:
        RunFileError: a run without curves (a run of ``unfold train``) or
            without the metric.
        ConfigError: an unknown solver label or style.
    """
    runs = _as_runs(runs)
    name = metric or runs[0].metric().name
    infos = [run.metric(name) for run in runs]
    info = infos[0]
    chosen = [(label, run, solver) for label, run, solver in _selected(runs, solvers) if name in solver.metrics]
    if not chosen:
        raise RunFileError(f"no solver of {', '.join(repr(r.label) for r in runs)} has a curve of {name!r}")
    log = bool(info.log_axis)
    with _styled(style):
        plt = _pyplot()
        fig, ax = plt.subplots()
        length = max(len(solver.metrics[name]) for _, _, solver in chosen)
        styles = _series_styles([solver.trainable for _, _, solver in chosen], length)
        extent: list[np.ndarray] = []
        banded = set()
        for (label, run, solver), style_ in zip(chosen, styles):
            curve = _masked(solver.metrics[name], log)
            t = np.arange(1, len(curve) + 1)
            seeds, diverged = len(solver.seeds), len(solver.diverged_seeds)
            legend = _plain(label) + (f" [{diverged} of {seeds} seeds diverged]" if diverged else "")
            ax.plot(t, curve, label=legend, **style_)
            extent.append(curve)
            bounds = (solver.spread or {}).get(name)
            if bounds is not None and len(solver.ok_seeds) > 1:
                low, high = _masked(bounds[0], log), _masked(bounds[1], log)
                ax.fill_between(t, low, high, color=style_["color"], alpha=0.18, linewidth=0,
                                zorder=style_["zorder"] - 0.5)
                extent += [low, high]
                banded.add(len(solver.ok_seeds))
        for (level, text), line in zip(_reference_levels(info, extent), _REFERENCE_LINES):
            ax.axhline(level, color="0.35", linestyle=line, linewidth=1.0, label=text, zorder=1)
            extent.append(np.array([level]))
        if log:
            ax.set_yscale("log")
        _set_limits(ax, extent, log=log)
        _set_integer_axis(ax, length)
        ax.set_xlabel("iteration $t$")
        ax.set_ylabel(_metric_axis_label(info))
        if title:
            problem = runs[0].problem.get("name") or (runs[0].config.get("problem") or {}).get("name") or ""
            direction = "lower" if info.lower_is_better else "higher"
            band = (f"; shaded: min to max over {'/'.join(map(str, sorted(banded)))} seeds, line: median"
                    if banded else "")
            ax.set_title(_plain(f"{problem}: {info.title} versus iteration ({direction} is better{band})".lstrip(": ")))
        _legend(ax, len(chosen))
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
    with _styled(style):
        return save_figure(curves_figure(runs, metric=metric, solvers=solvers, title=title), path)


# --- parameters ---------------------------------------------------------------------------------


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

    The central line is the parameters the run reports (schema 3: its
    representative seed); a band spans the minimum to maximum over the seeds
    that did not diverge. Reference values (for example Chebyshev steps beside
    DU-GD's steps) are horizontal lines inside the y limits. A parameter with
    several values per slot is drawn as their mean. For a run of ``unfold
    train`` the checkpoints' stored (raw, unconstrained) values are drawn and
    the axis says so.
    """
    runs = _as_runs(runs)
    chosen = [(label, run, solver) for label, run, solver in _selected(runs, solvers)
              if solver.trainable and (solver.params or solver.stored_params)]
    series = {label: _param_series(solver) for label, _, solver in chosen}
    names = list(dict.fromkeys(name for values, _, _ in series.values() for name in values))
    with _styled(style):
        plt = _pyplot()
        if not names:
            fig, ax = plt.subplots(figsize=(6.4, 1.6))
            ax.axis("off")
            ax.text(0.5, 0.5, "no solver in this comparison learns parameters", ha="center", va="center")
            return fig
        width = plt.rcParams["figure.figsize"][0]
        fig, axes = plt.subplots(len(names), 1, figsize=(width, 2.9 * len(names)), squeeze=False)
        for ax, name in zip(axes[:, 0], names):
            drawing = [(label, run, solver) for label, run, solver in chosen if name in series[label][0]]
            longest = max(len(series[label][0][name]) for label, _, _ in drawing)
            styles = _series_styles([True] * len(drawing), longest)
            extent: list[np.ndarray] = []
            references: dict[tuple[str, tuple[float, ...]], None] = {}
            raw_any = False
            for (label, run, solver), style_ in zip(drawing, styles):
                values, bands, raw = series[label]
                raw_any |= raw
                k = np.arange(1, len(values[name]) + 1)
                style_ = dict(style_, markevery=None)
                ax.plot(k, values[name], label=_plain(label) + (" (stored raw values)" if raw else ""), **style_)
                extent.append(values[name])
                if name in bands:
                    ax.fill_between(k, *bands[name], color=style_["color"], alpha=0.18, linewidth=0,
                                    zorder=style_["zorder"] - 0.5)
                    extent += list(bands[name])
                for reference, levels in solver.references.get(name, {}).items():
                    references[reference, tuple(np.ravel(levels).tolist())] = None
            for (reference, levels), line in zip(references, _REFERENCE_LINES * len(references)):
                for i, level in enumerate(levels):
                    ax.axhline(level, color="0.35", linestyle=line, linewidth=1.0, zorder=1,
                               label=_plain(reference) if i == 0 else None)
                extent.append(np.array(levels))
            _set_limits(ax, extent, log=False)
            _set_integer_axis(ax, longest)
            ax.set_xlabel("slot $k$ (iteration $t$ uses slot $((t-1) \\; \\mathrm{mod} \\; P) + 1$)")
            symbol = math_name(name)
            ax.set_ylabel(("stored " if raw_any else "") + symbol)
            if title:
                ax.set_title(("stored (unconstrained) value of " if raw_any else "learned ") + symbol)
            _legend(ax, len(drawing) + len(references))
        fig.tight_layout()
    return fig


def plot_params(run: Run | Sequence[Run], path: str | Path, *, solvers: Sequence[str] | str | None = None,
                style: str | Path | dict | None = None, title: bool = True) -> Path:
    """Draw :func:`params_figure` and save it to ``path`` (format from the suffix); returns ``path``."""
    with _styled(style):
        return save_figure(params_figure(run, solvers=solvers, title=title), path)


# --- losses -------------------------------------------------------------------------------------


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
    runs = _as_runs(runs)
    chosen = [(label, run, solver) for label, run, solver in _selected(runs, solvers)
              if solver.losses or solver.stages]
    if not chosen:
        from .loading import no_history_reason

        def reason(run: Run) -> str:
            kept = [label for label, solver in run.solvers.items() if solver.losses or solver.stages]
            if kept:  # the run has histories, of solvers not chosen
                return f"the solvers chosen have none; those of {', '.join(kept)} are saved"
            return no_history_reason(run)

        raise RunFileError("; ".join(f"{r.label!r}: no loss history saved ({reason(r)})" for r in runs))
    by_step = all(solver.losses for _, _, solver in chosen)
    with _styled(style):
        plt = _pyplot()
        fig, ax = plt.subplots()
        styles = _series_styles([True] * len(chosen), 1)
        everything: list[np.ndarray] = []
        boundaries = None
        longest = 1
        for (label, run, solver), style_ in zip(chosen, styles):
            style_ = {key: style_[key] for key in ("color", "zorder", "linestyle")}
            first = True
            if by_step:
                for seed, history in solver.losses.items():
                    x = history.step if np.all(np.diff(history.step) > 0) else np.arange(1, len(history.loss) + 1)
                    ax.plot(x, history.loss, linewidth=0.9, alpha=0.85, label=_plain(label) if first else None,
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
                            label=_plain(label) if first else None, **style_)
                    first = False
                    everything.append(summary.mean_loss)
                    longest = max(longest, int(summary.stage.max()) if len(summary.stage) else 1)
        values = np.concatenate([np.ravel(v) for v in everything])
        values = values[np.isfinite(values)]
        log = bool(values.size and np.all(values > 0))
        if log:
            ax.set_yscale("log")
        for boundary in (boundaries if boundaries is not None and len(boundaries) <= 200 else []):
            ax.axvline(boundary, color="0.8", linewidth=0.5, zorder=0)
        _set_limits(ax, everything, log=log)
        _set_integer_axis(ax, longest)
        ax.set_xlabel("optimiser step" if by_step else "stage")
        ax.set_ylabel("training loss" + ("" if by_step else " (mean over the stage's last chunk)"))
        if title:
            ax.set_title("training loss" + (" (each line one seed; grey lines: stage boundaries)" if by_step else ""))
        _legend(ax, len(chosen))
        fig.tight_layout()
    return fig


def plot_losses(run: Run | Sequence[Run], path: str | Path, *, solvers: Sequence[str] | str | None = None,
                style: str | Path | dict | None = None, title: bool = True) -> Path:
    """Draw :func:`losses_figure` and save it to ``path`` (format from the suffix); returns ``path``."""
    with _styled(style):
        return save_figure(losses_figure(run, solvers=solvers, title=title), path)


# --- the figures of a run folder ----------------------------------------------------------------


def write_figures(run: Run, folder: str | Path, *, metric: str | None = None, formats: Sequence[str] = ("png",),
                  style: str | Path | dict | None = None, warn=None) -> dict[str, Path]:
    """Write the figures of ``run`` into ``folder``: ``mse.<fmt>`` (the curves of ``metric``, default the
    primary one; the name is kept whatever the metric), ``params.<fmt>`` and, when the run holds a loss
    history, ``losses.<fmt>``, for each format in ``formats`` (``png``, ``pdf``, ``svg``).

    Returns ``{file name: path}`` of the files written. Each figure is drawn once and
    saved in every format. With ``warn`` (a callable taking a message), a figure that
    cannot be drawn (anything but ``OSError``/``MemoryError``, which propagate) is
    left out and reported through it; without, the error propagates.

    Raises:
        ConfigError: an unknown format or style.
        RunFileError: an unknown metric.
    """
    formats = [str(f).lower().lstrip(".") for f in formats]
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise ConfigError(f"figure formats {bad or formats!r}: choose among {', '.join(FORMATS)}")
    _style_spec(style)  # an unknown style is refused before anything is drawn
    if run.has_curves:
        run.metric(metric)  # refused before anything is drawn
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    drawings = []
    if run.has_curves:
        drawings.append(("mse", lambda: curves_figure(run, metric=metric)))
    drawings.append(("params", lambda: params_figure(run)))
    if run.has_losses or any(s.stages for s in run.solvers.values()):
        drawings.append(("losses", lambda: losses_figure(run)))
    written = {}
    plt = _pyplot()
    for stem, draw in drawings:
        try:
            with _styled(style):
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
