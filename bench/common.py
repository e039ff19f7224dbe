"""What the benchmarks share: their error, the pool manifest, writing manifests, converging, the table."""

from __future__ import annotations

import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import yaml

from nasd.config import Config
from nasd.daemon import Nasd
from nasd.reconciler import PassReport
from nasd_testing.zfs import ZFSFuse, ZFSUnavailable, cleanup_tree, start_for_pool


class BenchError(RuntimeError):
    pass


def manifest_pool(name: str, vdev: Path) -> dict[str, Any]:
    return {
        "apiVersion": "nasd.io/v1alpha1",
        "kind": "ZPool",
        "metadata": {"name": name},
        "spec": {"vdevs": [{"type": "stripe", "devices": [str(vdev)]}], "files": {str(vdev): "2Gi"}},
    }


def write_docs(path: Path, docs: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))


async def converge(nasd: Nasd, what: str, limit: int = 10) -> PassReport:
    """Run passes until one changes nothing; fail if that does not happen or something is not Ready."""
    for _ in range(limit):
        report = await nasd.reconciler.run_pass(ignore_backoff=True)
        if not report.mutated:
            if not report.all_ready:
                bad = [f"{o.key[0]}/{o.key[1]}: {o.reason} {o.message}" for o in report.outcomes if not o.ready]
                raise BenchError(f"{what}: not Ready: " + "; ".join(bad[:5]))
            return report
    raise BenchError(f"{what}: still changing things after {limit} passes")


def table(rows: list[tuple[str, str, str, str]]) -> str:
    head = ("figure", "value", "target", "met")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(head, widths)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join(lines)


def yes(ok: bool) -> str:
    return "yes" if ok else "NO"



@dataclass
class BenchZfs:
    """A private ZFS (zfs-fuse in a private mount namespace, or the kernel's) and a temporary folder."""

    root: Path
    zfs: ZFSFuse
    pool: str

    @property
    def manifests(self) -> Path:
        return self.root / "manifests"

    @property
    def vdev(self) -> Path:
        return self.root / "vdevs" / f"{self.pool}-0.img"

    def config(self, state: str = "state") -> Config:
        return Config(stateDir=self.root / state, socket=self.root / "nasd.sock", manifests=[self.manifests],
                      plugins={"zfs": {"mountRoot": str(self.root / "mnt")}})


def run_on_private_zfs(body: Callable[[BenchZfs], int]) -> int:
    """Run ``body`` with a private ZFS and a pool name of its own; afterwards the pools are destroyed, the
    private zfs-fuse stopped and the folder removed. 1 (with the reason) when ZFS cannot start or on BenchError."""
    root = Path(tempfile.mkdtemp(prefix="nasd-bench-"))
    try:
        zfs, pool = start_for_pool(root, "bench")
    except ZFSUnavailable as e:
        print(f"error: cannot start ZFS: {e}", file=sys.stderr)
        shutil.rmtree(root, ignore_errors=True)
        return 1
    try:
        (root / "mnt").mkdir()
        print(f"{'kernel ZFS' if zfs.kernel else 'private zfs-fuse (pid %s)' % zfs.pid}; pool {pool} in {root}",
              flush=True)
        return body(BenchZfs(root, zfs, pool))
    except BenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        try:
            zfs.stop()
        finally:
            cleanup_tree(root)
