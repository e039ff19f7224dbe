"""The snapshots plugin's hook implementations: observe the snapshots once per pass (or reuse the last
listing), plan schedules and restores, wake the daemon when a tick is due, and give SMB shares on
snapshotted datasets their Previous Versions.

The ZFS work itself is done by whichever plugin answers the core's ``list_snapshots``,
``take_snapshot``, ``destroy_snapshots``, ``hold_snapshots``, ``release_snapshots`` and ``clone``
hooks (the ZFS plugin): this one decides, it never runs ``zfs`` itself.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from nasd.plugin import (Action, Context, DesiredFeed, NASShare, Observed, Plan, Problem, Resource, SnapshotInfo,
                         SnapshotListing, TemporaryError, ZDataset, ZSnapshotRestore, ZSnapshotSchedule, hookimpl,
                         next_tick, parse_resource, wall_clock_timer, write_json)

from .restore import RESTORE_PROPERTY, hold_tag, plan_restore
from .schedule import (SCHEDULE_PROPERTY, effective_last_run, name_pattern, name_time, parse_iso, plan_schedule,
                       targets)
from .settings import SnapshotsSettings, load_settings

NAME = "snapshots"
SOURCE = "snapshots"  # the desired-state source of the resources restores derive

log = logging.getLogger("nasd.snapshots")


@dataclass
class Observation:
    listing: SnapshotListing
    now: float
    #: ZDataset name -> its SMB NASShare (the first, by name)
    #: (protocol, dataset) -> the first share of that dataset over that protocol, by name
    shares: dict[tuple[str, str], NASShare] = field(default_factory=dict)
    #: ZFS names of datasets that have an SMB share
    shared: set[str] = field(default_factory=set)
    #: schedule -> (dataset, the schedule before it by name that takes the same names there)
    overlaps: dict[str, tuple[str, str]] = field(default_factory=dict)


@dataclass
class CachedListing:
    """The last listing, what it was taken for, and when (by the plugin's clock)."""

    listing: SnapshotListing
    roots: list[str]
    signature: str
    at: float


def _roots(resource: Resource, datasets: dict[str, ZDataset]) -> list[str]:
    if isinstance(resource, ZSnapshotSchedule):
        return [datasets[n].zfs_name for n in resource.spec.datasets if n in datasets]
    if isinstance(resource, ZSnapshotRestore) and resource.spec.source.dataset in datasets:
        return [datasets[resource.spec.source.dataset].zfs_name]
    return []


def _signature(resources: list[Resource]) -> str:
    data = [[r.kind, r.name, r.spec_dict(), r.metadata.annotations] for r in resources]
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def _last_run(schedule: ZSnapshotSchedule, listing: SnapshotListing | None, t: float) -> float | None:
    """When the schedule last ran by the clock at ``t``: its status and the snapshots it made (by the times in
    their names), as the planner reckons it (see :func:`effective_last_run`: a clock that went back)."""
    own: list[float] = []
    if listing is not None:
        pattern = name_pattern(schedule.spec.format)
        for s in listing.snapshots:
            if s.properties.get(SCHEDULE_PROPERTY) == schedule.name:
                when = name_time(pattern, s.name)
                if when is not None:
                    own.append(when)
    return effective_last_run(parse_iso(schedule.status.lastRun), own, t)[0]


def _duration(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds:.0f} s"


def _derived_file(ctx: Context) -> Path:
    return ctx.state_dir / "snapshots-derived.json"


def _load_derived(ctx: Context) -> tuple[dict[str, list[dict]], list[str]]:
    """What restores derived before a restart, and the errors reading it (which hold every deletion: a
    clone missing from the desired state must not read as deleted)."""
    path = _derived_file(ctx)
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict):
            raise ValueError("not a mapping")
        return {str(k): list(v) for k, v in data.items()}, []
    except FileNotFoundError:
        return {}, []
    except (OSError, ValueError, TypeError) as e:
        return {}, [f"{path}: cannot be read ({e}); the clones and shares of restores it lists are kept"]


