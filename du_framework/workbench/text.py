"""Text the workbench writes: strict JSON values, metric values, tables and the option tables.

One formatter for a metric's value (:func:`format_value`, :func:`metric_cell`) and one table
renderer (:func:`render_table`: Markdown, aligned plain text, LaTeX, HTML) serve ``unfold
compare``'s table, ``unfold report``, ``unfold list --options`` and the docs' tables.
"""

from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..options import option_rows

__all__ = ["json_safe", "strict_json", "plain_text", "format_value", "metric_cell", "render_table",
           "markdown_escape", "latex_escape", "format_options", "table_iterations", "TABLE_FORMS"]

TABLE_FORMS = ("markdown", "text", "latex", "html")
"""What :func:`render_table` writes."""


def json_safe(value: Any) -> Any:
    """``value`` with every non-finite float (NaN, +-inf) replaced by ``None``, NumPy values as Python ones."""
    if isinstance(value, dict):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


def strict_json(value: Any) -> str:
    """``value`` as strict JSON (RFC 8259): NaN and infinities become ``null``, never ``NaN``/``Infinity``."""
    return json.dumps(json_safe(value), indent=2, allow_nan=False)


def plain_text(text: Any) -> str:
    """``text`` as matplotlib draws it literally: ``$`` escaped (no mathtext), no hidden legend entry."""
    text = str(text).replace("$", r"\$")  # outside mathtext only "\$" is special; other backslashes stay
    return " " + text if text.startswith("_") else text  # a legend leaves out labels starting with "_"


# --- numbers -------------------------------------------------------------------------------------

_PRECISION = re.compile(r"(.*\.)(\d+)([eEfFgG%])")


def format_value(value: float | None, spec: str, *, brief: bool = False) -> str:
    """One metric value for a table cell, in the metric's format ``spec`` (``.3e``, ``.2f``).

    ``None`` (no such value) is ``-`` and NaN (a diverged curve) ``nan``. With ``brief`` the
    precision is one digit less (down to 1): the bounds of a spread need less than the centre.
    """
    if value is None:
        return "-"
    value = float(value)
    if math.isnan(value):
        return "nan"
    if brief:
        match = _PRECISION.fullmatch(spec)
        if match and int(match.group(2)) > 1:
            spec = f"{match.group(1)}{int(match.group(2)) - 1}{match.group(3)}"
    return format(value, spec)


def metric_cell(central: float | None, spec: str, low: float | None = None, high: float | None = None) -> str:
    """A table cell: ``central`` in format ``spec``; with both bounds ``median [min, max]``, the bounds
    one digit briefer (:func:`format_value`). The caller decides when a spread is shown (several seeds)."""
    text = format_value(central, spec)
    if central is not None and low is not None and high is not None:
        text += f" [{format_value(low, spec, brief=True)}, {format_value(high, spec, brief=True)}]"
    return text


# --- tables --------------------------------------------------------------------------------------


def table_iterations(depth: int) -> list[int]:
    """Iterations shown in the table: 1, 5, 10, 20, ... up to and including ``depth``."""
    marks = [1, 5, 10, 20, 30, 40, 50, 100, 200, 500, 1000]
    chosen = [t for t in marks if t < depth]
    return chosen + [depth]


def markdown_escape(text: Any) -> str:
    """``text`` as literal Markdown prose: every character Markdown acts on escaped, never a link or heading."""
    text = re.sub(r"([\\`*_<>|])", r"\\\1", str(text))
    text = text.replace("](", "]\\(")  # never a link
    return "\\" + text if text.startswith(("#", "-", "+", "=")) else text


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "{": r"\{", "}": r"\}", "$": r"\$", "&": r"\&", "#": r"\#",
                  "^": r"\textasciicircum{}", "_": r"\_", "%": r"\%", "~": r"\textasciitilde{}"}


def latex_escape(text: Any) -> str:
    """``text`` as literal LaTeX text (every special character escaped)."""
    return "".join(_LATEX_SPECIAL.get(c, c) for c in str(text))


def _pipes(text: Any) -> str:
    return str(text).replace("|", "\\|")


