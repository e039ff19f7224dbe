"""The object store: what etcd plus the generic registry give a real apiserver.

* One global ``resourceVersion`` counter (etcd's revision): every write -
  create, update, the deletion itself - takes the next integer, which becomes
  the written object's ``metadata.resourceVersion`` (a string, as clients must
  treat it as opaque).
* Server-set metadata on create: ``uid`` (uuid4), ``creationTimestamp``,
  ``generation`` 1 for kinds that track it. On update, ``generation`` goes up
  by one whenever anything outside ``metadata`` (and ``status``, for kinds with
  a status subresource) changes; an update that changes nothing is not
  written at all (no new resourceVersion, no event), like the real server.
* Graceful deletion through finalizers: deleting an object that has
  ``metadata.finalizers`` only sets ``deletionTimestamp`` and
  ``deletionGracePeriodSeconds: 0`` (and bumps ``generation``); the object goes
  away with the update that removes the last finalizer. No finalizer can be
  added once ``deletionTimestamp`` is set.
* Garbage collection by ``metadata.ownerReferences``: when an object goes away,
  its dependents are deleted too unless another owner of theirs still exists
  (then only the dangling reference is dropped), or the deletion asked for
  ``propagationPolicy: Orphan`` (the references are dropped).
* Namespaces: deleting one marks it ``Terminating``, deletes everything in it
  and removes it once it is empty.
* Event history for watches: the last ``history`` events are kept;
  ``compact()`` forgets all of them, like an etcd compaction.

Simpler than the real server: garbage collection and the namespace
controller run synchronously inside the request that triggers them (the real
ones are asynchronous controllers), ``propagationPolicy: Foreground`` behaves
like ``Background``, ``blockOwnerDeletion`` is ignored, there are no
``managedFields`` and grace periods are always 0.
"""

from __future__ import annotations

import asyncio
import copy
import random
import string
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

from .resources import ResourceType
from .status import ApiError, FieldError, already_exists, expired, invalid, not_found

GroupResource = tuple[str, str]
Key = tuple[str, str]  # (namespace or "", name)

NAMESPACES: GroupResource = ("", "namespaces")


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def meta(obj: dict[str, Any]) -> dict[str, Any]:
    return obj.setdefault("metadata", {})


def _content(obj: dict[str, Any], without_status: bool) -> dict[str, Any]:
    skip = {"metadata", "status"} if without_status else {"metadata"}
    return {k: v for k, v in obj.items() if k not in skip and k not in ("apiVersion", "kind")}


@dataclass
class StoredEvent:
    rv: int
    type: str  # ADDED, MODIFIED, DELETED
    gr: GroupResource
    obj: dict[str, Any]
    old: dict[str, Any] | None


@dataclass(eq=False)
class Subscription:
    """A live watch: receives every event of one group/resource (``None`` = stop now)."""

    gr: GroupResource
    queue: asyncio.Queue[StoredEvent | None] = field(default_factory=asyncio.Queue)


