"""The docs' code is executed: the plugin tutorial end to end, and runnable examples."""

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
FENCE = re.compile(r"```(\w+)([^\n]*)\n(.*?)```", re.S)

TUTORIAL_FILES = {
    "du-mimo/pyproject.toml",
    "du-mimo/du_mimo/__init__.py",
    "du-mimo/du_mimo/problem.py",
    "du-mimo/du_mimo/solvers.py",
    "du-mimo/du_mimo/schedules.py",
    "du-mimo/du_mimo/plugin.py",
    "du-mimo/du_mimo/experiments/mimo-quick.toml",
    "du-mimo/tests/test_du_mimo.py",
    "compare.toml",
}
DEPTH = 6


def blocks(page: str):
    """(language, info, code) of every fenced block of a docs page."""
    return [(m.group(1), m.group(2).strip(), m.group(3)) for m in FENCE.finditer((DOCS / page).read_text())]


def runnable(page: str) -> list[str]:
    """The code of the page's ```python run``` blocks."""
    return [code for language, info, code in blocks(page) if language == "python" and "run" in info.split()]


def run(args, cwd, env, timeout=300):
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{args} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def unfold(*args, root, env):
    return run([sys.executable, "-m", "du_framework", *args], cwd=root, env=env)


@pytest.fixture(scope="module")
def tutorial(tmp_path_factory):
    """The tutorial's files written out and its package pip-installed into a private folder.

    ``DU_PLUGINS=du-mimo`` loads that plugin alone, as if only the core and du-mimo were installed:
    the tutorial must not lean on the repository's plugins.
    """
    root = tmp_path_factory.mktemp("tutorial")
    files = {}
    for _, info, code in blocks("writing-a-plugin.md"):
        match = re.search(r"file=(\S+)", info)
        if match:
            assert match.group(1) not in files, f"two blocks write {match.group(1)}"
            files[match.group(1)] = code
            (root / match.group(1)).parent.mkdir(parents=True, exist_ok=True)
            (root / match.group(1)).write_text(code)
    assert set(files) == TUTORIAL_FILES
    site = root / "site"
    run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(site), str(root / "du-mimo")], cwd=root, env=os.environ.copy())
    env = os.environ.copy()
    env["PYTHONPATH"] = os.pathsep.join([str(site), env.get("PYTHONPATH", "")])
    env["DU_PLUGINS"] = "du-mimo"
    return root, env


@pytest.fixture(scope="module")
def comparison(tutorial):
    """``unfold compare`` on the tutorial's configuration: (output folder, printed table)."""
    root, env = tutorial
    out = root / "runs" / "mimo"
    printed = unfold("compare", "--config", "compare.toml", "--metric", "ser", "--out", str(out), "--no-progress",
                     root=root, env=env)
    return out, printed


def test_tutorial_plugin_appears_in_unfold_list(tutorial):
    root, env = tutorial
    listing = json.loads(unfold("list", "--json", root=root, env=env))
    assert listing["failed_plugins"] == {}
    plugins = {entry["plugin"] for kind in ("problems", "solvers", "schedules", "experiments")
               for entry in listing[kind].values()}
    assert plugins == {"du-mimo", "du-framework (built-in)"}
    problem = listing["problems"]["mimo-bpsk"]
    assert problem["plugin"] == "du-mimo"
    assert problem["metrics"] == ["ser", "mse"] and problem["primary_metric"] == "ser"
    for name in ("tpg", "pg"):
        solver = listing["solvers"][name]
        assert solver["plugin"] == "du-mimo"
        assert solver["requires"] == "LinearObservation and FiniteAlphabet" and solver["fits"] == ["mimo-bpsk"]
    assert listing["schedules"]["restart-polish"]["plugin"] == "du-mimo"
    assert listing["experiments"]["mimo-quick"] == {
        "plugin": "du-mimo", "default": False,
        "description": "TPG against the fixed-constant detector, 4 x 8 BPSK MIMO at 10 dB"}


def test_tutorial_options_are_listed_as_declared(tutorial):
    root, env = tutorial
    printed = unfold("list", "--options", "tpg", root=root, env=env)
    table = (DOCS / "writing-a-plugin.md").read_text().split("prints the declared options:\n\n```\n", 1)[1]
    for line in table.split("```", 1)[0].strip().splitlines():
        assert line in printed, f"docs show {line!r}; unfold list --options tpg printed:\n{printed}"


def test_tutorial_learned_detector_beats_the_classical_one(comparison):
    out, printed = comparison
    assert "symbol error rate" in printed and "tpg" in printed and "pg" in printed
    results = json.loads((out / "results.json").read_text())
    assert results["primary_metric"] == "ser" and set(results["metrics"]) == {"ser", "mse"}
    assert results["config"]["train"]["optimizer"] == "adamw"
    assert results["config"]["train"]["polish_factor"] == 3
    tpg, pg = results["solvers"]["tpg"], results["solvers"]["pg"]
    for metric in ("ser", "mse"):
        assert len(tpg["metrics"][metric]) == DEPTH == len(pg["metrics"][metric])
        assert tpg["metrics"][metric][-1] < pg["metrics"][metric][-1], metric
    assert set(tpg["params"]) == {"gamma", "theta"} and tpg["trainable"] and tpg["compilations"] <= 1
    assert all(value > 0 for name in ("gamma", "theta") for value in tpg["params"][name])
    assert set(pg["params"]) == {"gamma", "theta"} and not pg["trainable"]
    assert tpg["references"]["gamma"]["1/L"] == pytest.approx(pg["params"]["gamma"])


