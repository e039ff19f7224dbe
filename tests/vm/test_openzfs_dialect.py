"""The ZFS plugin on the kernel's OpenZFS 2.1 (the VM tier): it detects the dialect from the binaries'
usage and then uses what zfs-fuse lacks — property reads that leave snapshots out (2 reads a pass),
several datasets in one atomic `zfs snapshot`, `zfs destroy ds@a,b,c`, and holds listed by `zfs holds`."""

from __future__ import annotations

import json
import subprocess

from vmhelpers import requires_openzfs

from nasd.models import parse_resource
from nasd_testing.clock import Clock
from nasd_testing.passes import converge
from nasd_snapshots.plugin import SnapshotsPlugin


def zfs_spawns(nasd, verb: str) -> list[list[str]]:
    return [s.argv[1:] for s in nasd.runner.spawns if s.argv[0].endswith("zfs") and s.argv[1:2] == [verb]]


async def start(pool_env, make_nasd, *docs):
    requires_openzfs()
    base = [pool_env.pool_manifest(), *[pool_env.dataset_manifest(d) for d in ("a", "b", "c")]]
    folder = pool_env.root / "manifests"
    pool_env.write_manifests(folder, *base, *docs)
    clock = Clock("2026-11-26 04:00:05")
    nasd = await make_nasd([folder], replace_plugins={"snapshots": SnapshotsPlugin(clock=clock)})
    await converge(nasd)
    return nasd, base


async def test_the_plugin_detects_openzfs_and_a_no_op_pass_is_two_reads(pool_env, make_nasd):
    nasd, _ = await start(pool_env, make_nasd)
    dialect = json.loads((pool_env.state_dir / "cache" / "zfs-dialect.json").read_text())["dialect"]
    assert dialect["name"] == "openzfs"
    for flag in ("list_parsable", "get_types", "multi_snapshot", "comma_destroy", "holds", "holds_listing"):
        assert dialect[flag] is True, flag
    before = len(nasd.runner.spawns)
    assert not (await nasd.reconciler.run_pass(ignore_backoff=True)).mutated
    reads = [s.argv for s in nasd.runner.spawns[before:]]
    assert len(reads) == 2, reads
    assert any(a[1:3] == ["status", "-P"] for a in reads)
    get = next(a for a in reads if a[1] == "get")
    assert ["-H", "-p"] == get[2:4] and get[get.index("-t") + 1] == "filesystem,volume"  # snapshots left out


async def test_snapshots_of_several_datasets_are_one_command_and_pruning_is_one_comma_list_each(
        pool_env, make_nasd):
    schedule = {"apiVersion": "nasd.io/v1alpha1", "kind": "ZSnapshotSchedule", "metadata": {"name": "abc"},
                "spec": {"datasets": ["a", "b", "c"], "schedule": {"cron": "0 * * * *"},
                         "retention": {"keepLast": 1}, "pruneConfirmThreshold": 100}}
    nasd, _ = await start(pool_env, make_nasd, schedule)
    pool = pool_env.pool_name()
    first = zfs_spawns(nasd, "snapshot")
    assert len(first) == 1 and sorted(t for t in first[0] if "@" in t) == [
        f"{pool}/{d}@GMT-2026.11.26-04.00.00" for d in ("a", "b", "c")]  # one atomic command
    # three hours go by with the daemon down: one catch-up at 07:00 and the three older... kept only 1
    for hour in ("05", "06", "07"):
        subprocess.run(["zfs", "snapshot", "-o", "nasd.io:schedule=abc",
                        *[f"{pool}/{d}@GMT-2026.11.26-{hour}.00.00" for d in ("a", "b", "c")]], check=True)
    nasd.pm.get_plugin("snapshots").clock.set("2026-11-26 07:30:00")
    await converge(nasd)
    destroys = zfs_spawns(nasd, "destroy")
    assert sorted(destroys) == [
        ["destroy", f"{pool}/{d}@GMT-2026.11.26-04.00.00,GMT-2026.11.26-05.00.00,GMT-2026.11.26-06.00.00"]
        for d in ("a", "b", "c")]
    left = subprocess.run(["zfs", "list", "-H", "-p", "-o", "name", "-t", "snapshot", "-r", pool],
                          capture_output=True, text=True, check=True).stdout.split()
    assert sorted(left) == [f"{pool}/{d}@GMT-2026.11.26-07.00.00" for d in ("a", "b", "c")]


async def test_a_restore_holds_its_snapshot_and_zfs_holds_lists_it(pool_env, make_nasd):
    nasd, base = await start(pool_env, make_nasd)
    pool = pool_env.pool_name()
    subprocess.run(["zfs", "snapshot", f"{pool}/a@GMT-2026.11.26-03.00.00"], check=True)
    restore = {"apiVersion": "nasd.io/v1alpha1", "kind": "ZSnapshotRestore", "metadata": {"name": "a-check"},
               "spec": {"mode": "clone", "source": {"dataset": "a", "snapshot": "GMT-2026.11.26-03.00.00"},
                        "target": {"path": "restore/a-check"}}}
    nasd.feed.replace("manifests", [parse_resource(d) for d in [*base, restore]])
    await converge(nasd)
    status = nasd.reconciler.current[("ZSnapshotRestore", "a-check")].status
    holds = subprocess.run(["zfs", "holds", "-H", f"{pool}/a@GMT-2026.11.26-03.00.00"],
                           capture_output=True, text=True, check=True).stdout
    assert status.hold and status.hold in holds
    assert subprocess.run(["zfs", "get", "-H", "-o", "value", "origin", f"{pool}/restore/a-check"],
                          capture_output=True, text=True).stdout.strip() == f"{pool}/a@GMT-2026.11.26-03.00.00"
    nasd.feed.replace("manifests", [parse_resource(d) for d in base])
    await converge(nasd)
    holds = subprocess.run(["zfs", "holds", "-H", f"{pool}/a@GMT-2026.11.26-03.00.00"],
                           capture_output=True, text=True, check=True).stdout
    assert status.hold not in holds  # released with the restore (the clone is kept: deletionPolicy Retain)
