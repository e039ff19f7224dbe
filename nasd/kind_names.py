"""The API's names of each kind, for the client commands of the command line.

``nasd get zds`` resolves its kind here, without importing the models (pydantic takes longer to import than
the whole command may take). The models (``nasd.models``) are the truth; tests/test_cli_start.py proves this
table names the same kinds, plurals, short names and columns, and resolves every name to the same kind.
"""

from __future__ import annotations

from typing import NamedTuple

GROUP_VERSION = "nasd.io/v1alpha1"


class KindNames(NamedTuple):
    kind: str
    plural: str
    short_names: tuple[str, ...]
    #: the extra column of ``nasd get``: (header, path into the object)
    key_column: tuple[str, str] | None


#: in the order of ``nasd.models.KINDS``
KIND_NAMES: tuple[KindNames, ...] = (
    KindNames("ZPool", "zpools", ("zp",), ("Health", ".status.health")),
    KindNames("ZDataset", "zdatasets", ("zds",), ("Mountpoint", ".status.mountpoint")),
    KindNames("NASDirectory", "nasdirectories", ("ndir",), ("Type", ".spec.type")),
    KindNames("NASGroup", "nasgroups", ("ngrp",), ("GID", ".spec.gid")),
    KindNames("NASUser", "nasusers", ("nusr",), ("UID", ".spec.uid")),
    KindNames("NASShare", "nasshares", ("nsh",), ("Protocol", ".spec.protocol")),
    KindNames("ZSnapshotSchedule", "zsnapshotschedules", ("zss",), ("Last", ".status.lastSnapshot")),
    KindNames("ZSnapshotRestore", "zsnapshotrestores", ("zsr",), ("Target", ".spec.target.path")),
)


def kind_names(name: str) -> KindNames:
    """Find a kind by its name, plural or short name, case-insensitively (like kubectl and
    ``nasd.models.kind_for``); KeyError naming the known kinds otherwise."""
    lowered = name.lower()
    for names in KIND_NAMES:
        accepted = {names.kind.lower(), names.plural, names.plural.rstrip("s"), *names.short_names}
        if names.plural.endswith("ies"):
            accepted.add(names.plural[:-3] + "y")
        if lowered in accepted:
            return names
    raise KeyError(f"unknown kind {name!r}; known kinds: {', '.join(n.kind for n in KIND_NAMES)}")
