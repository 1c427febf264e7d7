"""Reports of saved runs: Markdown, LaTeX or self-contained HTML.

:func:`write_publication` writes one report of one or several runs
(:class:`~du_framework.workbench.loading.Run`): for each run its problem, a table of one
metric at the iterations of :func:`du_framework.workbench.report.table_iterations` (with
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

import dataclasses
import html
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError
from .loading import Run, SolverRun

__all__ = ["write_publication", "REPORT_FORMATS", "format_from_path", "metric_rows", "config_differences"]

REPORT_FORMATS = {"markdown": ".md", "latex": ".tex", "html": ".html"}
"""Report formats and their file suffixes."""

_SUFFIXES = {".md": "markdown", ".markdown": "markdown", ".tex": "latex", ".html": "html", ".htm": "html"}


# --- a small document model, rendered three ways -------------------------------------------------


@dataclasses.dataclass
class _Heading:
    level: int
    text: str


@dataclasses.dataclass
class _Para:
    text: str


@dataclasses.dataclass
class _Items:
    items: list[str]


@dataclasses.dataclass
class _Table:
    header: list[str]
    rows: list[list[str]]
    caption: str = ""


@dataclasses.dataclass
class _Figure:
    name: str  # file stem
    draw: Any  # () -> matplotlib Figure
    caption: str


@dataclasses.dataclass
class _Code:
    text: str
    language: str = ""


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


# --- content -------------------------------------------------------------------------------------


def _kind(solver: SolverRun) -> str:
    return "learned" if solver.trainable else "classical"


def _seeds_cell(solver: SolverRun) -> str:
    if not solver.seeds:
        return "-"
    diverged = len(solver.diverged_seeds)
    return f"{len(solver.seeds)}" + (f" ({diverged} diverged)" if diverged else "")


def _cell(run: Run, solver: SolverRun, metric: str, t: int) -> str:
    info = run.metrics[metric]
    curve = solver.metrics.get(metric)
    if curve is None or t > len(curve):
        return "-"
    text = info.show(curve[t - 1])
    bounds = (solver.spread or {}).get(metric)
    if bounds is not None and len(solver.ok_seeds) > 1:
        text += f" [{_brief(info, bounds[0][t - 1])}, {_brief(info, bounds[1][t - 1])}]"
    return text


def _brief(info, value: float) -> str:
    """A bound of the spread: the metric's format with one digit less (as ``unfold compare``'s table)."""
    match = re.fullmatch(r"(.*\.)(\d+)([eEfFgG%])", info.format)
    if match and int(match.group(2)) > 1 and np.isfinite(value):
        return format(float(value), f"{match.group(1)}{int(match.group(2)) - 1}{match.group(3)}")
    return info.show(value)


def _iterations(depth: int) -> list[int]:
    from .report import table_iterations

    return table_iterations(depth) if depth >= 1 else []


def metric_rows(run: Run, metric: str, iterations: list[int] | None = None) -> tuple[list[str], list[list[str]]]:
    """``(header, rows)`` of a run's table: solver, kind, seeds, the metric at ``iterations``, final loss, train s.

    Cells of a solver with spread read ``median [min, max]``; ``-`` where a value does not exist.
    """
    info = run.metric(metric)
    iterations = iterations or _iterations(run.depth)
    header = ["solver", "kind", "seeds"] + [f"t={t}" for t in iterations] + ["final loss", "train s"]
    rows = []
    for label, solver in run.solvers.items():
        if metric not in solver.metrics:
            continue
        loss = "-" if solver.final_loss is None or not np.isfinite(solver.final_loss) else f"{solver.final_loss:.3e}"
        seconds = ("loaded" if solver.loaded_from else f"{solver.train_seconds:.2f}") if solver.trainable else "-"
        rows.append([label, _kind(solver), _seeds_cell(solver)]
                    + [_cell(run, solver, info.name, t) for t in iterations] + [loss, seconds])
    return header, rows


def _flatten(config: Any, prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    if isinstance(config, dict):
        for key, value in config.items():
            flat.update(_flatten(value, f"{prefix}{key}."))
    elif isinstance(config, list) and config and all(isinstance(item, dict) for item in config):
        for i, item in enumerate(config):
            name = item.get("label") or item.get("name") or str(i)
            flat.update(_flatten(item, f"{prefix}{name}."))
    else:
        flat[prefix.rstrip(".")] = config
    return flat


def config_differences(runs: Sequence[Run]) -> tuple[list[str], list[list[str]]]:
    """``(header, rows)``: every configuration key (dotted, solvers by label) whose value differs between runs."""
    from .figures import run_labels

    flats = [_flatten(run.config) for run in runs]
    keys = list(dict.fromkeys(key for flat in flats for key in flat))
    rows = []
    for key in keys:
        values = [json.dumps(flat[key]) if key in flat else "(absent)" for flat in flats]
        if len(set(values)) > 1:
            rows.append([key] + values)
    return ["key"] + run_labels(runs), rows


def _facts(run: Run) -> list[str]:
    items = []
    if run.folder is not None:
        items.append(f"folder: {run.folder}")
    kind = "unfold compare" if run.kind == "compare" else "unfold train (checkpoints, no evaluation curves)"
    items.append(f"written by {kind}" + (f", results schema {run.schema_version}" if run.schema_version else ""))
    if run.manifest:
        items.append(f"status: {run.manifest.get('status', '?')}; command: {run.manifest.get('command', '?')}")
        items.append(f"manifest: {len(run.verified)} file(s) verified by sha256")
    if run.created:
        items.append(f"created: {run.created}")
    if run.summary:
        items.append("seeds summarised by: " + ", ".join(f"{k} {v}" for k, v in run.summary.items()))
    if run.train_seeds:
        items.append(f"training seeds: {', '.join(map(str, run.train_seeds))}")
    if run.evaluation:
        ev = run.evaluation
        items.append(f"evaluation: {ev.get('batches', '?')} x {ev.get('batch_size', '?')} instances from seed "
                     f"{ev.get('seed', '?')}, {ev.get('iterations', '?')} iterations")
    return items


def _provenance(run: Run) -> list[str]:
    prov = run.provenance or {}
    if not prov:
        return ["not recorded"]
    items = [f"du-framework {prov.get('du_framework', '?')}, Python {prov.get('python', '?')}"]
    libraries = prov.get("libraries") or {}
    if isinstance(libraries, dict) and libraries:
        items.append("libraries: " + ", ".join(f"{k} {v}" for k, v in libraries.items()))
    plugins = prov.get("plugins") or {}
    if isinstance(plugins, dict) and plugins:
        items.append("plugins: " + ", ".join(
            f"{name} {(info or {}).get('version') or '(in process)'}" if isinstance(info, dict) else name
            for name, info in plugins.items()))
    items.append(f"backend: {prov.get('backend', '?')}; devices: {', '.join(map(str, prov.get('devices') or [])) or '?'}")
    git = prov.get("git")
    if isinstance(git, dict):
        items.append(f"git: {git.get('revision', '?')}" + (" (with uncommitted changes)" if git.get("dirty") else ""))
    if prov.get("command_line"):
        items.append("command line: " + " ".join(map(str, prov["command_line"])))
    return items


def _config_text(run: Run) -> tuple[str, str]:
    from .runs import to_toml

    try:
        return to_toml(run.config), "toml"
    except (ConfigError, TypeError, ValueError, AttributeError):
        return json.dumps(run.config, indent=2), "json"


def _safe_stem(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-.") or "run"


def _choose_metric(run: Run, metric: str | None) -> str | None:
    if not run.has_curves:
        return None
    if metric and metric in run.metrics:
        return metric
    return run.metric(None).name if not metric else None


def _document(runs: list[Run], metric: str | None, style: Any) -> list[Any]:
    from . import figures

    labels = figures.run_labels(runs)
    curve_runs = [run for run in runs if run.has_curves]
    if metric is not None and curve_runs and not any(metric in run.metrics for run in curve_runs):
        curve_runs[0].metric(metric)  # raises, listing the metrics
    title = "Report: " + ", ".join(labels)
    blocks: list[Any] = [_Heading(1, title)]
    if len(runs) > 1:
        blocks.append(_Heading(2, "Side by side"))
        shown = metric or (curve_runs[0].metric().name if curve_runs else None)
        sharing = [run for run in curve_runs if shown in run.metrics]
        if sharing:
            info = sharing[0].metrics[shown]
            iterations = sorted({t for run in sharing for t in _iterations(run.depth)})
            header = ["run", "solver", "kind", "seeds"] + [f"t={t}" for t in iterations]
            rows = []
            for label, run in zip(labels, runs):
                if run not in sharing:
                    continue
                for solver_label, solver in run.solvers.items():
                    if shown in solver.metrics:
                        rows.append([label, solver_label, _kind(solver), _seeds_cell(solver)]
                                    + [_cell(run, solver, shown, t) for t in iterations])
            blocks.append(_Table(header, rows, f"{info.title} after iteration t"
                                 + (" (median [min, max] over the seeds that did not diverge)"
                                    if any(s.spread for r in sharing for s in r.solvers.values()) else "")))
            blocks.append(_Figure("overlay-" + _safe_stem(shown), lambda: figures.curves_figure(
                sharing, metric=shown, style=style), f"{info.title} versus iteration, every run"))
            left_out = [label for label, run in zip(labels, runs) if run not in sharing]
            if left_out:
                blocks.append(_Para(f"Not in this comparison (no {shown!r} curves): {', '.join(left_out)}."))
        header, rows = config_differences(runs)
        if rows:
            blocks.append(_Table(header, rows, "configuration keys that differ between the runs"))
        else:
            blocks.append(_Para("The runs have the same configuration."))
    for label, run in zip(labels, runs):
        blocks += _run_section(label, run, metric, style, level=2)
    return blocks


def _run_section(label: str, run: Run, metric: str | None, style: Any, level: int) -> list[Any]:
    from . import figures

    stem = _safe_stem(label)
    blocks: list[Any] = [_Heading(level, f"Run {label}"), _Items(_facts(run))]
    if run.missing:
        blocks += [_Para("What this run does not hold:"), _Items(list(run.missing))]
    if run.warnings:
        blocks += [_Para("Warnings:"), _Items(list(run.warnings))]
    if run.problem:
        blocks += [_Heading(level + 1, "Problem"),
                   _Table(["fact", "value"], [[str(k), _value(v)] for k, v in run.problem.items()])]
    shown = _choose_metric(run, metric)
    if shown is not None:
        info = run.metrics[shown]
        header, rows = metric_rows(run, shown)
        spread = any(s.spread and len(s.ok_seeds) > 1 for s in run.solvers.values())
        blocks += [_Heading(level + 1, f"{info.title} ({'lower' if info.lower_is_better else 'higher'} is better)"),
                   _Table(header, rows, f"{info.title} after iteration t"
                          + ("; cells with seeds: median [min, max] over the seeds that did not diverge"
                             if spread else ""))]
        blocks.append(_Figure(f"{stem}-{_safe_stem(shown)}", lambda: figures.curves_figure(
            run, metric=shown, style=style), f"{info.title} versus iteration ({label})"))
    elif metric is not None and run.has_curves:
        blocks.append(_Para(f"This run has no metric {metric!r}; its metrics: {', '.join(run.metrics)}."))
    if run.kind == "train":
        rows = [[s.label, s.name, str(s.extra.get("status", "")), f"{s.train_seconds:.2f}",
                 ", ".join(f"{n} {list(v.shape)}" for n, v in s.stored_params.items())]
                for s in run.solvers.values() if s.checkpoint]
        if rows:
            blocks += [_Heading(level + 1, "Checkpoints"),
                       _Table(["solver", "name", "status", "train s", "stored parameters (shape)"], rows)]
    learned = [s for s in run.solvers.values() if s.trainable and (s.params or s.stored_params)]
    if learned:
        blocks.append(_Figure(f"{stem}-params", lambda: figures.params_figure(run, style=style),
                              f"learned parameters per slot ({label})"))
    if run.has_losses or any(s.stages for s in run.solvers.values()):
        blocks.append(_Figure(f"{stem}-losses", lambda: figures.losses_figure(run, style=style),
                              f"training loss ({label})"))
    text, language = _config_text(run)
    blocks += [_Heading(level + 1, "Configuration"), _Code(text, language),
               _Heading(level + 1, "Provenance"), _Items(_provenance(run))]
    return blocks


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value) if not isinstance(value, (dict, list)) else json.dumps(value)


# --- rendering -----------------------------------------------------------------------------------


def _markdown_escape(text: str) -> str:
    text = re.sub(r"([\\`*_<>|])", r"\\\1", str(text))
    text = text.replace("](", "]\\(")  # never a link
    return "\\" + text if text.startswith(("#", "-", "+", "=")) else text


def _render_markdown(blocks, figure_file) -> str:
    out = []
    for block in blocks:
        if isinstance(block, _Heading):
            out.append("#" * block.level + " " + _markdown_escape(block.text))
        elif isinstance(block, _Para):
            out.append(_markdown_escape(block.text))
        elif isinstance(block, _Items):
            out.append("\n".join("- " + _markdown_escape(item) for item in block.items))
        elif isinstance(block, _Table):
            line = lambda cells: "| " + " | ".join(_markdown_escape(c) for c in cells) + " |"
            table = [line(block.header), "|" + "|".join("---" for _ in block.header) + "|"]
            table += [line(row) for row in block.rows]
            out.append(("*" + _markdown_escape(block.caption) + "*\n\n" if block.caption else "") + "\n".join(table))
        elif isinstance(block, _Figure):
            relative = figure_file(block, "png")
            out.append(f"![{_markdown_escape(block.caption)}]({relative.replace(' ', '%20')})")
        elif isinstance(block, _Code):
            fence = "````" if "```" in block.text else "```"
            out.append(f"{fence}{block.language}\n{block.text.rstrip()}\n{fence}")
    return "\n\n".join(out) + "\n"


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "{": r"\{", "}": r"\}", "$": r"\$", "&": r"\&", "#": r"\#",
                  "^": r"\textasciicircum{}", "_": r"\_", "%": r"\%", "~": r"\textasciitilde{}"}


def _latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(c, c) for c in str(text))


def _render_latex(blocks, figure_file) -> str:
    out = [r"\documentclass[10pt]{article}", r"\usepackage[T1]{fontenc}", r"\usepackage[utf8]{inputenc}",
           r"\usepackage{graphicx}", r"\usepackage{booktabs}", r"\usepackage[margin=2cm]{geometry}",
           r"\usepackage{verbatim}", r"\begin{document}"]
    commands = {1: "section*", 2: "section", 3: "subsection", 4: "subsubsection"}
    for block in blocks:
        if isinstance(block, _Heading):
            if block.level == 1:
                out.append(r"\begin{center}\Large " + _latex_escape(block.text) + r"\end{center}")
            else:
                out.append(f"\\{commands.get(block.level, 'paragraph')}{{{_latex_escape(block.text)}}}")
        elif isinstance(block, _Para):
            out.append(_latex_escape(block.text) + "\n")
        elif isinstance(block, _Items):
            out.append("\\begin{itemize}\n" + "\n".join(r"\item " + _latex_escape(i) for i in block.items)
                       + "\n\\end{itemize}")
        elif isinstance(block, _Table):
            spec = "l" * min(2, len(block.header)) + "r" * max(0, len(block.header) - 2)
            body = [" & ".join(_latex_escape(c) for c in block.header) + r" \\", r"\midrule"]
            body += [" & ".join(_latex_escape(c) for c in row) + r" \\" for row in block.rows]
            tabular = (f"\\begin{{tabular}}{{{spec}}}\n\\toprule\n" + "\n".join(body) + "\n\\bottomrule\n"
                       "\\end{tabular}")
            if len(block.header) > 6:
                tabular = "\\resizebox{\\textwidth}{!}{%\n" + tabular + "}"
            out.append("\\begin{table}[htbp]\n\\centering\\small\n"
                       + (f"\\caption{{{_latex_escape(block.caption)}}}\n" if block.caption else "")
                       + tabular + "\n\\end{table}")
        elif isinstance(block, _Figure):
            relative = figure_file(block, "pdf")
            out.append("\\begin{figure}[htbp]\n\\centering\n"
                       f"\\includegraphics[width=0.9\\textwidth]{{{relative}}}\n"
                       f"\\caption{{{_latex_escape(block.caption)}}}\n\\end{{figure}}")
        elif isinstance(block, _Code):
            text = block.text.replace("\\end{verbatim}", "\\end {verbatim}")
            out.append("{\\small\n\\begin{verbatim}\n" + text.rstrip() + "\n\\end{verbatim}\n}")
    out.append(r"\end{document}")
    return "\n\n".join(out) + "\n"


_CSS = """body{font-family:system-ui,sans-serif;max-width:72rem;margin:2rem auto;padding:0 1rem;color:#222}
table{border-collapse:collapse;margin:0.5rem 0 1.5rem;font-size:0.9rem}
th,td{border-bottom:1px solid #ccc;padding:0.2rem 0.6rem;text-align:right}
th:first-child,td:first-child,th:nth-child(2),td:nth-child(2){text-align:left}
caption{caption-side:top;text-align:left;font-style:italic;padding-bottom:0.3rem}
figure{margin:1rem 0} figure svg{max-width:100%;height:auto} figcaption{font-style:italic}
pre{background:#f6f6f6;padding:0.6rem;overflow:auto}"""


def _inline_svg(data: bytes) -> str:
    text = data.decode("utf-8")
    start = text.find("<svg")
    return text[start:] if start >= 0 else text


def _render_html(blocks, figure_svg) -> str:
    e = html.escape
    title = next((b.text for b in blocks if isinstance(b, _Heading)), "Report")
    out = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">', f"<title>{e(title)}</title>",
           f"<style>{_CSS}</style>", "</head>", "<body>"]
    for block in blocks:
        if isinstance(block, _Heading):
            out.append(f"<h{block.level}>{e(block.text)}</h{block.level}>")
        elif isinstance(block, _Para):
            out.append(f"<p>{e(block.text)}</p>")
        elif isinstance(block, _Items):
            out.append("<ul>" + "".join(f"<li>{e(item)}</li>" for item in block.items) + "</ul>")
        elif isinstance(block, _Table):
            rows = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in block.rows)
            out.append("<table>" + (f"<caption>{e(block.caption)}</caption>" if block.caption else "")
                       + "<thead><tr>" + "".join(f"<th>{e(c)}</th>" for c in block.header) + "</tr></thead>"
                       + f"<tbody>{rows}</tbody></table>")
        elif isinstance(block, _Figure):
            out.append(f"<figure>{figure_svg(block)}<figcaption>{e(block.caption)}</figcaption></figure>")
        elif isinstance(block, _Code):
            out.append(f"<pre><code>{e(block.text)}</code></pre>")
    out += ["</body>", "</html>"]
    return "\n".join(out) + "\n"


# --- the entry point -----------------------------------------------------------------------------


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
    from . import figures
    from ..io.atomic import atomic_write

    runs = [runs] if isinstance(runs, Run) else list(runs)
    if not runs:
        raise ConfigError("a report needs at least one run")
    path = Path(path)
    kind = format_from_path(path, format)
    figures._style_spec(style)  # an unknown style is refused before anything is written
    blocks = _document(runs, metric, style)
    written: list[Path] = [path]
    files_dir = path.parent / f"{path.stem}_files"
    plt = figures._pyplot()

    def figure_file(block: _Figure, suffix: str) -> str:
        files_dir.mkdir(parents=True, exist_ok=True)
        target = files_dir / f"{block.name}.{suffix}"
        with figures._styled(style):
            figures.save_figure(block.draw(), target)
        written.append(target)
        return f"{files_dir.name}/{target.name}"

    def figure_svg(block: _Figure) -> str:
        with figures._styled(style):
            fig = block.draw()
            try:
                return _inline_svg(figures.figure_bytes(fig, "svg"))
            finally:
                plt.close(fig)

    if kind == "markdown":
        text = _render_markdown(blocks, figure_file)
    elif kind == "latex":
        text = _render_latex(blocks, figure_file)
    else:
        text = _render_html(blocks, figure_svg)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as handle:
        handle.write(text)
    return written
