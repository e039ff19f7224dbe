"""Watch streams: ``GET <list URL>?watch=true``.

The real apiserver answers a watch with HTTP 200 and a chunked stream of
newline-delimited JSON events ``{"type": ..., "object": ...}``, flushed one by
one:

* ``resourceVersion`` absent, ``""`` or ``"0"``: a synthetic ``ADDED`` for every
  current object, then live events.
* ``resourceVersion=N``: every event after ``N`` (from the watch cache /
  etcd history), then live events. If ``N`` is older than the history still
  kept (or compacted away) the stream is a single ``ERROR`` event whose object
  is a ``Status`` 410 ``Expired`` ``too old resource version: N (M)``, then it
  ends - still with HTTP 200.
* With a label or field selector an object that stops matching arrives as
  ``DELETED`` (with its previous content and the new resourceVersion), one that
  starts matching as ``ADDED``.
* ``allowWatchBookmarks=true``: now and then a ``BOOKMARK`` whose object only
  has ``kind``, ``apiVersion`` and ``metadata.resourceVersion``: everything up
  to that version has been sent. Here: every ``bookmark_interval`` seconds
  without other events.
* ``sendInitialEvents=true`` (the WatchList protocol): the initial ``ADDED``
  events end with a ``BOOKMARK`` annotated ``k8s.io/initial-events-end: "true"``.
* ``timeoutSeconds``: the server ends the stream cleanly after that long.

Simpler than the real server: bookmarks come on a fixed timer (the real one
sends them roughly once a minute, at its discretion), a too large
resourceVersion is simply waited for instead of failing after a few seconds,
and there is no protobuf encoding. With ``Accept: ...as=Table...`` (``kubectl
get -w``) every event's object is a one-row Table with its column definitions.
"""

from __future__ import annotations

import asyncio
import copy
import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from .resources import ResourceType
from .selectors import FieldSelector, LabelSelector
from .status import ApiError
from .store import Store, StoredEvent, Subscription
from .tables import to_table


@dataclass(eq=False)
class OpenWatch:
    """One open stream, so that ``drop_watches()``/``restart()`` can end it."""

    request: web.Request
    subscription: Subscription
    aborted: bool = False
    done: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class WatchFilter:
    rtype: ResourceType
    namespace: str | None
    labels: LabelSelector
    fields: FieldSelector
    #: answer with ``meta.k8s.io/v1`` Tables (``kubectl get -w``): the ``includeObject`` value, else None
    table: str | None = None

    def visible(self, obj: dict[str, Any]) -> bool:
        md = obj.get("metadata") or {}
        if self.namespace is not None and md.get("namespace", "") != self.namespace:
            return False
        return self.labels.matches(obj) and self.fields.matches(obj)

    def wire(self, obj: dict[str, Any]) -> dict[str, Any]:
        out = copy.deepcopy(obj)
        out["apiVersion"] = self.rtype.api_version
        out["kind"] = self.rtype.kind
        if self.table is not None:
            return to_table(self.rtype, [out], out.get("metadata", {}).get("resourceVersion", ""), self.table)
        return out

    def translate(self, event: StoredEvent) -> tuple[str, dict[str, Any]] | None:
        """The event this watcher sees for a stored event, if any."""
        now_ok = self.visible(event.obj)
        if event.type in ("ADDED", "DELETED"):
            return (event.type, self.wire(event.obj)) if now_ok else None
        was_ok = event.old is not None and self.visible(event.old)
        if now_ok and was_ok:
            return ("MODIFIED", self.wire(event.obj))
        if now_ok:
            return ("ADDED", self.wire(event.obj))
        if was_ok and event.old is not None:
            old = copy.deepcopy(event.old)
            old.setdefault("metadata", {})["resourceVersion"] = str(event.rv)
            return ("DELETED", self.wire(old))
        return None


def truthy(value: str | None) -> bool:
    """A boolean query parameter as Go's ``strconv.ParseBool`` reads it (``True`` from Python clients too)."""
    return (value or "").lower() in ("1", "t", "true")


