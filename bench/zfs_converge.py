"""How much work nasd does to converge many ZFS datasets, measured on real ZFS.

    .venv/bin/python bench/zfs_converge.py [--datasets N]      (``make bench``; N defaults to 200)

Starts a private zfs-fuse in a private mount namespace (as the tests do, see
nasd/testing/zfs.py; the kernel's ZFS is used instead when the machine has it), makes a
pool on a sparse file in a temporary folder through a ZPool manifest (not measured), then,
with the real daemon object (``Nasd``) reading a manifest folder:

  (a) the cold converge of N ZDatasets with properties: process spawns split into reads and
      mutating commands, ``zfs create`` and ``zfs set`` counts;
  (b) a no-op pass once converged (after the follow-up pass that fills in status);
  (c) the wall time of (a) against a plain ``sh -c 'for ...; do zfs create -o ...; done'``
      over the same number of datasets with the same ``-o`` options, as a ratio.

Prints a table of figures, targets and whether each is met. Timings never make it exit
non-zero; it does so only when the benchmark itself cannot run (no ZFS, not root, a crash).
Everything is cleaned up: the pools are destroyed, the private zfs-fuse stopped, the
temporary folder removed.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import secrets
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from nasd.config import Config
from nasd.daemon import Nasd
from nasd.reconciler import PassReport
from nasd.runner import Spawn
from nasd.testing.zfs import ZFSFuse, ZFSUnavailable, fuse_mounts_under

#: the properties every benchmark dataset carries (as a manifest writes them)
PROPERTIES: dict[str, str] = {"compression": "gzip-1", "atime": "off", "quota": "1Gi", "recordsize": "64Ki"}
#: the same, as `zfs create -o` takes them (sizes in bytes, as nasd normalises them)
SHELL_OPTIONS = ["compression=gzip-1", "atime=off", f"quota={1 << 30}", f"recordsize={64 << 10}"]

MAX_COLD_READS = 2
MAX_NOOP_READS = 2
MAX_RATIO = 1.1


class BenchError(RuntimeError):
    pass


def manifest_pool(name: str, vdev: Path) -> dict[str, Any]:
    return {
        "apiVersion": "nasd.io/v1alpha1",
        "kind": "ZPool",
        "metadata": {"name": name},
        "spec": {"vdevs": [{"type": "stripe", "devices": [str(vdev)]}], "files": {str(vdev): "2Gi"}},
    }


def manifest_datasets(pool: str, n: int) -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": "nasd.io/v1alpha1",
            "kind": "ZDataset",
            "metadata": {"name": f"ds{i:04d}"},
            "spec": {"pool": pool, "path": f"ds{i:04d}", "properties": dict(PROPERTIES)},
        }
        for i in range(n)
    ]


def write_docs(path: Path, docs: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))


def split(spawns: list[Spawn]) -> dict[str, Any]:
    def verb(s: Spawn) -> tuple[str, str]:
        program = s.argv[0].rsplit("/", 1)[-1]
        return program, next((a for a in s.argv[1:] if not a.startswith("-")), "")

    return {
        "spawns": len(spawns),
        "reads": sum(1 for s in spawns if not s.mutating),
        "mutating": sum(1 for s in spawns if s.mutating),
        "creates": [s for s in spawns if verb(s) == ("zfs", "create")],
        "sets": sum(1 for s in spawns if verb(s) == ("zfs", "set")),
        "failed": [s for s in spawns if s.returncode != 0],
        "read_argv": [shlex.join([s.argv[0].rsplit("/", 1)[-1], *s.argv[1:]]) for s in spawns if not s.mutating],
    }


def carries_properties(argv: list[str]) -> bool:
    """A `zfs create` that sets every benchmark property with -o."""
    options = {argv[i + 1].split("=", 1)[0] for i, a in enumerate(argv[:-1]) if a == "-o"}
    return set(PROPERTIES) <= options


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


async def bench_nasd(config: Config, manifests: Path, pool: str, vdev: Path, n: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    # -- the pool, not measured (also fills the on-disk dialect cache) --------------------
    write_docs(manifests / "pool.yaml", [manifest_pool(pool, vdev)])
    async with Nasd(config) as setup:
        await converge(setup, "pool")
        out["dialect"] = setup.ctx.cache.get("zfs-dialect")

    # -- (a) cold converge of N datasets ---------------------------------------------
    write_docs(manifests / "datasets.yaml", manifest_datasets(pool, n))
    nasd = Nasd(config)
    try:
        await nasd.start()
        out["startup"] = split(nasd.runner.spawns)
        mark = len(nasd.runner.spawns)
        t0 = time.monotonic()
        cold = await nasd.reconciler.run_pass()
        out["cold_seconds"] = time.monotonic() - t0
        out["cold"] = split(nasd.runner.spawns[mark:])
        out["cold_report"] = cold
        if not cold.all_ready:
            bad = [f"{o.key[1]}: {o.reason} {o.message}" for o in cold.outcomes if not o.ready]
            raise BenchError("cold converge left datasets not Ready: " + "; ".join(bad[:5]))

        # -- (b) a no-op pass, after the follow-up pass that refreshes status -------------
        mark = len(nasd.runner.spawns)
        await converge(nasd, "follow-up")
        out["followup"] = split(nasd.runner.spawns[mark:])
        mark = len(nasd.runner.spawns)
        t0 = time.monotonic()
        noop = await nasd.reconciler.run_pass()
        out["noop_seconds"] = time.monotonic() - t0
        out["noop"] = split(nasd.runner.spawns[mark:])
        out["noop_report"] = noop
        statuses = [nasd.reconciler.current[o.key].status for o in noop.outcomes if o.key[0] == "ZDataset"]
        out["status_filled"] = sum(1 for s in statuses if s.used is not None and s.available is not None)
    finally:
        await nasd.stop()
    return out


def bench_shell(pool: str, n: int) -> float:
    options = " ".join(f"-o {shlex.quote(o)}" for o in ["nasd.io:managed=true", *SHELL_OPTIONS])
    script = f'i=0; while [ "$i" -lt {n} ]; do zfs create {options} {shlex.quote(pool)}/shell$i || exit 1; i=$((i+1)); done'
    t0 = time.monotonic()
    result = subprocess.run(["sh", "-c", script], capture_output=True, text=True)
    seconds = time.monotonic() - t0
    if result.returncode != 0:
        raise BenchError(f"the shell loop failed: {result.stderr.strip()}")
    return seconds


def table(rows: list[tuple[str, str, str, str]]) -> str:
    head = ("figure", "value", "target", "met")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(head, widths)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join(lines)


def yes(ok: bool) -> str:
    return "yes" if ok else "NO"


def report(n: int, res: dict[str, Any], shell_seconds: float) -> str:
    d = res["dialect"]
    cold, noop = res["cold"], res["noop"]
    creates = cold["creates"]
    with_props = sum(1 for s in creates if carries_properties(s.argv))
    ratio = res["cold_seconds"] / shell_seconds if shell_seconds else float("inf")
    rows = [
        ("(a) cold converge: spawns", str(cold["spawns"]), f"{n} + reads", yes(cold["spawns"] <= n + MAX_COLD_READS)),
        ("(a)   zfs create, all props via -o", f"{len(creates)} ({with_props} with -o)", str(n),
         yes(len(creates) == n and with_props == n)),
        ("(a)   mutating", str(cold["mutating"]), str(n), yes(cold["mutating"] == n)),
        ("(a)   zfs set", str(cold["sets"]), "0", yes(cold["sets"] == 0)),
        ("(a)   reads", str(cold["reads"]), f"<= {MAX_COLD_READS}", yes(cold["reads"] <= MAX_COLD_READS)),
        ("(a)   failed commands", str(len(cold["failed"])), "0", yes(not cold["failed"])),
        ("(b) no-op pass: spawns", str(noop["spawns"]), f"<= {MAX_NOOP_READS}", yes(noop["spawns"] <= MAX_NOOP_READS)),
        ("(b)   mutating", str(noop["mutating"]), "0", yes(noop["mutating"] == 0)),
        ("(b)   reads", str(noop["reads"]), f"<= {MAX_NOOP_READS}", yes(noop["reads"] <= MAX_NOOP_READS)),
        ("(c) nasd cold converge (s)", f"{res['cold_seconds']:.2f}", "", ""),
        ("(c) shell loop (s)", f"{shell_seconds:.2f}", "", ""),
        ("(c) ratio nasd/shell", f"{ratio:.3f}", f"<= {MAX_RATIO}", yes(ratio <= MAX_RATIO)),
    ]
    lines = [
        f"nasd ZFS converge benchmark: {n} datasets, properties "
        + ", ".join(f"{k}={v}" for k, v in PROPERTIES.items()),
        f"ZFS dialect detected: {d.name if d else '(none)'}"
        + (f" (multi_set={d.multi_set}, get_types={d.get_types}, list_parsable={d.list_parsable}, "
           f"status_full_paths={d.status_full_paths}, {len(d.properties)} properties)" if d else ""),
        "",
        table(rows),
        "",
        f"reads in the cold pass:  {'; '.join(cold['read_argv']) or '-'}",
        f"reads in the no-op pass: {'; '.join(noop['read_argv']) or '-'}",
        f"startup (dialect detection, cached on disk by the unmeasured pool run): {res['startup']['spawns']} spawns",
        f"follow-up pass after the cold converge: {res['followup']['spawns']} spawns "
        f"({res['followup']['mutating']} mutating); datasets with used/available in status: "
        f"{res['status_filled']}/{n}",
        f"no-op pass wall time: {res['noop_seconds']:.3f} s; "
        f"nasd per dataset {1000 * res['cold_seconds'] / n:.1f} ms, shell {1000 * shell_seconds / n:.1f} ms",
    ]
    misses = [r[0].strip() for r in rows if r[3] == "NO"]
    lines.append("targets not met: " + (", ".join(misses) if misses else "none"))
    return "\n".join(lines)


def cleanup_tree(root: Path) -> None:
    leftover = fuse_mounts_under(root)
    for m in sorted(leftover, key=len, reverse=True):  # never rm -r into a mounted file system
        subprocess.run(["umount", "-l", m], capture_output=True)
    if fuse_mounts_under(root):
        print(f"warning: mounts left under {root}, not removing it: {fuse_mounts_under(root)}", file=sys.stderr)
        return
    shutil.rmtree(root, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", "-n", type=int, default=200, help="number of datasets [200]")
    args = parser.parse_args()
    n = args.datasets
    if n < 1 or n > 450:
        parser.error("--datasets must be from 1 to 450 (zfs-fuse mounts at most 1000 file systems, "
                     "and the shell loop makes as many again)")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    root = Path(tempfile.mkdtemp(prefix="nasd-bench-"))
    zfs = ZFSFuse(root / "zfs-fuse")
    pool = "bench" + secrets.token_hex(3)
    try:
        zfs.start()
    except ZFSUnavailable as e:
        print(f"error: cannot start ZFS: {e}", file=sys.stderr)
        shutil.rmtree(root, ignore_errors=True)
        return 1
    zfs.pools.add(pool)  # destroyed by stop() on kernel ZFS too
    try:
        (root / "mnt").mkdir()
        manifests = root / "manifests"
        config = Config(
            stateDir=root / "state",
            socket=root / "nasd.sock",
            manifests=[manifests],
            plugins={"zfs": {"mountRoot": str(root / "mnt")}},
        )
        print(f"{'kernel ZFS' if zfs.kernel else 'private zfs-fuse (pid %s)' % zfs.pid}; pool {pool} in {root}",
              flush=True)
        res = asyncio.run(bench_nasd(config, manifests, pool, root / "vdevs" / f"{pool}-0.img", n))
        shell_seconds = bench_shell(pool, n)
        print(report(n, res, shell_seconds))
        return 0
    except BenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        try:
            zfs.stop()
        finally:
            cleanup_tree(root)


if __name__ == "__main__":
    sys.exit(main())
