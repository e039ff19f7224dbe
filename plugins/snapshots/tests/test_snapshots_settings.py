"""The snapshots plugin's settings (``plugins: {snapshots: ...}``), on real ZFS (zfs-fuse)."""

from __future__ import annotations

from snapshot_helpers import declare, names, ready, schedule_manifest
from nasd_testing.passes import converge
from nasd_snapshots.plugin import SnapshotsPlugin


async def test_a_bad_snapshots_setting_keeps_the_schedules_not_ready_naming_it_and_nothing_else(
        pool_env, make_nasd, clock):
    docs = [pool_env.pool_manifest(), pool_env.dataset_manifest("media"), schedule_manifest("media-hourly", ["media"])]
    folder = pool_env.root / "manifests"
    pool_env.write_manifests(folder, *docs)
    plugins = {"zfs": {"mountRoot": str(pool_env.mount_root)}}
    nasd = await make_nasd([folder], plugins={**plugins, "snapshots": {"relistSeconds": -5, "relist": 60}},
                           replace_plugins={"snapshots": SnapshotsPlugin(clock=clock)})
    declare(nasd, *docs)
    await converge(nasd)
    status, reason, message = ready(nasd, "ZSnapshotSchedule", "media-hourly")
    assert (status, reason) == ("False", "BadSettings"), message
    assert message.startswith("plugins.snapshots: ") and "relistSeconds" in message and "relist" in message
    assert ready(nasd, "ZDataset", "media")[0] == "True"  # the rest goes on
    media = f"{pool_env.pool_name()}/media"
    assert names(media) == []  # and the schedule takes nothing

    # set right (settings are read at the start): the schedule goes on from there
    fixed = await make_nasd([folder], plugins={**plugins, "snapshots": {"relistSeconds": 60}},
                            replace_plugins={"snapshots": SnapshotsPlugin(clock=clock)})
    declare(fixed, *docs)
    await converge(fixed)
    assert ready(fixed, "ZSnapshotSchedule", "media-hourly")[0] == "True"
    assert names(media) == ["GMT-2026.11.26-04.00.00"]
