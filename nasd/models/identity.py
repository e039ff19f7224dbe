"""NASDirectory, NASUser and NASGroup: who may use the shares.

Users and groups are authoritative only in a ``local`` directory; ``ldap`` and ``ad``
directories describe where identities come from instead.
"""

from __future__ import annotations

import re
from typing import Annotated, ClassVar, Literal

from pydantic import AfterValidator, Field, WithJsonSchema, model_validator

from .base import AbsolutePath, Resource, ResourceName, Status, StrictModel


class SecretRef(StrictModel):
    """Where a secret lives: a root-only file in host mode, a Kubernetes Secret in a cluster."""

    file: AbsolutePath | None = None
    name: ResourceName | None = None
    key: str | None = Field(default=None, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$")

    @model_validator(mode="after")
    def _one_kind(self) -> "SecretRef":
        if (self.file is None) == (self.name is None):
            raise ValueError("give either file (host mode) or name and key (a Kubernetes Secret)")
        if self.name is not None and self.key is None:
            raise ValueError("key: a Kubernetes Secret reference needs the key inside the Secret")
        return self


_DN = re.compile(r"[^\s\[\];#%\\]([^\n\r\t\[\];#%\\]*[^\s\[\];#%\\])?")


def _dn(value: str) -> str:
    # a DN reaches smb.conf: nothing that could end its line, open a section or substitute
    if len(value) > 1024 or not _DN.fullmatch(value):
        raise ValueError(f"{value!r} is not a DN nasd accepts: write it like dc=example,dc=org, without "
                         "newlines, '[', ']', ';', '#', '%', '\\' or spaces at either end, at most 1024 characters")
    return value


DN = Annotated[str, AfterValidator(_dn), WithJsonSchema({"type": "string", "maxLength": 1024, "pattern": f"^{_DN.pattern}$"})]


class LDAPOptions(StrictModel):
    uri: str = Field(max_length=1024, pattern=r"^ldaps?://[A-Za-z0-9.-]+(:[0-9]+)?/?$")
    baseDN: DN
    bindDN: DN | None = None
    bindPasswordSecretRef: SecretRef | None = None


class ADOptions(StrictModel):
    realm: str = Field(max_length=253, pattern=r"^[A-Za-z0-9.-]+$")
    workgroup: str = Field(pattern=r"^[A-Za-z0-9-]{1,15}$")
    joinSecretRef: SecretRef | None = None


class NASDirectorySpec(StrictModel):
    type: Literal["local", "ldap", "ad"]
    ldap: LDAPOptions | None = None
    ad: ADOptions | None = None

    @model_validator(mode="after")
    def _options_match_type(self) -> "NASDirectorySpec":
        if self.type == "ldap" and self.ldap is None:
            raise ValueError("ldap: a directory of type ldap needs ldap.uri and ldap.baseDN")
        if self.type == "ad" and self.ad is None:
            raise ValueError("ad: a directory of type ad needs ad.realm and ad.workgroup")
        if self.type != "ldap" and self.ldap is not None:
            raise ValueError("ldap: options given for a directory that is not of type ldap")
        if self.type != "ad" and self.ad is not None:
            raise ValueError("ad: options given for a directory that is not of type ad")
        return self


class NASDirectory(Resource):
    plural: ClassVar[str] = "nasdirectories"
    short_names: ClassVar[tuple[str, ...]] = ("ndir",)
    phase: ClassVar[int] = 30
    key_column: ClassVar[tuple[str, str] | None] = ("Type", ".spec.type")

    kind: Literal["NASDirectory"] = "NASDirectory"
    spec: NASDirectorySpec


class NASUserSpec(StrictModel):
    directory: ResourceName
    uid: int = Field(ge=1000, le=2147483647, description="Numeric user id on the file system")
    primaryGroup: ResourceName | None = None
    groups: list[ResourceName] = Field(default_factory=list)
    fullName: str | None = Field(default=None, max_length=256, pattern=r"^[^\n\r:\[\];#\\]*$")
    passwordSecretRef: SecretRef | None = None
    disabled: bool = False


class NASUserStatus(Status):
    uid: int | None = None


class NASUser(Resource):
    plural: ClassVar[str] = "nasusers"
    short_names: ClassVar[tuple[str, ...]] = ("nusr",)
    phase: ClassVar[int] = 32
    key_column: ClassVar[tuple[str, str] | None] = ("UID", ".spec.uid")

    kind: Literal["NASUser"] = "NASUser"
    spec: NASUserSpec
    status: NASUserStatus = Field(default_factory=NASUserStatus)

    def dependencies(self) -> list[tuple[str, str, str]]:
        groups = dict.fromkeys(([self.spec.primaryGroup] if self.spec.primaryGroup else []) + self.spec.groups)
        return [("NASDirectory", self.spec.directory, "DirectoryNotReady")] + [
            ("NASGroup", g, "GroupNotReady") for g in groups
        ]


class NASGroupSpec(StrictModel):
    directory: ResourceName
    gid: int = Field(ge=1000, le=2147483647)
    members: list[ResourceName] = Field(default_factory=list)


class NASGroupStatus(Status):
    gid: int | None = None


class NASGroup(Resource):
    plural: ClassVar[str] = "nasgroups"
    short_names: ClassVar[tuple[str, ...]] = ("ngrp",)
    phase: ClassVar[int] = 31
    key_column: ClassVar[tuple[str, str] | None] = ("GID", ".spec.gid")

    kind: Literal["NASGroup"] = "NASGroup"
    spec: NASGroupSpec
    status: NASGroupStatus = Field(default_factory=NASGroupStatus)

    def dependencies(self) -> list[tuple[str, str, str]]:
        return [("NASDirectory", self.spec.directory, "DirectoryNotReady")]


