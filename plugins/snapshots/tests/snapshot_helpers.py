"""Shared helpers for the snapshots plugin's tests against real ZFS (zfs-fuse through ``make test``, OpenZFS in
the VM tier). A module of its own name, not conftest: several test folders have a conftest.py, and which
one ``import conftest`` finds depends on the order pytest loads them."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from nasd_testing.clock import Clock


#: the kernel's OpenZFS (the VM tier) rather than zfs-fuse: the same tests, each dialect's batching
OPENZFS = Path("/dev/zfs").exists()


def snapshots(dataset: str, *props: str) -> list[list[str]]:
    """Every snapshot of ``dataset`` alone (name after '@', then the properties), oldest name first."""
    out = subprocess.run(["zfs", "get", "-H", "-p", "-o", "name,property,value", "-r", "-d", "1",
                          ",".join(("type",) + props), dataset], capture_output=True, text=True).stdout  # (none yet: [])
    rows: dict[str, list[str]] = {}
    for line in out.splitlines():
        name, prop, value = line.split("\t")
        if "@" in name and name.split("@")[0] == dataset:
            rows.setdefault(name.split("@", 1)[1], [])
            if prop != "type":
                rows[name.split("@", 1)[1]].append(value)
    return [[n, *v] for n, v in sorted(rows.items())]


def names(dataset: str) -> list[str]:
    return [row[0] for row in snapshots(dataset)]


def zfs(*argv: str) -> str:
    return subprocess.run(["zfs", *argv], capture_output=True, text=True, check=True).stdout


def schedule_manifest(name: str, datasets: list[str], **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "nasd.io/v1alpha1", "kind": "ZSnapshotSchedule", "metadata": {"name": name},
            "spec": {"datasets": datasets, "schedule": {"cron": "0 * * * *"}, **spec}}


def zfs_commands(nasd, verb: str) -> list[list[str]]:
    return [s.argv[1:] for s in nasd.runner.spawns if s.argv[0].endswith("zfs") and s.argv[1:2] == [verb]]


def ready(nasd, kind: str, name: str) -> tuple[str, str, str]:
    c = nasd.reconciler.current[(kind, name)].condition("Ready")
    return (c.status, c.reason, c.message)


def condition(nasd, kind: str, name: str, type_: str):
    return nasd.reconciler.current[(kind, name)].condition(type_)


@pytest.fixture
def clock() -> Clock:
    return Clock("2026-11-26 04:00:05")


def declare(nasd, *docs: dict[str, Any]) -> None:
    """Replace what the manifest folder declares, as an edited folder would (without the watcher's delay)."""
    from nasd.models import parse_resource
    nasd.feed.replace("manifests", [parse_resource(d) for d in docs])
