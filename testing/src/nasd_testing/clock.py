"""A settable clock for tests of things that run on time (the snapshots plugin takes one:
``SnapshotsPlugin(clock=Clock(...))``)."""

from __future__ import annotations

import calendar
import time


def utc(text: str) -> float:
    """'2026-11-26 04:00:05' (UTC) -> epoch seconds."""
    return float(calendar.timegm(time.strptime(text, "%Y-%m-%d %H:%M:%S")))


class Clock:
    """Stands still at a UTC time until it is set to another."""

    def __init__(self, start: str):
        self.t = utc(start)

    def __call__(self) -> float:
        return self.t

    def set(self, text: str) -> None:
        self.t = utc(text)
