"""Plugins use the core through its public module only, and import only what their distribution brings.

Read from the source (ast), over every module of ``plugins/*/src`` and ``examples/*/`` (imports under
``if TYPE_CHECKING:`` and inside functions too). The rule:

- from the core, only ``nasd.plugin`` (``from nasd.plugin import ...``, ``import nasd.plugin``, ``from nasd import
  plugin``): every other module of ``nasd`` is private to the core and may change without notice;
- the plugin's own package, the standard library, and third-party modules of a distribution that the plugin's
  distribution (or ``nasd``, which every plugin depends on) declares as a dependency;
- another plugin's package: only its public face, the module of hook specs it declares for others
  (``nasd_<name>.hookspecs``, the module it passes to ``addhooks``, with the types its hooks take or answer) and
  the package itself (``from nasd_smb import SmbShareStatus``), whose ``__init__`` re-exports nothing but those
  hook specs; and only when the importer's distribution depends on that plugin's distribution. Nothing else of
  it: a plugin extends another through hooks, never through its internals;
- never the test harness (``nasd_testing``): the product ships no test code.
"""

from __future__ import annotations

import ast
import importlib.metadata
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
PUBLIC = "nasd.plugin"
HOOK_MODULE = "hookspecs"


@dataclass(frozen=True)
class Distribution:
    name: str
    root: Path
    packages: frozenset[str]  # its top-level packages
    requires: frozenset[str]  # canonical names of what it declares

    def modules(self) -> list[Path]:
        return sorted(p for p in self.root.rglob("*.py") if "tests" not in p.relative_to(self.root).parts)


def _distribution(root: Path) -> Distribution:
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    src = root / "src"
    packages = frozenset(p.name for p in src.iterdir() if (p / "__init__.py").exists()) if src.is_dir() else frozenset()
    requires = frozenset(canonicalize_name(Requirement(r).name) for r in project.get("dependencies", []))
    return Distribution(project["name"], root, packages, requires)


DISTRIBUTIONS = [_distribution(p.parent) for p in sorted([*REPO.glob("plugins/*/pyproject.toml"),
                                                           *REPO.glob("examples/*/pyproject.toml")])]
#: every first-party top-level package outside the core, by the distribution that holds it
FIRST_PARTY = {pkg: d for d in DISTRIBUTIONS for pkg in d.packages}
NASD_REQUIRES = frozenset(canonicalize_name(Requirement(r).name) for r in importlib.metadata.requires("nasd") or []
                          if "extra ==" not in r)


