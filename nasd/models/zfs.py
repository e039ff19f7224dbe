"""ZPool and ZDataset: the storage every share sits on."""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BeforeValidator, Field, WithJsonSchema, field_validator, model_validator

from .base import AbsolutePath, DeletionPolicy, Resource, ResourceName, Status, StrictModel
from .quantity import ALLOWED, parse_quantity
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


class ZPoolSpec(StrictModel):
    vdevs: list[Vdev] = Field(min_length=1, description="The pool layout; a pool that differs is reported, never recreated")
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


class ZPoolStatus(Status):
    health: str | None = None
    size: int | None = None
    free: int | None = None
    capacity: str | None = None
    mountpoint: str | None = None


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
