"""Checking committed tables (records and pages) against a fresh run, within a tolerance."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from pathlib import Path

from .pages import Block, find_blocks, page_cells
from .record import MarkerError, TableData, TableError, Tolerance, table_names

__all__ = ["Deviation", "CheckReport", "compare_records", "compare_page", "check", "require_pages", "unknown_markers"]


@dataclasses.dataclass(frozen=True)
class Deviation:
    """One checked number: where it is, the committed and fresh values, and how far apart in the rule's unit."""

    where: str  # the record's or page's path
    table: str
    row: str
    t: int
    part: str  # "central", "low" or "high"
    metric: str
    committed: float
    fresh: float
    size: float
    unit: str
    within: bool
    allowance: str

    def describe(self) -> str:
        """One line: ``docs/x.md: table T, row R, t=16 (median): committed -19.44, fresh -21.12: 1.68 dB, more than 1 dB``."""
        part = {"central": "", "low": " (min over seeds)", "high": " (max over seeds)"}[self.part]
        size = f"{self.size:.3g} {self.unit}".strip() if self.unit != "relative" else f"{self.size:.1%}"
        verdict = "within" if self.within else "more than"
        return (f"{self.where}: table {self.table!r}, row {self.row!r}, t={self.t}{part}, {self.metric}: committed "
                f"{self.committed:.4g}, fresh {self.fresh:.4g}: off by {size}, {verdict} the tolerance {self.allowance}")


@dataclasses.dataclass
class CheckReport:
    """The outcome of checking committed tables against fresh runs.

    Attributes:
        deviations: every number compared (records' and pages' cells).
        problems: structural differences (a row or column a side lacks), each one line.
    """

    deviations: list[Deviation] = dataclasses.field(default_factory=list)
    problems: list[str] = dataclasses.field(default_factory=list)

    @property
    def failures(self) -> list[Deviation]:
        """The numbers out of tolerance."""
        return [d for d in self.deviations if not d.within]

    @property
    def ok(self) -> bool:
        """Whether everything is within tolerance and nothing is missing."""
        return not self.failures and not self.problems

    def largest(self, unit: str = "dB") -> Deviation | None:
        """The largest deviation measured in ``unit`` (``None`` when there is none)."""
        sized = [d for d in self.deviations if d.unit == unit and math.isfinite(d.size)]
        return max(sized, key=lambda d: d.size) if sized else None

    def extend(self, other: CheckReport) -> None:
        """Add another report's findings to this one."""
        self.deviations += other.deviations
        self.problems += other.problems


def compare_records(committed: TableData, fresh: TableData, where: str, tolerance: Tolerance | None = None) -> CheckReport:
    """Every value a committed record holds at its iterations against a fresh one, for every metric."""
    tolerance = tolerance or Tolerance()
    report = CheckReport()
    fresh_rows = {row.label: row for row in fresh.solvers}
    committed_labels = {row.label for row in committed.solvers}
    for label in fresh_rows:
        if label not in committed_labels:
            report.problems.append(f"{where}: table {committed.name!r} has no row {label!r}, which the fresh run has")
    for row in committed.solvers:
        other = fresh_rows.get(row.label)
        if other is None:
            report.problems.append(f"{where}: table {committed.name!r} row {row.label!r} is not in the fresh run")
            continue
        cell = f"{where}: table {committed.name!r} row {row.label!r}"
        if list(row.seeds) != list(other.seeds):
            report.problems.append(f"{cell}: trained over seeds {row.seeds}, the fresh run over {other.seeds}")
        else:
            for seed, was, now in zip(row.seeds, row.seed_status, other.seed_status):
                if was != now:  # a seed that newly diverges (or no longer does) changes the median and spread
                    report.problems.append(f"{cell}: training seed {seed} is {now!r} in the fresh run, {was!r} in "
                                           f"the committed one")
        for metric, parts in row.curves.items():
            info = committed.metrics[metric]
            theirs = other.curves.get(metric)
            if theirs is None:
                report.problems.append(f"{cell}: the fresh run has no {metric}")
                continue
            for part, values in parts.items():
                if values is None or (part != "central" and row.ok_seeds < 2):
                    continue  # nothing committed to compare (no spread over fewer than two seeds)
                shown = {"central": "", "low": " (min over seeds)", "high": " (max over seeds)"}[part]
                if theirs.get(part) is None or (part != "central" and other.ok_seeds < 2):
                    report.problems.append(f"{cell}{shown}, {metric}: the committed table has this value over "
                                           f"{row.ok_seeds} seeds that did not diverge; the fresh run has none "
                                           f"({other.ok_seeds} seeds did not diverge)")
                    continue
                beyond = [t for t in committed.iterations if t > len(theirs[part])]
                if beyond:
                    report.problems.append(f"{cell}{shown}, {metric}: t={', '.join(map(str, beyond))} is beyond "
                                           f"the fresh run's depth {len(theirs[part])}")
                for t in committed.iterations:
                    if t > len(theirs[part]):
                        continue
                    size, within, unit = tolerance.deviation(info, values[t - 1], theirs[part][t - 1])
                    report.deviations.append(Deviation(where, committed.name, row.label, t, part, metric,
                                                       values[t - 1], theirs[part][t - 1], size, unit, within,
                                                       tolerance.allowance(info)))
    return report


