"""Which node handles which object, like zfs-localpv's owner node: a ZPool names its node
(``spec.node``); datasets follow their pool, shares their dataset, schedules and restores their
datasets. Directories, users and groups are for every node. Pure functions over the objects of
the cluster as the API server sends them (valid or not), so a chain is followed even through an
object nasd itself would refuse.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Objects = dict[tuple[str, str], dict[str, Any]]
EVERY_NODE = "*"
_EVERY = {"NASDirectory", "NASUser", "NASGroup"}


@dataclass(frozen=True)
class Placement:
    """Where an object belongs: ``nodes`` (``{"*"}`` for every node), or nowhere and why."""

    nodes: frozenset[str]
    problem: str = ""

    def includes(self, node: str) -> bool:
        return node in self.nodes or EVERY_NODE in self.nodes


def every_node(kind: str) -> bool:
    """Whether every node handles objects of ``kind`` (each then reports under ``status.nodes``)."""
    return kind in _EVERY


def _spec(obj: dict[str, Any] | None) -> dict[str, Any]:
    spec = (obj or {}).get("spec")
    return spec if isinstance(spec, dict) else {}


def placement(kind: str, name: str, objects: Objects) -> Placement:
    if kind in _EVERY:
        return Placement(frozenset({EVERY_NODE}))
    return _place(kind, name, objects, depth=0)


def _place(kind: str, name: str, objects: Objects, depth: int) -> Placement:
    obj = objects.get((kind, name))
    if obj is None:
        return Placement(frozenset(), f"{kind} {name} does not exist")
    spec = _spec(obj)
    if kind == "ZPool":
        node = spec.get("node")
        if not isinstance(node, str) or not node:
            return Placement(frozenset(), f"ZPool {name} names no node: set spec.node to the node that holds its disks")
        return Placement(frozenset({node}))
    if kind == "ZDataset":
        return _follow("ZPool", spec.get("pool"), objects, depth)
    if kind == "NASShare":
        return _follow("ZDataset", spec.get("dataset"), objects, depth)
    if kind == "ZSnapshotRestore":
        source = spec.get("source") if isinstance(spec.get("source"), dict) else {}
        return _follow("ZDataset", source.get("dataset"), objects, depth)
    if kind == "ZSnapshotSchedule":
        names = spec.get("datasets") if isinstance(spec.get("datasets"), list) else []
        places = [_follow("ZDataset", d, objects, depth) for d in names]
        nodes = frozenset(n for p in places for n in p.nodes)
        problems = [p.problem for p in places if p.problem]
        if len(nodes) > 1:
            return Placement(frozenset(), f"its datasets are on several nodes ({', '.join(sorted(nodes))}): "
                                          "make one schedule per node")
        return Placement(nodes, "; ".join(problems) if not nodes else "")
    return Placement(frozenset(), f"{kind} is not a nasd kind")


def _follow(kind: str, name: Any, objects: Objects, depth: int) -> Placement:
    if not isinstance(name, str) or depth > 4:
        return Placement(frozenset(), f"no {kind} named")
    return _place(kind, name, objects, depth + 1)
