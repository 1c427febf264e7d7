"""What every figure shares: the runs and solvers drawn, their labels, integer iteration axes, y limits
that include every curve and reference line, the legend's place, and parameter names as math."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import numpy as np

from ...errors import ConfigError, nearest
from ..loading import Run, SolverRun
from ..text import plain_text

__all__ = ["as_runs", "run_labels", "selected_solvers", "series_looks", "problem_names", "math_name",
           "iteration_ticks", "set_integer_axis", "set_limits", "place_legend"]

_GREEK = {"alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa", "lambda", "mu",
          "nu", "xi", "pi", "rho", "sigma", "tau", "upsilon", "phi", "chi", "psi", "omega", "Gamma", "Delta",
          "Theta", "Lambda", "Xi", "Pi", "Sigma", "Upsilon", "Phi", "Psi", "Omega"}
_ALIASES = {"lam": "lambda", "lmbda": "lambda", "eps": "epsilon"}


def as_runs(runs: Run | Sequence[Run]) -> list[Run]:
    if isinstance(runs, Run):
        return [runs]
    runs = list(runs)
    if not runs or not all(isinstance(r, Run) for r in runs):
        raise ConfigError("give one Run or a non-empty list of Runs (du_framework.workbench.loading.load_run)")
    return runs


def run_labels(runs: Sequence[Run]) -> list[str]:
    """Distinct labels of ``runs`` (a repeated label gets ``#2``, ``#3``)."""
    seen: dict[str, int] = {}
    labels = []
    for run in runs:
        seen[run.label] = seen.get(run.label, 0) + 1
        labels.append(run.label if seen[run.label] == 1 else f"{run.label}#{seen[run.label]}")
    return labels


def selected_solvers(runs: list[Run], solvers: Sequence[str] | None) -> list[tuple[str, Run, SolverRun]]:
    """``(legend label, run, solver)`` of every solver drawn, in order."""
    labels = run_labels(runs)
    if solvers is not None:
        wanted = [s.strip() for s in (solvers.split(",") if isinstance(solvers, str) else solvers) if s.strip()]
        known = list(dict.fromkeys(label for run in runs for label in run.solvers))
        unknown = [name for name in wanted if name not in known]
        if unknown:
            hint = nearest(unknown[0], known)
            raise ConfigError(f"no solver {', '.join(map(repr, unknown))} in the run(s); solvers: {', '.join(known)}"
                              + (f" (did you mean {hint!r}?)" if hint else ""))
    chosen = []
    for run_label, run in zip(labels, runs):
        for label, solver in run.solvers.items():
            if solvers is None or label in wanted:
                chosen.append((f"{run_label}: {label}" if len(runs) > 1 else label, run, solver))
    return chosen


def series_looks(runs: list[Run], chosen: Sequence[tuple[str, Run, SolverRun]]) -> list[dict]:
    """The look of each chosen series (:func:`~.style.solver_looks` over every solver of ``runs``, in order, so a
    solver label keeps its colour and marker whichever solvers a figure draws); with several runs each run has
    its own line style (:data:`~.style.RUN_LINES`), learned and classical then told apart by filled and open
    markers."""
    from .style import RUN_LINES, solver_looks

    looks = solver_looks([(label, solver.trainable) for run in runs for label, solver in run.solvers.items()])
    styled = []
    for _, run, solver in chosen:
        look = dict(looks[solver.label])
        if len(runs) > 1:
            look["linestyle"] = RUN_LINES[next(i for i, r in enumerate(runs) if r is run) % len(RUN_LINES)]
        styled.append(look)
    return styled


def problem_names(runs: Sequence[Run]) -> list[str]:
    """The distinct problem names of ``runs``, in order (``""`` for a run that records none)."""
    return list(dict.fromkeys(str(run.problem.get("name") or (run.config.get("problem") or {}).get("name") or "")
                              for run in runs))


def math_name(name: str, index: str = "k") -> str:
    """A learned parameter's name as mathtext with subscript ``index``: ``eta`` -> ``$\\eta_k$``.

    Greek letter names (and ``lam``) become letters, one-letter names stay
    italic, other simple names upright (``$\\mathrm{step}_k$``); a name that is
    not letters-and-digits is returned as literal text (``$`` escaped).
    """
    match = re.fullmatch(r"([A-Za-z]+)(\d*)", name)
    if not match:
        return plain_text(name)
    base, digits = match.groups()
    base = _ALIASES.get(base, base)
    symbol = "\\" + base if base in _GREEK else (base if len(base) == 1 else f"\\mathrm{{{base}}}")
    sub = f"{digits},{index}" if digits else index
    return f"${symbol}_{{{sub}}}$"


def iteration_ticks(last: int, most: int = 8) -> list[int]:
    """Integer ticks for 1..``last``: 1, then multiples of a round step (1, 2, 5, 10, 20, 25, 50, ...)."""
    last = max(1, int(last))
    step = 1
    for candidate in (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 2500, 5000, 10000):
        step = candidate
        if last / candidate <= most - 1:
            break
    else:
        step = 10 ** math.ceil(math.log10(last / (most - 1)))
    ticks = [1] + [k for k in range(step, last + 1, step) if k - 1 >= step / 2 or step == 1]
    return sorted(set(ticks))


def set_integer_axis(ax, last: int) -> None:
    ax.set_xticks(iteration_ticks(last))
    pad = max(0.25, 0.02 * (last - 1))
    ax.set_xlim(1 - pad, last + pad)


def set_limits(ax, values: list[np.ndarray], *, log: bool) -> None:
    """y limits covering every finite value in ``values`` (curves, bands, reference lines), with a margin."""
    finite = np.concatenate([np.ravel(np.asarray(v, np.float64)) for v in values]) if values else np.zeros(0)
    finite = finite[np.isfinite(finite)]
    if log:
        finite = finite[finite > 0]
    if not finite.size:
        return
    low, high = float(finite.min()), float(finite.max())
    if not log:
        ax.ticklabel_format(axis="y", useOffset=False)  # "+2.999" above the axis reads badly in print
    if log:
        span = max(math.log10(high) - math.log10(low), 1e-3)
        pad = 0.05 * span
        ax.set_ylim(10 ** (math.log10(low) - pad), 10 ** (math.log10(high) + pad))
    else:
        span = high - low or max(abs(high), 1.0) * 0.1
        ax.set_ylim(low - 0.06 * span, high + 0.06 * span)


def place_legend(ax, entries: int) -> None:
    if entries > 7:  # beside the axes, the figure widened so the axes keep their size
        width, height = ax.figure.get_size_inches()
        ax.figure.set_size_inches(width * 1.5, height)
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    else:
        ax.legend(loc="best")
