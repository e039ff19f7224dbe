"""ZPool and ZDataset: the storage every share sits on."""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, Field, WithJsonSchema, field_validator, model_validator

from .base import AbsolutePath, DeletionPolicy, Resource, ResourceName, Status, StrictModel
from .quantity import ALLOWED, parse_quantity
from .schedule import Schedule
from .timing import parse_interval
from .zfs_properties import validate_properties

_POOL_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.:-]{0,200}")
_RESERVED_POOL = re.compile(r"(mirror|raidz|draid|spare|log|cache|special|dedup)|c[0-9]")  # a prefix refuses
_COMPONENT = re.compile(r"[A-Za-z0-9_.:-]+")


def check_pool_name(value: str) -> str:
    if not _POOL_NAME.fullmatch(value) or _RESERVED_POOL.match(value):
        raise ValueError(
            f"{value!r} is not a valid ZFS pool name: start with a letter, then letters, digits, "
            "'_', '-', '.', ':'; not 'mirror', 'raidz', 'spare', 'log', 'cache' or c<digit>"
        )
    return value


def check_dataset_path(value: str) -> str:
    parts = value.split("/")
    if not value or len(value) > 200 or any(not _COMPONENT.fullmatch(p) or p in (".", "..") for p in parts):
        raise ValueError(
            f"{value!r} is not a valid dataset path: components of letters, digits, '_', '-', '.', ':' "
            "separated by '/', without a leading or trailing '/', and no '@' or '#'"
        )
    return value


Properties = Annotated[dict[str, Any], AfterValidator(validate_properties)]
#: a size in a manifest is an integer or a string such as "500Gi": say so in JSON schemas and CRDs
SIZE_JSON_SCHEMA: dict[str, Any] = {
    "description": f"A size: {ALLOWED}",
    "anyOf": [{"type": "integer"}, {"type": "string"}],
    "pattern": r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei)?$",
    "x-kubernetes-int-or-string": True,
}
Size = Annotated[int, BeforeValidator(parse_quantity), WithJsonSchema(SIZE_JSON_SCHEMA)]

_MIN_DEVICES = {"stripe": 1, "mirror": 2, "raidz1": 2, "raidz2": 3, "raidz3": 4}


class Vdev(StrictModel):
    type: Literal["stripe", "mirror", "raidz1", "raidz2", "raidz3"] = "stripe"
    devices: list[AbsolutePath] = Field(min_length=1)

    @model_validator(mode="after")
    def _enough_devices(self) -> "Vdev":
        need = _MIN_DEVICES[self.type]
        if len(self.devices) < need:
            raise ValueError(f"a {self.type} vdev needs at least {need} devices, got {len(self.devices)}")
        if len(set(self.devices)) != len(self.devices):
            raise ValueError("a device is listed twice")
        return self


class ScrubSpec(StrictModel):
    """Scrubs on a schedule: nasd starts `zpool scrub` when a tick of the schedule has passed since the last
    scrub the pool itself reports, never while a scrub or resilver runs."""

    schedule: Schedule = Field(description="When to scrub: cron (UTC) and/or interval, as in ZSnapshotSchedule")
    maxAgeDays: int = Field(
        default=35, ge=1, le=3650,
        description="Condition ScrubOverdue when the last finished scrub is older than this many days")

    @model_validator(mode="after")
    def _age_after_interval(self) -> "ScrubSpec":
        if self.schedule.interval and parse_interval(self.schedule.interval) >= self.maxAgeDays * 86400:
            raise ValueError(f"maxAgeDays ({self.maxAgeDays}) must be longer than the interval "
                             f"({self.schedule.interval}), or every scrub is overdue before the next one is due")
        return self


class CapacityThresholds(StrictModel):
    """How full the pool may get before a condition says so (ZFS slows down as a pool fills)."""

    warningPercent: int = Field(default=80, ge=1, le=100, description="CapacityHigh (warning) from this percent used")
    criticalPercent: int = Field(default=95, ge=1, le=100, description="CapacityHigh (critical) from this percent used")

    @model_validator(mode="after")
    def _ordered(self) -> "CapacityThresholds":
        if self.warningPercent > self.criticalPercent:
            raise ValueError(f"warningPercent ({self.warningPercent}) must not be above criticalPercent "
                             f"({self.criticalPercent})")
        return self


class ZPoolSpec(StrictModel):
    vdevs: list[Vdev] = Field(min_length=1, description=(
        "The pool layout; edited, it replaces, attaches or adds devices (what cannot be undone waits for the "
        "annotation nasd.io/confirm-vdevs, what ZFS cannot do is refused); the pool is never recreated"))
    files: dict[AbsolutePath, Size] = Field(
        default_factory=dict, description="Sparse files nasd creates (if missing) to use as vdevs"
    )
    mountpoint: AbsolutePath | None = Field(default=None, description="Defaults to <mountRoot>/<pool>")
    properties: Properties = Field(default_factory=dict, description="File system properties of the root dataset")
    node: ResourceName | None = Field(default=None, description="The node that holds the pool (Kubernetes)")
    overwriteDevices: bool = Field(
        default=False, description="Create the pool even over devices or files that hold data (a file system, "
                                   "a partition table, an old pool's label, any bytes in a file): it is lost")
    deletionPolicy: DeletionPolicy = "Retain"
    destroyRecursive: bool = Field(
        default=False, description="With deletionPolicy Destroy: destroy the pool even if it holds datasets"
    )
    scrub: ScrubSpec | None = Field(default=None, description="Scrub on a schedule (none: nasd starts no scrub)")
    capacity: CapacityThresholds = Field(default_factory=CapacityThresholds,
                                         description="Percent used at which condition CapacityHigh warns")

    @model_validator(mode="after")
    def _files_are_devices(self) -> "ZPoolSpec":
        devices = [d for v in self.vdevs for d in v.devices]
        if len(set(devices)) != len(devices):
            raise ValueError("vdevs: a device is used in more than one vdev")
        stray = sorted(set(self.files) - set(devices))
        if stray:
            raise ValueError(f"files: {', '.join(stray)} is not a device of any vdev")
        for path, size in self.files.items():
            if size < 64 << 20:
                raise ValueError(f"files: {path} must be at least 64Mi (ZFS refuses smaller vdevs)")
        return self


