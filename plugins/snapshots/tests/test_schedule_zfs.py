"""ZSnapshotSchedule on real ZFS (zfs-fuse; OpenZFS in the VM tier): ticks, names, catch-up, retention, batching
(the fewest commands each dialect allows)."""

from __future__ import annotations

import asyncio
import time

from snapshot_helpers import OPENZFS, condition, declare, names, ready, schedule_manifest, snapshots, zfs, zfs_commands
from nasd_testing.clock import utc
from nasd_testing.passes import converge
from nasd_snapshots.plugin import SnapshotsPlugin
from nasd_snapshots.retention import Policy, plan_retention
from nasd_snapshots.schedule import policy_token


async def start(pool_env, make_nasd, clock, *docs, watch=False):
    folder = pool_env.root / "manifests"
    pool_env.write_manifests(folder, pool_env.pool_manifest(), pool_env.dataset_manifest("media"), *docs)
    nasd = await make_nasd([folder], watch=watch, replace_plugins={"snapshots": SnapshotsPlugin(clock=clock)})
    await converge(nasd)
    return nasd, f"{pool_env.pool_name()}/media"


async def test_a_schedule_snapshots_on_its_ticks_with_utc_names_and_catches_up_once_after_downtime(
        pool_env, make_nasd, clock):
    nasd, media = await start(pool_env, make_nasd, clock, schedule_manifest("media-hourly", ["media"]))
    assert snapshots(media, "nasd.io:schedule") == [["GMT-2026.11.26-04.00.00", "media-hourly"]]
    status = nasd.reconciler.current[("ZSnapshotSchedule", "media-hourly")].status
    assert ready(nasd, "ZSnapshotSchedule", "media-hourly")[0] == "True"
    assert (status.lastSnapshot, status.nextRun) == ("GMT-2026.11.26-04.00.00", "2026-11-26T05:00:00Z")

    before = len(zfs_commands(nasd, "snapshot"))
    clock.set("2026-11-26 04:59:59")
    assert not (await nasd.reconciler.run_pass()).mutated  # no tick yet: nothing runs
    clock.set("2026-11-26 05:00:01")
    await converge(nasd)
    clock.set("2026-11-26 09:17:30")  # down from 05:00 to 09:17: four ticks missed
    await converge(nasd)
    await converge(nasd)
    assert names(media) == ["GMT-2026.11.26-04.00.00", "GMT-2026.11.26-05.00.00", "GMT-2026.11.26-09.17.30"]
    assert len(zfs_commands(nasd, "snapshot")) == before + 2  # one catch-up, no burst
    assert nasd.reconciler.current[
        ("ZSnapshotSchedule", "media-hourly")].status.nextRun == "2026-11-26T10:00:00Z"


def make_history(media: str, schedule: str, hours: int, start: str = "2026-11-25 00:00:00") -> list[tuple[str, float]]:
    """Snapshots as the schedule would have made them, one per hour from ``start``."""
    t0 = utc(start)
    made = []
    for i in range(hours):
        name = time.strftime("GMT-%Y.%m.%d-%H.%M.%S", time.gmtime(t0 + 3600 * i))
        zfs("snapshot", "-o", f"nasd.io:schedule={schedule}", f"{media}@{name}")
        made.append((name, t0 + 3600 * i))
    return made


