"""The documentation site builds with ``mkdocs build --strict`` and its API pages are complete.

Strict mode fails on any broken link, anchor or cross-reference and on any docstring that the
API reference cannot render, so a broken page fails the tests. Needs the ``docs`` extra
(``pip install -e '.[docs]'``, which ``make install`` does); skipped without it.
"""

import ast
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MISSING = [name for name in ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python")
           if importlib.util.find_spec(name.split(".")[0]) is None
           or (name.startswith("mkdocstrings_") and importlib.util.find_spec(name) is None)]
pytestmark = pytest.mark.skipif(
    bool(MISSING), reason=f"the docs extra is not installed (no {', '.join(MISSING)}): pip install -e '.[docs]'")

# Module whose __all__ the API pages must document, and the file defining that __all__.
DOCUMENTED = {
    "du_framework": ROOT / "du_framework" / "__init__.py",
    "du_framework.engine": ROOT / "du_framework" / "engine" / "__init__.py",
    "du_framework.registry": ROOT / "du_framework" / "registry" / "__init__.py",
    "du_framework.testing": ROOT / "du_framework" / "testing" / "__init__.py",
    **{package: ROOT / "plugins" / package.replace("_", "-") / package / "__init__.py"
       for package in ("du_gd_ridge", "du_theory", "du_momentum", "du_sparse", "du_linear_systems")},
}


def public_names(path: Path) -> list[str]:
    """The literal ``__all__`` of a module, read without importing it (no JAX needed)."""
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in node.targets):
            return list(ast.literal_eval(node.value))
    raise AssertionError(f"{path} has no literal __all__")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The site built with --strict into a temporary folder."""
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stdout}\n{done.stderr}"
    return out


def test_chapters_are_pages(site):
    for page in ("index.html", "getting-started/index.html", "concepts/index.html", "writing-a-plugin/index.html",
                 "cli/index.html", "results/index.html", "reliability/index.html", "performance/index.html",
                 "algorithms/index.html", "api/index.html", "search/search_index.json"):
        assert (site / page).is_file(), page


@pytest.mark.parametrize("module", sorted(DOCUMENTED))
def test_api_pages_list_every_public_name(site, module):
    html = "".join(page.read_text() for page in (site / "api").rglob("*.html"))
    # A plugin's __version__ is its distribution's version, not an interface (the core's is on its page).
    names = [name for name in public_names(DOCUMENTED[module]) if module == "du_framework" or name != "__version__"]
    missing = [name for name in names if f'id="{module}.{name}"' not in html]
    assert not missing, f"the API reference does not document {module}.{missing}"


def test_core_page_lists_du_framework_all(site):
    html = (site / "api" / "du_framework" / "index.html").read_text()
    missing = [name for name in public_names(DOCUMENTED["du_framework"]) if f'id="du_framework.{name}"' not in html]
    assert not missing, f"api/du_framework.md does not document {missing}"