def _resources(ctx: Context, derived: dict[str, list[dict]], errors: list[str]) -> list[Resource]:
    """The resources of what restores derive; one that does not parse (an edited file) is an error."""
    out = []
    for manifest in (m for items in derived.values() for m in items):
        try:
            out.append(parse_resource(manifest, str(_derived_file(ctx))))
        except Exception as e:
            errors.append(str(e))
    return out


class SnapshotsPlugin:
    """Snapshot schedules with retention, Windows Previous Versions, and restores by clone.

    ``clock``: the wall clock schedules run by (``time.time``; tests give a settable one)."""

    def __init__(self, clock: Callable[[], float] | None = None):
        self.clock: Callable[[], float] = clock or time.time
        self.settings: SnapshotsSettings | None = None
        #: set by each observation: wakes the timer, which then reads the next due time
        self.timer_event: asyncio.Event | None = None
        #: when the earliest schedule is due next (None: no schedule, or a pass is asked for)
        self.next_due: float | None = None
        #: restore name -> the manifests it derives (a clone's ZDataset, its share), as saved
        self.derived: dict[str, list[dict]] = {}
        self.feed: DesiredFeed | None = None
        self.listing: CachedListing | None = None
        #: ZFS dataset -> the name format of the first schedule snapshotting it (shadow:format)
        self.previous_versions: dict[str, str] = {}
        #: the ZFS plugin has no holds here (zfs-fuse): the clone alone keeps retention off a snapshot
        self.no_holds = False

    def now(self) -> float:
        """The time schedules run by."""
        return self.clock()

    def _settings(self, ctx: Context) -> SnapshotsSettings:
        if self.settings is None:
            self.settings = load_settings(ctx.settings(NAME))
        return self.settings

    # -- setup --------------------------------------------------------------------------------------

    @hookimpl
    def startup(self, ctx: Context) -> None:
        if ctx.watch:
            self.timer_event = asyncio.Event()
            ctx.spawn(self._timer(ctx, self.timer_event), "snapshot-schedules")

    async def _timer(self, ctx: Context, changed: asyncio.Event) -> None:
        """Ask for a pass when the earliest schedule is due (the pass itself takes the snapshot). Each pass's
        observation sets the next due time and wakes this task, so a sooner tick is never slept through.

        A wall clock that jumps asks for a pass at once, which plans the schedules from the new time (a clock
        that went back is not due until the next tick after it); see :func:`wall_clock_timer` for how often a
        due tick that a pass could not take is asked for again."""

        def jumped(jump: float, wall: float) -> None:
            log.warning("the wall clock jumped %s by %s: planning the snapshot schedules from %s",
                        "forward" if jump > 0 else "back", _duration(abs(jump)),
                        time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(wall)))
            ctx.request_reconcile("the wall clock jumped")

        def due() -> None:
            self.next_due = None  # the pass sets the next one
            ctx.request_reconcile("a snapshot schedule is due")

        await wall_clock_timer(changed, self.now, lambda: self.next_due, due, jumped)

    def _feed_derived(self, ctx: Context, derived: dict[str, list[dict]]) -> None:
        """Save what restores derive (so a restart keeps serving it) and give it to the core as desired state."""
        write_json(_derived_file(ctx), derived)
        self.derived = derived
        if self.feed is not None:
            errors: list[str] = []
            self.feed.replace(SOURCE, _resources(ctx, derived, errors), errors)

    @hookimpl
    def supply_desired_state(self, ctx: Context, feed: DesiredFeed) -> None:
        self.feed = feed
        derived, errors = _load_derived(ctx)
        self.derived = derived
        resources = _resources(ctx, derived, errors)
        if resources or errors:
            feed.replace(SOURCE, resources, errors)

    # -- observe ------------------------------------------------------------------------------------

    @hookimpl
    async def observe(self, ctx: Context, desired: list[Resource]) -> Observation | None:
        mine = [r for r in desired if isinstance(r, (ZSnapshotSchedule, ZSnapshotRestore))]
        if not mine:
            self.listing = None
            self.previous_versions = {}
            self.next_due = None
            return None
        datasets = {r.name: r for r in desired if isinstance(r, ZDataset)}
        t = self.now()
        roots = sorted({root for r in mine for root in _roots(r, datasets)})
        signature = _signature(mine)
        cached = self.listing
        relist_every = self._settings(ctx).relist_every(ctx.config.resyncSeconds)
        schedules = sorted((r for r in mine if isinstance(r, ZSnapshotSchedule)), key=lambda r: r.name)
        lasts = {s.name: _last_run(s, cached.listing, t) for s in schedules} if cached is not None else {}
        due = any(lasts[s.name] is None or next_tick(s.spec.schedule.cron, s.spec.schedule.interval, lasts[s.name]) <= t
                  for s in schedules if cached is not None)
        # zfs-fuse takes ~1 s per 1,000 snapshots to list them: list again only when something may have
        # changed (a tick, a changed spec, a restore not done yet, or every relistSeconds); nasd's own
        # snapshots and prunes update the cached listing as they run
        fresh = (cached is None or due or cached.roots != roots or cached.signature != signature
                 or t - cached.at >= relist_every
                 or any(isinstance(r, ZSnapshotRestore) and not r.ready for r in mine)
                 # a restore's clone gone (destroyed by hand): its ZDataset says so, the restore clones again
                 or any(r.metadata.annotations.get("nasd.io/restore") and r.status.conditions and not r.ready
                        for r in desired))
        if fresh:
            listing = await ctx.hooks.list_snapshots(roots, [SCHEDULE_PROPERTY, RESTORE_PROPERTY])
            self.listing = CachedListing(listing=listing, roots=roots, signature=signature, at=t)
            lasts = {s.name: _last_run(s, listing, t) for s in schedules}
        else:
            assert cached is not None
            listing = cached.listing
        obs = Observation(listing=listing, now=t)
        for r in sorted((r for r in desired if isinstance(r, NASShare)), key=lambda r: r.name):
            obs.shares.setdefault((r.spec.protocol, r.spec.dataset), r)
            if r.spec.protocol == "smb" and r.spec.dataset in datasets:
                obs.shared.add(datasets[r.spec.dataset].zfs_name)
        previous_versions: dict[str, str] = {}
        claimed: dict[tuple[str, str], str] = {}  # (dataset, name format) -> the first schedule, by name
        next_due: float | None = None
        for s in schedules:
            for ds in targets(s, _roots(s, datasets), listing):
                previous_versions.setdefault(ds, s.spec.format)
                first = claimed.setdefault((ds, s.spec.format), s.name)
                if first != s.name:
                    obs.overlaps.setdefault(s.name, (ds, first))
            last = lasts[s.name]
            tick = next_tick(s.spec.schedule.cron, s.spec.schedule.interval, max(t, last or t))
            if last is not None:  # a tick due now that this pass cannot take (its name was taken in the same
                # second): the timer asks again, less and less often
                tick = min(tick, next_tick(s.spec.schedule.cron, s.spec.schedule.interval, last))
            next_due = tick if next_due is None else min(next_due, tick)
        self.previous_versions = previous_versions
        self.next_due = next_due
        if self.timer_event is not None:
            self.timer_event.set()
        return obs

    # -- planning -----------------------------------------------------------------------------------

    def _forget_listing(self) -> None:
        self.listing = None

    def _take_action(self, schedule: ZSnapshotSchedule, name: str, datasets: list[str], recursive: bool,
                     when: float, listing: SnapshotListing) -> Action:
        how = f"zfs snapshot {'-r ' if recursive else ''}{', '.join(datasets[:3])}{' ...' if len(datasets) > 3 else ''}"

        async def take(ctx: Context) -> None:
            try:
                made = await ctx.hooks.take_snapshot(datasets, name, recursive, {SCHEDULE_PROPERTY: schedule.name})
            except Exception:
                self._forget_listing()
                raise
            if recursive:  # -r made one below every root: the listing knows which file systems are there
                made = [f"{fs}@{name}" for fs in listing.filesystems
                        if any(fs == r or fs.startswith(r + "/") for r in datasets)]
            for full in made:
                ds, snap = full.split("@", 1)
                listing.snapshots.append(SnapshotInfo(dataset=ds, name=snap, created=int(when),
                                                      properties={SCHEDULE_PROPERTY: schedule.name}))

        return Action(f"snapshot @{name} ({how})", func=take)

    def _prune_action(self, schedule: ZSnapshotSchedule, doomed: list[str], listing: SnapshotListing) -> Action:
        datasets = sorted({d.split("@", 1)[0] for d in doomed})

        async def prune(ctx: Context) -> None:
            try:
                await ctx.hooks.destroy_snapshots(doomed, listing)
            except Exception:
                self._forget_listing()
                raise
            gone = set(doomed)
            listing.snapshots[:] = [s for s in listing.snapshots if s.full_name not in gone]

        return Action(f"prune {len(doomed)} snapshots made by {schedule.name} from {len(datasets)} dataset(s)",
                      func=prune)

    def _plan_schedule(self, schedule: ZSnapshotSchedule, deps: Mapping[tuple[str, str], Resource],
                       obs: Observation) -> Plan:
        roots = [deps[("ZDataset", n)].zfs_name for n in schedule.spec.datasets  # type: ignore[attr-defined]
                 if ("ZDataset", n) in deps]
        if schedule.name in obs.overlaps:  # both would take the same names there, each the other's for its own
            ds, first = obs.overlaps[schedule.name]
            return Plan(problem=Problem(
                "OverlappingSchedule",
                f"{ds} is also snapshotted by ZSnapshotSchedule {first} with the same name format; give this "
                "one another format (e.g. a prefix) or exclude the dataset from one of them"))
        decision = plan_schedule(schedule, roots, obs.listing, obs.now, obs.shared)
        plan = Plan(status=decision.status, conditions=decision.conditions, removed_conditions=decision.removed)
        if decision.problem:
            plan.problem = Problem(*decision.problem)
            return plan
        if decision.take:
            plan.actions.append(self._take_action(schedule, decision.take, decision.take_datasets,
                                                  decision.take_recursive, decision.take_time or obs.now,
                                                  obs.listing))
        if decision.prune:
            plan.actions.append(self._prune_action(schedule, decision.prune, obs.listing))
        return plan

    def _plan_restore(self, restore: ZSnapshotRestore, deps: Mapping[tuple[str, str], Resource],
                      obs: Observation) -> Plan:
        source = deps[("ZDataset", restore.spec.source.dataset)]
        assert isinstance(source, ZDataset)
        protocol = restore.spec.share.protocol if restore.spec.share is not None else "smb"
        decision = plan_restore(restore, source, obs.listing, obs.shares.get((protocol, source.name)))
        plan = Plan(status=decision.status)
        if decision.problem:
            plan.problem = Problem(*decision.problem)
            return plan
        snap = decision.snapshot
        assert snap is not None
        if decision.make_clone:
            props = {RESTORE_PROPERTY: restore.name}
            if restore.spec.target.readOnly:
                props["readonly"] = "on"

            async def make_clone(ctx: Context) -> None:
                self._forget_listing()  # the next pass sees the clone
                await ctx.hooks.clone(snap.full_name, decision.clone, props)

            plan.actions.append(Action(f"clone {snap.full_name} as {decision.clone}", func=make_clone))
        if decision.place_hold and not self.no_holds:
            tag = hold_tag(restore)

            async def hold(ctx: Context) -> None:
                self._forget_listing()
                if not await ctx.hooks.hold_snapshots([snap.full_name], tag):
                    self.no_holds = True  # no holds here: the clone itself keeps retention off it

            plan.actions.append(Action(f"hold {snap.full_name} ({tag}) while the clone exists", func=hold))
        manifests = [r.to_manifest(with_status=False) for r in decision.derived]
        derived = dict(self.derived)
        if derived.get(restore.name) != manifests:
            derived[restore.name] = manifests

            async def feed(ctx: Context) -> None:
                self._feed_derived(ctx, derived)

            what = " and ".join(f"{r.kind} {r.name}" for r in decision.derived)
            plan.actions.append(Action(f"declare {what} for the clone", func=feed))
        return plan

    @staticmethod
    def _observation(observed: Observed) -> Observation:
        obs = observed.of(NAME, Observation)  # (raises what observing met: the listing failed, bad settings)
        if obs is None:
            raise TemporaryError("cannot read snapshots: snapshots were not listed", reason="ObserveFailed",
                                 delay=2.0)
        return obs

    @hookimpl
    def plan_resource(self, ctx: Context, resource: Resource, dependencies: Mapping[tuple[str, str], Resource],
                      observed: Observed) -> Plan | None:
        if isinstance(resource, ZSnapshotSchedule):
            return self._plan_schedule(resource, dependencies, self._observation(observed))
        if isinstance(resource, ZSnapshotRestore):
            return self._plan_restore(resource, dependencies, self._observation(observed))
        return None

    @hookimpl
    def plan_absent(self, ctx: Context, resource: Resource, observed: Observed) -> Plan | None:
        if isinstance(resource, ZSnapshotSchedule):
            return Plan()  # the snapshots it made stay (delete them by hand, or keep a schedule that prunes)
        if not isinstance(resource, ZSnapshotRestore):
            return None
        plan = Plan()
        tag = hold_tag(resource)
        snapshot = resource.status.snapshot
        derived = dict(self.derived)
        clone = resource.status.clone or next(
            (f"{m['spec']['pool']}/{m['spec']['path']}" for m in derived.get(resource.name, [])
             if m.get("kind") == "ZDataset"),
            None)
        if snapshot:
            async def release(ctx: Context) -> None:
                self._forget_listing()
                await ctx.hooks.release_snapshots([snapshot], tag)

            plan.actions.append(Action(f"release the hold {tag} on {snapshot}", func=release))
        elif clone:  # the status was lost (a kill -9 right after cloning): the clone's origin says which
            async def find_and_release(ctx: Context) -> None:
                self._forget_listing()
                listing = await ctx.hooks.list_snapshots([clone], [RESTORE_PROPERTY])
                origin = listing.origins.get(clone)
                if origin:
                    await ctx.hooks.release_snapshots([origin], tag)

            plan.actions.append(Action(f"release the hold {tag} on the snapshot {clone} was cloned from",
                                       func=find_and_release))
        if resource.name in derived:
            del derived[resource.name]

            async def unfeed(ctx: Context) -> None:
                self._feed_derived(ctx, derived)

            what = "the clone" + (" (destroyed: deletionPolicy Destroy)" if resource.spec.deletionPolicy == "Destroy"
                                  else " (kept: deletionPolicy Retain)")
            plan.actions.append(Action(f"remove the share and {what}", func=unfeed))
        return plan

    # -- Previous Versions --------------------------------------------------------------------------

    @hookimpl(optionalhook=True)  # (declared by the SMB plugin: without it, never called)
    def smb_share_options(self, ctx: Context, share: NASShare, dataset: ZDataset) -> Mapping[str, Any] | None:
        fmt = self.previous_versions.get(dataset.zfs_name)
        if fmt is None:
            return None
        return {
            "vfs objects": "shadow_copy2",
            "shadow:snapdir": ".zfs/snapshot",
            "shadow:format": fmt,
            "shadow:sort": "desc",
            "shadow:localtime": "no",
        }
