"""List, then watch, each collection; keep the objects in memory; tell the plugin after every change.

As a good controller does:
- a full list first (its resourceVersion is where the watch starts), then one watch after the other,
  each resuming from the last resourceVersion seen (an event's or a BOOKMARK's);
- ``410 Expired`` (the server no longer has the history to resume from) means a fresh list, compared
  with what is known, so a deletion during the gap is seen as one;
- any other error or a dropped connection: reconnect with exponential backoff, from the same
  resourceVersion;
- a full re-list every ``relist_seconds``, whatever the watches say, made by the collection's own loop
  between two watches (never beside a running watch, whose newer events it would undo).
A list replaces the collection's objects whole, and the plugin feeds the core levels, not edges:
an event seen twice, or a list that repeats what the watch said, changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import Any, Callable

from .client import ApiException, Collection, Kube

log = logging.getLogger("nasd.kubernetes.watcher")


class CollectionState:
    def __init__(self, collection: Collection):
        self.collection = collection
        self.objects: dict[str, dict[str, Any]] = {}  # by name
        self.resource_version = ""
        self.synced = False  # listed at least once
        self.relist_at = 0.0  # when the next full list is due (monotonic)
        self.error: str | None = None  # the last list error, while it lasts


class Watcher:
    def __init__(self, kube: Kube, collections: list[Collection], on_change: Callable[[str, str], None], *,
                 watch_timeout: int = 300, relist_seconds: float = 900.0, max_backoff: float = 30.0):
        self.kube = kube
        self.states = {c.name: CollectionState(c) for c in collections}
        self.on_change = on_change
        self.watch_timeout = watch_timeout
        self.relist_seconds = relist_seconds
        self.max_backoff = max_backoff
        self.counts = {"lists": 0, "watches": 0, "events": 0, "expired": 0, "errors": 0}

    @property
    def synced(self) -> bool:
        return all(s.synced and s.error is None for s in self.states.values())

    def errors(self) -> list[str]:
        return [f"cannot list {s.collection.plural}: {s.error}" for s in self.states.values() if s.error]

    async def list(self, state: CollectionState) -> bool:
        """List the collection afresh; return whether it worked."""
        self.counts["lists"] += 1
        try:
            items, rv = await self.kube.list(state.collection)
        except ApiException as e:
            state.error = f"{e.status} {e.reason}".strip()
            self.counts["errors"] += 1
            log.warning("listing %s failed: %s", state.collection.plural, state.error)
            self.on_change(state.collection.name, f"{state.collection.plural} list failed")
            return False
        except (OSError, asyncio.TimeoutError) as e:
            state.error = f"{type(e).__name__}: {e}"
            self.counts["errors"] += 1
            log.warning("listing %s failed: %s", state.collection.plural, state.error)
            self.on_change(state.collection.name, f"{state.collection.plural} list failed")
            return False
        state.objects = {o["metadata"]["name"]: o for o in items}
        state.resource_version, state.synced, state.error = rv, True, None
        state.relist_at = time.monotonic() + self.relist_seconds
        self.on_change(state.collection.name, f"{state.collection.plural} listed")
        return True

    async def list_all(self) -> None:
        await asyncio.gather(*(self.list(s) for s in self.states.values()))

    def apply(self, state: CollectionState, event: dict[str, Any]) -> None:
        obj, kind = event["object"], event["type"]
        rv = str((obj.get("metadata") or {}).get("resourceVersion") or "")
        if kind == "BOOKMARK":
            state.resource_version = rv or state.resource_version
            return
        name = obj["metadata"]["name"]
        if kind == "DELETED":
            state.objects.pop(name, None)
        else:  # ADDED, MODIFIED
            state.objects[name] = obj
        state.resource_version = rv or state.resource_version
        self.counts["events"] += 1
        self.on_change(state.collection.name, f"{state.collection.name} {name} {kind.lower()}")

    async def run(self, state: CollectionState) -> None:
        """List and watch one collection for as long as the daemon lives."""
        failures = 0
        while True:
            if not state.synced or state.error is not None or time.monotonic() >= state.relist_at:
                if not await self.list(state):
                    failures += 1
                    await asyncio.sleep(self._backoff(failures))
                    continue
            self.counts["watches"] += 1
            started, seen = time.monotonic(), 0
            try:
                async for event in self.kube.watch(state.collection, state.resource_version, self.watch_timeout):
                    self.apply(state, event)
                    seen += 1
                    failures = 0
                # the server ended the watch (timeoutSeconds): resume at once, unless it ends at once
                # every time (a proxy cutting it): then wait as after a failure
                failures = failures + 1 if not seen and time.monotonic() - started < 1.0 else 0
            except ApiException as e:
                if e.status == 410:
                    self.counts["expired"] += 1
                    log.info("watch of %s expired at resourceVersion %s: listing again",
                             state.collection.plural, state.resource_version)
                    state.synced = False
                    continue
                failures += 1
                self.counts["errors"] += 1
                log.warning("watch of %s failed: %s %s", state.collection.plural, e.status, e.reason)
                if e.status in (401, 403, 404):
                    state.synced = False  # the CRD or the permission may have gone: list again (reports it)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # a dropped connection, a server restarting, a read timeout
                failures += 1
                self.counts["errors"] += 1
                log.warning("watch of %s ended: %s: %s", state.collection.plural, type(e).__name__, e)
            if failures:
                await asyncio.sleep(self._backoff(failures))

    def _backoff(self, failures: int) -> float:
        base = min(0.2 * 2 ** (failures - 1), self.max_backoff)
        return base * (0.5 + random.random() / 2)
