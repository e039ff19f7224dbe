"""Discovery and OpenAPI documents: how clients learn what the server serves.

kubectl (client-go's discovery client) first asks ``/api`` and ``/apis`` with
``Accept: application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,
...,application/json`` (aggregated discovery, one document for everything). A
server that answers with plain ``Content-Type: application/json`` is treated
as one without aggregated discovery: the client then reads the legacy
documents, ``APIVersions`` at ``/api``, ``APIGroupList`` at ``/apis`` and one
``APIResourceList`` per group version (``/api/v1``, ``/apis/<group>/<version>``).
That is what this fake serves. The ``APIResourceList`` entries carry
``namespaced``, ``kind``, ``verbs``, ``shortNames``, ``categories`` (``kubectl
get nas`` expands the category ``nas`` from them) and the ``<plural>/status``
subresources.

OpenAPI: for ``kubectl apply`` (default ``--validate=strict``) kubectl asks
``/openapi/v3`` for the group versions and then ``/openapi/v3/<gv>`` to see
whether the PATCH operation of the object's kind (found by its
``x-kubernetes-group-version-kind``) takes the ``fieldValidation`` parameter.
If it does, validation is left to the server (``?fieldValidation=Strict``).
So each group version's document here lists, per resource, the operations
with that parameter, and for custom resources the CRD's schema under
``components.schemas``. The PATCH ``requestBody`` lists JSON patch, merge
patch and apply patch but no strategic merge patch, so ``kubectl apply``
updates custom resources with a JSON merge patch, as with a real server.
``/openapi/v2`` (only read by kubectl when it validates on the client side or
for ``kubectl explain``) is an empty protobuf document.

Simpler than the real server: no aggregated discovery, no ``storageVersionHash``,
no ETags, and the OpenAPI documents describe operations, not the built-in types.
"""

from __future__ import annotations

import hashlib
import json
import weakref
from typing import Any

from .patch import APPLY, JSON_PATCH, MERGE
from .resources import ALL_VERBS, Registry, ResourceType

KUBE_VERSION = {
    "major": "1", "minor": "32", "gitVersion": "v1.32.0-nasd-fake", "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean", "buildDate": "2024-12-11T00:00:00Z", "goVersion": "go1.23.4", "compiler": "gc",
    "platform": "linux/amd64",
}


def api_versions(server_address: str) -> dict[str, Any]:
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]}


def api_group(registry: Registry, group: str) -> dict[str, Any] | None:
    versions = [v for g, v in registry.group_versions() if g == group]
    if not versions:
        return None
    entries = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {"kind": "APIGroup", "apiVersion": "v1", "name": group, "versions": entries,
            "preferredVersion": entries[0]}


def api_group_list(registry: Registry) -> dict[str, Any]:
    groups = []
    for group in dict.fromkeys(g for g, _ in registry.group_versions() if g):
        info = api_group(registry, group)
        if info:
            info = {k: v for k, v in info.items() if k not in ("kind", "apiVersion")}
            groups.append(info)
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def _resource_entry(rtype: ResourceType) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": rtype.plural, "singularName": rtype.singular, "namespaced": rtype.namespaced,
        "kind": rtype.kind, "verbs": list(ALL_VERBS),
    }
    if rtype.short_names:
        entry["shortNames"] = rtype.short_names
    if rtype.categories:
        entry["categories"] = rtype.categories
    return entry


def api_resource_list(registry: Registry, group: str, version: str) -> dict[str, Any] | None:
    types = registry.in_group_version(group, version)
    if not types:
        return None
    resources: list[dict[str, Any]] = []
    for rtype in sorted(types, key=lambda t: t.plural):
        resources.append(_resource_entry(rtype))
        if rtype.has_status:
            resources.append({"name": f"{rtype.plural}/status", "singularName": "", "namespaced": rtype.namespaced,
                              "kind": rtype.kind, "verbs": ["get", "patch", "update"]})
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": types[0].api_version,
            "resources": resources}


