"""Pure planning: from a pool's or dataset's spec and what was observed, the commands that converge it.

Nothing here runs a command or reads a file; every function takes models and an
observation and returns a :class:`nasd.plugin.Plan`.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from typing import Any

from nasd.plugin import (CREATE_ONLY, SIZE_PROPERTIES, Action, ConditionChange, Observed, PermanentError, Plan,
                         Problem, TemporaryError, ZDataset, ZPool, normalize)

from .dialect import Dialect
from .mounts import dead_mount, open_dataset_root, read_mounts
from .health import PoolHealth
from .parse import PoolInfo, Props
from .vdevs import AVAILABLE_CONDITION, REFUSED, plan_vdevs

#: the plugin's registered name (its observation is kept under it)
NAME = "zfs"
MANAGED = "nasd.io:managed"
ADOPT_ANNOTATION = "nasd.io/adopt"
#: "false": the dataset is made by someone else (a restore's clone); never `zfs create` it
CREATE_ANNOTATION = "nasd.io/create"
#: properties read for status, besides those a spec sets
STATUS_PROPERTIES = ("mountpoint", "canmount", "used", "available", "referenced", "compressratio", MANAGED)


@dataclass
class ZfsObservation:
    dialect: Dialect
    pools: dict[str, PoolInfo] = field(default_factory=dict)
    datasets: dict[str, Props] = field(default_factory=dict)
    importable: set[str] = field(default_factory=set)
    existing_files: set[str] = field(default_factory=set)
    #: vdev devices or files of pools still to create that already hold data -> what they hold
    device_data: dict[str, str] = field(default_factory=dict)
    #: sizes in bytes of the devices of existing pools and of their specs (vdevs.observe_devices)
    device_sizes: dict[str, int] = field(default_factory=dict)
    mount_root: str = "/mnt"
    declared: dict[str, list[str]] = field(default_factory=dict)  # zfs name -> the ZDatasets declaring it
    restored: dict[str, str] = field(default_factory=dict)  # zfs name -> the ZSnapshotRestore whose clone it is
    #: ZDataset name -> properties other resources need on it (the core's dataset_properties hook)
    contributed: dict[str, dict[str, str]] = field(default_factory=dict)
    #: mountpoint -> (uid, gid, mode) of the folder, for datasets whose spec names an owner
    owners: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    #: datasets whose rows zfs printed cannot be trusted (a value holding a newline) -> why: nasd changes nothing
    #: there and destroys nothing
    untrusted: dict[str, str] = field(default_factory=dict)
    #: datasets the kernel lists as mounted at their mountpoint (their own mount, not a folder at the path)
    mounted: set[str] = field(default_factory=set)
    #: datasets not mounted whose mountpoint holds something a mount would follow or cover -> what it is
    in_the_way: dict[str, str] = field(default_factory=dict)
    #: folders (besides each pool's own mountpoint, and mount_root for pools) mountpoints may be below
    allowed_roots: list[str] = field(default_factory=list)
    #: datasets (pool roots too) listed as mounted whose mount is dead (the ZFS daemon died under it)
    stale: set[str] = field(default_factory=set)
    #: datasets nasd's own `zfs create` made when ZFS stopped before it marked them nasd.io:managed
    interrupted: set[str] = field(default_factory=set)
    #: pools of ZPool resources -> what `zpool status` says of their health (health.py)
    health: dict[str, PoolHealth] = field(default_factory=dict)


def _below(path: str, roots: list[str]) -> bool:
    path = os.path.normpath(path)
    return any(path == os.path.normpath(r) or path.startswith(os.path.normpath(r).rstrip("/") + "/") for r in roots)


def _mountpoint_problem(what: str, path: str, roots: list[str]) -> Problem | None:
    """A manifest may only mount below nasd's own folders: never over /etc or another program's data."""
    if _below(path, roots):
        return None
    return Problem("MountpointNotAllowed", f"{what}: mountpoint {path} is outside {' and '.join(roots)}; a "
                   "manifest may mount only there (or below a folder listed in plugins.zfs.allowedMountpoints "
                   "of nasd's own configuration)")


def _untrusted(name: str, obs: "ZfsObservation") -> Problem | None:
    why = obs.untrusted.get(name)
    if why is None:
        return None
    return Problem("UnreadableProperties", f"what zfs printed for {name} cannot be trusted ({why}); nasd changes "
                   f"and destroys nothing there: find the value with `zfs get all {name}` and `zfs inherit` it")


def _untrusted_below(name: str, obs: "ZfsObservation") -> Problem | None:
    """The first dataset below ``name`` whose rows cannot be trusted (a recursive destroy would take it along)."""
    return next((_untrusted(d, obs) for d in sorted(obs.untrusted) if d.startswith(name + "/")), None)


def observation(observed: Observed) -> ZfsObservation:
    """The plugin's observation; raises why there is none (``control.observe_failure``)."""
    obs = observed.of(NAME, ZfsObservation)
    if obs is None:
        raise TemporaryError("cannot read ZFS state: ZFS state was not observed", reason="ObserveFailed", delay=2.0)
    return obs


