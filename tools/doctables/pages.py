"""Tables in pages: rendering a record as Markdown, the marker blocks of a page, and the numbers a page shows."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from du_framework.io.atomic import atomic_write
from du_framework.workbench.text import metric_cell, render_table

from .record import MarkerError, SolverRow, TableData, TableError

__all__ = ["render", "Block", "find_blocks", "pages_with_markers", "write_into", "page_cells"]

_OPEN = re.compile(r"<!--\s*table:\s*(?P<name>[A-Za-z0-9_.-]+)(?P<attrs>(?:\s+[a-z]+=\S+)*)\s*-->")
_CLOSE = re.compile(r"<!--\s*/table\s*-->")
_ATTRS = ("metric", "rows")


def _cell(row: SolverRow, metric: str, info: dict[str, Any], t: int) -> str:
    parts = row.curves.get(metric)
    if parts is None:
        return "-"
    if parts.get("low") is None or parts.get("high") is None or row.ok_seeds < 2:
        return metric_cell(parts["central"][t - 1], info["format"])
    return metric_cell(parts["central"][t - 1], info["format"], parts["low"][t - 1], parts["high"][t - 1])


def _differing_options(row: SolverRow, table: TableData) -> str:
    base_label = row.label.removesuffix("-tuned")
    base = next((other for other in table.solvers if other.label == base_label and other is not row), None)
    if base is None:
        base = next((other for other in table.solvers if other.name == row.name and other is not row), None)
    reference = base.options if base is not None else _default_options(row.name)
    changed = [f"{key} = {_value(value)}" for key, value in row.options.items() if reference.get(key) != value]
    return ", ".join(changed)


def _default_options(solver: str) -> dict[str, Any]:
    """The registered solver's default options (empty where the solver is not installed)."""
    import dataclasses

    from du_framework.errors import DUError
    from du_framework.registry import get_registry

    try:
        options = get_registry().solver(solver).Options
    except DUError:
        return {}
    return {field.name: field.default for field in dataclasses.fields(options)}