def render_table(header: Sequence[str], rows: Sequence[Sequence[str]], form: str = "markdown", *,
                 escape: Callable[[Any], str] | None = None, align: str | None = None, rule: bool = False,
                 caption: str = "") -> str:
    """A table of string cells as ``form``: ``markdown``, ``text``, ``latex`` or ``html``.

    Args:
        header: the column titles.
        rows: the cells, one list per row.
        form: ``markdown`` (a pipe table), ``text`` (columns aligned, two spaces apart),
            ``latex`` (a booktabs ``table``; wider than six columns scaled to the text
            width) or ``html`` (a ``<table>``).
        escape: applied to every title, cell and caption (default: Markdown escapes
            only ``|``; LaTeX :func:`latex_escape`; HTML :func:`html.escape`; text nothing).
        align: ``l`` or ``r`` per column for text and LaTeX (default: all ``l``).
        rule: text only: a line of dashes under the header.
        caption: above the table (Markdown: in italics; text: not shown).

    Trailing spaces are never written (a text table's last column is padded only when right-aligned).
    """
    header, rows = [str(cell) for cell in header], [[str(cell) for cell in row] for row in rows]
    align = (align or "").ljust(len(header), "l")
    if form == "markdown":
        escape = escape or _pipes
        line = lambda cells: "| " + " | ".join(escape(cell) for cell in cells) + " |"
        table = "\n".join([line(header), "|" + "|".join("---" for _ in header) + "|"] + [line(row) for row in rows])
        return ("*" + escape(caption) + "*\n\n" if caption else "") + table
    if form == "text":
        escape = escape or str
        cells = [[escape(cell) for cell in row] for row in [header] + rows]
        widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
        if rule:
            cells.insert(1, ["-" * width for width in widths])
        fmt = lambda row: "  ".join(cell.rjust(w) if a == "r" else cell.ljust(w)
                                    for cell, w, a in zip(row, widths, align)).rstrip()
        return "\n".join(fmt(row) for row in cells)
    if form == "latex":
        escape = escape or latex_escape
        body = [" & ".join(escape(c) for c in header) + r" \\", r"\midrule"]
        body += [" & ".join(escape(c) for c in row) + r" \\" for row in rows]
        tabular = (f"\\begin{{tabular}}{{{align}}}\n\\toprule\n" + "\n".join(body) + "\n\\bottomrule\n"
                   "\\end{tabular}")
        if len(header) > 6:
            tabular = "\\resizebox{\\textwidth}{!}{%\n" + tabular + "}"
        return ("\\begin{table}[htbp]\n\\centering\\small\n"
                + (f"\\caption{{{escape(caption)}}}\n" if caption else "") + tabular + "\n\\end{table}")
    if form == "html":
        escape = escape or html.escape
        body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in rows)
        return ("<table>" + (f"<caption>{escape(caption)}</caption>" if caption else "")
                + "<thead><tr>" + "".join(f"<th>{escape(c)}</th>" for c in header) + "</tr></thead>"
                + f"<tbody>{body}</tbody></table>")
    raise ValueError(f"table form {form!r}: choose one of {', '.join(TABLE_FORMS)}")


def format_options(options_cls: type, *, prefix: str = "", markdown: bool = False) -> str:
    """The declared options of a component (:func:`du_framework.options.option_rows`) as an aligned
    text table (``unfold list --options``) or a Markdown table (the docs).

    A ``tune`` column (the search ranges of ``unfold tune``) appears when an option is tunable.
    """
    rows = option_rows(options_cls)
    if not rows:
        return "(no options)"
    tuned = any("tune" in r for r in rows)
    header = ["key", "type", "default", "constraint"] + (["tune"] if tuned else []) + ["help"]
    cells = [[prefix + r["key"], r["type"], r["default"], r["constraint"]] + ([r.get("tune", "")] if tuned else [])
             + [r["help"]] for r in rows]
    if markdown:
        return render_table(header, [[f"`{row[0]}`"] + row[1:] for row in cells])
    return render_table(header, cells, "text")
