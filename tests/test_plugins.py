"""Plugin discovery: entry points, isolation of broken plugins, duplicates, allow-list."""

import inspect
import re
from pathlib import Path

import pytest

from du_framework import DuplicateNameError, PluginError, UnknownNameError, hookspecs
from du_framework.plugins import BUILTIN_PLUGIN, get_registry

from plugin_factory import SOLVER_SOURCE, make_distribution

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_reference_plugin_and_builtin_schedules_are_registered():
    registry = get_registry()
    assert registry.get("problem", "ridge").plugin == "du-gd-ridge"
    assert {"dugd", "gd"} <= set(registry.names("solver"))
    assert registry.get("solver", "dugd").plugin == "du-gd-ridge"
    assert set(registry.names("schedule")) >= {"incremental", "incremental-frozen", "end-to-end", "layer-wise"}
    assert registry.get("schedule", "incremental").plugin == BUILTIN_PLUGIN


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(UnknownNameError) as caught:
        get_registry().solver("dgud")
    message = str(caught.value)
    assert "unknown solver 'dgud'" in message and "dugd" in message and "gd" in message
    assert "did you mean 'dugd'" in message


def test_a_third_party_plugin_is_discovered(tmp_path, monkeypatch):
    make_distribution(tmp_path, "du-richardson", "richardson", "du_richardson_test",
                      SOLVER_SOURCE.format(name="richardson"))
    monkeypatch.syspath_prepend(str(tmp_path))
    entry = get_registry().get("solver", "richardson")
    assert entry.plugin == "richardson" and entry.cls.__name__ == "Richardson"


def test_a_broken_plugin_is_named_and_skipped(tmp_path, monkeypatch):
    make_distribution(tmp_path, "du-broken", "broken-plugin", "du_broken_test", "raise ImportError('no such dependency')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.warns(RuntimeWarning, match="'broken-plugin'.*du-broken.*no such dependency"):
        registry = get_registry()
    assert "broken-plugin" in registry.failures
    assert "dugd" in registry.names("solver"), "the other plugins must still load"


def test_two_plugins_registering_one_name_is_an_error_naming_both(tmp_path, monkeypatch):
    make_distribution(tmp_path / "a", "du-dup-a", "dup-a", "du_dup_a_test", SOLVER_SOURCE.format(name="dugd"))
    monkeypatch.syspath_prepend(str(tmp_path / "a"))
    with pytest.raises(DuplicateNameError) as caught:
        get_registry()
    message = str(caught.value)
    assert "'dugd'" in message and "'du-gd-ridge'" in message and "'dup-a'" in message
    assert "DU_PLUGINS" in message


def test_allow_list_loads_only_the_named_plugins(tmp_path, monkeypatch):
    make_distribution(tmp_path, "du-broken", "broken-plugin", "du_broken_test2", "raise RuntimeError('boom')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("DU_PLUGINS", "du-gd-ridge")
    registry = get_registry()
    assert registry.failures == {}
    assert "dugd" in registry.names("solver")


def test_empty_allow_list_loads_no_plugin_but_the_builtin_schedules(monkeypatch):
    monkeypatch.setenv("DU_PLUGINS", "")
    registry = get_registry()
    assert registry.names("solver") == [] and registry.names("problem") == []
    assert "incremental" in registry.names("schedule")


def test_registering_something_that_is_not_a_solver_is_refused(tmp_path, monkeypatch):
    source = """
        from du_framework import hookimpl

        @hookimpl
        def register_solvers(register):
            register(dict)
    """
    make_distribution(tmp_path, "du-wrong", "wrong", "du_wrong_test", source)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PluginError, match="plugin 'wrong' registered .*dict.* subclass of du_framework.UnfoldedSolver"):
        get_registry()


HOOKS = [name for name, value in vars(hookspecs).items() if name.startswith("register_") and callable(value)]


def test_every_hook_is_documented_with_its_exact_signature():
    text = (DOCS / "writing-a-plugin.md").read_text()
    for name in HOOKS:
        signature = f"{name}{inspect.signature(getattr(hookspecs, name))}"
        assert signature in text, f"docs/writing-a-plugin.md must show {signature}"


def test_every_hook_has_a_test():
    sources = "".join(p.read_text() for p in Path(__file__).parent.glob("test_*.py"))
    sources += "".join(p.read_text() for p in Path(__file__).parent.glob("plugin_factory.py"))
    for name in HOOKS:
        assert re.search(rf"def {name}\(register\)", sources), f"no test plugin implements {name}"


CATALOGUE = {
    "problem": {"ridge": "du-gd-ridge", "sparse-recovery": "du-sparse", "linear-system": "du-linear-systems"},
    "solver": {
        "dugd": "du-gd-ridge", "gd": "du-gd-ridge",
        "gd-chebyshev": "du-theory", "cg": "du-theory", "heavy-ball": "du-theory",
        "du-heavy-ball": "du-momentum",
        "ista": "du-sparse", "fista": "du-sparse", "du-ista": "du-sparse", "tista": "du-sparse", "lista": "du-sparse",
        "jacobi": "du-linear-systems", "sor": "du-linear-systems", "du-psor": "du-linear-systems",
        "chebyshev-psor": "du-linear-systems", "gauss-seidel-sor": "du-linear-systems",
        "du-sor": "du-linear-systems",
    },
}


@pytest.mark.parametrize("kind, name, plugin", [(k, n, p) for k, names in CATALOGUE.items() for n, p in names.items()])
def test_catalogue_names_come_from_their_own_plugin(kind, name, plugin):
    assert get_registry().get(kind, name).plugin == plugin


@pytest.mark.parametrize("solver, fits", [
    ("cg", {"ridge", "linear-system"}), ("du-heavy-ball", {"ridge", "linear-system"}), ("dugd", {"ridge"}),
    ("tista", {"sparse-recovery"}), ("du-psor", {"linear-system"}),
])
def test_solvers_fit_exactly_the_problems_with_their_capability(solver, fits):
    registry = get_registry()
    requires = registry.solver(solver).requires
    assert {name for name in registry.names("problem") if issubclass(registry.problem(name), requires)} == fits