async def test_retention_prunes_exactly_what_the_planner_keeps_out_and_never_hand_made_or_held_snapshots(
        pool_env, make_nasd, clock):
    nasd, media = await start(pool_env, make_nasd, clock)
    history = make_history(media, "media-hourly", 30)  # 2026-11-25 00:00 .. 2026-11-26 05:00
    zfs("snapshot", f"{media}@GMT-2026.11.25-00.30.00")  # the format, but made by hand
    zfs("snapshot", "-o", "nasd.io:schedule=media-hourly", f"{media}@before-upgrade")  # not the format
    zfs("hold", "keep", f"{media}@{history[0][0]}")  # held: never pruned
    retention = {"keepLast": 3, "hourly": 6, "daily": 2}
    expected = plan_retention(history, Policy(**retention), utc("2026-11-26 05:30:00"))
    assert len(expected.prune) == 23

    clock.set("2026-11-26 05:30:00")  # no tick due: the newest was made at 05:00
    base = [pool_env.pool_manifest(), pool_env.dataset_manifest("media")]
    declare(nasd, *base, schedule_manifest("media-hourly", ["media"], retention=retention))
    await converge(nasd)
    status = nasd.reconciler.current[("ZSnapshotSchedule", "media-hourly")].status
    # a new policy that would prune 23 (> pruneConfirmThreshold 10) waits, and says so
    assert status.pendingPrune == 23 and status.retentionApplied is None
    assert condition(nasd, "ZSnapshotSchedule", "media-hourly", "PolicyChangePending").status == "True"
    assert len(names(media)) == 32 and zfs_commands(nasd, "destroy") == []

    message = condition(nasd, "ZSnapshotSchedule", "media-hourly", "PolicyChangePending").message
    token = f"23/{policy_token(retention)}"
    assert f'nasd.io/confirm-prune: "{token}"' in message  # the message says what to write
    doc = schedule_manifest("media-hourly", ["media"], retention=retention)
    doc["metadata"]["annotations"] = {"nasd.io/confirm-prune": token}
    declare(nasd, *base, doc)
    await converge(nasd)
    survivors = sorted({n for n, _ in history} - set(expected.prune)
                       | {history[0][0], "GMT-2026.11.25-00.30.00", "before-upgrade"})
    assert names(media) == survivors
    destroys = zfs_commands(nasd, "destroy")
    if OPENZFS:  # one `zfs destroy media@a,b,...` for all 22; the held one is not tried
        assert len(destroys) == 1 and sorted(destroys[0][-1].split("@")[1].split(",")) == sorted(
            set(expected.prune) - {history[0][0]})
    else:
        assert len(destroys) == 22  # zfs-fuse has no comma lists: one per snapshot, the held one is not tried
        assert all(d[-1].split("@")[1] in expected.prune for d in destroys)
    status = nasd.reconciler.current[("ZSnapshotSchedule", "media-hourly")].status
    assert (status.pendingPrune, status.retentionApplied["hourly"]) == (0, 6)
    assert status.kept == {"keepLast": 3, "hourly": 6, "daily": 2}
    blocked = condition(nasd, "ZSnapshotSchedule", "media-hourly", "PruneBlocked")
    assert blocked.status == "True" and f"{media}@{history[0][0]} (1 hold(s))" in blocked.message
    assert not (await nasd.reconciler.run_pass()).mutated  # converged: nothing more to prune


async def test_a_recursive_schedule_takes_a_subtree_with_one_command_and_prunes_a_name_with_one_command(
        pool_env, make_nasd, clock):
    children = [pool_env.dataset_manifest(c, path=f"media/{c}") for c in ("a", "b", "c")]
    schedule = schedule_manifest("tree", ["media"], recursive=True, retention={"keepLast": 2})
    nasd, media = await start(pool_env, make_nasd, clock, *children, schedule)
    tree = [media, f"{media}/a", f"{media}/b", f"{media}/c"]
    assert zfs_commands(nasd, "snapshot") == [
        ["snapshot", "-r", "-o", "nasd.io:schedule=tree", f"{media}@GMT-2026.11.26-04.00.00"]]
    for hour in ("05", "06"):
        clock.set(f"2026-11-26 {hour}:00:00")
        await converge(nasd)
    for ds in tree:
        assert names(ds) == ["GMT-2026.11.26-05.00.00", "GMT-2026.11.26-06.00.00"]
    if OPENZFS:  # one comma list per dataset (here one name each)
        assert sorted(zfs_commands(nasd, "destroy")) == sorted(
            ["destroy", f"{ds}@GMT-2026.11.26-04.00.00"] for ds in tree)
    else:  # zfs-fuse has no `ds@a,b`: the oldest name went from all four datasets in one `destroy -r`
        assert zfs_commands(nasd, "destroy") == [["destroy", "-r", f"{media}@GMT-2026.11.26-04.00.00"]]
    assert len(zfs_commands(nasd, "snapshot")) == 3


