"""The entry point: :func:`load_run` on a folder of ``unfold compare`` or ``unfold train``."""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from typing import Any

import numpy as np

from ...io.safe_files import file_sha256
from .fields import Checker, jsonable
from .files import (MAX_JSON_BYTES, ManifestMismatchError, RunFileError, check_limit, read_bytes,
                    read_json)
from .model import Run, SolverRun, attach_history, parse_results


# --- the manifest --------------------------------------------------------------------------------


def check_manifest(folder: Path, *, verify: bool, read: set[str]) -> tuple[dict | None, list[str], list[str]]:
    """``(manifest, verified files, warnings)`` of ``folder``; raises on a mismatch in a file in ``read``."""
    path = folder / "manifest.json"
    if not path.exists():
        return None, [], [f"{folder}: no manifest.json (a run from before manifests, or an incomplete one); "
                          f"its files could not be checked"]
    check = Checker(f"manifest.json {str(path)!r}")
    manifest = check.obj(read_json(path, "manifest.json"), "")
    if manifest.get("format") != "du-framework-run":
        shown = json.dumps(manifest.get("format"))[:40] if jsonable(manifest.get("format")) else "?"
        raise RunFileError(f"manifest.json {str(path)!r} is not a du-framework run manifest (format {shown}, "
                           f"expected \"du-framework-run\")")
    files = check.obj(check.key(manifest, "files", ""), "files")
    verified, warnings, errors = [], [], []
    root = folder.resolve()
    for relative, record in files.items():
        where = f"files[{json.dumps(relative)}]"
        record = check.obj(record, where)
        expected = check.text(check.key(record, "sha256", where), f"{where}.sha256")
        target = folder / relative
        if Path(relative).is_absolute() or not target.resolve().is_relative_to(root):
            raise RunFileError(f"manifest.json {str(path)!r} lists {relative!r}, which lies outside the run folder")
        limit = check_limit(relative)
        if not target.is_file():
            problem = f"{relative} is listed in manifest.json but missing"
        elif target.stat().st_size > limit:  # refused before hashing: no minutes spent on a huge planted file
            if relative in read:
                raise RunFileError(f"{relative} {str(target)!r} is {target.stat().st_size} bytes, more than the "
                                   f"{limit} bytes this reader accepts; it is not a file unfold wrote")
            warnings.append(f"{folder}: {relative} is {target.stat().st_size} bytes, more than the {limit} bytes "
                            f"checked; its sha256 was not checked")
            continue
        elif file_sha256(target, limit) != expected:
            problem = f"{relative} was changed after the run was written (its sha256 differs from manifest.json's)"
        else:
            verified.append(relative)
            continue
        (errors if relative in read else warnings).append(f"{folder}: {problem}")
    for name in sorted(read - set(files)):
        warnings.append(f"{folder}: {name} is not listed in manifest.json (added after the run?); read unchecked")
    if errors:
        if verify:
            raise ManifestMismatchError("; ".join(errors) + "; the numbers may not be the ones the run produced. "
                                        "Read it anyway with verify=False (unfold plot/report: --no-verify)")
        warnings.extend(f"{message} (read anyway: verify=False)" for message in errors)
    return manifest, verified, warnings


# --- training runs -------------------------------------------------------------------------------


def read_config(folder: Path) -> dict[str, Any]:
    if (folder / "config.json").exists():
        return Checker(f"config.json {str(folder / 'config.json')!r}").obj(read_json(folder / "config.json"), "")
    toml_path = folder / "config.toml"
    if toml_path.exists():
        data = read_bytes(toml_path, MAX_JSON_BYTES, "config.toml")
        try:
            return tomllib.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
            raise RunFileError(f"config.toml {str(toml_path)!r} is not valid TOML ({error})") from None
    return {}


