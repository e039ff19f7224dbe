"""Running reconcile passes in tests, as the daemon would."""

from __future__ import annotations

from typing import Any

from ..reconciler import PassReport


async def converge(nasd: Any, passes: int = 8) -> PassReport:
    """Passes until one changes nothing (its report is returned); fails naming what still ran."""
    report = None
    for _ in range(passes):
        report = await nasd.reconciler.run_pass(ignore_backoff=True)
        if not report.mutated:
            return report
    still = [(o.key, [a.description for a in o.actions]) for o in report.outcomes if o.actions] if report else []
    raise AssertionError(f"did not converge in {passes} passes; still running: {still}")
