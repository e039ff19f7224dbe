"""Fresh virtual environments with some of nasd's distributions, installed as users install them: wheels, not
editable checkouts, from a wheelhouse, offline.

The wheelhouse has two parts. The third-party wheels (exactly the versions installed in the test's own
environment) are fetched once with ``pip wheel`` from the package registry and kept in
``$NASD_WHEELHOUSE`` (default ``/var/cache/nasd-wheels``), so later runs need no network. The checkout's own
distributions (``nasd``, ``plugins/*``, ``examples/plugin-*``) are built once per test session from a copy of
their project files (so the checkout gets no ``build/`` or ``egg-info``). Each environment is made with
``python -m venv --without-pip`` and filled by this environment's pip (``pip --python``) with ``--no-index``:
a distribution that forgets a module or a dependency fails there.
"""

from __future__ import annotations

import fcntl
import functools
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("NASD_WHEELHOUSE", "/var/cache/nasd-wheels"))
PIP_QUIET = ["--disable-pip-version-check", "-q"]


@functools.cache
def projects() -> dict[str, Path]:
    """The checkout's distributions, by name: nasd itself, every plugin, every example plugin."""
    found = {"nasd": REPO}
    for pyproject in [*sorted(REPO.glob("plugins/*/pyproject.toml")),
                      *sorted(REPO.glob("examples/plugin-*/pyproject.toml"))]:
        found[tomllib.loads(pyproject.read_text())["project"]["name"]] = pyproject.parent
    return found


