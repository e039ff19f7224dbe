"""Fixtures of the VM tier (run by `make test-vm` inside a Debian VM with OpenZFS 2.1 and a kernel nfsd):
the kernel NFS server, started in the test process's private mount namespace so that it reads the
tests' /etc/exports.d and /var/lib/nfs (nasd.testing.nfs)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Iterator

import pytest

_started: list[str] = []


def _run(*argv: str) -> None:
    result = subprocess.run(argv, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {result.stdout}{result.stderr}")


@pytest.fixture
def nfs_server(nfs_exports) -> Iterator[None]:
    """rpcbind, mountd (started once) and nfsd serving v3 and v4 on loopback. nfsd's threads stop after each
    test: that closes the files nfsd keeps open for v3 clients, which would keep the test's pool busy."""
    if not Path("/proc/fs/nfsd/threads").exists():
        _run("mount", "-t", "nfsd", "nfsd", "/proc/fs/nfsd")
    if not _started:
        Path("/run/rpcbind").mkdir(parents=True, exist_ok=True)
        _run("rpcbind", "-w")
        _run("rpc.mountd")
        _started.append("mountd")
    _run("rpc.nfsd", "4")
    time.sleep(0.3)
    try:
        yield
    finally:
        _run("rpc.nfsd", "0")