def _first_party_dir(module: str) -> Path | None:
    """The folder of the first-party package ``module`` (the core's or a plugin's), None for any other module."""
    top, *rest = module.split(".")
    base = REPO / "nasd" if top == "nasd" else (FIRST_PARTY[top].root / "src" / top if top in FIRST_PARTY else None)
    return base.joinpath(*rest) if base is not None else None


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, dotted module) of every absolute import in ``path``; ``from a import b`` gives ``a.b`` when ``b`` is a
    module of the first-party package ``a`` (``from nasd import plugin`` reads as ``nasd.plugin``), else ``a``."""
    out: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            folder = _first_party_dir(node.module)
            for alias in node.names:
                sub = folder is not None and ((folder / f"{alias.name}.py").exists() or (folder / alias.name).is_dir())
                out.append((node.lineno, f"{node.module}.{alias.name}" if sub else node.module))
    return out


def violation(dist: Distribution, module: str) -> str | None:
    """Why ``dist`` may not import ``module`` (None: it may)."""
    top = module.split(".")[0]
    if top == "nasd":
        return None if module == PUBLIC else f"the core's private {module}"
    if top in dist.packages or top in sys.stdlib_module_names or top == "__future__":
        return None
    if top == "nasd_testing":
        return "the test harness (the product ships no test code)"
    other = FIRST_PARTY.get(top)
    if other is not None:
        if module not in (top, f"{top}.{HOOK_MODULE}"):
            return (f"{other.name}'s internals (extend it through its hooks; only {top} and {top}.{HOOK_MODULE} "
                    "may be imported)")
        if canonicalize_name(other.name) not in dist.requires:
            return f"{module} without depending on {other.name} (add it to the dependencies in pyproject.toml)"
        return None
    providers = {canonicalize_name(d) for d in importlib.metadata.packages_distributions().get(top, [])}
    if not providers:
        return f"{top}, which no installed distribution provides"
    if not providers & (dist.requires | NASD_REQUIRES):
        return f"{top} (from {', '.join(sorted(providers))}) without declaring it in the dependencies"
    return None


def violations(dist: Distribution) -> list[str]:
    return list(dict.fromkeys(f"{path.relative_to(REPO)}:{line}: {module}: {why}"
                              for path in dist.modules() for line, module in imports(path)
                              if (why := violation(dist, module)) is not None))


@pytest.mark.parametrize("dist", DISTRIBUTIONS, ids=[d.name for d in DISTRIBUTIONS])
def test_a_plugin_imports_the_core_only_through_nasd_plugin_and_nothing_it_does_not_declare(dist):
    assert violations(dist) == []


@pytest.mark.parametrize("dist", DISTRIBUTIONS, ids=[d.name for d in DISTRIBUTIONS])
def test_a_plugin_package_exports_nothing_but_its_hook_specs(dist):
    """What ``from nasd_smb import X`` may give another plugin: the package's ``__init__`` imports only from its own
    hook specs (or nothing)."""
    for package in dist.packages:
        init = dist.root / "src" / package / "__init__.py"
        found = [(node.lineno, "." * node.level + (node.module or "")) for node in ast.walk(ast.parse(init.read_text()))
                 if isinstance(node, (ast.Import, ast.ImportFrom))]
        assert [(line, m) for line, m in found if m not in ("__future__", f".{HOOK_MODULE}")] == [], init


def test_the_rule_refuses_what_it_should_and_allows_what_it_should(tmp_path):
    """The rule itself, on the distributions as they are declared (so that the test above can fail)."""
    module = tmp_path / "m.py"
    module.write_text("from nasd import plugin, models\nfrom nasd_smb import render, SmbShareStatus\n"
                      "if True:\n    import nasd_smb.hookspecs\n")
    assert imports(module) == [(1, "nasd.plugin"), (1, "nasd.models"), (2, "nasd_smb.render"), (2, "nasd_smb"),
                               (4, "nasd_smb.hookspecs")]
    tm = next(d for d in DISTRIBUTIONS if d.name == "nasd-timemachine")
    nfs = next(d for d in DISTRIBUTIONS if d.name == "nasd-nfs")
    assert violation(tm, "nasd.plugin") is None and violation(tm, "nasd_timemachine.options") is None
    assert violation(tm, "json") is None and violation(tm, "zeroconf") is None  # stdlib; declared
    assert violation(tm, "pydantic") is None  # through nasd's own dependencies
    assert "private nasd.models" in (violation(tm, "nasd.models") or "")
    assert "internals" in (violation(tm, "nasd_smb.render") or "")
    assert violation(tm, "nasd_smb.hookspecs") is None and violation(tm, "nasd_smb") is None  # it depends on nasd-smb
    assert "without depending on nasd-smb" in (violation(nfs, "nasd_smb.hookspecs") or "")
    assert "without declaring" in (violation(nfs, "zeroconf") or "")
    assert "test harness" in (violation(nfs, "nasd_testing.serve") or "")


def test_every_plugin_and_example_is_checked():
    names = {d.name for d in DISTRIBUTIONS}
    assert {"nasd-zfs", "nasd-smb", "nasd-nfs", "nasd-snapshots", "nasd-timemachine", "nasd-kubernetes",
            "nasd-nojunk"} <= names
    assert all(d.modules() for d in DISTRIBUTIONS)
