"""Reconciling against the real zfs-fuse: create, converge, stay idempotent, correct drift,
refuse what would destroy data, and survive a kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import yaml

from nasd.models import parse_resource
from nasd_testing.passes import converge

PROPS = {"compression": "gzip-1", "atime": "off", "quota": "1Gi"}


def mutating(nasd) -> list[list[str]]:
    return [s.argv for s in nasd.runner.spawns if s.mutating]


def ready(nasd, kind: str, name: str) -> tuple[str, str]:
    c = nasd.reconciler.current[(kind, name)].condition("Ready")
    return (c.status, c.reason)


async def test_a_pool_and_datasets_with_properties_are_created_for_real(pool_env, make_nasd):
    folder = pool_env.root / "manifests"
    pool_env.write_manifests(folder, pool_env.pool_manifest(),
                             pool_env.dataset_manifest("media", properties=PROPS),
                             pool_env.dataset_manifest("docs", properties={"compression": "on", "recordsize": "64Ki"}),
                             pool_env.dataset_manifest("raw", path="media/raw", properties={"atime": "on"}))
    nasd = await make_nasd([folder])
    await converge(nasd)
    pool = pool_env.pool_name()
    assert pool_env.zfs_get(f"{pool}/media", "compression", "atime", "quota") == {
        "compression": "gzip-1", "atime": "off", "quota": "1073741824"}
    assert pool_env.zfs_get(f"{pool}/docs", "compression", "recordsize") == {
        "compression": "on", "recordsize": "65536"}
    assert pool_env.zfs_get(f"{pool}/media/raw", "atime", "nasd.io:managed") == {
        "atime": "on", "nasd.io:managed": "true"}
    for kind, name in [("ZPool", pool), ("ZDataset", "media"), ("ZDataset", "docs"), ("ZDataset", "raw")]:
        assert ready(nasd, kind, name) == ("True", "Ready")
    media = nasd.reconciler.current[("ZDataset", "media")]
    assert media.status.mountpoint == str(pool_env.mount_root / pool / "media")
    assert os.path.ismount(media.status.mountpoint)
    assert media.status.used and media.status.available
    creates = [a for a in mutating(nasd) if a[0].endswith("/zfs") and a[1] == "create"]
    assert len(creates) == 3 and not any(a[1] == "set" for a in mutating(nasd))


async def test_reconciling_the_same_manifests_again_runs_no_mutating_command(pool_env, make_nasd):
    folder = pool_env.root / "manifests"
    pool_env.write_manifests(folder, pool_env.pool_manifest(), pool_env.dataset_manifest("media", properties=PROPS))
    nasd = await make_nasd([folder])
    await converge(nasd)
    before = len(nasd.runner.spawns)
    report = await nasd.reconciler.run_pass()
    spawned = nasd.runner.spawns[before:]
    assert not report.mutated and [s for s in spawned if s.mutating] == []
    # zpool status + zfs get; zfs-fuse's `zfs get` cannot leave out snapshots, so it names the file
    # systems from a listing first (one read more, but milliseconds instead of seconds per 1,000 snapshots)
    assert len(spawned) <= (3 if nasd.pm.get_plugin("zfs").dialect.name == "zfs-fuse" else 2)
    # and a new daemon on the same state (a restart) agrees
    again = await make_nasd([folder])
    start = len(again.runner.spawns)
    await again.reconciler.run_pass()
    assert [s.argv for s in again.runner.spawns[start:] if s.mutating] == []


async def test_a_property_changed_by_hand_is_set_back_and_logged(pool_env, make_nasd, caplog):
    folder = pool_env.root / "manifests"
    pool_env.write_manifests(folder, pool_env.pool_manifest(), pool_env.dataset_manifest("media", properties=PROPS))
    nasd = await make_nasd([folder])
    await converge(nasd)
    name = f"{pool_env.pool_name()}/media"
    subprocess.run(["zfs", "set", "compression=lzjb", name], check=True)
    await nasd.reconciler.run_pass()
    assert pool_env.zfs_get(name, "compression") == {"compression": "gzip-1"}
    assert "drift corrected on " + name in caplog.text and "compression was lzjb" in caplog.text


async def test_editing_a_manifest_converges_the_change(pool_env, make_nasd):
    folder = pool_env.root / "manifests"
    pool_env.write_manifests(folder, pool_env.pool_manifest(), pool_env.dataset_manifest("media", properties=PROPS))
    nasd = await make_nasd([folder], watch=True)
    await converge(nasd)
    pool_env.write_manifests(folder, pool_env.pool_manifest(),
                             pool_env.dataset_manifest("media", properties=PROPS | {"quota": "2Gi"}))
    deadline = time.monotonic() + 10
    while nasd.feed.snapshot()[0][("ZDataset", "media")].spec.properties["quota"] != "2Gi":
        assert time.monotonic() < deadline, "the manifest folder was not re-read"
        import asyncio
        await asyncio.sleep(0.1)
    await converge(nasd)
    assert pool_env.zfs_get(f"{pool_env.pool_name()}/media", "quota") == {"quota": str(2 << 30)}
    media = nasd.reconciler.current[("ZDataset", "media")]
    assert media.metadata.generation == 2 and media.condition("Ready").observedGeneration == 2


async def test_a_create_only_property_change_is_refused_with_a_condition(pool_env, make_nasd):
    folder = pool_env.root / "manifests"
    pool_env.write_manifests(folder, pool_env.pool_manifest(),
                             pool_env.dataset_manifest("media", properties={"casesensitivity": "sensitive"}))
    nasd = await make_nasd([folder])
    await converge(nasd)
    pool_env.write_manifests(folder, pool_env.pool_manifest(), pool_env.dataset_manifest(
        "media", properties={"casesensitivity": "mixed", "atime": "off"}))
    nasd.config.manifests  # same folder; re-read it like the watcher would
    again = await make_nasd([folder])
    before = len(again.runner.spawns)
    await again.reconciler.run_pass()
    assert ready(again, "ZDataset", "media") == ("False", "CreateOnlyProperty")
    assert "casesensitivity" in again.reconciler.current[("ZDataset", "media")].condition("Ready").message
    assert [s for s in again.runner.spawns[before:] if s.mutating] == []  # not even atime: nothing half-applied
    assert pool_env.zfs_get(f"{pool_env.pool_name()}/media", "casesensitivity", "atime") == {
        "casesensitivity": "sensitive", "atime": "on"}


async def test_deleting_a_dataset_keeps_its_data_by_default(pool_env, make_nasd):
    folder = pool_env.root / "manifests"
    pool_env.write_manifests(folder, pool_env.pool_manifest(), pool_env.dataset_manifest("media"))
    nasd = await make_nasd([folder])
    await converge(nasd)
    pool_env.write_manifests(folder, pool_env.pool_manifest())
    again = await make_nasd([folder])
    await converge(again)
    assert ("ZDataset", "media") not in again.reconciler.current
    assert pool_env.zfs_get(f"{pool_env.pool_name()}/media", "nasd.io:managed")  # still there


async def test_destroy_policy_destroys_but_refuses_to_take_children_along(pool_env, make_nasd):
    folder = pool_env.root / "manifests"
    pool = pool_env.pool_name()
    pool_env.write_manifests(folder, pool_env.pool_manifest(),
                             pool_env.dataset_manifest("media", deletionPolicy="Destroy"),
                             pool_env.dataset_manifest("scratch", deletionPolicy="Destroy"))
    nasd = await make_nasd([folder])
    await converge(nasd)
    subprocess.run(["zfs", "snapshot", f"{pool}/media@keep"], check=True)
    pool_env.write_manifests(folder, pool_env.pool_manifest())
    again = await make_nasd([folder])
    await again.reconciler.run_pass()
    names = subprocess.run(["zfs", "list", "-H", "-o", "name", "-r", pool], capture_output=True, text=True).stdout
    assert f"{pool}/scratch" not in names.split()
    assert f"{pool}/media" in names.split()
    pending = again.reconciler.current[("ZDataset", "media")].condition("Ready")
    assert (pending.status, pending.reason) == ("False", "HasSnapshots")
    assert "destroyRecursive: true" in pending.message and f"{pool}/media@keep" in pending.message


async def test_a_failing_resource_does_not_block_unrelated_ones_and_dependents_say_why(pool_env, make_nasd):
    folder = pool_env.root / "manifests"
    broken = pool_env.pool_manifest("bad")
    broken["spec"]["files"] = {}  # its device does not exist and nasd may not create it
    pool_env.write_manifests(folder, pool_env.pool_manifest(), broken,
                             pool_env.dataset_manifest("media"),
                             pool_env.dataset_manifest("orphan", pool="bad"))
    nasd = await make_nasd([folder])
    await converge(nasd)
    assert ready(nasd, "ZPool", pool_env.pool_name("bad")) == ("False", "MissingDevice")
    assert ready(nasd, "ZDataset", "orphan") == ("False", "PoolNotReady")
    assert "waiting for ZPool" in nasd.reconciler.current[("ZDataset", "orphan")].condition("Ready").message
    assert ready(nasd, "ZDataset", "media") == ("True", "Ready")


async def test_a_zfs_error_becomes_a_condition_and_is_retried_with_backoff(pool_env, make_nasd):
    folder = pool_env.root / "manifests"
    pool_env.write_manifests(folder, pool_env.pool_manifest(),
                             pool_env.dataset_manifest("child", path="missing-parent/child"))
    nasd = await make_nasd([folder])
    await nasd.reconciler.run_pass()
    status, reason = ready(nasd, "ZDataset", "child")
    assert (status, reason) == ("False", "CommandFailed")
    assert "parent does not exist" in nasd.reconciler.current[("ZDataset", "child")].condition("Ready").message
    before = len(nasd.runner.spawns)
    await nasd.reconciler.run_pass()  # within the backoff: not retried
    assert not [s for s in nasd.runner.spawns[before:] if s.mutating]
    attempts, retry_at, _ = nasd.reconciler._backoff[("ZDataset", "child")]
    assert attempts == 1 and retry_at > time.monotonic()
    while time.monotonic() < retry_at:  # once the backoff is over, the next pass tries again
        time.sleep(0.05)
    before = len(nasd.runner.spawns)
    await nasd.reconciler.run_pass()
    assert [(os.path.basename(s.argv[0]), s.argv[1]) for s in nasd.runner.spawns[before:] if s.mutating] == [
        ("zfs", "create")]
    assert nasd.reconciler._backoff[("ZDataset", "child")][0] == 2  # and backs off longer


CRASH_SCRIPT = r"""
import asyncio, sys
from nasd.config import Config
from nasd.daemon import Nasd
cfg = Config.model_validate_json(sys.argv[1])
async def main():
    async with Nasd(cfg) as nasd:
        print("started", flush=True)
        await nasd.reconciler.run_pass()
