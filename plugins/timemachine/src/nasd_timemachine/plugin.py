"""The Time Machine plugin's hook implementations: fruit options for the SMB plugin's shares (through the
hooks the SMB plugin declares), and the quota of a Time Machine share's dataset (through the core's
``dataset_properties``). It imports neither the SMB nor the ZFS plugin."""

from __future__ import annotations

import asyncio
import json
import re
import socket
from pathlib import Path
from typing import Any, Mapping

from nasd.context import Context
from nasd.hookspecs import hookimpl
from nasd.models import NASShare, NASUser, Resource, ZDataset
from nasd.models.shares import TimeMachineStatus
from nasd.state import write_json

from . import advertise, options

NAME = "timemachine"
_ANY = "timemachine-any"
_WANTED = "timemachine-wanted"  # the Time Machine share names the last pass declared
_SEEN = "timemachine-seen"  # share name -> (ok, message) from the last check by browsing
_EVENT = "timemachine-event"


def _host(ctx: Context) -> str:
    name = str(ctx.settings(NAME).get("hostName") or socket.gethostname().split(".")[0])
    return re.sub(r"[^A-Za-z0-9-]", "-", name)[:63] or "nasd"


def _mdns(ctx: Context) -> str:
    """How records are published: auto (avahi when it runs, else nasd itself), avahi, zeroconf or off."""
    return str(ctx.settings(NAME).get("mdns", "auto"))


def _interfaces(ctx: Context) -> list[str]:
    return [str(i) for i in ctx.settings(NAME).get("interfaces", [])]


def _backend(ctx: Context) -> advertise.Backend | None:
    mode = _mdns(ctx)
    folder = Path(str(ctx.settings(NAME).get("avahiServicesDir", "/etc/avahi/services")))
    if mode == "off":
        return None
    if mode == "avahi" or (mode == "auto" and Path("/run/avahi-daemon/socket").exists() and folder.is_dir()):
        return advertise.AvahiBackend(folder)
    return advertise.ZeroconfBackend(_interfaces(ctx))


@hookimpl
def startup(ctx: Context) -> None:
    if ctx.watch and _mdns(ctx) != "off":
        ctx.cache[_EVENT] = asyncio.Event()
        ctx.spawn(_advertise(ctx), "timemachine-mdns")


#: seconds between checks: soon after a failure or a record not seen (backing off), else every RECHECK
RETRY, RECHECK = 2.0, 300.0


async def _advertise(ctx: Context) -> None:
    """Keep the mDNS records equal to the declared Time Machine shares, then check them by browsing; a
    changed result asks for a pass, which puts it on the shares' ``Advertised`` condition. A failure or a
    record not seen is tried again (2 s, doubling to 5 min); a good state is checked every 5 min."""
    event: asyncio.Event = ctx.cache[_EVENT]
    backend = None
    published: dict[str, advertise.Service] | None = None
    wait = RECHECK
    try:
        while True:
            try:
                await asyncio.wait_for(event.wait(), wait)
            except asyncio.TimeoutError:
                pass
            event.clear()
            shares = sorted(ctx.cache.get(_WANTED, ()))
            try:
                host = _host(ctx)
                model = str(ctx.settings(NAME).get("model", options.DEFAULT_MODEL))
                port = int(ctx.settings("smb").get("port", 445))
                records = advertise.services(host, port, shares, model)
                if records != published:
                    backend = backend or _backend(ctx)
                    if backend is not None:
                        await backend.publish(host, records)
                    published = records
                seen = await advertise.browse(host, list(records), _interfaces(ctx)) if records else {}
                result = advertise.verdicts(host, shares, records, seen)
            except Exception as e:  # no multicast, avahi folder not writable, a bad setting: said on the shares
                ctx.log.error("mDNS advertisement failed: %s", e)
                published = None  # publish again next time
                result = {name: (False, f"advertising failed: {type(e).__name__}: {e}") for name in shares}
            good = all(ok for ok, _ in result.values())
            wait = RECHECK if good else (RETRY if wait >= RECHECK else min(RECHECK, wait * 2))
            if result != ctx.cache.get(_SEEN):
                ctx.cache[_SEEN] = result
                ctx.request_reconcile("Time Machine advertisement checked")
    finally:
        if backend is not None:
            await backend.close()


def _smb_shares(resources: list[Resource]) -> list[NASShare]:
    return [r for r in resources if isinstance(r, NASShare) and r.spec.protocol == "smb"]


