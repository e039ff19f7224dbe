"""Everything the ZFS plugin runs: dialect detection, the two-command observation, and the
on-demand snapshot and clone commands. All through the core's runner."""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any, Iterable

from nasd.plugin import (CHECKS, CREATE_ONLY, CommandError, Context, PermanentError, Resource, TemporaryError, ZDataset,
                         ZPool, ZSnapshotRestore, validate_properties, write_json)

from .dialect import Dialect, parse_dialect
from .devices import DataChecks
from .mounts import MountProbe, dataset_mounted_at, read_mounts
from .health import PoolHealth, parse_pool_health
from .parse import parse_zfs_get, parse_zpool_import, parse_zpool_status
from .snapshots import snapshot_commands
from .plan import MANAGED, STATUS_PROPERTIES, ZfsObservation, in_the_way
from .vdevs import observe_devices

CACHE_KEY = "zfs"
#: what zfs and zpool print when there is no ZFS to talk to (zfs-fuse not running, the module not loaded)
NOT_RUNNING_MARKERS = ("failed to initialize zfs library", "zfs-fuse daemon is running", "modules are not loaded",
                       "/dev/zfs and /proc/self/mounts are required")
NOT_RUNNING_MESSAGE = ("ZFS is not reachable ({error}): start the ZFS daemon (zfs-fuse: `systemctl start zfs-fuse`; "
                       "kernel ZFS: `modprobe zfs`); nothing is changed meanwhile, and nasd converges by itself once "
                       "ZFS answers (retried with backoff)")


def describe(error: Exception) -> str:
    """An error in one line: a failed command with what it printed."""
    if isinstance(error, CommandError):
        said = "; ".join(ln.strip() for ln in error.stderr.split("\n") if ln.strip())
        return f"{error.argv[0].rsplit('/', 1)[-1]} {' '.join(error.argv[1:2])}: {said or error}"[:400]
    return str(error)[:400]


def not_running(error: Exception) -> bool:
    text = (error.stderr if isinstance(error, CommandError) else str(error)).lower()
    return (isinstance(error, PermanentError) and error.reason == "ZFSNotRunning") or \
        any(m in text for m in NOT_RUNNING_MARKERS)


def observe_failure(error: Exception) -> TemporaryError:
    """What the ZFS resources show when ZFS could not be read: the error, and its reason when it names one."""
    if not_running(error):
        return TemporaryError(NOT_RUNNING_MESSAGE.format(error=describe(error)), reason="ZFSNotRunning", delay=1.0)
    return TemporaryError(f"cannot read ZFS state: {error}", reason="ObserveFailed", delay=2.0)


def _binary_stamp(ctx: Context, program: str) -> list[Any]:
    path = ctx.runner.resolve(program)
    try:
        st = os.stat(path)
        return [path, st.st_size, int(st.st_mtime)]
    except OSError:
        return [path, None, None]