asyncio.run(main())
"""


async def test_a_kill_9_in_the_middle_of_a_reconcile_leaves_nothing_the_next_start_cannot_converge(
        pool_env, make_nasd):
    folder = pool_env.root / "manifests"
    n = 80
    docs = [pool_env.pool_manifest(size="512Mi")] + [
        pool_env.dataset_manifest(f"d{i}", properties={"compression": "on"}) for i in range(n)]
    pool_env.write_manifests(folder, *docs)
    config = pool_env.config(manifests=[str(folder)])
    pool = pool_env.pool_name()

    def count() -> int:
        out = subprocess.run(["zfs", "list", "-H", "-o", "name", "-r", pool], capture_output=True, text=True)
        return len(out.stdout.split()) if out.returncode == 0 else 0

    for kill_at in (10, 40):  # kill while datasets are being created, twice
        proc = subprocess.Popen([sys.executable, "-c", CRASH_SCRIPT, __import__("json").dumps(config)],
                                stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "started"
        deadline = time.monotonic() + 60
        while count() < kill_at:
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    made = count()
    assert kill_at <= made < n + 1, "the kill should land mid-run"
    # a kill during a state write leaves a temporary file beside resources.json (made here for sure)
    stray = pool_env.state_dir / ".resources.json.tmp.99999"
    stray.write_text('[{"half": ')
    nasd = await make_nasd([folder])
    assert not stray.exists()  # stray temp files are ignored and cleaned
    await converge(nasd)
    assert all(r.ready for r in nasd.reconciler.current.values())
    names = subprocess.run(["zfs", "list", "-H", "-o", "name", "-r", pool], capture_output=True, text=True).stdout
    assert len(names.split()) == n + 1
    records = yaml.safe_load((pool_env.state_dir / "resources.json").read_text())  # the state file is whole
    assert len(records) == n + 1
    for record in records:
        parse_resource(record["manifest"])


async def converged_with_a_destroy_dataset(pool_env, make_nasd):
    """A pool and the dataset media (deletionPolicy: Destroy), converged: (folder, pool name, nasd)."""
    folder = pool_env.root / "manifests"
    pool = pool_env.pool_name()
    pool_env.write_manifests(folder, pool_env.pool_manifest(),
                             pool_env.dataset_manifest("media", deletionPolicy="Destroy"))
    nasd = await make_nasd([folder])
    await converge(nasd)
    return folder, pool, nasd


async def test_renaming_a_dataset_resource_keeps_the_dataset_even_with_destroy_policy(pool_env, make_nasd):
    folder, pool, nasd = await converged_with_a_destroy_dataset(pool_env, make_nasd)
    mountpoint = nasd.reconciler.current[("ZDataset", "media")].status.mountpoint
    with open(os.path.join(mountpoint, "precious.txt"), "w") as f:
        f.write("keep me\n")
    renamed = pool_env.dataset_manifest("media-renamed", path="media", deletionPolicy="Destroy")
    pool_env.write_manifests(folder, pool_env.pool_manifest(), renamed)
    again = await make_nasd([folder])
    await converge(again)
    assert ("ZDataset", "media") not in again.reconciler.current
    assert ready(again, "ZDataset", "media-renamed") == ("True", "Ready")
    assert open(os.path.join(mountpoint, "precious.txt")).read() == "keep me\n"
    assert not [argv for argv in mutating(again) if "destroy" in argv], mutating(again)
    assert pool_env.zfs_get(f"{pool}/media", "nasd.io:managed")


async def test_a_pool_with_destroy_policy_is_destroyed_with_its_files_unless_it_holds_snapshots(
        pool_env, make_nasd):
    folder = pool_env.root / "manifests"
    keep, gone = pool_env.pool_manifest("keep", deletionPolicy="Destroy"), pool_env.pool_manifest(
        "gone", deletionPolicy="Destroy")
    pool_env.write_manifests(folder, keep, gone)
    nasd = await make_nasd([folder])
    await converge(nasd)
    subprocess.run(["zfs", "snapshot", f"{pool_env.pool_name('keep')}@mine"], check=True)
    pool_env.write_manifests(folder)
    again = await make_nasd([folder])
    await again.reconciler.run_pass()
    pools = subprocess.run(["zpool", "list", "-H", "-o", "name"], capture_output=True, text=True).stdout.split()
    assert pool_env.pool_name("gone") not in pools and pool_env.pool_name("keep") in pools
    assert not os.path.exists(gone["spec"]["vdevs"][0]["devices"][0])
    assert os.path.exists(keep["spec"]["vdevs"][0]["devices"][0])
    held = again.reconciler.current[("ZPool", pool_env.pool_name("keep"))].condition("Ready")
    assert (held.status, held.reason) == ("False", "HasChildren")


async def test_deletions_are_held_while_a_manifest_cannot_be_read(pool_env, make_nasd):
    folder, pool, nasd = await converged_with_a_destroy_dataset(pool_env, make_nasd)
    # a restart with the file broken (a typo while editing): nothing it declared is deleted
    (folder / "resources.yaml").write_text("apiVersion: nasd.io/v1alpha1\nkind: ZDataset\nmetadata: {name: [\n")
    broken = await make_nasd([folder])
    await broken.reconciler.run_pass()
    assert pool_env.zfs_get(f"{pool}/media", "nasd.io:managed")
    assert ("ZDataset", "media") in broken.reconciler.current
    # and with the folder gone (a mount that is not there yet)
    folder.rename(pool_env.root / "unmounted")
    missing = await make_nasd([folder])
    await missing.reconciler.run_pass()
    assert pool_env.zfs_get(f"{pool}/media", "nasd.io:managed")
    assert not [argv for argv in mutating(missing) if "destroy" in argv]


async def test_a_new_dataset_with_an_owner_has_it_in_the_pass_that_makes_it_ready(pool_env, make_nasd):
    # (seen in CI: a share was served, and Ready, while its new dataset's folder was still root's for a moment)
    folder = pool_env.root / "manifests"
    pool_env.write_manifests(folder, pool_env.pool_manifest(),
                             pool_env.dataset_manifest("home", owner={"uid": 2001, "gid": 2002, "mode": "0750"}))
    nasd = await make_nasd([folder])
    for _ in range(4):  # the pool, then the dataset: up to the pass that makes the dataset Ready
        await nasd.reconciler.run_pass()
        if ("ZDataset", "home") in nasd.reconciler.current and nasd.reconciler.current[("ZDataset", "home")].ready:
            break
    assert ready(nasd, "ZDataset", "home") == ("True", "Ready")
    st = os.stat(pool_env.mount_root / pool_env.pool_name() / "home")
    assert (st.st_uid, st.st_gid, oct(st.st_mode & 0o7777)) == (2001, 2002, "0o750")
    before = len(nasd.runner.spawns)
    report = await converge(nasd)  # and nothing more to do
    assert not report.mutated and [s for s in nasd.runner.spawns[before:] if s.mutating] == []
