"""Reports of saved runs: Markdown, LaTeX or self-contained HTML.

:func:`write_publication` writes one report of one or several runs
(:class:`~du_framework.workbench.loading.Run`): for each run its problem, a table of one
metric at the iterations of :func:`du_framework.workbench.text.table_iterations` (with
several training seeds every cell is ``median [min, max]`` over the seeds that did
not diverge, as the run recorded them), its figures (curves, learned parameters,
training losses when saved), its configuration (TOML) and what produced it
(versions, backend, command, git revision); for several runs first a side-by-side
section (one table, one overlaid figure, the configuration keys that differ).

Figures: HTML embeds them as inline SVG (one file, nothing beside it); Markdown
writes PNG files and LaTeX PDF files into ``<report stem>_files/`` beside the
report and refers to them by relative path. Every file is written atomically.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ...errors import ConfigError
from ...io.atomic import atomic_write
from .. import figures
from ..loading import Run
from .document import Figure, config_differences, document, metric_rows
from .render import inline_svg, render_html, render_latex, render_markdown

__all__ = ["write_publication", "write_document", "REPORT_FORMATS", "format_from_path", "metric_rows",
           "config_differences"]

REPORT_FORMATS = {"markdown": ".md", "latex": ".tex", "html": ".html"}
"""Report formats and their file suffixes."""

_SUFFIXES = {".md": "markdown", ".markdown": "markdown", ".tex": "latex", ".html": "html", ".htm": "html"}


def format_from_path(path: str | Path, given: str | None = None) -> str:
    """The report format: ``given`` (``markdown``, ``latex``, ``html``), else from the suffix of ``path``.

    Raises:
        ConfigError: an unknown format, or a suffix that names none and no ``given``.
    """
    if given:
        if given not in REPORT_FORMATS:
            raise ConfigError(f"report format {given!r}: choose markdown, latex or html")
        return given
    suffix = Path(path).suffix.lower()
    if suffix not in _SUFFIXES:
        raise ConfigError(f"report file {str(path)!r}: give --format markdown|latex|html or a suffix "
                          f"({', '.join(sorted(_SUFFIXES))})")
    return _SUFFIXES[suffix]


def write_publication(runs: Run | Sequence[Run], path: str | Path, *, format: str | None = None,
                      metric: str | None = None, style: Any = None) -> list[Path]:
    """Write a report of ``runs`` to ``path`` (``format``: ``markdown``, ``latex``, ``html``; default
    from the suffix) and its figure files; returns every path written, the report first.

    ``metric``: the metric of the tables and curve figures (default: each run's
    primary one; the side-by-side section uses the first run's). Markdown and
    LaTeX figures go to ``<stem>_files/`` beside the report (PNG at 200 dpi,
    PDF); HTML embeds them as inline SVG.

    Raises:
        ConfigError: an unknown format or style; a metric no run has.
        RunFileError: from the runs (a metric a run lacks, ...).
    """
    runs = [runs] if isinstance(runs, Run) else list(runs)
    if not runs:
        raise ConfigError("a report needs at least one run")
    kind = format_from_path(path, format)
    figures.style_spec(style)  # an unknown style is refused before anything is written
    return write_document(document(runs, metric, style), path, format=kind, style=style)


def write_document(blocks: Sequence[Any], path: str | Path, *, format: str | None = None,
                   style: Any = None) -> list[Path]:
    """Write a document (headings, paragraphs, lists, tables, figures, code: :mod:`.document`) to ``path`` as
    ``format`` (default from the suffix), its figures drawn with ``style``; returns every path written, the
    report first. Markdown and LaTeX figures go to ``<stem>_files/`` beside it; HTML embeds them as SVG."""
    path = Path(path)
    kind = format_from_path(path, format)
    figures.style_spec(style)
    written: list[Path] = [path]
    files_dir = path.parent / f"{path.stem}_files"
    plt = figures.pyplot()

    def figure_file(block: Figure, suffix: str) -> str:
        files_dir.mkdir(parents=True, exist_ok=True)
        target = files_dir / f"{block.name}.{suffix}"
        with figures.styled(style):
            figures.save_figure(block.draw(), target)
        written.append(target)
        return f"{files_dir.name}/{target.name}"

    def figure_svg(block: Figure) -> str:
        with figures.styled(style):
            fig = block.draw()
            try:
                return inline_svg(figures.figure_bytes(fig, "svg"))
            finally:
                plt.close(fig)

    if kind == "markdown":
        text = render_markdown(blocks, figure_file)
    elif kind == "latex":
        text = render_latex(blocks, figure_file)
    else:
        text = render_html(blocks, figure_svg)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as handle:
        handle.write(text)
    return written
