"""When something runs on its own: a cron expression and/or a fixed interval (UTC). Used by ZSnapshotSchedule's
``spec.schedule`` and ZPool's ``spec.scrub.schedule``: the same syntax and the same validation."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, model_validator

from .base import StrictModel
from .timing import parse_cron, parse_interval


def _cron(value: str) -> str:
    # five fields in range (the error names the field), and one that never fires (say, February 31) is
    # refused here, not at run time
    parse_cron(value).next_after(0.0)
    return value


def _interval(value: str) -> str:
    parse_interval(value)
    return value


class Schedule(StrictModel):
    cron: Annotated[str, AfterValidator(_cron)] | None = None
    interval: Annotated[str, AfterValidator(_interval)] | None = None

    @model_validator(mode="after")
    def _some(self) -> "Schedule":
        if self.cron is None and self.interval is None:
            raise ValueError("give cron (e.g. '0 * * * *') and/or interval (e.g. 15m)")
        return self
