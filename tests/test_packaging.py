"""Packaging: one source for each version, and wheels that carry their licence and ``py.typed``.

The versions come from each package's ``__version__`` (``[tool.setuptools.dynamic]``), so the
installed metadata must agree with the module. The wheel test builds the core and one plugin
(``pip wheel --no-deps --no-build-isolation``, from a copy of the sources so the tree is left
alone) and reads the archives.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# distribution -> (import name, source folder relative to the repository root)
DISTRIBUTIONS = {
    "du-framework": ("du_framework", "."),
    "du-theory": ("du_theory", "plugins/du-theory"),
    "du-gd-ridge": ("du_gd_ridge", "plugins/du-gd-ridge"),
    "du-momentum": ("du_momentum", "plugins/du-momentum"),
    "du-sparse": ("du_sparse", "plugins/du-sparse"),
    "du-linear-systems": ("du_linear_systems", "plugins/du-linear-systems"),
    "du-detection": ("du_detection", "plugins/du-detection"),
    "du-decoding": ("du_decoding", "plugins/du-decoding"),
    "du-imaging": ("du_imaging", "plugins/du-imaging"),
}

# Left out of the copy the wheels are built from: environments, caches and build outputs.
_IGNORE = shutil.ignore_patterns(
    ".git", ".venv*", "__pycache__", "*.egg-info", "build", "dist", "site", "runs",
    ".pytest_cache", ".hypothesis", "plugins", "*.pyc",
)


@pytest.mark.parametrize("distribution", sorted(DISTRIBUTIONS))
def test_installed_version_is_the_package_version(distribution):
    module_name, _ = DISTRIBUTIONS[distribution]
    try:
        installed = importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        pytest.skip(f"{distribution} is not installed")
    module = importlib.import_module(module_name)
    assert installed == module.__version__


def test_every_plugin_is_listed_here():
    """A new plugin under plugins/ must be added to DISTRIBUTIONS (and so to the checks above)."""
    on_disk = {path.parent.name for path in (ROOT / "plugins").glob("*/pyproject.toml")}
    assert on_disk <= set(DISTRIBUTIONS)


def _setuptools_supports_license_expressions() -> bool:
    try:
        version = importlib.metadata.version("setuptools")
    except importlib.metadata.PackageNotFoundError:
        return False
    return tuple(int(part) for part in version.split(".")[:2] if part.isdigit()) >= (77,)


def _build_wheel(source: Path, out: Path) -> Path:
    before = set(out.glob("*.whl"))
    completed = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "--no-cache-dir", "-w", str(out), str(source)],
        capture_output=True, text=True, timeout=120,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    (wheel,) = set(out.glob("*.whl")) - before
    return wheel


def _check_wheel(wheel: Path, module_name: str) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        (metadata_name,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        metadata = Parser().parsestr(archive.read(metadata_name).decode())
        licence_files = [n for n in names if ".dist-info/licenses/" in n]
    assert metadata["License-Expression"] == "MIT", wheel.name
    assert "License" not in metadata, "the legacy License field is set beside the expression"
    assert metadata.get_all("License-File") == ["LICENSE"], wheel.name
    assert any(n.endswith("/licenses/LICENSE") for n in licence_files), (wheel.name, licence_files)
    assert f"{module_name}/py.typed" in names, wheel.name
    assert not any(n.startswith(("tests/", "plugins/", "benchmarks/")) for n in names), wheel.name


@pytest.mark.skipif(importlib.util.find_spec("setuptools") is None, reason="setuptools is not installed")
@pytest.mark.skipif(importlib.util.find_spec("wheel") is None, reason="wheel is not installed")
def test_wheels_carry_licence_metadata_and_py_typed(tmp_path):
    if not _setuptools_supports_license_expressions():
        pytest.skip("setuptools < 77 cannot write License-Expression")
    out = tmp_path / "wheels"
    out.mkdir()
    for distribution in ("du-framework", "du-gd-ridge"):
        module_name, folder = DISTRIBUTIONS[distribution]
        source = tmp_path / "src" / distribution
        shutil.copytree(ROOT / folder, source, ignore=_IGNORE)
        wheel = _build_wheel(source, out)
        assert wheel.name.startswith(distribution.replace("-", "_") + "-"), wheel.name
        module = importlib.import_module(module_name)
        assert f"-{module.__version__}-" in wheel.name
        _check_wheel(wheel, module_name)


def test_the_tensorboard_extra_installs_the_viewer_as_well_as_the_writer():
    """``pip install 'du-framework[tensorboard]'`` then ``tensorboard --logdir RUN/tensorboard`` (docs/observers.md)."""
    import re
    import tomllib

    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["tensorboard"]
    names = {re.match(r"[A-Za-z0-9_.-]+", requirement).group(0).lower() for requirement in extra}
    assert {"tensorboardx", "tensorboard"} <= names
