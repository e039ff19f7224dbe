"""Custom objects as the API server sends them, into nasd resources; and resource status into the
merge patch that writes it back. Pure functions.

What the cluster keeps about an object that nasd does not reconcile is dropped on the way in:
``status`` (nasd's own status store is the truth, written back to the cluster), ``resourceVersion``,
``managedFields``, finalizers, kubectl's last-applied annotation and nasd's own node annotation. So a status write, a finalizer
added or a re-apply of the same manifest feeds the core the very same resource, and runs no pass.
"""

from __future__ import annotations

from typing import Any

from nasd.plugin import KINDS, ManifestError, Resource, parse_resource

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
NODE_ANNOTATION = "nasd.io/node"  # the node that put nasd's finalizer on the object
_NOT_SPEC = (LAST_APPLIED, NODE_ANNOTATION)
_KEEP_METADATA = ("name", "labels", "annotations", "generation", "uid")


def to_resource(obj: dict[str, Any]) -> Resource:
    """The resource an object declares, or ManifestError naming each bad field."""
    meta = obj.get("metadata") or {}
    kept = {k: meta[k] for k in _KEEP_METADATA if meta.get(k) is not None}
    annotations = {k: v for k, v in (kept.get("annotations") or {}).items() if k not in _NOT_SPEC}
    if annotations:
        kept["annotations"] = annotations
    else:
        kept.pop("annotations", None)
    data = {"apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"), "metadata": kept, "spec": obj.get("spec")}
    return parse_resource(data, f"{KINDS[obj['kind']].plural}/{meta.get('name')}" if obj.get("kind") in KINDS
                          else "object")


def status_document(resource: Resource) -> dict[str, Any]:
    """The status as it is written to the cluster."""
    return resource.model_dump(mode="json", by_alias=True, exclude_none=True)["status"]


def status_patch(new: dict[str, Any], written: dict[str, Any] | None) -> dict[str, Any] | None:
    """The merge patch (RFC 7386) from the status last written to ``new``: fields that went away are
    set to null, lists (conditions) are replaced whole. None when nothing changed."""
    diff = _diff(written or {}, new)
    return None if diff is None else {"status": diff}


def _diff(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any] | None:
    out: dict[str, Any] = {}
    for key in old.keys() - new.keys():
        out[key] = None
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, dict) and isinstance(before, dict):
            sub = _diff(before, value)
            if sub is not None:
                out[key] = sub
        elif value != before:
            out[key] = value
    return out or None
