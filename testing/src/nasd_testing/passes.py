"""Running reconcile passes in tests, as the daemon would."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Callable

from nasd.reconciler import PassReport


async def converge(nasd: Any, passes: int = 8) -> PassReport:
    """Passes until one changes nothing (its report is returned); fails naming what still ran."""
    report = None
    for _ in range(passes):
        report = await nasd.reconciler.run_pass(ignore_backoff=True)
        if not report.mutated:
            return report
    still = [(o.key, [a.description for a in o.actions]) for o in report.outcomes if o.actions] if report else []
    raise AssertionError(f"did not converge in {passes} passes; still running: {still}")


async def wait_for(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> float:
    """Seconds until ``check()`` holds, while the daemon's loop (in this event loop) runs on."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)
    return time.monotonic() - start