def _managed(props: Props) -> bool:
    value, source = props.get(MANAGED, ("-", "-"))
    return value == "true" and source == "local"


#: values ZFS accepts but prints under another name (OpenZFS prints the first name of a value)
_SPELLINGS = {
    "compression": {"gzip-6": "gzip"},
    "acltype": {"posixacl": "posix", "noacl": "off", "disabled": "off"},
    "xattr": {"dir": "on"},
}


def _same(name: str, desired: str, observed: str) -> bool:
    if name in SIZE_PROPERTIES:
        norm = {"none": "0", "-": "0"}
        return norm.get(desired, desired) == norm.get(observed, observed)
    spell = _SPELLINGS.get(name, {})
    return spell.get(desired, desired) == spell.get(observed, observed)


def _unsupported(props: dict[str, str], dialect: Dialect) -> list[str]:
    out = []
    for name, value in props.items():
        if ":" in name:
            continue
        if dialect.properties and name not in dialect.properties:
            out.append(f"{name} (this ZFS, {dialect.name}, has no such property)")
        elif name == "compression" and dialect.compression and value not in dialect.compression:
            out.append(f"compression={value} (this ZFS, {dialect.name}, accepts {', '.join(sorted(dialect.compression))})")
    return out


def _set_actions(target: str, changes: dict[str, str], dialect: Dialect) -> list[Action]:
    if not changes:
        return []
    pairs = [f"{k}={v}" for k, v in changes.items()]
    what = f"set {', '.join(pairs)} on {target}"
    if dialect.multi_set:
        return [Action(what, argv=["zfs", "set", *pairs, target])]
    return [Action(f"set {p} on {target}", argv=["zfs", "set", p, target]) for p in pairs]


def _as_int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def dataset_status(name: str, props: Props | None) -> dict[str, Any]:
    status: dict[str, Any] = {"name": name}
    if props:
        status["mountpoint"] = props.get("mountpoint", (None, ""))[0]
        for key in ("used", "available", "referenced"):
            status[key] = _as_int(props.get(key, (None, ""))[0])
        status["compressratio"] = props.get("compressratio", (None, ""))[0]
    return status


# -- pools -----------------------------------------------------------------------


def _vdev_args(pool: ZPool) -> list[str]:
    args: list[str] = []
    for vdev in pool.spec.vdevs:
        if vdev.type == "stripe":
            args += vdev.devices
        else:
            args += ["raidz" if vdev.type == "raidz1" else vdev.type, *vdev.devices]
    return args


def pool_mountpoint(pool: ZPool, obs: ZfsObservation) -> str:
    return pool.spec.mountpoint or os.path.join(obs.mount_root, pool.name)


def _sparse_file(path: str, size: int) -> Action:
    async def create(ctx: Any) -> None:
        # sized under a temporary name, then linked into place: a kill -9 never leaves a short file
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.nasd-tmp.{os.getpid()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.ftruncate(fd, size)
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)  # never replaces a file that exists
        except FileExistsError:
            pass  # zpool create will judge it
        finally:
            os.unlink(tmp)

    return Action(f"create sparse file {path} ({size} bytes)", func=create)


