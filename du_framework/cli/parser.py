"""The ``unfold`` argument parser: every command's options (the command modules add their own).

It imports the command modules it takes options from (:mod:`.tuning`, :mod:`.views`,
:mod:`.completion`) and :mod:`._common`; none of them imports it. Building it imports
no JAX, matplotlib or optuna: ``unfold --help`` and ``unfold completion`` stay quick.
"""

from __future__ import annotations

import argparse

from .. import __version__
from ._common import add_source_options
from .completion import COMPLETE_COMMAND, COMPLETE_KINDS
from .generalise import EPILOG as GENERALISE_EPILOG
from .generalise import add_arguments as add_generalise_arguments
from .tuning import EPILOG as TUNE_EPILOG
from .tuning import add_arguments as add_tune_arguments
from .views import PLOT_EPILOG, REPORT_EPILOG, add_plot_arguments, add_report_arguments

__all__ = ["build_parser", "EPILOGS"]

# The examples shown at the end of each subcommand's --help (argparse epilogs).
EPILOGS = {
    "list": """\
Examples:
  unfold list                       problems, solvers, schedules and experiments, with their plugins
  unfold list --options ridge       the options of the problem (or solver, schedule) called ridge
  unfold list --options train       the [train] settings
  unfold list --json                the same as JSON""",
    "compare": """\
Examples:
  unfold compare                                   the default experiment of the installed plugins
  unfold compare --experiment sparse-recovery      an experiment a plugin ships (unfold examples)
  unfold compare --config my.toml --set train.depth=10 --out runs/deep
  unfold compare --checkpoints runs/deep/checkpoints --metric mse --markdown
  unfold compare --set train.seeds=8 --figures png,pdf   8 training seeds: median [min, max], bands
  unfold compare --observe tensorboard --out runs/tb   TensorBoard files in runs/tb/tensorboard/
  unfold compare --resume runs/deep                continue an interrupted run""",
    "train": """\
Examples:
  unfold train --experiment reference --out runs/trained
  unfold train --config my.toml --only dugd --set solvers.dugd.lr=0.01
  unfold compare --checkpoints runs/trained/checkpoints   evaluate them later""",
    "examples": """\
Examples:
  unfold examples                            the installed experiments: name, plugin, description
  unfold examples copy sparse-recovery       write sparse-recovery.toml here, to edit and run
  unfold examples copy reference my.toml --force
  unfold compare --config my.toml""",
    "completion": """\
Examples:
  unfold completion bash        print the bash script; install: add to ~/.bashrc
                                    eval "$(unfold completion bash)"
  unfold completion zsh         print the zsh script; install: add to ~/.zshrc (after compinit)
                                    eval "$(unfold completion zsh)"
The scripts complete subcommands, options, and the names of the installed problems, solvers,
schedules and experiments and the --set keys (asked from unfold when you press TAB).""",
}


