"""Helpers of the VM tier's tests."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import pytest


def _run(*argv: str) -> None:
    result = subprocess.run(argv, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {result.stdout}{result.stderr}")


def mount_nfs(command: str, target: Path) -> None:
    """Run a share's ``status.mountCommand`` as a client would, mounting on ``target``."""
    argv = shlex.split(command)
    argv[-1] = str(target)
    target.mkdir(parents=True, exist_ok=True)
    _run(*argv)


def umount(target: Path) -> None:
    subprocess.run(["umount", "-f", str(target)], capture_output=True)


def requires_openzfs() -> None:
    if not Path("/dev/zfs").exists():
        pytest.fail("the VM tier needs kernel ZFS (/dev/zfs)")
    assert os.environ.get("NASD_VM")
