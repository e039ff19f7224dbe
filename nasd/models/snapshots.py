"""ZSnapshotSchedule and ZSnapshotRestore: snapshots on a schedule, and restore by clone."""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from .base import DeletionPolicy, Resource, ResourceName, Status, StrictModel
from .shares import ShareName
from .schedule import Schedule
from .zfs import check_dataset_path

_FORMAT = re.compile(r"(?:[A-Za-z0-9_.:-]|%[A-Za-z]){1,200}")  # every % starts a code
_SNAPSHOT = re.compile(r"[A-Za-z0-9_.:-]+")
#: a snapshot's name, or the start of one: what follows the '@' (ZFS: at most 255 in all)
SnapshotName = Annotated[str, Field(max_length=200, pattern=f"^{_SNAPSHOT.pattern}$")]


def _format(value: str) -> str:
    codes = re.findall(r"%(.)", value)
    if not _FORMAT.fullmatch(value) or any(c not in "YmdHMS" for c in codes) or not {"Y", "m", "d", "H", "M"} <= set(codes) \
            or len(codes) != len(set(codes)):
        raise ValueError(
            f"{value!r} is not a snapshot name format: letters, digits, '_.:-' and each of the codes %Y %m %d %H %M "
            "once (%S optional, no other codes), at most 200 characters, so that every name says its UTC time, e.g. GMT-%Y.%m.%d-%H.%M.%S"
        )
    return value


class Retention(StrictModel):
    """Which of the snapshots a schedule made are kept; everything else it made is pruned.

    ``keepLast`` keeps the newest N. Each grid rule keeps the newest snapshot of each of the last N
    UTC hours/days/ISO weeks/months/years that have snapshots (so downtime does not shorten the
    history). A snapshot any rule keeps is kept. All counts 0 (the default) keeps every snapshot.
    """

    keepLast: int = Field(default=0, ge=0)
    hourly: int = Field(default=0, ge=0)
    daily: int = Field(default=0, ge=0)
    weekly: int = Field(default=0, ge=0)
    monthly: int = Field(default=0, ge=0)
    yearly: int = Field(default=0, ge=0)


class ZSnapshotScheduleSpec(StrictModel):
    datasets: list[ResourceName] = Field(min_length=1, description="ZDataset names")
    recursive: bool = Field(default=False, description="Also snapshot every dataset below them")
    exclude: list[Annotated[str, AfterValidator(check_dataset_path)]] = Field(
        default_factory=list,
        description="With recursive: datasets below the pool (like ZDataset path, e.g. media/tmp) left out, "
        "together with everything below them",
    )
    schedule: Schedule
    format: Annotated[str, AfterValidator(_format)] = "GMT-%Y.%m.%d-%H.%M.%S"
    retention: Retention = Field(default_factory=Retention)
    pruneConfirmThreshold: int = Field(
        default=10, ge=0, description="A policy change pruning more than this waits for a confirmation annotation"
    )


class ZSnapshotScheduleStatus(Status):
    lastSnapshot: str | None = None
    lastRun: str | None = None
    nextRun: str | None = None
    #: snapshots this schedule made that exist now (all its datasets)
    snapshots: int | None = None
    #: per rule of the retention grid, how many snapshots it keeps (summed over the datasets)
    kept: dict[str, int] | None = None
    #: how many existing snapshots a changed retention policy would prune, while it waits for confirmation
    pendingPrune: int | None = None
    #: the retention policy in effect (a changed spec.retention takes effect once confirmed or small enough)
    retentionApplied: dict[str, int] | None = None
    datasets: list[str] | None = None


class ZSnapshotSchedule(Resource):
    plural: ClassVar[str] = "zsnapshotschedules"
    short_names: ClassVar[tuple[str, ...]] = ("zss",)
    phase: ClassVar[int] = 60
    key_column: ClassVar[tuple[str, str] | None] = ("Last", ".status.lastSnapshot")

    kind: Literal["ZSnapshotSchedule"] = "ZSnapshotSchedule"
    spec: ZSnapshotScheduleSpec
    status: ZSnapshotScheduleStatus = Field(default_factory=ZSnapshotScheduleStatus)

    def dependencies(self) -> list[tuple[str, str, str]]:
        return [("ZDataset", d, "DatasetNotReady") for d in self.spec.datasets]


class SnapshotSelector(StrictModel):
    newest: bool = True
    prefix: SnapshotName | None = None


class RestoreSource(StrictModel):
    dataset: ResourceName
    snapshot: SnapshotName | None = None
    selector: SnapshotSelector | None = None

    @model_validator(mode="after")
    def _one(self) -> "RestoreSource":
        if (self.snapshot is None) == (self.selector is None):
            raise ValueError("give either snapshot (a name) or selector (the newest matching one)")
        return self


class RestoreTarget(StrictModel):
    path: Annotated[str, AfterValidator(check_dataset_path)] = Field(
        description="The new dataset below the source's pool: 'restore/media' is <pool>/restore/media"
    )
    readOnly: bool = Field(default=True, description="Make the clone read-only (readonly=on)")


class RestoreShare(StrictModel):
    protocol: Literal["smb", "nfs"] = "smb"
    name: ShareName = Field(description="smb: the share name clients see; nfs: a name for the share only")
    readOnly: bool = True
    fsid: int | None = Field(default=None, ge=1, le=4294967295,
                             description="nfs: the export's fsid (needed where the clone is on FUSE, zfs-fuse)")


def _mode(value: str) -> str:
    if value != "clone":
        raise ValueError(
            f"{value!r} is not supported: only 'clone' restores (a new dataset from the snapshot, the live "
            "data untouched); 'rollback' is out of scope: use mode: clone and copy back what you need"
        )
    return value


class ZSnapshotRestoreSpec(StrictModel):
    mode: Annotated[str, AfterValidator(_mode)] = Field(default="clone", description="Only 'clone'")
    source: RestoreSource
    target: RestoreTarget
    share: RestoreShare | None = None
    deletionPolicy: DeletionPolicy = Field(
        default="Retain", description="Destroy: deleting the restore also destroys the clone"
    )


class ZSnapshotRestoreStatus(Status):
    snapshot: str | None = None
    clone: str | None = None
    mountpoint: str | None = None
    share: str | None = None
    hold: str | None = None


class ZSnapshotRestore(Resource):
    plural: ClassVar[str] = "zsnapshotrestores"
    short_names: ClassVar[tuple[str, ...]] = ("zsr",)
    phase: ClassVar[int] = 70
    key_column: ClassVar[tuple[str, str] | None] = ("Target", ".spec.target.path")

    kind: Literal["ZSnapshotRestore"] = "ZSnapshotRestore"
    spec: ZSnapshotRestoreSpec
    status: ZSnapshotRestoreStatus = Field(default_factory=ZSnapshotRestoreStatus)

    @field_validator("metadata")
    @classmethod
    def _short_name(cls, metadata: Any) -> Any:
        if len(metadata.name) > 200:  # it names the hold tag and the clone's ZDataset and share
            raise ValueError("a ZSnapshotRestore name may be at most 200 characters")
        return metadata

    def dependencies(self) -> list[tuple[str, str, str]]:
        return [("ZDataset", self.spec.source.dataset, "DatasetNotReady")]
