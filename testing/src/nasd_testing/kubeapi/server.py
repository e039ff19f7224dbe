"""The HTTP side: an aiohttp app that routes REST requests the way kube-apiserver does.

Paths: ``/api/v1/...`` for the core group and ``/apis/<group>/<version>/...``
for the others, with ``namespaces/<ns>/`` before the plural for namespaced
resources, then ``<name>`` and ``status`` for the status subresource.
Verbs: list/watch/create/deletecollection on collections, get/update/patch/
delete on objects, get/update/patch on ``/status``. Every request needs
``Authorization: Bearer <token>`` when a token is set, and every failure is a
``Status`` (see ``status.py``).

What a write goes through, as on the real server (``k8s.io/apiserver``'s
handlers plus the registry strategies):

* decoding: JSON, YAML, or protobuf for a few built-ins (``protobuf.py``);
  ``apiVersion``/``kind`` must match
  the URL (custom resources must carry both); unknown fields are pruned, or
  rejected with ``fieldValidation=Strict`` (400 ``BadRequest``
  ``... strict decoding error: unknown field "spec.foo"``), or reported in a
  ``Warning`` header with ``Warn`` and when the parameter is absent (the
  server's default is ``Warn``);
* for custom resources the CRD's structural schema (defaults, validation:
  422 ``Invalid`` naming each field), for every kind ``metadata.name``
  syntax;
* namespaced objects only in existing namespaces (404 ``namespaces "x" not
  found``, 403 while the namespace terminates);
* PUT: ``metadata.resourceVersion`` is required for custom resources (422)
  and a stale one is a 409 ``Conflict``; with a status subresource the main
  endpoint keeps the stored ``status`` and ``/status`` changes nothing but
  ``status``;
* PATCH: see ``patch.py``; a ``metadata.resourceVersion`` in the patch is a
  precondition;
* DELETE: finalizers, owner references and namespaces as in ``store.py``;
  ``DeleteOptions`` preconditions (uid, resourceVersion) are honoured.

Kind-specific behaviour: CustomResourceDefinitions register their resource
as soon as they are created (``Established`` at once), are re-read on update
and take their objects with them when deleted; Namespaces get
``spec.finalizers: [kubernetes]``, ``status.phase`` and the
``kubernetes.io/metadata.name`` label; Secrets get ``type: Opaque`` by
default and their ``stringData`` moved into ``data``; core/v1 Events must live in the
namespace of their ``involvedObject`` (``default`` for cluster-scoped ones).

Simpler than the real server: no authorization (any valid token may do
anything), no admission, no server-side apply, no ``managedFields``, no
``limit``/``continue`` paging (lists return everything), no protobuf,
built-ins are not validated beyond their metadata (and unknown fields of
built-ins are kept, not pruned), and ``dryRun`` only skips the write.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import random
import re
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from . import discovery, protobuf
from .patch import accepted_patch_types, apply_patch
from .resources import Registry, ResourceType, builtin_types, types_from_crd
from .schema import apply_defaults, prune, validate
from .selectors import parse_field_selector, parse_label_selector
from .status import (
    ApiError, FieldError, bad_request, conflict, forbidden, invalid, method_not_allowed, no_such_resource, not_found,
    unauthorized, unsupported_media_type,
)
from .store import NAMESPACES, Store, now
from .tables import to_table, wants_table
from .tls import Certificate, self_signed
from .watch import OpenWatch, WatchFilter, end_watches, serve_watch, truthy

CRDS = ("apiextensions.k8s.io", "customresourcedefinitions")
EVENTS = ("", "events")
OBJECT_META_FIELDS = {
    "name", "generateName", "namespace", "selfLink", "uid", "resourceVersion", "generation", "creationTimestamp",
    "deletionTimestamp", "deletionGracePeriodSeconds", "labels", "annotations", "ownerReferences", "finalizers",
    "managedFields",
}
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
                 "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
                 "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
LABEL_MSG = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start "
             "and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
             "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
RETURNS_OBJECT_ON_DELETE = {("", "namespaces"), ("", "pods"), CRDS}


def _bound_port(site: web.TCPSite) -> int:
    server = site._server  # noqa: SLF001 - the only way to learn the port picked for port 0
    assert server is not None and server.sockets
    return int(server.sockets[0].getsockname()[1])


def _dumps(body: Any) -> str:
    return json.dumps(body, separators=(",", ":"))


def _json(body: Any, status: int = 200, warnings: list[str] | None = None) -> web.Response:
    resp = web.Response(text=_dumps(body), status=status, content_type="application/json")
    for warning in warnings or []:
        resp.headers.add("Warning", '299 - "' + warning.replace('"', '\\"') + '"')
    return resp


class FakeKubeAPI:
    """A small kube-apiserver for tests (see the package docstring)."""

    def __init__(self, token: str | None = None, bookmark_interval: float = 5.0, history: int = 1000) -> None:
        self.token = token
        self.bookmark_interval = bookmark_interval
        self.registry = Registry()
        for rtype in builtin_types():
            self.registry.add(rtype)
        self.store = Store(history, self.registry.by_group_resource)
        self.store.on_removed = self._on_removed
        self.requests: list[tuple[str, str, str, str]] = []
        self._watches: set[OpenWatch] = set()
        self._runner: web.AppRunner | None = None
        self._cert: Certificate | None = None
        self.port: int | None = None
        self.tls_port: int | None = None
        for name in ("default", "kube-system", "kube-public", "kube-node-lease"):
            self.put_object({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})

    # ======================================================================= lifecycle (public)
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def tls_url(self) -> str | None:
        """The HTTPS listener kubeconfigs point at (see ``tls.py``), if ``openssl`` could make a certificate."""
        return f"https://127.0.0.1:{self.tls_port}" if self.tls_port else None

    async def start(self) -> str:
        """Listen on 127.0.0.1 (free ports: plain HTTP, and HTTPS for kubeconfigs); returns the HTTP URL."""
        await self._listen(self.port or 0, self.tls_port or 0)
        return self.url

    async def _listen(self, port: int, tls_port: int) -> None:
        app = web.Application(middlewares=[self._middleware], client_max_size=16 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5, handler_cancellation=True,
                               access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", port, reuse_address=True)
        await site.start()
        self._runner = runner
        self.port = _bound_port(site)
        cert = self_signed()
        if cert is not None:
            self._cert = cert
            tls_site = web.TCPSite(runner, "127.0.0.1", tls_port, reuse_address=True,
                                   ssl_context=cert.server_context)
            await tls_site.start()
            self.tls_port = _bound_port(tls_site)

    async def drop_watches(self) -> None:
        """Abruptly close every open watch stream (the client sees the connection end)."""
        handles = end_watches(self._watches, abrupt=True)
        for handle in handles:
            try:
                await asyncio.wait_for(handle.done.wait(), 2.0)
            except asyncio.TimeoutError:
                pass

    def compact(self) -> None:
        """Forget all watch event history so far (like an etcd compaction)."""
        self.store.compact()

    async def restart(self) -> None:
        """Stop listening and close every connection, then listen again on the same port."""
        await self._shutdown()
        await self._listen(self.port or 0, self.tls_port or 0)

    async def stop(self) -> None:
        await self._shutdown()

    async def _shutdown(self) -> None:
        await self.drop_watches()
        if self._runner is not None:
            await self._runner.cleanup()
        self._runner = None

    def write_kubeconfig(self, path: str | Path) -> Path:
        """A kubeconfig (context ``test``, namespace ``default``) with the bearer token.

        It names the HTTPS listener with its certificate as CA when there is one: kubectl sends a token
        only over HTTPS (see ``tls.py``). kubernetes-asyncio's ``load_kube_config`` reads it as well.
        """
        path = Path(path)
        user: dict[str, Any] = {"token": self.token} if self.token else {}
        cluster: dict[str, Any] = {"server": self.url}
        if self.tls_url and self._cert is not None:
            cluster = {"server": self.tls_url,
                       "certificate-authority-data": base64.b64encode(self._cert.cert_pem).decode()}
        config = {
            "apiVersion": "v1", "kind": "Config", "current-context": "test", "preferences": {},
            "clusters": [{"name": "test", "cluster": cluster}],
            "users": [{"name": "test", "user": user}],
            "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test", "namespace": "default"}}],
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    # ======================================================================= direct store access (public)
    def get_object(self, group: str, version: str, plural: str, name: str,
                   namespace: str | None = None) -> dict[str, Any] | None:
        rtype = self._type(group, version, plural)
        obj = self.store.get(rtype.group_resource, namespace if rtype.namespaced else None, name)
        return self._out(rtype, obj) if obj is not None else None

    def list_objects(self, group: str, version: str, plural: str, namespace: str | None = None) -> list[dict[str, Any]]:
        rtype = self._type(group, version, plural)
        return [self._out(rtype, o) for o in self.store.list(rtype.group_resource, namespace)]

    def put_object(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Create or replace an object directly (status included), e.g. a Node; emits watch events.

        Server-set metadata (uid, resourceVersion, generation...) is handled as on a write through the API and
        CRDs register their resource, but nothing is validated and no namespace needs to exist.
        """
        obj = copy.deepcopy(obj)
        rtype = self.registry.by_kind(obj.get("apiVersion", ""), obj.get("kind", ""))
        if rtype is None:
            raise ValueError(f"no resource for {obj.get('apiVersion')}/{obj.get('kind')}")
        md = obj.setdefault("metadata", {})
        if rtype.namespaced:
            md.setdefault("namespace", "default")
        else:
            md.pop("namespace", None)
        prune(obj, rtype.schema)
        apply_defaults(obj, rtype.schema)
        current = self.store.get(rtype.group_resource, md.get("namespace"), md["name"])
        self._kind_specific(rtype, obj, current)
        if current is None:
            stored = self.store.create(rtype, obj)
        else:
            md.pop("resourceVersion", None)
            stored = self.store.update(rtype, obj)
        self._after_write(rtype, stored)
        return self._out(rtype, stored)

    def delete_object_now(self, group: str, version: str, plural: str, name: str,
                          namespace: str | None = None) -> None:
        """Remove an object at once, finalizers or not (e.g. a Node going away)."""
        rtype = self._type(group, version, plural)
        self.store.delete_now(rtype.group_resource, namespace if rtype.namespaced else None, name)

    def _type(self, group: str, version: str, plural: str) -> ResourceType:
        rtype = self.registry.get(group, version, plural)
        if rtype is None:
            raise KeyError(f"no resource {plural} in {group or 'core'}/{version}")
        return rtype

    # ======================================================================= HTTP plumbing
    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append((request.method, request.path, request.query_string,
                              request.headers.get("Content-Type", "")))
        try:
            if self.token and request.headers.get("Authorization", "") != f"Bearer {self.token}":
                raise unauthorized()
            return await handler(request)
        except ApiError as exc:
            resp = _json(exc.status(), exc.code)
            for key, value in exc.headers.items():
                resp.headers[key] = value
            return resp

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = "/" + request.path.strip("/")
        if path == "/version":
            return _json(discovery.KUBE_VERSION)
        if path in ("/healthz", "/livez", "/readyz"):
            return web.Response(text="ok")
        if path == "/api":
            return _json(discovery.api_versions(request.host))
        if path == "/apis":
            return _json(discovery.api_group_list(self.registry))
        if path == "/openapi/v2":
            # An empty protobuf message is a valid, empty OpenAPI v2 Document.
            return web.Response(body=b"", content_type="application/com.github.proto-openapi.spec.v2.v1.0+protobuf")
        if path == "/openapi/v3":
            return _json(discovery.openapi_v3_index(self.registry))
        parts = path.strip("/").split("/")
        if parts[0] == "openapi" and len(parts) >= 4 and parts[1] == "v3":
            group, version = ("", parts[3]) if parts[2] == "api" else (parts[3], parts[4] if len(parts) > 4 else "")
            doc = discovery.openapi_v3_gv(self.registry, group, version)
            if doc is None:
                raise no_such_resource()
            return _json(doc)
        if parts[0] == "api" and len(parts) >= 2:
            group, version, rest = "", parts[1], parts[2:]
        elif parts[0] == "apis" and len(parts) == 2:
            info = discovery.api_group(self.registry, parts[1])
            if info is None:
                raise no_such_resource()
            return _json(info)
        elif parts[0] == "apis" and len(parts) >= 3:
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise no_such_resource()
        if not rest:
            doc = discovery.api_resource_list(self.registry, group, version)
            if doc is None:
                raise no_such_resource()
            return _json(doc)
        rtype, namespace, name, sub = self._resolve(group, version, rest)
        method = request.method
        query = request.query
        if name is None:
            if method == "GET":
                return await self._list(request, rtype, namespace)
            if method == "POST":
                return await self._create(request, rtype, namespace)
            if method == "DELETE":
                return await self._delete_collection(request, rtype, namespace)
            raise method_not_allowed()
        if rtype.namespaced and namespace is None:
            raise no_such_resource()
        if method == "GET":
            if truthy(query.get("watch")):
                return await self._list(request, rtype, namespace, only=name)
            obj = self._current(rtype, namespace, name)
            return self._respond_object(request, rtype, obj)
        if method == "PUT":
            return await self._replace(request, rtype, namespace, name, status_only=sub == "status")
        if method == "PATCH":
            return await self._patch(request, rtype, namespace, name, status_only=sub == "status")
        if method == "DELETE" and sub is None:
            return await self._delete(request, rtype, namespace, name)
        raise method_not_allowed()

    def _resolve(self, group: str, version: str, rest: list[str]) -> tuple[ResourceType, str | None, str | None, str | None]:
        types = {t.plural: t for t in self.registry.in_group_version(group, version)}
        if not types:
            raise no_such_resource()
        namespace: str | None = None
        if len(rest) >= 3 and rest[0] == "namespaces" and rest[2] in types and types[rest[2]].namespaced:
            namespace, rest = rest[1], rest[2:]
        rtype = types.get(rest[0])
        if rtype is None or len(rest) > 3:
            raise no_such_resource()
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if sub is not None and not (sub == "status" and rtype.has_status):
            raise no_such_resource()
        return rtype, namespace, name, sub

    def _out(self, rtype: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
        """The object as this group/version presents it."""
        out = {"apiVersion": rtype.api_version, "kind": rtype.kind}
        out.update({k: v for k, v in obj.items() if k not in ("apiVersion", "kind")})
        return out

    def _current(self, rtype: ResourceType, namespace: str | None, name: str) -> dict[str, Any]:
        obj = self.store.get(rtype.group_resource, namespace if rtype.namespaced else None, name)
        if obj is None:
            raise not_found(rtype.group, rtype.plural, name)
        return self._out(rtype, obj)

    def _respond_object(self, request: web.Request, rtype: ResourceType, obj: dict[str, Any],
                        status: int = 200, warnings: list[str] | None = None) -> web.Response:
        if request.method == "GET" and wants_table(request.headers.get("Accept", "")):
            table = to_table(rtype, [obj], obj["metadata"].get("resourceVersion", ""),
                             request.query.get("includeObject", "Metadata"))
            return _json(table, status)
        return _json(obj, status, warnings)

    async def _read_body(self, request: web.Request) -> Any:
        ctype = request.content_type
        raw = await request.read()
        if ctype in ("application/json", "application/octet-stream", "text/plain", ""):
            try:
                return json.loads(raw or b"null")
            except ValueError as exc:
                raise bad_request(f"couldn't get version/kind; json parse error: {exc}") from None
        if ctype == protobuf.MEDIA_TYPE:
            return protobuf.decode(raw)
        if ctype in ("application/yaml", "application/x-yaml"):
            try:
                return yaml.safe_load(raw)
            except yaml.YAMLError as exc:
                raise bad_request(f"error converting YAML to JSON: {exc}") from None
        raise unsupported_media_type(["application/json", "application/yaml"])

    # ======================================================================= reads
    async def _list(self, request: web.Request, rtype: ResourceType, namespace: str | None,
                    only: str | None = None) -> web.StreamResponse:
        query = request.query
        labels = parse_label_selector(query.get("labelSelector"))
        fields = parse_field_selector(query.get("fieldSelector"), rtype.field_labels)
        if only is not None:
            fields.terms.append(("metadata.name", True, only))
        ns = namespace if rtype.namespaced else None
        table = query.get("includeObject", "Metadata") if wants_table(request.headers.get("Accept", "")) else None
        if truthy(query.get("watch")):
            flt = WatchFilter(rtype, ns, labels, fields, table)
            return await serve_watch(request, self.store, flt, dict(query), self.bookmark_interval, self._watches)
        items = [self._out(rtype, o) for o in self.store.list(rtype.group_resource, ns)
                 if labels.matches(o) and fields.matches(o)]
        rv = str(self.store.rv)
        if table is not None:
            return _json(to_table(rtype, items, rv, table))
        return _json({"kind": rtype.list_kind, "apiVersion": rtype.api_version,
                      "metadata": {"resourceVersion": rv}, "items": items})

    # ======================================================================= writes
    def _incoming(self, rtype: ResourceType, body: Any, directive: str, patch: bool = False) -> tuple[dict[str, Any], list[str]]:
        """Decode an object for this resource: kind checks, pruning/strictness, defaults."""
        prefix = f'{rtype.kind} in version "{rtype.version}" cannot be handled as a {rtype.kind}: '
        if not isinstance(body, dict):
            raise bad_request(prefix + "json: cannot unmarshal non-object into Go value of type map[string]interface {}")
        obj = copy.deepcopy(body)
        api_version, kind = obj.get("apiVersion"), obj.get("kind")
        if rtype.custom and not kind:
            raise bad_request(f"Object 'Kind' is missing in '{_dumps(body)}'")
        if rtype.custom and not api_version:
            raise bad_request(f"Object 'apiVersion' is missing in '{_dumps(body)}'")
        if api_version and api_version != rtype.api_version:
            raise bad_request(f"the API version in the data ({api_version}) does not match the expected API version "
                              f"({rtype.api_version})")
        if kind and kind != rtype.kind:
            raise bad_request(prefix + f"the kind in the data ({kind}) does not match the expected kind ({rtype.kind})")
        obj["apiVersion"], obj["kind"] = rtype.api_version, rtype.kind
        md = obj.get("metadata")
        if md is None:
            md = obj["metadata"] = {}
        if not isinstance(md, dict):
            raise bad_request(prefix + "json: cannot unmarshal into Go struct field .metadata of type v1.ObjectMeta")
        unknown = [f"metadata.{k}" for k in md if k not in OBJECT_META_FIELDS]
        for key in unknown:
            del md[key.split(".", 1)[1]]
        unknown += prune(obj, rtype.schema)
        if unknown and directive == "Strict":
            detail = "strict decoding error: " + ", ".join(f'unknown field "{p}"' for p in unknown)
            raise bad_request(detail if patch else prefix + detail)
        warnings = [f'unknown field "{p}"' for p in unknown] if directive in ("Warn", "") else []
        apply_defaults(obj, rtype.schema)
        return obj, warnings

    def _validate(self, rtype: ResourceType, obj: dict[str, Any], creating: bool) -> list[FieldError]:
        errors: list[FieldError] = []
        md = obj["metadata"]
        name = md.get("name")
        if not name:
            if not (creating and md.get("generateName")):
                errors.append(FieldError.required("metadata.name", "name or generateName is required"))
        elif rtype.group == "rbac.authorization.k8s.io":
            if name in (".", "..") or "/" in name or "%" in name:
                errors.append(FieldError.invalid("metadata.name", name, "may not contain '/' or '%'"))
        elif rtype.group_resource in (NAMESPACES, ("", "services")):
            if len(name) > 63:
                errors.append(FieldError.invalid("metadata.name", name, "must be no more than 63 characters"))
            elif not _LABEL.match(name):
                errors.append(FieldError.invalid("metadata.name", name, LABEL_MSG))
        else:
            if len(name) > 253:
                errors.append(FieldError.invalid("metadata.name", name, "must be no more than 253 characters"))
            elif not _SUBDOMAIN.match(name):
                errors.append(FieldError.invalid("metadata.name", name, SUBDOMAIN_MSG))
        if rtype.group_resource == EVENTS:
            involved = (obj.get("involvedObject") or {}).get("namespace", "")
            if (not involved and md.get("namespace") not in ("", "default")) or (involved and involved != md.get("namespace")):
                errors.append(FieldError.invalid("involvedObject.namespace", involved, "does not match event.namespace"))
        if rtype.custom:
            errors += validate(obj, rtype.schema)
        return errors

    def _kind_specific(self, rtype: ResourceType, obj: dict[str, Any], current: dict[str, Any] | None) -> None:
        """What the strategies of some built-in kinds add before a write."""
        md = obj["metadata"]
        if rtype.group_resource == NAMESPACES:
            obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
            obj.setdefault("status", {})
            obj["status"]["phase"] = "Terminating" if md.get("deletionTimestamp") or (
                current and current["metadata"].get("deletionTimestamp")) else "Active"
            md.setdefault("labels", {})["kubernetes.io/metadata.name"] = md.get("name", "")
        elif rtype.group_resource == CRDS:
            self._prepare_crd(obj, current)
        elif rtype.group_resource == ("", "services"):
            self._allocate_service(obj, current)
        elif rtype.group_resource == ("", "secrets"):
            obj["type"] = obj.get("type") or "Opaque"
            for key, value in (obj.pop("stringData", None) or {}).items():
                obj.setdefault("data", {})[key] = base64.b64encode(str(value).encode()).decode()

    def _allocate_service(self, obj: dict[str, Any], current: dict[str, Any] | None) -> None:
        """As the Service strategy does: a cluster IP, and a node port (30000-32767) for each port of a
        NodePort or LoadBalancer Service; an update that leaves them out keeps the ones allocated
        (the real ``patchAllocatedValues``), matched by port number and protocol."""
        spec = obj.setdefault("spec", {})
        spec.setdefault("type", "ClusterIP")
        old = (current or {}).get("spec") or {}
        if not spec.get("clusterIP"):
            spec["clusterIP"] = old.get("clusterIP") or f"10.96.{random.randint(0, 255)}.{random.randint(1, 254)}"
        spec["clusterIPs"] = [spec["clusterIP"]]
        if spec["type"] not in ("NodePort", "LoadBalancer"):
            for port in spec.get("ports") or []:
                port.pop("nodePort", None)
            return
        kept = {(p.get("port"), p.get("protocol", "TCP")): p.get("nodePort") for p in old.get("ports") or []}
        taken = {p.get("nodePort") for svc in self.store.list(("", "services"), None)
                 for p in (svc.get("spec") or {}).get("ports") or []}
        for port in spec.get("ports") or []:
            port.setdefault("protocol", "TCP")
            if not port.get("nodePort"):
                port["nodePort"] = kept.get((port.get("port"), port["protocol"])) or next(
                    n for n in range(30000, 32768) if n not in taken)
            taken.add(port["nodePort"])

    def _prepare_crd(self, crd: dict[str, Any], current: dict[str, Any] | None) -> None:
        spec = crd.setdefault("spec", {})
        names = spec.setdefault("names", {})
        name = crd["metadata"].get("name", "")
        errors: list[FieldError] = []
        if not spec.get("group"):
            errors.append(FieldError.required("spec.group"))
        if not names.get("plural"):
            errors.append(FieldError.required("spec.names.plural"))
        if not names.get("kind"):
            errors.append(FieldError.required("spec.names.kind"))
        if spec.get("scope") not in ("Cluster", "Namespaced"):
            errors.append(FieldError.not_supported("spec.scope", spec.get("scope", ""), ["Cluster", "Namespaced"]))
        versions = spec.get("versions") or []
        if sum(1 for v in versions if v.get("storage")) != 1:
            errors.append(FieldError.invalid("spec.versions", versions, "must have exactly one version marked as storage version"))
        if spec.get("group") and names.get("plural") and name != f"{names['plural']}.{spec['group']}":
            errors.append(FieldError.invalid("metadata.name", name, 'must be spec.names.plural+"."+spec.group'))
        if current is not None:
            old_spec = current.get("spec") or {}
            if old_spec.get("group") != spec.get("group"):
                errors.append(FieldError.invalid("spec.group", spec.get("group"), "field is immutable"))
        if errors:
            raise invalid("apiextensions.k8s.io", "CustomResourceDefinition", name, errors)
        names.setdefault("singular", names["kind"].lower())
        names.setdefault("listKind", names["kind"] + "List")
        spec.setdefault("conversion", {"strategy": "None"})
        stamp = now()
        old_status = (current or {}).get("status") or {}
        stored = list(old_status.get("storedVersions") or [])
        for version in versions:
            if version.get("storage") and version["name"] not in stored:
                stored.append(version["name"])
        crd["status"] = {
            "conditions": [
                {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found",
                 "lastTransitionTime": stamp},
                {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
                 "message": "the initial names have been accepted", "lastTransitionTime": stamp},
            ],
            "acceptedNames": copy.deepcopy(names),
            "storedVersions": stored,
        }

    def _after_write(self, rtype: ResourceType, stored: dict[str, Any]) -> None:
        if rtype.group_resource == CRDS and not stored["metadata"].get("deletionTimestamp"):
            spec = stored["spec"]
            self.registry.remove(spec["group"], spec["names"]["plural"])
            for new_type in types_from_crd(stored):
                self.registry.add(new_type)

    def _on_removed(self, gr: tuple[str, str], obj: dict[str, Any]) -> None:
        if gr == CRDS:
            spec = obj.get("spec") or {}
            group, plural = spec.get("group", ""), (spec.get("names") or {}).get("plural", "")
            self.store.drop_resource((group, plural))
            self.registry.remove(group, plural)

    def _check_namespace(self, rtype: ResourceType, obj: dict[str, Any], namespace: str | None) -> None:
        md = obj["metadata"]
        if not rtype.namespaced:
            md.pop("namespace", None)
            return
        if namespace is None:
            raise no_such_resource()
        if md.get("namespace") and md["namespace"] != namespace:
            raise bad_request("the namespace of the provided object does not match the namespace sent on the request")
        md["namespace"] = namespace

    async def _create(self, request: web.Request, rtype: ResourceType, namespace: str | None) -> web.Response:
        query = request.query
        obj, warnings = self._incoming(rtype, await self._read_body(request), query.get("fieldValidation", ""))
        self._check_namespace(rtype, obj, namespace)
        md = obj["metadata"]
        if rtype.namespaced:
            state = self.store.namespace_state(md["namespace"])
            if state is None:
                raise not_found("", "namespaces", md["namespace"])
            if state == "Terminating":
                raise forbidden(rtype.group, rtype.plural, md.get("name", ""),
                                f"unable to create new content in namespace {md['namespace']} because it is being "
                                f"terminated")
        if rtype.create_resets_status:
            obj.pop("status", None)
        errors = self._validate(rtype, obj, creating=True)
        if errors:
            raise invalid(rtype.group, rtype.kind, md.get("name") or "", errors)
        self._kind_specific(rtype, obj, None)
        if query.get("dryRun") == "All":
            return _json(obj, 201, warnings)
        stored = self.store.create(rtype, obj)
        self._after_write(rtype, stored)
        return _json(self._out(rtype, stored), 201, warnings)

    def _update_from(self, rtype: ResourceType, current: dict[str, Any], new: dict[str, Any], name: str,
                     namespace: str | None, status_only: bool, require_rv: bool) -> dict[str, Any]:
        md = new["metadata"]
        if md.get("name") and md["name"] != name:
            raise bad_request(f"the name of the object ({md['name']}) does not match the name on the URL ({name})")
        md["name"] = name
        self._check_namespace(rtype, new, namespace)
        cur_md = current["metadata"]
        rv = md.get("resourceVersion")
        if not rv and require_rv:
            raise invalid(rtype.group, rtype.kind, name,
                          [FieldError.invalid("metadata.resourceVersion", "", "must be specified for an update")])
        if rv and rv != cur_md["resourceVersion"]:
            raise conflict(rtype.group, rtype.plural, name)
        if md.get("uid") and md["uid"] != cur_md.get("uid"):
            raise conflict(rtype.group, rtype.plural, name,
                           f"Precondition failed: UID in precondition: {md['uid']}, UID in object meta: {cur_md.get('uid')}")
        if status_only:
            result = copy.deepcopy(current)
            if "status" in new:
                result["status"] = new["status"]
            else:
                result.pop("status", None)
        else:
            result = new
            if rtype.has_status:
                if "status" in current:
                    result["status"] = copy.deepcopy(current["status"])
                else:
                    result.pop("status", None)
        result["metadata"]["resourceVersion"] = cur_md["resourceVersion"]
        errors = self._validate(rtype, result, creating=False)
        if errors:
            raise invalid(rtype.group, rtype.kind, name, errors)
        self._kind_specific(rtype, result, current)
        stored = self.store.update(rtype, result)
        self._after_write(rtype, stored)
        return self._out(rtype, stored)

    async def _replace(self, request: web.Request, rtype: ResourceType, namespace: str | None, name: str,
                       status_only: bool) -> web.Response:
        query = request.query
        obj, warnings = self._incoming(rtype, await self._read_body(request), query.get("fieldValidation", ""))
        current = self._current(rtype, namespace, name)
        if query.get("dryRun") == "All":
            return _json(obj, 200, warnings)
        stored = self._update_from(rtype, current, obj, name, namespace, status_only, require_rv=rtype.custom)
        return _json(stored, 200, warnings)

    async def _patch(self, request: web.Request, rtype: ResourceType, namespace: str | None, name: str,
                     status_only: bool) -> web.Response:
        query = request.query
        ctype = request.content_type
        if ctype not in accepted_patch_types(rtype.custom):
            raise unsupported_media_type(accepted_patch_types(rtype.custom))
        raw = await request.read()
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise bad_request(f"error decoding patch: {exc}") from None
        current = self._current(rtype, namespace, name)
        patched = apply_patch(ctype, current, body, rtype.custom)
        obj, warnings = self._incoming(rtype, patched, query.get("fieldValidation", ""), patch=True)
        if query.get("dryRun") == "All":
            return _json(obj, 200, warnings)
        stored = self._update_from(rtype, current, obj, name, namespace, status_only, require_rv=False)
        return _json(stored, 200, warnings)

    async def _delete(self, request: web.Request, rtype: ResourceType, namespace: str | None,
                      name: str) -> web.Response:
        query = request.query
        raw = await request.read()
        options: dict[str, Any] = {}
        if raw.strip() and request.content_type == protobuf.MEDIA_TYPE:
            options = protobuf.decode(raw)
        elif raw.strip():
            try:
                options = json.loads(raw) or {}
            except ValueError as exc:
                raise bad_request(f"couldn't decode DeleteOptions: {exc}") from None
        propagation = query.get("propagationPolicy") or options.get("propagationPolicy")
        if not propagation:
            orphan = options.get("orphanDependents") is True or query.get("orphanDependents") == "true"
            propagation = "Orphan" if orphan else "Background"
        current = self._current(rtype, namespace, name)
        pre = options.get("preconditions") or {}
        if pre.get("uid") and pre["uid"] != current["metadata"].get("uid"):
            raise conflict(rtype.group, rtype.plural, name,
                           f"Precondition failed: UID in precondition: {pre['uid']}, UID in object meta: "
                           f"{current['metadata'].get('uid')}")
        if pre.get("resourceVersion") and pre["resourceVersion"] != current["metadata"]["resourceVersion"]:
            raise conflict(rtype.group, rtype.plural, name,
                           f"Precondition failed: ResourceVersion in precondition: {pre['resourceVersion']}, "
                           f"ResourceVersion in object meta: {current['metadata']['resourceVersion']}")
        if query.get("dryRun") == "All" or options.get("dryRun") == ["All"]:
            return _json(current)
        obj = self.store.delete(rtype, namespace, name, propagation)
        if rtype.custom or rtype.group_resource in RETURNS_OBJECT_ON_DELETE:
            return _json(self._out(rtype, obj))
        return _json({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                      "details": {"name": name, "group": rtype.group, "kind": rtype.plural,
                                  "uid": obj["metadata"].get("uid")}})

    async def _delete_collection(self, request: web.Request, rtype: ResourceType,
                                 namespace: str | None) -> web.Response:
        query = request.query
        labels = parse_label_selector(query.get("labelSelector"))
        fields = parse_field_selector(query.get("fieldSelector"), rtype.field_labels)
        ns = namespace if rtype.namespaced else None
        deleted = []
        for obj in self.store.list(rtype.group_resource, ns):
            if labels.matches(obj) and fields.matches(obj):
                md = obj["metadata"]
                result = self.store.delete(rtype, md.get("namespace"), md["name"],
                                           query.get("propagationPolicy") or "Background")
                deleted.append(self._out(rtype, result))
        return _json({"kind": rtype.list_kind, "apiVersion": rtype.api_version,
                      "metadata": {"resourceVersion": str(self.store.rv)}, "items": deleted})
