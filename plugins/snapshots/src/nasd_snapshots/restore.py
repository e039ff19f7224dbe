"""Planning one ZSnapshotRestore (mode clone): a pure function of the restore, its source dataset and
the snapshot listing.

A restore is a clone of a snapshot as a new dataset, with a hold on the snapshot so that retention
cannot take it while the clone exists, and, when asked, a read-only share of the clone. The clone and
the share are handed to the rest of nasd as ordinary resources (a ZDataset and a NASShare the plugin
feeds as desired state), so the ZFS and SMB plugins manage them like any other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from nasd.plugin import NASShare, Resource, SnapshotInfo, SnapshotListing, ZDataset, ZSnapshotRestore

#: the user property set on a clone: the restore that made it
RESTORE_PROPERTY = "nasd.io:restore"


def hold_tag(restore: ZSnapshotRestore) -> str:
    return f"nasd-restore-{restore.name}"


def clone_name(restore: ZSnapshotRestore, source: ZDataset) -> str:
    return f"{source.spec.pool}/{restore.spec.target.path}"


def pick_snapshot(restore: ZSnapshotRestore, source: str, listing: SnapshotListing) -> SnapshotInfo | None:
    """The named snapshot, or the newest one of the source dataset matching the selector."""
    mine = listing.of(source)
    if restore.spec.source.snapshot is not None:
        return next((s for s in mine if s.name == restore.spec.source.snapshot), None)
    selector = restore.spec.source.selector
    prefix = selector.prefix if selector else None
    matching = [s for s in mine if prefix is None or s.name.startswith(prefix)]
    return max(matching, key=lambda s: (s.created, s.name), default=None)


def derived_resources(restore: ZSnapshotRestore, source: ZDataset, source_share: NASShare | None) -> list[Resource]:
    """The ZDataset standing for the clone and, when asked, its share, whose access is copied from the
    source dataset's share of the same protocol (SMB: its user, group and host lists; NFS: its client
    rules, read-only when the restore share is), so that checking a restore never widens who can
    read the data."""
    spec = restore.spec
    dataset = ZDataset.model_validate({
        # nasd.io/create "false": should the clone go (destroyed by hand), the ZFS plugin must not make an
        # empty dataset in its place; the restore clones it again
        "metadata": {"name": f"{restore.name}-clone",
                     "annotations": {"nasd.io/restore": restore.name, "nasd.io/create": "false"}},
        "spec": {
            "pool": source.spec.pool,
            "path": spec.target.path,
            "properties": {"readonly": "on"} if spec.target.readOnly else {},
            "deletionPolicy": spec.deletionPolicy,
        },
    })
    out: list[Resource] = [dataset]
    if spec.share is None:
        return out
    meta = {"name": f"{restore.name}-share", "annotations": {"nasd.io/restore": restore.name}}
    if spec.share.protocol == "smb":
        smb: dict[str, Any] = {"name": spec.share.name, "readOnly": spec.share.readOnly}
        if source_share is not None and source_share.spec.smb is not None:
            src = source_share.spec.smb
            for key in ("validUsers", "validGroups", "hostsAllow", "hostsDeny", "forceUser", "forceGroup"):
                value = getattr(src, key)
                if value:
                    smb[key] = value
        out.append(NASShare.model_validate({
            "metadata": meta, "spec": {"protocol": "smb", "dataset": dataset.name, "smb": smb}}))
    elif source_share is not None and source_share.spec.nfs is not None:
        src_nfs = source_share.spec.nfs
        clients = [rule.model_dump(exclude_defaults=False) for rule in src_nfs.clients]
        if spec.share.readOnly:
            for rule in clients:
                rule["access"] = "ro"
        nfs: dict[str, Any] = {"clients": clients, "allowWorld": src_nfs.allowWorld}
        if spec.share.fsid is not None:
            nfs["fsid"] = spec.share.fsid
        out.append(NASShare.model_validate({
            "metadata": meta, "spec": {"protocol": "nfs", "dataset": dataset.name, "nfs": nfs}}))
    return out


@dataclass
class RestoreDecision:
    snapshot: SnapshotInfo | None = None
    clone: str = ""
    make_clone: bool = False
    place_hold: bool = False
    derived: list[Resource] = field(default_factory=list)
    status: dict = field(default_factory=dict)
    problem: tuple[str, str] | None = None


def plan_restore(restore: ZSnapshotRestore, source: ZDataset, listing: SnapshotListing,
                 source_share: NASShare | None) -> RestoreDecision:
    decision = RestoreDecision(clone=clone_name(restore, source))
    target = decision.clone
    if restore.spec.share is not None and restore.spec.share.protocol == "nfs" and (
            source_share is None or source_share.spec.nfs is None):
        decision.problem = ("NoSourceShare", "share.protocol nfs: the source dataset has no NFS share to take "
                                             "the client rules from; export the source first, or use smb")
        return decision
    origin = listing.origins.get(target)
    # once cloned, the restore stays with the snapshot it cloned (a newer match does not move it); the
    # clone is known by its property even when the restore's status was lost (a kill -9 after cloning)
    ours = listing.filesystem_properties.get(target, {}).get(RESTORE_PROPERTY) == restore.name
    snap = None
    if origin is not None and origin.split("@", 1)[0] == source.zfs_name and (
            ours or restore.status.snapshot == origin):
        snap = next((s for s in listing.of(source.zfs_name) if s.full_name == origin), None)
    if snap is None:
        snap = pick_snapshot(restore, source.zfs_name, listing)
    if snap is None:
        what = (f"snapshot {restore.spec.source.snapshot}" if restore.spec.source.snapshot
                else "a snapshot matching the selector")
        decision.problem = ("SnapshotNotFound", f"{source.zfs_name} has no {what}")
        return decision
    decision.snapshot = snap
    if target in listing.mountpoints:
        if origin != snap.full_name:
            decision.problem = (
                "TargetExists",
                f"{target} already exists" + (f" (a clone of {origin})" if origin else "")
                + "; a restore never overwrites a dataset: choose another target.path",
            )
            return decision
    else:
        decision.make_clone = True
    held = restore.status.hold == hold_tag(restore) and restore.status.snapshot == snap.full_name
    decision.place_hold = decision.make_clone or not held or snap.userrefs == 0
    decision.derived = derived_resources(restore, source, source_share)
    decision.status = {
        "snapshot": snap.full_name,
        "clone": target,
        "mountpoint": listing.mountpoints.get(target),
        "share": restore.spec.share.name if restore.spec.share else None,
        "hold": hold_tag(restore),
    }
    return decision
