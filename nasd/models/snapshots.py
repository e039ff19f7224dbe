"""ZSnapshotSchedule and ZSnapshotRestore: snapshots on a schedule, and restore by clone."""

from __future__ import annotations

import re
from typing import Annotated, ClassVar, Literal

from pydantic import AfterValidator, Field, model_validator

from .base import Resource, ResourceName, Status, StrictModel
from .shares import ShareName
from .zfs import check_dataset_path

_CRON_FIELD = re.compile(r"^[0-9*,/-]+$")
_INTERVAL = re.compile(r"^([0-9]+)(s|m|h|d)$")
_FORMAT = re.compile(r"^[A-Za-z0-9_.:%-]+$")
_SNAPSHOT = re.compile(r"^[A-Za-z0-9_.:-]+$")


def _cron(value: str) -> str:
    fields = value.split()
    if len(fields) != 5 or not all(_CRON_FIELD.match(f) for f in fields):
        raise ValueError(f"{value!r} is not a cron expression: five fields (minute hour day month weekday), UTC")
    return value


def _interval(value: str) -> str:
    m = _INTERVAL.match(value)
    if not m or int(m.group(1)) == 0:
        raise ValueError(f"{value!r} is not an interval: a whole number with s, m, h or d (e.g. 15m)")
    return value


def _format(value: str) -> str:
    if not _FORMAT.match(value) or "%" not in value:
        raise ValueError(
            f"{value!r} is not a snapshot name format: strftime codes (%Y %m %d %H %M %S) and letters, digits, '_.:-'"
        )
    return value


class Schedule(StrictModel):
    cron: Annotated[str, AfterValidator(_cron)] | None = None
    interval: Annotated[str, AfterValidator(_interval)] | None = None

    @model_validator(mode="after")
    def _some(self) -> "Schedule":
        if self.cron is None and self.interval is None:
            raise ValueError("give cron (e.g. '0 * * * *') and/or interval (e.g. 15m)")
        return self


class Retention(StrictModel):
    keepLast: int = Field(default=0, ge=0)
    hourly: int = Field(default=0, ge=0)
    daily: int = Field(default=0, ge=0)
    weekly: int = Field(default=0, ge=0)
    monthly: int = Field(default=0, ge=0)
    yearly: int = Field(default=0, ge=0)


class ZSnapshotScheduleSpec(StrictModel):
    datasets: list[ResourceName] = Field(min_length=1, description="ZDataset names")
    recursive: bool = False
    exclude: list[Annotated[str, AfterValidator(check_dataset_path)]] = Field(default_factory=list)
    schedule: Schedule
    format: Annotated[str, AfterValidator(_format)] = "GMT-%Y.%m.%d-%H.%M.%S"
    retention: Retention = Field(default_factory=Retention)
    pruneConfirmThreshold: int = Field(
        default=10, ge=0, description="A policy change pruning more than this waits for a confirmation annotation"
    )


class ZSnapshotSchedule(Resource):
    plural: ClassVar[str] = "zsnapshotschedules"
    short_names: ClassVar[tuple[str, ...]] = ("zss",)
    phase: ClassVar[int] = 60
    key_column: ClassVar[tuple[str, str] | None] = ("Last", ".status.lastSnapshot")

    kind: Literal["ZSnapshotSchedule"] = "ZSnapshotSchedule"
    spec: ZSnapshotScheduleSpec

    def dependencies(self) -> list[tuple[str, str, str]]:
        return [("ZDataset", d, "DatasetNotReady") for d in self.spec.datasets]


class SnapshotSelector(StrictModel):
    newest: bool = True
    prefix: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.:-]+$")


class RestoreSource(StrictModel):
    dataset: ResourceName
    snapshot: str | None = Field(default=None, pattern=_SNAPSHOT.pattern)
    selector: SnapshotSelector | None = None

    @model_validator(mode="after")
    def _one(self) -> "RestoreSource":
        if (self.snapshot is None) == (self.selector is None):
            raise ValueError("give either snapshot (a name) or selector (the newest matching one)")
        return self


class RestoreTarget(StrictModel):
    path: Annotated[str, AfterValidator(check_dataset_path)]


class RestoreShare(StrictModel):
    protocol: Literal["smb", "nfs"] = "smb"
    name: ShareName
    readOnly: bool = True


class ZSnapshotRestoreSpec(StrictModel):
    mode: Literal["clone"] = "clone"
    source: RestoreSource
    target: RestoreTarget
    share: RestoreShare | None = None


class ZSnapshotRestore(Resource):
    plural: ClassVar[str] = "zsnapshotrestores"
    short_names: ClassVar[tuple[str, ...]] = ("zsr",)
    phase: ClassVar[int] = 70
    key_column: ClassVar[tuple[str, str] | None] = ("Target", ".spec.target.path")

    kind: Literal["ZSnapshotRestore"] = "ZSnapshotRestore"
    spec: ZSnapshotRestoreSpec

    def dependencies(self) -> list[tuple[str, str, str]]:
        return [("ZDataset", self.spec.source.dataset, "DatasetNotReady")]
