"""How much work a ZSnapshotSchedule costs over many datasets with a long history, measured on real ZFS.

    .venv/bin/python bench/snapshots.py [--datasets N] [--snapshots S] [--repeats R]   (defaults: 50, 200, 15)

Starts a private zfs-fuse in a private mount namespace (as the tests do, see testing/src/nasd_testing/zfs.py;
the kernel's ZFS is used instead when the machine has it) and, in a temporary folder, makes through
manifests (not measured) a pool on a sparse file, a ZDataset ``top`` and N ZDatasets ``d0``..
below it (paths ``top/d0``..). It then fakes the history of an hourly schedule called ``bench``:
S ``zfs snapshot -r -o nasd.io:schedule=bench <pool>/top@GMT-...`` commands, one per hour going
back from a fixed fake "now", so that ``top`` and every dataset below it hold S snapshots:
(N + 1) x S in all (10,200 with the defaults: ``top`` has them too). With the real daemon object
(``Nasd``), a ZSnapshotSchedule over ``top`` (recursive, cron ``0 * * * *``, retention keepLast 10,
hourly 24, daily 30, weekly 8, monthly 12) and the snapshots plugin's clock set just after the next
hourly tick (``SnapshotsPlugin(clock=...)``), it measures:

  (a) the planners, pure CPU, as ratios of medians over R repeats to Python's ``sorted()`` of the
      same number of ``(str, float)`` tuples (the very ``(name, time)`` tuples, shuffled with a fixed
      seed): the retention planner (``plan_retention``) over every dataset's history, and the whole
      schedule decision (``plan_schedule``: tick, retention, status) on the real listing;
  (b) one pass with the tick due: its process spawns by verb (the reads, and of them the snapshot
      listings; ``zfs snapshot``, ``zfs destroy``), the snapshots pruned against what the planner
      says, and its wall time. zfs-fuse has no ``zfs destroy ds@a,b``: nasd destroys one name over
      the whole subtree with ``zfs destroy -r top@name``, so one command per pruned name;
  (c) a second pass with nothing due: spawns (the listing is reused: no snapshot listing) and
      mutating commands;
  (d) the ``zfs destroy`` commands OpenZFS would get for the same prune (``destroy_commands`` with
      the OpenZFS dialect): planned, not run (OpenZFS runs in the VM tier).

Prints a table of figures, targets and whether each is met. Timings never make it exit
non-zero; it does so only when the benchmark itself cannot run (no ZFS, not root, a crash).
Everything is cleaned up: the pool is destroyed, the private zfs-fuse stopped, the temporary
folder removed.
"""

from __future__ import annotations

import argparse
import asyncio
import calendar
import logging
import random
import shlex
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable


from common import BenchError, BenchZfs, converge, manifest_pool, run_on_private_zfs, table, write_docs, yes
from nasd.config import Config
from nasd.daemon import Nasd
from nasd.models import ZSnapshotSchedule, parse_resource
from nasd.reconciler import PassReport
from nasd.runner import Spawn
from nasd.snapshot_listing import SnapshotListing
from nasd_snapshots.plugin import SnapshotsPlugin
from nasd_snapshots.restore import RESTORE_PROPERTY
from nasd_snapshots.retention import plan_retention
from nasd_snapshots.schedule import SCHEDULE_PROPERTY, name_pattern, name_time, plan_schedule, policy_of
from nasd_zfs.dialect import Dialect
from nasd_zfs.snapshots import DESTROY_BATCH, destroy_commands

SCHEDULE = "bench"
FORMAT = "GMT-%Y.%m.%d-%H.%M.%S"
RETENTION: dict[str, int] = {"keepLast": 10, "hourly": 24, "daily": 30, "weekly": 8, "monthly": 12}
#: the fake "now" the plugin runs by: 5 s after an hourly tick (UTC); the history ends an hour before
NOW = float(calendar.timegm(time.strptime("2026-11-26 04:00:05", "%Y-%m-%d %H:%M:%S")))
TICK = NOW - NOW % 3600

#: the issue's figure: the retention planner over the whole set, against sorted() of as many tuples
MAX_PLANNER_RATIO = 10.0
#: reads of a pass: the ZFS plugin's (zpool status, and on zfs-fuse a listing of the file systems
#: and the `zfs get` naming them) and the snapshot listing (one `zfs get -r` for every dataset and
#: the `zfs list` of the pools' file systems for origins): a constant, never one per dataset
MAX_PASS_READS = 5
#: the ZFS plugin's reads alone (the snapshot listing is reused when nothing is due)
MAX_IDLE_READS = 3