def plan_pool(pool: ZPool, obs: ZfsObservation) -> Plan:
    name = pool.name
    props = {k: normalize(k, v) for k, v in pool.spec.properties.items()}
    bad = _unsupported(props, obs.dialect)
    if bad:
        return Plan(problem=Problem("UnsupportedProperty", "not supported here: " + "; ".join(bad)))
    if pool.spec.mountpoint:
        outside = _mountpoint_problem(f"pool {name}", pool.spec.mountpoint, [obs.mount_root, *obs.allowed_roots])
        if outside:
            return Plan(problem=outside)
    unreadable = _untrusted(name, obs)
    if unreadable:
        return Plan(problem=unreadable)
    info = obs.pools.get(name)
    if info is None:
        return _plan_new_pool(pool, obs, props)

    plan = Plan()
    root = obs.datasets.get(name, {})
    used, avail = _as_int(root.get("used", (None, ""))[0]), _as_int(root.get("available", (None, ""))[0])
    plan.status = {
        "health": info.state,
        "size": (used + avail) if used is not None and avail is not None else None,
        "free": avail,
        "capacity": f"{round(100 * used / (used + avail))}%" if used is not None and avail else None,
        "mountpoint": root.get("mountpoint", (None, ""))[0],
    }
    disks = plan_vdevs(pool, info, obs, _sparse_file)  # (spec.vdevs edited: replace, attach, add, detach)
    plan.conditions += disks.conditions
    plan.removed_conditions += disks.removed_conditions
    if disks.problem is not None and disks.problem.reason in REFUSED:
        plan.problem = disks.problem
        return plan
    if (disks.actions or disks.conditions) and not _managed(root) \
            and pool.metadata.annotations.get(ADOPT_ANNOTATION) != "true":
        plan.problem = Problem("Unmanaged", f"pool {name} exists but nasd did not create it, so nasd does not change "
                               f"its vdevs; to let nasd manage it, add the annotation {ADOPT_ANNOTATION}: \"true\"")
        return plan
    changes = {k: v for k, v in props.items()
               if not _same(k, v, root.get(k, ("-", ""))[0]) and root.get(k, ("-", ""))[1] != "temporary"}
    if pool.spec.mountpoint and root.get("mountpoint", ("", ""))[0] != pool.spec.mountpoint:
        changes["mountpoint"] = pool.spec.mountpoint
    refused = [f"{k} is {root.get(k, ('-', ''))[0]!r}, the spec asks {v!r}" for k, v in changes.items()
               if k in CREATE_ONLY]
    if refused:
        plan.problem = Problem("CreateOnlyProperty", f"cannot change create-only properties of pool {name}: "
                               + "; ".join(refused) + ". Put the spec back")
        return plan
    if changes and not _managed(root):
        if pool.metadata.annotations.get(ADOPT_ANNOTATION) != "true":
            plan.problem = Problem(
                "Unmanaged",
                f"pool {name} exists but nasd did not create it, so nasd does not change it ("
                + ", ".join(f"{k}={v}" for k, v in changes.items())
                + f"); to let nasd manage it, add the annotation {ADOPT_ANNOTATION}: \"true\"",
            )
            return plan
        changes = {MANAGED: "true", **changes}
    plan.actions += _set_actions(name, changes, obs.dialect)
    if changes and pool.status.observedGeneration == pool.metadata.generation and pool.ready:
        plan.events.append(f"drift corrected on pool {name}: " + ", ".join(f"{k}={v}" for k, v in changes.items()))
    if name in obs.stale:  # (its datasets' dead mounts go with it; each is mounted again by its own plan)
        plan.actions.append(_remount(name, plan.status["mountpoint"], [obs.mount_root, *obs.allowed_roots]))
    plan.actions += disks.actions
    plan.problem = disks.problem
    _full_condition(plan, f"pool {name}", used, avail, pool_full=True)
    if info.state in ("FAULTED", "UNAVAIL", "SUSPENDED", "REMOVED"):
        plan.problem = Problem("PoolUnhealthy", f"pool {name} is {info.state}")
        plan.conditions = [c for c in plan.conditions if c.type != AVAILABLE_CONDITION]  # (it serves nothing)
        plan.removed_conditions.append(AVAILABLE_CONDITION)
    plan.conditions.append(
        ConditionChange("Degraded", info.state == "DEGRADED", "PoolDegraded" if info.state == "DEGRADED" else "Healthy",
                        f"pool {name} is {info.state}")
    )
    return plan


def _plan_new_pool(pool: ZPool, obs: ZfsObservation, props: dict[str, str]) -> Plan:
    name = pool.name
    devices = [d for v in pool.spec.vdevs for d in v.devices]
    missing = [d for d in devices if d not in obs.existing_files and d not in pool.spec.files]
    if missing:
        return Plan(problem=Problem("MissingDevice", f"devices not found: {', '.join(missing)}"))
    mountpoint = pool_mountpoint(pool, obs)
    if name in obs.importable:
        dirs = sorted({os.path.dirname(d) for d in devices})
        argv = ["zpool", "import"] + [x for d in dirs for x in ("-d", d)] + [name]
        return Plan(actions=[Action(f"import existing pool {name}", argv=argv)], status={"mountpoint": None})
    held = {d: obs.device_data[d] for d in devices if d in obs.device_data}
    if held and not pool.spec.overwriteDevices:
        d, what = next(iter(held.items()))
        return Plan(problem=Problem("DeviceHoldsData", f"{d} holds {what}: nasd creates no pool over data; if it may "
                                    "be overwritten, say so with spec.overwriteDevices: true"))
    plan = Plan()
    for path, size in pool.spec.files.items():
        if path not in obs.existing_files:
            plan.actions.append(_sparse_file(path, size))
    argv = ["zpool", "create", "-m", mountpoint, "-O", f"{MANAGED}=true"]
    for k, v in props.items():
        argv += ["-O", f"{k}={v}"]
    argv += [name, *_vdev_args(pool)]
    plan.actions.append(Action(f"create pool {name}", argv=argv))
    plan.status = {"mountpoint": mountpoint, "health": "ONLINE"}
    return plan


