"""Snapshot commands the snapshots plugin asks for (through core hooks): one listing for all
datasets, batched destruction, holds. Each uses the fewest commands the ZFS dialect allows."""

from __future__ import annotations

import asyncio
from collections import defaultdict

from nasd.plugin import CommandError, Context, PermanentError, SnapshotInfo, SnapshotListing

from .dialect import Dialect
from .parse import zfs_rows

#: names per `zfs destroy ds@a,b,c` (the command line stays far below ARG_MAX)
DESTROY_BATCH = 200


def parse_snapshot_get(text: str, properties: list[str]) -> tuple[list[SnapshotInfo], list[str]]:
    """`zfs get -H -p -o name,property,value,source creation,userrefs,PROPS -r ...` -> (snapshots, file systems).

    zfs-fuse cannot leave file systems out (no ``-t``): their rows name the file systems seen. A user
    property counts only where it was set on the snapshot itself (source local or received), never
    where it is inherited from its dataset: a hand-made snapshot must not pass for a schedule's."""
    snaps: dict[str, SnapshotInfo] = {}
    filesystems: list[str] = []
    seen_fs: set[str] = set()
    wanted = {p: p for p in properties}
    # one string object for each dataset name and each property value, shared by the snapshots that repeat it
    # (thousands of snapshots name the same few datasets and schedules: a copy each costs a megabyte per 10,000)
    shared: dict[str, str] = {}
    rows, bad = zfs_rows(text, 4)
    if bad:  # a forged row could make a snapshot that is not there count for retention, and a real one go
        name, why = sorted(bad.items())[0]
        raise PermanentError(f"what zfs printed for {name} cannot be trusted ({why}); nothing is pruned until the "
                             f"value is fixed (`zfs get all {name}`, then `zfs inherit` it)", reason="UnreadableProperties")
    for name, prop, value, source in rows:
        if "@" not in name:
            if name not in seen_fs:
                seen_fs.add(name)
                filesystems.append(name)
            continue
        info = snaps.get(name)
        if info is None:
            dataset, snap = name.split("@", 1)
            info = snaps[name] = SnapshotInfo(dataset=shared.setdefault(dataset, dataset), name=snap, created=0)
        if prop == "creation":
            info.created = int(value) if value.isdigit() else 0
        elif prop == "userrefs":
            info.userrefs = int(value) if value.isdigit() else 0
        elif prop in wanted and value != "-" and (source == "local" or source.startswith("received")):
            info.properties[wanted[prop]] = shared.setdefault(value, value)
    return list(snaps.values()), filesystems


def _missing_only(stderr: str) -> bool:
    lines = [ln for ln in stderr.split("\n") if ln.strip()]
    return all("does not exist" in ln for ln in lines)


async def list_snapshots(ctx: Context, dialect: Dialect, roots: list[str], properties: list[str]) -> SnapshotListing:
    listing = SnapshotListing(roots=sorted(set(roots)))
    if not roots:
        return listing
    props = [p for p in properties if ":" in p]
    get = ["zfs", "get", "-H", "-p", "-o", "name,property,value,source", "-r"]
    if dialect.get_types:
        get += ["-t", "snapshot,filesystem"]
    get += [",".join(["creation", "userrefs", *props]), *listing.roots]
    pools = sorted({r.split("/", 1)[0] for r in roots})
    origins = ["zfs", "list", "-H", "-o", ",".join(["name", "origin", "mountpoint", *props]), "-t", "filesystem",
               "-r", *pools]
    got, orig = await asyncio.gather(
        ctx.runner.run(get, mutating=False, check=False), ctx.runner.run(origins, mutating=False, check=False)
    )
    for result in (got, orig):
        if result.returncode != 0 and not _missing_only(result.stderr):
            raise CommandError(result.argv, result.returncode, result.stdout, result.stderr)
    listing.snapshots, listing.filesystems = parse_snapshot_get(got.stdout, props)
    listing.roots = [r for r in listing.roots if r in set(listing.filesystems)]
    by_name = {s.full_name: s for s in listing.snapshots}
    rows, bad = zfs_rows(orig.stdout, 3 + len(props))
    if bad:
        name, why = sorted(bad.items())[0]
        raise PermanentError(f"what zfs printed for {name} cannot be trusted ({why}); nothing is pruned until the "
                             f"value is fixed (`zfs get all {name}`, then `zfs inherit` it)", reason="UnreadableProperties")
    for parts in rows:
        listing.mountpoints[parts[0]] = parts[2]
        own = {p: v for p, v in zip(props, parts[3:]) if v != "-"}
        if own:
            listing.filesystem_properties[parts[0]] = own
        if "@" in parts[1]:
            listing.origins[parts[0]] = parts[1]
            if parts[1] in by_name:
                by_name[parts[1]].clones.append(parts[0])
    return listing