@hookimpl
def supply_desired_state(ctx: Context, feed: Any) -> None:
    """The per-user datasets derived before a restart, so that they do not look deleted until the first
    observation derives them again (they are Retain: that would only forget them, but say so in the log)."""
    ctx.cache["timemachine-feed"] = feed
    try:
        saved = [ZDataset.model_validate(m) for m in json.loads(_derived_file(ctx).read_text())]
    except (OSError, ValueError):
        saved = []
    if saved:
        feed.replace("timemachine", saved)
        ctx.cache["timemachine-fed"] = [d.to_manifest(with_status=False) for d in saved]


def _derived_file(ctx: Context) -> Path:
    return ctx.state_dir / "timemachine-derived.json"


@hookimpl
def observe(ctx: Context, desired: list[Resource]) -> Mapping[str, Any] | None:
    shares = _smb_shares(desired)
    feed = ctx.cache.get("timemachine-feed")
    if feed is not None:
        # per-user datasets are desired state derived from the shares (not a change to the system: the ZFS
        # plugin makes them, in the pass this wakes); Retain, so one that stops being derived keeps its data
        datasets = {r.name: r for r in desired if isinstance(r, ZDataset)}
        users = {r.name: r for r in desired if isinstance(r, NASUser)}
        derived = options.per_user_datasets(shares, datasets, users)
        manifests = [d.to_manifest(with_status=False) for d in derived]
        if manifests != ctx.cache.get("timemachine-fed", []):
            write_json(_derived_file(ctx), manifests)  # (nasd's own state file, not the system)
            feed.replace("timemachine", derived)
            ctx.cache["timemachine-fed"] = manifests
    ctx.cache[_ANY] = any(options.is_time_machine(s) for s in shares)
    wanted = sorted((s.spec.smb.name or s.name) for s in shares if options.is_time_machine(s))  # type: ignore[union-attr]
    if wanted != ctx.cache.get(_WANTED) and _EVENT in ctx.cache:
        ctx.cache[_WANTED] = wanted
        ctx.cache[_EVENT].set()  # the advertiser follows (it does not write anything the pass plans)
    return None


@hookimpl(optionalhook=True)  # (declared by the SMB plugin: without it, never called)
def smb_share_status(ctx: Context, share: NASShare, dataset: ZDataset) -> Mapping[str, Any] | None:
    if not options.is_time_machine(share):
        # (no longer one: its Time Machine status and its Advertised condition go)
        if getattr(share.status, "timeMachine", None) is None and share.condition("Advertised") is None:
            return None
        return {"status": {"timeMachine": None}, "removeConditions": ["Advertised"]}
    tm = share.spec.smb.timeMachine  # type: ignore[union-attr]
    name = share.spec.smb.name or share.name  # type: ignore[union-attr]
    status = TimeMachineStatus(advertisedAs=_host(ctx) if _EVENT in ctx.cache else None,
                               quota=tm.maxSize if tm else None, used=dataset.status.used)
    out: dict[str, Any] = {"status": {"timeMachine": status}}
    if _EVENT in ctx.cache:
        seen = (ctx.cache.get(_SEEN) or {}).get(name)
        if seen is None:
            out["conditions"] = [("Advertised", None, "Checking", "publishing over mDNS, then browsing for it")]
        else:
            out["conditions"] = [("Advertised", seen[0], "Seen" if seen[0] else "NotSeen", seen[1])]
    return out


@hookimpl
async def shutdown(ctx: Context) -> None:
    ctx.cache.pop(_EVENT, None)  # (the advertiser task is cancelled by the core; its finally unpublishes)


@hookimpl(optionalhook=True)  # (declared by the SMB plugin: without it, never called)
def smb_global_options(ctx: Context, shares: list[NASShare]) -> Mapping[str, Any] | None:
    model = str(ctx.settings(NAME).get("model", options.DEFAULT_MODEL))
    opts = options.global_options(shares, model)
    if opts and _mdns(ctx) != "off":
        opts["multicast dns register"] = "no"  # nasd advertises (smbd would only at its start)
    return opts or None


@hookimpl(optionalhook=True)  # (declared by the SMB plugin: without it, never called)
def smb_share_options(ctx: Context, share: NASShare, dataset: ZDataset) -> Mapping[str, Any] | None:
    if not ctx.cache.get(_ANY):
        return None
    return options.share_options(share, dataset.status.mountpoint or "")


@hookimpl
def dataset_properties(ctx: Context, datasets: list[ZDataset], desired: list[Resource]) -> Mapping[str, Any] | None:
    return options.quotas(_smb_shares(desired)) or None
