"""The watcher's link to the core: objects in, status, Events and finalizers out.

Every change the watcher sees recomputes this node's view of the cluster (``desired.py``) and
hands it to the core with ``feed.replace`` — levels, not edges, so a change seen twice is harmless
and the feed runs a pass only when what is desired here really changed. Until every collection
has been listed, and while one cannot be listed (the CRDs not installed, a permission missing),
the feed keeps what it had and reports the error, so nothing reads as a deletion.

Writes to the API server (status, Events, finalizers) are queued and made by one task, never
inside a reconcile pass.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
from typing import Any

from nasd.plugin import (KINDS, Action, Context, DesiredFeed, Resource, SecretRef, TemporaryError, Workload,
                         WorkloadPlan)

from . import finalizers, reporting, scope, workloads
from .client import ApiException, Collection, Kube, create_object, delete_object, patch_object
from .convert import status_document, status_patch
from .desired import Key, View, desired_view, objects_of
from .settings import NAME, KubernetesSettings
from .watcher import Watcher

log = logging.getLogger("nasd.kubernetes")
SOURCE = NAME  # the feed source is named after the plugin


class KubeSource:
    def __init__(self, ctx: Context, feed: DesiredFeed, kube: Kube, settings: KubernetesSettings):
        self.ctx, self.feed, self.kube, self.settings = ctx, feed, kube, settings
        collections = [Collection.custom(k) for k in KINDS] + [
            Collection("Node", "nodes"), Collection("Secret", "secrets", settings.ns)] + [
            Collection(kind, kind.lower() + "s", settings.ns, workloads.SELECTOR) for kind in workloads.KINDS]
        self.watcher = Watcher(kube, collections, self._changed, watch_timeout=settings.watchTimeoutSeconds,
                               relist_seconds=settings.relistSeconds, max_backoff=settings.maxBackoffSeconds)
        self.view = View()
        self.written: dict[Key, dict[str, Any]] = {}  # status last written (or found) per object
        self.statuses: dict[Key, dict[str, Any]] = {}  # the core's latest status per object
        self._dirty: set[Key] = set()  # status to write
        self._finalize: dict[Key, str] = {}  # finalizer to "add" or "remove"
        self._events: list[tuple[Key, str, str, str]] = []
        self._secrets_changed = False
        self._refresh = asyncio.Event()
        self._work = asyncio.Event()
        self.counts = {"status_patches": 0, "events": 0, "finalizers_added": 0, "finalizers_removed": 0}

    # -- in ------------------------------------------------------------------

    def _changed(self, kind: str, why: str) -> None:
        self._refresh.set()
        if kind in workloads.KINDS:  # a share pod's Deployment or Service: its status may show it
            self.ctx.request_reconcile(why)
        elif kind == "Secret":  # a password: the users and share pods that read it plan again
            self._secrets_changed = True

    def objects(self) -> dict[Key, dict[str, Any]]:
        return objects_of(self.watcher.states)

    def _object(self, key: Key) -> dict[str, Any] | None:
        state = self.watcher.states.get(key[0])
        return None if state is None else state.objects.get(key[1])

    def refresh(self) -> None:
        """Recompute this node's view and give it to the core."""
        self._refresh.clear()
        custom_synced = all(s.synced for k, s in self.watcher.states.items() if k in KINDS)
        errors = self.watcher.errors()
        if not custom_synced or errors:
            # keep what was desired; the errors hold every deletion until the lists work again
            self.feed.replace(SOURCE, self.view.resources.values(), errors or ["not listed yet"])
            return
        objects = self.objects()
        # the last view's resources are the last valid versions (of objects that are still here)
        self.view = view = desired_view(objects, self.settings.node, self.view.resources)
        self.feed.replace(SOURCE, view.resources.values(), [])
        # Held by the core here but no longer desired, without being deleted: forgotten, never destroyed.
        # Another node's now (a pool moved there); no node's, or refused by nasd, with nothing valid known of
        # it here (e.g. after a restart: the last valid version is kept in memory only).
        for key in (view.elsewhere.keys() | view.unplaced.keys() | view.invalid.keys()) - view.resources.keys() \
                - view.deleting:
            if self.ctx.reconciled(key):
                self.feed.release(SOURCE, key)
        self._plan_finalizers(objects, view)
        for key in set(view.invalid) | set(view.unplaced):
            self._dirty.add(key)
        nodes = self.watcher.states["Node"]
        for key in self.statuses:  # a summary of the nodes' entries that is not what they say: write it again
            obj = objects.get(key)
            if obj is not None and scope.every_node(key[0]) and not reporting.same_ready(
                    obj.get("status"), reporting.per_node(self.statuses[key], obj.get("status") or {},
                                                          self.settings.node, nodes.objects.keys())):
                self._dirty.add(key)
        if self._secrets_changed:
            self._secrets_changed = False
            self.ctx.request_reconcile("a Secret changed")
        self._work.set()

    def _plan_finalizers(self, objects: dict[Key, dict[str, Any]], view: View) -> None:
        node, nodes = self.settings.node, self.watcher.states["Node"]
        for key, obj in objects.items():
            has = finalizers.FINALIZER in finalizers.finalizers(obj)
            if key in view.resources and key not in view.unplaced and finalizers.needs_finalizer(obj) \
                    and (not has or finalizers.claimed_by(obj) != node):
                self._finalize[key] = "add"  # (or claim: this node cleans up now)
            if not has or not obj["metadata"].get("deletionTimestamp"):
                continue
            owner = finalizers.claimed_by(obj)
            if owner == node or (owner is None and key in view.deleting):
                if not self.ctx.reconciled(key):
                    self._finalize[key] = "remove"  # nothing of it on this node: the core never had it
            elif owner is not None and nodes.synced and owner not in nodes.objects:
                log.info("%s/%s: node %s is gone from the cluster: removing its finalizer", *key, owner)
                self._finalize[key] = "remove"

    def read_secret(self, ref: SecretRef) -> str:
        state = self.watcher.states["Secret"]
        secret = state.objects.get(ref.name or "")
        where = f"Secret {self.settings.ns}/{ref.name}"
        if secret is None:
            raise KeyError(f"{where} does not exist: create it with the key {ref.key}")
        data = secret.get("data") or {}
        if ref.key not in data:
            raise KeyError(f"{where} has no key {ref.key} (it has: {', '.join(sorted(data)) or 'none'})")
        try:
            return base64.b64decode(data[ref.key], validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise KeyError(f"{where} key {ref.key} is not base64 of UTF-8 text") from None

    # -- workloads (share pods) --------------------------------------------------

    def plan_workload(self, owner: Resource, workload: Workload | None) -> WorkloadPlan:
        if workload is None:
            wanted: list[dict[str, Any]] = []
        else:
            uid = ((self._object(owner.key) or {}).get("metadata") or {}).get("uid") or owner.metadata.uid
            digest = workloads.secrets_digest(workload, self.watcher.states["Secret"].objects)
            wanted = workloads.render_objects(workload, owner, uid, self.settings.node, self.settings.ns, digest)
        # what plan_changes looks at: the objects of the names wanted, and those carrying the owner's label
        names, label = {o["metadata"]["name"] for o in wanted}, workloads.owner_label(owner)
        live = {(kind, name): obj for kind in workloads.KINDS for name, obj in self.watcher.states[kind].objects.items()
                if name in names or ((obj.get("metadata") or {}).get("labels") or {}).get(workloads.OWNER) == label}
        try:
            steps = workloads.plan_changes(wanted, live, owner)
        except workloads.NameTaken as e:
            return WorkloadPlan(problem=str(e))
        name = wanted[0]["metadata"]["name"] if wanted else ""
        status = workloads.workload_status(live.get(("Service", name)), live.get(("Deployment", name)),
                                           self.settings.node)
        return WorkloadPlan(actions=[self._workload_action(step, obj) for step, obj in steps],
                            status=status if workload is not None else {})

    def _workload_action(self, step: str, obj: dict[str, Any]) -> Action:
        kind, name = obj["kind"], obj["metadata"]["name"]
        state = self.watcher.states[kind]

        async def run(ctx: Context) -> None:
            try:
                if step == "delete":
                    await delete_object(self.kube, kind, self.settings.ns, name)
                    state.objects.pop(name, None)
                    return
                made = await (create_object if step == "create" else patch_object)(self.kube, obj)
            except ApiException as e:
                raise TemporaryError(f"{step} {kind} {self.settings.ns}/{name}: {e.status} {e.reason}",
                                     reason="KubernetesAPIError") from None
            state.objects[name] = made  # until the watch says so too: the next pass must not create it again

        return Action(f"{step} {kind} {self.settings.ns}/{name}", func=run)

    # -- out -----------------------------------------------------------------

    def status_changed(self, resource: Resource) -> None:
        self.statuses[resource.key] = status_document(resource)
        self._dirty.add(resource.key)
        self._work.set()

    def sync_statuses(self, desired: list[Resource]) -> None:
        """Queue a write for every object here whose status in the cluster is not the core's (a status
        lost while nasd was down, an object re-created): called as each pass starts."""
        for resource in desired:
            obj = self._object(resource.key)
            if obj is None or resource.key in self.statuses or self.feed.source_of(resource.key) != [SOURCE]:
                continue
            doc = status_document(resource)
            if resource.status.conditions and (obj.get("status") or {}) != doc:
                self.statuses[resource.key] = doc
                self._dirty.add(resource.key)
                self._work.set()

    def deleted(self, resource: Resource) -> None:
        key = resource.key
        self.statuses.pop(key, None)
        self.written.pop(key, None)
        obj = self._object(key)
        if obj is None or not obj["metadata"].get("deletionTimestamp"):
            return  # (released, or only re-scoped: not a deletion in the cluster)
        if finalizers.FINALIZER in finalizers.finalizers(obj):
            self._finalize[key] = "remove"
        self._events.append((key, "Normal", "Pruned", "removed from the node by its deletion"))
        self._work.set()

    def _wanted_status(self, key: Key, obj: dict[str, Any]) -> dict[str, Any] | None:
        """The core's status, with Ready replaced when nasd cannot take the spec (InvalidSpec) or no node
        can take the object (NoNode); for a kind every node handles, this node's entry under ``nodes``."""
        generation = obj["metadata"].get("generation")
        core = self.statuses.get(key)
        kept = " (the last valid spec stays in effect here)" if key in self.view.resources else ""
        if key in self.view.invalid:
            problem = ("InvalidSpec", "nasd refuses this spec: " + self.view.invalid[key] + kept)
        elif key in self.view.unplaced:
            problem = ("NoNode", self.view.unplaced[key] + (" (kept as it was until the object is deleted)"
                                                            if key in self.view.resources else ""))
        elif core is None:
            return None
        else:
            problem = None
        doc = dict(core or {"observedGeneration": generation})
        if problem is not None:
            ready = reporting.not_ready(problem[0], problem[1], generation)
            doc["conditions"] = [c for c in doc.get("conditions") or [] if c.get("type") != "Ready"] + [ready]
        if scope.every_node(key[0]):
            nodes = self.watcher.states["Node"]
            doc = reporting.per_node(doc, obj.get("status") or {}, self.settings.node,
                                     nodes.objects.keys() if nodes.synced else None)
        return doc

    async def write_pending(self) -> None:
        """Make every queued write; what fails is queued again."""
        objects = self.objects()
        dirty, self._dirty = self._dirty, set()
        for key in sorted(dirty):
            obj = objects.get(key)
            if obj is None:
                continue
            wanted = self._wanted_status(key, obj)
            if wanted is None:
                continue
            live = obj.get("status") or {}
            if key in self.view.unplaced and key not in self.view.resources and \
                    (reporting.ready_of(live) or {}).get("reason") == "NoNode":
                continue  # another node (perhaps the one that keeps it) said so already
            # what other nodes write (the kinds every node handles) is read back, never overwritten
            before = live if scope.every_node(key[0]) else self.written.get(key, live)
            wanted = reporting.keep_transition_time(before, wanted)
            patch = status_patch(wanted, before)
            if patch is None:
                self.written[key] = wanted
                continue
            if scope.every_node(key[0]):  # several nodes write it: only over the version it was computed from
                patch["metadata"] = {"resourceVersion": obj["metadata"]["resourceVersion"]}
            try:
                await self.kube.patch_status(key[0], key[1], patch)
            except ApiException as e:
                if e.status == 409:  # another node wrote first: the watch brings its version, then again
                    self._dirty.add(key)
                elif e.status != 404:
                    log.warning("writing the status of %s/%s failed: %s %s", *key, e.status, e.reason)
                    self._dirty.add(key)
                continue
            self.counts["status_patches"] += 1
            self.written[key] = wanted
            if scope.every_node(key[0]):  # this node's own transition, named by the node in the event
                event = reporting.transition((before.get("nodes") or {}).get(self.settings.node),
                                             wanted["nodes"][self.settings.node])
            else:
                event = reporting.transition(reporting.ready_of(before), reporting.ready_of(wanted))
            if event is not None:
                self._events.append((key, *event))
            if not scope.every_node(key[0]):  # a pool's health and the like: each change of another condition
                self._events += [(key, *e) for e in reporting.condition_transitions(before, wanted)]
        await self._write_events(objects)  # before a finalizer goes: the object is still there to name
        await self._write_finalizers(objects)

    async def _write_finalizers(self, objects: dict[Key, dict[str, Any]]) -> None:
        todo, self._finalize = self._finalize, {}
        for key, what in sorted(todo.items()):
            obj = objects.get(key)
            if obj is None:
                continue
            has = finalizers.FINALIZER in finalizers.finalizers(obj)
            if what == "remove" and not has:
                continue
            if what == "add" and has and finalizers.claimed_by(obj) == self.settings.node:
                continue
            body = (finalizers.with_finalizer(obj, self.settings.node) if what == "add"
                    else finalizers.without_finalizer(obj))
            try:
                await self.kube.patch(key[0], key[1], body)
            except ApiException as e:
                if e.status == 409:  # changed meanwhile: the watch brings the new version, then again
                    self._finalize.setdefault(key, what)
                elif e.status != 404:
                    log.warning("%s the finalizer of %s/%s failed: %s %s", what, *key, e.status, e.reason)
                    self._finalize.setdefault(key, what)
                continue
            self.counts["finalizers_added" if what == "add" else "finalizers_removed"] += 1

    async def _write_events(self, objects: dict[Key, dict[str, Any]]) -> None:
        events, self._events = self._events, []
        for key, type_, reason, message in events:
            obj = objects.get(key)
            if obj is None:
                continue
            body = reporting.event_body(obj, self.settings.eventsNamespace, self.settings.node, type_, reason, message)
            try:
                await self.kube.create_event(self.settings.eventsNamespace, body)
                self.counts["events"] += 1
            except ApiException as e:  # a log line, not the truth: never retried
                log.warning("event %s on %s/%s not recorded: %s %s", reason, *key, e.status, e.reason)

    # -- tasks ---------------------------------------------------------------

    async def run_refresher(self) -> None:
        while True:
            await self._refresh.wait()
            await asyncio.sleep(0.05)  # a burst of events (a list, kubectl apply -f dir) makes one refresh
            try:
                self.refresh()
            except Exception:  # a bug here must not stop the source for good
                log.exception("refreshing the cluster's view failed")
                await asyncio.sleep(1.0)

    async def run_writer(self) -> None:
        failures = 0
        while True:
            await self._work.wait()
            self._work.clear()
            try:
                await self.write_pending()
                failures = 0
            except Exception as e:  # the API server away: try again
                failures += 1
                log.warning("writing to the API server failed: %s: %s", type(e).__name__, e)
            if self._dirty or self._finalize:
                await asyncio.sleep(min(0.2 * 2 ** failures, self.settings.maxBackoffSeconds))
                self._work.set()
