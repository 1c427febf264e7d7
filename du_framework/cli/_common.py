"""Names shared by the command modules (the bottom of the command line: it imports no other module of it).

The command modules import from here; :mod:`.parser` (every command's parser) imports
them, and :mod:`du_framework.cli` imports :mod:`.parser` and the command modules.
"""

from __future__ import annotations

import argparse
import datetime as _dt
from pathlib import Path

__all__ = ["KINDS", "SETTINGS", "DOCS_COMMAND", "load_registry", "default_out", "add_source_options"]

KINDS = ("problem", "solver", "schedule")
SETTINGS = ("train", "evaluation")
DOCS_COMMAND = "python -m du_framework docs docs/cli.md"


def load_registry():
    """The registry of the installed plugins (loaded on first use: the plugins import JAX)."""
    from ..registry import get_registry

    return get_registry()


def default_out() -> Path:
    """A new run folder ``runs/<timestamp>`` (``-2``, ``-3``... when it exists)."""
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = Path("runs") / stamp
    suffix = 1
    while out.exists():
        suffix += 1
        out = Path("runs") / f"{stamp}-{suffix}"
    return out


def add_source_options(parser: argparse.ArgumentParser, *, verb: str = "run", set_example: str =
                       "--set train.depth=10 --set solvers.0.lr=0.01",
                       only_help: str = "run only the solvers with these labels (default: every solver of the "
                                        "configuration)") -> None:
    """Where a command's configuration comes from and where its run folder goes: --config, --experiment,
    --set, --out, --only, --force (shared by compare, train and tune)."""
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--config", metavar="FILE.toml",
                        help="experiment configuration (default: the default experiment of the installed plugins)")
    source.add_argument("--experiment", metavar="NAME", help=f"{verb} an experiment a plugin ships (see unfold examples)")
    parser.add_argument("--set", dest="overrides", metavar="KEY=VALUE", action="append", default=[],
                        help=f"override a configuration key, e.g. {set_example} (repeatable)")
    parser.add_argument("--out", metavar="DIR", help="output directory (default: runs/<timestamp>/)")
    parser.add_argument("--only", metavar="LABEL[,LABEL...]", help=only_help)
    parser.add_argument("--force", action="store_true",
                        help="replace a non-empty --out as a whole once this run completes (refused without it)")
