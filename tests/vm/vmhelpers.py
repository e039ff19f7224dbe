"""Helpers of the VM tier's tests."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import pytest


def run(*argv: str) -> None:
    """Run a command; raise with its output when it fails."""
    result = subprocess.run(argv, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {result.stdout}{result.stderr}")


def mount_nfs(command: str, target: Path) -> None:
    """Run a share's ``status.mountCommand`` as a client would, mounting on ``target``."""
    argv = shlex.split(command)
    argv[-1] = str(target)
    target.mkdir(parents=True, exist_ok=True)
    run(*argv)


def umount(target: Path) -> None:
    """Unmount a client mount; fails loudly (a mount left behind keeps the pool busy)."""
    result = subprocess.run(["umount", str(target)], capture_output=True, text=True)
    if result.returncode != 0 and str(target) in Path("/proc/self/mounts").read_text():
        raise RuntimeError(f"umount {target}: {result.stderr.strip()}")


def requires_openzfs() -> None:
    if not Path("/dev/zfs").exists():
        pytest.fail("the VM tier needs kernel ZFS (/dev/zfs)")
    assert os.environ.get("NASD_VM")
