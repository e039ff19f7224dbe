"""A restore shared over NFS: its clone is exported, read-only, to the clients of the source dataset's NFS
share (the real exportfs; the kernel's nfsd mounts it in the VM tier)."""

from __future__ import annotations

import subprocess

from nasd.models import parse_resource
from nasd_testing.passes import converge

SNAP = "GMT-2026.11.26-04.00.00"


def docs(pool_env):
    source = {"apiVersion": "nasd.io/v1alpha1", "kind": "NASShare", "metadata": {"name": "media"},
              "spec": {"protocol": "nfs", "dataset": "media",
                       "nfs": {"fsid": 21, "clients": [{"hosts": ["10.0.0.0/8"], "access": "rw"},
                                                       {"hosts": ["192.168.9.9"], "access": "rw", "squash": "none"}]}}}
    return [pool_env.pool_manifest(), pool_env.dataset_manifest("media"), source]


def restore(**share):
    return {"apiVersion": "nasd.io/v1alpha1", "kind": "ZSnapshotRestore", "metadata": {"name": "media-check"},
            "spec": {"mode": "clone", "source": {"dataset": "media", "snapshot": SNAP},
                     "target": {"path": "restore/media-check"}, "share": {"protocol": "nfs", "name": "media-check",
                                                                          **share}}}


async def test_a_restore_exports_its_clone_read_only_to_the_source_shares_clients(pool_env, nfs_exports, make_nasd):
    folder = pool_env.root / "manifests"
    base = docs(pool_env)
    pool_env.write_manifests(folder, *base)
    nasd = await make_nasd([folder], plugins={"zfs": {"mountRoot": str(pool_env.mount_root)},
                                              "nfs": nfs_exports.settings()})
    await converge(nasd)
    subprocess.run(["zfs", "snapshot", f"{pool_env.pool_name()}/media@{SNAP}"], check=True)
    nasd.feed.replace("manifests", [parse_resource(d) for d in [*base, restore(fsid=22)]])
    await converge(nasd)
    share = nasd.reconciler.current[("NASShare", "media-check-share")]
    assert share.ready, share.condition("Ready")
    clone = nasd.reconciler.current[("ZDataset", "media-check-clone")].status.mountpoint
    assert share.status.exportLine == (
        f"{clone} 10.0.0.0/8(ro,sync,no_subtree_check,crossmnt,root_squash,sec=sys,fsid=22) "
        "192.168.9.9(ro,sync,no_subtree_check,crossmnt,no_root_squash,sec=sys,fsid=22)")
    assert nfs_exports.exported()[clone] == {"10.0.0.0/8", "192.168.9.9"}

    nasd.feed.replace("manifests", [parse_resource(d) for d in base])  # the restore goes: so does its export
    await converge(nasd)
    assert clone not in nfs_exports.exported() and len(nfs_exports.exported()) == 1


async def test_an_nfs_restore_of_a_dataset_without_an_nfs_share_says_so(pool_env, nfs_exports, make_nasd):
    folder = pool_env.root / "manifests"
    base = docs(pool_env)[:2]
    pool_env.write_manifests(folder, *base, restore())
    nasd = await make_nasd([folder], plugins={"zfs": {"mountRoot": str(pool_env.mount_root)},
                                              "nfs": nfs_exports.settings()})
    await converge(nasd)
    ready = nasd.reconciler.current[("ZSnapshotRestore", "media-check")].condition("Ready")
    assert (ready.status, ready.reason) == ("False", "NoSourceShare") and "no NFS share" in ready.message
