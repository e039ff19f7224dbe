"""Status and Events back to the cluster.

Status goes through the ``/status`` subresource as a merge patch holding only what changed since
the status last written (fields that went away set to null). What was last written starts as the
object's status in the cluster, so a restarted nasd writes nothing that is already there.
Events mark the transitions of the Ready condition: ``Created`` (Ready for the first time),
a failure (the condition's own reason, a Warning), ``Recovered`` (Ready again), and ``Pruned``
when the node finished removing a deleted object; and each change of status or reason of another
condition (a pool turning Degraded, its devices' errors, its capacity). The status is the truth: Events are a log,
and the API server drops them after an hour.
"""

from __future__ import annotations

import datetime as _dt
import uuid
from typing import Any

from nasd.plugin import GROUP_VERSION, Condition


def ready_of(status: dict[str, Any] | None) -> dict[str, Any] | None:
    for c in (status or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return c
    return None


def transition(before: dict[str, Any] | None, after: dict[str, Any] | None) -> tuple[str, str, str] | None:
    """The Event (type, reason, message) for a change of Ready from ``before`` to ``after``, if any."""
    if after is None:
        return None
    was, now = (before or {}).get("status"), after.get("status")
    message = after.get("message") or ""
    if now == "True" and was != "True":
        return ("Normal", "Recovered" if was == "False" else "Created", message)
    if now == "False" and (was != "False" or (before or {}).get("reason") != after.get("reason")):
        return ("Warning", after.get("reason") or "Failed", message)
    return None


#: conditions that are True when all is well; every other one (Degraded, Full, DeviceErrors, ...) is True while
#: something is wrong
POSITIVE_CONDITIONS = frozenset({"Ready", "Advertised"})


def condition_transitions(before: dict[str, Any] | None, after: dict[str, Any] | None) -> list[tuple[str, str, str]]:
    """The Events (type, reason, message) for the conditions besides Ready (a pool's Degraded, DeviceErrors,
    CapacityHigh, ...) whose status or reason changed from status ``before`` to ``after``: a Warning when one turns
    bad, Normal when it turns good or goes away. A condition that first appears good, or whose message alone
    changed (a percentage), makes none."""
    def of(status: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
        return {c.get("type"): c for c in (status or {}).get("conditions") or [] if c.get("type") != "Ready"}

    def bad(c: dict[str, Any]) -> bool:
        return (c.get("status") == "True") != (c.get("type") in POSITIVE_CONDITIONS)

    old, new = of(before), of(after)
    out: list[tuple[str, str, str]] = []
    for type_, c in new.items():
        was = old.get(type_)
        if was is None and not bad(c):
            continue
        if was is not None and (was.get("status"), was.get("reason")) == (c.get("status"), c.get("reason")):
            continue
        out.append(("Warning" if bad(c) else "Normal", c.get("reason") or type_, f"{type_}: {c.get('message') or ''}"))
    for type_, c in old.items():
        if type_ not in new and bad(c):
            out.append(("Normal", f"{type_}Cleared", f"{type_}: no longer applies"))
    return out


def event_body(obj: dict[str, Any], namespace: str, node: str, type_: str, reason: str, message: str) -> dict[str, Any]:
    meta = obj.get("metadata") or {}
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{meta.get('name')}.{uuid.uuid4().hex[:16]}", "namespace": namespace},
        "involvedObject": {"apiVersion": GROUP_VERSION, "kind": obj.get("kind"), "name": meta.get("name"),
                           "uid": meta.get("uid"), "resourceVersion": meta.get("resourceVersion")},
        "reason": reason,
        "message": (f"{message} (node {node})" if message else f"node {node}")[:1024],
        "type": type_,
        "source": {"component": "nasd", "host": node},
        "reportingComponent": "nasd.io/nasd",
        "reportingInstance": node,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }


def not_ready(reason: str, message: str, generation: int | None) -> dict[str, Any]:
    """A Ready=False condition (now), for an object nasd cannot take (no node, invalid)."""
    return Condition(type="Ready", status="False", reason=reason, message=message[:1024],
                     observedGeneration=generation).model_dump(mode="json")


def same_ready(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool:
    """Whether two statuses say the same about Ready (the time it last changed aside)."""
    ra, rb = ready_of(a), ready_of(b)
    pick = ("status", "reason", "message", "observedGeneration")
    return (ra is None) == (rb is None) and (ra is None or all(ra.get(k) == rb.get(k) for k in pick))  # type: ignore[union-attr]


def keep_transition_time(before: dict[str, Any] | None, wanted: dict[str, Any]) -> dict[str, Any]:
    """``wanted`` with the Ready condition's lastTransitionTime of ``before`` while Ready's status is the
    same, as Kubernetes means it (so a status rebuilt from scratch, e.g. NoNode or InvalidSpec, is not
    rewritten every time)."""
    old, new = ready_of(before), ready_of(wanted)
    if old is None or new is None or old.get("status") != new.get("status") or "lastTransitionTime" not in old:
        return wanted
    conditions = [({**c, "lastTransitionTime": old["lastTransitionTime"]} if c.get("type") == "Ready" else c)
                  for c in wanted.get("conditions") or []]
    return {**wanted, "conditions": conditions}


def per_node(doc: dict[str, Any], live: dict[str, Any], node: str,
             cluster_nodes: Any = None) -> dict[str, Any]:
    """The status of a kind every node handles (directories, users, groups): each node's Ready under
    ``nodes.<node>`` (a merge patch of one node's entry leaves the others' alone), and a Ready condition
    that sums them up, True when it is True on every node that reports. Nothing else: fields of one
    node's own status (which may differ between nodes) would be overwritten by the next node. Entries of
    nodes no longer in ``cluster_nodes`` (when given) are dropped. The summary is computed from the
    entries alone, so every node computes the same one."""
    mine = ready_of(doc) or {}
    entry = {k: mine.get(k) for k in ("status", "reason", "message", "observedGeneration") if mine.get(k) is not None}
    nodes = {**(live.get("nodes") or {}), node: entry}
    if cluster_nodes is not None:
        nodes = {n: e for n, e in nodes.items() if n in cluster_nodes or n == node}
    failing = sorted(n for n, e in nodes.items() if e.get("status") != "True")
    generations = [e.get("observedGeneration") for e in nodes.values() if e.get("observedGeneration") is not None]
    if failing:
        worst = nodes[failing[0]]
        summary = {"type": "Ready", "status": "False", "reason": worst.get("reason") or "Failed",
                   "message": f"node {failing[0]}: {worst.get('message', '')}"
                              + (f" (and {len(failing) - 1} more node(s))" if len(failing) > 1 else "")}
    else:
        summary = {"type": "Ready", "status": "True", "reason": "Ready",
                   "message": f"ready on {len(nodes)} node(s): {', '.join(sorted(nodes))}"}
    summary["observedGeneration"] = min(generations) if generations else None
    before = ready_of(live) or {}
    summary["lastTransitionTime"] = (before.get("lastTransitionTime") if before.get("status") == summary["status"]
                                     else None) or not_ready("", "", None)["lastTransitionTime"]
    return {"conditions": [summary], "nodes": nodes}
