"""matplotlib for the figures: the Agg backend, the paper defaults, the ``paper`` preset and a user's style,
and the look of each series: one colour and marker per solver label, the same in every figure of a run
and across the runs of an overlay (:func:`solver_looks`); learned solid with filled markers, classical
dashed with open ones, so the two kinds differ in greyscale."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ...errors import ConfigError, nearest

__all__ = ["pyplot", "style_spec", "styled", "titled", "series_styles", "solver_looks", "MIN_PNG_DPI",
           "REFERENCE_LINES", "PAPER", "PAPER_RC", "RUN_LINES"]

MIN_PNG_DPI = 200

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

PAPER = "paper"
"""The preset for a paper's figures: one column wide, small type, no titles (the caption says it)."""

PAPER_RC = {
    "figure.figsize": (3.5, 2.5),  # one column of a two-column journal or conference page
    "font.size": 8.0,
    "legend.fontsize": 7.0,
    "lines.linewidth": 1.0,
    "lines.markersize": 3.5,
    "axes.linewidth": 0.6,
    "grid.linewidth": 0.4,
    "xtick.major.width": 0.6,
    "ytick.major.width": 0.6,
    "savefig.pad_inches": 0.02,
}

_LEARNED_MARKERS = ("o", "s", "^", "D", "v", "P", "h", "X", "<", ">")
_CLASSICAL_MARKERS = ("x", "+", "d", "*", "p", "|", "h", "1", "_", "8")
_CLASSICAL_LINES = ("--", ":", "-.", (0, (6, 2, 1, 2, 1, 2)), (0, (1, 1)), (0, (8, 3)))
REFERENCE_LINES = (":", "--", "-.", (0, (3, 1, 1, 1)))
RUN_LINES = ("-", "--", ":", "-.", (0, (6, 2, 1, 2, 1, 2)), (0, (1, 1)), (0, (8, 3)))
"""Line styles of the runs of an overlay, in order (each solver keeps its colour and marker)."""


def pyplot():
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


def style_spec(style: str | Path | dict | None) -> list[Any]:
    """The rcParams layers of ``style``: ``paper`` (:data:`PAPER_RC`), a matplotlib style name, a file, a dict.

    Raises:
        ConfigError: none of these (the message lists the style names, ``paper`` first).
    """
    if style is None or style == "":
        return []
    if isinstance(style, dict):
        return [style]
    if style == PAPER:
        return [PAPER_RC]
    plt = pyplot()
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
    hint = nearest(text, [PAPER, *plt.style.available])
    raise ConfigError(f"style {text!r} is neither a matplotlib style nor a file; styles: {PAPER} (one column wide, "
                      f"no titles), {', '.join(sorted(plt.style.available))}"
                      + (f" (did you mean {hint!r}?)" if hint else ""))


def titled(style: Any, title: bool = True) -> bool:
    """Whether a figure drawn with ``style`` carries a title: ``title``, and never with the ``paper`` preset."""
    return bool(title) and not (isinstance(style, str) and style == PAPER)


_DEPTH = [0]  # styled() blocks entered and not left: an inner one without a style keeps the outer one's


@contextlib.contextmanager
def styled(style: str | Path | dict | None) -> Iterator[None]:
    """Our paper defaults, then ``style`` over them, for the figures drawn (and saved) inside.

    Inside another ``styled`` block, no ``style`` changes nothing: a figure drawn by a
    function that styles itself keeps the style its caller chose (``plot_curves(...,
    style="paper")`` draws with ``curves_figure``, which is called without one).
    """
    plt = pyplot()
    layers = style_spec(style)
    with plt.style.context([] if _DEPTH[0] and not layers else [_BASE_RC, *layers]):
        _DEPTH[0] += 1
        try:
            yield
        finally:
            _DEPTH[0] -= 1


def solver_looks(solvers: Sequence[tuple[str, bool]]) -> dict[str, dict[str, Any]]:
    """The look of each solver label: ``{label: {"color", "marker", "linestyle", ...}}``.

    ``solvers``: ``(label, trainable)`` in order; a label seen again keeps its first
    entry. The n-th distinct label takes the n-th colour of the style's colour cycle;
    learned solvers take the filled markers in turn and a solid line, classical ones
    the open markers and the dashed or dotted lines in turn. Every figure of a run is
    given all of the run's solvers (and an overlay the ordered union of its runs'), so
    a solver has one colour and marker in every figure, whichever solvers it draws.
    """
    plt = pyplot()
    colors = plt.rcParams["axes.prop_cycle"].by_key().get("color", ["k"])
    looks: dict[str, dict[str, Any]] = {}
    learned = classical = 0
    for label, trainable in solvers:
        if label in looks:
            continue
        look: dict[str, Any] = {"color": colors[len(looks) % len(colors)]}
        if trainable:
            look.update(linestyle="-", marker=_LEARNED_MARKERS[learned % len(_LEARNED_MARKERS)])
            learned += 1
        else:
            look.update(linestyle=_CLASSICAL_LINES[classical % len(_CLASSICAL_LINES)],
                        marker=_CLASSICAL_MARKERS[classical % len(_CLASSICAL_MARKERS)], markerfacecolor="none",
                        markeredgewidth=1.2 * _scale("lines.linewidth", 1.5))
            classical += 1
        looks[label] = look
    return looks


def _scale(key: str, default: float) -> float:
    """How the style's ``key`` compares with our default (a preset with thinner lines draws thinner series)."""
    try:
        return float(pyplot().rcParams[key]) / default
    except (TypeError, ValueError):
        return 1.0


def series_styles(kinds: Sequence[bool], length: int, looks: Sequence[dict[str, Any]] | None = None
                  ) -> list[dict[str, Any]]:
    """Line properties of each series in drawing order: ``looks`` (each series' solver look, from
    :func:`solver_looks`; default: ``kinds``, trainable or not, as solvers of their own), with
    what depends on the order: earlier series thicker and below, markers at staggered iterations."""
    if looks is None:
        looks = list(solver_looks([(str(i), trainable) for i, trainable in enumerate(kinds)]).values())
    count = len(kinds)
    every = max(1, round(length / 8))
    widths, sizes = _scale("lines.linewidth", 1.5), _scale("lines.markersize", 5.0)
    styles = []
    for i, look in enumerate(looks):
        width = 2.6 - 1.5 * i / (count - 1) if count > 1 else 1.8
        styles.append({**look, "linewidth": width * widths, "zorder": 2 + i,
                       "markevery": (min(length - 1, (i * every) // max(count, 1)) if length > 1 else 0, every),
                       "markersize": (6.0 - 1.5 * i / max(count - 1, 1)) * sizes})
    return styles
