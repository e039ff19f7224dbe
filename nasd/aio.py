"""Small asyncio helpers the core and plugins share."""

from __future__ import annotations

import asyncio


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
