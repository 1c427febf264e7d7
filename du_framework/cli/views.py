"""``unfold plot`` and ``unfold report``: re-draw, overlay and publish saved runs (docs/publishing.md)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import ConfigError

PLOT_EPILOG = """\
Examples:
  unfold plot runs/a                              the primary metric's curves -> curves.png
  unfold plot runs/a runs/b --out overlay.pdf     two runs overlaid, as a vector PDF
  unfold plot runs/a --metric nmse_db --solvers dugd,gd --out nmse.svg
  unfold plot runs/a --what params --out params.pdf --style paper
  unfold plot runs/a --what losses                the training loss of every step (if saved)"""

REPORT_EPILOG = """\
Examples:
  unfold report runs/a                            report.md with its figures in report_files/
  unfold report runs/tuned --format html --out tuning.html   a tuning study (the folder of unfold tune)
  unfold report runs/a runs/b --format html --out comparison.html   one self-contained file
  unfold report runs/a --format latex --out paper/results.tex --metric nmse_db"""

_WHAT = ("curves", "params", "losses")


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", metavar="RUN", nargs="+",
                        help="run folders written by unfold compare or unfold train (or their results.json); "
                             "unfold report also takes the folder of unfold tune (one study)")
    parser.add_argument("--metric", metavar="NAME",
                        help="the metric to show (default: each run's primary one; plot draws runs of one problem "
                             "and primary metric together unless --metric names a metric they all have)")
    parser.add_argument("--style", metavar="STYLE",
                        help="paper (one column wide, 3.5 in, 8 pt, no titles), a matplotlib style name (e.g. "
                             "seaborn-v0_8-paper), a .mplstyle file or a file of rcParams (key: value lines), "
                             "applied over the paper defaults")
    parser.add_argument("--no-verify", action="store_true",
                        help="read runs whose files differ from their manifest.json (changed after the run), "
                             "with a warning, instead of refusing them")


def add_plot_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``unfold plot``."""
    _add_common(parser)
    parser.add_argument("--what", choices=_WHAT, default="curves",
                        help="curves: a metric versus iteration (default); params: learned parameters per slot; "
                             "losses: the training loss history")
    parser.add_argument("--solvers", metavar="LABEL[,LABEL...]", help="draw only these solvers (default: all)")
    parser.add_argument("--out", metavar="FILE", help="the figure file; its suffix chooses the format: .pdf, .svg "
                                                      "or .png (default: WHAT.png in the current folder)")
    parser.add_argument("--no-title", action="store_true", help="leave out the title (a paper's caption says it)")


def add_report_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``unfold report``."""
    _add_common(parser)
    parser.add_argument("--format", choices=("markdown", "latex", "html"),
                        help="the report format (default: from the suffix of --out, else markdown)")
    parser.add_argument("--out", metavar="FILE",
                        help="the report file (default: report.md, report.tex or report.html in the current folder); "
                             "Markdown and LaTeX figures go to FILE's stem + _files/ beside it")


def _warn(message: str) -> None:
    print(f"unfold: warning: {message}", file=sys.stderr)


def _load(args) -> list:
    from ..workbench.loading import load_run

    runs = [load_run(path, verify=not args.no_verify) for path in args.runs]
    for run in runs:
        for message in run.warnings:
            _warn(message)
    return runs


def _refuse_run_files(out: Path, runs) -> None:
    """Writing over a file a run's manifest lists would make that run fail its own check: refuse."""
    target = out.resolve()
    for run in runs:
        if run.folder is None or not run.manifest:
            continue
        folder = run.folder.resolve()
        if target.is_relative_to(folder) and target.relative_to(folder).as_posix() in run.manifest.get("files", {}):
            raise ConfigError(f"--out {str(out)!r} is a file of the run {str(run.folder)!r} (listed in its "
                              f"manifest.json); writing it would change the run; choose another --out")


def _missing_note(run, what: str) -> None:
    for message in run.missing:
        print(f"unfold: note: {run.label}: {message}", file=sys.stderr)


def cmd_plot(args) -> int:
    from ..workbench import figures

    runs = _load(args)
    out = Path(args.out) if args.out else Path(f"{args.what}.png")
    figures.figure_format(out)  # refuse an unknown suffix before drawing
    _refuse_run_files(out, runs)
    if args.what == "curves":
        without = [run for run in runs if not run.has_curves]
        if without:
            run = without[0]
            raise ConfigError(f"{run.label} ({run.folder}) holds no evaluation curves: {run.missing[0]}; "
                              f"--what params draws its parameters")
        written = figures.plot_curves(runs, out, metric=args.metric, solvers=args.solvers, style=args.style,
                                      title=not args.no_title)
    elif args.what == "params":
        written = figures.plot_params(runs, out, solvers=args.solvers, style=args.style, title=not args.no_title)
        for run in runs:
            if run.kind == "train":
                print(f"unfold: note: {run.label}: a run of unfold train stores its parameters in raw "
                      f"(unconstrained) form; the figure shows them as stored", file=sys.stderr)
    else:
        written = figures.plot_losses(runs, out, solvers=args.solvers, style=args.style, title=not args.no_title)
    print(f"wrote {written}")
    return 0


def _report_target(args) -> tuple[Path, str]:
    from ..workbench.publish import REPORT_FORMATS, format_from_path

    if args.out:
        out = Path(args.out)
        return out, format_from_path(out, args.format) if args.format else format_from_path(out)
    kind = args.format or "markdown"
    return Path("report" + REPORT_FORMATS[kind]), kind


def _report_study(args) -> int:
    """``unfold report TUNE_FOLDER``: the report of one tuning study."""
    from ..workbench.figures import style_spec
    from ..workbench.tuning.report import write_study_report
    from ..workbench.tuning.stored import load_study

    if len(args.runs) != 1:
        raise ConfigError(f"unfold report takes one tuning study at a time, without runs (got {len(args.runs)} "
                          f"folders: {', '.join(args.runs)}); report each study on its own")
    study = load_study(args.runs[0], verify=not args.no_verify)
    for message in study.warnings:
        _warn(message)
    if args.metric is not None and args.metric != study.metric.name:
        raise ConfigError(f"--metric {args.metric}: the study {study.label!r} scored its trials on "
                          f"{study.metric.name!r} only; leave out --metric")
    out, kind = _report_target(args)
    style_spec(args.style)  # refused before anything is written
    _refuse_run_files(out, [study])
    written = write_study_report(study, out, format=kind, style=args.style)
    extra = f" and {len(written) - 1} figure file(s) in {written[1].parent}/" if len(written) > 1 else ""
    print(f"wrote {written[0]}{extra}")
    return 0


def cmd_report(args) -> int:
    from ..workbench.publish import write_publication
    from ..workbench.tuning.stored import is_study_folder

    if any(is_study_folder(path) for path in args.runs):
        return _report_study(args)
    runs = _load(args)
    out, kind = _report_target(args)
    _refuse_run_files(out, runs)
    for run in runs:
        _missing_note(run, "report")
    written = write_publication(runs, out, format=kind, metric=args.metric, style=args.style)
    extra = f" and {len(written) - 1} figure file(s) in {written[1].parent}/" if len(written) > 1 else ""
    print(f"wrote {written[0]}{extra}")
    return 0
