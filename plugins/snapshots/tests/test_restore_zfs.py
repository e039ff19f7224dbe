"""ZSnapshotRestore (mode clone) on real ZFS (zfs-fuse): clone, hold, refusals, deletion."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from snapshot_helpers import declare, ready, zfs, zfs_commands
from nasd_testing.passes import converge
from nasd.models import ManifestError, parse_resource
from nasd_snapshots.plugin import SnapshotsPlugin


def restore_manifest(name: str, source: dict, target: str, **spec) -> dict:
    return {"apiVersion": "nasd.io/v1alpha1", "kind": "ZSnapshotRestore", "metadata": {"name": name},
            "spec": {"mode": "clone", "source": source, "target": {"path": target}, **spec}}


def get(dataset: str, prop: str) -> str:
    return zfs("get", "-H", "-p", "-o", "value", prop, dataset).strip()


async def setup(pool_env, make_nasd, clock, **media_spec):
    folder = pool_env.root / "manifests"
    base = [pool_env.pool_manifest(), pool_env.dataset_manifest("media", **media_spec)]
    pool_env.write_manifests(folder, *base)
    nasd = await make_nasd([folder], replace_plugins={"snapshots": SnapshotsPlugin(clock=clock)})
    await converge(nasd)
    media = f"{pool_env.pool_name()}/media"
    mountpoint = Path(nasd.reconciler.current[("ZDataset", "media")].status.mountpoint)
    (mountpoint / "file.txt").write_text("v1\n")
    zfs("snapshot", f"{media}@GMT-2026.11.26-04.00.00")
    (mountpoint / "file.txt").write_text("v2\n")
    zfs("snapshot", f"{media}@GMT-2026.11.26-05.00.00")
    zfs("snapshot", f"{media}@manual-1")
    return nasd, base, media, mountpoint


async def test_a_restore_clones_the_snapshot_read_only_holds_it_and_leaves_the_live_data_alone(
        pool_env, make_nasd, clock):
    nasd, base, media, mountpoint = await setup(pool_env, make_nasd, clock)
    declare(nasd, *base, restore_manifest("check", {"dataset": "media", "snapshot": "GMT-2026.11.26-04.00.00"},
                                          "restore/check"))
    await converge(nasd)
    clone = f"{pool_env.pool_name()}/restore/check"
    assert ready(nasd, "ZSnapshotRestore", "check")[0] == "True"
    assert get(clone, "origin") == f"{media}@GMT-2026.11.26-04.00.00"
    assert get(f"{media}@GMT-2026.11.26-04.00.00", "userrefs") == "1"
    status = nasd.reconciler.current[("ZSnapshotRestore", "check")].status
    assert (status.snapshot, status.clone) == (f"{media}@GMT-2026.11.26-04.00.00", clone)
    assert Path(status.mountpoint, "file.txt").read_text() == "v1\n"
    with pytest.raises(OSError, match="Read-only file system"):  # readonly=on (zfs-fuse shows it "off temporary")
        Path(status.mountpoint, "new.txt").write_text("x")
    assert (mountpoint / "file.txt").read_text() == "v2\n"  # the live data is untouched
    assert ready(nasd, "ZDataset", "check-clone")[0] == "True", ready(nasd, "ZDataset", "check-clone")
    assert not (await nasd.reconciler.run_pass()).mutated  # and converged: no more commands

    declare(nasd, *base)  # deleting the restore (deletionPolicy Retain): hold released, clone kept
    await converge(nasd)
    assert get(f"{media}@GMT-2026.11.26-04.00.00", "userrefs") == "0"
    assert get(clone, "origin") == f"{media}@GMT-2026.11.26-04.00.00"
    assert ("ZSnapshotRestore", "check") not in nasd.reconciler.current
    assert ("ZDataset", "check-clone") not in nasd.reconciler.current


async def test_the_newest_snapshot_matching_a_selector_is_cloned_and_destroy_removes_the_clone(
        pool_env, make_nasd, clock):
    nasd, base, media, _ = await setup(pool_env, make_nasd, clock)
    restore = restore_manifest("latest", {"dataset": "media", "selector": {"prefix": "GMT-"}}, "latest",
                               deletionPolicy="Destroy")
    declare(nasd, *base, restore)
    await converge(nasd)
    clone = f"{pool_env.pool_name()}/latest"
    assert get(clone, "origin") == f"{media}@GMT-2026.11.26-05.00.00"  # manual-1 is newer but does not match
    zfs("snapshot", f"{media}@GMT-2026.11.26-06.00.00")
    await converge(nasd)
    assert get(clone, "origin") == f"{media}@GMT-2026.11.26-05.00.00"  # a newer match does not move it
    declare(nasd, *base)
    await converge(nasd)
    assert clone not in zfs("list", "-H", "-o", "name", "-r", pool_env.pool_name()).split()
    assert get(f"{media}@GMT-2026.11.26-05.00.00", "userrefs") == "0"


async def test_an_existing_target_or_a_missing_snapshot_is_refused_without_a_command(pool_env, make_nasd, clock):
    nasd, base, media, _ = await setup(pool_env, make_nasd, clock)
    zfs("create", f"{pool_env.pool_name()}/taken")
    declare(nasd, *base,
            restore_manifest("over", {"dataset": "media", "snapshot": "manual-1"}, "taken"),
            restore_manifest("nothing", {"dataset": "media", "snapshot": "GMT-2020.01.01-00.00.00"}, "n"))
    before = len(nasd.runner.spawns)
    await converge(nasd)
    assert ready(nasd, "ZSnapshotRestore", "over")[:2] == ("False", "TargetExists")
    assert "never overwrites" in ready(nasd, "ZSnapshotRestore", "over")[2]
    assert ready(nasd, "ZSnapshotRestore", "nothing")[:2] == ("False", "SnapshotNotFound")
    assert [s.argv for s in nasd.runner.spawns[before:] if s.mutating] == []


async def test_a_dataset_whose_snapshot_has_a_clone_reports_the_clone_instead_of_retrying_the_destroy(
        pool_env, make_nasd, clock):
    nasd, base, media, _ = await setup(pool_env, make_nasd, clock, deletionPolicy="Destroy", destroyRecursive=True)
    restore = restore_manifest("check", {"dataset": "media", "snapshot": "manual-1"}, "restore/check")
    declare(nasd, *base, restore)
    await converge(nasd)
    declare(nasd, base[0], parse_resource(restore).model_dump(mode="json", exclude_none=True))
    before = len(nasd.runner.spawns)
    for _ in range(3):
        await nasd.reconciler.run_pass(ignore_backoff=True)
    pending = nasd.reconciler.current[("ZDataset", "media")].condition("Ready")
    assert (pending.status, pending.reason) == ("False", "BlockedByClone")
    assert f"{pool_env.pool_name()}/restore/check" in pending.message and "@manual-1" in pending.message
    assert [s.argv for s in nasd.runner.spawns[before:] if s.mutating] == []  # no destroy tried, ever
    assert media in zfs("list", "-H", "-o", "name").split()


def test_rollback_is_refused_with_a_clear_error():
    with pytest.raises(ManifestError) as e:
        parse_resource(restore_manifest("r", {"dataset": "media", "snapshot": "s"}, "t") | {
            "spec": {"mode": "rollback", "source": {"dataset": "media", "snapshot": "s"}, "target": {"path": "t"}}})
    assert "spec.mode" in str(e.value) and "rollback" in str(e.value) and "use mode: clone" in str(e.value)


async def test_a_restore_whose_status_was_lost_after_cloning_recognises_its_clone_and_holds_it(
        pool_env, make_nasd, clock):
    nasd, base, media, _ = await setup(pool_env, make_nasd, clock)
    clone = f"{pool_env.pool_name()}/restore/check"
    # what a kill -9 right after `zfs clone` leaves: the clone (with its marks), no hold, no status
    zfs("clone", "-p", "-o", "nasd.io:managed=true", "-o", "nasd.io:restore=check",
        f"{media}@GMT-2026.11.26-04.00.00", clone)
    declare(nasd, *base, restore_manifest("check", {"dataset": "media", "selector": {"prefix": "GMT-"}},
                                          "restore/check"))
    await converge(nasd)
    assert ready(nasd, "ZSnapshotRestore", "check")[0] == "True"  # not TargetExists: the newer match does not move it
    assert get(f"{media}@GMT-2026.11.26-04.00.00", "userrefs") == "1"
    store = nasd.reconciler.current[("ZSnapshotRestore", "check")]
    store.status = type(store.status)()  # and its status lost again before the restore is deleted
    declare(nasd, *base)
    await converge(nasd)
    assert get(f"{media}@GMT-2026.11.26-04.00.00", "userrefs") == "0"  # the hold is found and released


async def test_a_clone_destroyed_by_hand_is_cloned_again_never_replaced_by_an_empty_dataset(
        pool_env, make_nasd, clock):
    nasd, base, media, _ = await setup(pool_env, make_nasd, clock)
    declare(nasd, *base, restore_manifest("check", {"dataset": "media", "snapshot": "manual-1"}, "restore/check"))
    await converge(nasd)
    clone = f"{pool_env.pool_name()}/restore/check"
    zfs("release", "nasd-restore-check", f"{media}@manual-1")
    subprocess.run(["zfs", "umount", clone], capture_output=True)
    zfs("destroy", clone)
    await converge(nasd)  # its ZDataset finds it gone (and is retried); the pass after, the restore clones again
    assert ready(nasd, "ZDataset", "check-clone")[:2] == ("False", "NotFound")
    await converge(nasd)
    assert get(clone, "origin") == f"{media}@manual-1"
    assert ready(nasd, "ZDataset", "check-clone")[0] == "True"
    assert [c for c in zfs_commands(nasd, "create") if c[-1] == clone] == []
    assert get(f"{media}@manual-1", "userrefs") == "1"
