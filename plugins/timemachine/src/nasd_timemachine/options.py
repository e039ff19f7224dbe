"""Which smb.conf parameters Time Machine needs: pure functions of the shares, no I/O.

Samba's vfs_fruit serves Apple's SMB extensions. The first share a Mac opens decides whether they
are on for the whole session, so once any share on the server is a Time Machine share, every share
gets the same fruit stack (it changes nothing for Windows and Linux clients, which do not ask for
the extensions). Streams (resource forks, Finder info) are the SMB plugin's: every share has them.
"""

from __future__ import annotations

from nasd.plugin import NASShare, NASUser, ZDataset

#: server-wide fruit settings ([global]): what the vfs_fruit manual and the peers' Time Machine presets use
GLOBAL = {
    "fruit:aapl": "yes",
    "fruit:nfs_aces": "no",
    "fruit:copyfile": "yes",
}
DEFAULT_MODEL = "MacSamba"

#: per share, on every share once one is a Time Machine share
PER_SHARE = {
    "fruit:metadata": "stream",
    "fruit:posix_rename": "yes",
    "fruit:veto_appledouble": "no",
    "fruit:wipe_intentionally_left_blank_rfork": "yes",
    "fruit:delete_empty_adfiles": "yes",
}


def is_time_machine(share: NASShare) -> bool:
    smb = share.spec.smb
    return share.spec.protocol == "smb" and smb is not None and smb.timeMachine is not None \
        and smb.timeMachine.enabled


def size_text(size: int) -> str:
    """Bytes as Samba writes sizes: the largest exact unit (K, M, G, T), else bytes."""
    for unit, factor in (("T", 1 << 40), ("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)


def global_options(shares: list[NASShare], model: str = DEFAULT_MODEL) -> dict[str, str]:
    if not any(is_time_machine(s) for s in shares):
        return {}
    return {**GLOBAL, "fruit:model": model}


def share_options(share: NASShare, path: str = "") -> dict[str, str]:
    """The fruit stack for ``share`` (at ``path``) on a server where some share is a Time Machine share (the
    SMB plugin gives every share named streams, and a database for them where the file system has no
    extended attributes)."""
    opts = {"vfs objects": "catia fruit", **PER_SHARE}
    if is_time_machine(share):
        opts["fruit:time machine"] = "yes"
        if share.spec.smb.timeMachine.perUserDatasets and path:  # type: ignore[union-attr]
            opts["path"] = f"{path}/%u"  # each Mac's backups in its (authenticated) user's own dataset
        tm = share.spec.smb.timeMachine  # type: ignore[union-attr]
        if tm is not None and tm.maxSize:
            opts["fruit:time machine max size"] = size_text(tm.maxSize)
    return opts


def quotas(shares: list[NASShare]) -> dict[str, dict[str, str]]:
    """``{ZDataset name: {"refquota": bytes}}`` for Time Machine shares with a maxSize: fruit's own limit is
    approximate (it counts the bands of sparse bundles), the quota is exact."""
    out: dict[str, dict[str, str]] = {}
    for s in shares:
        if is_time_machine(s):
            tm = s.spec.smb.timeMachine  # type: ignore[union-attr]
            if tm is not None and tm.maxSize and not tm.perUserDatasets:  # (per user: on each user's dataset)
                out[s.spec.dataset] = {"refquota": str(tm.maxSize)}
    return out


def per_user_datasets(shares: list[NASShare], datasets: dict[str, ZDataset], users: dict[str, NASUser]) -> list[ZDataset]:
    """For each Time Machine share with ``perUserDatasets``: a dataset per valid user below the share's
    dataset, bounded by ``maxSize`` and owned by the user (mode 0700), so that each Mac's backups are
    limited, private and can be snapshotted on their own. Users not declared here are left out."""
    out: list[ZDataset] = []
    for share in shares:
        tm = share.spec.smb.timeMachine if share.spec.smb else None
        parent = datasets.get(share.spec.dataset)
        if not is_time_machine(share) or tm is None or not tm.perUserDatasets or parent is None:
            continue
        for name in sorted(share.spec.smb.validUsers):  # type: ignore[union-attr]
            user = users.get(name)
            if user is None:
                continue
            try:
                out.append(ZDataset.model_validate({
                    "metadata": {"name": f"{share.name}-{name}", "annotations": {"nasd.io/timemachine": share.name}},
                    "spec": {"pool": parent.spec.pool, "path": f"{parent.spec.path}/{name}",
                             "properties": {"refquota": tm.maxSize} if tm.maxSize else {},
                             "owner": {"uid": user.spec.uid, "mode": "0700"}},
                }))
            except ValueError:  # a name too long for a dataset: that user gets none
                continue
    names = [d.name for d in out]
    return [d for d in out if names.count(d.name) == 1]  # (share tm + user a-b, share tm-a + user b: neither)