def _add_experiment_options(parser: argparse.ArgumentParser) -> None:
    add_source_options(parser)
    parser.add_argument("--no-progress", action="store_true",
                        help="hide the progress (the bars, or the plain lines when standard error is not a terminal)")
    parser.add_argument("--observe", metavar="NAME[,NAME...]",
                        help="report the run to these observers (experiment trackers, see unfold list), e.g. "
                             "--observe tensorboard")
    parser.add_argument("--resume", metavar="RUN",
                        help="continue the interrupted run RUN (its --out) from its last completed stage, "
                             "with the run's own configuration")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="unfold", description="Deep unfolding on JAX: train and compare unfolded solvers.")
    parser.add_argument("--version", action="version", version=f"du-framework {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(name, **kwargs):
        return commands.add_parser(name, epilog=EPILOGS.get(name), formatter_class=argparse.RawDescriptionHelpFormatter,
                                   **kwargs)

    listing = add("list", help="list problems, solvers, schedules and experiments with their plugins")
    listing.add_argument("--json", action="store_true", help="print the registry as JSON")
    listing.add_argument("--options", metavar="NAME",
                         help="print the options of the problem, solver or schedule NAME (or of train, evaluation); for a "
                              "solver, also what it learns (parameters, networks, their count)")

    compare = add("compare", help="train every solver, evaluate all on the same fresh instances, report")
    _add_experiment_options(compare)
    compare.add_argument("--metric", metavar="NAME",
                         help="metric of the table and the curves figure, METRIC.png (default: the problem's primary metric)")
    compare.add_argument("--checkpoints", metavar="DIR",
                         help="load <label>.npz (or, with several train.seeds, one <label>.seed-<seed>.npz per seed) from "
                              "DIR (written by `unfold train`) instead of training those solvers; DIR must exist and "
                              "hold them for every trainable solver")
    compare.add_argument("--train-missing", action="store_true",
                         help="with --checkpoints: train the solvers without a checkpoint in DIR instead of refusing")
    compare.add_argument("--allow-problem-mismatch", action="store_true",
                         help="with --checkpoints: evaluate checkpoints trained on another problem (other options or "
                              "data) on this one; warns and records the differences in results.json")
    compare.add_argument("--no-plots", action="store_true", help="skip the figures (mse, params, losses)")
    compare.add_argument("--figures", metavar="FORMAT[,FORMAT...]", default=None,
                         help="figure formats: png (default), pdf, svg, e.g. --figures png,pdf for vector copies")
    compare.add_argument("--style", metavar="STYLE",
                         help="style of the figures: paper (one column wide, 3.5 in, no titles), a matplotlib "
                              "style name, a .mplstyle file or an rcParams file")
    compare.add_argument("--no-title", action="store_true",
                         help="leave out the figures' titles (a paper's caption says it)")
    compare.add_argument("--markdown", action="store_true", help="print the table as Markdown")

    train = add("train", help="train the learnable solvers and save their checkpoints")
    _add_experiment_options(train)

    examples = add("examples", help="list the experiments the installed plugins ship, or copy one to a TOML file")
    what = examples.add_subparsers(dest="examples_command", metavar="{list,copy}")
    what.add_parser("list", help="list the installed experiments (the default)")
    copy = what.add_parser("copy", help="write an experiment's configuration to a TOML file",
                           epilog=EPILOGS["examples"], formatter_class=argparse.RawDescriptionHelpFormatter)
    copy.add_argument("name", metavar="NAME", help="the experiment (see unfold examples)")
    copy.add_argument("dest", metavar="DEST", nargs="?",
                      help="the file to write, or a folder (default: ./NAME.toml)")
    copy.add_argument("--force", action="store_true", help="overwrite DEST if it exists (refused without it)")

    tune = commands.add_parser("tune", help="search training hyperparameters and classical constants "
                                            "under an equal budget (optuna)",
                               epilog=TUNE_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_tune_arguments(tune)
    plot = commands.add_parser("plot", help="re-draw or overlay saved runs (PDF, SVG, PNG)",
                               epilog=PLOT_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_plot_arguments(plot)
    report = commands.add_parser("report", help="write a Markdown, LaTeX or HTML report of saved runs",
                                 epilog=REPORT_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_report_arguments(report)
    generalise = commands.add_parser("generalise", help="evaluate a run's trained solvers deeper than trained and "
                                                        "on other problem settings",
                                     epilog=GENERALISE_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_generalise_arguments(generalise)

    completion = add("completion", help="print a shell completion script (bash or zsh)")
    completion.add_argument("shell", choices=("bash", "zsh"), help="the shell")
    completion.set_defaults(parser=parser)  # the script lists every command's options

    docs = commands.add_parser("docs")  # no help: left out of `unfold --help` (a maintainer's command)
    docs.add_argument("file", nargs="?", default="docs/cli.md", help="the Markdown file to update in place")
    docs.add_argument("--check", action="store_true", help="change nothing; exit 1 when the file is out of date")

    complete = commands.add_parser(COMPLETE_COMMAND)  # no help: called by the completion scripts
    complete.add_argument("kind", choices=COMPLETE_KINDS)
    return parser