def manifest_datasets(pool: str, n: int) -> list[dict[str, Any]]:
    def ds(name: str, path: str) -> dict[str, Any]:
        return {"apiVersion": "nasd.io/v1alpha1", "kind": "ZDataset", "metadata": {"name": name},
                "spec": {"pool": pool, "path": path}}

    return [ds("top", "top"), *(ds(f"d{i}", f"top/d{i}") for i in range(n))]


def manifest_schedule() -> dict[str, Any]:
    return {
        "apiVersion": "nasd.io/v1alpha1",
        "kind": "ZSnapshotSchedule",
        "metadata": {"name": SCHEDULE},
        "spec": {"datasets": ["top"], "recursive": True, "schedule": {"cron": "0 * * * *"},
                 "retention": dict(RETENTION), "pruneConfirmThreshold": 100000},
    }


def verb(s: Spawn) -> tuple[str, str]:
    program = s.argv[0].rsplit("/", 1)[-1]
    return program, next((a for a in s.argv[1:] if not a.startswith("-")), "")


def is_listing(s: Spawn) -> bool:
    """The snapshot listing: a recursive `zfs get` (the ZFS plugin's own `zfs get` names file systems)."""
    return verb(s) == ("zfs", "get") and "-r" in s.argv


def split(spawns: list[Spawn]) -> dict[str, Any]:
    def short(s: Spawn) -> str:
        argv = [s.argv[0].rsplit("/", 1)[-1], *s.argv[1:]]
        text = shlex.join(argv)
        return text if len(text) <= 100 else text[:97] + "..."

    return {
        "spawns": len(spawns),
        "reads": sum(1 for s in spawns if not s.mutating),
        "mutating": sum(1 for s in spawns if s.mutating),
        "listings": sum(1 for s in spawns if is_listing(s)),
        "snapshots": [s for s in spawns if verb(s) == ("zfs", "snapshot")],
        "destroys": [s for s in spawns if verb(s) == ("zfs", "destroy")],
        "failed": [s for s in spawns if s.returncode != 0],
        "seconds": sum(s.seconds for s in spawns),
        "read_argv": [short(s) for s in spawns if not s.mutating],
        "read_seconds": sum(s.seconds for s in spawns if not s.mutating),
        "destroy_seconds": sum(s.seconds for s in spawns if verb(s) == ("zfs", "destroy")),
    }


async def setup(config: Config, manifests: Path, pool: str, vdev: Path, n: int) -> Any:
    """The pool and the datasets, through manifests; not measured (it also fills the on-disk dialect cache)."""
    write_docs(manifests / "pool.yaml", [manifest_pool(pool, vdev)])
    write_docs(manifests / "datasets.yaml", manifest_datasets(pool, n))
    async with Nasd(config) as nasd:
        await converge(nasd, "pool and datasets")
        return nasd.pm.get_plugin("zfs").dialect


def history_names(count: int) -> list[str]:
    """The names the schedule would have given its last ``count`` hourly snapshots before TICK, oldest first."""
    return [time.strftime(FORMAT, time.gmtime(TICK - 3600 * k)) for k in range(count, 0, -1)]


