"""aiohttp application factory for the REST API.

Paths (like the Kubernetes API):
  GET    /apis/nasd.io/v1alpha1/<plural>            list
  POST   /apis/nasd.io/v1alpha1/<plural>            apply (create or update)
  GET    /apis/nasd.io/v1alpha1/<plural>/<name>     get
  PUT    /apis/nasd.io/v1alpha1/<plural>/<name>     apply
  DELETE /apis/nasd.io/v1alpha1/<plural>/<name>     delete (objects applied through the API)
  GET    /healthz, /metrics
Errors are Kubernetes ``Status`` objects; validation errors list every field (422). Bodies are read
within nasd.limits (413 when too large, 400 when nested too deep or with too many YAML aliases, 415
for a charset Python does not know); every message is clipped (nothing echoes a value unbounded).
A list is built in batches, letting other requests in between: a big one never stalls the daemon.
"""

from __future__ import annotations

import asyncio
import hmac
import json
from typing import Any, Awaitable, Callable

from aiohttp import web

from ..daemon import Nasd
from ..feed import Key
from ..limits import MAX_BYTES, clip, clip_problems, size_text
from ..models import GROUP_VERSION, PLURALS, ManifestError, Resource, parse_resource
from ..safe_yaml import InputRefused, load_json, load_yaml
from ..sources.api_store import SOURCE as API_SOURCE
from ..sources.api_store import APIStore

NASD = web.AppKey("nasd", Nasd)
TOKEN = web.AppKey("token", str)
PREFIX = f"/apis/{GROUP_VERSION}"
BODY = "request body"
#: objects viewed between two turns of the event loop while a list is built
LIST_BATCH = 100


def status_error(code: int, reason: str, message: str, causes: list[str] | None = None) -> web.Response:
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "reason": reason,
        "message": clip(message, 1000),
        "code": code,
    }
    if causes:
        body["details"] = {"causes": [{"message": c} for c in clip_problems(causes)]}
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
        return status_error(404, "NotFound", f"unknown resource type {clip(plural)!r}; known: {', '.join(PLURALS)}")
    return cls


def _view(nasd: Nasd, key: Key, desired: dict[Key, Resource]) -> dict[str, Any] | None:
    """The object as the API shows it; ``desired`` is the feed's snapshot (taken once per request)."""
    current = nasd.reconciler.current.get(key)
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


async def list_objects(request: web.Request) -> web.StreamResponse:
    cls = _kind(request)
    if isinstance(cls, web.Response):
        return cls
    nasd = request.app[NASD]
    kind = cls.__name__
    desired, _ = nasd.feed.snapshot()
    names = sorted({n for k, n in desired if k == kind} | {n for k, n in nasd.reconciler.current if k == kind})
    response = web.StreamResponse(headers={"Content-Type": "application/json; charset=utf-8"})
    await response.prepare(request)
    head = json.dumps({"apiVersion": GROUP_VERSION, "kind": f"{kind}List", "items": []})
    await response.write(head[:-2].encode())  # everything up to the items' "["
    first = True
    for start in range(0, len(names), LIST_BATCH):
        views = [v for n in names[start:start + LIST_BATCH] if (v := _view(nasd, (kind, n), desired)) is not None]
        if views:
            await response.write((("" if first else ", ") + ", ".join(json.dumps(v) for v in views)).encode())
            first = False
        await asyncio.sleep(0)  # other requests, and the reconciler, go on meanwhile
    await response.write(b"]}")
    await response.write_eof()
    return response


async def get_object(request: web.Request) -> web.Response:
    cls = _kind(request)
    if isinstance(cls, web.Response):
        return cls
    name = request.match_info["name"]
    nasd = request.app[NASD]
    data = _view(nasd, (cls.__name__, name), nasd.feed.snapshot()[0])
    if data is None:
        return status_error(404, "NotFound", f'{cls.plural} "{clip(name)}" not found')
    return web.json_response(data)


class BodyRefused(Exception):
    def __init__(self, response: web.Response):
        self.response = response


