"""The Time Machine plugin's hook implementations: fruit options for the SMB plugin's shares (through the
hooks the SMB plugin declares), and the quota of a Time Machine share's dataset (through the core's
``dataset_properties``). It imports neither the SMB nor the ZFS plugin."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, Mapping

from nasd.plugin import (ConditionChange, wait_event, Context, DesiredFeed, NASShare, NASUser, PermanentError, Resource, TimeMachineStatus,
                         ZDataset, hookimpl, write_json)

from nasd_smb import SmbShareStatus  # (the answer type of the SMB plugin's hook; nasd-smb is a dependency)

from . import advertise, options
from .settings import TimeMachineSettings, load_settings

NAME = "timemachine"

#: seconds between checks: soon after a failure or a record not seen (backing off), else every RECHECK
RETRY, RECHECK = 2.0, 300.0


def _smb_shares(resources: list[Resource]) -> list[NASShare]:
    return [r for r in resources if isinstance(r, NASShare) and r.spec.protocol == "smb"]


def _derived_file(ctx: Context) -> Path:
    return ctx.state_dir / "timemachine-derived.json"


class TimeMachinePlugin:
    """Time Machine shares over SMB, their per-user datasets and quotas, and their mDNS advertisement."""

    def __init__(self) -> None:
        self.settings: TimeMachineSettings | None = None
        #: set while the advertiser runs (``nasd serve``, mdns not off): wakes it when the shares change
        self.event: asyncio.Event | None = None
        #: whether the last pass declared any Time Machine share (every share then gets the fruit stack)
        self.any_share = False
        #: the Time Machine share names the last pass declared
        self.wanted: list[str] | None = None
        #: share name -> (ok, message) from the last check by browsing
        self.seen: dict[str, tuple[bool, str]] | None = None
        self.feed: DesiredFeed | None = None
        #: the per-user datasets last given to the feed, as manifests
        self.fed: list[dict[str, Any]] = []

    def _settings(self, ctx: Context) -> TimeMachineSettings:
        """Loaded once (PermanentError BadSettings when they do not validate)."""
        if self.settings is None:
            self.settings = load_settings(ctx.settings(NAME))
        return self.settings

    def _host(self, ctx: Context) -> str:
        return self._settings(ctx).host

    def _backend(self, settings: TimeMachineSettings) -> advertise.Backend | None:
        mode = settings.mdns
        folder = settings.avahiServicesDir
        if mode == "off":
            return None
        if mode == "avahi" or (mode == "auto" and Path("/run/avahi-daemon/socket").exists() and folder.is_dir()):
            return advertise.AvahiBackend(folder)
        return advertise.ZeroconfBackend(settings.interfaces)

    @hookimpl
    def startup(self, ctx: Context) -> None:
        if not ctx.watch:
            return
        try:
            off = self._settings(ctx).mdns == "off"
        except PermanentError as e:  # (the advertiser says it on the Time Machine shares, until it is fixed)
            ctx.log.error("%s", e)
            off = False
        if not off:
            self.event = asyncio.Event()
            ctx.spawn(self._advertise(ctx, self.event), "timemachine-mdns")

    async def _advertise(self, ctx: Context, event: asyncio.Event) -> None:
        """Keep the mDNS records equal to the declared Time Machine shares, then check them by browsing; a
        changed result asks for a pass, which puts it on the shares' ``Advertised`` condition. A failure or a
        record not seen is tried again (2 s, doubling to 5 min); a good state is checked every 5 min."""
        backend = None
        published: dict[str, advertise.Service] | None = None
        wait = RECHECK
        try:
            while True:
                await wait_event(event, wait)
                event.clear()
                shares = sorted(self.wanted or ())
                try:
                    settings = self._settings(ctx)
                    host = settings.host
                    # (the SMB plugin's port: its setting, read as the SMB plugin reads it)
                    port = int(ctx.settings("smb").get("port", 445))
                    records = advertise.services(host, port, shares, settings.model)
                    if records != published:
                        backend = backend or self._backend(settings)
                        if backend is not None:
                            await backend.publish(host, records)
                        published = records
                    seen = await advertise.browse(host, list(records), settings.interfaces) if records else {}
                    result = advertise.verdicts(host, shares, records, seen)
                except Exception as e:  # no multicast, avahi folder not writable, a bad setting: said on the shares
                    ctx.log.error("mDNS advertisement failed: %s", e)
                    published = None  # publish again next time
                    result = {name: (False, f"advertising failed: {type(e).__name__}: {e}") for name in shares}
                good = all(ok for ok, _ in result.values())
                wait = RECHECK if good else (RETRY if wait >= RECHECK else min(RECHECK, wait * 2))
                if result != self.seen:
                    self.seen = result
                    ctx.request_reconcile("Time Machine advertisement checked")
        finally:
            if backend is not None:
                await backend.close()

    @hookimpl
    def supply_desired_state(self, ctx: Context, feed: DesiredFeed) -> None:
        """The per-user datasets derived before a restart, so that they do not look deleted until the first
        observation derives them again (they are Retain: that would only forget them, but say so in the log)."""
        self.feed = feed
        try:
            saved = [ZDataset.model_validate(m) for m in json.loads(_derived_file(ctx).read_text())]
        except (OSError, ValueError):
            saved = []
        if saved:
            feed.replace("timemachine", saved)
            self.fed = [d.to_manifest(with_status=False) for d in saved]

    @hookimpl
    def observe(self, ctx: Context, desired: list[Resource]) -> None:
        """Derives the per-user datasets and tells the advertiser the shares; nothing for planning (None)."""
        shares = _smb_shares(desired)
        if self.feed is not None:
            # per-user datasets are desired state derived from the shares (not a change to the system: the ZFS
            # plugin makes them, in the pass this wakes); Retain, so one that stops being derived keeps its data
            datasets = {r.name: r for r in desired if isinstance(r, ZDataset)}
            users = {r.name: r for r in desired if isinstance(r, NASUser)}
            derived = options.per_user_datasets(shares, datasets, users)
            manifests = [d.to_manifest(with_status=False) for d in derived]
            if manifests != self.fed:
                write_json(_derived_file(ctx), manifests)  # (nasd's own state file, not the system)
                self.feed.replace("timemachine", derived)
                self.fed = manifests
        self.any_share = any(options.is_time_machine(s) for s in shares)
        wanted = sorted((s.spec.smb.name or s.name) for s in shares if options.is_time_machine(s))  # type: ignore[union-attr]
        if wanted != self.wanted and self.event is not None:
            self.wanted = wanted
            self.event.set()  # the advertiser follows (it does not write anything the pass plans)

    @hookimpl(optionalhook=True)  # (declared by the SMB plugin: without it, never called)
    def smb_share_status(self, ctx: Context, share: NASShare, dataset: ZDataset) -> SmbShareStatus | None:
        if not options.is_time_machine(share):
            # (no longer one: its Time Machine status and its Advertised condition go)
            if getattr(share.status, "timeMachine", None) is None and share.condition("Advertised") is None:
                return None
            return SmbShareStatus(status={"timeMachine": None}, remove_conditions=["Advertised"])
        tm = share.spec.smb.timeMachine  # type: ignore[union-attr]
        name = share.spec.smb.name or share.name  # type: ignore[union-attr]
        host = self._host(ctx)  # (settings that do not validate: this share says so, BadSettings)
        status = TimeMachineStatus(advertisedAs=host if self.event is not None else None,
                                   quota=tm.maxSize if tm else None, used=dataset.status.used)
        out = SmbShareStatus(status={"timeMachine": status})
        if self.event is not None:
            seen = (self.seen or {}).get(name)
            if seen is None:
                out.conditions = [ConditionChange("Advertised", None, "Checking",
                                                  "publishing over mDNS, then browsing for it")]
            else:
                out.conditions = [ConditionChange("Advertised", seen[0], "Seen" if seen[0] else "NotSeen", seen[1])]
        return out

    @hookimpl
    async def shutdown(self, ctx: Context) -> None:
        self.event = None  # (the advertiser task is cancelled by the core; its finally unpublishes)

    @hookimpl(optionalhook=True)  # (declared by the SMB plugin: without it, never called)
    def smb_global_options(self, ctx: Context, shares: list[NASShare]) -> Mapping[str, Any] | None:
        if not any(options.is_time_machine(s) for s in shares):
            return None
        try:
            settings = self._settings(ctx)
        except PermanentError:  # (its Time Machine shares say so: they are not Ready until it is fixed)
            return None
        opts = options.global_options(shares, settings.model)
        if opts and settings.mdns != "off":
            opts["multicast dns register"] = "no"  # nasd advertises (smbd would only at its start)
        return opts or None

    @hookimpl(optionalhook=True)  # (declared by the SMB plugin: without it, never called)
    def smb_share_options(self, ctx: Context, share: NASShare, dataset: ZDataset) -> Mapping[str, Any] | None:
        if not self.any_share:
            return None
        return options.share_options(share, dataset.status.mountpoint or "")

    @hookimpl
    def dataset_properties(self, ctx: Context, datasets: list[ZDataset],
                           desired: list[Resource]) -> Mapping[str, Any] | None:
        return options.quotas(_smb_shares(desired)) or None
