"""The ZFS plugin's hook implementations. Only glue: the work is in plan, control and parse."""

from __future__ import annotations

from typing import Any, Mapping

from nasd.context import Context
from nasd.hookspecs import hookimpl
from nasd.models import Resource, ZDataset, ZPool
from nasd.planning import Plan
from nasd.snapshot_listing import SnapshotListing

from . import control, plan
from . import snapshots as snapshot_commands

NAME = "zfs"


def _dialect(ctx: Context) -> Any:
    return ctx.cache.get("zfs-dialect")


async def _ready_dialect(ctx: Context) -> Any:
    if _dialect(ctx) is None:
        ctx.cache["zfs-dialect"] = await control.detect_dialect(ctx)
    return _dialect(ctx)


def _track_interrupted_creates(ctx: Context) -> None:
    """Remember the datasets nasd's `zfs create` made, or failed to make. zfs-fuse sets a new dataset's
    properties after making it: when its daemon dies in between (or before they reach the disk), the dataset is
    there without ``nasd.io:managed``. Such a dataset is taken for nasd's own when its create succeeded, or
    failed and the observation right after it could not read ZFS (a create refused because the name exists, or
    while ZFS was up, is never taken)."""
    failed: set[str] = ctx.cache.setdefault("zfs-create-failed", set())
    created: set[str] = ctx.cache.setdefault("zfs-created", set())
    zfs = ctx.runner.resolve("zfs")

    def listener(spawn: Any) -> None:
        if not spawn.mutating or spawn.argv[:2] != [zfs, "create"]:
            return
        if spawn.returncode == 0:  # made by this nasd (a create fails on a name that exists): its property set
            created.add(spawn.argv[-1])  # may still be lost if zfs-fuse dies before it reaches the disk
        elif "exists" not in spawn.stderr:  # (someone else's dataset by that name: never taken)
            failed.add(spawn.argv[-1])

    ctx.runner.listeners.append(listener)


def _after_observe(ctx: Context, observed: dict[str, Any]) -> dict[str, Any]:
    failed: set[str] = ctx.cache.setdefault("zfs-create-failed", set())
    interrupted: set[str] = ctx.cache.setdefault("zfs-create-interrupted", set())
    obs = observed.get("zfs")
    if obs is None:  # (ZFS not running, or dying while it was read: "I/O error", "file descriptor closed")
        interrupted |= failed
        failed.clear()
        return observed
    failed.clear()
    unmanaged = {n for n, props in obs.datasets.items() if not plan._managed(props)}  # (inherited is not marked)
    # forgotten once seen marked as nasd's; one not listed is kept (right after ZFS is back, its pool may not be
    # imported yet)
    managed = set(obs.datasets) - unmanaged
    created: set[str] = ctx.cache.setdefault("zfs-created", set())
    interrupted -= managed
    created -= managed
    obs.interrupted = (interrupted | created) & unmanaged
    return observed


@hookimpl
async def startup(ctx: Context) -> None:
    _track_interrupted_creates(ctx)
    try:
        ctx.cache["zfs-dialect"] = await control.detect_dialect(ctx)
    except Exception as e:  # reported on every ZFS resource instead of stopping the daemon
        ctx.cache["zfs-dialect-error"] = str(e)
        ctx.log.error("ZFS is not usable: %s", e)


def _failed(error: Exception) -> dict[str, Any]:
    """What observe returns when ZFS could not be read: the error, and its reason when it names one."""
    if control.not_running(error):
        return {"zfs": None, "zfs_error": control.NOT_RUNNING_MESSAGE.format(error=control.describe(error)),
                "zfs_reason": "ZFSNotRunning"}
    return {"zfs": None, "zfs_error": str(error)}


@hookimpl
async def observe(ctx: Context, desired: list[Resource]) -> Mapping[str, Any] | None:
    if _dialect(ctx) is None:
        try:
            ctx.cache["zfs-dialect"] = await control.detect_dialect(ctx)
        except Exception as e:
            return _after_observe(ctx, _failed(e))
    mount_root = str(ctx.settings(NAME).get("mountRoot", "/mnt"))
    allowed = [str(p) for p in ctx.settings(NAME).get("allowedMountpoints", []) if str(p).startswith("/")]
    try:
        return _after_observe(ctx, {"zfs": await control.observe(ctx, _dialect(ctx), desired, mount_root, allowed)})
    except Exception as e:
        return _after_observe(ctx, _failed(e))


@hookimpl
def plan_pool(ctx: Context, pool: ZPool, observed: Mapping[str, Any]) -> Plan:
    return plan.plan_pool(pool, plan.observation(observed))


@hookimpl
def plan_dataset(ctx: Context, dataset: ZDataset, pool: ZPool | None, observed: Mapping[str, Any]) -> Plan:
    obs = plan.observation(observed)
    extra = obs.contributed.get(dataset.name)
    if extra:  # what other resources need on it (a Time Machine share's refquota); the spec's own values win
        spec = dataset.spec.model_copy(update={"properties": {**extra, **dataset.spec.properties}})
        dataset = dataset.model_copy(update={"spec": spec})
    return plan.plan_dataset(dataset, pool, obs)


@hookimpl
def plan_absent(ctx: Context, resource: Resource, observed: Mapping[str, Any]) -> Plan | None:
    if isinstance(resource, ZPool):
        return plan.plan_pool_absent(resource, plan.observation(observed))
    if isinstance(resource, ZDataset):
        return plan.plan_dataset_absent(resource, plan.observation(observed))
    return None


@hookimpl
async def take_snapshot(
    ctx: Context, datasets: list[str], name: str, recursive: bool, properties: Mapping[str, str]
) -> list[str]:
    return await control.take_snapshot(ctx, await _ready_dialect(ctx), datasets, name, recursive, dict(properties))


@hookimpl
async def list_snapshots(ctx: Context, roots: list[str], properties: list[str]) -> SnapshotListing:
    return await snapshot_commands.list_snapshots(ctx, await _ready_dialect(ctx), roots, properties)


@hookimpl
async def destroy_snapshots(ctx: Context, snapshots: list[str], listing: SnapshotListing) -> int:
    return await snapshot_commands.destroy_snapshots(ctx, await _ready_dialect(ctx), snapshots, listing)


@hookimpl
async def hold_snapshots(ctx: Context, snapshots: list[str], tag: str) -> bool:
    return await snapshot_commands.hold(ctx, await _ready_dialect(ctx), snapshots, tag)


@hookimpl
async def release_snapshots(ctx: Context, snapshots: list[str], tag: str) -> bool:
    return await snapshot_commands.release(ctx, await _ready_dialect(ctx), snapshots, tag)


@hookimpl
async def clone(ctx: Context, snapshot: str, target: str, properties: Mapping[str, str]) -> str:
    return await control.clone(ctx, snapshot, target, dict(properties))
