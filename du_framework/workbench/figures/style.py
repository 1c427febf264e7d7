"""matplotlib for the figures: the Agg backend, the paper defaults and a user's style, and the look of
each series (one colour and marker per solver; learned solid with filled markers, classical dashed
with open ones, so the two kinds differ in greyscale)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ...errors import ConfigError, nearest

__all__ = ["pyplot", "style_spec", "styled", "series_styles", "MIN_PNG_DPI", "REFERENCE_LINES"]

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

_LEARNED_MARKERS = ("o", "s", "^", "D", "v", "P", "h", "X", "<", ">")
_CLASSICAL_MARKERS = ("x", "+", "d", "*", "p", "|", "h", "1", "_", "8")
_CLASSICAL_LINES = ("--", ":", "-.", (0, (6, 2, 1, 2, 1, 2)), (0, (1, 1)), (0, (8, 3)))
REFERENCE_LINES = (":", "--", "-.", (0, (3, 1, 1, 1)))


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
    if style is None or style == "":
        return []
    if isinstance(style, dict):
        return [style]
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
    hint = nearest(text, plt.style.available)
    raise ConfigError(f"style {text!r} is neither a matplotlib style nor a file; styles: "
                      f"{', '.join(sorted(plt.style.available))}" + (f" (did you mean {hint!r}?)" if hint else ""))


@contextlib.contextmanager
def styled(style: str | Path | dict | None) -> Iterator[None]:
    """Our paper defaults, then ``style`` over them, for the figures drawn (and saved) inside."""
    plt = pyplot()
    with plt.style.context([_BASE_RC, *style_spec(style)]):
        yield


def series_styles(kinds: Sequence[bool], length: int) -> list[dict[str, Any]]:
    """Line properties of each series (``kinds``: trainable or not), in drawing order."""
    plt = pyplot()
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
