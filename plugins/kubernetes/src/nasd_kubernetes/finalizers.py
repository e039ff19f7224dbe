"""The finalizer nasd puts on objects whose deletion must do something on their node.

A NASShare (the share must stop being served), a ZSnapshotRestore (its clone and hold go) and a
ZPool or ZDataset with ``deletionPolicy: Destroy`` get ``nasd.io/cleanup``; nothing else does, so
deleting anything else never waits for a node. The node that adds it names itself in the annotation
``nasd.io/node`` (a node that takes the object over, when a pool moves, names itself instead). That
node removes the finalizer once its core has done the deletion (``resource_deleted``), or at once
when its core does not hold the object (never reconciled it, and no pass is planning it). Any node
removes it when the named node is gone from the cluster, so such an object can still be deleted.
"""

from __future__ import annotations

from typing import Any

from .convert import NODE_ANNOTATION

FINALIZER = "nasd.io/cleanup"


def needs_finalizer(obj: dict[str, Any]) -> bool:
    kind, spec = obj.get("kind"), obj.get("spec") or {}
    if kind in ("NASShare", "ZSnapshotRestore"):
        return True
    return kind in ("ZPool", "ZDataset") and isinstance(spec, dict) and spec.get("deletionPolicy") == "Destroy"


def finalizers(obj: dict[str, Any]) -> list[str]:
    return list((obj.get("metadata") or {}).get("finalizers") or [])


def claimed_by(obj: dict[str, Any]) -> str | None:
    """The node that put the finalizer on: the one to remove it (unless that node is gone)."""
    return ((obj.get("metadata") or {}).get("annotations") or {}).get(NODE_ANNOTATION)


def with_finalizer(obj: dict[str, Any], node: str) -> dict[str, Any]:
    """The merge patch adding ours and naming ``node`` as the one that cleans up; the resourceVersion
    makes it fail (409) rather than drop a finalizer another controller added meanwhile."""
    meta = obj["metadata"]
    present = finalizers(obj)
    return {"metadata": {"finalizers": present if FINALIZER in present else present + [FINALIZER],
                         "annotations": {NODE_ANNOTATION: node}, "resourceVersion": meta["resourceVersion"]}}


def without_finalizer(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj["metadata"]
    return {"metadata": {"finalizers": [f for f in finalizers(obj) if f != FINALIZER],
                         "resourceVersion": meta["resourceVersion"]}}