def load_training_run(folder: Path, label: str) -> Run:
    from ...io.checkpoint import read_checkpoint
    from ...errors import CheckpointError

    config = read_config(folder)
    run = Run(label=label, folder=folder, kind="train", schema_version=None, config=config, problem={},
              metrics={}, primary_metric=None, evaluation={}, solvers={})
    configured = {entry.get("label") or entry.get("name"): entry for entry in config.get("solvers", [])
                  if isinstance(entry, dict)}
    files = sorted((folder / "checkpoints").glob("*.npz")) if (folder / "checkpoints").is_dir() else []
    order = {name: i for i, name in enumerate(configured)}
    files.sort(key=lambda p: (order.get(p.stem, len(order)), p.name))  # the configuration's order
    for path in files:
        if path.name.endswith(".last-good.npz"):
            continue
        try:
            metadata, arrays = read_checkpoint(path)
        except CheckpointError as error:
            raise RunFileError(f"checkpoint {error}") from None
        solver_label = metadata.get("label") or path.stem
        entry = configured.get(solver_label, {})
        run.solvers[solver_label] = SolverRun(
            label=solver_label, name=metadata["solver"],
            options=metadata.get("options") or {k: v for k, v in entry.items() if k not in ("name", "label")},
            trainable=True, metrics={}, train_seconds=float(metadata.get("train_seconds") or 0.0),
            # the parameters reports show: not large matrices or networks' weights (report=False; in the file)
            stored_params={name.removeprefix("param/"): np.asarray(value, np.float64) for name, value in arrays.items()
                           if metadata["params"].get(name.removeprefix("param/"), {}).get("report", True)},
            checkpoint=path, extra={"status": metadata.get("status", "trained")})
        if not run.problem and isinstance(metadata.get("problem"), dict):
            run.problem = dict(metadata["problem"].get("describe") or {})
    classical = [name for name in configured if name not in run.solvers]
    run.missing.append("no evaluation curves and no reported parameters: a run of `unfold train` holds checkpoints "
                       "(the parameters in their stored, raw form); evaluate it with `unfold compare --checkpoints "
                       f"{folder / 'checkpoints'} --config {folder / 'config.toml'} --out NEW`")
    if classical:
        run.missing.append(f"classical solvers not trained (nothing to learn): {', '.join(classical)}")
    train = config.get("train") or {}
    seeds = train.get("seeds") if isinstance(train.get("seeds"), list) else None
    run.train_seeds = seeds or ([train["seed"]] if isinstance(train.get("seed"), int) else [])
    return run


# --- the entry point -----------------------------------------------------------------------------


def load_run(path: str | os.PathLike, *, verify: bool = True, label: str | None = None) -> Run:
    """Read the run folder ``path`` (or its ``results.json``) into a :class:`Run`.

    A folder of ``unfold compare`` gives every metric's curves per solver (and
    per seed, schema 3), the parameters, the loss history when saved; a folder
    of ``unfold train`` gives its configuration, problem facts, the
    checkpoints' stored parameters and the loss history when saved, and says in
    :attr:`Run.missing` what it lacks. ``label`` names the run in reports
    (default: the folder's name).

    Raises:
        RunFileError: not a run folder; a missing, truncated, oversized or
            malformed file; a ``schema_version`` other than 2 or 3 (the message
            names the file and the entry, and what would be right).
        ManifestMismatchError: with ``verify`` (the default), a file the loader
            reads differs from its sha256 in ``manifest.json``.
    """
    path = Path(path)
    if path.is_file() and path.name == "results.json":
        path = path.parent
    if not path.exists():
        raise RunFileError(f"run folder {str(path)!r} does not exist")
    if not path.is_dir():
        raise RunFileError(f"{str(path)!r} is not a run folder (give the folder unfold compare or unfold train "
                           f"wrote, or its results.json)")
    label = label or path.resolve().name or "run"
    results_path = path / "results.json"
    training = not results_path.exists()
    if training and ((path / "tune.json").exists() or subcommand(path) == "tune"):
        raise RunFileError(f"{str(path)!r} is a tuning study (written by unfold tune), not a run: read it with "
                           f"du_framework.workbench.load_study; unfold report draws its report")
    if training and not (path / "checkpoints").is_dir() and subcommand(path) != "train":
        raise RunFileError(f"{str(path)!r} is not a run folder: it has no results.json (written by unfold compare), "
                           f"no checkpoints/ (written by unfold train) and no tune.json (written by unfold tune)")
    read = {"results.json", "training.csv", "stages.csv"} if not training else {"config.json", "training.csv",
                                                                                "stages.csv"}
    if training and (path / "checkpoints").is_dir():
        read |= {f"checkpoints/{p.name}" for p in (path / "checkpoints").glob("*.npz")}
    manifest, verified, warnings = check_manifest(path, verify=verify, read={n for n in read if (path / n).exists()})
    if training:
        run = load_training_run(path, label)
    else:
        results = read_json(results_path, "results.json")
        run = parse_results(results, f"results.json {str(results_path)!r}", label, path)
    run.manifest, run.verified, run.warnings = manifest, verified, warnings + run.warnings
    attach_history(run, path)
    if run.provenance is None and manifest and isinstance(manifest.get("provenance"), dict):
        run.provenance = manifest["provenance"]
    if run.provenance is None:
        run.missing.append("no provenance (versions, backend, command line): unfold compare records it since "
                           "run folders have a manifest")
    return run


def subcommand(folder: Path) -> str | None:
    path = folder / "manifest.json"
    if not path.is_file():
        return None
    try:
        manifest = read_json(path)
    except RunFileError:
        return None
    return manifest.get("subcommand") if isinstance(manifest, dict) else None
