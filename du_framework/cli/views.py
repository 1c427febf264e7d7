"""``unfold plot`` and ``unfold report``: re-draw, overlay and publish saved runs.
(Being written: issue 10, items 4 and 5.)"""

from __future__ import annotations

import argparse

PLOT_EPILOG = """\
Examples:
  unfold plot runs/a runs/b --format pdf"""

REPORT_EPILOG = """\
Examples:
  unfold report runs/a --format markdown"""


def add_plot_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``unfold plot``."""


def add_report_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``unfold report``."""


def _cmd_plot(args) -> int:
    raise NotImplementedError("unfold plot is not written yet")


def _cmd_report(args) -> int:
    raise NotImplementedError("unfold report is not written yet")
