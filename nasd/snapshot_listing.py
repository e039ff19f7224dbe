"""What the ZFS plugin tells other plugins about snapshots (``list_snapshots``): plain data, no ZFS internals."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)  # (no __dict__: a listing holds one per snapshot, tens of thousands)
class SnapshotInfo:
    dataset: str  #: the ZFS dataset, ``pool/path``
    name: str  #: the part after ``@``
    created: int  #: creation time, epoch seconds
    userrefs: int = 0  #: holds on it (``zfs hold``)
    properties: dict[str, str] = field(default_factory=dict)  #: the user properties asked for (absent: not set)
    clones: list[str] = field(default_factory=list)  #: datasets cloned from it (they block its destruction)

    @property
    def full_name(self) -> str:
        return f"{self.dataset}@{self.name}"


@dataclass
class SnapshotListing:
    """Every snapshot of ``roots`` and of every dataset below them (always listed recursively), the
    file systems seen there, and their origins (which snapshot each clone in the pools comes from)."""

    roots: list[str]
    snapshots: list[SnapshotInfo] = field(default_factory=list)
    filesystems: list[str] = field(default_factory=list)
    #: clone dataset -> its origin snapshot (``pool/ds@snap``), for every clone in the roots' pools
    origins: dict[str, str] = field(default_factory=dict)
    #: every file system in the roots' pools -> its mountpoint
    mountpoints: dict[str, str] = field(default_factory=dict)
    #: file systems in the roots' pools -> the asked user properties that are set on them
    filesystem_properties: dict[str, dict[str, str]] = field(default_factory=dict)

    def of(self, dataset: str) -> list[SnapshotInfo]:
        return [s for s in self.snapshots if s.dataset == dataset]

    def covers(self, dataset: str) -> bool:
        """Whether the snapshots of ``dataset`` and of everything below it are all in this listing."""
        return any(dataset == r or dataset.startswith(r + "/") for r in self.roots)
