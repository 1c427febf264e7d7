"""``unfold generalise RUN``: a run's trained solvers at other depths and on other problem settings."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EPILOG = """\
Examples:
  unfold generalise runs/a --depth 100                 every solver at the trained depth and at 100
  unfold generalise runs/a --depth 25,100,200 --set problem.seed=7
                                                       and on the problem drawn from another seed
  unfold generalise runs/mimo --set problem.snr_db=5 --set problem.snr_db=15 --metric ser
  unfold generalise runs/a --depth 100 --out paper/deeper --figures png,pdf --style paper"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``unfold generalise``."""
    parser.add_argument("run", metavar="RUN", help="a run folder written by unfold compare or unfold train (it holds "
                                                   "config.toml and the checkpoints of its learned solvers)")
    parser.add_argument("--depth", metavar="D[,D...]",
                        help="evaluate at these depths too (the trained depth is always evaluated); a learned "
                             "parameter with a period or tied across iterations extends, one with a value per "
                             "iteration is refused deeper than trained")
    parser.add_argument("--set", dest="overrides", metavar="KEY=VALUE", action="append", default=[],
                        help="problem.KEY=VALUE: one more setting, the run's problem with that option changed "
                             "(e.g. problem.snr_db=5, problem.seed=7; repeatable, one setting each); "
                             "evaluation.KEY=VALUE: the evaluation of every setting (e.g. evaluation.batches=4)")
    parser.add_argument("--only", metavar="LABEL[,LABEL...]", help="evaluate only these solvers (default: all)")
    parser.add_argument("--metric", metavar="NAME",
                        help="the metric of the table and the figure (default: the problem's primary one); "
                             "the files hold every metric")
    parser.add_argument("--out", metavar="DIR", help="a new folder for the results (default: RUN/generalise-N, "
                                                     "the first N free); never one that exists")
    parser.add_argument("--figures", metavar="FORMAT[,FORMAT...]", default=None,
                        help="figure formats: png (default), pdf, svg")
    parser.add_argument("--style", metavar="STYLE", help="style of the figure: paper, a matplotlib style name or "
                                                         "a style file (as unfold plot)")
    parser.add_argument("--no-title", action="store_true", help="leave out the figure's title")
    parser.add_argument("--no-verify", action="store_true",
                        help="read a run whose config.toml or checkpoints differ from its manifest.json, with a "
                             "warning, instead of refusing it")


def cmd_generalise(args) -> int:
    from ..workbench.generalisation_report import check_target, default_folder, generalisation_table, \
        write_generalisation
    from ..workbench.generalise import TRAINED, generalise, parse_depths, parse_settings
    from ._common import load_registry
    from .outputs import figure_formats

    depths = parse_depths(args.depth)
    settings, evaluation = parse_settings(args.overrides)
    formats = figure_formats(args)  # an unknown format or style is refused before any work
    run = Path(args.run)
    out = Path(args.out) if args.out else default_folder(run)
    if args.out:
        check_target(out, run)
    registry = load_registry()
    only = [label.strip() for label in args.only.split(",")] if args.only else None
    result = generalise(run, depths=depths, settings=settings, evaluation=evaluation, only=only, metric=args.metric,
                        verify=not args.no_verify, registry=registry,
                        warn=lambda message: print(f"unfold: warning: {message}", file=sys.stderr))
    metric = result.metrics[args.metric or result.primary]
    print(f"{metric.title} ({'lower' if metric.lower_is_better else 'higher'} is better) after the final iteration, "
          f"problem {result.problem} trained at depth {result.trained_depth}, on {result.described}; "
          f"{TRAINED}: the run's own problem")
    print(generalisation_table(result, metric.name))
    several = [label for label, seeds in result.seeds.items() if len(seeds) > 1]
    if several:
        print(f"(median over the training seeds that did not diverge: {', '.join(several)})")
    written = write_generalisation(result, out, metric=metric.name, formats=formats, style=args.style,
                                   title=not args.no_title)
    print(f"\nwrote {', '.join(written)} to {out}/")
    return 0
