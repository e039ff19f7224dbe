"""The task that asks for a pass when a pool's scrub is due, as the snapshots plugin's timer does for its
schedules: without it a due scrub would wait for the next periodic resync.

It sleeps on the monotonic clock, at most CLOCK_CHECK_SECONDS at a time, and compares the wall clock with it
at every wake: a wall clock set forward makes the tick due at the next wake; a jump either way of more than
JUMP_SECONDS asks for a pass at once (which plans from the new time; scrub.decide keeps that to one scrub per
due tick, and none for a clock set back). A due time that a pass did not move on is asked for again less and
less often (MIN_ASK_SECONDS doubling, up to 32 times that)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable

from nasd.plugin import Context, wait_event

log = logging.getLogger("nasd.zfs.scrub")
CLOCK_CHECK_SECONDS = 5.0
JUMP_SECONDS = 30.0
MIN_ASK_SECONDS = 1.0


class Waker:
    def __init__(self, clock: Callable[[], float]):
        self.clock = clock
        #: pool -> when its next scrub is due (set by each pass's planning)
        self.due: dict[str, float] = {}
        self.event: asyncio.Event | None = None

    def due_at(self, pool: str, when: float | None) -> None:
        if when is None:
            self.due.pop(pool, None)
        else:
            self.due[pool] = when
        if self.event is not None:
            self.event.set()

    def keep_only(self, pools: set[str]) -> None:
        for name in set(self.due) - pools:
            del self.due[name]

    def start(self, ctx: Context) -> None:
        if ctx.watch and self.event is None:
            self.event = asyncio.Event()
            ctx.spawn(self._run(ctx, self.event), "zfs-scrub-schedules")

    async def _run(self, ctx: Context, changed: asyncio.Event) -> None:
        offset = self.clock() - time.monotonic()
        asked, asked_for, repeats = float("-inf"), None, 0
        while True:
            changed.clear()
            wall, mono = self.clock(), time.monotonic()
            jump, offset = wall - mono - offset, wall - mono
            if abs(jump) >= JUMP_SECONDS:
                log.warning("the wall clock jumped %s by %.0f s: planning the pools' scrubs from %s",
                            "forward" if jump > 0 else "back", abs(jump),
                            time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(wall)))
                ctx.request_reconcile("the wall clock jumped")
                asked = mono
            due = min(self.due.values()) if self.due else None
            wait = CLOCK_CHECK_SECONDS if due is None else due - wall
            if due is not None and wait <= 0:
                again = due == asked_for
                wait = asked + MIN_ASK_SECONDS * 2 ** min(repeats if again else 0, 5) - mono
                if wait <= 0:
                    ctx.request_reconcile("a pool's scrub is due")
                    repeats = repeats + 1 if again else 0
                    asked, asked_for, wait = mono, due, CLOCK_CHECK_SECONDS
            await wait_event(changed, min(max(wait, 0.02), CLOCK_CHECK_SECONDS))