def _line(kind: str, obj: dict[str, Any]) -> bytes:
    return json.dumps({"type": kind, "object": obj}, separators=(",", ":")).encode() + b"\n"


def _bookmark(rtype: ResourceType, rv: int, annotations: dict[str, str] | None = None) -> tuple[str, dict[str, Any]]:
    metadata: dict[str, Any] = {"resourceVersion": str(rv)}
    if annotations:
        metadata["annotations"] = annotations
    return "BOOKMARK", {"kind": rtype.kind, "apiVersion": rtype.api_version, "metadata": metadata}


async def serve_watch(request: web.Request, store: Store, flt: WatchFilter, params: dict[str, str],
                      bookmark_interval: float, registry: set[OpenWatch]) -> web.StreamResponse:
    rtype = flt.rtype
    rv_param = params.get("resourceVersion", "")
    bookmarks = truthy(params.get("allowWatchBookmarks"))
    initial_end = truthy(params.get("sendInitialEvents"))
    timeout = float(params["timeoutSeconds"]) if params.get("timeoutSeconds") else None

    # Subscribe and take the starting point in one synchronous step: nothing can be missed or doubled.
    sub = store.subscribe(rtype.group_resource)
    first: list[tuple[str, dict[str, Any]]] = []
    error: ApiError | None = None
    if rv_param in ("", "0") or initial_end:
        namespace = flt.namespace
        for obj in store.list(rtype.group_resource, namespace):
            if flt.visible(obj):
                first.append(("ADDED", flt.wire(obj)))
    else:
        try:
            since = int(rv_param)
        except ValueError:
            store.unsubscribe(sub)
            raise ApiError(400, "BadRequest", f'invalid resource version: strconv.ParseUint: parsing '
                                              f'"{rv_param}": invalid syntax') from None
        try:
            for event in store.events_after(rtype.group_resource, since):
                seen = flt.translate(event)
                if seen:
                    first.append(seen)
        except ApiError as exc:
            error = exc
    if initial_end and bookmarks:
        first.append(_bookmark(rtype, store.rv, {"k8s.io/initial-events-end": "true"}))

    resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json",
                                                   "Cache-Control": "no-cache, private"})
    resp.enable_chunked_encoding()
    handle = OpenWatch(request, sub)
    registry.add(handle)
    try:
        await resp.prepare(request)
        if error is not None:
            await resp.write(_line("ERROR", error.status()))
            await resp.write_eof()
            return resp
        for kind, obj in first:
            await resp.write(_line(kind, obj))
        deadline = time.monotonic() + timeout if timeout is not None else None
        next_bookmark = time.monotonic() + bookmark_interval
        while True:
            now = time.monotonic()
            waits = [next_bookmark - now] if bookmarks else []
            if deadline is not None:
                waits.append(deadline - now)
            wait = max(0.0, min(waits)) if waits else None
            try:
                event = await asyncio.wait_for(sub.queue.get(), wait)
            except asyncio.TimeoutError:
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    break
                if bookmarks and now >= next_bookmark:
                    await resp.write(_line(*_bookmark(rtype, store.rv)))
                    next_bookmark = now + bookmark_interval
                continue
            if event is None:
                break
            seen = flt.translate(event)
            if seen:
                await resp.write(_line(*seen))
        if not handle.aborted:  # an abrupt end: end_watches() already closed the connection
            await resp.write_eof()
        return resp
    finally:
        store.unsubscribe(sub)
        registry.discard(handle)
        handle.done.set()


def end_watches(registry: set[OpenWatch], abrupt: bool) -> list[OpenWatch]:
    """Tell every open watch to stop (abruptly: the connection is closed without the final chunk)."""
    handles = list(registry)
    for handle in handles:
        handle.aborted = abrupt
        handle.subscription.queue.put_nowait(None)
        if abrupt and handle.request.transport is not None:
            handle.request.transport.close()
    return handles
