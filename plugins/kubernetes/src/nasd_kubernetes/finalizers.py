"""The finalizer nasd puts on objects whose deletion must do something on their node.

A NASShare (the share must stop being served), a ZSnapshotRestore (its clone and hold go) and a
ZPool or ZDataset with ``deletionPolicy: Destroy`` get ``nasd.io/cleanup``; nothing else does, so
deleting anything else never waits for a node. The node that handles the object removes the
finalizer once the core has done the deletion (``resource_deleted``), or at once when the core
never reconciled it. Any node removes it when the object's node is gone from the cluster (or it
belongs to no node any more), so such an object can still be deleted.
"""

from __future__ import annotations

from typing import Any

FINALIZER = "nasd.io/cleanup"


def needs_finalizer(obj: dict[str, Any]) -> bool:
    kind, spec = obj.get("kind"), obj.get("spec") or {}
    if kind in ("NASShare", "ZSnapshotRestore"):
        return True
    return kind in ("ZPool", "ZDataset") and isinstance(spec, dict) and spec.get("deletionPolicy") == "Destroy"


def finalizers(obj: dict[str, Any]) -> list[str]:
    return list((obj.get("metadata") or {}).get("finalizers") or [])


def with_finalizer(obj: dict[str, Any]) -> dict[str, Any]:
    """The merge patch adding ours; the resourceVersion makes it fail (409) rather than drop
    a finalizer another controller added meanwhile."""
    meta = obj["metadata"]
    return {"metadata": {"finalizers": finalizers(obj) + [FINALIZER], "resourceVersion": meta["resourceVersion"]}}


def without_finalizer(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj["metadata"]
    return {"metadata": {"finalizers": [f for f in finalizers(obj) if f != FINALIZER],
                         "resourceVersion": meta["resourceVersion"]}}
