"""NFS shares served by the kernel's nfsd on OpenZFS, mounted over v4.2 and v3 from inside the VM: the
access each manifest gives is the access a client gets, and a removed share is unexported while a
foreign export stays."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from vmhelpers import mount_nfs, requires_openzfs, umount

from nasd.models import parse_resource
from nasd_testing.passes import converge


def nfs_share(name, dataset, *clients):
    return {"apiVersion": "nasd.io/v1alpha1", "kind": "NASShare", "metadata": {"name": name},
            "spec": {"protocol": "nfs", "dataset": dataset, "nfs": {"clients": list(clients)}}}


SHARES = [
    nfs_share("rw-squashed", "rw-squashed", {"hosts": ["127.0.0.1"], "access": "rw"}),
    nfs_share("read-only", "read-only", {"hosts": ["127.0.0.1"], "access": "ro", "squash": "none"}),
    nfs_share("maproot", "maproot", {"hosts": ["127.0.0.1"], "access": "rw", "squash": "none"}),
    nfs_share("mapall", "mapall", {"hosts": ["127.0.0.1"], "access": "rw", "squash": "all",
                                   "anonuid": 3000, "anongid": 3000}),
]
DATASETS = ["rw-squashed", "read-only", "maproot", "mapall"]


async def start(pool_env, nfs_exports, make_nasd, shares=SHARES):
    requires_openzfs()
    base = [pool_env.pool_manifest(), *[pool_env.dataset_manifest(d) for d in DATASETS]]
    folder = pool_env.root / "manifests"
    pool_env.write_manifests(folder, *base, *shares)
    nasd = await make_nasd([folder], watch=False, plugins={
        "zfs": {"mountRoot": str(pool_env.mount_root)}, "nfs": {**nfs_exports.settings(), "hostName": "127.0.0.1"}})
    await converge(nasd)
    for d in DATASETS:
        os.chmod(nasd.reconciler.current[("ZDataset", d)].status.mountpoint, 0o777)
    return nasd, base


def mount_command(nasd, share: str, version: str) -> str:
    command = nasd.reconciler.current[("NASShare", share)].status.mountCommand
    assert command.startswith("mount -t nfs -o vers=4.2 127.0.0.1:/"), command
    return command if version == "4.2" else command.replace("vers=4.2", "vers=3,nolock")


@pytest.mark.parametrize("version", ["4.2", "3"])
async def test_clients_get_the_access_the_manifest_gives(pool_env, nfs_exports, nfs_server, make_nasd, tmp_path,
                                                        version):
    nasd, _ = await start(pool_env, nfs_exports, make_nasd)
    assert all(nasd.reconciler.current[("NASShare", s)].ready for s in DATASETS)
    mounts = {s: tmp_path / s for s in DATASETS}
    try:
        for share, target in mounts.items():
            mount_nfs(mount_command(nasd, share, version), target)
        kind = subprocess.run(["stat", "-f", "-c", "%T", str(mounts["maproot"])], capture_output=True, text=True)
        assert kind.stdout.strip() == "nfs", kind

        (mounts["rw-squashed"] / "by-root.txt").write_text("written by root, squashed\n")
        assert os.stat(mounts["rw-squashed"] / "by-root.txt").st_uid == 65534  # root squash maps root to nobody

        with pytest.raises(OSError) as refused:  # a read-only client cannot write
            (mounts["read-only"] / "nope.txt").write_text("x")
        assert refused.value.errno in (30, 13)  # EROFS (or EACCES)

        (mounts["maproot"] / "as-root.txt").write_text("root stays root\n")
        assert os.stat(mounts["maproot"] / "as-root.txt").st_uid == 0  # squash: none

        (mounts["mapall"] / "anyone.txt").write_text("everyone is 3000\n")
        assert os.stat(mounts["mapall"] / "anyone.txt").st_uid == 3000  # all squash with anonuid
        served = Path(nasd.reconciler.current[("ZDataset", "mapall")].status.mountpoint)
        assert (served / "anyone.txt").read_text() == "everyone is 3000\n"  # it landed on the dataset
    finally:
        for target in mounts.values():
            umount(target)


async def test_a_removed_share_is_unexported_and_a_foreign_export_stays(
        pool_env, nfs_exports, nfs_server, make_nasd, tmp_path):
    foreign_dir = tmp_path / "foreign"
    foreign_dir.mkdir()
    (foreign_dir / "theirs.txt").write_text("not nasd's\n")
    foreign = nfs_exports.own.with_name("admin.exports")
    foreign.write_text(f"{foreign_dir} 127.0.0.1(ro,no_subtree_check,fsid=4242)\n")
    nasd, base = await start(pool_env, nfs_exports, make_nasd)
    nasd.feed.replace("manifests", [parse_resource(d) for d in [*base, *SHARES[1:]]])  # rw-squashed goes
    await converge(nasd)
    target = tmp_path / "m"
    target.mkdir()
    gone = subprocess.run(["mount", "-t", "nfs", "-o", "vers=4.2",
                           f"127.0.0.1:{nasd.reconciler.current[('ZDataset', 'rw-squashed')].status.mountpoint}",
                           str(target)], capture_output=True, text=True)
    if gone.returncode == 0:
        umount(target)
    assert gone.returncode != 0, "the removed share can still be mounted"
    assert foreign.read_text() == f"{foreign_dir} 127.0.0.1(ro,no_subtree_check,fsid=4242)\n"
    mount_nfs(f"mount -t nfs -o vers=4.2 127.0.0.1:{foreign_dir} x", target)
    try:
        assert (target / "theirs.txt").read_text() == "not nasd's\n"
    finally:
        umount(target)


async def test_snapshots_are_visible_to_nfs_clients_under_dot_zfs(pool_env, nfs_exports, nfs_server, make_nasd,
                                                                   tmp_path):
    nasd, _ = await start(pool_env, nfs_exports, make_nasd)
    served = Path(nasd.reconciler.current[("ZDataset", "maproot")].status.mountpoint)
    (served / "file.txt").write_text("v1\n")
    subprocess.run(["zfs", "snapshot", f"{pool_env.pool_name()}/maproot@GMT-2026.11.26-04.00.00"], check=True)
    (served / "file.txt").write_text("v2\n")
    target = tmp_path / "m"
    mount_nfs(mount_command(nasd, "maproot", "4.2"), target)
    try:
        assert "GMT-2026.11.26-04.00.00" in os.listdir(target / ".zfs/snapshot")
        assert (target / ".zfs/snapshot/GMT-2026.11.26-04.00.00/file.txt").read_text() == "v1\n"
        assert (target / "file.txt").read_text() == "v2\n"
    finally:
        umount(target)