def _offline_env() -> dict[str, str]:
    """pip with no configuration file and no PIP_* variables: only the options given (``--no-index``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    return env


def third_party_versions() -> dict[str, str]:
    """Every third-party distribution the checkout's distributions need (their dependencies, and theirs), at the
    version installed here."""
    ours = {canonicalize_name(n) for n in projects()}
    installed: dict[str, str] = {}
    todo = [r for path in projects().values() for r in _declared(path)]
    while todo:
        name = canonicalize_name(Requirement(todo.pop()).name)
        if name in installed or name in ours:
            continue
        dist = importlib.metadata.distribution(name)
        installed[name] = dist.version
        for req in dist.requires or []:
            parsed = Requirement(req)
            if parsed.marker is None or parsed.marker.evaluate({"extra": ""}):
                todo.append(req)
    return installed


def _declared(project: Path) -> list[str]:
    return list(tomllib.loads((project / "pyproject.toml").read_text())["project"].get("dependencies", []))


def _wheel_key(filename: str) -> tuple[str, str]:
    name, version = filename.split("-")[:2]
    return canonicalize_name(name), version


def fill_cache(cache: Path = CACHE) -> Path:
    """The cached third-party wheels, fetched for whatever version is not there yet (one ``pip wheel`` call,
    through the registry); a lock keeps two test runs from filling it at once."""
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        have = {_wheel_key(w.name) for w in cache.glob("*.whl")}
        missing = [f"{n}=={v}" for n, v in sorted(third_party_versions().items()) if (n, v) not in have]
        if missing:
            result = subprocess.run([sys.executable, "-m", "pip", "wheel", *PIP_QUIET, "--no-deps", "-w", str(cache),
                                     *missing], capture_output=True, text=True, timeout=600)
            assert result.returncode == 0, f"could not fetch {missing} into {cache}:\n{result.stderr}"
    return cache


def build_checkout_wheels(out: Path, scratch: Path) -> Path:
    """Wheels of the checkout's distributions in ``out``, built offline (``pip wheel``) from copies of
    their project files: pyproject.toml, setup.cfg, README.md and the packages (no tests)."""
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build", "tests")
    sources = []
    for name, path in projects().items():
        src = scratch / name
        src.mkdir(parents=True)
        for f in ("pyproject.toml", "setup.cfg", "README.md"):
            if (path / f).exists():
                shutil.copy2(path / f, src / f)
        if name == "nasd":
            shutil.copytree(path / "nasd", src / "nasd", ignore=ignore)
        else:
            shutil.copytree(path / "src", src / "src", ignore=ignore)
        sources.append(str(src))
    out.mkdir(parents=True, exist_ok=True)
    builds = [subprocess.Popen([sys.executable, "-m", "pip", "wheel", *PIP_QUIET, "--no-deps", "--no-build-isolation",
                                "--no-index", "-w", str(out), *sources[i::2]],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=_offline_env())
              for i in range(2)]  # (two at once: as many as the machine has cores)
    for build in builds:
        _, stderr = build.communicate(timeout=300)
        assert build.returncode == 0, f"pip wheel of the checkout failed:\n{stderr}"
    return out


@dataclass(frozen=True)
class Wheelhouse:
    third_party: Path
    checkout: Path

    def find_links(self) -> list[str]:
        return ["--no-index", "--find-links", str(self.third_party), "--find-links", str(self.checkout)]


@functools.cache
def wheelhouse(session_dir: Path) -> Wheelhouse:
    """The wheelhouse, built once per test process (``session_dir``: a folder of the session's own)."""
    return Wheelhouse(fill_cache(), build_checkout_wheels(session_dir / "wheels", session_dir / "sources"))


@dataclass(frozen=True)
class Venv:
    path: Path
    wheels: Wheelhouse

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    @property
    def nasd_bin(self) -> str:
        return str(self.path / "bin" / "nasd")

    def pip(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", "--python", str(self.python),
                               *args],
                              capture_output=True, text=True, timeout=300, env=_offline_env())

    def install(self, *distributions: str) -> None:
        result = self.pip("install", "-q", *self.wheels.find_links(), *distributions)
        assert result.returncode == 0, f"pip install {' '.join(distributions)} failed:\n{result.stderr}"

    def uninstall(self, *distributions: str) -> None:
        result = self.pip("uninstall", "-q", "-y", *distributions)
        assert result.returncode == 0, f"pip uninstall {' '.join(distributions)} failed:\n{result.stderr}"

    def distributions(self) -> set[str]:
        result = self.pip("list", "--format", "json")
        assert result.returncode == 0, result.stderr
        return {canonicalize_name(d["name"]) for d in json.loads(result.stdout)}

    def nasd(self, *args: str | Path, env: dict[str, str] | None = None, timeout: float = 90
             ) -> subprocess.CompletedProcess:
        """This environment's ``nasd`` command, with no NASD_* variable but those of ``env``."""
        clean = {k: v for k, v in os.environ.items() if not k.startswith("NASD_")} | (env or {})
        return subprocess.run([self.nasd_bin, *map(str, args)], capture_output=True, text=True, timeout=timeout,
                              env=clean, stdin=subprocess.DEVNULL)


def make_venv(path: Path, wheels: Wheelhouse, *distributions: str) -> Venv:
    """A new environment at ``path`` (without pip: this environment's pip fills it) with ``distributions``."""
    result = subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    venv = Venv(path, wheels)
    venv.install(*distributions)
    return venv


def listed_plugins(result: subprocess.CompletedProcess) -> dict[str, str]:
    """``nasd plugins -o json``'s plugins: name -> distribution."""
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stdout + result.stderr
    return {p["name"]: p["distribution"] for p in json.loads(result.stdout)}


def outcomes(result: subprocess.CompletedProcess) -> dict[tuple[str, str], tuple[str, str]]:
    """``nasd reconcile -o json``'s resources: (kind, name) -> (Ready status, reason)."""
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout, result.stdout + result.stderr
    out = {}
    data = json.loads(result.stdout)
    for item in data if isinstance(data, list) else [data]:  # (one resource is printed on its own)
        ready = next(c for c in item["status"]["conditions"] if c["type"] == "Ready")
        out[(item["kind"], item["metadata"]["name"])] = (ready["status"], ready["reason"])
    return out

