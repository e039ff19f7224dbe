"""The REST API's source: objects applied through the API are desired state, kept under
``<state dir>/api`` so they survive a restart (written atomically)."""

from __future__ import annotations

import logging

from ..context import Context
from ..feed import DesiredFeed
from ..hookspecs import hookimpl
from ..models import ManifestError, Resource, parse_resource
from ..state import ObjectDir

log = logging.getLogger("nasd.sources.api")
SOURCE = "api"


class APIStore:
    def __init__(self, ctx: Context, feed: DesiredFeed):
        self.dir = ObjectDir(ctx.state_dir / "api")
        self.feed = feed

    def load(self) -> list[Resource]:
        out = []
        for kind, name, data in self.dir.items():
            try:
                out.append(parse_resource(data, f"state api/{kind}/{name}"))
            except ManifestError as e:
                log.error("stored API object no longer valid: %s", e)
        return out

    def put(self, resource: Resource) -> None:
        self.dir.put(resource.kind, resource.name, resource.to_manifest(with_status=False))
        self.feed.put(SOURCE, resource)

    def delete(self, kind: str, name: str) -> bool:
        self.dir.delete(kind, name)
        return self.feed.remove(SOURCE, (kind, name))


@hookimpl
def supply_desired_state(ctx: Context, feed: DesiredFeed) -> None:
    store = APIStore(ctx, feed)
    feed.replace(SOURCE, store.load())
    ctx.cache["api-store"] = store
    return None
