"""The docs' code is executed: the plugin tutorial end to end, and runnable examples."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
FENCE = re.compile(r"```(\w+)([^\n]*)\n(.*?)```", re.S)


def blocks(page: str):
    """(language, info, code) of every fenced block of a docs page."""
    return [(m.group(1), m.group(2).strip(), m.group(3)) for m in FENCE.finditer((DOCS / page).read_text())]


def run(args, cwd, env, timeout=300):
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{args} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def tutorial(tmp_path_factory):
    """The tutorial's files written out and its package pip-installed into a private folder."""
    root = tmp_path_factory.mktemp("tutorial")
    files = {}
    for _, info, code in blocks("writing-a-plugin.md"):
        match = re.search(r"file=(\S+)", info)
        if match:
            files[match.group(1)] = code
            (root / match.group(1)).parent.mkdir(parents=True, exist_ok=True)
            (root / match.group(1)).write_text(code)
    assert {"du-nesterov/pyproject.toml", "du-nesterov/du_nesterov/__init__.py", "compare.toml"} <= set(files)
    site = root / "site"
    run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(site), str(root / "du-nesterov")], cwd=root, env=os.environ.copy())
    env = os.environ.copy()
    env["PYTHONPATH"] = os.pathsep.join([str(site), env.get("PYTHONPATH", "")])
    env.pop("DU_PLUGINS", None)
    return root, env


def test_tutorial_plugin_appears_in_du_list(tutorial):
    root, env = tutorial
    listing = json.loads(run([sys.executable, "-m", "du_framework", "list", "--json"], cwd=root, env=env))
    entry = listing["solvers"]["du-nesterov"]
    assert entry["plugin"] == "du-nesterov"
    assert entry["requires"] == "QuadraticProblem" and "ridge" in entry["fits"]


def test_tutorial_comparison_runs_and_the_learned_solver_beats_gd(tutorial):
    root, env = tutorial
    out = root / "runs" / "nesterov"
    printed = run([sys.executable, "-m", "du_framework", "compare", "--config", "compare.toml", "--out", str(out),
                   "--no-progress"], cwd=root, env=env)
    assert "du-nesterov" in printed
    results = json.loads((out / "results.json").read_text())["solvers"]
    assert set(results["du-nesterov"]["params"]) == {"eta", "beta"}
    assert results["du-nesterov"]["mse"][-1] < results["gd"]["mse"][-1]
    assert (out / "params.png").stat().st_size > 0


def test_tutorial_conformance_tests_pass(tutorial):
    root, env = tutorial
    printed = run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(root / "du-nesterov" / "tests")],
                  cwd=root, env=env)
    assert re.search(r"\b12 passed\b", printed), printed


@pytest.mark.parametrize("page", ["getting-started.md", "concepts.md", "performance.md"])
def test_runnable_examples_execute(page, tmp_path, monkeypatch):
    runnable = [code for language, info, code in blocks(page) if language == "python" and "run" in info.split()]
    assert runnable, f"{page} has no runnable example"
    monkeypatch.chdir(tmp_path)
    namespace = {}
    for code in runnable:
        exec(compile(code, f"docs/{page}", "exec"), namespace)