class DeviceStatus(BaseModel):
    """One device of the pool as `zpool status` shows it."""

    name: str
    vdev: str | None = Field(default=None, description="The group it is in (mirror-0, raidz1-0, replacing-1)")
    state: str
    read: int = 0
    write: int = 0
    checksum: int = 0
    note: str | None = Field(default=None, description="What zpool prints after the counters (25.7M repaired, "
                                                         "(resilvering), cannot open)")


class ScanStatus(BaseModel):
    """A scrub or resilver: the one running, or the last one."""

    kind: Literal["scrub", "resilver"]
    state: Literal["running", "paused", "finished", "canceled"]
    percentDone: float | None = None
    secondsLeft: int | None = Field(default=None, description="As zpool estimates it (none while it cannot)")
    startTime: str | None = None
    endTime: str | None = None
    errors: int | None = Field(default=None, description="Errors it could not repair")
    repairedBytes: int | None = Field(default=None, description="Bytes repaired (a resilver: bytes resilvered)")


class ZPoolStatus(Status):
    health: str | None = None
    size: int | None = None
    free: int | None = None
    capacity: str | None = None
    mountpoint: str | None = None
    devices: list[DeviceStatus] | None = None
    dataErrors: int | None = Field(default=None, description="Permanent data errors (`zpool status -v` lists them)")
    errorFiles: list[str] | None = None
    scan: ScanStatus | None = Field(default=None, description="The scrub or resilver running, or the last one")
    lastScrub: ScanStatus | None = Field(default=None, description="The last scrub that ended")
    nextScrub: str | None = None


class ZPool(Resource):
    plural: ClassVar[str] = "zpools"
    short_names: ClassVar[tuple[str, ...]] = ("zp",)
    phase: ClassVar[int] = 10
    key_column: ClassVar[tuple[str, str] | None] = ("Health", ".status.health")

    kind: Literal["ZPool"] = "ZPool"
    spec: ZPoolSpec
    status: ZPoolStatus = Field(default_factory=ZPoolStatus)

    @field_validator("metadata")
    @classmethod
    def _pool_name(cls, metadata: Any) -> Any:
        check_pool_name(metadata.name)
        return metadata


class DatasetOwner(StrictModel):
    """Who owns the dataset's top folder, set once it is mounted (numeric: the same on every node)."""

    uid: int = Field(ge=0, le=4294967294)
    gid: int | None = Field(default=None, ge=0, le=4294967294, description="Defaults to the group it has")
    mode: str | None = Field(default=None, pattern=r"^0?[0-7]{3,4}$", description="e.g. 0700")


class ZDatasetSpec(StrictModel):
    pool: str = Field(description="The ZPool (its metadata.name) the dataset lives in")
    path: Annotated[str, AfterValidator(check_dataset_path)] = Field(
        description="The dataset below the pool: 'media' is <pool>/media"
    )
    mountpoint: AbsolutePath | None = Field(default=None, description="Defaults to inheriting <pool mountpoint>/<path>")
    properties: Properties = Field(default_factory=dict)
    owner: DatasetOwner | None = Field(default=None, description="Owner, group and mode of its top folder")
    deletionPolicy: DeletionPolicy = "Retain"
    destroyRecursive: bool = Field(
        default=False,
        description="With deletionPolicy Destroy: also destroy child datasets and snapshots",
    )

    _pool_ok = field_validator("pool")(lambda cls, v: check_pool_name(v))


class ZDatasetStatus(Status):
    name: str | None = None
    mountpoint: str | None = None
    used: int | None = None
    available: int | None = None
    referenced: int | None = None
    compressratio: str | None = None


class ZDataset(Resource):
    plural: ClassVar[str] = "zdatasets"
    short_names: ClassVar[tuple[str, ...]] = ("zds",)
    phase: ClassVar[int] = 20
    key_column: ClassVar[tuple[str, str] | None] = ("Mountpoint", ".status.mountpoint")

    kind: Literal["ZDataset"] = "ZDataset"
    spec: ZDatasetSpec
    status: ZDatasetStatus = Field(default_factory=ZDatasetStatus)

    @property
    def zfs_name(self) -> str:
        return f"{self.spec.pool}/{self.spec.path}"

    def dependencies(self) -> list[tuple[str, str, str]]:
        return [("ZPool", self.spec.pool, "PoolNotReady")]
