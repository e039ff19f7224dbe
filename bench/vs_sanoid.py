"""nasd's snapshot schedule and sanoid 2.1 side by side, on the same OpenZFS pool in the same run.

    python bench/vs_sanoid.py [--datasets N] [--snapshots S]     (defaults: 10, 72)
    make bench-vm        (runs it inside the VM tier: kernel OpenZFS 2.1, sanoid from Debian)

Needs root and the kernel's OpenZFS (it runs in the VM of the VM tier, `scripts/vm/run.sh`), because
sanoid ages snapshots by their ``creation`` property, which only the system clock sets: the history
is made by setting the VM's clock to each past hour in turn (the clock is put back at the end).

On one pool on a sparse file: nasd's tree ``top`` with N datasets below it (ZDatasets, through
manifests) and sanoid's tree ``stop`` with N datasets below it (plain ``zfs create``). For each of the
S hours before a fixed "now", both trees get the snapshots their tool would have taken: nasd's
``GMT-…`` names (``zfs snapshot -r -o nasd.io:schedule=bench``) and sanoid's
``autosnap_…_hourly`` (plus ``_daily`` at midnight, ``_weekly`` on Mondays and ``_monthly`` on the
1st, as sanoid takes one snapshot per period). Both tools are configured to the same retention
(hourly 24, daily 30, weekly 8, monthly 12; sanoid's ``recursive = yes``, its usual set-up), and at
"now" (just after an hourly tick) each runs once: nasd one reconcile pass (the snapshots plugin takes
the tick and prunes), sanoid ``sanoid --cron`` (take and prune). Every ``zfs``/``zpool`` process
either tool starts goes through one logging wrapper put first on PATH, so both are counted the same
way. Prints spawns by verb, wall times and snapshots left; timings never fail it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from common import BenchError, BenchZfs, run_on_private_zfs, table, write_docs
from snapshots import NOW, SCHEDULE, TICK, count_snapshots, setup

from nasd.daemon import Nasd
from nasd_snapshots.plugin import SnapshotsPlugin
from nasd_snapshots.schedule import SCHEDULE_PROPERTY

RETENTION = {"hourly": 24, "daily": 30, "weekly": 8, "monthly": 12}
WRAPPER = """#!/bin/sh
printf '%s\\n' "$(basename "$0") $*" >> "$NASD_BENCH_ZFS_LOG"
exec /usr/sbin/$(basename "$0") "$@"
"""


def schedule_manifest() -> dict[str, Any]:
    return {"apiVersion": "nasd.io/v1alpha1", "kind": "ZSnapshotSchedule", "metadata": {"name": SCHEDULE},
            "spec": {"datasets": ["top"], "recursive": True, "schedule": {"cron": "0 * * * *"},
                     "retention": dict(RETENTION), "pruneConfirmThreshold": 100000}}


def sanoid_conf(pool: str) -> str:
    counts = "\n".join(f"  {k} = {v}" for k, v in RETENTION.items())
    return (f"[{pool}/stop]\n  use_template = bench\n  recursive = yes\n\n"
            f"[template_bench]\n  frequently = 0\n{counts}\n  yearly = 0\n  autosnap = yes\n  autoprune = yes\n")


def zfs(*argv: str) -> None:
    r = subprocess.run(["zfs", *argv], capture_output=True, text=True)
    if r.returncode != 0:
        raise BenchError(f"zfs {' '.join(argv)}: {r.stderr.strip()}")


def set_clock(epoch: float) -> None:
    subprocess.run(["date", "-u", "-s", f"@{epoch:.0f}"], check=True, capture_output=True)


def make_history(pool: str, n: int, count: int) -> float:
    t0 = time.monotonic()
    for i in range(n):
        zfs("create", "-p", f"{pool}/stop/d{i}")
    for k in range(count, 0, -1):
        t = TICK - 3600 * k
        set_clock(t)
        tm = time.gmtime(t)
        zfs("snapshot", "-r", "-o", f"{SCHEDULE_PROPERTY}={SCHEDULE}",
            f"{pool}/top@{time.strftime('GMT-%Y.%m.%d-%H.%M.%S', tm)}")
        stamp = time.strftime("%Y-%m-%d_%H:%M:%S", tm)
        types = ["hourly"]
        if tm.tm_hour == 0:
            types.append("daily")
            if tm.tm_wday == 0:
                types.append("weekly")
            if tm.tm_mday == 1:
                types.append("monthly")
        for kind in types:
            zfs("snapshot", "-r", f"{pool}/stop@autosnap_{stamp}_{kind}")
    return time.monotonic() - t0


def read_log(log: Path) -> Counter:
    verbs: Counter = Counter()
    for line in log.read_text().splitlines() if log.exists() else []:
        words = line.split()
        verbs[f"{words[0]} {next((w for w in words[1:] if not w.startswith('-')), '')}".strip()] += 1
    log.unlink(missing_ok=True)
    return verbs


async def nasd_pass(env: BenchZfs) -> dict[str, Any]:
    write_docs(env.manifests / "schedule.yaml", [schedule_manifest()])
    plugin = SnapshotsPlugin(clock=lambda: NOW)
    async with Nasd(env.config("state"), replace_plugins={"snapshots": plugin}) as nasd:
        t0 = time.monotonic()
        report = await nasd.reconciler.run_pass(ignore_backoff=True)
        seconds = time.monotonic() - t0
        bad = [f"{o.key[1]}: {o.reason} {o.message}" for o in report.outcomes if not o.ready]
        return {"seconds": seconds, "not_ready": bad}


def sanoid_run(work: Path, pool: str) -> dict[str, Any]:
    conf = work / "sanoid"
    conf.mkdir()
    (conf / "sanoid.conf").write_text(sanoid_conf(pool))
    t0 = time.monotonic()
    r = subprocess.run(["sanoid", f"--configdir={conf}", f"--cache-dir={work / 'sanoid-cache'}",
                        f"--run-dir={work / 'sanoid-run'}", "--cron"], capture_output=True, text=True)
    seconds = time.monotonic() - t0
    if r.returncode != 0:
        raise BenchError(f"sanoid failed ({r.returncode}): {r.stderr.strip()[-2000:]}")
    return {"seconds": seconds}


def report(n: int, count: int, out: dict[str, Any]) -> str:
    rows = []
    for tool in ("nasd", "sanoid"):
        verbs: Counter = out[f"{tool}_verbs"]
        rows.append((f"{tool}: zfs/zpool spawns in one run", str(sum(verbs.values())), "", ""))
        for v, c in sorted(verbs.items()):
            rows.append((f"  {v}", str(c), "", ""))
        rows.append((f"{tool}: wall time of the run", f"{out[tool]['seconds']:.1f} s", "", ""))
        rows.append((f"{tool}: snapshots before -> after", f"{out[f'{tool}_before']} -> {out[f'{tool}_after']}",
                     "", ""))
    ratio_spawns = sum(out["sanoid_verbs"].values()) / max(1, sum(out["nasd_verbs"].values()))
    ratio_time = out["sanoid"]["seconds"] / max(1e-9, out["nasd"]["seconds"])
    rows.append(("sanoid / nasd: spawns", f"{ratio_spawns:.1f}x", "", ""))
    rows.append(("sanoid / nasd: wall time", f"{ratio_time:.1f}x", "", ""))
    head = (f"OpenZFS, {n} datasets + parent per tool, {count} hours of history; retention {RETENTION} "
            f"(history made in {out['history_seconds']:.0f} s)")
    notes = [f"nasd not Ready: {out['nasd']['not_ready']}"] if out["nasd"]["not_ready"] else []
    return "\n".join([head, "", table(rows), *notes])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", "-n", type=int, default=10, help="datasets below each tree's top [10]")
    parser.add_argument("--snapshots", "-s", type=int, default=72, help="hours of history [72]")
    args = parser.parse_args()
    if not 1 <= args.datasets <= 500 or not 1 <= args.snapshots <= 24 * 90:
        parser.error("--datasets 1..500, --snapshots 1..2160")
    if not Path("/dev/zfs").exists():
        print("error: needs the kernel's OpenZFS (run it in the VM tier: make bench-vm)", file=sys.stderr)
        return 1
    n, count = args.datasets, args.snapshots
    real_start, mono_start = time.time(), time.monotonic()

    def body(env: BenchZfs) -> int:
        pool = env.pool
        work = Path(tempfile.mkdtemp(prefix="vs-sanoid-", dir=env.root))
        bindir = work / "bin"
        bindir.mkdir()
        for prog in ("zfs", "zpool"):
            (bindir / prog).write_text(WRAPPER)
            (bindir / prog).chmod(0o755)
        log = work / "spawns.log"
        asyncio.run(setup(env.config("state"), env.manifests, pool, env.vdev, n))
        print(f"pool and nasd's {n + 1} datasets converged; making {count} hours of history for both trees...",
              flush=True)
        out: dict[str, Any] = {"history_seconds": make_history(pool, n, count)}
        set_clock(NOW)
        out["nasd_before"], out["sanoid_before"] = count_snapshots(f"{pool}/top"), count_snapshots(f"{pool}/stop")
        os.environ["PATH"] = f"{bindir}:{os.environ['PATH']}"
        os.environ["NASD_BENCH_ZFS_LOG"] = str(log)
        try:
            out["nasd"] = asyncio.run(nasd_pass(env))
            out["nasd_verbs"] = read_log(log)
            out["sanoid"] = sanoid_run(work, pool)
            out["sanoid_verbs"] = read_log(log)
        finally:
            os.environ["PATH"] = os.environ["PATH"].split(":", 1)[1]
        out["nasd_after"], out["sanoid_after"] = count_snapshots(f"{pool}/top"), count_snapshots(f"{pool}/stop")
        print()
        print(report(n, count, out))
        return 0

    try:
        return run_on_private_zfs(body)
    finally:
        set_clock(real_start + (time.monotonic() - mono_start))


if __name__ == "__main__":
    sys.exit(main())
