"""The documentation site builds with ``mkdocs build --strict`` and its API pages are complete.

Strict mode fails on any broken link, anchor or cross-reference and on any docstring that the
API reference cannot render, so a broken page fails the tests. Needs the ``docs`` extra
(``pip install -e '.[docs]'``, which ``make install`` does); skipped without it.
"""

import ast
import importlib.util
import os
import shutil
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


# --- formulas (KaTeX shipped with the site) and the home page's figure ---------------------------------

KATEX = "assets/katex"
# Formulas the pages wrote as code before they were typeset (docs/algorithms/*.md and the guide pages).
FORMERLY_CODE = {
    "algorithms/du-sparse/index.html": ["||A||_F^2 = n", "L = ||A||_2^2", "x^(0) = 0"],
    "algorithms/du-gd-ridge/index.html": ["H = A^T A + lambda I", "2 / (mu_min + mu_max)", "x^(t+1)"],
    "algorithms/mimo-detection/index.html": ["y = H x + w", "E||H x||^2 / E||w||^2"],
    "algorithms/ldpc-decoding/index.html": ["w_{t,e}", "G H^T = 0"],
    "concepts/index.html": ["1/2 x^T H x - b^T x", "k mod P"],
    "writing-a-plugin/index.html": ["{-1, +1}^n", "||target - x||^2"],
}


def inline_code(page: Path) -> list[str]:
    """The text of a page's inline ``<code>`` elements (code blocks left out)."""
    import html
    import re

    text = re.sub(r"<pre.*?</pre>", "", page.read_text(), flags=re.S)
    return [html.unescape(re.sub(r"<[^>]+>", "", m)) for m in re.findall(r"<code>(.*?)</code>", text, re.S)]


def formulas(site: Path) -> list[tuple[str, str]]:
    """``(page, formula)`` of every formula pymdownx.arithmatex marked (``\\(...\\)`` or ``\\[...\\]``)."""
    import html
    import re

    return [(str(page.relative_to(site)), html.unescape(match.group(2)).strip())
            for page in sorted(site.rglob("*.html"))
            for match in re.finditer(r'<(span|div) class="arithmatex">(.*?)</\1>', page.read_text(), re.S)]


def test_formulas_are_typeset_by_katex_shipped_with_the_site(site):
    import re

    for name in ("katex.min.js", "katex.min.css", "LICENSE"):
        assert (site / KATEX / name).is_file(), name
    assert "MIT" in (site / KATEX / "LICENSE").read_text()
    fonts = re.findall(r"url\((fonts/[^)]+)\)", (site / KATEX / "katex.min.css").read_text())
    assert fonts and all((site / KATEX / font).is_file() for font in fonts), "a font KaTeX's CSS names is missing"
    page = (site / "algorithms" / "du-sparse" / "index.html").read_text()
    for asset in (f"{KATEX}/katex.min.js", f"{KATEX}/katex.min.css", "javascripts/katex.js"):
        assert f'"../../{asset}"' in page, asset  # a relative link: the site works offline
    assert not re.search(r"https?://[^\"']*(katex|mathjax)", page, re.I), "the math assets must not come from a CDN"
    assert "katex.render" in (site / "javascripts" / "katex.js").read_text()


def test_formulas_that_were_code_are_mathematics(site):
    for page, sources in FORMERLY_CODE.items():
        code = inline_code(site / page)
        shown = [formula for name, formula in formulas(site) if name == page]
        assert shown, f"{page} has no formula"
        for source in sources:
            assert not any(source in text for text in code), f"{page} still shows {source!r} as code"
    # Code that is code stays code: an option name, a configuration key.
    assert "lam" in inline_code(site / "algorithms" / "du-gd-ridge" / "index.html")
    # No inline code on the guide and catalogue pages is written like a formula any more.
    import re

    pages = [p for p in site.rglob("*.html") if "api" not in p.relative_to(site).parts]
    leftovers = [(str(p.relative_to(site)), text) for p in pages for text in inline_code(p)
                 if re.search(r"\^\(|\|\||sqrt\(|_\{|\^T\b|\^2\b|\bmod\b", text)]
    assert not leftovers, leftovers


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed (it runs KaTeX on every formula)")
def test_every_formula_typesets_with_the_shipped_katex(site, tmp_path):
    import json

    found = formulas(site)
    assert len(found) > 200
    (tmp_path / "formulas.json").write_text(json.dumps(found))
    script = """
const katex = require(process.argv[1]);
const formulas = require(process.argv[2]);
const failed = [];
for (const [page, source] of formulas) {
  const formula = source.replace(/^\\\\[([]/, "").replace(/\\\\[)\\]]$/, "");
  try { katex.renderToString(formula, {displayMode: source.startsWith("\\\\["), throwOnError: true}); }
  catch (error) { failed.push(page + ": " + source + ": " + error.message); }
}
console.log(JSON.stringify(failed));
"""
    done = subprocess.run(["node", "-e", script, str(site / KATEX / "katex.min.js"), str(tmp_path / "formulas.json")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []


def test_home_page_shows_the_reference_figure(site):
    page = (site / "index.html").read_text()
    assert '<img alt="MSE versus iteration t of the reference experiment' in page and 'src="images/mse.png"' in page
    assert (site / "images" / "mse.png").read_bytes().startswith(b"\x89PNG")
