"""aiohttp application factory for the REST API.

Paths (like the Kubernetes API):
  GET    /apis/nasd.io/v1alpha1/<plural>            list
  POST   /apis/nasd.io/v1alpha1/<plural>            apply (create or update)
  GET    /apis/nasd.io/v1alpha1/<plural>/<name>     get
  PUT    /apis/nasd.io/v1alpha1/<plural>/<name>     apply
  DELETE /apis/nasd.io/v1alpha1/<plural>/<name>     delete (objects applied through the API)
  GET    /healthz, /metrics
Errors are Kubernetes ``Status`` objects; validation errors list every field (422).
"""

from __future__ import annotations

import hmac
import json
from typing import Any, Awaitable, Callable

import yaml
from aiohttp import web

from ..daemon import Nasd
from ..models import GROUP_VERSION, PLURALS, ManifestError, Resource, parse_resource
from ..sources.api_store import SOURCE as API_SOURCE
from ..sources.api_store import APIStore

NASD = web.AppKey("nasd", Nasd)
TOKEN = web.AppKey("token", str)
PREFIX = f"/apis/{GROUP_VERSION}"


def status_error(code: int, reason: str, message: str, causes: list[str] | None = None) -> web.Response:
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "reason": reason,
        "message": message,
        "code": code,
    }
    if causes:
        body["details"] = {"causes": [{"message": c} for c in causes]}
    return web.json_response(body, status=code)


@web.middleware
async def auth_middleware(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]):
    token = request.app.get(TOKEN)
    if token and request.path != "/healthz":
        given = request.headers.get("Authorization", "")
        # (surrogateescape: a header that is not UTF-8 is a wrong token, not a server error)
        if not hmac.compare_digest(given.encode("utf-8", "surrogateescape"), f"Bearer {token}".encode()):
            return status_error(401, "Unauthorized", "a valid bearer token is required")
    return await handler(request)


def _kind(request: web.Request) -> type[Resource] | web.Response:
    plural = request.match_info["plural"]
    cls = PLURALS.get(plural)
    if cls is None:
        return status_error(404, "NotFound", f"unknown resource type {plural!r}; known: {', '.join(PLURALS)}")
    return cls


def _view(nasd: Nasd, key: tuple[str, str]) -> dict[str, Any] | None:
    current = nasd.reconciler.current.get(key)
    desired, _ = nasd.feed.snapshot()
    if key in desired:
        data = desired[key].to_manifest(with_status=False)
        data["metadata"]["generation"] = nasd.store.generation_for(desired[key])
        if current is not None:
            data["status"] = current.status.model_dump(mode="json", exclude_none=True)
        return data
    if current is not None:  # deleted but not yet cleaned up (e.g. a refused destroy)
        data = current.to_manifest()
        data["metadata"]["deletionTimestamp"] = data["metadata"].get("deletionTimestamp") or "pending"
        return data
    return None


async def list_objects(request: web.Request) -> web.Response:
    cls = _kind(request)
    if isinstance(cls, web.Response):
        return cls
    nasd = request.app[NASD]
    desired, _ = nasd.feed.snapshot()
    names = sorted({n for k, n in desired if k == cls.__name__} | {n for k, n in nasd.reconciler.current if k == cls.__name__})
    items = [v for n in names if (v := _view(nasd, (cls.__name__, n))) is not None]
    return web.json_response({"apiVersion": GROUP_VERSION, "kind": f"{cls.__name__}List", "items": items})


async def get_object(request: web.Request) -> web.Response:
    cls = _kind(request)
    if isinstance(cls, web.Response):
        return cls
    name = request.match_info["name"]
    data = _view(request.app[NASD], (cls.__name__, name))
    if data is None:
        return status_error(404, "NotFound", f'{cls.plural} "{name}" not found')
    return web.json_response(data)


async def _body(request: web.Request) -> Any:
    text = await request.text()
    if "json" in request.content_type:
        return json.loads(text)
    return yaml.safe_load(text)


async def apply_object(request: web.Request) -> web.Response:
    cls = _kind(request)
    if isinstance(cls, web.Response):
        return cls
    try:
        data = await _body(request)
    except (ValueError, yaml.YAMLError, RecursionError) as e:
        return status_error(400, "BadRequest", f"the body is not valid JSON or YAML: {type(e).__name__}: {e}"[:500])
    if isinstance(data, dict):
        data.pop("status", None)
        if isinstance(data.get("metadata"), dict):
            for server_field in ("generation", "resourceVersion", "uid", "creationTimestamp"):
                data["metadata"].pop(server_field, None)
    try:
        resource = parse_resource(data, "request")
    except ManifestError as e:
        return status_error(422, "Invalid", str(e), e.problems)
    except RecursionError:
        return status_error(400, "BadRequest", "the body is nested too deeply")
    if resource.kind != cls.__name__:
        return status_error(400, "BadRequest", f"a {resource.kind} cannot be applied to {cls.plural}")
    name = request.match_info.get("name")
    if name is not None and name != resource.name:
        return status_error(400, "BadRequest", f"metadata.name {resource.name!r} does not match the path ({name!r})")
    nasd = request.app[NASD]
    others = [s for s in nasd.feed.source_of(resource.key) if s != API_SOURCE]
    if others:
        return status_error(
            409, "Conflict", f"{resource.kind}/{resource.name} is declared by {', '.join(others)}; change it there"
        )
    store: APIStore = nasd.ctx.cache["api-store"]
    existed = API_SOURCE in nasd.feed.source_of(resource.key)
    store.put(resource)
    return web.json_response(_view(nasd, resource.key), status=200 if existed else 201)


async def delete_object(request: web.Request) -> web.Response:
    cls = _kind(request)
    if isinstance(cls, web.Response):
        return cls
    name = request.match_info["name"]
    nasd = request.app[NASD]
    key = (cls.__name__, name)
    sources = nasd.feed.source_of(key)
    if not sources:
        return status_error(404, "NotFound", f'{cls.plural} "{name}" not found')
    if API_SOURCE not in sources:
        return status_error(
            409, "Conflict", f"{cls.__name__}/{name} is declared by {', '.join(sources)}; remove it there"
        )
    store: APIStore = nasd.ctx.cache["api-store"]
    store.delete(*key)
    return web.json_response({"kind": "Status", "apiVersion": "v1", "status": "Success", "details": {"name": name}})


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


async def metrics(request: web.Request) -> web.Response:
    return web.Response(text=request.app[NASD].metrics.render(), content_type="text/plain")


def make_app(nasd: Nasd, token: str | None = None) -> web.Application:
    app = web.Application(middlewares=[auth_middleware])
    app[NASD] = nasd
    if token:
        app[TOKEN] = token
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get(PREFIX + "/{plural}", list_objects)
    app.router.add_post(PREFIX + "/{plural}", apply_object)
    app.router.add_get(PREFIX + "/{plural}/{name}", get_object)
    app.router.add_put(PREFIX + "/{plural}/{name}", apply_object)
    app.router.add_delete(PREFIX + "/{plural}/{name}", delete_object)
    return app