def test_tutorial_results_csv_holds_every_metric(comparison):
    out, _ = comparison
    with open(out / "results.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["solver", "iteration", "ser", "mse"]
    assert len(rows) == 1 + 2 * DEPTH
    assert {row[0] for row in rows[1:]} == {"tpg", "pg"}


def test_tutorial_writes_plots_and_a_checkpoint(comparison):
    out, _ = comparison
    for name in ("ser.png", "params.png", "checkpoints/tpg.npz", "config.json"):  # named after the SER it plots
        assert (out / name).stat().st_size > 0, name


def test_tutorial_compares_another_metric_from_checkpoints(tutorial, comparison):
    root, env = tutorial
    out, _ = comparison
    again = root / "runs" / "mimo-mse"
    printed = unfold("compare", "--config", "compare.toml", "--checkpoints", str(out / "checkpoints"), "--metric",
                     "mse", "--out", str(again), "--no-progress", "--no-plots", root=root, env=env)
    assert "MSE" in printed and "loaded" in printed
    first = json.loads((out / "results.json").read_text())["solvers"]["tpg"]["metrics"]
    second = json.loads((again / "results.json").read_text())["solvers"]["tpg"]["metrics"]
    assert second["mse"] == pytest.approx(first["mse"], rel=1e-5)


def test_tutorial_conformance_tests_pass(tutorial):
    from du_framework.testing import checks

    root, env = tutorial
    printed = run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(root / "du-mimo" / "tests")],
                  cwd=root, env=env)
    counts = {word: int(number) for number, word in re.findall(r"(\d+) (passed|skipped|failed|error)", printed)}
    # One problem, two solvers (one of them classical) and one schedule, plus the plugin's own two tests.
    cases = len(checks.PROBLEM_CHECKS) + 2 * len(checks.SOLVER_CHECKS) + len(checks.SCHEDULE_CHECKS) + 2
    assert counts.get("passed", 0) + counts.get("skipped", 0) == cases, printed
    assert counts.get("skipped", 0) >= 1 and "failed" not in counts and "error" not in counts, printed


def test_tutorial_ships_its_experiment_as_package_data(tutorial):
    """The non-editable install holds the TOML file, and the registered experiment is its text."""
    root, env = tutorial
    shipped = root / "site" / "du_mimo" / "experiments" / "mimo-quick.toml"
    assert shipped.read_text() == (root / "du-mimo" / "du_mimo" / "experiments" / "mimo-quick.toml").read_text()
    code = ("from du_framework.registry import get_registry\n"
            "print(get_registry().experiment('mimo-quick').config, end='')")
    assert run([sys.executable, "-c", code], cwd=root, env=env) == shipped.read_text()


def test_tutorial_runnable_examples_execute(tutorial):
    """The page's ``python run`` blocks, in order and in one namespace, in the tutorial's folder with du-mimo
    installed (each block keeps its own name in tracebacks)."""
    root, env = tutorial
    code_blocks = runnable("writing-a-plugin.md")
    (root / "blocks.json").write_text(json.dumps(code_blocks))
    (root / "notebook.py").write_text(
        "import json\n"
        "namespace = {'__name__': '__main__'}\n"
        "for number, code in enumerate(json.load(open('blocks.json')), 1):\n"
        "    exec(compile(code, f'docs/writing-a-plugin.md (runnable block {number})', 'exec'), namespace)\n")
    printed = run([sys.executable, "notebook.py"], cwd=root, env=env)
    assert "symbol error rate" in printed


def test_tutorial_tune_searches_the_declared_constants(tutorial):
    """``unfold tune`` on the classical detector searches the ranges its options declare with ``tune=``."""
    pytest.importorskip("optuna")
    root, env = tutorial
    out = root / "runs" / "mimo-tune"
    unfold("tune", "--config", "compare.toml", "--only", "pg", "--trials", "4", "--out", str(out), "--no-progress",
           root=root, env=env)
    search = json.loads((out / "tune.json").read_text())["solvers"]["pg"]
    space = {dimension["key"]: (dimension["source"], dimension["low"], dimension["high"], dimension["log"])
             for dimension in search["search_space"]}
    assert space == {"step_scale": ("declared", 0.25, 2.0, False), "softness": ("declared", 0.02, 2.0, True)}
    assert search["counts"]["complete"] == 4 and not search["trainable"]
    best = search["best"]["options"]
    assert 0.25 <= best["step_scale"] <= 2.0 and 0.02 <= best["softness"] <= 2.0
    assert f"step_scale = {best['step_scale']!r}" in (out / "tuned.toml").read_text()


# Pages about the reference experiment run it, so they need its plugin; concepts.md and results.md need only the core.
PAGES = {"getting-started.md": "du-gd-ridge", "concepts.md": None, "performance.md": "du-gd-ridge", "results.md": None}


@pytest.mark.parametrize("page", sorted(PAGES))
def test_runnable_examples_execute(page, tmp_path, monkeypatch):
    import importlib.metadata

    plugin = PAGES[page]
    if plugin and plugin not in {ep.name for ep in importlib.metadata.entry_points(group="du_framework")}:
        pytest.skip(f"{page} runs the reference experiment: plugin {plugin} is not installed")
    code_blocks = runnable(page)
    assert code_blocks, f"{page} has no runnable example"
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(DOCS.parent / "tools"))  # the maintainer's modules (doctables), as PYTHONPATH=tools
    namespace = {}
    for code in code_blocks:
        exec(compile(code, f"docs/{page}", "exec"), namespace)
