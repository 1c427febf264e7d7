"""What the quick commands import: ``unfold --help`` and ``unfold completion bash`` build the parser only.

They load no plugin (the registry), no engine or workbench, no matplotlib and no optuna.
``unfold list`` and ``unfold examples`` need the registry, whose plugins import JAX, once: their
output is kept between processes (du_framework/cli/catalogue.py), keyed by the installed
distributions and the plugins' files, so a second run imports none of it.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = """
import contextlib, io, json, sys
import du_framework
kernel = set(sys.modules)
from du_framework.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    try:
        code = main({argv!r})
    except SystemExit as exit_:
        code = exit_.code
print(json.dumps({{"code": code, "kernel": sorted(kernel), "after": sorted(sys.modules)}}))
"""

QUICK = [["--help"], ["completion", "bash"], ["completion", "zsh"], ["tune", "--help"]]
HEAVY = ("jax", "matplotlib", "optuna", "sqlalchemy")


def imported(argv, env=None):
    done = subprocess.run([sys.executable, "-c", PROBE.format(argv=argv)], capture_output=True, text=True,
                          timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["code"] in (0, None), result["code"]
    return set(result["kernel"]), set(result["after"])


@pytest.mark.parametrize("argv", QUICK, ids=" ".join)
def test_quick_commands_import_no_plugin_engine_plotting_or_optuna(argv):
    kernel, after = imported(argv)
    added = sorted(after - kernel)
    assert not [m for m in added if m.split(".")[0] in HEAVY], added
    assert "matplotlib" not in after and "optuna" not in after
    layers = ("du_framework.registry", "du_framework.engine", "du_framework.workbench")
    assert not [m for m in added if m.startswith(layers)], added
    # beyond the command line itself, only the kernel's exception types (no JAX behind them)
    assert all(m.startswith(("du_framework.cli", "du_framework.errors")) for m in added
               if m.startswith("du_framework")), added


def test_help_imports_no_jax():
    """The package's top level loads its names on first use, so the command line's help imports no JAX."""
    _, after = imported(["--help"])
    assert "jax" not in after


def _listing(argv, env):
    done = subprocess.run([sys.executable, "-m", "du_framework", *argv], capture_output=True, text=True,
                          timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("argv", [["list"], ["examples"], ["list", "--json"]], ids=" ".join)
def test_listing_commands_import_no_jax_once_their_catalogue_is_kept(argv, tmp_path):
    env = {**os.environ, "DU_CATALOGUE_CACHE": str(tmp_path / "catalogue")}
    first = _listing(argv, env)  # loads the plugins (JAX) and keeps what it printed
    assert "jax" in imported(argv, env={**env, "DU_CATALOGUE_CACHE": "off"})[1]
    kernel, after = imported(argv, env)
    assert not [m for m in after - kernel if m.split(".")[0] in HEAVY], sorted(after - kernel)
    assert "du_framework.registry" not in after
    assert _listing(argv, env) == first


def test_a_changed_plugin_file_or_plugin_choice_lists_afresh(tmp_path):
    """The key holds the plugins' files (an edited plugin is listed as it is now) and DU_PLUGINS."""
    import du_gd_ridge

    env = {**os.environ, "DU_CATALOGUE_CACHE": str(tmp_path / "catalogue")}
    everything = _listing(["list"], env)
    assert "dugd" in everything and "du-ista" in everything
    only_ridge = _listing(["list"], {**env, "DU_PLUGINS": "du-gd-ridge"})
    assert "dugd" in only_ridge and "du-ista" not in only_ridge
    assert len(list((tmp_path / "catalogue").iterdir())) == 2
    plugin_file = Path(du_gd_ridge.__file__)
    before = plugin_file.stat()
    os.utime(plugin_file, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000_000))
    try:
        assert _listing(["list"], env) == everything
        assert len(list((tmp_path / "catalogue").iterdir())) == 3  # listed afresh under a new key
    finally:
        os.utime(plugin_file, ns=(before.st_atime_ns, before.st_mtime_ns))
