"""Fixtures for tests against real ZFS: ``zfs_daemon`` (session), ``pool_env`` (one test's pool names,
files and mount root, all cleaned up), ``make_nasd`` (a daemon object on a private state dir)."""

from __future__ import annotations

import os
import secrets
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, Callable

import pytest
import yaml

from .faketime import fake_clock  # noqa: F401  (a fixture)
from .nfs import nfs_exports  # noqa: F401  (a fixture)
from .kube import kube_env  # noqa: F401  (a fixture)
from .smb import smb_env  # noqa: F401  (a fixture)
from .zfs import ZFSFuse, ZFSUnavailable, fuse_mounts_under


@pytest.fixture(scope="session")
def zfs_daemon(tmp_path_factory: pytest.TempPathFactory):
    daemon = ZFSFuse(tmp_path_factory.mktemp("zfs-fuse"))
    try:
        daemon.start()
    except ZFSUnavailable as e:
        if os.environ.get("NASD_REQUIRE_ZFS"):
            pytest.fail(f"ZFS is required (NASD_REQUIRE_ZFS) but unavailable: {e}")
        pytest.skip(f"real ZFS unavailable: {e}")
    yield daemon
    daemon.stop()


@dataclass
class PoolEnv:
    """Names and paths for one test: pools are named with a unique prefix and live under ``root``."""

    root: Path
    daemon: ZFSFuse
    prefix: str = field(default_factory=lambda: "t" + secrets.token_hex(3))

    @property
    def mount_root(self) -> Path:
        return self.root / "mnt"

    @property
    def state_dir(self) -> Path:
        return self.root / "state"

    def pool_name(self, suffix: str = "tank") -> str:
        return f"{self.prefix}{suffix}"

    def vdev(self, name: str) -> str:
        return str(self.root / "vdevs" / f"{name}.img")

    def config(self, **extra: Any) -> dict[str, Any]:
        base = {
            "stateDir": str(self.state_dir),
            "socket": str(self.root / "nasd.sock"),
            "plugins": {"zfs": {"mountRoot": str(self.mount_root)}},
        }
        base.update(extra)
        return base

    def write_config(self, **extra: Any) -> Path:
        path = self.root / "config.yaml"
        path.write_text(yaml.safe_dump(self.config(**extra)))
        return path

    def pool_manifest(self, suffix: str = "tank", vdev_type: str = "stripe", devices: int = 1,
                      size: str = "256Mi", **spec: Any) -> dict[str, Any]:
        paths = [self.vdev(f"{suffix}-{i}") for i in range(devices)]
        return {
            "apiVersion": "nasd.io/v1alpha1",
            "kind": "ZPool",
            "metadata": {"name": self.pool_name(suffix)},
            "spec": {"vdevs": [{"type": vdev_type, "devices": paths}], "files": {p: size for p in paths}, **spec},
        }

    def dataset_manifest(self, name: str, path: str | None = None, pool: str = "tank", **spec: Any) -> dict:
        return {
            "apiVersion": "nasd.io/v1alpha1",
            "kind": "ZDataset",
            "metadata": {"name": name},
            "spec": {"pool": self.pool_name(pool), "path": path or name, **spec},
        }

    def write_manifests(self, folder: Path, *docs: dict[str, Any]) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "resources.yaml"
        path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
        return path

    def zfs_get(self, dataset: str, *props: str) -> dict[str, str]:
        out = subprocess.run(
            ["zfs", "get", "-H", "-p", "-o", "property,value", ",".join(props), dataset],
            capture_output=True, text=True, check=True,
        ).stdout
        return dict(line.split("\t", 1) for line in out.splitlines())

    def cleanup(self) -> None:
        for pool in self.daemon.all_pools():
            if pool.startswith(self.prefix):
                self.daemon.destroy_pool(pool)
        leftover = fuse_mounts_under(self.root)
        assert not leftover, f"mounts left behind: {leftover}"


@pytest.fixture
def pool_env(zfs_daemon: ZFSFuse, tmp_path: Path):
    env = PoolEnv(tmp_path, zfs_daemon)
    env.mount_root.mkdir()
    yield env
    env.cleanup()


@pytest.fixture
async def make_nasd(pool_env: PoolEnv) -> AsyncIterator[Callable[..., Any]]:
    """Build a started :class:`nasd.daemon.Nasd` on the test's state dir; stopped at teardown."""
    from nasd.config import Config
    from nasd.daemon import Nasd

    started: list[Nasd] = []

    async def factory(manifests: list[Path] | None = None, watch: bool = False,
                      extra_plugins: list[tuple[str, object]] = (),  # type: ignore[assignment]
                      replace_plugins: dict[str, object] | None = None, **extra: Any) -> Nasd:
        config = Config.model_validate(pool_env.config(manifests=[str(m) for m in manifests or []], **extra))
        nasd = Nasd(config, watch=watch, extra_plugins=extra_plugins, replace_plugins=replace_plugins)
        await nasd.start()
        started.append(nasd)
        return nasd

    yield factory
    for nasd in started:
        await nasd.stop()


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """The SMB conformance test's pass counts (nasd's share and the stock smbd, per kind and suite)."""
    from .smbtorture import REPORT
    lines = config.stash.get(REPORT, [])
    if lines:
        terminalreporter.section("SMB conformance: smbtorture subtests passed")
        for line in lines:
            terminalreporter.write_line(line)