def compare_page(page: str | Path, fresh: TableData, tolerance: Tolerance | None = None) -> CheckReport:
    """The numbers every block of ``page`` for ``fresh``'s table shows, against the fresh record.

    Raises:
        MarkerError: the page has no block for this table, or malformed markers.
    """
    tolerance = tolerance or Tolerance()
    page = Path(page)
    text = page.read_text(encoding="utf-8")
    blocks = [block for block in find_blocks(text, str(page)) if block.name == fresh.name]
    if not blocks:
        raise MarkerError(f"{page} has no marker for table {fresh.name!r}")
    report = CheckReport()
    for block in blocks:
        metric, info = fresh.metric(block.metric)
        cells = page_cells(text, block, str(page))
        shown_rows = list(block.rows) if block.rows else [row.label for row in fresh.solvers]
        for label in shown_rows:
            for t in fresh.iterations:
                if (label, t) not in cells:
                    report.problems.append(f"{page}: table {fresh.name!r} shows no cell for row {label!r} at t={t}, "
                                           f"which the fresh run has (run make tables)")
        for (label, t), values in cells.items():
            try:
                row = fresh.solver(label)
            except TableError:
                report.problems.append(f"{page}: table {fresh.name!r} shows row {label!r}, which the fresh run lacks")
                continue
            parts = row.curves.get(metric)
            if parts is None or t > fresh.depth:
                report.problems.append(f"{page}: table {fresh.name!r} row {label!r} t={t}: no such value in the "
                                       f"fresh run")
                continue
            for part, value in values.items():
                if parts.get(part) is None:
                    if part != "central":
                        report.problems.append(f"{page}: table {fresh.name!r} row {label!r} t={t} shows a spread; "
                                               f"the fresh run has none")
                    continue
                size, within, unit = tolerance.deviation(info, value, parts[part][t - 1])
                report.deviations.append(Deviation(str(page), fresh.name, label, t, part, metric, value,
                                                   parts[part][t - 1], size, unit, within, tolerance.allowance(info)))
    return report


def check(committed: TableData, fresh: TableData, pages: Iterable[str | Path], *, record: str = "",
          tolerance: Tolerance | None = None) -> CheckReport:
    """A committed table (its record and every page in ``pages`` showing it) against a fresh record.

    Raises:
        MarkerError: a page given holds no block for this table.
    """
    report = compare_records(committed, fresh, record or f"{committed.name}.json", tolerance)
    for page in pages:
        report.extend(compare_page(page, fresh, tolerance))
    return report


def require_pages(name: str, found: dict[Path, list[Block]], tables_dir: str | Path) -> list[Path]:
    """The pages showing table ``name``.

    Raises:
        MarkerError: no page shows it.
    """
    pages = [page for page, blocks in found.items() if any(block.name == name for block in blocks)]
    if not pages:
        raise MarkerError(f"no page shows table {name!r} ({Path(tables_dir) / (name + '.toml')}): put "
                          f"'<!-- table: {name} -->' and '<!-- /table -->', each on its own line, where it goes")
    return pages


def unknown_markers(found: dict[Path, list[Block]], tables_dir: str | Path) -> list[str]:
    """One line per block naming a table that has no configuration in ``tables_dir``."""
    known = set(table_names(tables_dir))
    return [f"{page}:{block.start + 1}: marker for table {block.name!r}, but there is no "
            f"{Path(tables_dir) / (block.name + '.toml')} (tables: {', '.join(sorted(known)) or 'none'})"
            for page, blocks in found.items() for block in blocks if block.name not in known]
