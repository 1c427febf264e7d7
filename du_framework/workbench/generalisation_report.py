"""What ``unfold generalise`` prints and writes: the table, ``generalise.json``, ``generalise.csv`` and the
figure, into a new folder published with one rename (never over a file of the run)."""

from __future__ import annotations

import csv
import io
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..io.atomic import atomic_write
from .generalise import TRAINED, Generalisation
from .text import render_table, strict_json

__all__ = ["generalisation_table", "generalisation_dict", "generalisation_csv", "write_generalisation",
           "default_folder", "FORMAT"]

FORMAT = "du-framework-generalisation"


def generalisation_table(result: Generalisation, metric: str | None = None, form: str = "text") -> str:
    """``metric`` after the final iteration, one row per setting and solver, one column per depth."""
    info = result.metrics[metric or result.primary]
    header = ["setting", "solver"] + [f"depth {d}" + (" (trained)" if d == result.trained_depth else "")
                                      for d in result.depths]
    rows = [[setting.label, label] + [info.show(result.final(setting.label, label, d, info.name))
                                      for d in result.depths]
            for setting in result.settings for label, _ in result.solvers]
    return render_table(header, rows, form, rule=form == "text")


def generalisation_dict(result: Generalisation) -> dict[str, Any]:
    """``generalise.json``: what was evaluated, and every curve."""
    return {
        "format": FORMAT,
        "run": str(result.run),
        "problem": result.problem,
        "primary_metric": result.primary,
        "metrics": {name: metric.describe() for name, metric in result.metrics.items()},
        "trained_depth": result.trained_depth,
        "depths": list(result.depths),
        "settings": [{"label": s.label, "overrides": list(s.overrides)} for s in result.settings],
        "evaluation": result.evaluation,
        "solvers": [{"label": label, "trainable": trainable, "seeds": result.seeds.get(label, [])}
                    for label, trainable in result.solvers],
        "results": [{"setting": setting, "solver": solver, "depth": depth,
                     "final": {name: float(curve[-1]) for name, curve in curves.items()},
                     "curves": {name: [float(v) for v in curve] for name, curve in curves.items()}}
                    for (setting, solver, depth), curves in result.curves.items()],
    }


def generalisation_csv(result: Generalisation) -> str:
    """``generalise.csv``: ``setting, solver, depth, iteration`` and every metric, one row per iteration."""
    names = list(result.metrics)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["setting", "solver", "depth", "iteration", *names])
    for (setting, solver, depth), curves in result.curves.items():
        for t in range(depth):
            writer.writerow([setting, solver, depth, t + 1, *(repr(float(curves[n][t])) for n in names)])
    return buffer.getvalue()


def default_folder(run: Path) -> Path:
    """``RUN/generalise-N``, the first N from 1 that does not exist."""
    n = 1
    while (run / f"generalise-{n}").exists() or (run / f"generalise-{n}").is_symlink():
        n += 1
    return run / f"generalise-{n}"


def check_target(out: Path, run: Path) -> None:
    """Refuse a ``--out`` that exists (a run's files are never written over) or is the run folder itself."""
    if out.resolve() == run.resolve() or run.resolve().is_relative_to(out.resolve()):
        raise ConfigError(f"--out {str(out)!r} is the run folder {str(run)!r} (or holds it); the run's own files are "
                          f"never written over: choose a new folder (default: {run}/generalise-N)")
    if out.exists() or out.is_symlink():
        if not out.is_dir() or any(out.iterdir()):
            raise ConfigError(f"--out {str(out)!r} exists; choose a new folder (default: {run}/generalise-N)")


def write_generalisation(result: Generalisation, out: Path, *, metric: str | None = None,
                         formats: Sequence[str] = ("png",), style: Any = None, title: bool = True) -> list[str]:
    """Write the folder ``out`` (new): ``generalise.json``, ``generalise.csv``, ``table.md`` and the figure
    ``<metric>-vs-depth.<fmt>`` per format, staged beside it and published with one rename; returns the names."""
    from .figures import plot_generalisation

    out = Path(out)
    check_target(out, result.run)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".staging", dir=out.parent))
    try:
        name = metric or result.primary
        files = {"generalise.json": strict_json(generalisation_dict(result)),
                 "generalise.csv": generalisation_csv(result),
                 "table.md": f"{result.metrics[name].title} after the final iteration at each depth "
                             f"({TRAINED}: the run's own problem)\n\n"
                             + generalisation_table(result, name, "markdown") + "\n"}
        for file, text in files.items():
            with atomic_write(staging / file) as handle:
                handle.write(text)
        for kind in formats:
            plot_generalisation(result, staging / f"{name}-vs-depth.{kind}", metric=name, style=style, title=title)
        os.chmod(staging, 0o777 & ~_umask())
        if out.is_dir():
            out.rmdir()  # an empty folder named by --out
        os.rename(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return sorted(p.name for p in out.iterdir())


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