def plan_pool_absent(pool: ZPool, obs: ZfsObservation) -> Plan:
    name = pool.name
    if pool.spec.deletionPolicy != "Destroy" or name not in obs.pools:
        return Plan()  # Retain: stop managing, keep the pool and its data
    unreadable = _untrusted(name, obs) or _untrusted_below(name, obs)
    if unreadable:
        return Plan(problem=unreadable)
    root = obs.datasets.get(name, {})
    if not _managed(root):
        return Plan(problem=Problem("Unmanaged", f"pool {name} was not created by nasd; destroy it by hand"))
    children = sorted(d for d in obs.datasets if d.startswith(name + "/"))
    declared = sorted(d for d in obs.declared if d == name or d.startswith(name + "/"))
    if declared:
        return Plan(problem=Problem("StillDeclared", f"pool {name} holds datasets still declared ({declared[0]}, by "
                                    f"ZDataset {obs.declared[declared[0]][0]}); delete those first"))
    if children and not pool.spec.destroyRecursive:
        return Plan(problem=Problem(
            "HasChildren",
            f"pool {name} holds {len(children)} datasets; set destroyRecursive: true to "
            "destroy them with the pool",
        ))
    plan = Plan(actions=[] if pool.spec.destroyRecursive else [_refuse_if_volumes_or_snapshots(name)])
    plan.actions.append(Action(f"destroy pool {name}", argv=["zpool", "destroy", name]))
    vdev_files = {os.path.normpath(d) for v in obs.pools[name].vdevs for d in v.devices}
    for path in pool.spec.files:
        if os.path.normpath(path) in vdev_files:  # only the pool's own files, never another one listed since
            plan.actions.append(_remove_file(path))
    return plan


def blocking_clones(name: str, obs: ZfsObservation) -> list[tuple[str, str]]:
    """Clones outside ``name``'s subtree made from a snapshot inside it: (clone, origin snapshot)."""
    out = []
    for fs, props in obs.datasets.items():
        origin = props.get("origin", ("-", "-"))[0]
        if "@" not in origin or fs == name or fs.startswith(name + "/"):
            continue
        base = origin.split("@", 1)[0]
        if base == name or base.startswith(name + "/"):
            out.append((fs, origin))
    return sorted(out)


def _refuse_if_snapshots(name: str) -> Action:
    return _refuse_if_listed(f"dataset {name} has", name, "snapshot", ["-d", "1"], "snapshots", "HasSnapshots")


def _refuse_if_volumes_or_snapshots(pool: str) -> Action:
    return _refuse_if_listed(f"pool {pool} holds", pool, "filesystem,volume,snapshot", [], "volumes or snapshots",
                             "HasChildren")


def _refuse_if_listed(subject: str, target: str, types: str, depth: list[str], kinds: str, reason: str) -> Action:
    """The observation lists file systems only: just before a destroy without destroyRecursive, list the
    ``kinds`` it would take along (other than file systems) and refuse when there are any."""

    async def check(ctx: Any) -> None:
        result = await ctx.runner.run(["zfs", "list", "-H", "-o", "name,type", "-t", types, "-r", *depth, target],
                                      mutating=False)
        found = [line.split("\t")[0] for line in result.stdout.split("\n")
                 if line.count("\t") == 1 and line.split("\t")[1] != "filesystem"]
        if found:
            raise PermanentError(f"{subject} {len(found)} {kinds} (e.g. {found[0]}); set destroyRecursive: true "
                                 "to destroy them with it", reason=reason)

    return Action(f"check that {subject} no {kinds}", func=check)


def _remove_file(path: str) -> Action:
    async def remove(ctx: Any) -> None:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass

    return Action(f"remove vdev file {path}", func=remove)


# -- datasets ----------------------------------------------------------------------


