"""The one place that talks to the API server, with kubernetes-asyncio.

Every call returns plain dicts (``_preload_content=False`` and JSON), so the watcher, the status
writer and the share pods handle custom objects and built-in ones alike. Patches name their content
type: kubernetes-asyncio sends a dict body to a custom object's ``patch`` as a JSON patch
(``application/json-patch+json``) unless told otherwise, which a real API server rejects.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, AsyncIterator

from kubernetes_asyncio import client, config, watch
from kubernetes_asyncio.client.exceptions import ApiException

from nasd.plugin import API_GROUP, API_VERSION, KINDS

from .settings import KubernetesSettings

MERGE_PATCH = "application/merge-patch+json"

__all__ = ["ApiException", "Collection", "Kube", "MERGE_PATCH", "connect"]


async def connect(settings: KubernetesSettings) -> client.ApiClient:
    cfg = client.Configuration()
    if settings.kubeconfig is not None:
        await config.load_kube_config(config_file=str(settings.kubeconfig), context=settings.context,
                                      client_configuration=cfg)
    else:
        config.load_incluster_config(client_configuration=cfg)
    return client.ApiClient(configuration=cfg)


async def _json(response: Any) -> Any:
    try:
        return json.loads(await response.read())
    finally:
        response.release()


@dataclass(frozen=True)
class Collection:
    """One kind of object to list and watch: a nasd kind (cluster-scoped custom objects), or a
    built-in (``nodes``; ``secrets`` in one namespace)."""

    name: str  # the kind, e.g. NASShare, Node, Secret
    plural: str
    namespace: str | None = None
    label_selector: str | None = None

    @classmethod
    def custom(cls, kind: str) -> "Collection":
        return cls(kind, KINDS[kind].plural)


class Kube:
    def __init__(self, api: client.ApiClient):
        self.api = api
        self.custom = client.CustomObjectsApi(api)
        self.core = client.CoreV1Api(api)
        self.apps = client.AppsV1Api(api)

    async def close(self) -> None:
        await self.api.close()

    def _list_fn(self, c: Collection) -> Any:
        if c.name in KINDS:
            return lambda **kw: self.custom.list_cluster_custom_object(API_GROUP, API_VERSION, c.plural, **kw)
        if c.name == "Node":
            return self.core.list_node
        namespaced = {"Secret": self.core.list_namespaced_secret, "ConfigMap": self.core.list_namespaced_config_map,
                      "Service": self.core.list_namespaced_service, "Deployment": self.apps.list_namespaced_deployment}
        if c.name in namespaced:
            selector = {"label_selector": c.label_selector} if c.label_selector else {}
            return lambda **kw: namespaced[c.name](c.namespace, **selector, **kw)
        raise ValueError(f"no collection {c.name}")

    async def list(self, c: Collection) -> tuple[list[dict[str, Any]], str]:
        """Every object of the collection and the list's resourceVersion."""
        body = await _json(await self._list_fn(c)(_preload_content=False))
        return list(body.get("items") or []), str((body.get("metadata") or {}).get("resourceVersion") or "")

    async def watch(self, c: Collection, resource_version: str, timeout: int) -> AsyncIterator[dict[str, Any]]:
        """Events after ``resource_version`` until the server ends the watch (``timeoutSeconds``); a
        410 Expired surfaces as ApiException(status=410). BOOKMARK events are passed on."""
        w = watch.Watch()
        try:
            # the client gives up a little after the server should have ended the watch: a half-open
            # connection (a node's network gone) is noticed, not waited on for ever
            async for event in w.stream(self._list_fn(c), resource_version=resource_version, timeout_seconds=timeout,
                                        allow_watch_bookmarks=True, _request_timeout=timeout + 30):
                yield {"type": event["type"], "object": event["raw_object"]}
        finally:
            await w.close()

    async def patch(self, kind: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        return await _json(await self.custom.patch_cluster_custom_object(
            API_GROUP, API_VERSION, KINDS[kind].plural, name, body, _content_type=MERGE_PATCH, _preload_content=False))

    async def patch_status(self, kind: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        return await _json(await self.custom.patch_cluster_custom_object_status(
            API_GROUP, API_VERSION, KINDS[kind].plural, name, body, _content_type=MERGE_PATCH, _preload_content=False))

    async def create_event(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        return await _json(await self.core.create_namespaced_event(namespace, body, _preload_content=False))


# -- the namespaced objects of share pods (ConfigMap, Deployment, Service) -------------

def _namespaced(kube: Kube, kind: str) -> tuple[Any, str]:
    return {"ConfigMap": (kube.core, "config_map"), "Service": (kube.core, "service"),
            "Deployment": (kube.apps, "deployment")}[kind]


async def create_object(kube: Kube, obj: dict[str, Any]) -> dict[str, Any]:
    api, suffix = _namespaced(kube, obj["kind"])
    fn = getattr(api, f"create_namespaced_{suffix}")
    return await _json(await fn(obj["metadata"]["namespace"], obj, _preload_content=False))


async def patch_object(kube: Kube, obj: dict[str, Any]) -> dict[str, Any]:
    """A merge patch with the whole object: nasd's fields replaced, lists whole (containers, ports)."""
    api, suffix = _namespaced(kube, obj["kind"])
    fn = getattr(api, f"patch_namespaced_{suffix}")
    return await _json(await fn(obj["metadata"]["name"], obj["metadata"]["namespace"], obj,
                                _content_type=MERGE_PATCH, _preload_content=False))


async def delete_object(kube: Kube, kind: str, namespace: str, name: str) -> None:
    api, suffix = _namespaced(kube, kind)
    fn = getattr(api, f"delete_namespaced_{suffix}")
    try:
        await _json(await fn(name, namespace, _preload_content=False))
    except ApiException as e:
        if e.status != 404:
            raise
