"""What the distributions hold: the ``nasd`` wheel is the product alone; the test harness is the
distribution ``nasd-testing`` (``testing/``), which pytest loads as the plugin ``nasd`` through its
``pytest11`` entry point, as it loads pytester."""

from __future__ import annotations

import ast
import importlib.metadata
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def imported_modules(source: str) -> set[str]:
    """The top-level names of the absolute imports of one module's source."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def build_nasd_wheel(out: Path, scratch: Path) -> Path:
    """The nasd wheel, built offline from a copy of the checkout's nasd distribution (its project files and
    its top-level packages), so the checkout gets no build/ or egg-info."""
    src = scratch / "src"
    src.mkdir()
    for name in ("pyproject.toml", "setup.cfg", "README.md"):
        if (REPO / name).exists():
            shutil.copy2(REPO / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build")
    for package in REPO.iterdir():
        if package.is_dir() and (package / "__init__.py").exists():
            shutil.copytree(package, src / package.name, ignore=ignore)
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
         "--isolated", "--disable-pip-version-check", "-q", "-w", str(out), str(src)],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"pip wheel failed (the venv needs setuptools and wheel):\n{result.stderr}"
    wheels = list(out.glob("nasd-*.whl"))
    assert len(wheels) == 1, f"expected one nasd wheel, got {[w.name for w in out.iterdir()]}"
    return wheels[0]


def test_the_nasd_wheel_holds_no_test_code(tmp_path: Path) -> None:
    (tmp_path / "scratch").mkdir()
    wheel = build_nasd_wheel(tmp_path / "wheels", tmp_path / "scratch")
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        modules = {n: z.read(n).decode() for n in names if n.endswith(".py")}
    assert "nasd/cli.py" in modules and "nasd/daemon.py" in modules, f"not the product's wheel: {names}"
    assert [n for n in names if n.startswith("nasd/testing/") or "nasd_testing" in n] == []
    assert [n for n in names if not (n.startswith("nasd/") or n.split("/")[0].endswith(".dist-info"))] == []
    test_imports = {name: sorted(imported_modules(source) & {"pytest", "_pytest", "nasd_testing"})
                    for name, source in modules.items()}
    assert {name: found for name, found in test_imports.items() if found} == {}


def test_the_test_harness_is_a_pytest_plugin_of_its_own_distribution(pytestconfig: pytest.Config) -> None:
    [entry] = [ep for ep in importlib.metadata.entry_points(group="pytest11") if ep.name == "nasd"]
    assert entry.value == "nasd_testing.pytest_plugin"
    assert entry.dist is not None and entry.dist.name == "nasd-testing"
    requires = {r.split(";")[0].split(">")[0].split("=")[0].strip().lower()
                for r in importlib.metadata.requires("nasd-testing") or []}
    assert {"nasd", "pytest", "pytest-aiohttp"} <= requires
    nasd_requires = importlib.metadata.requires("nasd") or []
    assert not any("nasd-testing" in r or "nasd_testing" in r for r in nasd_requires)
    # this very session loaded it by that entry point, once (conftest.py no longer names it)
    plugin = sys.modules["nasd_testing.pytest_plugin"]
    assert pytestconfig.pluginmanager.get_plugin("nasd") is plugin
    assert [p for p in pytestconfig.pluginmanager.get_plugins() if p is plugin] == [plugin]
