"""Result tables in the docs that stay true: produced from runs, recorded with their environment, checked.

A *table* is named by a configuration ``<tables dir>/<name>.toml`` (an experiment that
``unfold compare --config`` takes, the classical baselines at their textbook constants and,
as extra solver entries such as ``ista-tuned``, at constants found by ``unfold tune``). It is
produced by running that comparison (:func:`produce`), recorded as ``<name>.json`` beside the
configuration (every metric's curve of every solver, with the spread over training seeds,
and the environment that produced them: date, versions, backend, CPU, command), and shown in
Markdown pages between two markers, each on a line of its own::

    <!-- table: sparse-recovery -->
    (generated: the table, a note on tuned constants and seeds, the environment line)
    <!-- /table -->

The opening marker may choose what the page shows: ``metric=NAME`` (default: the run's
primary metric) and ``rows=a,b,c`` (a subset of the solvers, in this order). :func:`render`
writes the block's content from the record alone, so re-rendering needs no plugin.

:func:`check` compares committed tables with a fresh run within a :class:`Tolerance`: every
number of every page's cells (a central value and, with several seeds, ``[min, max]``) and
every value the record holds at the table's iterations. Training times are not checked (they
measure the machine and its load, not the algorithm). See docs/results.md, "Tables in the
documentation".
"""

from __future__ import annotations

from .check import CheckReport, Deviation, check, compare_page, compare_records, require_pages, unknown_markers
from .pages import Block, find_blocks, page_cells, pages_with_markers, render, write_into
from .produce import environment, produce, table_from_run
from .record import (MAX_TABLE_BYTES, TABLE_SCHEMA_VERSION, MarkerError, SolverRow, TableData, TableError, Tolerance,
                     load_table, save_table, table_names)

__all__ = ["TableError", "MarkerError", "Tolerance", "TableData", "SolverRow", "Block", "Deviation", "CheckReport",
           "TABLE_SCHEMA_VERSION", "produce", "table_from_run", "environment", "render", "find_blocks",
           "write_into", "pages_with_markers", "page_cells", "compare_records", "compare_page", "check",
           "load_table", "save_table", "table_names", "require_pages", "unknown_markers", "MAX_TABLE_BYTES"]
