"""Workloads (``nasd.workloads.Workload``: e.g. an SMB share's smbd) as Kubernetes objects, and the
plan that makes the cluster run them.

Per workload, in nasd's namespace: a ConfigMap with its files, a Deployment of one pod pinned to
this node (``kubernetes.io/hostname``), mounting the files, the Secret keys and the host folders
(host-to-container propagation, so datasets mounted later appear), and a Service. Each object
carries its owner as an owner reference (Kubernetes deletes them with it) and the hash of what
nasd rendered (``nasd.io/spec-hash``): an object whose hash matches is left alone, so a pass that
changes nothing writes nothing. The pod template carries the hash of the files, so a changed
smb.conf or start script restarts the pod (``Recreate``: never two smbd for one share).
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from nasd.plugin import GROUP_VERSION, Resource, Workload

MANAGED_BY = "app.kubernetes.io/managed-by"
SELECTOR = f"{MANAGED_BY}=nasd"
WORKLOAD = "nasd.io/workload"
OWNER = "nasd.io/owner"
HASH = "nasd.io/spec-hash"
KINDS = ("ConfigMap", "Deployment", "Service")


def object_name(workload: str) -> str:
    """``nasd-<workload>``, a DNS label; a long name is cut and made unique with a hash of the whole."""
    name = "nasd-" + workload
    if len(name) <= 63:
        return name
    return name[:54].rstrip("-") + "-" + hashlib.sha256(workload.encode()).hexdigest()[:8]


def owner_label(owner: Resource) -> str:
    value = f"{owner.kind}.{owner.name}"
    if len(value) <= 63:
        return value
    return f"{owner.kind}.{hashlib.sha256(owner.name.encode()).hexdigest()[:40]}"


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:20]


def _key(index: int, path: str) -> str:
    return f"{index}-" + re.sub(r"[^-._a-zA-Z0-9]", "-", path.rsplit("/", 1)[-1])


def render_objects(workload: Workload, owner: Resource, owner_uid: str | None, node: str,
                   namespace: str, secrets_digest: str = "") -> list[dict[str, Any]]:
    """``secrets_digest`` stands for the values of the Secrets the pod reads: when one changes, the pod
    template changes and the pod restarts with it (files mounted with subPath are never updated)."""
    name = object_name(workload.name)
    labels = {MANAGED_BY: "nasd", WORKLOAD: workload.name, OWNER: owner_label(owner)}
    meta: dict[str, Any] = {"name": name, "namespace": namespace, "labels": labels}
    if owner_uid:
        meta["ownerReferences"] = [{"apiVersion": GROUP_VERSION, "kind": owner.kind, "name": owner.name,
                                    "uid": owner_uid, "controller": True}]
    data = {_key(i, path): text for i, (path, text) in enumerate(workload.files)}
    config_map = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": dict(meta), "data": data}

    mounts: list[dict[str, Any]] = [
        {"name": "files", "mountPath": path, "subPath": _key(i, path), "readOnly": True}
        for i, (path, _) in enumerate(workload.files)]
    volumes: list[dict[str, Any]] = [{"name": "files", "configMap": {"name": name}}]
    for i, secret in enumerate(workload.secret_files):
        volumes.append({"name": f"secret-{i}", "secret": {"secretName": secret.secret, "defaultMode": 0o400,
                                                         "items": [{"key": secret.key, "path": "value"}]}})
        mounts.append({"name": f"secret-{i}", "mountPath": secret.container, "subPath": "value", "readOnly": True})
    for i, host in enumerate(workload.host_paths):
        volumes.append({"name": f"host-{i}", "hostPath": {"path": host.host, "type": "Directory"}})
        mounts.append({"name": f"host-{i}", "mountPath": host.container, "readOnly": host.read_only,
                       "mountPropagation": "HostToContainer"})
    pod_labels = {MANAGED_BY: "nasd", WORKLOAD: workload.name}
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": dict(meta),
        "spec": {
            "replicas": 1,
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": {WORKLOAD: workload.name}},
            "template": {
                "metadata": {"labels": pod_labels,
                             "annotations": {"nasd.io/files-hash": _digest(
                                 [data, [s.__dict__ for s in workload.secret_files], secrets_digest])}},
                "spec": {
                    # the node by its name (its kubernetes.io/hostname label may differ)
                    "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [{"matchFields": [
                            {"key": "metadata.name", "operator": "In", "values": [node]}]}]}}},
                    "containers": [{
                        "name": "main",
                        "image": workload.image,
                        "command": list(workload.command),
                        "ports": [{"name": p.name, "containerPort": p.port, "protocol": p.protocol}
                                  for p in workload.ports],
                        "volumeMounts": mounts,
                    }],
                    "volumes": volumes,
                },
            },
        },
    }
    service = {
        "apiVersion": "v1", "kind": "Service", "metadata": dict(meta),
        "spec": {"type": workload.service_type, "selector": {WORKLOAD: workload.name},
                 "ports": [{"name": p.name, "port": p.port, "targetPort": p.port, "protocol": p.protocol}
                           for p in workload.ports]},
    }
    out = []
    for obj in (config_map, deployment, service):
        obj["metadata"] = {**obj["metadata"], "annotations": {HASH: _digest(obj)}}
        out.append(obj)
    return out


def secrets_digest(workload: Workload, secrets: dict[str, dict[str, Any]]) -> str:
    """A digest of the values of the Secrets ``workload`` reads (a missing one counts as empty)."""
    used = sorted({f.secret for f in workload.secret_files})
    return _digest([[name, (secrets.get(name) or {}).get("data") or {}] for name in used]) if used else ""


class NameTaken(ValueError):
    pass


def plan_changes(wanted: list[dict[str, Any]], live: dict[tuple[str, str], dict[str, Any]],
                 owner: Resource) -> list[tuple[str, dict[str, Any]]]:
    """("create"|"patch"|"delete", object) steps from the live objects of ``owner`` to ``wanted``.
    Raises NameTaken rather than touch an object another owner has."""
    steps: list[tuple[str, dict[str, Any]]] = []
    names = set()
    label = owner_label(owner)
    for obj in wanted:
        key = (obj["kind"], obj["metadata"]["name"])
        names.add(key)
        current = live.get(key)
        holder = ((current or {}).get("metadata") or {}).get("labels", {}).get(OWNER)
        if current is not None and holder != label:
            raise NameTaken(f"{key[0]} {obj['metadata']['namespace']}/{key[1]} belongs to {holder or 'someone else'}: "
                            "rename one of the two")
        if current is None:
            steps.append(("create", obj))
        elif ((current.get("metadata") or {}).get("annotations") or {}).get(HASH) != obj["metadata"]["annotations"][HASH]:
            steps.append(("patch", obj))
    for key, obj in sorted(live.items()):
        if key not in names and ((obj.get("metadata") or {}).get("labels") or {}).get(OWNER) == label:
            steps.append(("delete", obj))
    return steps


def workload_status(service: dict[str, Any] | None, deployment: dict[str, Any] | None,
                    node: str) -> dict[str, Any]:
    """The Service, node and node port, and how many pods of the Deployment are available."""
    status: dict[str, Any] = {"node": node,
                              "podsAvailable": int(((deployment or {}).get("status") or {}).get("availableReplicas") or 0)}
    if service is None:
        return status
    status["service"] = f"{service['metadata']['namespace']}/{service['metadata']['name']}"
    ports = [p.get("nodePort") for p in (service.get("spec") or {}).get("ports") or [] if p.get("nodePort")]
    if ports:
        status["nodePort"] = ports[0]
        status["endpoint"] = f"{node}:{ports[0]}"
    return status
