"""What every SMB share gives Windows and macOS clients, by default: pure functions, no I/O.

TrueNAS and Samba's own test shares do the same, and the clients expect it:

- named streams (``streams_xattr``): Windows keeps Zone.Identifier and Office metadata in them,
  macOS its resource forks and Finder info;
- DOS attributes stored (``store dos attributes``: hidden, system, archive, read-only survive);
- Windows ACLs from the Security tab kept (``acl_xattr``; where the file system has POSIX ACLs,
  Samba maps them onto those too, else onto the mode bits as far as they can say the same);
- durable handles (an open file survives a short network drop), which need Samba to keep
  byte-range locks to itself: ``posix locking = no`` (``kernel oplocks`` and ``kernel share modes``
  are already off in Samba 4.17; nasd says so all the same, since they only make sense together).
  A dataset also exported over NFS keeps POSIX locking, so that NFS clients see SMB's locks.

Streams, DOS attributes and NT ACLs live in extended attributes. Where the mounted file system has
none (zfs-fuse), ``xattr_tdb`` keeps them in a database per dataset instead (in Samba's run folder).

The ``vfs objects`` list is nasd's own: modules come from this allowlist only (other plugins add
theirs through ``smb_share_options``), always in the order below, whoever asked for them.
"""

from __future__ import annotations

import hashlib
import re

from nasd.plugin import NASShare

#: the VFS modules a share may get, in the order they must stack (the first sees a request first):
#: catia and fruit translate Apple's names and streams, streams_xattr turns streams into extended
#: attributes, shadow_copy2 maps @GMT paths into snapshots, acl_xattr keeps NT ACLs, and xattr_tdb,
#: last, stores extended attributes where the file system has none
VFS_ORDER = ("catia", "fruit", "streams_xattr", "shadow_copy2", "acl_xattr", "xattr_tdb")


class UnknownModule(ValueError):
    pass


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("yes", "true", "1", "on")


def durable_handles(share: NASShare, nfs_shared: bool) -> bool:
    """Whether ``share`` gets durable handles: as its spec says, else on unless its dataset is also an NFS
    export or its extraParameters keep POSIX locking or kernel share modes on."""
    smb = share.spec.smb
    assert smb is not None
    if smb.durableHandles is not None:
        return smb.durableHandles
    extra = smb.extraParameters
    return not nfs_shared and not _truthy(extra.get("posix locking")) and not _truthy(extra.get("kernel share modes"))


def tdb_name(dataset_zfs_name: str) -> str:
    """The file name of a dataset's xattr database: ``pool/a/b`` -> ``pool_a_b-<hash>.tdb`` (the hash of the
    whole name, so that ``pool/a_b`` gets another file)."""
    plain = re.sub(r"[^A-Za-z0-9_.-]", "_", dataset_zfs_name)[:100]
    return f"{plain}-{hashlib.sha256(dataset_zfs_name.encode()).hexdigest()[:8]}.tdb"


def share_features(share: NASShare, *, xattrs: bool, nfs_shared: bool, tdb_file: str,
                   group_folder: str | None = None) -> dict[str, str]:
    """The parameters that give ``share`` what Windows and macOS clients expect. ``xattrs``: whether the
    dataset's file system stores extended attributes; ``tdb_file``: where they go when it does not;
    ``group_folder``: the group of the dataset's top folder when it is a group folder (setgid).

    With NT ACLs kept, Samba gives a new file the creator's primary group, as Windows does, where a setgid
    folder gives it the folder's group: so on a group folder the members' primary group is the folder's
    (``force group = +<group>``, members only), and what the group may do with new files stays as on POSIX."""
    smb = share.spec.smb
    assert smb is not None
    vfs = []
    if smb.namedStreams:
        vfs.append("streams_xattr")
    opts: dict[str, str] = {"store dos attributes": "yes"}
    if smb.ntACLs:
        vfs.append("acl_xattr")
        if group_folder and not smb.forceGroup:
            opts["force group"] = f"+{group_folder}"
    if not xattrs:  # DOS attributes need a store too, whatever else is off
        vfs.append("xattr_tdb")
        opts["xattr_tdb:file"] = tdb_file
    if durable_handles(share, nfs_shared):
        opts.update({"durable handles": "yes", "kernel oplocks": "no", "kernel share modes": "no",
                     "posix locking": "no"})
    else:
        opts["durable handles"] = "no"
    opts["vfs objects"] = " ".join(vfs)
    return opts


def merge_vfs(*lists: str) -> str:
    """One ``vfs objects`` value from several (space-separated) lists: each module once, in
    :data:`VFS_ORDER`. Raises UnknownModule for a module outside it."""
    wanted = {m for value in lists for m in value.split()}
    unknown = sorted(wanted - set(VFS_ORDER))
    if unknown:
        raise UnknownModule(f"vfs objects: {', '.join(unknown)} is not a module nasd stacks "
                            f"(allowed: {', '.join(VFS_ORDER)})")
    return " ".join(m for m in VFS_ORDER if m in wanted)


def summary(options: dict[str, str], xattrs: bool) -> list[str]:
    """What a share's rendered ``options`` give clients, for its status: ``namedStreams``, ``dosAttributes``,
    ``ntACLs``, ``durableHandles``, ``appleExtensions``, ``previousVersions``, and ``xattrsInDatabase`` where
    the file system has no extended attributes (zfs-fuse)."""
    vfs = options.get("vfs objects", "").split()
    out = []
    if "streams_xattr" in vfs:
        out.append("namedStreams")
    if _truthy(options.get("store dos attributes")):
        out.append("dosAttributes")
    if "acl_xattr" in vfs:
        out.append("ntACLs")
    if _truthy(options.get("durable handles")):
        out.append("durableHandles")
    if "fruit" in vfs:
        out.append("appleExtensions")
    if "shadow_copy2" in vfs:
        out.append("previousVersions")
    if not xattrs:
        out.append("xattrsInDatabase")
    return out