def snapshot_commands(dialect: Dialect, datasets: list[str], name: str, recursive: bool,
                      properties: dict[str, str]) -> list[list[str]]:
    """`zfs snapshot` for ``datasets@name`` taken together: one command for all of them where the dialect
    takes several (atomically), otherwise one per dataset; ``-r`` when they are given as subtree roots."""
    opts: list[str] = []
    for k, v in properties.items():
        opts += ["-o", f"{k}={v}"]
    flags = ["-r"] if recursive else []
    targets = [f"{ds}@{name}" for ds in datasets]
    if dialect.multi_snapshot or len(targets) == 1:
        return [["zfs", "snapshot", *flags, *opts, *targets]]
    return [["zfs", "snapshot", *flags, *opts, t] for t in targets]


def destroy_commands(dialect: Dialect, snapshots: list[str], listing: SnapshotListing) -> list[list[str]]:
    """The fewest `zfs destroy` commands that remove exactly ``snapshots``.

    OpenZFS: one ``zfs destroy ds@a,b,c`` per dataset (in batches of DESTROY_BATCH names).
    zfs-fuse (no comma lists): ``zfs destroy -r root@name`` where every snapshot called ``name`` in
    the subtree of ``root`` (which the listing covers) is to go, otherwise one command per snapshot.
    """
    wanted: dict[str, list[str]] = defaultdict(list)  # dataset -> names, in the given order
    for full in dict.fromkeys(snapshots):
        dataset, name = full.split("@", 1)
        wanted[dataset].append(name)
    commands: list[list[str]] = []
    if dialect.comma_destroy:
        for dataset, names in wanted.items():
            for i in range(0, len(names), DESTROY_BATCH):
                commands.append(["zfs", "destroy", f"{dataset}@{','.join(names[i:i + DESTROY_BATCH])}"])
        return commands
    doomed: dict[str, set[str]] = defaultdict(set)  # snapshot name -> datasets where it goes
    for dataset, names in wanted.items():
        for name in names:
            doomed[name].add(dataset)
    existing: dict[str, set[str]] = defaultdict(set)  # snapshot name -> datasets that have it
    for s in listing.snapshots:
        existing[s.name].add(s.dataset)
    for name, datasets in doomed.items():
        have = existing.get(name, set())
        chosen: list[str] = []
        for dataset in sorted(datasets, key=lambda d: (d.count("/"), d)):
            if any(dataset.startswith(r + "/") for r in chosen):
                continue  # inside a subtree already taken with -r
            below = [d for d in have if d.startswith(dataset + "/")]
            if below and listing.covers(dataset) and all(d in datasets for d in below):
                chosen.append(dataset)
                commands.append(["zfs", "destroy", "-r", f"{dataset}@{name}"])
            else:
                commands.append(["zfs", "destroy", f"{dataset}@{name}"])
    return commands


async def destroy_snapshots(ctx: Context, dialect: Dialect, snapshots: list[str], listing: SnapshotListing) -> int:
    commands = destroy_commands(dialect, snapshots, listing)
    for argv in commands:
        await ctx.runner.run(argv, mutating=True)
    return len(commands)


async def hold(ctx: Context, dialect: Dialect, snapshots: list[str], tag: str) -> bool:
    if not dialect.holds:
        return False
    for snap in snapshots:  # one at a time: a hold already there fails the whole command
        result = await ctx.runner.run(["zfs", "hold", tag, snap], mutating=True, check=False)
        if result.returncode != 0 and "already exists" not in result.stderr:
            raise CommandError(result.argv, result.returncode, result.stdout, result.stderr)
    return True


async def release(ctx: Context, dialect: Dialect, snapshots: list[str], tag: str) -> bool:
    if not dialect.holds:
        return True
    for snap in snapshots:
        result = await ctx.runner.run(["zfs", "release", tag, snap], mutating=True, check=False)
        if result.returncode != 0 and not any(m in result.stderr for m in ("no such tag", "does not exist")):
            raise CommandError(result.argv, result.returncode, result.stdout, result.stderr)
    return True
