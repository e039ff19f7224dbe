"""A workload: a program a plugin wants run next to the data, in a cluster, instead of on the host.

The SMB plugin in pod mode describes each share's smbd this way; the Kubernetes plugin turns the
description into a ConfigMap, a Deployment pinned to the node and a Service (``plan_workload``).
Neither knows the other: the description says what runs and what it needs, in container terms
only. Everything in it is validated here, because it reaches a container spec and a shell.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

from .models.base import DNS_NAME
from .planning import Action

_LABEL = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")
_PATH = re.compile(r"(/[A-Za-z0-9_.@+-]+)+")
#: an image reference (registry/name:tag or @digest); settings that name an image use it too
IMAGE = re.compile(r"[a-z0-9]([-a-z0-9._/:@]{0,250}[a-zA-Z0-9])?")
_KEY = re.compile(r"[-._a-zA-Z0-9]+")


def _check(pattern: re.Pattern[str], value: str, what: str) -> None:
    if not isinstance(value, str) or not pattern.fullmatch(value) or "/../" in f"{value}/" or "//" in value:
        raise ValueError(f"workload {what} {value!r} is not allowed")


@dataclass(frozen=True)
class HostPath:
    """A folder of the node (a dataset's mountpoint) seen in the container; mounts made on the host
    later (a dataset mounted below it) appear in the container too."""

    host: str
    container: str
    read_only: bool = False

    def __post_init__(self) -> None:
        _check(_PATH, self.host, "host path")
        _check(_PATH, self.container, "container path")


@dataclass(frozen=True)
class SecretFile:
    """The value of a key of a Secret (in the workloads' namespace), as a file in the container."""

    container: str
    secret: str
    key: str

    def __post_init__(self) -> None:
        _check(_PATH, self.container, "secret file path")
        _check(DNS_NAME, self.secret, "Secret name")
        _check(_KEY, self.key, "Secret key")


@dataclass(frozen=True)
class Port:
    name: str
    port: int
    protocol: Literal["TCP", "UDP"] = "TCP"

    def __post_init__(self) -> None:
        _check(_LABEL, self.name, "port name")
        if not 1 <= self.port <= 65535:
            raise ValueError(f"workload port {self.port} is out of range")


@dataclass(frozen=True)
class Workload:
    """What one program needs: its image and command, files (small text, e.g. its config), Secret
    files, host folders and ports. ``name`` is a DNS label (e.g. ``smb-media``)."""

    name: str
    image: str
    command: tuple[str, ...]
    files: tuple[tuple[str, str], ...] = ()  # (container path, text)
    secret_files: tuple[SecretFile, ...] = ()
    host_paths: tuple[HostPath, ...] = ()
    ports: tuple[Port, ...] = ()
    service_type: Literal["NodePort", "ClusterIP", "LoadBalancer"] = "NodePort"

    def __post_init__(self) -> None:
        _check(_LABEL, self.name, "name")
        _check(IMAGE, self.image, "image")
        for path, _ in self.files:
            _check(_PATH, path, "file path")
        if not self.command or any("\0" in a for a in self.command):
            raise ValueError("a workload needs a command without NUL characters")


@dataclass
class WorkloadPlan:
    """What ``plan_workload`` answers: the actions that make the cluster run the workload (none when
    it already does), and what to show in the owner's status (its Service, node and port)."""

    actions: list[Action] = field(default_factory=list)
    status: dict[str, Any] = field(default_factory=dict)
    #: why it cannot be run (e.g. its objects' names belong to another owner); no actions then
    problem: str | None = None
