"""The ZFS plugin's hook implementations. Only glue: the work is in plan, control and parse."""

from __future__ import annotations

import time
from typing import Callable, Mapping

from nasd.plugin import Context, Observed, Plan, Resource, SnapshotListing, ZDataset, ZPool, hookimpl

from . import alerts, control, plan
from . import snapshots as snapshot_commands
from .creates import CreateTracker
from .devices import DataChecks
from .dialect import Dialect
from .mounts import MountProbe
from .plan import ZfsObservation
from .scrub import ScrubBook
from .settings import ZFSSettings, load_settings
from .waker import Waker

NAME = plan.NAME


class ZFSPlugin:
    """ZFS pools and datasets through the zpool/zfs command line; the snapshot and clone hooks; pool care
    (health conditions, scrubs on a schedule).

    ``clock``: the wall clock scrub schedules run by (``time.time``; tests give a settable one)."""

    def __init__(self, clock: Callable[[], float] | None = None) -> None:
        self.clock: Callable[[], float] = clock or time.time
        #: what the plugin remembers of scrubs (loaded from the state folder at the first pass)
        self.scrubs = ScrubBook()
        #: asks for a pass when a pool's scrub is due
        self.waker = Waker(self.clock)
        #: what this zfs binary supports (detected at startup, or at the first use after ZFS came up)
        self.dialect: Dialect | None = None
        #: ``plugins.zfs`` of the configuration, read at the first observation
        self.settings: ZFSSettings | None = None
        self.creates = CreateTracker()
        self.mount_probe = MountProbe()
        self.data_checks = DataChecks()

    def _settings(self, ctx: Context) -> ZFSSettings:
        if self.settings is None:
            self.settings = load_settings(ctx.settings(NAME))
        return self.settings

    async def _ready_dialect(self, ctx: Context) -> Dialect:
        if self.dialect is None:
            self._use(ctx, await control.detect_dialect(ctx))
        assert self.dialect is not None
        return self.dialect

    def _use(self, ctx: Context, dialect: Dialect) -> None:
        """Take ``dialect`` as this zfs's, and bound its commands as it needs (zfs-fuse: one change at a time)."""
        self.dialect = dialect
        if dialect.concurrent_changes is not None:
            ctx.runner.bound(("zfs", "zpool"), dialect.concurrent_changes)

    @hookimpl
    async def startup(self, ctx: Context) -> None:
        self.creates.watch(ctx.runner)
        self.scrubs.path = ctx.state_dir / "zfs-scrubs.json"
        self.waker.start(ctx)
        try:
            self._use(ctx, await control.detect_dialect(ctx))
        except Exception as e:  # reported on every ZFS resource instead of stopping the daemon
            ctx.log.error("ZFS is not usable: %s", e)

    @hookimpl
    async def observe(self, ctx: Context, desired: list[Resource]) -> ZfsObservation:
        settings = self._settings(ctx)
        try:
            obs = await control.observe(ctx, await self._ready_dialect(ctx), desired, settings.mountRoot,
                                        settings.allowedMountpoints, self.mount_probe, self.data_checks)
        except Exception as e:
            self.creates.unreadable()
            raise control.observe_failure(e) from e
        self.creates.seen(obs)
        self.waker.keep_only({r.name for r in desired if isinstance(r, ZPool)})
        return obs

    @hookimpl
    def plan_pool(self, ctx: Context, pool: ZPool, observed: Observed) -> Plan:
        obs = plan.observation(observed)
        out = plan.plan_pool(pool, obs)
        root = obs.datasets.get(pool.name, {})
        used, avail = (plan._as_int(root.get(k, (None, ""))[0]) for k in ("used", "available"))
        self.waker.due_at(pool.name, alerts.pool_care(out, pool, obs.health.get(pool.name), used, avail, self.scrubs,
                                                   self.clock()))
        return out

    @hookimpl
    def plan_dataset(self, ctx: Context, dataset: ZDataset, pool: ZPool | None, observed: Observed) -> Plan:
        obs = plan.observation(observed)
        extra = obs.contributed.get(dataset.name)
        if extra:  # what other resources need on it (a Time Machine share's refquota); the spec's own values win
            spec = dataset.spec.model_copy(update={"properties": {**extra, **dataset.spec.properties}})
            dataset = dataset.model_copy(update={"spec": spec})
        return plan.plan_dataset(dataset, pool, obs)

    @hookimpl
    def plan_absent(self, ctx: Context, resource: Resource, observed: Observed) -> Plan | None:
        if isinstance(resource, ZPool):
            return plan.plan_pool_absent(resource, plan.observation(observed))
        if isinstance(resource, ZDataset):
            return plan.plan_dataset_absent(resource, plan.observation(observed))
        return None

    @hookimpl
    async def take_snapshot(
        self, ctx: Context, datasets: list[str], name: str, recursive: bool, properties: Mapping[str, str]
    ) -> list[str]:
        return await control.take_snapshot(ctx, await self._ready_dialect(ctx), datasets, name, recursive,
                                           dict(properties))

    @hookimpl
    async def list_snapshots(self, ctx: Context, roots: list[str], properties: list[str]) -> SnapshotListing:
        return await snapshot_commands.list_snapshots(ctx, await self._ready_dialect(ctx), roots, properties)

    @hookimpl
    async def destroy_snapshots(self, ctx: Context, snapshots: list[str], listing: SnapshotListing) -> int:
        return await snapshot_commands.destroy_snapshots(ctx, await self._ready_dialect(ctx), snapshots, listing)

    @hookimpl
    async def hold_snapshots(self, ctx: Context, snapshots: list[str], tag: str) -> bool:
        return await snapshot_commands.hold(ctx, await self._ready_dialect(ctx), snapshots, tag)

    @hookimpl
    async def release_snapshots(self, ctx: Context, snapshots: list[str], tag: str) -> bool:
        return await snapshot_commands.release(ctx, await self._ready_dialect(ctx), snapshots, tag)

    @hookimpl
    async def clone(self, ctx: Context, snapshot: str, target: str, properties: Mapping[str, str]) -> str:
        return await control.clone(ctx, snapshot, target, dict(properties))
