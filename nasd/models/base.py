"""The Kubernetes shape every resource shares: apiVersion, kind, metadata, spec, status.

Validation is strict: an unknown field is an error naming it. Names that later
reach a command line or a config file are checked here, before any plugin runs.
"""

from __future__ import annotations

import datetime as _dt
import re
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

API_GROUP = "nasd.io"
API_VERSION = "v1alpha1"
GROUP_VERSION = f"{API_GROUP}/{API_VERSION}"

#: a DNS subdomain: Kubernetes object names (resources, Secrets, nodes)
DNS_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")


def _check_resource_name(value: str) -> str:
    if not DNS_NAME.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a valid name: use lower-case letters, digits, '-' and '.', "
            "starting and ending with a letter or digit, at most 253 characters"
        )
    return value


ResourceName = Annotated[str, AfterValidator(_check_resource_name)]


def _check_absolute_path(value: str) -> str:
    if not value.startswith("/"):
        raise ValueError(f"{value!r} must be an absolute path (starting with '/')")
    if any(c in value for c in "\n\r\t\0") or any(p == ".." for p in value.split("/")):
        raise ValueError(f"{value!r}: a path may not contain '..' or control characters")
    if len(value) > 1024:
        raise ValueError("a path may be at most 1024 characters")
    return value


AbsolutePath = Annotated[str, AfterValidator(_check_absolute_path)]


class StrictModel(BaseModel):
    """Base for every spec part: unknown fields are errors, aliases are the manifest names."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, validate_assignment=False)


def _check_labels(value: dict[str, str]) -> dict[str, str]:
    for key, v in value.items():
        if not _LABEL_KEY.fullmatch(key):
            raise ValueError(f"label key {key!r} is not a valid Kubernetes label key")
        if not isinstance(v, str) or len(v) > 63 or "\n" in v:
            raise ValueError(f"label {key!r}: the value must be a string of at most 63 characters")
    return value


class Metadata(StrictModel):
    name: ResourceName
    namespace: str | None = None
    labels: Annotated[dict[str, str], AfterValidator(_check_labels)] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    generation: int | None = None
    uid: str | None = None
    resourceVersion: str | None = None
    creationTimestamp: str | None = None
    deletionTimestamp: str | None = None
    finalizers: list[str] = Field(default_factory=list)


class Condition(BaseModel):
    """One observation about a resource, the Kubernetes way (see ``nasd.conditions``)."""

    model_config = ConfigDict(extra="forbid")

    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str = ""
    observedGeneration: int | None = None
    lastTransitionTime: str = Field(
        default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    )


class Status(BaseModel):
    """Status common to every kind; each kind adds its own fields, plugins may add more."""

    model_config = ConfigDict(extra="allow")

    conditions: list[Condition] = Field(default_factory=list)
    observedGeneration: int | None = None


class Resource(BaseModel):
    """A resource: ``apiVersion``, ``kind``, ``metadata``, ``spec``, ``status``."""

    model_config = ConfigDict(extra="forbid")

    #: plural used in API paths and CRD names, set by each kind
    plural: ClassVar[str] = ""
    short_names: ClassVar[tuple[str, ...]] = ()
    #: the order in which kinds are reconciled: pools, then datasets, then the rest
    phase: ClassVar[int] = 50
    #: the spec field shown in `nasd get` and as a CRD printer column: (header, JSONPath in the object)
    key_column: ClassVar[tuple[str, str] | None] = None
    #: more CRD printer columns after the key column, e.g. a share's UNC path: (header, JSONPath, priority);
    #: priority 1 shows only in `kubectl get -o wide`
    extra_columns: ClassVar[tuple[tuple[str, str, int], ...]] = ()

    apiVersion: Literal["nasd.io/v1alpha1"] = GROUP_VERSION
    kind: str
    metadata: Metadata
    spec: Any
    status: Status = Field(default_factory=Status)

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def key(self) -> tuple[str, str]:
        return (self.kind, self.metadata.name)

    def replaced_by(self, new: "Resource") -> str | None:
        """Why ``new`` (the same kind and name) cannot be converged from this resource in place,
        so that the old one must be removed first; None when it can (the usual case)."""
        return None

    def dependencies(self) -> list[tuple[str, str, str]]:
        """Resources this one needs Ready first, as (kind, name, reason-when-not-ready)."""
        return []

    def condition(self, type_: str) -> Condition | None:
        for c in self.status.conditions:
            if c.type == type_:
                return c
        return None

    @property
    def ready(self) -> bool:
        c = self.condition("Ready")
        return c is not None and c.status == "True"

    def spec_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)["spec"]

    def to_manifest(self, *, with_status: bool = True) -> dict[str, Any]:
        data = self.model_dump(mode="json", by_alias=True, exclude_none=True)
        if not with_status:
            data.pop("status", None)
        return data


#: what happens to the data when the resource is deleted: Retain keeps it (and stops managing it)
DeletionPolicy = Literal["Retain", "Destroy"]
