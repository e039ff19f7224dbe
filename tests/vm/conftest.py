"""Fixtures of the VM tier (run by `make test-vm` inside a Debian VM with OpenZFS 2.1 and a kernel nfsd):
the kernel NFS server, reading the tests' /etc/exports.d and /var/lib/nfs (nasd_testing.nfs). The VM is
private, so the tests stay in its one mount namespace (OpenZFS mounts snapshots for nfsd there)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Iterator

import pytest
from vmhelpers import run

_started: list[str] = []


@pytest.fixture
def nfs_server(nfs_exports) -> Iterator[None]:
    """rpcbind, mountd (started once) and nfsd serving v3 and v4 on loopback. nfsd's threads stop after each
    test: that closes the files nfsd keeps open for v3 clients, which would keep the test's pool busy."""
    if not Path("/proc/fs/nfsd/threads").exists():
        run("mount", "-t", "nfsd", "nfsd", "/proc/fs/nfsd")
    if not _started:
        Path("/run/rpcbind").mkdir(parents=True, exist_ok=True)
        run("rpcbind", "-w")
        run("rpc.mountd")
        _started.append("mountd")
    run("rpc.nfsd", "4")
    time.sleep(0.3)
    try:
        yield
    finally:
        run("rpc.nfsd", "0")
