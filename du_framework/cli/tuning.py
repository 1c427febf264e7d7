"""``unfold tune``: search each solver's training hyperparameters (and classical constants)
under an equal budget with optuna. (Being written: issue 10, item 2.)"""

from __future__ import annotations

import argparse

EPILOG = """\
Examples:
  unfold tune --experiment reference --trials 20 --out runs/tuned"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``unfold tune``."""


def _cmd_tune(args) -> int:
    raise NotImplementedError("unfold tune is not written yet")
