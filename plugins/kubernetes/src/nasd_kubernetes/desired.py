"""From every custom object of the cluster to what this node's core should reconcile. Pure.

For each object: one being deleted (``deletionTimestamp``) is not desired any more, so the core
removes it from the node; one that belongs to another node is not desired here; one that fails
nasd's own validation (checks the CRD schema cannot express) keeps its last valid version
desired, as the manifest folder does, because dropping it would read as a deletion. So does one
that no node can take any more (its pool renamed by a typo, its pool's object deleted): only a
``deletionTimestamp`` removes what nasd made.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from nasd.plugin import KINDS, ManifestError, Resource

from .convert import to_resource
from .scope import Objects, placement

Key = tuple[str, str]


@dataclass
class View:
    resources: dict[Key, Resource] = field(default_factory=dict)  # desired on this node
    invalid: dict[Key, str] = field(default_factory=dict)  # nasd refuses the spec: why
    unplaced: dict[Key, str] = field(default_factory=dict)  # no node can handle it: why
    elsewhere: dict[Key, frozenset[str]] = field(default_factory=dict)  # handled by other nodes
    deleting: set[Key] = field(default_factory=set)  # deletionTimestamp set, and placed here (or nowhere)


def desired_view(objects: Objects, node: str, last_good: dict[Key, Resource]) -> View:
    """``last_good``: the last valid version of each object (the previous view's resources)."""
    view = View()
    for key, obj in objects.items():
        where = placement(key[0], key[1], objects)
        deleting = bool((obj.get("metadata") or {}).get("deletionTimestamp"))
        if not where.includes(node):
            if where.nodes:
                view.elsewhere[key] = where.nodes
            else:
                view.unplaced[key] = where.problem
                if deleting:
                    view.deleting.add(key)
                elif key in last_good:
                    view.resources[key] = last_good[key]
            continue
        if deleting:
            view.deleting.add(key)
            continue
        try:
            view.resources[key] = to_resource(obj)
        except ManifestError as e:
            view.invalid[key] = "; ".join(e.problems)
            if key in last_good:
                view.resources[key] = last_good[key]
    return view


def objects_of(states: dict[str, Any]) -> Objects:
    """The custom objects the watcher holds, keyed (kind, name)."""
    out: Objects = {}
    for kind, state in states.items():
        if kind in KINDS:
            for name, obj in state.objects.items():
                out[(kind, name)] = obj
    return out