def make_history(pool: str, count: int) -> float:
    """One `zfs snapshot -r` per past tick over the subtree of top, as the schedule would have run it."""
    t0 = time.monotonic()
    for name in history_names(count):
        r = subprocess.run(["zfs", "snapshot", "-r", "-o", f"{SCHEDULE_PROPERTY}={SCHEDULE}", f"{pool}/top@{name}"],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise BenchError(f"cannot make the history ({pool}/top@{name}): {r.stderr.strip()}")
    return time.monotonic() - t0


def count_snapshots(root: str) -> int:
    r = subprocess.run(["zfs", "list", "-H", "-o", "name", "-t", "snapshot", "-r", root],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise BenchError(f"cannot count the snapshots of {root}: {r.stderr.strip()}")
    return sum(1 for ln in r.stdout.splitlines() if "@" in ln)


def median_seconds(func: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        func()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_planners(schedule: ZSnapshotSchedule, root: str, listing: SnapshotListing, repeats: int) -> dict[str, Any]:
    """(a): the retention planner over every dataset's history and the whole decision, against sorted()."""
    pattern = name_pattern(FORMAT)
    per_dataset: dict[str, list[tuple[str, float]]] = {}
    for s in listing.snapshots:
        if s.properties.get(SCHEDULE_PROPERTY) == SCHEDULE:
            t = name_time(pattern, s.name)
            if t is not None:
                per_dataset.setdefault(s.dataset, []).append((s.name, t))
    policy = policy_of(RETENTION)
    tuples = [item for items in per_dataset.values() for item in items]
    shuffled = list(tuples)
    random.Random(1).shuffle(shuffled)

    def retention() -> None:
        for items in per_dataset.values():
            plan_retention(items, policy, NOW)

    def decision() -> None:
        plan_schedule(schedule, [root], listing, NOW)

    # interleaved, so that a slow moment of the machine hits all of them alike
    runs: dict[str, list[float]] = {"retention": [], "decision": [], "sorted": [], "sorted_in_order": []}
    funcs = {"retention": retention, "decision": decision, "sorted": lambda: sorted(shuffled),
             "sorted_in_order": lambda: sorted(tuples)}
    for f in funcs.values():
        f()  # warm up
    for _ in range(repeats):
        for key, f in funcs.items():
            runs[key].append(median_seconds(f, 3))
    out: dict[str, Any] = {k: statistics.median(v) for k, v in runs.items()}
    out["tuples"] = len(tuples)
    out["datasets"] = len(per_dataset)
    out["repeats"] = repeats
    return out


async def measured_pass(nasd: Nasd, out: dict[str, Any], label: str) -> PassReport:
    """One pass: its spawns by verb, wall time and whether it changed anything, into ``out[label...]``."""
    mark = len(nasd.runner.spawns)
    t0 = time.monotonic()
    report = await nasd.reconciler.run_pass(ignore_backoff=True)
    out[f"{label}_seconds"] = time.monotonic() - t0
    out[label] = split(nasd.runner.spawns[mark:])
    out[f"{label}_mutated"] = report.mutated
    return report


async def bench_schedule(config: Config, pool: str, repeats: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    root = f"{pool}/top"
    nasd = Nasd(config, replace_plugins={"snapshots": SnapshotsPlugin(clock=lambda: NOW)})
    try:
        await nasd.start()
        # the listing the plugin will make, taken once more beforehand: the pass changes the plugin's
        # copy in place, and the planners are timed on what it saw
        mark = len(nasd.runner.spawns)
        t0 = time.monotonic()
        listing = await nasd.ctx.hooks.list_snapshots([root], [SCHEDULE_PROPERTY, RESTORE_PROPERTY])
        out["listing_seconds"] = time.monotonic() - t0
        out["listing"] = split(nasd.runner.spawns[mark:])
        out["listed"] = len(listing.snapshots)
        out["listed_filesystems"] = len(listing.filesystems)
        schedule = parse_resource(manifest_schedule())
        assert isinstance(schedule, ZSnapshotSchedule)
        decision = plan_schedule(schedule, [root], listing, NOW)
        out["decision"] = decision
        out["planners"] = bench_planners(schedule, root, listing, repeats)
        out["openzfs"] = destroy_commands(Dialect(name="openzfs"), decision.prune, listing)
        out["fuse_planned"] = destroy_commands(nasd.pm.get_plugin("zfs").dialect, decision.prune, listing)

        # (b) the pass with the tick due
        first = await measured_pass(nasd, out, "tick")
        out["tick_not_ready"] = [f"{o.key[0]}/{o.key[1]}: {o.reason} {o.message}" for o in first.outcomes
                                 if not o.ready]
        cached = nasd.pm.get_plugin("snapshots").listing
        out["cached_after"] = len(cached.listing.snapshots) if cached else None

        # (c) a pass with nothing due (same clock: the newest snapshot is this hour's)
        await measured_pass(nasd, out, "idle")
        out["status"] = nasd.reconciler.current[("ZSnapshotSchedule", SCHEDULE)].status
    finally:
        await nasd.stop()
    out["on_disk"] = count_snapshots(root)
    return out


def ms(seconds: float) -> str:
    return f"{1000 * seconds:.2f} ms"


def report(n: int, count: int, dialect: Any, history_seconds: float, out: dict[str, Any]) -> str:
    p, tick, idle, decision = out["planners"], out["tick"], out["idle"], out["decision"]
    datasets = n + 1
    made = datasets * count
    ratio = p["retention"] / p["sorted"]
    ratio_in_order = p["retention"] / p["sorted_in_order"]
    ratio_decision = p["decision"] / p["sorted"]

    # what the retention planner prunes once this tick's snapshot is there (the same for every dataset)
    pattern = name_pattern(FORMAT)
    one = [(nm, name_time(pattern, nm)) for nm in [*history_names(count), time.strftime(FORMAT, time.gmtime(TICK))]]
    expected = plan_retention(one, policy_of(RETENTION), NOW)
    per_ds = len(expected.prune)
    expected_pruned = per_ds * datasets
    doomed = decision.prune
    names = sorted({d.split("@", 1)[1] for d in doomed})

    snaps = tick["snapshots"]
    snap_ok = (len(snaps) == 1 and "-r" in snaps[0].argv and snaps[0].argv[-1].split("@")[0].endswith("/top"))
    destroys = tick["destroys"]
    recursive = sum(1 for s in destroys if "-r" in s.argv)
    destroyed_names = {s.argv[-1].split("@", 1)[1] for s in destroys}
    openzfs = out["openzfs"]
    openzfs_datasets = len({c[-1].split("@", 1)[0] for c in openzfs})
    doomed_per_dataset = Counter(d.split("@", 1)[0] for d in doomed)
    #: one `zfs destroy ds@a,b,...` per dataset with prunes (more only past DESTROY_BATCH names)
    batches = sum(-(-k // DESTROY_BATCH) for k in doomed_per_dataset.values())
    on_disk_expected = made + datasets - expected_pruned
    status = out["status"]

    rows = [
        (f"(a) retention planner, {p['datasets']} datasets x {count}: / sorted()",
         f"{ratio:.2f}", f"<= {MAX_PLANNER_RATIO:g}", yes(ratio <= MAX_PLANNER_RATIO)),
        ("(a)   same, / sorted() of the tuples already in order", f"{ratio_in_order:.2f}", "", ""),
        ("(a) whole decision (plan_schedule) / sorted()", f"{ratio_decision:.2f}", "", ""),
        ("(b) tick + prune pass: spawns", str(tick["spawns"]), "", ""),
        ("(b)   reads", str(tick["reads"]), f"<= {MAX_PASS_READS}", yes(tick["reads"] <= MAX_PASS_READS)),
        ("(b)   snapshot listings (zfs get -r)", str(tick["listings"]), "1 for all datasets",
         yes(tick["listings"] == 1)),
        ("(b)   zfs snapshot", f"{len(snaps)}" + (" (-r top)" if snap_ok else ""), "1 (-r over the subtree)",
         yes(snap_ok)),
        ("(b)   snapshots pruned", str(len(doomed)), f"{expected_pruned} ({per_ds} x {datasets})",
         yes(len(doomed) == expected_pruned)),
        ("(b)   zfs destroy (zfs-fuse: -r root@name)", f"{len(destroys)} ({recursive} with -r)",
         f"{len(names)} (pruned names)", yes(len(destroys) == len(names) and recursive == len(destroys)
                                            and destroyed_names == set(names))),
        ("(b)   failed commands", str(len(tick["failed"])), "0", yes(not tick["failed"])),
        ("(b)   snapshots on disk afterwards", str(out["on_disk"]), str(on_disk_expected),
         yes(out["on_disk"] == on_disk_expected)),
        ("(b)   wall time (s)", f"{out['tick_seconds']:.2f}", "", ""),
        ("(c) nothing due: spawns", str(idle["spawns"]), f"<= {MAX_IDLE_READS}", yes(idle["spawns"] <= MAX_IDLE_READS)),
        ("(c)   snapshot listings", str(idle["listings"]), "0 (reused)", yes(idle["listings"] == 0)),
        ("(c)   mutating", str(idle["mutating"]), "0", yes(idle["mutating"] == 0 and not out["idle_mutated"])),
        ("(c)   wall time (s)", f"{out['idle_seconds']:.2f}", "", ""),
        ("(d) OpenZFS zfs destroy, planned not run", f"{len(openzfs)} over {openzfs_datasets} datasets",
         f"{batches} (1 batch/dataset)", yes(len(openzfs) == batches
                                             and openzfs_datasets == len(doomed_per_dataset))),
    ]
    d = dialect
    listing = out["listing"]
    lines = [
        f"nasd snapshot schedule benchmark: {n} datasets below top, {count} hourly snapshots each "
        f"(top too: {datasets} x {count} = {made}); retention "
        + ", ".join(f"{k} {v}" for k, v in RETENTION.items()),
        f"ZFS dialect detected: {d.name if d else '(none)'}"
        + (f" (comma_destroy={d.comma_destroy}, get_types={d.get_types}, multi_snapshot={d.multi_snapshot})"
           if d else ""),
        f"fake now {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(NOW))} UTC; history made with {count} "
        f"`zfs snapshot -r` in {history_seconds:.1f} s ({1000 * history_seconds / count:.0f} ms each), not measured",
        "",
        table(rows),
        "",
        f"(a) medians of {p['repeats']} repeats (each the median of 3 runs): retention planner "
        f"{ms(p['retention'])}, whole decision {ms(p['decision'])}, sorted() of {p['tuples']} shuffled "
        f"(str, float) tuples {ms(p['sorted'])}, of the same tuples in order {ms(p['sorted_in_order'])}",
        f"(a) the listing the planners were timed on (taken once more before the pass, as the plugin takes it): "
        f"{out['listed']} snapshots, {out['listed_filesystems']} file systems, {listing['spawns']} reads in "
        f"{out['listing_seconds']:.2f} s: {'; '.join(listing['read_argv'])}",
        f"(b) reads: {'; '.join(tick['read_argv']) or '-'}",
        f"(b) where the pass's {out['tick_seconds']:.2f} s go: reads {tick['read_seconds']:.2f} s (summed; they "
        f"partly run at the same time), {len(destroys)} destroys {tick['destroy_seconds']:.2f} s "
        f"({1000 * tick['destroy_seconds'] / max(1, len(destroys)):.0f} ms each), the snapshot "
        f"{sum(s.seconds for s in snaps):.2f} s",
        f"(b) zfs-fuse destroy commands as planned by destroy_commands: {len(out['fuse_planned'])}; run: "
        f"{len(destroys)}; the plugin's cached listing afterwards: {out['cached_after']} snapshots",
        f"(b) schedule status: lastSnapshot {status.lastSnapshot}, nextRun {status.nextRun}, snapshots "
        f"{status.snapshots}, kept {status.kept}"
        + (f"; NOT READY: {'; '.join(out['tick_not_ready'][:3])}" if out["tick_not_ready"] else ""),
        f"(c) reads: {'; '.join(idle['read_argv']) or '-'}",
        f"(d) OpenZFS: zfs destroy ds@a,b,... in batches of {DESTROY_BATCH} names; planned, not run: "
        "OpenZFS runs in the VM tier",
    ]
    misses = [r[0].strip() for r in rows if r[3] == "NO"]
    lines.append("targets not met: " + (", ".join(misses) if misses else "none"))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", "-n", type=int, default=50, help="datasets below top [50]")
    parser.add_argument("--snapshots", "-s", type=int, default=200, help="hourly snapshots of history each [200]")
    parser.add_argument("--repeats", "-r", type=int, default=15, help="timing repeats of the planners [15]")
    args = parser.parse_args()
    n, count, repeats = args.datasets, args.snapshots, args.repeats
    if n < 1 or n > 900:
        parser.error("--datasets must be from 1 to 900 (zfs-fuse mounts at most 1000 file systems)")
    if count < 1 or count > 24 * 365:
        parser.error("--snapshots must be from 1 to 8760 (a year of hours)")
    if repeats < 1:
        parser.error("--repeats must be at least 1")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    def body(env: BenchZfs) -> int:
        pool, manifests = env.pool, env.manifests
        config = env.config("state")
        dialect = asyncio.run(setup(config, manifests, pool, env.vdev, n))
        print(f"pool and {n + 1} datasets converged; making the history ({(n + 1) * count} snapshots)...", flush=True)
        history_seconds = make_history(pool, count)
        write_docs(manifests / "schedule.yaml", [manifest_schedule()])
        print("history made; listing, timing the planners, then the two passes...", flush=True)
        out = asyncio.run(bench_schedule(config, pool, repeats))
        print()
        print(report(n, count, dialect, history_seconds, out))
        return 0

    return run_on_private_zfs(body)


if __name__ == "__main__":
    sys.exit(main())