def _value(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def render(table: TableData, *, metric: str | None = None, rows: Sequence[str] | None = None) -> str:
    """The Markdown a page shows between a table's markers: the table, notes, the environment line.

    Rows: every solver, or those labelled ``rows`` in that order. Columns: the metric at the
    record's iterations, then the training time. Below: the tuned constants of solvers labelled
    ``*-tuned`` (the options that differ from the untuned entry), how seeds are summarised,
    and the environment and command that produced the numbers.

    Raises:
        TableError: an unknown metric or row label.
    """
    metric, info = table.metric(metric)
    chosen = [table.solver(label) for label in rows] if rows else list(table.solvers)
    header = [info.get("label") or metric] + [f"t={t}" for t in table.iterations] + ["train s"]
    cells = [[row.label] + [_cell(row, metric, info, t) for t in table.iterations]
             + [f"{row.train_seconds:.1f}" if row.trainable else "-"] for row in chosen]
    notes = []
    tuned = [(row.label, _differing_options(row, table)) for row in chosen if row.label.endswith("-tuned")]
    tuned = [f"`{label}`: {options}" for label, options in tuned if options]
    if tuned:
        notes.append("Tuned constants (`unfold tune` on validation instances, disjoint from these): "
                     + "; ".join(tuned) + ".")
    seeded = [row for row in chosen if len(row.seeds) > 1]
    if seeded:
        seeds = sorted({seed for row in seeded for seed in row.seeds})
        diverged = [f"{row.label} ({len(row.seeds) - row.ok_seeds})" for row in seeded if row.ok_seeds < len(row.seeds)]
        notes.append(f"Learned solvers: median [min, max] over training seeds {_ranges(seeds)}"
                     + (f"; diverged and left out: {', '.join(diverged)}" if diverged else "") + ".")
    env = table.environment
    instances = ""
    if table.evaluation.get("batch_size") and table.evaluation.get("batches"):
        instances = f" on {int(table.evaluation['batch_size']) * int(table.evaluation['batches'])} fresh instances"
    cores = f", {env.get('cpu_count')} cores" if env.get("cpu_count") else ""
    load = env.get("load_average")
    load_text = f", load {load[0]:g}" if load else ""
    date = str(env.get("date", ""))[:10]
    notes.append(f"<small>{info.get('label') or metric}{instances}; generated {date} by `{table.command}` "
                 f"(du-framework {env.get('du_framework')}, jax {env.get('jax')}, jaxlib {env.get('jaxlib')}, "
                 f"{env.get('backend')} backend, {env.get('cpu')}{cores}{load_text}). Regenerate with "
                 f"`make tables`; `make check-tables` reruns it and compares ({table.tolerance}).</small>")
    return render_table(header, cells) + "\n\n" + "\n\n".join(notes)


def _ranges(values: list[int]) -> str:
    if len(values) > 2 and values == list(range(values[0], values[-1] + 1)):
        return f"{values[0]}-{values[-1]}"
    return ", ".join(map(str, values))


# --- pages ---------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Block:
    """A table block of a page: the marker lines ``start`` and ``end`` (0-based) and the content between."""

    name: str
    metric: str | None
    rows: tuple[str, ...] | None
    start: int
    end: int


def find_blocks(text: str, where: str) -> list[Block]:
    """Every table block of a page's text, in order.

    A marker is a line holding only ``<!-- table: NAME ... -->`` or ``<!-- /table -->``; lines
    inside fenced code blocks are not read, nor are markers quoted within a line of prose.

    Raises:
        MarkerError: a malformed marker line (a comment starting with ``table``), an unknown attribute, an opening
            marker without its closing one, a closing marker without an opening one, a
            marker inside a block (each named with its line).
    """
    blocks, lines, opened, fence = [], text.splitlines(), None, None
    for number, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith(("```", "~~~")):  # markers shown inside code blocks are examples, not markers
            if fence is None:
                fence = stripped[:3]
            elif stripped.startswith(fence):
                fence = None
            continue
        if fence is not None or not (stripped.startswith("<!--") and "table" in stripped):
            continue
        opening, closing = _OPEN.fullmatch(stripped), _CLOSE.fullmatch(stripped)
        if not opening and not closing:
            raise MarkerError(f"{where}:{number + 1}: malformed table marker {stripped!r}; write "
                              f"'<!-- table: NAME -->' (optionally metric=NAME rows=a,b) or '<!-- /table -->', "
                              f"alone on its line")
        if opening:
            if opened is not None:
                raise MarkerError(f"{where}:{number + 1}: table marker {opening.group('name')!r} inside the block of "
                                  f"{opened[0].group('name')!r} opened on line {opened[1] + 1}: close it first "
                                  f"with '<!-- /table -->'")
            opened = (opening, number)
            continue
        if opened is None:
            raise MarkerError(f"{where}:{number + 1}: '<!-- /table -->' closes no table: put "
                              f"'<!-- table: NAME -->' before it")
        attrs = {}
        for item in opened[0].group("attrs").split():
            key, _, value = item.partition("=")
            if key not in _ATTRS:
                raise MarkerError(f"{where}:{opened[1] + 1}: unknown table attribute {key!r}; "
                                  f"known: {', '.join(_ATTRS)}")
            attrs[key] = value
        rows = tuple(label for label in attrs["rows"].split(",") if label) if "rows" in attrs else None
        blocks.append(Block(opened[0].group("name"), attrs.get("metric"), rows, opened[1], number))
        opened = None
    if opened is not None:
        raise MarkerError(f"{where}:{opened[1] + 1}: table {opened[0].group('name')!r} is never closed: add "
                          f"'<!-- /table -->' on its own line after the table")
    return blocks


def pages_with_markers(pages: Iterable[str | Path]) -> dict[Path, list[Block]]:
    """``{page: blocks}`` for the Markdown files given (folders: every ``*.md`` under them) that hold a marker.

    Raises:
        MarkerError: a page's markers are malformed.
    """
    found = {}
    for entry in pages:
        entry = Path(entry)
        files = sorted(entry.rglob("*.md")) if entry.is_dir() else [entry]
        for page in files:
            if "_ext" in page.parts:
                continue
            text = page.read_text(encoding="utf-8")
            blocks = find_blocks(text, str(page))
            if blocks:
                found[page] = blocks
    return found


def write_into(page: str | Path, table: TableData) -> int:
    """Render ``table`` into every block of ``page`` named for it; returns how many blocks.

    The file is rewritten atomically, and only when its content changes.

    Raises:
        MarkerError: the page has no block for this table (the message says which markers to add),
            or its markers are malformed.
        TableError: a block asks for an unknown metric or row.
    """
    page = Path(page)
    text = page.read_text(encoding="utf-8")
    blocks = [block for block in find_blocks(text, str(page)) if block.name == table.name]
    if not blocks:
        raise MarkerError(f"{page} has no marker for table {table.name!r}: put '<!-- table: {table.name} -->' and "
                          f"'<!-- /table -->', each on its own line, where the table goes")
    lines = text.splitlines()
    for block in reversed(blocks):
        content = render(table, metric=block.metric, rows=block.rows)
        lines[block.start + 1:block.end] = ["", content, ""]
    new = "\n".join(lines) + ("\n" if text.endswith("\n") else "")
    if new != text:
        with atomic_write(page) as handle:
            handle.write(new)
    return len(blocks)


_NUMBER = r"[-+]?(?:nan|inf|\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)"
_CELL = re.compile(rf"^\s*(?P<central>{_NUMBER})(?:\s*\[\s*(?P<low>{_NUMBER})\s*,\s*(?P<high>{_NUMBER})\s*\])?\s*$")


def page_cells(text: str, block: Block, where: str) -> dict[tuple[str, int], dict[str, float]]:
    """The numbers a page shows in one block: ``{(row label, t): {"central", "low", "high"}}``.

    Only the columns headed ``t=N`` are read (training times are not); ``-`` cells are skipped.

    Raises:
        MarkerError: the block holds no Markdown table.
        TableError: a cell that is not a number, nor ``median [min, max]``.
    """
    lines = text.splitlines()[block.start + 1:block.end]
    table = [line.strip() for line in lines if line.strip().startswith("|")]
    if len(table) < 2:
        raise MarkerError(f"{where}:{block.start + 1}: the block of table {block.name!r} holds no Markdown table; "
                          f"run make tables to write it")

    def split(line):
        return [cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip().strip("|"))]

    header = split(table[0])
    columns = {i: int(cell[2:]) for i, cell in enumerate(header) if re.fullmatch(r"t=\d+", cell)}
    cells = {}
    for line in table[2:]:
        row = split(line)
        for i, t in columns.items():
            if i >= len(row) or row[i] == "-":
                continue
            match = _CELL.match(row[i])
            if not match:
                raise TableError(f"{where}: table {block.name!r}, row {row[0]!r}, column t={t}: {row[i]!r} is not a "
                                 f"number or 'median [min, max]'")
            cells[(row[0], t)] = {key: float(value) for key, value in match.groupdict().items() if value is not None}
    return cells