async def test_with_an_exclusion_the_subtree_is_no_longer_whole_so_each_dataset_is_its_own_command(
        pool_env, make_nasd, clock):
    children = [pool_env.dataset_manifest(c, path=f"media/{c}") for c in ("a", "b")]
    zfs_names = []
    schedule = schedule_manifest("tree", ["media"], recursive=True, exclude=["media/b"], retention={"keepLast": 1})
    nasd, media = await start(pool_env, make_nasd, clock, *children, schedule)
    taken = zfs_commands(nasd, "snapshot")
    assert len(taken) == (1 if OPENZFS else 2)  # OpenZFS takes several datasets in one (atomic) command
    zfs_names = sorted(t for c in taken for t in c if "@" in t)
    assert zfs_names == [f"{media}/a@GMT-2026.11.26-04.00.00", f"{media}@GMT-2026.11.26-04.00.00"]
    assert names(f"{media}/b") == []
    zfs("snapshot", f"{media}/b@GMT-2026.11.26-04.00.00")  # the same name by hand where excluded
    clock.set("2026-11-26 05:00:00")
    await converge(nasd)
    # a `destroy -r media@...` would take the hand-made one below: one command per dataset instead
    assert sorted(zfs_commands(nasd, "destroy")) == [
        ["destroy", f"{media}/a@GMT-2026.11.26-04.00.00"], ["destroy", f"{media}@GMT-2026.11.26-04.00.00"]]
    assert names(f"{media}/b") == ["GMT-2026.11.26-04.00.00"]


async def test_a_running_daemon_takes_the_snapshot_when_the_tick_comes_with_nothing_else_waking_it(
        pool_env, make_nasd, clock):
    running: list[float] = []  # once set: the clock runs at real speed, this far from the real one
    nasd, media = await start(pool_env, make_nasd, lambda: time.time() + running[0] if running else clock(),
                              schedule_manifest("media-hourly", ["media"]), watch=True)
    assert names(media) == ["GMT-2026.11.26-04.00.00"]  # a new schedule's first snapshot, at once
    running.append(utc("2026-11-26 04:59:55") - time.time())  # five seconds before the next tick, at real speed
    loop = asyncio.create_task(nasd.reconciler.loop())
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and "GMT-2026.11.26-05.00.00" not in names(media):
            await asyncio.sleep(0.2)
    finally:
        loop.cancel()
    assert names(media) == ["GMT-2026.11.26-04.00.00", "GMT-2026.11.26-05.00.00"]  # the tick, on time


async def test_a_schedule_property_inherited_from_the_dataset_does_not_make_hand_made_snapshots_prunable(
        pool_env, make_nasd, clock):
    nasd, media = await start(pool_env, make_nasd, clock)
    zfs("set", "nasd.io:schedule=media-hourly", media)  # set on the dataset: every snapshot inherits it
    for hour in ("00", "01", "02"):
        zfs("snapshot", f"{media}@GMT-2026.11.25-{hour}.00.00")
    declare(nasd, pool_env.pool_manifest(), pool_env.dataset_manifest("media"),
            schedule_manifest("media-hourly", ["media"], retention={"keepLast": 1}))
    await converge(nasd)
    assert names(media) == ["GMT-2026.11.25-00.00.00", "GMT-2026.11.25-01.00.00", "GMT-2026.11.25-02.00.00",
                            "GMT-2026.11.26-04.00.00"]
    assert zfs_commands(nasd, "destroy") == []


async def test_two_schedules_with_one_name_format_on_one_dataset_are_refused_for_the_second(
        pool_env, make_nasd, clock):
    nasd, media = await start(pool_env, make_nasd, clock, schedule_manifest("a-hourly", ["media"]),
                              schedule_manifest("b-hourly", ["media"]))
    assert ready(nasd, "ZSnapshotSchedule", "a-hourly")[0] == "True"
    assert ready(nasd, "ZSnapshotSchedule", "b-hourly")[:2] == ("False", "OverlappingSchedule")
    assert "a-hourly" in ready(nasd, "ZSnapshotSchedule", "b-hourly")[2]
    assert names(media) == ["GMT-2026.11.26-04.00.00"]
