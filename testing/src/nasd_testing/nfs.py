"""Kernel NFS's fixed files, private to a test: ``exportfs`` reads /etc/exports and /etc/exports.d and
keeps /var/lib/nfs/etab, always at those paths. The test process is in its own mount namespace
(see :mod:`nasd_testing.zfs`), so a tmpfs over each (mounted once per test process) keeps the tests'
exports from anything outside; each test starts and ends with nothing exported. The real exportfs
parses, checks and records exactly what the test wrote."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from .zfs import ZFSUnavailable, _enter_private_mount_namespace

EXPORTS_DIR = Path("/etc/exports.d")
SYSTEM_EXPORTS = Path("/etc/exports")
STATE_DIR = Path("/var/lib/nfs")


@dataclass
class NfsExports:
    scratch: Path

    @property
    def own(self) -> Path:
        return EXPORTS_DIR / "nasd.exports"

    def etab(self) -> list[tuple[str, str]]:
        """(path, client(options)) in effect, as exportfs recorded them."""
        try:
            text = (STATE_DIR / "etab").read_text()
        except FileNotFoundError:
            return []
        return [tuple(line.split("\t", 1)) for line in text.splitlines() if line]  # type: ignore[misc]

    def exported(self) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for path, client in self.etab():
            out.setdefault(path, set()).add(client.split("(", 1)[0])
        return out

    def settings(self) -> dict[str, str]:
        return {"exportsFile": str(self.own), "hostName": "nas.test"}


def _mount(*argv: str) -> None:
    subprocess.run(["mount", *argv], check=True, capture_output=True)


_private: list[Path] = []  # the scratch folder of the private files, once they are mounted


def _private_files(scratch: Path) -> Path:
    """tmpfs over /etc/exports.d and /var/lib/nfs and an empty file over /etc/exports, once per test process
    (a kernel nfsd's rpc.mountd, started by the VM tier, keeps reading the same ones)."""
    if _private:
        return _private[0]
    scratch.mkdir(parents=True, exist_ok=True)
    EXPORTS_DIR.mkdir(exist_ok=True)
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    for target in (EXPORTS_DIR, STATE_DIR):
        _mount("-t", "tmpfs", "nasd-test", str(target))
    empty = scratch / "exports"
    empty.write_text("")
    if not SYSTEM_EXPORTS.exists():
        SYSTEM_EXPORTS.write_text("")
    _mount("--bind", str(empty), str(SYSTEM_EXPORTS))
    _private.append(scratch)
    return scratch


def _unexport_all() -> None:
    """Every exports file emptied, then `exportfs -ra`: nothing exported (a kernel nfsd lets go of the paths)."""
    for f in EXPORTS_DIR.iterdir():
        f.unlink()
    (_private[0] / "exports").write_text("")
    subprocess.run(["exportfs", "-ra"], capture_output=True)
    for f in STATE_DIR.iterdir():
        if f.is_file() and f.name not in ("etab", "rmtab"):
            f.unlink()


@pytest.fixture
def nfs_exports(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NfsExports]:
    if os.geteuid() != 0:
        pytest.skip("the NFS tests mount over /etc/exports.d: they need root")
    if not shutil.which("exportfs", path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin"):
        if os.environ.get("NASD_REQUIRE_ZFS"):
            pytest.fail("exportfs is not installed (make test installs nfs-kernel-server)")
        pytest.skip("exportfs is not installed (make test installs nfs-kernel-server)")
    if not os.environ.get("NASD_VM"):
        # In the VM tier the VM itself is private, and a mount namespace of our own would hide the test's
        # datasets from OpenZFS's snapshot automounter (it mounts .zfs/snapshot/<name> from the initial
        # namespace), which nfsd needs to serve them.
        try:
            _enter_private_mount_namespace()
        except ZFSUnavailable as e:
            pytest.skip(str(e))
    scratch = _private_files(tmp_path_factory.getbasetemp() / "nfs-files")
    _unexport_all()
    try:
        yield NfsExports(scratch)
    finally:
        _unexport_all()
