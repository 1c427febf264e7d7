"""The docs' result tables: regenerate them from fresh runs, or check the committed ones against a rerun.

    python tools/tables.py generate [NAME ...]   run each table's configuration, write NAME.json and the pages
    python tools/tables.py check [NAME ...]      rerun, compare with the committed records and pages; exit 1 if off
    python tools/tables.py render [NAME ...]     rewrite the pages from the committed records (no run)

``make tables`` and ``make check-tables`` run the first two (TABLES="NAME ..." to choose). A table
is a configuration docs/tables/NAME.toml; pages show it between ``<!-- table: NAME -->`` and
``<!-- /table -->``. See docs/results.md, "Tables in the documentation", and tools/doctables/.
Exit codes: 0 done (check: everything within tolerance), 1 check found cells out of tolerance or
missing, 2 an error (a bad marker, a missing configuration, a failed run), with one line saying why.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PAGES = ("README.md", "docs")


def _relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tables", description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=("generate", "check", "render"))
    parser.add_argument("names", nargs="*", metavar="NAME", help="tables to handle (default: every table)")
    parser.add_argument("--tables-dir", default="docs/tables", help="folder of NAME.toml and NAME.json")
    parser.add_argument("--pages", nargs="+", default=list(DEFAULT_PAGES),
                        help="Markdown files or folders searched for table markers (default: README.md docs)")
    parser.add_argument("--runs", default="runs/tables", help="where the fresh runs go (NAME/ under it)")
    parser.add_argument("--db", type=float, default=1.0, help="tolerance for dB cells (default 1)")
    parser.add_argument("--log-axis-db", type=float, default=1.0,
                        help="tolerance for log-axis cells, in dB of their ratio (default 1: a factor 1.26)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line ``argv``; returns the exit code."""
    import doctables as tables  # beside this script
    from du_framework.errors import DUError

    args = _parser().parse_args(argv)
    tolerance = tables.Tolerance(db=args.db, log_axis_db=args.log_axis_db)
    tables_dir = Path(args.tables_dir)
    try:
        known = tables.table_names(tables_dir)
        names = args.names or known
        for name in names:
            if name not in known:
                raise tables.TableError(f"no table {name!r}: {tables_dir} holds {', '.join(known) or 'none'}")
        found = tables.pages_with_markers(args.pages)
        stray = tables.unknown_markers(found, tables_dir)
        if stray:
            raise tables.MarkerError(stray[0])
        pages = {name: tables.require_pages(name, found, tables_dir) for name in names}
        if args.action == "render":
            for name in names:
                record = tables.load_table(tables_dir / f"{name}.json")
                for page in pages[name]:
                    tables.write_into(page, record)
                print(f"{name}: rendered into {', '.join(map(str, pages[name]))}")
            return 0
        report = tables.CheckReport()
        for name in names:
            started = time.perf_counter()
            print(f"{name}: unfold compare --config {_relative(tables_dir / (name + '.toml'))} ...", flush=True)
            runs = Path(args.runs) / ("check" if args.action == "check" else "")
            fresh = tables.produce(name, tables_dir, runs, config_label=_relative(tables_dir / f"{name}.toml"),
                                   tolerance=tolerance)
            seconds = time.perf_counter() - started
            if args.action == "generate":
                tables.save_table(fresh, tables_dir / f"{name}.json")
                for page in pages[name]:
                    tables.write_into(page, fresh)
                print(f"{name}: {seconds:.0f} s; wrote {tables_dir / (name + '.json')} and "
                      f"{', '.join(map(str, pages[name]))}", flush=True)
                continue
            committed = tables.load_table(tables_dir / f"{name}.json")
            found_here = tables.check(committed, fresh, pages[name], record=str(tables_dir / f"{name}.json"),
                                      tolerance=tolerance)
            report.extend(found_here)
            largest = found_here.largest("dB")
            print(f"{name}: {seconds:.0f} s; {len(found_here.deviations)} numbers compared, "
                  f"{len(found_here.failures)} out of tolerance"
                  + (f"; largest deviation {largest.size:.3g} dB ({largest.row}, t={largest.t})" if largest else ""),
                  flush=True)
        if args.action == "generate":
            return 0
        for line in report.problems:
            print(f"MISSING {line}")
        for deviation in report.failures:
            print(f"OUT OF TOLERANCE {deviation.describe()}")
        largest = report.largest("dB")
        print(f"check-tables: {len(report.deviations)} numbers compared ({tolerance.describe()}); "
              f"{len(report.failures)} out of tolerance, {len(report.problems)} missing"
              + (f"; largest deviation: {largest.describe()}" if largest else ""))
        return 0 if report.ok else 1
    except DUError as error:
        print(f"tables: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
