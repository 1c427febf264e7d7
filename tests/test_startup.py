"""What the quick commands import: ``unfold --help`` and ``unfold completion bash`` build the parser only.

They load no plugin (the registry), no engine or workbench, no matplotlib and no optuna.
``unfold list`` and ``unfold examples`` need the registry: loading the plugins imports JAX
(and the engine), so they are not checked here.
"""

import json
import subprocess
import sys

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


def imported(argv):
    done = subprocess.run([sys.executable, "-c", PROBE.format(argv=argv)], capture_output=True, text=True,
                          timeout=120)
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