async def _body(request: web.Request) -> Any:
    """The body as data: JSON when the Content-Type says so, else YAML (one document), within nasd.limits."""
    try:
        raw = await request.read()  # aiohttp refuses more than the app's client_max_size (MAX_BYTES)
    except web.HTTPRequestEntityTooLarge:
        raise BodyRefused(status_error(413, "RequestEntityTooLarge", f"{BODY}: is larger than the limit of "
                                       f"{size_text(MAX_BYTES)}; split it into several requests")) from None
    charset = request.charset or "utf-8"
    try:
        text = raw.decode(charset)
    except LookupError:  # not a codec, or not a text one (rot13, hex)
        raise BodyRefused(status_error(415, "UnsupportedMediaType", f"{BODY}: unknown charset {clip(charset)!r} in "
                                       "the Content-Type header; send the body as UTF-8 (charset=utf-8)")) from None
    except UnicodeDecodeError as e:
        raise BodyRefused(status_error(400, "BadRequest", f"{BODY}: not {clip(charset)} text (byte {e.start}); "
                                       "send the body as UTF-8 (charset=utf-8)")) from None
    try:
        return load_json(text, BODY) if "json" in request.content_type else load_yaml(text, BODY)
    except InputRefused as e:
        if e.too_large:
            raise BodyRefused(status_error(413, "RequestEntityTooLarge", str(e))) from None
        raise BodyRefused(status_error(400, "BadRequest", str(e))) from None


async def apply_object(request: web.Request) -> web.Response:
    cls = _kind(request)
    if isinstance(cls, web.Response):
        return cls
    try:
        data = await _body(request)
    except BodyRefused as refused:
        return refused.response
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
        return status_error(400, "BadRequest",
                            f"metadata.name {clip(resource.name)!r} does not match the path ({clip(name)!r})")
    nasd = request.app[NASD]
    others = [s for s in nasd.feed.source_of(resource.key) if s != API_SOURCE]
    if others:
        return status_error(
            409, "Conflict", f"{resource.kind}/{resource.name} is declared by {', '.join(others)}; change it there"
        )
    store = _store(nasd)
    if store is None:
        return status_error(503, "ServiceUnavailable", NO_STORE)
    existed = API_SOURCE in nasd.feed.source_of(resource.key)
    try:
        store.put(resource)
    except OSError as e:  # a full or read-only state folder: nothing was applied
        return status_error(500, "InternalError", f"{resource.kind}/{resource.name} cannot be stored under "
                            f"{store.dir.root}: {e.strerror or e}; nothing was applied")
    return web.json_response(_view(nasd, resource.key, nasd.feed.snapshot()[0]), status=200 if existed else 201)


def _store(nasd: Any) -> APIStore | None:
    """The API's store (None when the built-in api-store plugin is blocked, or before the daemon started)."""
    plugin = nasd.pm.get_plugin("api-store")
    return None if plugin is None else plugin.store


NO_STORE = ("the REST API cannot store objects: the built-in api-store plugin is disabled "
            "(NASD_DISABLED_PLUGINS); use the manifest folder, or enable it")


async def delete_object(request: web.Request) -> web.Response:
    cls = _kind(request)
    if isinstance(cls, web.Response):
        return cls
    name = request.match_info["name"]
    nasd = request.app[NASD]
    key = (cls.__name__, name)
    sources = nasd.feed.source_of(key)
    if not sources:
        return status_error(404, "NotFound", f'{cls.plural} "{clip(name)}" not found')
    if API_SOURCE not in sources:
        return status_error(
            409, "Conflict", f"{cls.__name__}/{clip(name)} is declared by {', '.join(sources)}; remove it there"
        )
    store = _store(nasd)
    if store is None:
        return status_error(503, "ServiceUnavailable", NO_STORE)
    store.delete(*key)
    return web.json_response({"kind": "Status", "apiVersion": "v1", "status": "Success", "details": {"name": name}})


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


async def metrics(request: web.Request) -> web.Response:
    return web.Response(text=request.app[NASD].metrics.render(), content_type="text/plain")


def make_app(nasd: Nasd, token: str | None = None) -> web.Application:
    app = web.Application(middlewares=[auth_middleware], client_max_size=MAX_BYTES)
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
