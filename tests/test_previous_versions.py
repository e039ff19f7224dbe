"""End to end with the real smbd and smbclient: snapshots a schedule makes show as Windows "Previous
Versions" of a share's files, and a restore's clone is served read-only to the same users.

zfs-fuse has no ``.zfs/snapshot`` directory: there these tests expose a snapshot themselves, as a
read-only clone mounted at ``<dataset>/.zfs/snapshot/<name>`` (what OpenZFS shows by itself). The VM tier
runs the same tests on OpenZFS, with its real ``.zfs/snapshot``. nasd only writes the shadow_copy2 settings; it never relies on the trick.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from nasd.models import parse_resource
from nasd_testing.clock import Clock
from nasd_testing.passes import converge
from nasd_testing.smb import smb_conf_file
from nasd_snapshots.plugin import SnapshotsPlugin

ALICE = "s3cret-Alice"
SNAP = "GMT-2026.11.26-04.00.00"


def identities(smb_env) -> list[dict]:
    return smb_env.local_users(alice=(2001, ALICE), bob=(2002, "s3cret-Bob"))


def media_share() -> dict:
    return {"apiVersion": "nasd.io/v1alpha1", "kind": "NASShare", "metadata": {"name": "media"},
            "spec": {"protocol": "smb", "dataset": "media", "smb": {"validUsers": ["alice"]}}}


def schedule() -> dict:
    return {"apiVersion": "nasd.io/v1alpha1", "kind": "ZSnapshotSchedule", "metadata": {"name": "media-hourly"},
            "spec": {"datasets": ["media"], "schedule": {"cron": "0 * * * *"}, "retention": {"hourly": 24}}}


async def start(pool_env, smb_env, make_nasd, tmp_path):
    """A share of `media` for alice, with file.txt saying v1 when the schedule's first snapshot is taken
    (04:00 UTC by the plugin's clock) and v2 after it."""
    base = [pool_env.pool_manifest(), pool_env.dataset_manifest("media"), *identities(smb_env), media_share()]
    folder = pool_env.root / "manifests"
    pool_env.write_manifests(folder, *base)
    nasd = await make_nasd([folder], watch=True, plugins={"zfs": {"mountRoot": str(pool_env.mount_root)},
                                                          "smb": smb_env.settings()},
                           replace_plugins={"snapshots": SnapshotsPlugin(clock=Clock("2026-11-26 04:00:05"))})
    await converge(nasd)
    mountpoint = Path(nasd.reconciler.current[("ZDataset", "media")].status.mountpoint)
    subprocess.run(["chown", "2001", str(mountpoint)], check=True)
    (tmp_path / "file.txt").write_text("v1\n")
    assert smb_env.smbclient("media", "alice", ALICE, "put file.txt", cwd=tmp_path).returncode == 0
    base.append(schedule())
    nasd.feed.replace("manifests", [parse_resource(d) for d in base])
    await converge(nasd)
    (tmp_path / "file.txt").write_text("v2\n")
    assert smb_env.smbclient("media", "alice", ALICE, "put file.txt", cwd=tmp_path).returncode == 0
    return nasd, base, mountpoint


def expose_snapshot(dataset: str, mountpoint: Path, name: str) -> None:
    """What OpenZFS shows by itself: the snapshot's files under <mountpoint>/.zfs/snapshot/<name>. On
    OpenZFS (the VM tier) the real .zfs directory is there, and the test uses it as it is."""
    if (mountpoint / ".zfs" / "snapshot").is_dir():
        return
    subprocess.run(["zfs", "clone", "-o", "readonly=on", "-o", f"mountpoint={mountpoint}/.zfs/snapshot/{name}",
                    f"{dataset}@{name}", f"{dataset.split('/')[0]}/pv-{name.lower()}"], check=True)


async def test_a_share_on_a_scheduled_dataset_shows_its_snapshots_as_previous_versions(
        pool_env, smb_env, make_nasd, tmp_path):
    nasd, _, mountpoint = await start(pool_env, smb_env, make_nasd, tmp_path)
    conf = subprocess.run(["testparm", "-s", "--section-name", "media", str(smb_conf_file(nasd))],
                          capture_output=True, text=True).stdout
    vfs = next(line for line in conf.splitlines() if line.strip().startswith("vfs objects = "))
    assert "shadow_copy2" in vfs.split(" = ")[1].split(), conf
    for line in ("shadow:snapdir = .zfs/snapshot",
                 "shadow:format = GMT-%Y.%m.%d-%H.%M.%S", "shadow:sort = desc", "shadow:localtime = no"):
        assert line in conf, conf
    expose_snapshot(f"{pool_env.pool_name()}/media", mountpoint, SNAP)
    info = smb_env.smbclient("media", "alice", ALICE, "allinfo file.txt")
    assert f"@{SNAP}" in info.stdout, info.stdout + info.stderr
    got = smb_env.smbclient("media", "alice", ALICE, f"get @{SNAP}/file.txt old.txt", cwd=tmp_path)
    assert got.returncode == 0, got.stdout + got.stderr
    assert (tmp_path / "old.txt").read_text() == "v1\n"
    got = smb_env.smbclient("media", "alice", ALICE, "get file.txt now.txt", cwd=tmp_path)
    assert (tmp_path / "now.txt").read_text() == "v2\n"


async def test_a_restore_serves_its_clone_read_only_to_the_users_of_the_source_share_and_goes_away_with_it(
        pool_env, smb_env, make_nasd, tmp_path):
    nasd, base, mountpoint = await start(pool_env, smb_env, make_nasd, tmp_path)
    restore = {"apiVersion": "nasd.io/v1alpha1", "kind": "ZSnapshotRestore", "metadata": {"name": "media-check"},
               "spec": {"mode": "clone", "source": {"dataset": "media", "snapshot": SNAP},
                        "target": {"path": "restore/media-check"},
                        "share": {"protocol": "smb", "name": "Media-Check", "readOnly": True}}}
    nasd.feed.replace("manifests", [parse_resource(d) for d in [*base, restore]])
    await converge(nasd)
    status = nasd.reconciler.current[("ZSnapshotRestore", "media-check")].status
    assert (status.share, status.mountpoint) == ("Media-Check", str(pool_env.mount_root / pool_env.pool_name()
                                                                       / "restore" / "media-check"))
    assert nasd.reconciler.current[("NASShare", "media-check-share")].ready
    got = smb_env.smbclient("media-check", "alice", ALICE, "get file.txt restored.txt", cwd=tmp_path)
    assert got.returncode == 0, got.stdout + got.stderr
    assert (tmp_path / "restored.txt").read_text() == "v1\n"
    put = smb_env.smbclient("media-check", "alice", ALICE, "put restored.txt again.txt", cwd=tmp_path)
    assert "NT_STATUS_ACCESS_DENIED" in put.stdout + put.stderr or "WRITE_PROTECTED" in put.stdout + put.stderr
    bob = smb_env.smbclient("media-check", "bob", "s3cret-Bob", "ls")  # not a valid user of media: not here either
    assert "NT_STATUS_ACCESS_DENIED" in bob.stdout + bob.stderr
    assert (mountpoint / "file.txt").read_text() == "v2\n"  # the live share is untouched

    nasd.feed.replace("manifests", [parse_resource(d) for d in base])
    await converge(nasd)
    gone = smb_env.smbclient("media-check", "alice", ALICE, "ls")
    assert "NT_STATUS_BAD_NETWORK_NAME" in gone.stdout + gone.stderr
    assert smb_env.smbclient("media", "alice", ALICE, "ls").returncode == 0
