"""Small asyncio helpers the core and plugins share."""

from __future__ import annotations

import asyncio
import time
from typing import Callable

#: the wall-clock timer sleeps (on the monotonic clock) at most this long before it reads the wall clock again: a
#: wall clock set forward makes a due time come within this time, not after the hours the sleep was planned for
CLOCK_CHECK_SECONDS = 5.0
#: the wall clock moving this much more (or less) than the monotonic clock between two wakes is a jump
JUMP_SECONDS = 30.0
#: a due time is acted on at most this often (one that a pass cannot act on yet never spins the daemon)
MIN_ASK_SECONDS = 1.0


async def wait_event(event: asyncio.Event, timeout: float) -> bool:
    """Wait until ``event`` is set or ``timeout`` seconds pass; whether it was set.

    Not ``asyncio.wait_for(event.wait(), timeout)``: on Python 3.11 that can swallow the cancellation that stops
    the daemon when the event is set at the same moment (python/cpython#86296, fixed in 3.12), and a task
    looping on it then never ends."""
    waiter = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait({waiter}, timeout=timeout)
    finally:
        waiter.cancel()
    return event.is_set()


async def wall_clock_timer(changed: asyncio.Event, clock: Callable[[], float], due: Callable[[], float | None],
                           on_due: Callable[[], None], on_jump: Callable[[float, float], None]) -> None:
    """Call ``on_due()`` once the wall clock (``clock``) reaches ``due()`` (None: nothing is due), and
    ``on_jump(jump, wall)`` when the wall clock jumps; until cancelled. Set ``changed`` when ``due()`` may have
    changed: the timer reads it again at once, so a sooner time is never slept through.

    It sleeps on the monotonic clock, never longer than CLOCK_CHECK_SECONDS, and compares the wall clock with it at
    every wake: a wall clock set forward makes the due time come at the next wake; one set back or forward by more
    than JUMP_SECONDS (``jump``: by how many seconds, negative for back) calls ``on_jump`` at once. A due time is
    acted on at most every MIN_ASK_SECONDS (counted from a jump too), and one that ``due()`` still gives after
    ``on_due()`` (what it asked for could not be done yet) less and less often, up to 32 times that."""
    offset = clock() - time.monotonic()
    asked, asked_for, repeats = float("-inf"), None, 0
    while True:
        changed.clear()  # (no await until the wait: a change from now on wakes it)
        wall, mono = clock(), time.monotonic()
        jump, offset = wall - mono - offset, wall - mono
        if abs(jump) >= JUMP_SECONDS:
            on_jump(jump, wall)
            asked = mono
        when = due()
        wait = CLOCK_CHECK_SECONDS if when is None else when - wall
        if when is not None and wait <= 0:
            again = when == asked_for  # (acted on already: that could not be done yet)
            wait = asked + MIN_ASK_SECONDS * 2 ** min(repeats if again else 0, 5) - mono
            if wait <= 0:
                on_due()
                repeats = repeats + 1 if again else 0
                asked, asked_for, wait = mono, when, CLOCK_CHECK_SECONDS
        await wait_event(changed, min(max(wait, 0.02), CLOCK_CHECK_SECONDS))