class Store:
    def __init__(self, history: int, type_of: Callable[[GroupResource], ResourceType | None]) -> None:
        self.rv = 0
        self.objects: dict[GroupResource, dict[Key, dict[str, Any]]] = {}
        self.history: deque[StoredEvent] = deque(maxlen=max(0, history))
        self.horizon = 0  # every event with rv <= horizon is forgotten
        self.subscriptions: set[Subscription] = set()
        self._type_of = type_of
        #: called with (group/resource, object) after an object is gone for good
        self.on_removed: Callable[[GroupResource, dict[str, Any]], None] | None = None

    # ------------------------------------------------------------------------------------ basics
    def next_rv(self) -> str:
        self.rv += 1
        return str(self.rv)

    def get(self, gr: GroupResource, namespace: str | None, name: str) -> dict[str, Any] | None:
        obj = self.objects.get(gr, {}).get((namespace or "", name))
        return copy.deepcopy(obj) if obj is not None else None

    def list(self, gr: GroupResource, namespace: str | None = None) -> list[dict[str, Any]]:
        bucket = self.objects.get(gr, {})
        keys = sorted(k for k in bucket if namespace is None or k[0] == namespace)
        return [copy.deepcopy(bucket[k]) for k in keys]

    def namespace_state(self, name: str) -> str | None:
        """``None`` if the namespace does not exist, else its phase (``Active``/``Terminating``)."""
        ns = self.objects.get(NAMESPACES, {}).get(("", name))
        if ns is None:
            return None
        return "Terminating" if ns.get("metadata", {}).get("deletionTimestamp") else "Active"

    # ------------------------------------------------------------------------------------ events
    def _emit(self, kind: str, gr: GroupResource, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        event = StoredEvent(int(obj["metadata"]["resourceVersion"]), kind, gr, copy.deepcopy(obj),
                            copy.deepcopy(old) if old is not None else None)
        if self.history.maxlen == 0:
            self.horizon = event.rv
        else:
            if len(self.history) == self.history.maxlen:
                self.horizon = self.history[0].rv
            self.history.append(event)
        for sub in list(self.subscriptions):
            if sub.gr == gr:
                sub.queue.put_nowait(event)

    def subscribe(self, gr: GroupResource) -> Subscription:
        sub = Subscription(gr)
        self.subscriptions.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self.subscriptions.discard(sub)

    def events_after(self, gr: GroupResource, rv: int) -> list[StoredEvent]:
        """Every kept event of ``gr`` after ``rv``; 410 Expired if some of them are forgotten."""
        if rv < self.horizon:
            raise expired(f"too old resource version: {rv} ({self.horizon + 1})")
        return [e for e in self.history if e.gr == gr and e.rv > rv]

    def compact(self) -> None:
        self.history.clear()
        self.horizon = self.rv

    # ------------------------------------------------------------------------------------ writes
    def create(self, rtype: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
        md = meta(obj)
        namespace = md.get("namespace", "") if rtype.namespaced else ""
        bucket = self.objects.setdefault(rtype.group_resource, {})
        if not md.get("name") and md.get("generateName"):
            for _ in range(100):
                candidate = md["generateName"] + "".join(random.choices(string.ascii_lowercase + string.digits, k=5))
                if (namespace, candidate) not in bucket:
                    md["name"] = candidate
                    break
        if (namespace, md["name"]) in bucket:
            raise already_exists(rtype.group, rtype.plural, md["name"])
        md["uid"] = str(uuid.uuid4())
        md["creationTimestamp"] = now()
        for key in ("deletionTimestamp", "deletionGracePeriodSeconds"):
            md.pop(key, None)
        if rtype.tracks_generation:
            md["generation"] = 1
        else:
            md.pop("generation", None)
        md["resourceVersion"] = self.next_rv()
        bucket[(namespace, md["name"])] = obj
        self._emit("ADDED", rtype.group_resource, obj, None)
        return copy.deepcopy(obj)

    def update(self, rtype: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
        """Write a new version of an existing object (preconditions already checked by the caller)."""
        md = meta(obj)
        namespace = md.get("namespace", "") if rtype.namespaced else ""
        key = (namespace, md["name"])
        bucket = self.objects.setdefault(rtype.group_resource, {})
        old = bucket.get(key)
        if old is None:
            raise not_found(rtype.group, rtype.plural, md["name"])
        old_md = old["metadata"]
        # Server-managed metadata cannot be changed by an update.
        for name in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation"):
            if name in old_md:
                md[name] = old_md[name]
            else:
                md.pop(name, None)
        if old_md.get("deletionTimestamp"):
            added = [f for f in md.get("finalizers") or [] if f not in (old_md.get("finalizers") or [])]
            if added:
                go_list = "[]string{" + ", ".join(f'"{f}"' for f in added) + "}"
                raise invalid(rtype.group, rtype.kind, md["name"], [FieldError.forbidden(
                    "metadata.finalizers",
                    f"no new finalizers can be added if the object is being deleted, found new finalizers {go_list}")])
        if rtype.tracks_generation and _content(obj, rtype.has_status) != _content(old, rtype.has_status):
            md["generation"] = int(old_md.get("generation", 0)) + 1
        if "finalizers" in md and not md["finalizers"]:
            del md["finalizers"]
        md["resourceVersion"] = old_md["resourceVersion"]
        if obj == old:
            return copy.deepcopy(old)  # a no-op update is not written
        md["resourceVersion"] = self.next_rv()
        bucket[key] = obj
        self._emit("MODIFIED", rtype.group_resource, obj, old)
        if md.get("deletionTimestamp") and not md.get("finalizers"):
            return self._remove(rtype.group_resource, key, "Background")
        return copy.deepcopy(obj)

    def delete(self, rtype: ResourceType, namespace: str | None, name: str,
               propagation: str = "Background") -> dict[str, Any]:
        """Delete (or start deleting) an object; returns it."""
        gr = rtype.group_resource
        key = ((namespace or "") if rtype.namespaced else "", name)
        obj = self.objects.get(gr, {}).get(key)
        if obj is None:
            raise not_found(rtype.group, rtype.plural, name)
        if gr == NAMESPACES:
            return self._delete_namespace(name)
        if obj["metadata"].get("finalizers"):
            if not obj["metadata"].get("deletionTimestamp"):
                self._mark_deleting(gr, obj)
            return copy.deepcopy(obj)
        return self._remove(gr, key, propagation)

    def delete_now(self, gr: GroupResource, namespace: str | None, name: str) -> None:
        key = (namespace or "", name)
        if key in self.objects.get(gr, {}):
            self._remove(gr, key, "Background")

    def drop_resource(self, gr: GroupResource) -> None:
        """A CRD went away: all its objects go (DELETED events), finalizers or not."""
        for key in sorted(self.objects.get(gr, {})):
            self._remove(gr, key, "Background")
        self.objects.pop(gr, None)

    # ------------------------------------------------------------------------------------ internals
    def _mark_deleting(self, gr: GroupResource, obj: dict[str, Any]) -> None:
        """Set ``deletionTimestamp`` (a namespace turns ``Terminating``), as a write with its MODIFIED event."""
        old = copy.deepcopy(obj)
        md = obj["metadata"]
        md["deletionTimestamp"] = now()
        md["deletionGracePeriodSeconds"] = 0
        if "generation" in md:
            md["generation"] = int(md["generation"]) + 1
        if gr == NAMESPACES:
            obj.setdefault("status", {})["phase"] = "Terminating"
        md["resourceVersion"] = self.next_rv()
        self._emit("MODIFIED", gr, obj, old)

    def _remove(self, gr: GroupResource, key: Key, propagation: str) -> dict[str, Any]:
        obj = self.objects[gr].pop(key)
        obj["metadata"]["resourceVersion"] = self.next_rv()
        self._emit("DELETED", gr, obj, None)
        if self.on_removed is not None:
            self.on_removed(gr, obj)
        self._collect_dependents(obj["metadata"].get("uid"), propagation)
        if key[0]:
            self._maybe_finish_namespace(key[0])
        return copy.deepcopy(obj)

    def _all_uids(self) -> set[str]:
        return {o["metadata"].get("uid") for bucket in self.objects.values() for o in bucket.values()}

    def _collect_dependents(self, uid: str | None, propagation: str) -> None:
        if not uid:
            return
        for gr, bucket in list(self.objects.items()):
            for key, dep in list(bucket.items()):
                refs = dep["metadata"].get("ownerReferences") or []
                if not any(r.get("uid") == uid for r in refs):
                    continue
                if key not in bucket:
                    continue
                rtype = self._type_of(gr)
                remaining = [r for r in refs if r.get("uid") != uid]
                alive = self._all_uids()
                if propagation == "Orphan" or any(r.get("uid") in alive for r in remaining) or rtype is None:
                    new = copy.deepcopy(dep)
                    if remaining:
                        new["metadata"]["ownerReferences"] = remaining
                    else:
                        new["metadata"].pop("ownerReferences", None)
                    if rtype is not None:
                        self.update(rtype, new)
                else:
                    self.delete(rtype, key[0], key[1], "Background")

    def _delete_namespace(self, name: str) -> dict[str, Any]:
        bucket = self.objects[NAMESPACES]
        ns = bucket[("", name)]
        if not ns["metadata"].get("deletionTimestamp"):
            self._mark_deleting(NAMESPACES, ns)
            result = copy.deepcopy(ns)
            for gr, objs in list(self.objects.items()):
                rtype = self._type_of(gr)
                for key in sorted(k for k in objs if k[0] == name):
                    if key in objs and rtype is not None:
                        self.delete(rtype, key[0], key[1], "Background")
            self._maybe_finish_namespace(name)
            return result
        return copy.deepcopy(ns)

    def _maybe_finish_namespace(self, name: str) -> None:
        ns = self.objects.get(NAMESPACES, {}).get(("", name))
        if ns is None or not ns["metadata"].get("deletionTimestamp"):
            return
        if any(k[0] == name for gr, objs in self.objects.items() if gr != NAMESPACES for k in objs):
            return
        self._remove(NAMESPACES, ("", name), "Background")


__all__ = ["Store", "StoredEvent", "Subscription", "ApiError", "now", "NAMESPACES"]
