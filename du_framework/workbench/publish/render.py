"""A report's document (:mod:`du_framework.workbench.publish.document`) as Markdown, LaTeX or HTML."""

from __future__ import annotations

import html

from ..text import latex_escape, markdown_escape, render_table
from .document import Code, Figure, Heading, Items, Para, Table

__all__ = ["render_markdown", "render_latex", "render_html", "inline_svg"]


def render_markdown(blocks, figure_file) -> str:
    """Markdown; ``figure_file(block, "png")`` saves a figure and returns its relative path."""
    out = []
    for block in blocks:
        if isinstance(block, Heading):
            out.append("#" * block.level + " " + markdown_escape(block.text))
        elif isinstance(block, Para):
            out.append(markdown_escape(block.text))
        elif isinstance(block, Items):
            out.append("\n".join("- " + markdown_escape(item) for item in block.items))
        elif isinstance(block, Table):
            out.append(render_table(block.header, block.rows, escape=markdown_escape, caption=block.caption))
        elif isinstance(block, Figure):
            relative = figure_file(block, "png")
            out.append(f"![{markdown_escape(block.caption)}]({relative.replace(' ', '%20')})")
        elif isinstance(block, Code):
            fence = "````" if "```" in block.text else "```"
            out.append(f"{fence}{block.language}\n{block.text.rstrip()}\n{fence}")
    return "\n\n".join(out) + "\n"


def render_latex(blocks, figure_file) -> str:
    """A LaTeX article; ``figure_file(block, "pdf")`` saves a figure and returns its relative path."""
    out = [r"\documentclass[10pt]{article}", r"\usepackage[T1]{fontenc}", r"\usepackage[utf8]{inputenc}",
           r"\usepackage{graphicx}", r"\usepackage{booktabs}", r"\usepackage[margin=2cm]{geometry}",
           r"\usepackage{verbatim}", r"\begin{document}"]
    commands = {1: "section*", 2: "section", 3: "subsection", 4: "subsubsection"}
    for block in blocks:
        if isinstance(block, Heading):
            if block.level == 1:
                out.append(r"\begin{center}\Large " + latex_escape(block.text) + r"\end{center}")
            else:
                out.append(f"\\{commands.get(block.level, 'paragraph')}{{{latex_escape(block.text)}}}")
        elif isinstance(block, Para):
            out.append(latex_escape(block.text) + "\n")
        elif isinstance(block, Items):
            out.append("\\begin{itemize}\n" + "\n".join(r"\item " + latex_escape(i) for i in block.items)
                       + "\n\\end{itemize}")
        elif isinstance(block, Table):
            align = "l" * min(2, len(block.header)) + "r" * max(0, len(block.header) - 2)
            out.append(render_table(block.header, block.rows, "latex", align=align, caption=block.caption))
        elif isinstance(block, Figure):
            relative = figure_file(block, "pdf")
            out.append("\\begin{figure}[htbp]\n\\centering\n"
                       f"\\includegraphics[width=0.9\\textwidth]{{{relative}}}\n"
                       f"\\caption{{{latex_escape(block.caption)}}}\n\\end{{figure}}")
        elif isinstance(block, Code):
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


def inline_svg(data: bytes) -> str:
    """An SVG file's ``<svg>`` element (without the XML prolog), to put inside HTML."""
    text = data.decode("utf-8")
    start = text.find("<svg")
    return text[start:] if start >= 0 else text


def render_html(blocks, figure_svg) -> str:
    """One self-contained HTML page; ``figure_svg(block)`` returns a figure as inline SVG."""
    e = html.escape
    title = next((b.text for b in blocks if isinstance(b, Heading)), "Report")
    out = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">', f"<title>{e(title)}</title>",
           f"<style>{_CSS}</style>", "</head>", "<body>"]
    for block in blocks:
        if isinstance(block, Heading):
            out.append(f"<h{block.level}>{e(block.text)}</h{block.level}>")
        elif isinstance(block, Para):
            out.append(f"<p>{e(block.text)}</p>")
        elif isinstance(block, Items):
            out.append("<ul>" + "".join(f"<li>{e(item)}</li>" for item in block.items) + "</ul>")
        elif isinstance(block, Table):
            out.append(render_table(block.header, block.rows, "html", escape=e, caption=block.caption))
        elif isinstance(block, Figure):
            out.append(f"<figure>{figure_svg(block)}<figcaption>{e(block.caption)}</figcaption></figure>")
        elif isinstance(block, Code):
            out.append(f"<pre><code>{e(block.text)}</code></pre>")
    out += ["</body>", "</html>"]
    return "\n".join(out) + "\n"