def plan_dataset(ds: ZDataset, pool: ZPool | None, obs: ZfsObservation) -> Plan:
    name = ds.zfs_name
    others = [n for n in obs.declared.get(name, []) if n != ds.name]
    if others:
        return Plan(problem=Problem("Conflict", f"ZDataset {others[0]} declares the same dataset {name}"))
    props = {k: normalize(k, v) for k, v in ds.spec.properties.items()}
    bad = _unsupported(props, obs.dialect)
    if bad:
        return Plan(problem=Problem("UnsupportedProperty", "not supported here: " + "; ".join(bad)))
    if ds.spec.pool not in obs.pools and not (pool is not None and pool.ready):
        # (a pool made earlier in this very pass is Ready but not in the observation yet)
        raise TemporaryError(f"pool {ds.spec.pool} is not imported", reason="PoolNotReady")
    roots = _dataset_roots(ds, pool, obs)
    if ds.spec.mountpoint:
        outside = _mountpoint_problem(f"dataset {name}", ds.spec.mountpoint, roots)
        if outside:
            return Plan(problem=outside)
    unreadable = _untrusted(name, obs)
    if unreadable:
        return Plan(problem=unreadable)
    observed = obs.datasets.get(name)
    if observed is None and ds.metadata.annotations.get(CREATE_ANNOTATION) == "false":
        # retried (with backoff): whoever makes it (a restore clones again) will have by then
        raise TemporaryError(
            f"dataset {name} does not exist, and this resource only adopts it ({CREATE_ANNOTATION}: \"false\", "
            "e.g. the clone of a restore, which the restore makes)", reason="NotFound", delay=1.0)
    if observed is None:
        argv = ["zfs", "create", "-o", f"{MANAGED}=true"]
        if ds.spec.mountpoint:
            argv += ["-o", f"mountpoint={ds.spec.mountpoint}"]
        for k, v in props.items():
            argv += ["-o", f"{k}={v}"]
        argv.append(name)
        parent = name.rsplit("/", 1)[0]
        parent_mount = obs.datasets.get(parent, {}).get("mountpoint", (None, ""))[0]
        if parent_mount is None and pool is not None:
            parent_mount = pool.status.mountpoint or pool_mountpoint(pool, obs)
        mountpoint = ds.spec.mountpoint or (
            os.path.join(parent_mount, name.rsplit("/", 1)[1]) if parent_mount and parent_mount.startswith("/")
            else None
        )
        status = {"name": name, "mountpoint": mountpoint}
        check = [_refuse_if_in_the_way(mountpoint, roots)] if mountpoint else []
        owner = [_new_owner(ds, mountpoint)] if ds.spec.owner is not None and mountpoint else []
        return Plan(actions=[*check, Action(f"create dataset {name}", argv=argv), *owner], status=status)

    plan = Plan(status=dataset_status(name, observed))
    pool_root = obs.datasets.get(ds.spec.pool, {})
    _full_condition(plan, f"dataset {name}", _as_int(observed.get("used", (None, ""))[0]),
                    _as_int(observed.get("available", (None, ""))[0]),
                    pool_full=_is_full(_as_int(pool_root.get("used", (None, ""))[0]),
                                       _as_int(pool_root.get("available", (None, ""))[0])))
    if not _managed(observed) and name in obs.interrupted:
        plan.events.append(f"{name} was made by nasd's `zfs create` when ZFS stopped, before it was marked as "
                           "nasd's: marked now, and its properties set")
        plan.actions += _set_actions(name, {MANAGED: "true"}, obs.dialect)
    elif not _managed(observed):
        if ds.metadata.annotations.get(ADOPT_ANNOTATION) != "true":
            plan.problem = Problem(
                "Unmanaged",
                f"dataset {name} exists but nasd did not create it, so nasd leaves it alone; "
                f"to let nasd manage it, add the annotation {ADOPT_ANNOTATION}: \"true\"",
            )
            return plan
        plan.actions += _set_actions(name, {MANAGED: "true"}, obs.dialect)

    refused = []
    changes: dict[str, str] = {}
    for k, v in props.items():
        have, source = observed.get(k, ("-", ""))
        if _same(k, v, have) or source == "temporary":
            # "temporary": ZFS shows a mount option, not the stored value (zfs-fuse reports every readonly
            # dataset as "off temporary" while refusing writes): setting it again would change nothing
            continue
        if k in CREATE_ONLY:
            refused.append(f"{k} is {have!r}, the spec asks {v!r}")
        else:
            changes[k] = v
    if ds.spec.mountpoint and observed.get("mountpoint", ("", ""))[0] != ds.spec.mountpoint:
        changes["mountpoint"] = ds.spec.mountpoint
    if refused:
        plan.problem = Problem(
            "CreateOnlyProperty",
            f"cannot change create-only properties of {name}: {'; '.join(refused)}. "
            "Put the spec back, or create a new dataset with these properties and move the data",
        )
        return plan  # nothing is half-applied
    if changes and ds.status.observedGeneration == ds.metadata.generation and ds.ready:
        plan.events.append(
            f"drift corrected on {name}: "
            + ", ".join(f"{k} was {observed.get(k, ('-', ''))[0]}, set back to {v}" for k, v in changes.items())
        )
    if "mountpoint" in changes:  # (zfs mounts it there at once)
        plan.actions.append(_refuse_if_in_the_way(changes["mountpoint"], roots))
    plan.actions += _set_actions(name, changes, obs.dialect)
    if "mountpoint" in changes or "canmount" in changes:
        return plan  # (the pass that sees it mounted there checks the mount and sets the owner)
    mountpoint = observed.get("mountpoint", ("", ""))[0]
    if mountpoint.startswith("/") and not _below(mountpoint, roots):
        plan.problem = _mountpoint_problem(f"dataset {name}", mountpoint, roots)
        return plan  # mounted (or to be mounted) somewhere else, set by hand: nothing is mounted, chowned or shared
    if name in obs.stale:
        plan.actions.append(_remount(name, mountpoint, roots))
        plan.problem = Problem("NotMounted", f"the mount of {name} at {mountpoint} was dead (the ZFS daemon stopped "
                               "while it was mounted): nasd mounts it again; the data is in the dataset, untouched")
        return plan
    if mountpoint.startswith("/") and observed.get("canmount", ("on", ""))[0] == "on" and name not in obs.mounted:
        # not mounted (a restart of zfs-fuse mounts nothing; a mount can fail): mount it, and until its own mount
        # is there the dataset is not Ready, so no share serves whatever is at the path instead
        blocker = obs.in_the_way.get(name)
        if blocker:  # a mount follows a link: it would cover the folder it points to, wherever that is
            plan.problem = Problem("NotMounted", f"dataset {name} is not mounted: {mountpoint} is {blocker}; nasd "
                                   "never mounts over it (remove it, and nasd mounts the dataset there)")
            return plan
        plan.actions.append(_mount(name, mountpoint, roots))
        plan.problem = Problem("NotMounted", f"dataset {name} is not mounted at {mountpoint}: nasd mounts it; if "
                               "that fails, see why in the error (a folder not empty, the pool full)")
        return plan
    owner = _owner_actions(ds, observed, obs)
    if isinstance(owner, Problem):
        plan.problem = owner
    else:
        plan.actions += owner
    return plan