async def detect_dialect(ctx: Context) -> Dialect:
    """Read the usage texts of zfs, `zfs get` and zpool once; cached on disk per binary."""
    stamp = [_binary_stamp(ctx, "zfs"), _binary_stamp(ctx, "zpool")]
    cache_file = ctx.state_dir / "cache" / "zfs-dialect.json"
    try:
        cached = json.loads(cache_file.read_text())
        if cached.get("stamp") == stamp:
            return Dialect.from_json(cached["dialect"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    zfs = await ctx.runner.run(["zfs"], mutating=False, check=False)
    if zfs.returncode == 127:
        raise PermanentError(zfs.stderr, reason="ZFSNotInstalled")
    get = await ctx.runner.run(["zfs", "get"], mutating=False, check=False)
    zpool = await ctx.runner.run(["zpool"], mutating=False, check=False)
    texts = [zfs.stdout + zfs.stderr, get.stdout + get.stderr, zpool.stdout + zpool.stderr]
    if any("failed to initialize ZFS library" in t or "zfs-fuse daemon is running" in t for t in texts):
        raise PermanentError("the ZFS daemon is not running (zfs-fuse) or the module is not loaded",
                             reason="ZFSNotRunning")
    dialect = parse_dialect(*texts)
    try:
        write_json(cache_file, {"stamp": stamp, "dialect": dialect.to_json()})
    except OSError as e:  # a full or read-only state folder: only a cache, detected again next time
        ctx.log.warning("cannot cache the ZFS dialect in %s: %s (it is detected again at the next start)",
                        cache_file, e.strerror or e)
    return dialect


def contributed_properties(ctx: Context, datasets: list[ZDataset], desired: list[Resource]) -> dict[str, dict[str, str]]:
    """What other plugins need on datasets (``dataset_properties``), validated like a spec's properties;
    an invalid contribution is logged and left out (it must not stop the dataset)."""
    out: dict[str, dict[str, str]] = {}
    for part in ctx.hooks.call("dataset_properties", datasets=datasets, desired=desired):
        for name, props in part.items():
            try:
                checked = validate_properties(dict(props))
            except (ValueError, TypeError) as e:
                ctx.log.error("dataset_properties for %s left out: %s", name, e)
                continue
            bad = sorted(set(checked) & CREATE_ONLY)
            if bad:
                ctx.log.error("dataset_properties for %s left out: %s can only be set at creation", name, bad)
                continue
            out.setdefault(str(name), {}).update({k: str(v) for k, v in checked.items()})
    return out


def _read_properties(dialect: Dialect, desired: Iterable[Resource], contributed: dict[str, dict[str, str]]) -> list[str]:
    wanted = set(STATUS_PROPERTIES)
    for props in contributed.values():
        wanted |= set(props)
    for r in desired:
        props = getattr(r.spec, "properties", None)
        if isinstance(props, dict):
            wanted |= set(props)
    wanted |= {p for p in CHECKS if p in ("compression", "quota", "atime")}
    wanted.add("origin")  # clones: what blocks a destroy
    wanted.add("type")  # (a volume is never taken for a dataset)
    if dialect.properties:
        wanted = {p for p in wanted if ":" in p or p in dialect.properties}
    return sorted(wanted)


def _names(text: str) -> list[str]:
    return [n for n in text.split("\n") if n]


async def observe(ctx: Context, dialect: Dialect, desired: list[Resource], mount_root: str,
                  allowed_roots: list[str] | None = None, probe: MountProbe | None = None,
                  checks: DataChecks | None = None) -> ZfsObservation:
    """Reads that do not grow with the number of datasets: `zpool status` and one `zfs get` (on zfs-fuse, a
    `zfs list` of the file systems first, as its `zfs get` cannot leave snapshots out); and a stat per
    dataset whose spec names an owner. ``probe`` and ``checks`` are the plugin's own (what they remember lasts
    from pass to pass)."""
    checks = checks or DataChecks()
    obs = ZfsObservation(dialect=dialect, mount_root=mount_root, allowed_roots=list(allowed_roots or []))
    by_name = {r.name: r for r in desired if isinstance(r, ZDataset)}
    for r in desired:
        if isinstance(r, ZDataset):
            obs.declared.setdefault(r.zfs_name, []).append(r.name)
        elif isinstance(r, ZSnapshotRestore) and r.spec.source.dataset in by_name:
            # a restore's clone is still wanted while the restore is, whatever became of its ZDataset
            clone = f"{by_name[r.spec.source.dataset].spec.pool}/{r.spec.target.path}"
            obs.restored[clone] = r.name
    obs.contributed = contributed_properties(ctx, list(by_name.values()), desired)
    argv = ["zfs", "get", "-H", "-p", "-o", "name,property,value,source"]
    zpool_status = ["zpool", "status", *(["-P"] if dialect.status_full_paths else [])]
    listing = ["zfs", "list", "-H", "-o", "name", "-t", "filesystem"]  # (names cannot hold a tab or a newline)
    known: set[str] | None = None
    if dialect.get_types:
        # volumes too: a row a value forged for a volume (which nasd must never take for its dataset) is then
        # printed twice, so it is known; snapshots are left out (thousands, and nasd acts on none of them here)
        argv += ["-t", "filesystem,volume", ",".join(_read_properties(dialect, desired, obs.contributed))]
        # both reads at once: the `zfs get` is only used when there are pools
        status, result = await asyncio.gather(
            ctx.runner.run(zpool_status, mutating=False),
            ctx.runner.run(argv, mutating=False, check=False),
        )
    else:
        # zfs-fuse's `zfs get` cannot leave snapshots out, and with thousands of them it takes seconds:
        # name the file systems instead (a listing of file systems alone takes milliseconds)
        status, names = await asyncio.gather(
            ctx.runner.run(zpool_status, mutating=False),
            ctx.runner.run(listing, mutating=False, check=False),
        )
        argv += [",".join(_read_properties(dialect, desired, obs.contributed)), *_names(names.stdout)]
        known = set(_names(names.stdout))  # (here a row naming anything else is forged)
        result = names
        if names.returncode == 0 and names.stdout.strip():
            result = await ctx.runner.run(argv, mutating=False, check=False)
    obs.pools = parse_zpool_status(status.stdout)
    obs.health = await observe_health(ctx, status.stdout, desired, dialect)
    if obs.pools:
        lines = [ln for ln in result.stderr.split("\n") if ln.strip()]
        if result.returncode != 0 and not (lines and all("does not exist" in ln for ln in lines)):
            # (a file system destroyed between the listing and the `zfs get` is only left out)
            raise CommandError(result.argv, result.returncode, result.stdout, result.stderr)
        datasets, _ = parse_zfs_get(result.stdout, obs.untrusted, known=known)
        obs.datasets = {n: p for n, p in datasets.items() if p.get("type", ("filesystem", ""))[0] == "filesystem"}
        mounts = read_mounts()  # (one read of the kernel's mount table)
        if not mounts:
            raise PermanentError("cannot read /proc/self/mountinfo: nasd cannot tell what is mounted where",
                                 reason="ObserveFailed")
        obs.mounted = {name for name, props in obs.datasets.items()
                       if dataset_mounted_at(mounts, props.get("mountpoint", ("", ""))[0], name)}
        # a statfs per mounted dataset of the pools nasd is asked about: a mount the ZFS daemon left when it died
        # (zfs-fuse killed and started again) is still listed, and zfs says "mounted", but every access fails
        # until it is mounted again (off the event loop and time-limited: a hung daemon does not stop the pass)
        managed = {r.name for r in desired if isinstance(r, ZPool)} | {r.spec.pool for r in by_name.values()}
        at = {obs.datasets[name]["mountpoint"][0]: name for name in obs.mounted
              if name.split("/", 1)[0] in managed}
        obs.stale = {at[mp] for mp in await (probe or MountProbe()).dead(list(at))}
        obs.mounted -= obs.stale
        for name, props in obs.datasets.items():  # an lstat per dataset that should be mounted and is not
            mp = props.get("mountpoint", ("", ""))[0]
            if mp.startswith("/") and name not in obs.mounted and name not in obs.stale \
                    and props.get("canmount", ("on", ""))[0] == "on":
                blocker = in_the_way(mp, [obs.mount_root, *obs.allowed_roots])
                if blocker:
                    obs.in_the_way[name] = blocker
        for r in by_name.values():  # a stat per dataset that names an owner, nothing for the others
            mp = obs.datasets.get(r.zfs_name, {}).get("mountpoint", ("", ""))[0]
            if r.spec.owner is not None and r.zfs_name in obs.mounted:
                st = os.lstat(mp)
                obs.owners[mp] = (st.st_uid, st.st_gid, st.st_mode & 0o7777)
    pools = [r for r in desired if isinstance(r, ZPool)]
    for pool in pools:
        for vdev in pool.spec.vdevs:
            obs.existing_files |= {d for d in vdev.devices if os.path.exists(d)}
    await observe_devices(ctx, obs, pools, checks)  # (sizes; whether a device the spec adds to a pool holds data)
    missing_with_devices = [
        p for p in pools if p.name not in obs.pools and any(
            d in obs.existing_files for v in p.spec.vdevs for d in v.devices
        )
    ]
    if missing_with_devices:  # only then: is there an exported pool to import instead of creating one?
        dirs = sorted({os.path.dirname(d) for p in missing_with_devices for v in p.spec.vdevs for d in v.devices})
        result = await ctx.runner.run(
            ["zpool", "import"] + [x for d in dirs for x in ("-d", d)], mutating=False, check=False
        )
        obs.importable = set(parse_zpool_import(result.stdout))
        for p in missing_with_devices:  # a pool to create on devices that exist: do they hold data?
            if p.name in obs.importable:
                continue
            for d in sorted({d for v in p.spec.vdevs for d in v.devices if d in obs.existing_files}):
                found = await checks.holds_data(ctx, d)
                if found:
                    obs.device_data[d] = found
    return obs


async def observe_health(ctx: Context, status_text: str, desired: list[Resource],
                         dialect: Dialect) -> dict[str, PoolHealth]:
    """The health of the pools of ZPool resources, from the `zpool status` the observation ran anyway; for a
    pool with permanent data errors (only then) a `zpool status -v` of it names the files."""
    managed = {r.name for r in desired if isinstance(r, ZPool)}
    health = {n: h for n, h in parse_pool_health(status_text).items() if n in managed}
    for name, pool in health.items():
        if pool.data_errors:
            argv = ["zpool", "status", *(["-P"] if dialect.status_full_paths else []), "-v", name]
            listed = await ctx.runner.run(argv, mutating=False, check=False)
            found = parse_pool_health(listed.stdout).get(name)
            if listed.returncode == 0 and found is not None:
                pool.error_files = found.error_files
    return health


async def take_snapshot(
    ctx: Context, dialect: Dialect, datasets: list[str], name: str, recursive: bool, properties: dict[str, str]
) -> list[str]:
    for argv in snapshot_commands(dialect, datasets, name, recursive, properties):
        await ctx.runner.run(argv, mutating=True)
    return [f"{ds}@{name}" for ds in datasets]


async def clone(ctx: Context, snapshot: str, target: str, properties: dict[str, str]) -> str:
    exists = await ctx.runner.run(["zfs", "list", "-H", "-o", "name", target], mutating=False, check=False)
    if exists.returncode == 0:
        raise PermanentError(f"{target} already exists; a clone never overwrites a dataset", reason="TargetExists")
    argv = ["zfs", "clone", "-p", "-o", f"{MANAGED}=true"]  # -p: parents such as restore/ as needed
    for k, v in properties.items():
        argv += ["-o", f"{k}={v}"]
    try:
        await ctx.runner.run([*argv, snapshot, target], mutating=True)
    except CommandError as e:
        raise PermanentError(str(e), reason="CloneFailed") from e
    result = await ctx.runner.run(["zfs", "get", "-H", "-o", "value", "mountpoint", target], mutating=False)
    return result.stdout.strip()
