"""NASShare: a dataset exposed over SMB or NFS.

Only the schema lives here; the protocol plugins render it. Every value that can
reach smb.conf or an exports line is checked against a strict pattern first.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, ClassVar, Literal

from pydantic import AfterValidator, BeforeValidator, Field, WithJsonSchema, model_validator

from .base import Resource, ResourceName, Status, StrictModel
from .quantity import parse_quantity
from .zfs import SIZE_JSON_SCHEMA

_SHARE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.$-]{0,79}")
_RESERVED_SHARES = {"global", "homes", "printers", "print$", "ipc$"}
_HOST = re.compile(
    r"[0-9.]+(?:/[0-9]{1,3})?"  # IPv4 (checked by ipaddress), optional prefix
    r"|[0-9A-Fa-f:]+(?:/[0-9]{1,3})?"  # IPv6 (checked by ipaddress), optional prefix
    r"|(?:\*\.?)?[A-Za-z0-9][A-Za-z0-9.-]*"  # host name, optional leading wildcard
    r"|@[A-Za-z0-9_.-]+"  # netgroup
    r"|\*"  # everyone (NFS: only with allowWorld)
)
_HOST_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
#: IPv4 clients as an IPv6 socket sees them (::ffff:a.b.c.d): a network over them reaches IPv4 clients
_V4_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")
_MODE = re.compile(r"0?[0-7]{3,4}")
_SAFE_VALUE = re.compile(r"[^\n\r\[\];#%\\\0]{0,1024}")

#: vetted extra smb.conf parameters a share may set; everything else is refused
SMB_EXTRA_PARAMETERS = frozenset(
    {
        "veto files",
        "hide dot files",
        "hide files",
        "follow symlinks",
        "wide links",
        "store dos attributes",
        "map archive",
        "map hidden",
        "map system",
        "inherit permissions",
        "inherit acls",
        "strict sync",
        "level2 oplocks",
        "kernel share modes",
        "posix locking",
        "smb encrypt",
        "max connections",
        "preserve case",
        "short preserve case",
        "default case",
    }
)


def _share_name(value: str) -> str:
    if not _SHARE_NAME.fullmatch(value) or value.lower() in _RESERVED_SHARES:
        raise ValueError(
            f"{value!r} is not a valid share name: letters, digits, '_', '-', '.', '$', at most 80, "
            "not global/homes/printers/ipc$"
        )
    return value


def _host(value: str) -> str:
    if len(value) > 253 or not _HOST.fullmatch(value):
        raise ValueError(f"{value!r} is not a host: use an IP address, a CIDR, a host name, *.domain or @netgroup")
    if value == "*" or value.startswith("@"):
        return value
    name = value[1:].lstrip(".") if value.startswith("*") else value
    last = name.rsplit(".", 1)[-1]
    if ":" in value or "/" in value or last.isdigit():  # an address or a network, never a host name
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise ValueError(f"{value!r} is not a valid address or network: an IPv4 address is four numbers "
                             "0-255 (no leading zeros), an IPv6 address as RFC 4291 writes it, and a prefix "
                             "length at most 32 (IPv4) or 128 (IPv6)") from None
        return value
    if any(not _HOST_LABEL.fullmatch(label) for label in name.split(".")):
        raise ValueError(f"{value!r} is not a valid host name: dot-separated labels of letters, digits and '-' "
                         "(not at either end), each at most 63 characters, at most 253 in all")
    return value


def networks(hosts: list[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """The networks (addresses, CIDRs) among ``hosts``, each host as it is (prefix bits past the length
    ignored, as exportfs does)."""
    out = []
    for h in hosts:
        if h != "*" and not h.startswith("@") and (":" in h or "/" in h or h.rsplit(".", 1)[-1].isdigit()):
            out.append(ipaddress.ip_network(h, strict=False))
    return out


def covers_everyone(hosts: list[str]) -> str | None:
    """How ``hosts`` together reach every client: '*', or networks whose union is all of IPv4 or of IPv6
    (``0.0.0.0/1`` with ``128.0.0.0/1`` is everyone as surely as ``0.0.0.0/0``); None when they do not.
    IPv6 networks over IPv4-mapped addresses (``::ffff:0:0/96``) count for IPv4 too."""
    if "*" in hosts:
        return "'*'"
    v4: list[ipaddress.IPv4Network] = []
    v6: list[ipaddress.IPv6Network] = []
    for net in networks(hosts):
        if isinstance(net, ipaddress.IPv4Network):
            v4.append(net)
            continue
        v6.append(net)
        if net.subnet_of(_V4_MAPPED):
            first = int(net.network_address) - int(_V4_MAPPED.network_address)
            v4.append(ipaddress.IPv4Network((first, net.prefixlen - 96)))
        elif net.supernet_of(_V4_MAPPED):
            v4.append(ipaddress.IPv4Network("0.0.0.0/0"))
    if [str(n) for n in ipaddress.collapse_addresses(v4)] == ["0.0.0.0/0"]:
        return "networks that together are every IPv4 address (0.0.0.0/0)"
    if [str(n) for n in ipaddress.collapse_addresses(v6)] == ["::/0"]:
        return "networks that together are every IPv6 address (::/0)"
    return None


def _mode(value: str) -> str:
    if not _MODE.fullmatch(value):
        raise ValueError(f"{value!r} is not an octal mode such as 0644 or 0775")
    return value


def _truthy(value: str) -> bool:
    """A Samba boolean as Samba reads it."""
    return value.strip().lower() in ("yes", "true", "1", "on")


def _extra(params: dict[str, str]) -> dict[str, str]:
    for key, value in params.items():
        if key not in SMB_EXTRA_PARAMETERS:
            raise ValueError(f"{key!r} is not an allowed extra parameter; allowed: {', '.join(sorted(SMB_EXTRA_PARAMETERS))}")
        if not isinstance(value, str) or not _SAFE_VALUE.fullmatch(value) or value != value.strip():
            raise ValueError(f"{key}: the value may not contain newlines, '[', ']', ';', '#', '%' or '\\', nor "
                             "spaces at either end, and is at most 1024 characters")
    return params


ShareName = Annotated[str, AfterValidator(_share_name)]
Host = Annotated[str, AfterValidator(_host)]
Mode = Annotated[str, AfterValidator(_mode)]
Size = Annotated[int, BeforeValidator(parse_quantity), WithJsonSchema(SIZE_JSON_SCHEMA)]


class TimeMachineOptions(StrictModel):
    enabled: bool = False
    maxSize: Size | None = None
    perUserDatasets: bool = False


class SMBShareOptions(StrictModel):
    name: ShareName | None = Field(default=None, description="The share name clients see; defaults to metadata.name")
    readOnly: bool = False
    browseable: bool = True
    guestOk: bool = False
    validUsers: list[ResourceName] = Field(default_factory=list)
    validGroups: list[ResourceName] = Field(default_factory=list)
    adminUsers: list[ResourceName] = Field(default_factory=list)
    writeList: list[ResourceName] = Field(default_factory=list)
    hostsAllow: list[Host] = Field(default_factory=list)
    hostsDeny: list[Host] = Field(default_factory=list)
    createMask: Mode | None = None
    directoryMask: Mode | None = None
    forceUser: ResourceName | None = None
    forceGroup: ResourceName | None = None
    accessBasedShareEnum: bool = False
    caseSensitive: Literal["auto", "yes", "no"] = "auto"
    oplocks: bool = True
    namedStreams: bool = Field(default=True, description=(
        "Alternate data streams (Windows' Zone.Identifier and Office metadata, macOS resource forks and Finder "
        "info), kept in extended attributes. Off only for a share no Windows or Mac client writes to"))
    ntACLs: bool = Field(default=True, description=(
        "Keep the Windows ACLs set from the Security tab (stored beside the POSIX permissions, which are kept "
        "in step as far as they can say the same). Off: Samba maps ACL edits onto the POSIX mode bits only"))
    durableHandles: bool | None = Field(default=None, description=(
        "Durable handles (open files survive a short network drop), which need Samba to keep byte-range "
        "locks to itself (posix locking = no). Default: on, unless the dataset is also exported over NFS, "
        "whose clients must see the locks. Set false when local programs work on the same files"))
    extraParameters: Annotated[dict[str, str], AfterValidator(_extra)] = Field(default_factory=dict)
    timeMachine: TimeMachineOptions | None = None

    @model_validator(mode="after")
    def _together(self) -> "SMBShareOptions":
        tm = self.timeMachine
        if tm is not None and tm.enabled and not self.namedStreams:
            raise ValueError("namedStreams: a Time Machine share needs named streams (Macs keep their backup "
                             "metadata in them); remove namedStreams: false or timeMachine")
        if self.durableHandles:
            for key in ("posix locking", "kernel share modes"):
                if _truthy(self.extraParameters.get(key, "no")):
                    raise ValueError(f"extraParameters: {key!r} on contradicts durableHandles: true (durable "
                                     f"handles need Samba to keep locks to itself); set durableHandles: false")
        return self

    @model_validator(mode="after")
    def _per_user(self) -> "SMBShareOptions":
        tm = self.timeMachine
        if tm is not None and tm.enabled and tm.perUserDatasets and (self.guestOk or not self.validUsers):
            raise ValueError("timeMachine.perUserDatasets needs validUsers (each gets a dataset) and no guestOk")
        return self


class NFSClientRule(StrictModel):
    hosts: list[Host] = Field(min_length=1)
    access: Literal["ro", "rw"] = "ro"
    squash: Literal["root", "all", "none"] = "root"
    anonuid: int | None = Field(default=None, ge=0, le=4294967294)
    anongid: int | None = Field(default=None, ge=0, le=4294967294)
    security: list[Literal["sys", "krb5", "krb5i", "krb5p"]] = Field(default_factory=lambda: ["sys"])
    sync: bool = True


class NFSShareOptions(StrictModel):
    clients: list[NFSClientRule] = Field(min_length=1)
    fsid: int | None = Field(default=None, ge=1, le=4294967295,
                             description="Required for FUSE-backed paths; unique per host (0 is the NFSv4 root)")
    allowWorld: bool = Field(default=False, description="Must be true for a rule with hosts '*' or 0.0.0.0/0")
    crossmnt: bool = Field(default=True, description=(
        "Let clients into file systems mounted below the share with its options (unless exported on their "
        "own): child datasets, and the snapshots under .zfs/snapshot (without it they show as empty or stale)"))

    @model_validator(mode="after")
    def _world(self) -> "NFSShareOptions":
        if not self.allowWorld:
            hosts = [h for rule in self.clients for h in rule.hosts]
            why = covers_everyone(hosts)
            if why:
                raise ValueError(f"clients: exporting to everyone ({why}) needs allowWorld: true")
        return self


class NASShareSpec(StrictModel):
    protocol: Literal["smb", "nfs"]
    dataset: ResourceName = Field(description="The ZDataset (its metadata.name) the share exposes")
    smb: SMBShareOptions | None = None
    nfs: NFSShareOptions | None = None

    @model_validator(mode="after")
    def _options_match_protocol(self) -> "NASShareSpec":
        if self.protocol == "smb":
            if self.nfs is not None:
                raise ValueError("nfs: options given for an smb share; remove them or set protocol: nfs")
            if self.smb is None:
                self.smb = SMBShareOptions()
        else:
            if self.smb is not None:
                raise ValueError("smb: options given for an nfs share; remove them or set protocol: smb")
            if self.nfs is None:
                raise ValueError("nfs: an nfs share needs nfs.clients (who may mount it)")
        return self


class TimeMachineStatus(StrictModel):
    advertisedAs: str | None = Field(default=None, description="The mDNS instance name Macs see")
    quota: int | None = Field(default=None, description="maxSize, as the dataset's refquota (bytes)")
    used: int | None = Field(default=None, description="What the dataset uses (bytes)")


class NASShareStatus(Status):
    path: str | None = None
    timeMachine: TimeMachineStatus | None = None
    unc: str | None = None
    allowedUsers: list[str] | None = None
    allowedGroups: list[str] | None = None
    clientFeatures: list[str] | None = Field(default=None, description=(
        "SMB: what the share gives clients (namedStreams, dosAttributes, ntACLs, durableHandles, appleExtensions, "
        "previousVersions; xattrsInDatabase where the file system has no extended attributes)"))
    exportLine: str | None = None
    mountCommand: str | None = None
    # a share served by its own pod (the SMB plugin's pod mode, on Kubernetes)
    node: str | None = Field(default=None, description="Pod mode: the node the share's pod runs on")
    podsAvailable: int | None = Field(default=None, description="Pod mode: the share's pods that are available")
    service: str | None = Field(default=None, description="Pod mode: the share's Service (namespace/name)")
    nodePort: int | None = Field(default=None, description="Pod mode: the Service's node port")
    endpoint: str | None = Field(default=None, description="Pod mode: where clients reach the share (node:port)")


class NASShare(Resource):
    plural: ClassVar[str] = "nasshares"
    short_names: ClassVar[tuple[str, ...]] = ("nsh",)
    phase: ClassVar[int] = 40
    key_column: ClassVar[tuple[str, str] | None] = ("Protocol", ".spec.protocol")
    extra_columns: ClassVar[tuple[tuple[str, str, int], ...]] = (("UNC", ".status.unc", 0),
                                                                 ("Export", ".status.exportLine", 1))

    kind: Literal["NASShare"] = "NASShare"
    spec: NASShareSpec
    status: NASShareStatus = Field(default_factory=NASShareStatus)

    def replaced_by(self, new: Resource) -> str | None:
        if isinstance(new, NASShare) and new.spec.protocol != self.spec.protocol:
            return f"protocol changed from {self.spec.protocol} to {new.spec.protocol}"
        return None

    def dependencies(self) -> list[tuple[str, str, str]]:
        deps = [("ZDataset", self.spec.dataset, "DatasetNotReady")]
        smb = self.spec.smb
        if smb is not None:
            users = smb.validUsers + smb.adminUsers + smb.writeList + ([smb.forceUser] if smb.forceUser else [])
            groups = smb.validGroups + ([smb.forceGroup] if smb.forceGroup else [])
            deps += [("NASUser", u, "UserNotReady") for u in dict.fromkeys(users)]
            deps += [("NASGroup", g, "GroupNotReady") for g in dict.fromkeys(groups)]
        return deps