def in_the_way(path: str, roots: list[str] | tuple[str, ...] = ()) -> str | None:
    """What on the way to ``path`` a mount must not go over or through: a link anywhere along it below the
    deepest of ``roots`` it lies in (the mount would follow it, to wherever it points; the folders up to a root
    are the admin's), or anything but a folder; None when the path is plain folders (or not there yet: zfs
    makes the missing folders)."""
    base = max((os.path.normpath(r) for r in roots if _below(path, [r])), key=len, default="/")
    current = base
    for part in [p for p in os.path.relpath(path, base).split("/") if p and p != "."]:
        current = os.path.join(current, part)
        try:
            st = os.lstat(current)
        except FileNotFoundError:
            return None
        except OSError as e:
            return f"unreadable at {current} ({e.strerror})"
        if stat.S_ISLNK(st.st_mode):
            return f"reached through a symbolic link ({current})" if current != path else "a symbolic link"
        if not stat.S_ISDIR(st.st_mode):
            return f"not a folder ({current})" if current != path else "not a folder"
    return None


def _refuse_if_in_the_way(mountpoint: str, roots: list[str]) -> Action:
    """Just before a command that mounts (create, a new mountpoint, mount): nothing on the path may be a link."""
    async def check(ctx: Any) -> None:
        blocker = in_the_way(mountpoint, roots)
        if blocker:
            raise PermanentError(f"{mountpoint} is {blocker}: nasd never mounts over or through it (remove it)",
                                 reason="MountpointInTheWay")

    return Action(f"check that nothing is in the way at {mountpoint}", func=check)


