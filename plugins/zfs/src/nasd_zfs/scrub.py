"""Scrubs on a schedule (ZPool ``spec.scrub``): when one is due, the command that starts it, and what the
plugin remembers between passes.

When the last scrub was is read from the pool itself (the scan line of `zpool status`), so a restarted nasd
knows it. A tick of the schedule (cron and/or interval, as ZSnapshotSchedule's) since then makes a scrub due;
however many ticks were missed (nasd was down, the clock was set forward) that starts ONE scrub. The time nasd
started the last one is remembered too (in the state folder) and counts as the last scrub: at most one scrub is
started per due tick, even while the pool still shows the scan before it. A clock set back behind the last scrub
starts none: from then the schedule counts from the time the clock was first seen behind. Nothing starts while
a scrub or a resilver runs (a `zpool scrub` then would restart it: zfs-fuse does), nor on a pool that cannot do
I/O.

zfs-fuse's `zpool scrub` returns only once the scrub is done (OpenZFS returns at once): it runs in a task of
its own, so a pass never waits for a scrub.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nasd.plugin import Action, CommandError, Context, ZPool, next_tick, write_json

from .health import PoolHealth, ScanInfo

log = logging.getLogger("nasd.zfs.scrub")
#: states of a pool a scrub cannot run on
NO_IO = ("FAULTED", "UNAVAIL", "SUSPENDED", "REMOVED")
#: how long starting a scrub waits for `zpool scrub` before leaving it to run on (zfs-fuse blocks until done)
START_WAIT_SECONDS = 0.5


def iso(t: float | None) -> str | None:
    return None if t is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


@dataclass
class ScrubBook:
    """What the plugin remembers about scrubs. ``started`` and ``scrubbed`` are kept in ``path`` (when given)."""

    path: Path | None = None
    #: pool -> when (by nasd's clock) nasd last started a scrub of it
    started: dict[str, float] = field(default_factory=dict)
    #: pool -> the last finished scrub seen (kept when a resilver takes the scan line)
    scrubbed: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: pool -> when the clock was first seen behind the pool's last scrub
    behind: dict[str, float] = field(default_factory=dict)
    #: pool -> (when, why) the last start of a scrub failed
    failed: dict[str, tuple[float, str]] = field(default_factory=dict)
    #: pools whose `zpool scrub` runs now (in its own task)
    running: set[str] = field(default_factory=set)
    loaded: bool = False

    def load(self) -> None:
        if self.loaded or self.path is None:
            self.loaded = True
            return
        self.loaded = True
        try:
            data = json.loads(self.path.read_text())
            self.started = {str(k): float(v) for k, v in (data.get("started") or {}).items()}
            self.scrubbed = {str(k): dict(v) for k, v in (data.get("scrubbed") or {}).items() if isinstance(v, dict)}
        except FileNotFoundError:
            pass
        except (OSError, ValueError, TypeError, AttributeError) as e:  # a damaged file: only a memory
            log.warning("cannot read %s (%s): scrub times are taken from the pools alone", self.path, e)

    def save(self) -> None:
        if self.path is None:
            return
        try:
            write_json(self.path, {"started": self.started, "scrubbed": self.scrubbed})
        except OSError as e:
            log.warning("cannot save %s: %s (the pools' own scan lines still say when they were scrubbed)",
                        self.path, e.strerror or e)

    def seen(self, pool: str, scan: ScanInfo) -> None:
        """Remember a finished scrub (a resilver later takes the scan line's place)."""
        if scan.kind == "scrub" and scan.state == "finished" and scan.ended is not None:
            known = self.scrubbed.get(pool)
            if known is None or known.get("ended") != scan.ended:
                self.scrubbed[pool] = {"ended": scan.ended, "started": scan.started, "errors": scan.errors,
                                       "repaired": scan.repaired, "duration": scan.duration}
                self.save()

    def last_scrub(self, pool: str, scan: ScanInfo) -> ScanInfo | None:
        """The last scrub that ended: the scan line's, or the one remembered."""
        if scan.kind == "scrub" and scan.state == "finished":
            return scan
        known = self.scrubbed.get(pool)
        if known is None:
            return None
        return ScanInfo(kind="scrub", state="finished", ended=known.get("ended"), started=known.get("started"),
                        errors=known.get("errors"), repaired=known.get("repaired"), duration=known.get("duration"))


@dataclass
class ScrubDecision:
    start: bool = False
    #: the tick that makes it due (when ``start``), or the next one
    due: float | None = None
    #: when a pass must come to start the next scrub (None: none to plan, or one runs now)
    wake: float | None = None
    #: the time the schedule counts from (the last scrub, or the time the clock went behind it)
    since: float | None = None
    why: str = ""


def last_time(scan: ScanInfo, remembered: ScanInfo | None, started: float | None) -> float | None:
    """When the pool was last scrubbed, for the schedule: the end of the last scrub (or of one cancelled: a
    scrub stopped by hand is not started again before the next tick), or when nasd last started one."""
    times = [t for t in (scan.ended if scan.kind == "scrub" else None,
                         scan.started if scan.kind == "scrub" and scan.running else None,
                         remembered.ended if remembered is not None else None,
                         started) if t is not None]
    return max(times) if times else None


def decide(pool: ZPool, health: PoolHealth, book: ScrubBook, now: float) -> ScrubDecision:
    """Whether a scrub of ``pool`` starts in this pass, and when the next pass for one must come."""
    spec = pool.spec.scrub
    if spec is None:
        return ScrubDecision(why="no spec.scrub")
    cron, interval = spec.schedule.cron, spec.schedule.interval
    scan = health.scan
    if scan.running or pool.name in book.running:
        return ScrubDecision(why=f"a {scan.kind or 'scrub'} runs now")
    if health.state in NO_IO:
        return ScrubDecision(why=f"pool {pool.name} is {health.state}")
    last = last_time(scan, book.last_scrub(pool.name, scan), book.started.get(pool.name))
    if last is None:  # never scrubbed (or not since a resilver took the scan line): due at once
        book.behind.pop(pool.name, None)
        return ScrubDecision(start=True, due=now, wake=next_tick(cron, interval, now), why="never scrubbed")
    since = last
    if now < last:  # the clock is behind the last scrub: count from when that was first seen
        since = book.behind.setdefault(pool.name, now)
    else:
        book.behind.pop(pool.name, None)
    due = next_tick(cron, interval, since)
    if due <= now:
        return ScrubDecision(start=True, due=due, since=since, wake=next_tick(cron, interval, now),
                             why=f"due since {iso(due)} (last scrub {iso(last)})")
    return ScrubDecision(due=due, since=since, wake=due, why=f"next due {iso(due)}")


def scrub_action(pool: str, book: ScrubBook, decision: ScrubDecision, now: float) -> Action:
    """`zpool scrub POOL`, in a task of its own. It never fails the pool's plan: a scrub that cannot start is
    recorded (condition ScrubOverdue says why) and tried again at the next tick."""

    async def start(ctx: Context) -> None:
        book.started[pool] = now
        book.failed.pop(pool, None)
        book.save()
        book.running.add(pool)

        async def run() -> None:
            try:
                await ctx.runner.run(["zpool", "scrub", pool], mutating=True, timeout=366 * 86400.0)
            except CommandError as e:
                said = "; ".join(ln.strip() for ln in e.stderr.split("\n") if ln.strip()) or str(e)
                book.failed[pool] = (now, said[:300])
                log.warning("the scrub of pool %s did not start: %s", pool, said)
            except Exception as e:  # (the runner itself: never leaves the task's error unread)
                book.failed[pool] = (now, str(e)[:300])
                log.warning("the scrub of pool %s did not start: %s", pool, e)
            finally:
                book.running.discard(pool)
            ctx.request_reconcile(f"the scrub of pool {pool} ended")

        task = ctx.spawn(run(), f"scrub-{pool}")
        await asyncio.wait({task}, timeout=START_WAIT_SECONDS)
        log.info("scrub of pool %s started (%s)", pool, decision.why)

    return Action(f"scrub pool {pool} ({decision.why})", func=start)
