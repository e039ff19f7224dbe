"""The task that asks for a pass when a pool's scrub is due, as the snapshots plugin's timer does for its
schedules: without it a due scrub would wait for the next periodic resync.

It is the core's :func:`wall_clock_timer` on the earliest due time of the pools: a wall clock set forward makes
the scrub due at the timer's next wake; a jump either way asks for a pass at once (which plans from the new time;
scrub.decide keeps that to one scrub per due tick, and none for a clock set back). A due time that a pass did not
move on is asked for again less and less often."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable

from nasd.plugin import Context, wall_clock_timer

log = logging.getLogger("nasd.zfs.scrub")


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
        def jumped(jump: float, wall: float) -> None:
            log.warning("the wall clock jumped %s by %.0f s: planning the pools' scrubs from %s",
                        "forward" if jump > 0 else "back", abs(jump),
                        time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(wall)))
            ctx.request_reconcile("the wall clock jumped")

        await wall_clock_timer(changed, self.clock, lambda: min(self.due.values()) if self.due else None,
                               lambda: ctx.request_reconcile("a pool's scrub is due"), jumped)
