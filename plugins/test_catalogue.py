"""The installed catalogue: every name comes from its own plugin and fits exactly the problems with its capability.

An integration test across the shipped plugins (each skipped when its plugin is
not installed); the core's own tests name no plugin.
"""

import importlib.metadata

import pytest

from du_framework.registry import ENTRY_POINT_GROUP, get_registry

INSTALLED = {ep.name for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}


def installed(*plugins):
    missing = sorted(set(plugins) - INSTALLED)
    return pytest.mark.skipif(bool(missing), reason=f"plugin(s) not installed: {', '.join(missing)}")


CATALOGUE = {
    "problem": {"ridge": "du-gd-ridge", "sparse-recovery": "du-sparse", "linear-system": "du-linear-systems",
                "mimo": "du-detection",
                "ldpc": "du-decoding"},
    "solver": {
        "dugd": "du-gd-ridge", "gd": "du-gd-ridge",
        "gd-chebyshev": "du-theory", "cg": "du-theory", "heavy-ball": "du-theory",
        "du-heavy-ball": "du-momentum",
        "ista": "du-sparse", "fista": "du-sparse", "du-ista": "du-sparse", "tista": "du-sparse", "lista": "du-sparse",
        "jacobi": "du-linear-systems", "sor": "du-linear-systems", "du-psor": "du-linear-systems",
        "chebyshev-psor": "du-linear-systems", "gauss-seidel-sor": "du-linear-systems",
        "du-sor": "du-linear-systems",
        "zf": "du-detection", "lmmse": "du-detection", "ml": "du-detection", "pg": "du-detection",
        "tpg": "du-detection", "oamp": "du-detection", "oamp-net": "du-detection",
        "bp": "du-decoding", "min-sum": "du-decoding", "normalized-min-sum": "du-decoding",
        "offset-min-sum": "du-decoding", "neural-bp": "du-decoding", "neural-min-sum": "du-decoding",
    },
}


@pytest.mark.parametrize("kind, name, plugin", [pytest.param(k, n, p, marks=installed(p))
                                                for k, names in CATALOGUE.items() for n, p in names.items()])
def test_catalogue_names_come_from_their_own_plugin(kind, name, plugin, monkeypatch):
    monkeypatch.setenv("DU_PLUGINS", plugin)
    assert get_registry().plugin_of(kind, name) == plugin


FITS = {"cg": {"ridge", "linear-system"}, "du-heavy-ball": {"ridge", "linear-system"}, "dugd": {"ridge"},
        "tista": {"sparse-recovery"}, "du-psor": {"linear-system"}, "neural-min-sum": {"ldpc"}}


@pytest.mark.parametrize("solver, fits", [pytest.param(s, f, marks=installed(*CATALOGUE["problem"].values(),
                                                                              CATALOGUE["solver"][s]))
                                          for s, f in FITS.items()])
def test_solvers_fit_exactly_the_problems_with_their_capability(solver, fits):
    registry = get_registry()
    capabilities = registry.solver(solver).capabilities()
    assert {name for name in registry.names("problem")
            if all(issubclass(registry.problem(name), c) for c in capabilities)} == fits
