"""Hostile values against the real zfs-fuse: what a manifest author (or whoever set a property by hand) can
write never makes nasd change or destroy a dataset it did not make, nor chown or share a folder outside
nasd's pools."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from nasd.models import parse_resource

pytestmark = pytest.mark.zfs


async def start(pool_env, make_nasd, *docs):
    folder = pool_env.root / "manifests"
    pool_env.write_manifests(folder, *docs)
    nasd = await make_nasd([folder], watch=True, plugins={"zfs": {"mountRoot": str(pool_env.mount_root)}})
    await passes(nasd)
    return nasd


async def passes(nasd, n: int = 4):
    for _ in range(n):
        await nasd.reconciler.run_pass(ignore_backoff=True)


def zfs(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(["zfs", *argv], capture_output=True, text=True)


def replace(nasd, *docs):
    nasd.feed.replace("manifests", [parse_resource(d) for d in docs])


async def test_a_property_value_holding_forged_rows_never_makes_a_foreign_dataset_managed_or_destroyed(
        pool_env, make_nasd):
    pool = pool_env.pool_name()
    # (a user property some manifest declares, so nasd reads it; the models refuse such a value in a manifest,
    # so here it is set by hand, as any root user could)
    base = [pool_env.pool_manifest(), pool_env.dataset_manifest("mine", properties={"org.example:note": "hello"})]
    nasd = await start(pool_env, make_nasd, *base)
    assert zfs("create", f"{pool}/foreign").returncode == 0  # somebody's own dataset, with data
    data = pool_env.mount_root / pool / "foreign" / "thesis.tex"
    data.write_text("years of work\n")
    forged = f"x\tlocal\n{pool}/foreign\tnasd.io:managed\ttrue"  # what zfs prints raw, newline and all
    assert zfs("set", f"org.example:note={forged}", f"{pool}/mine").returncode == 0

    foreign = pool_env.dataset_manifest("foreign", properties={"atime": "off"}, deletionPolicy="Destroy")
    replace(nasd, *base, foreign)
    await passes(nasd, 1)  # (the pass that reads the forged rows; it also sets mine's value back)
    ready = nasd.reconciler.current[("ZDataset", "foreign")].condition("Ready")
    assert ready.status == "False" and ready.reason == "UnreadableProperties", ready
    assert zfs("get", "-H", "-o", "value", "atime", f"{pool}/foreign").stdout.strip() == "on"  # nothing set
    await passes(nasd)
    assert nasd.reconciler.current[("ZDataset", "foreign")].condition("Ready").reason == "Unmanaged"
    assert nasd.reconciler.current[("ZDataset", "mine")].ready  # the others go on

    assert zfs("set", f"org.example:note={forged}", f"{pool}/mine").returncode == 0  # again
    replace(nasd, *base)  # foreign's ZDataset deleted, with deletionPolicy Destroy, while the rows are forged
    await passes(nasd)
    assert zfs("list", f"{pool}/foreign").returncode == 0 and data.read_text() == "years of work\n"


async def test_a_mountpoint_outside_the_pool_is_refused_and_the_folder_there_keeps_its_owner_and_mode(
        pool_env, make_nasd, tmp_path):
    private = tmp_path / "root-only"
    private.mkdir()
    os.chmod(private, 0o700)
    (private / "secret").write_text("root's\n")
    evil = pool_env.dataset_manifest("evil", mountpoint=str(private), properties={"canmount": "off"},
                                     owner={"uid": 2001, "mode": "0777"})
    share = {"apiVersion": "nasd.io/v1alpha1", "kind": "NASShare", "metadata": {"name": "evil"},
             "spec": {"protocol": "nfs", "dataset": "evil", "nfs": {"clients": [{"hosts": ["10.0.0.0/8"],
                                                                                  "access": "rw", "squash": "none"}],
                                                                     "fsid": 9}}}
    nasd = await start(pool_env, make_nasd, pool_env.pool_manifest(), evil, share)
    ready = nasd.reconciler.current[("ZDataset", "evil")].condition("Ready")
    assert ready.reason == "MountpointNotAllowed" and str(private) in ready.message
    assert nasd.reconciler.current[("NASShare", "evil")].condition("Ready").reason == "DatasetNotReady"
    st = os.stat(private)
    assert (st.st_uid, st.st_mode & 0o7777) == (0, 0o700)
    assert zfs("list", f"{pool_env.pool_name()}/evil").returncode != 0  # nothing was made


async def test_a_link_planted_where_a_dataset_should_be_mounted_is_never_followed_chowned_or_served(
        pool_env, make_nasd, tmp_path):
    pool = pool_env.pool_name()
    media = pool_env.dataset_manifest("media", owner={"uid": 2001, "mode": "0770"})
    base = [pool_env.pool_manifest(), media]
    nasd = await start(pool_env, make_nasd, *base)
    assert nasd.reconciler.current[("ZDataset", "media")].ready
    mountpoint = pool_env.mount_root / pool / "media"
    target = tmp_path / "root-only"
    target.mkdir()
    os.chmod(target, 0o700)
    assert zfs("umount", f"{pool}/media").returncode == 0
    os.rmdir(mountpoint)
    os.symlink(target, mountpoint)  # the mount will fail: something is in the way

    share = {"apiVersion": "nasd.io/v1alpha1", "kind": "NASShare", "metadata": {"name": "media"},
             "spec": {"protocol": "nfs", "dataset": "media", "nfs": {"clients": [{"hosts": ["10.0.0.0/8"]}],
                                                                      "fsid": 7}}}
    replace(nasd, *base, share)
    await passes(nasd)
    ready = nasd.reconciler.current[("ZDataset", "media")].condition("Ready")
    assert ready.status == "False" and ready.reason == "NotMounted", ready
    st = os.stat(target)
    assert (st.st_uid, st.st_mode & 0o7777) == (0, 0o700)  # the link's target was not handed over
    shared = nasd.reconciler.current[("NASShare", "media")].condition("Ready")
    assert shared.status == "False" and shared.reason == "DatasetNotReady"  # nothing is exported there

    os.unlink(mountpoint)  # the link gone, the next pass mounts it and it heals
    await passes(nasd)
    assert nasd.reconciler.current[("ZDataset", "media")].ready and os.path.ismount(mountpoint)
    assert Path(mountpoint).stat().st_uid == 2001


async def test_no_pool_is_created_over_a_file_that_holds_data(pool_env, make_nasd, tmp_path):
    disk = tmp_path / "vm-disk.img"
    with open(disk, "wb") as f:  # a big sparse file with someone's data in the middle
        f.truncate(256 << 20)
        f.seek(100 << 20)
        f.write(b"important\n")
    pool = pool_env.pool_manifest()
    pool["spec"]["vdevs"][0]["devices"] = [str(disk)]
    pool["spec"]["files"] = {}
    nasd = await start(pool_env, make_nasd, pool)
    ready = nasd.reconciler.current[("ZPool", pool_env.pool_name())].condition("Ready")
    assert ready.reason == "DeviceHoldsData" and str(disk) in ready.message, ready
    assert subprocess.run(["zpool", "list", pool_env.pool_name()], capture_output=True).returncode != 0
    with open(disk, "rb") as f:
        f.seek(100 << 20)
        assert f.read(10) == b"important\n"
    pool["spec"]["overwriteDevices"] = True  # the manifest says so explicitly: then it is overwritten
    replace(nasd, pool)
    await passes(nasd)
    assert nasd.reconciler.current[("ZPool", pool_env.pool_name())].ready


async def test_a_link_a_user_plants_where_a_new_child_dataset_would_mount_is_never_mounted_through(
        pool_env, make_nasd, tmp_path):
    pool = pool_env.pool_name()
    home = pool_env.dataset_manifest("home", owner={"uid": 2001, "mode": "0755"})  # a user's own folder
    nasd = await start(pool_env, make_nasd, pool_env.pool_manifest(), home)
    target = tmp_path / "etc-like"
    target.mkdir()
    (target / "cron.d").mkdir()
    (target / "cron.d" / "job").write_text("root's job\n")
    os.symlink(target, pool_env.mount_root / pool / "home" / "projects")  # what the user can do in their folder
    child = pool_env.dataset_manifest("projects-cron", path="cron",  # below the pool, but through the link
                                      mountpoint=str(pool_env.mount_root / pool / "home" / "projects" / "cron.d"))
    replace(nasd, pool_env.pool_manifest(), home, child)
    await passes(nasd)
    ready = nasd.reconciler.current[("ZDataset", "projects-cron")].condition("Ready")
    assert ready.status == "False" and ready.reason == "MountpointInTheWay", ready
    assert (target / "cron.d" / "job").read_text() == "root's job\n"  # nothing mounted over it
    assert not os.path.ismount(target / "cron.d")
