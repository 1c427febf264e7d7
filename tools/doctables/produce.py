"""Producing a table: run its comparison in this process and record it with its environment."""

from __future__ import annotations

import datetime as _dt
import os
import platform
from pathlib import Path
from typing import Any

import numpy as np

from du_framework.workbench.text import table_iterations

from .record import SolverRow, TableData, TableError, Tolerance, table_names

__all__ = ["environment", "table_from_run", "produce"]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def environment(provenance: dict[str, Any] | None = None) -> dict[str, Any]:
    """What produced a table: date, du-framework/jax/jaxlib/flax/optax/numpy versions, Python, backend,
    devices, CPU model and cores, load average, platform and git revision.

    ``provenance`` is a run's record (``results.json``'s ``provenance``); what it lacks is filled in
    from this process.
    """
    provenance = dict(provenance or {})
    if "libraries" not in provenance or "backend" not in provenance:
        from du_framework.workbench.runs import provenance as current

        provenance = {**current(argv=[]), **provenance}
    libraries = provenance.get("libraries") or {}
    try:
        load = [round(value, 2) for value in os.getloadavg()]
    except OSError:
        load = None
    return {
        "date": provenance.get("created") or _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "du_framework": provenance.get("du_framework"),
        "jax": libraries.get("jax"), "jaxlib": libraries.get("jaxlib"), "flax": libraries.get("flax"),
        "optax": libraries.get("optax"), "numpy": libraries.get("numpy"),
        "python": provenance.get("python") or platform.python_version(),
        "plugins": provenance.get("plugins"),
        "backend": provenance.get("backend"), "devices": provenance.get("devices"),
        "cpu": _cpu_model(), "cpu_count": os.cpu_count(), "load_average": load,
        "platform": platform.platform(), "git": provenance.get("git"),
    }


def table_from_run(run: Any, name: str, *, config: str, command: str, env: dict[str, Any] | None = None,
                   tolerance: Tolerance | None = None) -> TableData:
    """A table record from a loaded run (:class:`du_framework.workbench.loading.Run` of ``unfold compare``).

    Raises:
        TableError: the run holds no evaluation curves.
    """
    if not run.has_curves:
        raise TableError(f"run {run.label!r} holds no evaluation curves: a table needs a run of unfold compare")
    metrics = {key: {"label": info.title, "scale": info.scale, "log_axis": bool(info.log_axis), "format": info.format}
               for key, info in run.metrics.items()}

    def listed(values):
        return None if values is None else [float(v) for v in np.asarray(values, dtype=np.float64)]

    rows = []
    for label, solver in run.solvers.items():
        curves = {}
        for key, central in solver.metrics.items():
            low, high = (solver.spread or {}).get(key) or (None, None)
            curves[key] = {"central": listed(central), "low": listed(low), "high": listed(high)}
        rows.append(SolverRow(label=label, name=solver.name, options=dict(solver.options), trainable=solver.trainable,
                              seeds=[int(s) for s in solver.seeds], seed_status=list(solver.seed_status),
                              curves=curves, train_seconds=float(solver.train_seconds)))
    return TableData(name=name, config=config, command=command, environment=env or environment(run.provenance),
                     metrics=metrics, primary_metric=run.primary_metric or next(iter(metrics)),
                     iterations=table_iterations(run.depth), depth=run.depth, evaluation=dict(run.evaluation),
                     solvers=rows, tolerance=(tolerance or Tolerance()).describe())


def produce(name: str, tables_dir: str | Path, runs_dir: str | Path, *, config_label: str | None = None,
            tolerance: Tolerance | None = None) -> TableData:
    """Run ``unfold compare --config <tables_dir>/<name>.toml`` in this process and record its table.

    The run folder is ``<runs_dir>/<name>`` (replaced if present). ``config_label`` is how the
    record names the configuration (default: the path as given).

    Raises:
        TableError: no such configuration, or the comparison failed (its exit code).
    """
    from du_framework.cli import main
    from du_framework.workbench.loading import load_run

    config = Path(tables_dir) / f"{name}.toml"
    if not config.is_file():
        known = table_names(tables_dir)
        raise TableError(f"no table configuration {config}; the tables of {tables_dir}: {', '.join(known) or '(none)'}")
    out = Path(runs_dir) / name
    shown = config_label or str(config)
    args = ["compare", "--config", str(config), "--out", str(out), "--force", "--no-plots", "--no-progress"]
    code = main(args)
    if code != 0:
        raise TableError(f"table {name!r}: `unfold {' '.join(args)}` failed with exit code {code} (its message above)")
    run = load_run(out)
    command = f"unfold compare --config {shown} --no-plots"
    return table_from_run(run, name, config=shown, command=command, tolerance=tolerance)