# ------------------------------------------------------------------------------------------- OpenAPI v3

def _gv_path(group: str, version: str) -> str:
    return f"api/{version}" if not group else f"apis/{group}/{version}"


def openapi_v3_gv(registry: Registry, group: str, version: str) -> dict[str, Any] | None:
    types = registry.in_group_version(group, version)
    if not types:
        return None
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    query = [{"name": n, "in": "query", "schema": {"type": "string", "uniqueItems": True}}
             for n in ("dryRun", "fieldManager", "fieldValidation")]
    for rtype in types:
        gvk = {"group": group, "version": version, "kind": rtype.kind}
        ref_name = ".".join(reversed(group.split("."))) + f".{version}.{rtype.kind}" if group else f"io.k8s.api.core.{version}.{rtype.kind}"
        schema = dict(rtype.schema or {"type": "object", "x-kubernetes-preserve-unknown-fields": True})
        schema["x-kubernetes-group-version-kind"] = [gvk]
        schemas[ref_name] = schema
        body = {"$ref": f"#/components/schemas/{ref_name}"}
        prefix = "/" + _gv_path(group, version) + ("/namespaces/{namespace}" if rtype.namespaced else "")
        ok = {"200": {"description": "OK", "content": {"application/json": {"schema": body}}}}
        patch_types = [JSON_PATCH, MERGE, APPLY] if rtype.custom else [JSON_PATCH, MERGE]
        item_ops = {
            "get": {"operationId": f"read{rtype.kind}", "x-kubernetes-action": "get",
                    "x-kubernetes-group-version-kind": gvk, "responses": ok},
            "put": {"operationId": f"replace{rtype.kind}", "x-kubernetes-action": "put",
                    "x-kubernetes-group-version-kind": gvk, "parameters": query,
                    "requestBody": {"content": {"application/json": {"schema": body}}}, "responses": ok},
            "patch": {"operationId": f"patch{rtype.kind}", "x-kubernetes-action": "patch",
                      "x-kubernetes-group-version-kind": gvk,
                      "parameters": query + [{"name": "force", "in": "query", "schema": {"type": "boolean"}}],
                      "requestBody": {"content": {t: {"schema": {"type": "object"}} for t in patch_types}},
                      "responses": ok},
            "delete": {"operationId": f"delete{rtype.kind}", "x-kubernetes-action": "delete",
                       "x-kubernetes-group-version-kind": gvk, "responses": ok},
            "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
        }
        paths[f"{prefix}/{rtype.plural}/{{name}}"] = item_ops
        paths[f"{prefix}/{rtype.plural}"] = {
            "get": {"operationId": f"list{rtype.kind}", "x-kubernetes-action": "list",
                    "x-kubernetes-group-version-kind": gvk, "responses": {"200": {"description": "OK"}}},
            "post": {"operationId": f"create{rtype.kind}", "x-kubernetes-action": "post",
                     "x-kubernetes-group-version-kind": gvk, "parameters": query,
                     "requestBody": {"content": {"application/json": {"schema": body}}}, "responses": ok},
        }
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.32.0"}, "paths": paths,
            "components": {"schemas": schemas}}


_INDEXES: weakref.WeakKeyDictionary[Registry, tuple[int, dict[str, Any]]] = weakref.WeakKeyDictionary()


def openapi_v3_index(registry: Registry) -> dict[str, Any]:
    """``/openapi/v3``: every group version with the hash of its document (rebuilt when the registry changes)."""
    cached = _INDEXES.get(registry)
    if cached is None or cached[0] != registry.generation:
        paths = {}
        for group, version in registry.group_versions():
            doc = openapi_v3_gv(registry, group, version)
            digest = hashlib.sha512(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:32].upper()
            paths[_gv_path(group, version)] = {
                "serverRelativeURL": f"/openapi/v3/{_gv_path(group, version)}?hash={digest}"}
        cached = _INDEXES[registry] = (registry.generation, {"paths": paths})
    return cached[1]
