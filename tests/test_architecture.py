"""The house's shape: layers and import direction (import-linter), no private name across modules, module
sizes, and what importing the kernel loads."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "du_framework"
UPPER = ("workbench", "cli")  # the layers above the kernel
MAX_MODULE_LINES = 400
HEAVY = ("matplotlib", "optuna", "tqdm", "du_framework.cli")


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def kernel_files() -> list[Path]:
    return [path for path in PACKAGE.rglob("*.py") if path.relative_to(PACKAGE).parts[0] not in UPPER]


def test_import_contracts_hold():
    """pyproject.toml's import-linter contracts: layers cli -> workbench -> kernel (and the kernel's own order),
    the kernel importing no upper layer nor matplotlib, optuna or tqdm, and no cycle between siblings."""
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert "3 kept, 0 broken" in done.stdout


def private_imports() -> list[str]:
    """``module imports _name from other`` for every private name taken from another module of the package."""
    known = modules()
    found = []
    for name, path in known.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom):
                continue
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            if not source.startswith("du_framework"):
                continue
            for alias in node.names:
                private = alias.name.startswith("_") and not alias.name.startswith("__")
                if private and f"{source}.{alias.name}" not in known:  # a private module is a package's own
                    found.append(f"{name} imports {alias.name} from {source}")
    return found


def test_no_private_name_is_imported_across_modules():
    assert private_imports() == []


def test_no_module_exceeds_the_size_limit():
    long = {str(path.relative_to(ROOT)): count for path in PACKAGE.rglob("*.py")
            if (count := len(path.read_text().splitlines())) > MAX_MODULE_LINES}
    assert long == {}, f"modules over {MAX_MODULE_LINES} lines: {long}"


def test_the_kernel_names_no_upper_layer_even_in_text():
    """Besides imports (checked by import-linter), the kernel reaches the workbench only through the core's own
    entry-point group: no importlib call names an upper module."""
    offenders = [str(path.relative_to(ROOT)) for path in kernel_files()
                 if any(f"du_framework.{layer}" in line and ("import_module" in line or "__import__" in line)
                        for line in path.read_text().splitlines() for layer in UPPER)]
    assert offenders == []


@pytest.mark.parametrize("code", [
    "import du_framework",
    "import du_framework.engine, du_framework.testing, du_framework.io.checkpoint",
    "from du_framework.registry import get_registry; get_registry()",
])
def test_importing_the_kernel_loads_no_display_or_search_library(code):
    probe = f"{code}\nimport sys\nprint(sorted({{m.split('.')[0] if not m.startswith('du_framework') else m " \
            f"for m in sys.modules}} & set({HEAVY!r})))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]", f"{code!r} loaded {done.stdout.strip()}"


def code_lines(path: Path) -> int:
    """Lines holding code: not blank, not only a comment, not part of a docstring."""
    import io
    import tokenize

    source = path.read_text()
    docstrings = set()
    for node in ast.walk(ast.parse(source)):
        body = getattr(node, "body", None)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and body:
            first = body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                docstrings.update(range(first.lineno, first.end_lineno + 1))
    lines = set()
    skipped = (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER)
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type not in skipped:
            lines.update(line for line in range(token.start[0], token.end[0] + 1) if line not in docstrings)
    return len(lines)


def test_the_kernel_stays_small():
    """Everything a plugin author imports holds at most 4500 lines of code (docstrings, comments and blank lines
    not counted: they are most of the kernel's other lines, and a contract should be documented)."""
    total = sum(code_lines(path) for path in kernel_files())
    assert total <= 4500, f"the kernel holds {total} lines of code"