def _mount(name: str, mountpoint: str, roots: list[str]) -> Action:
    async def mount(ctx: Any) -> None:
        blocker = in_the_way(mountpoint, roots)  # checked again at the last moment
        if blocker:
            raise PermanentError(f"{mountpoint} is {blocker}: nasd never mounts over it", reason="NotMounted")
        await ctx.runner.run(["zfs", "mount", name], mutating=True)

    return Action(f"mount dataset {name} at {mountpoint}", func=mount)


def _remount(name: str, mountpoint: str, roots: list[str]) -> Action:
    """Mount ``name`` again where its dead mount is (the ZFS daemon died under it): detach the dead mount
    (gone already when a parent's was detached, which takes those below along), then `zfs mount`."""
    async def remount(ctx: Any) -> None:
        if mountpoint in read_mounts() and dead_mount(mountpoint):
            await ctx.runner.run(["umount", "-l", mountpoint], mutating=True)
        blocker = in_the_way(mountpoint, roots)
        if blocker:
            raise PermanentError(f"{mountpoint} is {blocker}: nasd never mounts over it", reason="NotMounted")
        await ctx.runner.run(["zfs", "mount", name], mutating=True)

    return Action(f"mount {name} again at {mountpoint} (its mount was dead)", func=remount)


def _is_full(used: int | None, avail: int | None) -> bool:
    """Nothing left to write: no space, or at most 0.1% of it (1 GiB at most) free."""
    if used is None or avail is None:
        return False
    return avail <= min((used + avail) // 1000, 1 << 30)


def _full_condition(plan: Plan, what: str, used: int | None, avail: int | None, pool_full: bool) -> None:
    """Condition ``Full`` while a pool or dataset has no room left (Ready is left alone: what frees space, such as
    the snapshot schedule's pruning and the shares clients delete through, must go on); removed once there is."""
    if not (_is_full(used, avail) if what.startswith("pool") else avail == 0 or (pool_full and avail is not None)):
        plan.removed_conditions.append("Full")
        return
    if pool_full:
        plan.conditions.append(ConditionChange("Full", True, "PoolFull", (
            f"{what} has no space left ({avail} bytes free): clients get 'No space left on device' and nasd cannot "
            "create datasets or set properties in this pool; free space (delete files, or old snapshots: `zfs list "
            "-t snapshot -o name,used -s used`) or add a vdev; this clears by itself once there is room")))
    else:
        plan.conditions.append(ConditionChange("Full", True, "QuotaReached", (
            f"{what} has reached its quota ({used} bytes used, none free): writes to it fail with 'Disk quota "
            "exceeded' or 'No space left on device'; raise its quota in the spec or delete files or snapshots in it; "
            "this clears by itself once there is room")))


def _dataset_roots(ds: ZDataset, pool: ZPool | None, obs: ZfsObservation) -> list[str]:
    """Where ``ds`` may be mounted: below its pool's mountpoint (or a folder nasd's configuration allows)."""
    pool_root = obs.datasets.get(ds.spec.pool, {}).get("mountpoint", ("", ""))[0]
    if not pool_root.startswith("/"):
        pool_root = (pool.status.mountpoint or pool_mountpoint(pool, obs)) if pool is not None \
            else os.path.join(obs.mount_root, ds.spec.pool)
    return [pool_root, *obs.allowed_roots]


def _new_owner(ds: ZDataset, mountpoint: str) -> Action:
    """The owner of a dataset just created, in the pass that creates it (so it is never Ready, and its share never
    served, with a folder only root may write to): only when the folder is that dataset's own mount, owned by root
    (as `zfs create` makes it); otherwise the pass after the mount sets it, as for an existing dataset."""
    owner = ds.spec.owner
    assert owner is not None

    async def apply(ctx: Any) -> None:
        try:
            fd = open_dataset_root(mountpoint, ds.zfs_name)
        except (OSError, LookupError):
            return  # (not mounted there yet: the pass that sees it mounted sets the owner)
        try:
            st = os.fstat(fd)
            if st.st_uid != 0:
                return  # (the next pass says why it is not handed over)
            os.fchown(fd, owner.uid, st.st_gid if owner.gid is None else owner.gid)
            os.fchmod(fd, stat.S_IMODE(st.st_mode) if owner.mode is None else int(owner.mode, 8))
        finally:
            os.close(fd)

    return Action(f"set the owner of the new {mountpoint} to {owner.uid}", func=apply)


def _owner_actions(ds: ZDataset, observed: Props, obs: ZfsObservation) -> list[Action] | Problem:
    """chown/chmod the dataset's mounted top folder when it differs from spec.owner (nothing else below).

    The owner is given away only by root (a new dataset's folder): a folder someone else owns already is
    never handed to another uid (say, a retained per-user dataset and a new account reusing the name),
    that is a Problem. The mode is set back whenever it differs."""
    owner = ds.spec.owner
    mountpoint = observed.get("mountpoint", ("", ""))[0]
    have = obs.owners.get(mountpoint)
    if owner is None or have is None or ds.zfs_name not in obs.mounted:
        return []  # no owner asked, or not its own mount (yet): the pass after the mount does it
    uid, gid, mode = have
    if uid not in (0, owner.uid):
        return Problem("OwnerConflict", f"{mountpoint} belongs to uid {uid}, the spec says {owner.uid}: nasd hands "
                                        "over only folders root owns; chown it by hand if that is meant")
    want_gid = gid if owner.gid is None else owner.gid
    want_mode = mode if owner.mode is None else int(owner.mode, 8)
    if (uid, gid, mode) == (owner.uid, want_gid, want_mode):
        return []

    async def apply(ctx: Any) -> None:
        # the folder must still be the dataset's own mount at this moment (no symlink followed, the kernel's
        # device for that dataset's mount): never chown what lies at a path the mount left or never reached
        try:
            fd = open_dataset_root(mountpoint, ds.zfs_name)
        except (OSError, LookupError) as e:
            raise TemporaryError(f"{mountpoint} is not the mount of {ds.zfs_name} any more ({e}); the owner is "
                                 "set once it is", reason="NotMounted") from None
        try:
            os.fchown(fd, owner.uid, want_gid)
            os.fchmod(fd, want_mode)
        finally:
            os.close(fd)

    return [Action(f"set the owner of {mountpoint} to {owner.uid}:{want_gid}, mode {want_mode:04o}", func=apply)]


def plan_dataset_absent(ds: ZDataset, obs: ZfsObservation) -> Plan:
    name = ds.zfs_name
    observed = obs.datasets.get(name)
    if ds.spec.deletionPolicy != "Destroy":
        return Plan()  # Retain: stop managing, keep the data
    unreadable = _untrusted(name, obs) or (_untrusted_below(name, obs)
        if ds.spec.destroyRecursive else None)
    if unreadable:
        return Plan(problem=unreadable)
    if observed is None:
        return Plan()
    if obs.declared.get(name) or name in obs.restored:  # e.g. renamed, or a restore's clone: still wanted
        return Plan()
    below = sorted(d for d in obs.declared if d.startswith(name + "/"))
    if below and ds.spec.destroyRecursive:
        return Plan(problem=Problem("StillDeclared", f"{below[0]} below {name} is still declared (by ZDataset "
                                    f"{obs.declared[below[0]][0]}); delete it first or move it out"))
    if not _managed(observed):
        return Plan(problem=Problem("Unmanaged", f"dataset {name} was not created by nasd; it is left alone"))
    children = sorted(d for d in obs.datasets if d.startswith(name + "/"))
    blockers = blocking_clones(name, obs)
    if blockers:
        # `zfs destroy` would fail on every pass: say which clone blocks it and wait for a change instead
        clone, origin = blockers[0]
        more = f" (and {len(blockers) - 1} more)" if len(blockers) > 1 else ""
        return Plan(problem=Problem(
            "BlockedByClone",
            f"dataset {name} cannot be destroyed: its snapshot {origin} has the clone {clone}{more}; "
            "delete that clone (or the ZSnapshotRestore that made it) first",
        ))
    if not ds.spec.destroyRecursive:
        # the observation lists file systems only; `zfs destroy` without -r would refuse snapshots anyway,
        # but checking first keeps a refusal out of the mutating commands and says what to do
        if children:
            return Plan(problem=Problem(
                "HasChildren",
                f"dataset {name} has {len(children)} child datasets; set destroyRecursive: true to destroy them too",
            ))
        return Plan(actions=[_refuse_if_snapshots(name)] + _unmount_first(name, obs) + [
            Action(f"destroy dataset {name}", argv=["zfs", "destroy", name])])
    return Plan(actions=[
        Action(f"destroy dataset {name} with its children and snapshots", argv=["zfs", "destroy", "-r", name])])


def _unmount_first(name: str, obs: ZfsObservation) -> list[Action]:
    # zfs-fuse answers "dataset is busy" to a destroy of a mounted dataset (then succeeds on retry);
    # unmounting first saves the retry. OpenZFS unmounts as part of the destroy.
    if obs.dialect.name != "zfs-fuse":
        return []
    return [Action(f"unmount {name}", argv=["zfs", "umount", name])]
